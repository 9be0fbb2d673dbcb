"""`helm install` into the dev cluster, and the operator the chart configures starts there."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from chart_support import CHART

from mistake_api.constants import CRD_NAME, PLURAL
from mistake_testbed.fixtures.kube import StartOperator, ToolRunner

pytestmark = [pytest.mark.chart, pytest.mark.integration]

RELEASE = "mistake-analyzer"


def test_chart_installs_and_its_operator_starts(
    helm: ToolRunner, kubectl: ToolRunner, kube_namespace: str, start_operator: StartOperator, tmp_path: Path
) -> None:
    helm(
        "install", RELEASE, str(CHART),
        "--set", "appwrite.existingSecret=appwrite-keys",
        "--set", "job.envFromSecrets={worker-keys}",
        "--set", "trigger.createTokenSecret=false",
        timeout=120,
    )  # fmt: skip
    assert "deployed" in helm("status", RELEASE).stdout

    # The CRD is served: the API answers for the resource, and kubectl knows its short name.
    assert CRD_NAME in kubectl("get", "crd", "-o", "name", namespace=None).stdout
    assert kubectl("get", "ma", "-o", "json").returncode == 0

    names = set(kubectl("get", "sa,role,rolebinding,cm,svc,deploy", "-o", "name").stdout.split())
    for component in ("operator", "job", "trigger"):
        assert f"serviceaccount/{RELEASE}-{component}" in names
        assert f"role.rbac.authorization.k8s.io/{RELEASE}-{component}" in names
        assert f"rolebinding.rbac.authorization.k8s.io/{RELEASE}-{component}" in names
    assert f"deployment.apps/{RELEASE}-operator" in names
    assert f"service/{RELEASE}-metrics" in names
    trigger_role = json.loads(kubectl("get", "role", f"{RELEASE}-trigger", "-o", "json").stdout)
    assert trigger_role["rules"] == [{"apiGroups": ["mistakes.dev"], "resources": [PLURAL], "verbs": ["create", "get"]}]
    deployment = json.loads(kubectl("get", "deploy", f"{RELEASE}-operator", "-o", "json").stdout)
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == f"{RELEASE}-operator"

    # Run the operator with the settings file the chart installed (as the pod would mount it).
    settings = json.loads(kubectl("get", "cm", f"{RELEASE}-settings", "-o", "json").stdout)["data"]["settings.yaml"]
    assert yaml.safe_load(settings)["namespaces"] == [kube_namespace]
    settings_file = tmp_path / "settings.yaml"
    settings_file.write_text(settings, encoding="utf-8")
    operator = start_operator(
        [sys.executable, "-m", "mistake_operator"],
        env={
            "MISTAKE_SETTINGS_FILE": str(settings_file),
            "POD_NAMESPACE": kube_namespace,
            # Loopback, ephemeral ports, and no Appwrite to sweep in this test.
            "MISTAKE_BIND_ADDRESS": "127.0.0.1",
            "MISTAKE_METRICS_PORT": "0",
            "MISTAKE_HEALTH_PORT": "0",
            "MISTAKE_SWEEPER__ENABLED": "false",
        },
        watch=PLURAL,
    )
    assert operator.process.poll() is None

    helm("uninstall", RELEASE)
    assert kubectl("get", "deploy,role", "-o", "name").stdout.split() == []
