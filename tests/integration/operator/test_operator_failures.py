"""Failures end in named reasons on the resource and in Appwrite; retryable ones are retried."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from operator_support import MA, analysis, create_analyses, operator_argv, operator_env, wait_phases

from mistake_api import Origin, analysis_from_record
from mistake_testbed.appwrite.seed import seed_record
from mistake_testbed.appwrite.server import AppwriteTestServer
from mistake_testbed.kube import DevCluster

pytestmark = pytest.mark.integration
FAST_RETRY = {"backoff_base_seconds": 0.1, "backoff_cap_seconds": 0.3, "max_batch_wait_seconds": 0.05}


def from_record(ns: str, doc: dict[str, Any]) -> dict[str, Any]:
    return analysis_from_record(
        doc, database_id="main", collection_id="mistake_records", namespace=ns, origin=Origin.TRIGGER
    )


def statuses(cluster: DevCluster, ns: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o.get("status") or {} for o in cluster.list_objects(MA, ns)}


def test_killed_pod_means_a_retry_that_succeeds(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    env, _ = operator_env(
        dev_cluster, kube_namespace, worker_mode="hang-once", ledger=ledger, batch_size=3, **FAST_RETRY
    )
    start_operator(operator_argv(), env=env)
    create_analyses(dev_cluster, kube_namespace, [analysis(kube_namespace, i) for i in range(3)])
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Running"] == 1)
    hung = Path(str(ledger) + ".hung")
    dev_cluster.wait_for(lambda _: hung.exists(), what="the first pod to hang")
    pods = dev_cluster.wait_for(
        lambda _: [p for ns, p in dev_cluster.controller.running_pods() if ns == kube_namespace]
    )
    assert dev_cluster.kill_pod(kube_namespace, pods[0])
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Succeeded"] == 3)
    attempts = sorted(s["attempts"] for s in statuses(dev_cluster, kube_namespace).values())
    assert attempts == [1, 1, 2]  # only the analysis the killed pod held needed a second attempt
    for status in statuses(dev_cluster, kube_namespace).values():
        assert any(c["type"] == "Succeeded" and c["status"] == "True" for c in status["conditions"])
    assert len(ledger.read_text().splitlines()) == 3


def test_permanent_failure_fails_at_once_and_tells_appwrite(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, appwrite: AppwriteTestServer
) -> None:
    doc = seed_record(appwrite, ["f1"], record_id="permanent1")
    env, _ = operator_env(dev_cluster, kube_namespace, worker_mode="permanent", appwrite=appwrite, **FAST_RETRY)
    start_operator(operator_argv(), env=env)
    create_analyses(dev_cluster, kube_namespace, [from_record(kube_namespace, doc)])
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Failed"] == 1)
    (status,) = statuses(dev_cluster, kube_namespace).values()
    assert status["error"]["reason"] == "ImageCorrupt"
    assert status["attempts"] == 1
    appwrite.wait_for(lambda: appwrite.document("mistake_records", "permanent1")["analysisStatus"] == "failed")
    assert "[ImageCorrupt]" in appwrite.document("mistake_records", "permanent1")["analysisError"]


def test_retryable_failure_past_max_attempts_fails_with_the_reason(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, appwrite: AppwriteTestServer
) -> None:
    doc = seed_record(appwrite, ["f1"], record_id="flaky1")
    env, _ = operator_env(
        dev_cluster, kube_namespace, worker_mode="retryable", appwrite=appwrite, max_attempts=3, **FAST_RETRY
    )
    start_operator(operator_argv(), env=env)
    create_analyses(dev_cluster, kube_namespace, [from_record(kube_namespace, doc)])
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Failed"] == 1)
    (status,) = statuses(dev_cluster, kube_namespace).values()
    assert status["attempts"] == 3
    assert status["error"]["reason"] == "RetriesExhausted"
    assert "LLMRateLimited" in status["error"]["message"]
    appwrite.wait_for(lambda: bool(appwrite.document("mistake_records", "flaky1").get("analysisError")))
    record = appwrite.document("mistake_records", "flaky1")
    assert record["analysisStatus"] == "failed"
    assert "[RetriesExhausted]" in record["analysisError"]


def test_invalid_spec_fails_at_intake_with_a_named_reason(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, appwrite: AppwriteTestServer
) -> None:
    no_images = seed_record(appwrite, [], record_id="noimages")
    too_many = seed_record(appwrite, [f"f{i}" for i in range(12)], record_id="toomany")
    env, _ = operator_env(dev_cluster, kube_namespace, appwrite=appwrite, **FAST_RETRY)
    start_operator(operator_argv(), env=env)
    create_analyses(
        dev_cluster, kube_namespace, [from_record(kube_namespace, no_images), from_record(kube_namespace, too_many)]
    )
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Failed"] == 2)
    reasons = sorted(s["error"]["reason"] for s in statuses(dev_cluster, kube_namespace).values())
    assert reasons == ["NoImages", "TooManyImages"]
    for rid, reason in (("noimages", "NoImages"), ("toomany", "TooManyImages")):
        appwrite.wait_for(lambda rid=rid: appwrite.document("mistake_records", rid)["analysisStatus"] == "failed")
        assert f"[{reason}]" in appwrite.document("mistake_records", rid)["analysisError"]


def test_newer_revision_supersedes_and_cancel_cancels(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, appwrite: AppwriteTestServer
) -> None:
    ns = kube_namespace
    older = analysis(ns, 1, revision="2026-12-04T10:00:00.000+00:00")
    newer = analysis(ns, 1, revision="2026-12-04T10:05:00.000+00:00")
    cancelled = analysis(ns, 2)
    cancelled["spec"]["cancel"] = True
    create_analyses(dev_cluster, ns, [older, newer, cancelled])
    env, _ = operator_env(dev_cluster, ns, **FAST_RETRY)
    start_operator(operator_argv(), env=env)
    wait_phases(dev_cluster, ns, lambda p: p["Succeeded"] == 1 and p["Cancelled"] == 2)
    st = statuses(dev_cluster, ns)
    assert st[newer["metadata"]["name"]]["phase"] == "Succeeded"
    assert st[older["metadata"]["name"]]["error"]["reason"] == "Superseded"
    assert st[cancelled["metadata"]["name"]]["error"]["reason"] == "Cancelled"


def test_sweeper_recovers_a_record_whose_trigger_never_fired(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, appwrite: AppwriteTestServer
) -> None:
    seed_record(appwrite, ["f1"], record_id="forgotten1", analysisStatus="pending")
    seed_record(appwrite, ["f2"], record_id="finished1", analysisStatus="completed")
    env, _ = operator_env(
        dev_cluster,
        kube_namespace,
        appwrite=appwrite,
        sweeper__grace_seconds="0.05",
        sweeper__interval_seconds="0.2",
        **FAST_RETRY,
    )
    start_operator(operator_argv(), env=env)
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Succeeded"] == 1)
    (body,) = dev_cluster.list_objects(MA, kube_namespace)
    assert body["spec"]["record"]["documentId"] == "forgotten1"
    assert body["spec"]["source"]["origin"] == "sweeper"


def test_finished_analyses_are_deleted_after_their_ttl(
    dev_cluster: DevCluster, kube_namespace: str, start_operator
) -> None:
    env, _ = operator_env(dev_cluster, kube_namespace, finished_ttl_seconds=0.5, **FAST_RETRY)
    start_operator(operator_argv(), env=env)
    create_analyses(dev_cluster, kube_namespace, [analysis(kube_namespace, i) for i in range(3)])
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Succeeded"] == 3)
    wait_phases(dev_cluster, kube_namespace, lambda p: sum(p.values()) == 0)
