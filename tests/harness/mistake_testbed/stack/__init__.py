"""The whole system on loopback in one object (`Stack`), shared by the demo, the e2e suite and the benchmarks.

See `core.py` for what starts in which order, `report.py` for the summary and the consistency checks, and
`services.py` for the operator, kubectl and Prometheus processes.
"""

from mistake_testbed.stack.core import (
    BAD_KINDS,
    PHOTO_KINDS,
    RecordInfo,
    Stack,
    StackConfig,
    default_operator_settings,
    real_services,
    settings_env,
)
from mistake_testbed.stack.report import (
    Summary,
    check_consistency,
    metric_sum,
    metrics_problems,
    percentile,
    scrape,
)
from mistake_testbed.stack.services import Kubectl, OperatorProcess, Prometheus, dashboard_queries, wait_until

__all__ = [
    "BAD_KINDS",
    "PHOTO_KINDS",
    "Kubectl",
    "OperatorProcess",
    "Prometheus",
    "RecordInfo",
    "Stack",
    "StackConfig",
    "Summary",
    "check_consistency",
    "dashboard_queries",
    "default_operator_settings",
    "metric_sum",
    "metrics_problems",
    "percentile",
    "real_services",
    "scrape",
    "settings_env",
    "wait_until",
]
