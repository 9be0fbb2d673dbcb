"""Batching against the dev cluster: age trigger, priority order, the active-Job cap, one Job per analysis."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import requests
from operator_support import MA, analysis, create_analyses, job_members, operator_argv, operator_env, wait_phases

from mistake_testbed.kube import DevCluster

pytestmark = pytest.mark.integration


def test_age_flushes_a_partial_batch(dev_cluster: DevCluster, kube_namespace: str, start_operator) -> None:
    env, _ = operator_env(dev_cluster, kube_namespace, batch_size=50, max_batch_wait_seconds=0.3)
    start_operator(operator_argv(), env=env)
    create_analyses(dev_cluster, kube_namespace, [analysis(kube_namespace, i) for i in range(3)])
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Succeeded"] == 3)
    assert [len(m) for m in job_members(dev_cluster, kube_namespace).values()] == [3]


def test_highest_priority_goes_first(private_cluster: DevCluster, start_operator) -> None:
    ns = "prio"
    private_cluster.create_namespace(ns)
    bodies = [analysis(ns, i, priority=p) for i, p in enumerate([0, 5, 0, 9, 1, 9])]
    create_analyses(private_cluster, ns, bodies)  # all waiting before the operator starts
    env, _ = operator_env(private_cluster, ns, batch_size=2, max_batch_wait_seconds=0.1, max_active_jobs=1)
    start_operator(operator_argv(), env=env, cluster=private_cluster)
    wait_phases(private_cluster, ns, lambda p: p["Succeeded"] == 6)
    started = [e["job"] for e in private_cluster.history() if e["event"] == "pod-created"]
    members = job_members(private_cluster, ns)
    priority = {b["metadata"]["name"]: b["spec"]["priority"] for b in bodies}
    order = [sorted(priority[m] for m in members[job]) for job in dict.fromkeys(started)]
    assert order == [[9, 9], [1, 5], [0, 0]]


def test_active_job_cap_holds_and_no_analysis_is_in_two_jobs(
    private_cluster: DevCluster, start_operator, tmp_path: Path
) -> None:
    ns = "cap"
    private_cluster.create_namespace(ns)
    ledger = tmp_path / "ledger.txt"
    env, _ = operator_env(
        private_cluster,
        ns,
        ledger=ledger,
        worker_delay=0.02,
        batch_size=4,
        max_batch_wait_seconds=0.05,
        max_active_jobs=2,
    )
    start_operator(operator_argv(), env=env, cluster=private_cluster)
    names = create_analyses(private_cluster, ns, [analysis(ns, i) for i in range(60)])
    wait_phases(private_cluster, ns, lambda p: p["Succeeded"] == 60, timeout=120)
    assert 1 <= private_cluster.max_active_jobs() <= 2
    membership = Counter(n for m in job_members(private_cluster, ns).values() for n in m)
    assert sorted(membership) == sorted(names)
    assert set(membership.values()) == {1}
    assert Counter(line.split()[0] for line in ledger.read_text().splitlines()) == Counter(names)
    attempts = {o["metadata"]["name"]: o["status"]["attempts"] for o in private_cluster.list_objects(MA, ns)}
    assert set(attempts.values()) == {1}


def test_raising_priority_of_queued_analyses_reorders_the_queue(
    private_cluster: DevCluster, start_operator, tmp_path: Path
) -> None:
    ns = "reorder"
    private_cluster.create_namespace(ns)
    ledger = tmp_path / "ledger.txt"
    env, _ = operator_env(
        private_cluster,
        ns,
        worker_mode="hang-once",
        ledger=ledger,
        batch_size=2,
        max_batch_wait_seconds=0.1,
        max_active_jobs=1,
        backoff_base_seconds=0.1,
        backoff_cap_seconds=0.2,
    )
    start_operator(operator_argv(), env=env, cluster=private_cluster)
    create_analyses(private_cluster, ns, [analysis(ns, i) for i in range(2)])
    hung = Path(str(ledger) + ".hung")
    private_cluster.wait_for(lambda _: hung.exists(), what="the first Job's pod to hang")
    waiting = create_analyses(private_cluster, ns, [analysis(ns, 10 + i) for i in range(4)])
    wait_phases(private_cluster, ns, lambda p: p["Queued"] == 4)  # held back by maxActiveJobs=1
    for name in waiting[2:]:  # the two newest jump the queue
        resp = requests.patch(
            f"{private_cluster.url}/apis/mistakes.dev/v1alpha1/namespaces/{ns}/mistakeanalyses/{name}",
            json={"spec": {"priority": 50}},
            headers={"Content-Type": "application/merge-patch+json"},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
    (pod,) = [p for n, p in private_cluster.controller.running_pods() if n == ns]
    assert private_cluster.kill_pod(ns, pod)
    wait_phases(private_cluster, ns, lambda p: p["Succeeded"] == 6)
    started = [e["job"] for e in private_cluster.history() if e["event"] == "pod-created"]
    second_job = list(dict.fromkeys(started))[1]
    assert sorted(job_members(private_cluster, ns)[second_job]) == sorted(waiting[2:])
