"""Chaos on the whole stack: the operator SIGKILLed twice, a Job pod killed, Appwrite answering 503 for five
seconds, an LLM 429 storm, the Kubernetes API away while events arrive. After each: nothing lost, nothing
duplicated, Appwrite and the analyses agree, and so do the operator's metrics."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from e2e_support import settle_and_check

from mistake_api import constants as c
from mistake_testbed.stack import Stack, metric_sum, scrape, wait_until
from mistake_testbed.stack.core import TERMINAL_PHASES, Phase

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def finished(stack: Stack) -> int:
    return sum(
        1 for o in stack.analyses() if Phase((o.get("status") or {}).get("phase") or "Queued") in TERMINAL_PHASES
    )


def running_pod(stack: Stack) -> str | None:
    assert stack.cluster is not None
    for pod in stack.cluster.list_objects(("", "pods"), stack.namespace):
        if (pod.get("status") or {}).get("phase") == "Running":
            return str(pod["metadata"]["name"])
    return None


def any_running(stack: Stack) -> bool:
    return any((o.get("status") or {}).get("phase") == "Running" for o in stack.analyses())


@pytest.mark.operator_settings({"batch_size": 10, "max_active_jobs": 3})
def test_operator_sigkilled_twice_mid_run(scenario: Stack) -> None:
    stack = scenario
    assert stack.llm is not None
    assert stack.operator is not None
    stack.llm.add_fault(kind="latency", delay=0.4)  # long enough a run that both kills land inside it
    stack.create_records(60)
    for threshold in (10, 30):
        wait_until(lambda t=threshold: finished(stack) >= t, 90, f"{threshold} analyses to finish")  # type: ignore[misc]
        assert finished(stack) < 60, "the run ended before the operator could be killed"
        stack.restart_operator(kill=True)
    settle_and_check(stack, restarted=True)
    assert stack.operator.starts == 3


def test_a_job_pod_killed_mid_batch(scenario: Stack) -> None:
    stack = scenario
    assert stack.llm is not None
    assert stack.cluster is not None
    stack.llm.add_fault(kind="latency", delay=1.0)  # the pod is busy with LLM calls when it dies
    stack.create_records(40)
    wait_until(lambda: any_running(stack) and running_pod(stack) is not None, 60, "a worker pod analysing")
    pod = running_pod(stack)
    assert pod is not None
    assert stack.cluster.kill_pod(stack.namespace, pod)
    # A kill between a record's `completed` write and its profile increment loses that count (docs/worker.md).
    settle_and_check(stack, exact_stats=False)
    ends = [e for e in stack.cluster.history() if e.get("pod") == pod and e["event"] == "pod-failed"]
    assert [e["exit_code"] for e in ends] == [137]


def test_appwrite_503_for_five_seconds(scenario: Stack) -> None:
    stack = scenario
    assert stack.llm is not None
    assert stack.appwrite is not None
    stack.llm.add_fault(kind="latency", delay=0.5)
    stack.create_records(40)
    wait_until(lambda: any_running(stack), 60, "an analysis to start")
    stack.appwrite.fail(503, duration=5.0)
    # A profile write or increment still failing when the retries run out is logged and lost (never doubled).
    settle_and_check(stack, exact_stats=False)
    hits = [r for r in stack.appwrite.requests if r.status == 503 and r.fault]
    assert hits, "the 503 window never hit a request"
    assert stack.summary().record_status == Counter({"completed": 40})


def test_llm_429_storm_with_retry_after(scenario: Stack) -> None:
    stack = scenario
    assert stack.llm is not None
    # The first 60 calls (more than the first batches' records times the SDK's retries) answer 429, Retry-After 1.
    stack.llm.add_fault(kind="rate_limit", retry_after=1, times=60)
    stack.create_records(40)
    settle_and_check(stack)
    summary = stack.summary()
    assert summary.record_status == Counter({"completed": 40})
    assert stack.llm.stats.summary()["by_status"]["429"] == 60
    # Retried calls are visible on the server, never double-counted in the analyses' results.
    assert summary.llm_calls > summary.result_llm_calls == 40


def test_kubernetes_api_down_while_events_arrive(scenario: Stack) -> None:
    stack = scenario
    assert stack.proxy is not None
    assert stack.appwrite is not None
    assert stack.operator is not None
    stack.proxy.down()
    created = stack.create_records(30)
    executions = stack.appwrite.wait_for_executions(30, timeout=30)
    outcomes = Counter(json.loads(e.response_body)["reason"] for e in executions)
    assert outcomes == Counter({"k8s_connection_error": 30})
    assert stack.analyses() == []
    stack.proxy.up()
    settle_and_check(stack)
    origins = Counter(o["metadata"]["labels"].get(c.LABEL_ORIGIN) for o in stack.analyses())
    assert origins == Counter({"sweeper": len(created)})
    samples = scrape(stack.operator.metrics_text())
    recovered = metric_sum(samples, "mistake_analysis_sweeper_recoveries_total", namespace=stack.namespace)
    assert recovered == len(created)
