"""Registers the chart tests' fixtures; the shared helpers live in chart_support (a unique module name)."""

from chart_support import alert_rules_file, helm_binary, helm_cli, rendered, rendered_dir

__all__ = ["alert_rules_file", "helm_binary", "helm_cli", "rendered", "rendered_dir"]
