"""Every Prometheus metric the system exports: names, types, labels and help, in one place.

The dashboard generator, the alert rules and their tests read `SPECS`; the operator creates the instruments with
`Metrics(registry)`. Base units (seconds), prefix `mistake_analysis_`, and no user or record ids in labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX: Final = "mistake_analysis_"
Kind = Literal["counter", "gauge", "histogram"]

# Seconds from ~50 ms to 6 h: queue waits are sub-second when idle and hours in a backlog.
LATENCY_BUCKETS: Final = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
LLM_BUCKETS: Final = (0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300)
BATCH_BUCKETS: Final = (1, 2, 5, 10, 20, 50, 100, 200, 500)


@dataclass(frozen=True)
class MetricSpec:
    name: str  # as exposed (counters with _total)
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def series(self) -> tuple[str, ...]:
        """Names of the time series Prometheus stores for this metric."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


def _m(name: str, kind: Kind, help_: str, labels: tuple[str, ...] = (), buckets: tuple[float, ...] = ()) -> MetricSpec:
    return MetricSpec(PREFIX + name, kind, help_, labels, buckets)


RESOURCES = _m("resources", "gauge", "MistakeAnalyses by namespace and phase.", ("namespace", "phase"))
OLDEST_QUEUED = _m(
    "oldest_queued_age_seconds", "gauge", "Age of the oldest Queued analysis (0 when none).", ("namespace",)
)
QUEUE_WAIT = _m(
    "queue_wait_seconds", "histogram", "Time from Queued to Scheduled, per attempt.", ("namespace",), LATENCY_BUCKETS
)
END_TO_END = _m(
    "end_to_end_seconds",
    "histogram",
    "Time from creation to a final phase.",
    ("namespace", "outcome"),
    LATENCY_BUCKETS,
)
BATCH_SIZE = _m("batch_size", "histogram", "Analyses per batch Job.", ("namespace",), BATCH_BUCKETS)
JOBS_CREATED = _m("jobs_created_total", "counter", "Batch Jobs created.", ("namespace",))
JOBS_ACTIVE = _m("jobs_active", "gauge", "Batch Jobs not yet finished.", ("namespace",))
JOBS_FAILED = _m(
    "jobs_failed_total", "counter", "Batch Jobs that ended Failed or disappeared.", ("namespace", "reason")
)
RETRIES = _m("retries_total", "counter", "Analyses sent back to Queued for another attempt.", ("namespace", "reason"))
FINISHED = _m(
    "finished_total",
    "counter",
    "Analyses that reached a final phase.",
    ("namespace", "outcome", "reason"),
)
LLM_SECONDS = _m(
    "llm_seconds", "histogram", "Seconds spent in LLM calls per successful analysis.", ("model",), LLM_BUCKETS
)
LLM_TOKENS = _m("llm_tokens_total", "counter", "LLM tokens used by successful analyses.", ("model", "kind"))
LLM_CALLS = _m("llm_calls_total", "counter", "LLM calls made by successful analyses.", ("model",))
SWEEPER_RECOVERIES = _m(
    "sweeper_recoveries_total",
    "counter",
    "Records the sweeper found without a live analysis and re-queued.",
    ("namespace", "status"),
)
SWEEPER_RUNS = _m("sweeper_runs_total", "counter", "Sweeper passes, by result.", ("result",))
OPERATOR_ERRORS = _m("operator_errors_total", "counter", "Unexpected errors in operator handlers.", ("handler",))
INFLIGHT_BUDGET = _m(
    "inflight_budget", "gauge", "Cluster-wide budget of analyses in LLM calls (configured).", ("namespace",)
)
SCHEDULED_INFLIGHT = _m(
    "scheduled_inflight", "gauge", "Analyses held by live Jobs (Scheduled or Running).", ("namespace",)
)

SPECS: Final[tuple[MetricSpec, ...]] = (
    RESOURCES,
    OLDEST_QUEUED,
    QUEUE_WAIT,
    END_TO_END,
    BATCH_SIZE,
    JOBS_CREATED,
    JOBS_ACTIVE,
    JOBS_FAILED,
    RETRIES,
    FINISHED,
    LLM_SECONDS,
    LLM_TOKENS,
    LLM_CALLS,
    SWEEPER_RECOVERIES,
    SWEEPER_RUNS,
    OPERATOR_ERRORS,
    INFLIGHT_BUDGET,
    SCHEDULED_INFLIGHT,
)


def all_series() -> set[str]:
    """Every series name the operator can expose (for dashboard and alert tests)."""
    return {s for spec in SPECS for s in spec.series}


class Metrics:
    """The instruments, created in one registry (a fresh one per test, the default one in the operator)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        made: dict[str, Counter | Gauge | Histogram] = {}
        for spec in SPECS:
            if spec.kind == "counter":
                made[spec.name] = Counter(spec.name.removesuffix("_total"), spec.help, spec.labels, registry=registry)
            elif spec.kind == "gauge":
                made[spec.name] = Gauge(spec.name, spec.help, spec.labels, registry=registry)
            else:
                made[spec.name] = Histogram(spec.name, spec.help, spec.labels, buckets=spec.buckets, registry=registry)
        self._made = made

    def counter(self, spec: MetricSpec) -> Counter:
        metric = self._made[spec.name]
        assert isinstance(metric, Counter)
        return metric

    def gauge(self, spec: MetricSpec) -> Gauge:
        metric = self._made[spec.name]
        assert isinstance(metric, Gauge)
        return metric

    def histogram(self, spec: MetricSpec) -> Histogram:
        metric = self._made[spec.name]
        assert isinstance(metric, Histogram)
        return metric
