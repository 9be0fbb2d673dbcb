"""What happens to an analysis whose Job ended without it finishing: another attempt, or a final failure."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from mistake_api import REASONS, Outcome, Reason

from .settings import Settings
from .state import AnalysisView, JobView


@dataclass(frozen=True)
class Requeue:
    reason: Reason
    message: str
    next_attempt_at: datetime


@dataclass(frozen=True)
class GiveUp:
    reason: Reason  # RetriesExhausted, Expired, or a permanent reason the worker reported
    message: str


def backoff_seconds(attempts: int, settings: Settings, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, so retries spread but never bunch at 0."""
    exp = settings.backoff_base_seconds * (2 ** max(attempts - 1, 0))
    capped = min(exp, settings.backoff_cap_seconds)
    return float(capped / 2 + rng.uniform(0, capped / 2))


def unfinished_cause(view: AnalysisView, job: JobView | None) -> tuple[Reason, str]:
    """Why an attempt ended without a result: the worker's own report if it left one, else the Job's fate."""
    error = view.status.get("error") or {}
    reported = error.get("reason")
    if reported in REASONS and error.get("retryable") is not False:
        return Reason(reported), str(error.get("message", ""))
    if job is None:
        return Reason.POD_LOST, "the Job disappeared before the analysis finished"
    if job.reason == "DeadlineExceeded":
        return Reason.JOB_DEADLINE_EXCEEDED, f"Job {job.name} exceeded its activeDeadlineSeconds"
    if job.failed:
        return Reason.WORKER_CRASHED, f"Job {job.name} failed ({job.reason or 'no reason'}) without reporting"
    return Reason.WORKER_CRASHED, f"Job {job.name} finished without reporting this analysis"


def decide(
    view: AnalysisView,
    job: JobView | None,
    settings: Settings,
    now: datetime,
    rng: random.Random,
) -> Requeue | GiveUp:
    reason, message = unfinished_cause(view, job)
    if REASONS[reason].outcome is not Outcome.RETRY:
        return GiveUp(reason, message)
    created = view.created or now
    if (now - created).total_seconds() > settings.max_analysis_age_seconds:
        return GiveUp(
            Reason.EXPIRED, f"older than {settings.max_analysis_age_seconds:.0f}s; last error {reason}: {message}"
        )
    if view.attempts >= settings.max_attempts:
        return GiveUp(
            Reason.RETRIES_EXHAUSTED, f"gave up after {view.attempts} attempts; last error {reason}: {message}"
        )
    delay = backoff_seconds(view.attempts, settings, rng)
    return Requeue(reason, message, now + timedelta(seconds=delay))
