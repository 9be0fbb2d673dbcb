"""Batch planning: size, age, priority, caps and retry timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mistake_api import Phase, rfc3339
from mistake_operator import batching
from mistake_operator.settings import Settings
from mistake_operator.state import AnalysisView

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def view(name: str, *, age: float = 0.0, priority: int = 0, phase: Phase = Phase.QUEUED, **status: Any) -> AnalysisView:
    created = NOW - timedelta(seconds=age)
    body = {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": name,
            "resourceVersion": "1",
            "creationTimestamp": rfc3339(created),
        },
        "spec": {"priority": priority},
        "status": {"phase": phase.value, "queuedAt": rfc3339(created), **status},
    }
    return AnalysisView.from_body(body)


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "batch_size": 3,
        "max_batch_wait_seconds": 2.0,
        "max_active_jobs": 10,
        "per_pod_concurrency": 10,
    }
    return Settings(**{**base, **kw})


def plan(queue: list[AnalysisView], s: Settings, live: int = 0, held_count: int = 0) -> list[list[str]]:
    batches = batching.plan("ns", queue, set(), live, held_count, s, NOW)
    return [[m.name for m in b.members] for b in batches]


def test_full_batch_flushes_at_once_and_a_partial_one_waits() -> None:
    queue = [view(f"a{i}", age=0.1) for i in range(4)]
    assert plan(queue, settings()) == [["a0", "a1", "a2"]]


def test_age_flushes_a_partial_batch() -> None:
    queue = [view("old", age=2.5), view("new", age=0.1)]
    assert plan(queue, settings()) == [["old", "new"]]


def test_priority_then_age() -> None:
    queue = [view("low-old", age=9), view("high-new", age=1, priority=5), view("mid", age=5, priority=1)]
    assert plan(queue, settings(batch_size=2)) == [["high-new", "mid"], ["low-old"]]


def test_max_active_jobs_is_a_hard_cap() -> None:
    queue = [view(f"a{i}", age=5) for i in range(30)]
    assert len(plan(queue, settings(max_active_jobs=4), live=3)) == 1
    assert plan(queue, settings(max_active_jobs=4), live=4) == []


def test_inflight_budget_caps_batch_size() -> None:
    queue = [view(f"a{i}", age=5) for i in range(10)]
    s = settings(batch_size=5, max_inflight_requests=7)
    assert [len(b) for b in plan(queue, s, held_count=4)] == [3]


def test_not_ready_until_next_attempt_and_never_twice() -> None:
    later = rfc3339(NOW + timedelta(seconds=30))
    queue = [
        view("waiting", age=60, nextAttemptAt=later),
        view("held", age=60),
        view("done", age=60, phase=Phase.SUCCEEDED),
    ]
    assert batching.plan("ns", queue, {"held"}, 0, 0, settings(), NOW) == []
    due = batching.next_flush_in(queue, {"held"}, settings(), NOW)
    assert due == pytest.approx(30.0)


def test_cancelled_ones_are_not_batched() -> None:
    v = view("x", age=60)
    v.body["spec"]["cancel"] = True
    assert plan([v], settings()) == []


def test_wait_counts_from_when_a_retry_came_due() -> None:
    # queued long ago, but its retry only came due 0.5 s ago: it waits for company like a new arrival
    came_due = rfc3339(NOW - timedelta(seconds=0.5))
    queue = [view("retry", age=600, nextAttemptAt=came_due)]
    assert plan(queue, settings()) == []
    assert batching.next_flush_in(queue, set(), settings(), NOW) == pytest.approx(1.5)
