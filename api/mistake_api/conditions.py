"""Condition bookkeeping the Kubernetes way, and the status patch for each phase transition.

`lastTransitionTime` moves only when a condition's status changes; reason, message and observedGeneration are
refreshed on every write. Patches carry the whole conditions list because a merge patch replaces lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from .models import Condition, rfc3339, utcnow
from .reasons import Reason
from .states import ConditionStatus, ConditionType, Phase

T, F, U = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
S, OK, READY = ConditionType.SCHEDULED, ConditionType.SUCCEEDED, ConditionType.READY


def parse_conditions(raw: Iterable[Mapping[str, Any]] | None) -> list[Condition]:
    return [Condition.model_validate(c) for c in (raw or [])]


def set_condition(
    conditions: list[Condition],
    type_: ConditionType,
    status: ConditionStatus,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """Return a new list with `type_` set; other conditions are kept in their order."""
    now = now or utcnow()
    out: list[Condition] = []
    found = False
    for cond in conditions:
        if cond.type == type_:
            found = True
            moved = cond.status != status
            out.append(
                Condition(
                    type=type_,
                    status=status,
                    reason=reason,
                    message=message,
                    last_transition_time=now if moved else cond.last_transition_time,
                    observed_generation=generation,
                )
            )
        else:
            out.append(cond)
    if not found:
        out.append(
            Condition(
                type=type_,
                status=status,
                reason=reason,
                message=message,
                last_transition_time=now,
                observed_generation=generation,
            )
        )
    return out


def find(conditions: Iterable[Condition], type_: ConditionType) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def _phase_conditions(
    phase: Phase, reason: str, message: str, scheduled_before: bool
) -> list[tuple[ConditionType, ConditionStatus, str, str]]:
    """The (type, status, reason, message) triple for each condition in `phase`."""
    if phase is Phase.QUEUED:
        return [(S, F, "Queued", message or "waiting for a batch"), (OK, U, "Queued", ""), (READY, F, "Queued", "")]
    if phase is Phase.SCHEDULED:
        return [(S, T, reason or "JobCreated", message), (OK, U, "Scheduled", ""), (READY, F, "Scheduled", "")]
    if phase is Phase.RUNNING:
        return [(S, T, "JobCreated", ""), (OK, U, "Running", message), (READY, F, "Running", "")]
    if phase is Phase.SUCCEEDED:
        return [(S, T, "JobCreated", ""), (OK, T, reason or "Analysed", message), (READY, T, "Succeeded", "")]
    # Failed or Cancelled: the Scheduled condition keeps saying whether a Job ever held it.
    sched = (S, T, "JobCreated", "") if scheduled_before else (S, F, "NotScheduled", "")
    return [sched, (OK, F, reason or phase.value, message), (READY, T, phase.value, "")]


def conditions_for(
    current: Iterable[Mapping[str, Any]] | list[Condition] | None,
    phase: Phase,
    *,
    reason: str = "",
    message: str = "",
    generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    now = now or utcnow()
    conds = [c if isinstance(c, Condition) else Condition.model_validate(c) for c in (current or [])]
    before = find(conds, S)
    scheduled_before = before is not None and before.status == T
    for type_, status, why, text in _phase_conditions(phase, reason, message, scheduled_before):
        conds = set_condition(conds, type_, status, why, text, generation=generation, now=now)
    return conds


def phase_patch(
    current_status: Mapping[str, Any] | None,
    phase: Phase,
    *,
    reason: Reason | str = "",
    message: str = "",
    generation: int | None = None,
    now: datetime | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A merge patch for `/status` moving the analysis to `phase`.

    Extra `fields` (snake_case or camelCase keys of the status model) are added as given; datetimes become
    RFC 3339 strings and None clears a field.
    """
    now = now or utcnow()
    current = current_status or {}
    conds = conditions_for(
        current.get("conditions"), phase, reason=str(reason), message=message, generation=generation, now=now
    )
    patch: dict[str, Any] = {
        "phase": phase.value,
        "conditions": [c.to_api() for c in conds],
    }
    if generation is not None:
        patch["observedGeneration"] = generation
    for key, value in fields.items():
        patch[_camel(key)] = _jsonable(value)
    return patch


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(word.capitalize() for word in rest)


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return rfc3339(value)
    if hasattr(value, "to_api"):
        return value.to_api()
    return value
