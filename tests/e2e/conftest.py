"""Registers the e2e fixtures and hook; the shared helpers live in e2e_support (a unique module name)."""

from e2e_support import pytest_configure, scenario, stack

__all__ = ["pytest_configure", "scenario", "stack"]
