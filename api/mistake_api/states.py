"""Phases and conditions of a MistakeAnalysis, and how each phase reads as Kubernetes conditions.

`phase` is for humans (`kubectl get ma`); conditions are for machines (`kubectl wait --for=condition=...`).
Every condition is present from the operator's first visit, so columns and waits never see a gap.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    QUEUED = "Queued"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"


TERMINAL_PHASES = frozenset({Phase.SUCCEEDED, Phase.FAILED, Phase.CANCELLED})
ACTIVE_PHASES = frozenset({Phase.QUEUED, Phase.SCHEDULED, Phase.RUNNING})


class ConditionType(StrEnum):
    SCHEDULED = "Scheduled"  # True once a Job holds the analysis
    SUCCEEDED = "Succeeded"  # Unknown while in progress, True on success, False on failure or cancellation
    READY = "Ready"  # True once the analysis is final (any outcome): `kubectl wait --for=condition=Ready`


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


def is_terminal(phase: str | None) -> bool:
    return phase in TERMINAL_PHASES
