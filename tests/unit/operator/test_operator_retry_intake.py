"""Retry decisions, backoff, spec checks and supersession."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mistake_api import Phase, Reason, rfc3339
from mistake_operator import intake, retry
from mistake_operator.settings import Settings
from mistake_operator.state import AnalysisView, JobView

pytestmark = pytest.mark.unit
NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)


def view(
    name: str = "a",
    *,
    attempts: int = 1,
    age: float = 10,
    error: dict[str, Any] | None = None,
    revision: str = "2026-12-04T11:00:00.000+00:00",
    phase: Phase = Phase.RUNNING,
) -> AnalysisView:
    status: dict[str, Any] = {"phase": phase.value, "attempts": attempts, "jobName": "mab-1"}
    if error:
        status["error"] = error
    return AnalysisView.from_body(
        {
            "metadata": {
                "name": name,
                "namespace": "ns",
                "resourceVersion": "1",
                "creationTimestamp": rfc3339(NOW - timedelta(seconds=age)),
                "labels": {"mistakes.dev/record": "k"},
            },
            "spec": {"revision": revision},
            "status": status,
        }
    )


def job(*, failed: bool = False, reason: str = "") -> JobView:
    cond = [{"type": "Failed" if failed else "Complete", "status": "True", "reason": reason}]
    return JobView.from_body(
        {"metadata": {"name": "mab-1", "namespace": "ns", "annotations": {}}, "status": {"conditions": cond}}
    )


S = Settings(max_attempts=3, backoff_base_seconds=10, backoff_cap_seconds=100, max_analysis_age_seconds=3600)


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    delays = [retry.backoff_seconds(n, S, rng) for n in range(1, 9)]
    assert 5 <= delays[0] <= 10
    assert all(50 <= d <= 100 for d in delays[4:])
    assert len({round(d, 3) for d in delays}) == len(delays)


def test_worker_reported_retryable_reason_is_kept() -> None:
    d = retry.decide(
        view(error={"reason": "LLMRateLimited", "message": "429", "retryable": True}), job(), S, NOW, random.Random(0)
    )
    assert isinstance(d, retry.Requeue)
    assert d.reason is Reason.LLM_RATE_LIMITED
    assert d.next_attempt_at > NOW


@pytest.mark.parametrize(
    ("the_job", "expected"),
    [
        (None, Reason.POD_LOST),
        (job(failed=True, reason="DeadlineExceeded"), Reason.JOB_DEADLINE_EXCEEDED),
        (job(failed=True, reason="BackoffLimitExceeded"), Reason.WORKER_CRASHED),
        (job(), Reason.WORKER_CRASHED),
    ],
)
def test_unreported_attempts_are_named_by_the_jobs_fate(the_job: JobView | None, expected: Reason) -> None:
    assert retry.unfinished_cause(view(), the_job)[0] is expected


def test_attempts_and_age_budgets_end_in_failure() -> None:
    d = retry.decide(view(attempts=3), job(), S, NOW, random.Random(0))
    assert isinstance(d, retry.GiveUp)
    assert d.reason is Reason.RETRIES_EXHAUSTED
    assert "WorkerCrashed" in d.message
    d = retry.decide(view(attempts=1, age=7200), job(), S, NOW, random.Random(0))
    assert isinstance(d, retry.GiveUp)
    assert d.reason is Reason.EXPIRED


def test_a_permanent_reason_from_the_worker_is_not_retried() -> None:
    d = retry.decide(
        view(error={"reason": "ImageCorrupt", "message": "x", "retryable": False}), job(), S, NOW, random.Random(0)
    )
    # a non-retryable error left on a non-final analysis means the worker could not finish writing it: retry
    assert isinstance(d, retry.Requeue)


GOOD = {
    "record": {"databaseId": "main", "collectionId": "mistake_records", "documentId": "r1"},
    "userId": "u1",
    "imageIds": ["f1"],
    "revision": "2026-12-04T11:00:00.000+00:00",
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"imageIds": []}, Reason.NO_IMAGES),
        ({"imageIds": [f"f{i}" for i in range(9)]}, Reason.TOO_MANY_IMAGES),
        ({"imageIds": ["../etc/passwd"]}, Reason.INVALID_SPEC),
        ({"userId": ""}, Reason.INVALID_SPEC),
        ({"record": {"databaseId": "main", "collectionId": "c", "documentId": "bad id!"}}, Reason.INVALID_SPEC),
        ({"revision": None}, Reason.INVALID_SPEC),
    ],
)
def test_bad_specs_get_named_reasons(change: dict[str, Any], reason: Reason) -> None:
    spec = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    rejection = intake.check_spec(spec, Settings())
    assert rejection is not None
    assert rejection.reason is reason
    assert rejection.message


def test_good_spec_passes() -> None:
    assert intake.check_spec(dict(GOOD), Settings()) is None


def test_newest_revision_wins_and_older_ones_are_superseded() -> None:
    old = view("old", revision="2026-12-04T11:00:00.000+00:00", phase=Phase.QUEUED)
    new = view("new", revision="2026-12-04T11:05:00.000+00:00", phase=Phase.QUEUED)
    done = view("done", revision="2026-12-04T10:00:00.000+00:00", phase=Phase.SUCCEEDED)
    assert [v.name for v in intake.superseded([new, old, done])] == ["old"]
    assert intake.superseded([new]) == []
