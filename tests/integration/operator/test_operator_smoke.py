"""The operator process against the dev cluster: analyses are batched into Jobs and finish."""

from __future__ import annotations

from pathlib import Path

import pytest
from operator_support import (
    analysis,
    create_analyses,
    job_members,
    operator_argv,
    operator_env,
    wait_phases,
)

from mistake_testbed.kube import DevCluster

pytestmark = pytest.mark.integration


def test_size_triggered_batches_all_succeed(
    dev_cluster: DevCluster, kube_namespace: str, start_operator, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.txt"
    env, _ = operator_env(dev_cluster, kube_namespace, ledger=ledger, batch_size=5, max_batch_wait_seconds=60)
    start_operator(operator_argv(), env=env)
    names = create_analyses(dev_cluster, kube_namespace, [analysis(kube_namespace, i) for i in range(10)])
    wait_phases(dev_cluster, kube_namespace, lambda p: p["Succeeded"] == 10)
    jobs = job_members(dev_cluster, kube_namespace)
    assert sorted(len(m) for m in jobs.values()) == [5, 5]
    assert sorted(n for m in jobs.values() for n in m) == sorted(names)
    assert sorted(line.split()[0] for line in ledger.read_text().splitlines()) == sorted(names)
