"""What people see: kubectl columns, conditions and Events, kubectl wait, metrics, /queue/stats, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from operator_support import (
    MA,
    analysis,
    create_analyses,
    http_get,
    job_members,
    operator_argv,
    operator_env,
    wait_phases,
)
from prometheus_client.parser import text_string_to_metric_families

from mistake_testbed.appwrite.seed import seed_record
from mistake_testbed.appwrite.server import AppwriteTestServer
from mistake_testbed.kube import DevCluster

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_kubectl_shows_columns_conditions_and_events_and_wait_works(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, kubectl
) -> None:
    # a batch window long enough that `kubectl wait` starts before the analysis can finish
    env, _ = operator_env(dev_cluster, kube_namespace, max_batch_wait_seconds=1.0)
    start_operator(operator_argv(), env=env)
    body = analysis(kube_namespace, 7)
    name = body["metadata"]["name"]
    kubectl("apply", "-f", "-", input=json.dumps(body))
    waiter = kubectl.popen("wait", "--for=condition=Succeeded", f"ma/{name}", "--timeout=60s")
    out, err = waiter.communicate(timeout=90)
    assert waiter.returncode == 0, err
    assert "condition met" in out
    table = kubectl("get", "mistakeanalyses").stdout.splitlines()
    assert table[0].split() == ["NAME", "RECORD", "PHASE", "ATTEMPTS", "JOB", "SUBJECT", "AGE"]
    row = table[1].split()
    assert row[:4] == [name, "rec00007", "Succeeded", "1"]
    assert row[4].startswith("mab-")
    assert row[5] == "math"
    described = kubectl("describe", "ma", name).stdout
    for text in ("Conditions:", "Succeeded", "Ready", "Events:", "Queued"):
        assert text in described, described


def test_metrics_and_queue_stats_match_the_resources(
    dev_cluster: DevCluster, kube_namespace: str, start_operator
) -> None:
    ns = kube_namespace
    env, port = operator_env(dev_cluster, ns, batch_size=4, max_batch_wait_seconds=0.05)
    start_operator(operator_argv(), env=env)
    bodies = [analysis(ns, i) for i in range(10)] + [analysis(ns, 100 + i, images=0) for i in range(2)]
    create_analyses(dev_cluster, ns, bodies)
    wait_phases(dev_cluster, ns, lambda p: p["Succeeded"] == 10 and p["Failed"] == 2)
    assert http_get(port, "/healthz")[0] == 200
    assert http_get(port, "/readyz")[0] == 200
    status, text = http_get(port, "/queue/stats")
    assert status == 200
    assert json.loads(text) == {
        "total": 12,
        "pending": 0,
        "processing": 0,
        "completed": 10,
        "failed": 2,
        "cancelled": 0,
    }
    # the operator sees the last status writes through its watch a moment after the API has them
    key = ("mistake_analysis_resources", (("namespace", ns), ("phase", "Succeeded")))
    deadline = time.monotonic() + 15
    while (values := samples(http_get(port, "/metrics")[1])).get(key) != 10:
        assert time.monotonic() < deadline, f"the phase gauge never showed 10 Succeeded: {values.get(key)}"
        time.sleep(0.05)
    assert values[("mistake_analysis_resources", (("namespace", ns), ("phase", "Failed")))] == 2
    finished = {labels: v for (name, labels), v in values.items() if name == "mistake_analysis_finished_total"}
    assert finished[(("namespace", ns), ("outcome", "Succeeded"), ("reason", "Analysed"))] == 10
    assert finished[(("namespace", ns), ("outcome", "Failed"), ("reason", "NoImages"))] == 2
    jobs = len(job_members(dev_cluster, ns))
    assert values[("mistake_analysis_jobs_created_total", (("namespace", ns),))] == jobs
    assert values[("mistake_analysis_queue_wait_seconds_count", (("namespace", ns),))] == 10
    assert values[("mistake_analysis_llm_tokens_total", (("kind", "prompt"), ("model", "test-vision")))] == 10 * 900


def test_cli_requeues_a_finished_record_as_a_new_analysis(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, appwrite: AppwriteTestServer, tmp_path: Path
) -> None:
    seed_record(appwrite, ["f1"], record_id="again1", analysisStatus="failed", analysisError="x")
    env, _ = operator_env(dev_cluster, kube_namespace, appwrite=appwrite, max_batch_wait_seconds=0.05)
    start_operator(operator_argv(), env=env)
    cli_env = {**os.environ, **env, "KUBECONFIG": str(dev_cluster.kubeconfig), "HOME": str(tmp_path)}
    cli = [sys.executable, "-m", "mistake_operator.cli", "requeue", "--record", "again1", "--namespace", kube_namespace]
    result = subprocess.run(cli, env=cli_env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "1 re-queued, 0 failed" in result.stdout
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Succeeded"] == 1)
    (body,) = dev_cluster.list_objects(MA, kube_namespace)
    assert body["spec"]["source"]["origin"] == "cli"
    assert body["spec"]["record"]["documentId"] == "again1"
    assert (
        appwrite.document("mistake_records", "again1")["analysisStatus"] == "pending"
    )  # the fake worker writes nothing
