"""helm lint and helm template over the values matrix; every object validates against Kubernetes' schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from chart_support import CASES, CHART, EXAMPLES, NAMESPACE, RELEASE, Helm, Rendered

from mistake_api.constants import CRD_NAME
from mistake_operator import settings as settings_mod

pytestmark = pytest.mark.chart

ALL_CASES = [*CASES, *(f"example-{p.stem}" for p in EXAMPLES)]
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion is newer) and the newest the schemas know.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def _crd_validate(doc: dict[str, Any], schema: dict[str, Any]) -> None:
    """Validate without checking the schema itself: CRD schemas use Go regexes (`^(?i)...`) Python cannot compile."""
    jsonschema.validators.validator_for(schema)(schema).validate(doc)


MONITORING_SCHEMAS = {
    "ServiceMonitor": "servicemonitor_v1.json",
    "PodMonitor": "podmonitor_v1.json",
    "PrometheusRule": "prometheusrule_v1.json",
}


def test_helm_lint_strict(helm_cli: Helm) -> None:
    result = helm_cli.run("lint", "--strict", str(CHART), "--namespace", NAMESPACE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_helm_lint_strict_documented_examples(helm_cli: Helm, example: Path) -> None:
    result = helm_cli.run("lint", "--strict", str(CHART), "--values", str(example))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", ALL_CASES)
def test_every_object_validates_against_kubernetes(rendered: dict[str, Rendered], case: str) -> None:
    docs = rendered[case].docs
    assert docs, f"{case} rendered nothing"
    checked = 0
    for doc in docs:
        if doc["kind"] in MONITORING_SCHEMAS:
            continue
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("case", ["monitoring-on", "example-production"])
def test_monitoring_objects_validate_against_their_crd_schemas(
    rendered: dict[str, Rendered], shared_schemas: Path, case: str
) -> None:
    found = 0
    for doc in rendered[case].docs:
        schema_file = MONITORING_SCHEMAS.get(doc["kind"])
        if schema_file is None:
            continue
        schema = json.loads((shared_schemas / schema_file).read_text(encoding="utf-8"))
        _crd_validate(doc, schema)
        found += 1
    expected = {"monitoring-on": 3, "example-production": 2}[case]
    assert found == expected


def test_monitoring_schemas_reject_a_broken_object(rendered: dict[str, Rendered], shared_schemas: Path) -> None:
    """The CRD schemas really check something (a typo in a ServiceMonitor endpoint is caught)."""
    doc = json.loads(json.dumps(rendered["monitoring-on"].one("ServiceMonitor")))
    doc["spec"]["endpoints"][0]["interval"] = 30
    schema = json.loads((shared_schemas / MONITORING_SCHEMAS["ServiceMonitor"]).read_text(encoding="utf-8"))
    with pytest.raises(jsonschema.ValidationError):
        _crd_validate(doc, schema)


def test_monitoring_objects_follow_their_switches(rendered: dict[str, Rendered]) -> None:
    kinds_on = {d["kind"] for d in rendered["monitoring-on"].docs}
    kinds_off = {d["kind"] for d in rendered["monitoring-off"].docs}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds_on
    assert not {"ServiceMonitor", "PodMonitor", "PrometheusRule"} & kinds_off
    dashboards = [
        d for d in rendered["monitoring-off"].of_kind("ConfigMap") if d["metadata"]["name"].endswith("dashboard")
    ]
    assert dashboards == []
    dashboard = rendered["monitoring-on"].one("ConfigMap", "-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["namespace"] == "monitoring"
    assert json.loads(dashboard["data"]["mistake-analyzer.json"])["uid"] == "mistake-analyzer"


def test_crd_is_the_generated_one(rendered: dict[str, Rendered]) -> None:
    crd = rendered["defaults"].one("CustomResourceDefinition")
    assert crd["metadata"]["name"] == CRD_NAME
    on_disk = yaml.safe_load((CHART / "crds" / f"{CRD_NAME}.yaml").read_text(encoding="utf-8"))
    assert crd == on_disk


def _container(case: Rendered) -> dict[str, Any]:
    pod = case.one("Deployment")["spec"]["template"]["spec"]
    containers: list[dict[str, Any]] = pod["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("case", ALL_CASES)
def test_operator_pod_is_restricted_and_probed(rendered: dict[str, Rendered], case: str) -> None:
    deployment = rendered[case].one("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(rendered[case])
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["spec"]["replicas"] in (0, 1)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["runAsNonRoot"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["command"] == ["python", "-m", "mistake_operator"]
    assert {"requests", "limits"} <= container["resources"].keys()


@pytest.mark.parametrize("case", ALL_CASES)
def test_no_literal_secret_in_any_template(rendered: dict[str, Rendered], case: str) -> None:
    """Keys only arrive through secretKeyRef/envFrom; the only Secret rendered is the SA token stub (no data)."""
    for secret in rendered[case].of_kind("Secret"):
        assert secret["type"] == "kubernetes.io/service-account-token"
        assert "data" not in secret
        assert "stringData" not in secret
    env = {e["name"]: e for e in _container(rendered[case]).get("env", [])}
    if "MISTAKE_APPWRITE__API_KEY" in env:
        assert "value" not in env["MISTAKE_APPWRITE__API_KEY"]
        assert "secretKeyRef" in env["MISTAKE_APPWRITE__API_KEY"]["valueFrom"]


def test_existing_secret_is_injected(rendered: dict[str, Rendered]) -> None:
    env = {e["name"]: e for e in _container(rendered["existing-secrets"])["env"]}
    assert env["MISTAKE_APPWRITE__API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "appwrite-operator",
        "key": "api-key",
    }
    assert "MISTAKE_APPWRITE__API_KEY" not in {e["name"] for e in _container(rendered["defaults"])["env"]}


def _settings_file(case: Rendered, tmp_path: Path) -> Path:
    text = case.one("ConfigMap", "-settings")["data"]["settings.yaml"]
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", ALL_CASES)
def test_settings_configmap_loads_through_the_operator_model(
    rendered: dict[str, Rendered], case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("MISTAKE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MISTAKE_SETTINGS_FILE", str(_settings_file(rendered[case], tmp_path)))
    loaded = settings_mod.load()
    values = rendered[case].values
    chart_settings = {**yaml.safe_load((CHART / "values.yaml").read_text())["settings"], **values.get("settings", {})}
    assert loaded.batch_size == chart_settings["batchSize"]
    assert loaded.max_active_jobs == chart_settings["maxActiveJobs"]
    assert loaded.max_inflight_requests == chart_settings.get("maxInflightRequests")
    assert loaded.job.service_account == f"{RELEASE}-mistake-analyzer-job"
    assert loaded.appwrite.api_key.get_secret_value() == ""  # never in the file
    container = _container(rendered[case])
    assert loaded.metrics_port == next(p["containerPort"] for p in container["ports"] if p["name"] == "metrics")
    assert loaded.health_port == next(p["containerPort"] for p in container["ports"] if p["name"] == "health")


def test_settings_carry_the_job_specifics(
    rendered: dict[str, Rendered], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTAKE_SETTINGS_FILE", str(_settings_file(rendered["custom-resources"], tmp_path)))
    loaded = settings_mod.load()
    assert loaded.job.image == "registry.test/worker:1.2.3"
    assert loaded.job.resources["limits"] == {"cpu": "4", "memory": "4Gi"}
    assert loaded.job.env == {"LLM_MODEL": "qwen-vl-max", "WORKER_LOG_LEVEL": "DEBUG"}
    assert loaded.job.active_deadline_seconds == 1200000
    assert loaded.job.ttl_seconds_after_finished == 2000000
    assert loaded.job.priority_class_name == "batch-low"
    assert loaded.finished_ttl_seconds == 3000000
    assert loaded.sweeper.enabled is False
    assert loaded.namespaces == [NAMESPACE]
    monkeypatch.setenv("MISTAKE_SETTINGS_FILE", str(_settings_file(rendered["existing-secrets"], tmp_path)))
    loaded = settings_mod.load()
    assert [(e.secret, e.config_map) for e in loaded.job.env_from] == [
        ("worker-keys", None),
        ("llm-keys", None),
        (None, "worker-plain"),
    ]
    assert loaded.job.image_pull_secrets == ["regcred"]
    monkeypatch.setenv("MISTAKE_SETTINGS_FILE", str(_settings_file(rendered["watch-namespaces"], tmp_path)))
    assert settings_mod.load().namespaces == ["school-a", "school-b"]
    monkeypatch.setenv("MISTAKE_SETTINGS_FILE", str(_settings_file(rendered["all-namespaces"], tmp_path)))
    assert settings_mod.load().namespaces == ["*"]


def test_settings_change_restarts_the_operator(rendered: dict[str, Rendered]) -> None:
    def checksum(case: str) -> str:
        annotations = rendered[case].one("Deployment")["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/settings"]
        return value

    assert checksum("defaults") != checksum("custom-resources")
    assert checksum("defaults") == checksum("monitoring-off")


def test_images_and_digests(rendered: dict[str, Rendered]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert _container(rendered["defaults"])["image"] == f"mistake-analyzer-operator:{chart['appVersion']}"
    assert _container(rendered["custom-resources"])["image"] == "registry.test/op@sha256:" + "a" * 64


def test_watch_namespaces_get_roles_and_job_accounts(rendered: dict[str, Rendered]) -> None:
    case = rendered["watch-namespaces"]
    for kind in ("Role", "RoleBinding"):
        namespaces = sorted(
            {d["metadata"]["namespace"] for d in case.of_kind(kind) if "trigger" not in d["metadata"]["name"]}
        )
        assert namespaces == ["school-a", "school-b"]
    job_accounts = [d for d in case.of_kind("ServiceAccount") if d["metadata"]["name"].endswith("-job")]
    assert sorted(d["metadata"]["namespace"] for d in job_accounts) == ["school-a", "school-b"]


def test_chart_version_is_semver() -> None:
    import re

    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"]


def test_kubernetes_validation_rejects_a_broken_object(rendered: dict[str, Rendered]) -> None:
    """The validator is strict: an unknown field in the pod spec is an error, not a silent drop."""
    deployment = json.loads(json.dumps(rendered["defaults"].one("Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)
