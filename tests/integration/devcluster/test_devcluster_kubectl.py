"""Contract tests through the real kubectl and helm binaries (installed by ./dev setup)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from devcluster_support import GROUP, PLURAL, VERSION, analysis

from mistake_testbed.fixtures.kube import CRD_DIR, ToolRunner
from mistake_testbed.kube import DevCluster

pytestmark = pytest.mark.integration

MA = (GROUP, PLURAL)


def test_apply_registers_a_crd_without_flags(kubectl: ToolRunner, tmp_path: Path) -> None:
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "gadgets.kubectl.example.dev"},
        "spec": {
            "group": "kubectl.example.dev",
            "scope": "Namespaced",
            "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "shortNames": ["gd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }
    kubectl("apply", "-f", "-", input=yaml.safe_dump(crd))
    try:
        kubectl("wait", "--for=condition=Established", "crd/gadgets.kubectl.example.dev", "--timeout=20s")
        gadget = {"apiVersion": "kubectl.example.dev/v1", "kind": "Gadget", "metadata": {"name": "g1"}, "spec": {}}
        kubectl("apply", "-f", "-", input=yaml.safe_dump(gadget))
        assert kubectl("get", "gd", "-o", "name").stdout.split() == ["gadget.kubectl.example.dev/g1"]
    finally:
        kubectl("delete", "crd", "gadgets.kubectl.example.dev")


def test_get_mistakeanalyses_prints_printer_columns(
    kubectl: ToolRunner, dev_cluster: DevCluster, kube_namespace: str
) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(analysis("col")))
    status = {"phase": "Scheduled", "attempts": 1, "jobName": "batch-1", "result": {"subject": "math"}}
    dev_cluster.call(lambda: dev_cluster.emu.patch_status(MA, kube_namespace, "col", status))
    lines = kubectl("get", "mistakeanalyses").stdout.splitlines()
    assert lines[0].split() == ["NAME", "RECORD", "PHASE", "ATTEMPTS", "JOB", "SUBJECT", "AGE"]
    assert lines[1].split()[:6] == ["col", "doc-col", "Scheduled", "1", "batch-1", "math"]
    wide = kubectl("get", "ma", "-o", "wide").stdout.splitlines()[0].split()
    assert "PRIORITY" in wide


def test_kubectl_wait_returns_when_condition_is_set(
    kubectl: ToolRunner, dev_cluster: DevCluster, kube_namespace: str
) -> None:
    kubectl("apply", "-f", "-", input=yaml.safe_dump(analysis("waited")))
    watching = threading.Event()

    def listener(request: kmock.Request) -> None:
        if request.action == kmock.action.WATCH and request.namespace == kube_namespace:
            watching.set()

    emu = dev_cluster.emu
    dev_cluster.call(lambda: emu.request_listeners.append(listener))
    try:
        waiter = kubectl.popen("wait", "--for=condition=Succeeded", "ma/waited", "--timeout=60s")
        assert watching.wait(30), "kubectl wait never watched"
        assert waiter.poll() is None  # still waiting: the condition is not there yet
        condition = {
            "type": "Succeeded",
            "status": "True",
            "reason": "Analysed",
            "message": "",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        dev_cluster.call(
            lambda: emu.patch_status(MA, kube_namespace, "waited", {"phase": "Succeeded", "conditions": [condition]})
        )
        out, err = waiter.communicate(timeout=60)
    finally:
        dev_cluster.call(lambda: emu.request_listeners.remove(listener))
    assert waiter.returncode == 0, err
    assert "condition met" in out


def test_invalid_analysis_is_rejected_by_kubectl(kubectl: ToolRunner) -> None:
    result = kubectl("apply", "-f", "-", input=yaml.safe_dump(analysis("bad", priority="high")), check=False)
    assert result.returncode != 0
    assert "spec.priority" in result.stderr
    assert "Invalid" in result.stderr or "invalid" in result.stderr


def test_everyday_kubectl_verbs(kubectl: ToolRunner, kube_namespace: str) -> None:
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "hello", "labels": {"batch": "b1"}},
        "spec": {
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "any", "command": [sys.executable, "-c", "print('hi')"]}],
                }
            }
        },
    }
    kubectl("apply", "-f", "-", input=json.dumps(job))
    kubectl("wait", "--for=condition=Complete", "job/hello", "--timeout=30s")
    assert kubectl("get", "jobs", "-l", "batch=b1", "-o", "name").stdout.split() == ["job.batch/hello"]
    assert kubectl("get", "jobs", "-l", "batch=b2", "-o", "name").stdout.split() == []
    assert "hi" in kubectl("logs", "job/hello").stdout
    kubectl("create", "configmap", "cfg", "--from-literal=a=b")  # protobuf body from kubectl's typed client
    kubectl("label", "configmap", "cfg", "tier=x")
    kubectl("annotate", "configmap", "cfg", "note=y")
    got: dict[str, Any] = json.loads(kubectl("get", "configmap", "cfg", "-o", "json").stdout)
    assert got["metadata"]["labels"]["tier"] == "x"
    assert got["metadata"]["annotations"]["note"] == "y"
    assert got["data"] == {"a": "b"}
    kubectl("apply", "-f", "-", input=yaml.safe_dump(analysis("patched")))
    kubectl("patch", "ma", "patched", "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Queued"}}')
    assert kubectl("get", "ma", "patched", "-o", "jsonpath={.status.phase}").stdout == "Queued"
    kubectl("delete", "ma", "patched")
    assert "NotFound" in kubectl("get", "ma", "patched", check=False).stderr
    assert kube_namespace in kubectl("get", "ns", "-o", "name").stdout


def test_helm_install_upgrade_uninstall(helm: ToolRunner, kubectl: ToolRunner, tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: probe\nversion: 0.1.0\n")
    docs = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "keys"}, "stringData": {"k": "v"}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "runner"}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
            "subjects": [{"kind": "ServiceAccount", "name": "runner"}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "app"},
            "spec": {
                "selector": {"matchLabels": {"app": "x"}},
                "template": {
                    "metadata": {"labels": {"app": "x"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        },
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "app"}, "spec": {"ports": [{"port": 80}]}},
    ]
    (chart / "templates" / "all.yaml").write_text(yaml.safe_dump_all(docs))
    helm("install", "rel", str(chart))
    assert "deployed" in helm("list").stdout
    names = kubectl("get", "cm,secret,sa,role,rolebinding,deploy,svc", "-o", "name").stdout.split()
    for expected in (
        "configmap/settings",
        "secret/keys",
        "serviceaccount/runner",
        "deployment.apps/app",
        "service/app",
    ):
        assert expected in names
    assert any(n.startswith("secret/sh.helm.release.v1.rel.") for n in names)
    helm("upgrade", "rel", str(chart))
    assert "2" in helm("history", "rel", "-o", "json").stdout
    helm("uninstall", "rel")
    assert kubectl("get", "cm,deploy", "-o", "name").stdout.split() == []


def test_project_crd_files_load(dev_cluster: DevCluster) -> None:
    if not any(CRD_DIR.glob("*.yaml")):
        pytest.skip("the chart has no CRDs yet")
    rdef = dev_cluster.call(lambda: dev_cluster.emu.resource_def(GROUP, VERSION, PLURAL))
    assert rdef is not None
    assert rdef.shortnames == ["ma"]
    assert rdef.has_status
