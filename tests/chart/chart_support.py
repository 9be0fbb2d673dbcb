"""Fixtures for the chart tests: the real helm binary, and every values case rendered once per session."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from mistake_testbed.fixtures.paths import ROOT

CHART = ROOT / "charts" / "mistake-analyzer"
RELEASE = "ma"
NAMESPACE = "mistake-analyzer"

# The values matrix: each case is rendered once and shared by every test that looks at manifests.
CASES: dict[str, dict[str, Any]] = {
    "defaults": {},
    "monitoring-on": {
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
            "podMonitor": {"enabled": True},
            "prometheusRule": {"enabled": True, "additionalAlertLabels": {"team": "learning"}},
            "grafanaDashboard": {"enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "Apps"}},
        }
    },
    "monitoring-off": {
        "metrics": {
            "serviceMonitor": {"enabled": False},
            "podMonitor": {"enabled": False},
            "prometheusRule": {"enabled": False},
            "grafanaDashboard": {"enabled": False},
        }
    },
    "network-policy": {
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}],
            "restrictEgress": True,
            "egress": [
                {"to": [{"ipBlock": {"cidr": "10.0.0.1/32"}}], "ports": [{"port": 443, "protocol": "TCP"}]},
                {"ports": [{"port": 443, "protocol": "TCP"}]},
            ],
        }
    },
    "existing-secrets": {
        "appwrite": {"existingSecret": "appwrite-operator", "apiKeySecretKey": "api-key", "projectId": "p1"},
        "job": {"envFromSecrets": ["worker-keys", "llm-keys"], "envFromConfigMaps": ["worker-plain"]},
        "imagePullSecrets": ["regcred"],
    },
    "custom-resources": {
        "operator": {
            "image": {"repository": "registry.test/op", "digest": "sha256:" + "a" * 64},
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": 2, "memory": "1Gi"}},
            "nodeSelector": {"pool": "system"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "priorityClassName": "system-cluster-critical",
            "extraEnv": [{"name": "TZ", "value": "UTC"}],
            "extraArgs": ["--verbose"],
            "podDisruptionBudget": {"enabled": True},
            "podAnnotations": {"example.test/a": "b"},
        },
        "job": {
            "image": {"repository": "registry.test/worker", "tag": "1.2.3"},
            "resources": {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}},
            "env": {"LLM_MODEL": "qwen-vl-max", "WORKER_LOG_LEVEL": "DEBUG"},
            "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "spot", "operator": "Exists"}],
            "priorityClassName": "batch-low",
            "extraLabels": {"cost-center": "ml"},
            "activeDeadlineSeconds": 1200000,
            "ttlSecondsAfterFinished": 2000000,
        },
        "settings": {
            "batchSize": 100,
            "maxActiveJobs": 50,
            "maxInflightRequests": 400,
            "finishedTtlSeconds": 3000000,
            "maxBatchWaitSeconds": 0.5,
            "sweeper": {"enabled": False},
        },
        "commonLabels": {"team": "learning"},
    },
    "all-namespaces": {"operator": {"watchAllNamespaces": True}},
    "watch-namespaces": {"operator": {"watchNamespaces": ["school-a", "school-b"]}},
    "no-trigger": {"trigger": {"enabled": False}, "rbac": {"create": True}},
}
EXAMPLES = sorted((CHART / "examples").glob("*.yaml"))


@dataclass(frozen=True)
class Rendered:
    case: str
    values: Mapping[str, Any]
    docs: list[dict[str, Any]] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind: str, name_suffix: str = "") -> dict[str, Any]:
        found = [d for d in self.of_kind(kind) if d["metadata"]["name"].endswith(name_suffix)]
        assert len(found) == 1, f"{self.case}: expected one {kind} *{name_suffix}, got {len(found)}"
        return found[0]


def _find_helm() -> str | None:
    venv_bin = ROOT / ".venv" / "bin" / "helm"
    if venv_bin.is_file() and os.access(venv_bin, os.X_OK):
        return str(venv_bin)
    return shutil.which("helm")


@pytest.fixture(scope="session")
def helm_binary() -> str:
    path = _find_helm()
    if path is None:
        pytest.skip("helm not found: run `python -m mistake_testbed.kubetools install --dest .venv/bin` (./dev setup)")
    return path


@dataclass(frozen=True)
class Helm:
    binary: str
    workdir: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HELM_CACHE_HOME": str(self.workdir / "cache"), "HELM_CONFIG_HOME": str(self.workdir)}
        env.pop("KUBECONFIG", None)
        return subprocess.run([self.binary, *args], capture_output=True, text=True, check=False, env=env, timeout=120)

    def values_file(self, name: str, values: Mapping[str, Any]) -> Path:
        path = self.workdir / f"{name}.values.yaml"
        path.write_text(yaml.safe_dump(dict(values)), encoding="utf-8")
        return path

    def template(self, values_file: Path | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
        args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds", *extra]
        if values_file is not None:
            args += ["--values", str(values_file)]
        return self.run(*args)


@pytest.fixture(scope="session")
def helm_cli(helm_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary, tmp_path_factory.mktemp("helm"))


def _render(helm_cli: Helm, name: str, values_file: Path, values: Mapping[str, Any]) -> Rendered:
    result = helm_cli.template(values_file)
    assert result.returncode == 0, f"helm template failed for {name}:\n{result.stderr}"
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return Rendered(name, values, docs)


@pytest.fixture(scope="session")
def rendered(helm_cli: Helm) -> dict[str, Rendered]:
    """Every matrix case and every documented example, rendered once."""
    out: dict[str, Rendered] = {}
    for name, values in CASES.items():
        out[name] = _render(helm_cli, name, helm_cli.values_file(name, values), values)
    for path in EXAMPLES:
        name = f"example-{path.stem}"
        out[name] = _render(helm_cli, name, path, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    return out


@pytest.fixture(scope="session")
def rendered_dir(rendered: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered cases as files (one per case), for tools that read manifests from disk."""
    root = tmp_path_factory.mktemp("rendered")
    for name, case in rendered.items():
        (root / f"{name}.yaml").write_text(yaml.safe_dump_all(case.docs, sort_keys=False), encoding="utf-8")
    return root


def rule_groups(case: Rendered) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = case.one("PrometheusRule")["spec"]["groups"]
    return groups


@pytest.fixture(scope="session")
def alert_rules_file(rendered: dict[str, Rendered], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The rendered PrometheusRule's groups (default thresholds) as a plain Prometheus rules file."""
    path = tmp_path_factory.mktemp("rules") / "alerts.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(rendered["monitoring-on"])}, sort_keys=False))
    return path
