"""Metrics derived from what the operator watches: phase transitions of analyses and the fate of Jobs.

Counting transitions (not objects) keeps short-lived pods out of it: nothing needs a Pushgateway.
"""

from __future__ import annotations

from datetime import datetime

from mistake_api import Phase
from mistake_api.states import TERMINAL_PHASES

from . import metrics as m
from .state import AnalysisView, ClusterState, JobView, parse_time


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max((end - start).total_seconds(), 0.0)


def analysis_transition(metrics: m.Metrics, old: AnalysisView | None, new: AnalysisView) -> None:
    if old is None:
        return  # first sight (e.g. after a restart): the transition happened before this process saw it
    before, after = old.phase, new.phase
    if before == after:
        return
    ns = new.namespace
    status = new.status
    if after is Phase.SCHEDULED:
        wait = _seconds(parse_time(status.get("queuedAt")), parse_time(status.get("scheduledAt")))
        if wait is not None:
            metrics.histogram(m.QUEUE_WAIT).labels(ns).observe(wait)
    if after in TERMINAL_PHASES and before not in TERMINAL_PHASES:
        outcome = after.value  # the outcome label is the final phase's name
        error = status.get("error") or {}
        reason = "Analysed" if after is Phase.SUCCEEDED else str(error.get("reason") or "Unknown")
        metrics.counter(m.FINISHED).labels(ns, outcome, reason).inc()
        total = _seconds(new.created, parse_time(status.get("finishedAt")))
        if total is not None:
            metrics.histogram(m.END_TO_END).labels(ns, outcome).observe(total)
        result = status.get("result") or {}
        if after is Phase.SUCCEEDED and result:
            model = str(result.get("model") or "unknown")
            metrics.histogram(m.LLM_SECONDS).labels(model).observe(float(result.get("llmSeconds") or 0))
            tokens = metrics.counter(m.LLM_TOKENS)
            tokens.labels(model, "prompt").inc(int(result.get("promptTokens") or 0))
            tokens.labels(model, "completion").inc(int(result.get("completionTokens") or 0))
            metrics.counter(m.LLM_CALLS).labels(model).inc(int(result.get("llmCalls") or 0))


def job_transition(metrics: m.Metrics, old: JobView | None, new: JobView | None, namespace: str) -> None:
    """A Job failed (seen finishing Failed) or vanished before finishing."""
    if new is None:
        if old is not None and not old.finished:
            metrics.counter(m.JOBS_FAILED).labels(namespace, "Disappeared").inc()
        return
    if new.failed and (old is None or not old.failed) and not new.reconciled:
        metrics.counter(m.JOBS_FAILED).labels(namespace, new.reason or "Failed").inc()


def gauges(metrics: m.Metrics, state: ClusterState, budget: int, now: datetime) -> None:
    counts: dict[tuple[str, str], int] = {}
    oldest: dict[str, float] = {}
    inflight: dict[str, int] = {}
    for view in state.analyses.values():
        phase = view.phase.value if view.phase else "New"
        counts[(view.namespace, phase)] = counts.get((view.namespace, phase), 0) + 1
        if view.phase is Phase.QUEUED and view.queued_at:
            age = (now - view.queued_at).total_seconds()
            oldest[view.namespace] = max(oldest.get(view.namespace, 0.0), age)
        if view.phase in (Phase.SCHEDULED, Phase.RUNNING):
            inflight[view.namespace] = inflight.get(view.namespace, 0) + 1
    namespaces = state.namespaces()
    resources = metrics.gauge(m.RESOURCES)
    for ns in namespaces:
        for phase in [*(p.value for p in Phase), "New"]:
            resources.labels(ns, phase).set(counts.get((ns, phase), 0))
        metrics.gauge(m.OLDEST_QUEUED).labels(ns).set(oldest.get(ns, 0.0))
        metrics.gauge(m.JOBS_ACTIVE).labels(ns).set(len(state.live_jobs(ns)))
        metrics.gauge(m.SCHEDULED_INFLIGHT).labels(ns).set(inflight.get(ns, 0))
        metrics.gauge(m.INFLIGHT_BUDGET).labels(ns).set(budget)
