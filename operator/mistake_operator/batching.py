"""Which queued analyses go into which new Jobs, right now.

Pure: given the queue, the live Jobs and the settings, return the batches to create. Rules (design §4):
- a batch is flushed when `batchSize` analyses are ready, or when the oldest ready one has waited `maxBatchWait`;
- highest priority first, then oldest;
- never more than `maxActiveJobs` live Jobs, and never more analyses held by live Jobs than the in-flight budget;
- an analysis named by a live Job is never batched again; one waiting for `nextAttemptAt` is not ready yet.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from mistake_api.states import Phase

from .settings import Settings
from .state import AnalysisView


@dataclass(frozen=True)
class Batch:
    namespace: str
    members: tuple[AnalysisView, ...]


def ready(queue: Iterable[AnalysisView], held: set[str], now: datetime) -> list[AnalysisView]:
    out = []
    for view in queue:
        if view.phase is not Phase.QUEUED or view.cancel or view.name in held:
            continue
        nxt = view.next_attempt_at
        if nxt is not None and nxt > now:
            continue
        out.append(view)
    floor = datetime.max
    # Priority first, then age since creation, so a retried analysis is not pushed behind newer ones.
    out.sort(key=lambda v: (-v.priority, (v.created.replace(tzinfo=None) if v.created else floor), v.name))
    return out


def ready_since(view: AnalysisView, now: datetime) -> datetime:
    """When the analysis became eligible: queued, or its retry came due, whichever is later."""
    moments = [m for m in (view.queued_at, view.next_attempt_at) if m is not None]
    return max(moments) if moments else now


def plan(
    namespace: str,
    queue: Iterable[AnalysisView],
    held: set[str],
    live_jobs: int,
    held_count: int,
    settings: Settings,
    now: datetime,
) -> list[Batch]:
    candidates = ready(queue, held, now)
    batches: list[Batch] = []
    jobs_free = settings.max_active_jobs - live_jobs
    budget = settings.inflight_budget - held_count
    while candidates and jobs_free > 0 and budget > 0:
        size = min(settings.batch_size, budget, len(candidates))
        oldest = min(ready_since(v, now) for v in candidates)
        waited = (now - oldest).total_seconds()
        if size < settings.batch_size and waited < settings.max_batch_wait_seconds:
            break  # not full and nobody has waited long enough: let the batch fill
        batches.append(Batch(namespace, tuple(candidates[:size])))
        candidates = candidates[size:]
        jobs_free -= 1
        budget -= size
    return batches


def next_flush_in(queue: Iterable[AnalysisView], held: set[str], settings: Settings, now: datetime) -> float | None:
    """Seconds until the batcher has a reason to look again (the oldest ready one's wait, or a retry coming due)."""
    soonest: float | None = None
    for view in queue:
        if view.phase is not Phase.QUEUED or view.cancel or view.name in held:
            continue
        nxt = view.next_attempt_at
        if nxt is not None and nxt > now:
            due = (nxt - now).total_seconds()
        else:
            due = settings.max_batch_wait_seconds - (now - ready_since(view, now)).total_seconds()
        soonest = due if soonest is None else min(soonest, due)
    return None if soonest is None else max(soonest, 0.0)
