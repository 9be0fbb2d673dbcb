"""values.schema.json: wrong types and unknown keys fail `helm template` and `helm lint`; documented examples pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from chart_support import CHART, EXAMPLES, Helm

pytestmark = pytest.mark.chart

# Each wrong values file, and a fragment of the error helm must print for it.
WRONG: dict[str, tuple[dict[str, Any], str]] = {
    "unknown-top-level-key": ({"replicas": 2}, "replicas"),
    "unknown-nested-key": ({"operator": {"image": {"registry": "x"}}}, "registry"),
    "typo-in-settings": ({"settings": {"batchsize": 10}}, "batchsize"),
    "batch-size-as-string": ({"settings": {"batchSize": "20"}}, "batchSize"),
    "batch-size-out-of-range": ({"settings": {"batchSize": 0}}, "batchSize"),
    "two-operator-replicas": ({"operator": {"replicaCount": 2}}, "replicaCount"),
    "bad-pull-policy": ({"job": {"image": {"pullPolicy": "Sometimes"}}}, "pullPolicy"),
    "bad-digest": ({"operator": {"image": {"digest": "latest"}}}, "digest"),
    "job-cpu-as-number": ({"job": {"resources": {"limits": {"cpu": 1}}}}, "cpu"),
    "env-from-secrets-not-a-list": ({"job": {"envFromSecrets": "worker-keys"}}, "envFromSecrets"),
    "bad-secret-name": ({"appwrite": {"existingSecret": "Not_A_Name"}}, "existingSecret"),
    "endpoint-without-scheme": ({"appwrite": {"endpoint": "appwrite.local/v1"}}, "endpoint"),
    "bad-duration": ({"metrics": {"serviceMonitor": {"interval": "30 seconds"}}}, "interval"),
    "ratio-above-one": ({"metrics": {"prometheusRule": {"failureRatio": 5}}}, "failureRatio"),
    "enabled-as-string": ({"networkPolicy": {"enabled": "yes"}}, "enabled"),
    "label-value-not-string": (
        {"metrics": {"grafanaDashboard": {"labels": {"grafana_dashboard": 1}}}},
        "grafana_dashboard",
    ),
    "log-level-lowercase": ({"operator": {"logLevel": "debug"}}, "logLevel"),
    "settings-env-in-extra-env": (
        {"operator": {"extraEnv": [{"name": "MISTAKE_BATCH_SIZE", "value": "3"}]}},
        "extraEnv",
    ),
    "namespace-not-dns": ({"operator": {"watchNamespaces": ["School A"]}}, "watchNamespaces"),
    "port-out-of-range": ({"operator": {"metricsPort": 70000}}, "metricsPort"),
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_values_are_rejected_by_helm_template(helm_cli: Helm, name: str) -> None:
    values, needle = WRONG[name]
    result = helm_cli.template(helm_cli.values_file(f"wrong-{name}", values))
    assert result.returncode != 0, f"{name} was accepted"
    assert needle in result.stderr, result.stderr


def test_at_least_ten_wrong_files() -> None:
    assert len(WRONG) >= 10


@pytest.mark.parametrize("name", ["unknown-top-level-key", "batch-size-as-string", "job-cpu-as-number"])
def test_wrong_values_fail_helm_lint(helm_cli: Helm, name: str) -> None:
    values, _ = WRONG[name]
    result = helm_cli.run("lint", "--strict", str(CHART), "--values", str(helm_cli.values_file(f"lint-{name}", values)))
    assert result.returncode != 0


def test_inconsistent_backoff_is_rejected(helm_cli: Helm) -> None:
    """A rule the schema cannot express: the template fails with the settings model's own message."""
    values = {"settings": {"backoffBaseSeconds": 100, "backoffCapSeconds": 10}}
    result = helm_cli.template(helm_cli.values_file("backoff", values))
    assert result.returncode != 0
    assert "backoffCapSeconds must be at least" in result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_documented_examples_are_accepted(helm_cli: Helm, example: Path) -> None:
    result = helm_cli.template(example)
    assert result.returncode == 0, result.stderr


def test_examples_exist() -> None:
    assert {p.stem for p in EXAMPLES} >= {"local", "production", "all-namespaces"}
