"""Job manifests, settings validation and metric names."""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes_validate
import pytest

from mistake_api import constants as c
from mistake_operator import metrics
from mistake_operator.jobs import build_job, job_name_for
from mistake_operator.settings import SettingsError, load
from mistake_operator.state import AnalysisView

pytestmark = pytest.mark.unit


def members(n: int, attempts: int = 0) -> list[AnalysisView]:
    return [
        AnalysisView.from_body({"metadata": {"name": f"ma-{i}", "namespace": "ns"}, "status": {"attempts": attempts}})
        for i in range(n)
    ]


@pytest.mark.parametrize("version", ["1.30.0", kubernetes_validate.utils.latest_version()])
def test_job_is_valid_restricted_and_carries_its_members(version: str) -> None:
    settings = load(
        job={
            "env_from": [{"secret": "llm"}],
            "node_selector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Exists"}],
        }
    )
    group = members(3)
    job = build_job("ns", job_name_for(group), group, settings)
    kubernetes_validate.validate(job, version, strict=True)
    assert json.loads(job["metadata"]["annotations"][c.ANNOTATION_MEMBERS]) == ["ma-0", "ma-1", "ma-2"]
    pod = job["spec"]["template"]["spec"]
    ctr = pod["containers"][0]
    assert ctr["securityContext"]["readOnlyRootFilesystem"] is True
    assert ctr["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True
    env = {e["name"]: e for e in ctr["env"]}
    assert json.loads(env[c.ENV_BATCH_MEMBERS]["value"]) == ["ma-0", "ma-1", "ma-2"]
    assert env["MISTAKE_WORKER_CONCURRENCY"]["value"] == "3"
    assert ctr["envFrom"] == [{"secretRef": {"name": "llm"}}]
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [c.EXIT_PERMANENT]
    assert job["metadata"]["labels"][c.LABEL_BATCH] == job["metadata"]["name"]


def test_job_name_is_deterministic_and_changes_with_the_attempt() -> None:
    assert job_name_for(members(3)) == job_name_for(list(reversed(members(3))))
    assert job_name_for(members(3)) != job_name_for(members(3, attempts=1))


@pytest.mark.parametrize(
    ("env", "field"),
    [
        ({"MISTAKE_BATCH_SIZE": "0"}, "batch_size"),
        ({"MISTAKE_MAX_ACTIVE_JOBS": "many"}, "max_active_jobs"),
        ({"MISTAKE_BACKOFF_BASE_SECONDS": "100", "MISTAKE_BACKOFF_CAP_SECONDS": "10"}, "backoff_cap_seconds"),
        ({"MISTAKE_JOB__ACTIVE_DEADLINE_SECONDS": "5"}, "job.active_deadline_seconds"),
    ],
)
def test_invalid_settings_name_the_field(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], field: str) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError, match=field.split(".")[-1]):
        load()


def test_settings_file_is_read_with_camel_case_keys(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text(
        "batchSize: 7\nmaxActiveJobs: 2\nperPodConcurrency: 4\njob:\n  image: w:1\n  nodeSelector: {diskType: ssd}\n"
    )
    monkeypatch.setenv("MISTAKE_SETTINGS_FILE", str(path))
    monkeypatch.setenv("MISTAKE_MAX_ACTIVE_JOBS", "3")  # the environment wins over the file
    s = load()
    assert (s.batch_size, s.max_active_jobs, s.inflight_budget) == (7, 3, 12)
    assert s.job.node_selector == {"diskType": "ssd"}


def test_unknown_settings_key_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "settings.yaml"
    path.write_text("batchSise: 7\n")
    monkeypatch.setenv("MISTAKE_SETTINGS_FILE", str(path))
    with pytest.raises(SettingsError, match="batch_sise"):
        load()


def test_metric_names_are_prefixed_unique_and_in_base_units() -> None:
    names = [spec.name for spec in metrics.SPECS]
    assert len(names) == len(set(names))
    assert all(n.startswith("mistake_analysis_") for n in names)
    assert all(spec.name.endswith("_total") for spec in metrics.SPECS if spec.kind == "counter")
    assert not any(label in {"user", "userId", "record", "name"} for spec in metrics.SPECS for label in spec.labels)


def test_every_setting_is_documented() -> None:
    from mistake_operator.settings import Settings

    doc = (Path(__file__).resolve().parents[3] / "docs" / "operator.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        sub = field.annotation
        names = (
            [f"{name}.{s}" for s in sub.model_fields]
            if isinstance(sub, type) and hasattr(sub, "model_fields")
            else [name]
        )
        for path in names:
            assert f"| `{path}` |" in doc, f"docs/operator.md lacks {path}"
