"""Crash safety: SIGKILL the operator at random moments; nothing is lost, nothing is done twice."""

from __future__ import annotations

import itertools
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import pytest
from operator_support import JOBS, MA, analysis, create_analyses, job_members, operator_argv, operator_env, phases

from mistake_testbed.kube import DevCluster

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TOTAL = 300


def finished(job: dict[str, object]) -> bool:
    conditions = (job.get("status") or {}).get("conditions", [])  # type: ignore[union-attr]
    return any(c.get("status") == "True" for c in conditions)


def wait_until(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling the emulator's store


KILLS = 5


def test_operator_killed_five_times_loses_and_duplicates_nothing(
    private_cluster: DevCluster, start_operator, tmp_path: Path
) -> None:
    ns = "crash"
    private_cluster.create_namespace(ns)
    ledger = tmp_path / "ledger.txt"
    env, _ = operator_env(
        private_cluster,
        ns,
        ledger=ledger,
        worker_delay=0.01,
        batch_size=10,
        max_batch_wait_seconds=0.1,
        max_active_jobs=3,
        backoff_base_seconds=0.2,
        backoff_cap_seconds=0.5,
    )
    rng = random.Random(20261204)
    op = start_operator(operator_argv(), env=env, cluster=private_cluster)
    names = create_analyses(private_cluster, ns, [analysis(ns, i) for i in range(TOTAL)])
    kills = 0
    deadline = time.monotonic() + 240
    while phases(private_cluster, ns)["Succeeded"] < TOTAL:
        assert time.monotonic() < deadline, f"stuck: {dict(phases(private_cluster, ns))}"
        if kills < KILLS:
            time.sleep(rng.uniform(0.2, 0.9))  # a random moment in the run, not a synchronisation
            op.kill()
            kills += 1
            op = start_operator(operator_argv(), env=env, cluster=private_cluster)
        else:
            time.sleep(0.1)
    assert kills == KILLS

    # every analysis succeeded, and its success was reported exactly once
    assert Counter(line.split()[0] for line in ledger.read_text().splitlines()) == Counter(names)
    # each attempt had exactly one Job: no batch Job was ever created twice
    membership: dict[str, list[str]] = defaultdict(list)
    for job, members in job_members(private_cluster, ns).items():
        for member in members:
            membership[member].append(job)
    attempts = {o["metadata"]["name"]: o["status"]["attempts"] for o in private_cluster.list_objects(MA, ns)}
    assert {n: len(membership[n]) for n in names} == {n: attempts[n] for n in names}
    # no analysis was ever held by two live Jobs at once
    wait_until(lambda: all(finished(j) for j in private_cluster.list_objects(JOBS, ns)), "every Job to finish")
    started: dict[str, float] = {}
    ended: dict[str, float] = {}
    for entry in private_cluster.history():
        if entry["event"] == "pod-created":
            started.setdefault(entry["job"], entry["t"])
        elif entry["event"] in ("job-complete", "job-failed"):
            ended[entry["job"]] = entry["t"]
    for name, jobs in membership.items():
        spans = sorted((started[j], ended[j]) for j in jobs)
        for (_, end), (begin, _) in itertools.pairwise(spans):
            assert end <= begin, f"{name} was in two live Jobs: {jobs}"
