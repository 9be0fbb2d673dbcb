"""Conditions follow the Kubernetes conventions through every phase."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mistake_api import ConditionStatus, ConditionType, Phase, Reason, phase_patch
from mistake_api.conditions import parse_conditions, set_condition

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)


def _by_type(patch: dict[str, object]) -> dict[str, dict[str, str]]:
    conds = patch["conditions"]
    assert isinstance(conds, list)
    return {c["type"]: c for c in conds}


def test_first_visit_sets_every_condition() -> None:
    patch = phase_patch(None, Phase.QUEUED, generation=1, now=T0)
    conds = _by_type(patch)
    assert set(conds) == {"Scheduled", "Succeeded", "Ready"}
    assert conds["Succeeded"]["status"] == "Unknown"
    assert conds["Ready"]["status"] == "False"
    assert all(c["lastTransitionTime"] == "2026-12-04T10:00:00Z" for c in conds.values())
    assert all(c["observedGeneration"] == 1 for c in conds.values())
    assert patch["phase"] == "Queued"


def test_transition_time_moves_only_when_status_changes() -> None:
    queued = phase_patch(None, Phase.QUEUED, generation=1, now=T0)
    later = T0 + timedelta(seconds=5)
    scheduled = phase_patch(queued, Phase.SCHEDULED, message="in Job mab-x", generation=1, now=later)
    conds = _by_type(scheduled)
    assert conds["Scheduled"]["status"] == "True"
    assert conds["Scheduled"]["lastTransitionTime"] == "2026-12-04T10:00:05Z"
    # Succeeded stayed Unknown, so its time is the first visit's even though its reason changed.
    assert conds["Succeeded"]["reason"] == "Scheduled"
    assert conds["Succeeded"]["lastTransitionTime"] == "2026-12-04T10:00:00Z"


def test_success_and_failure_are_final_and_ready() -> None:
    queued = phase_patch(None, Phase.QUEUED, now=T0)
    scheduled = phase_patch(queued, Phase.SCHEDULED, now=T0)
    ok = _by_type(phase_patch(scheduled, Phase.SUCCEEDED, now=T0))
    assert (ok["Succeeded"]["status"], ok["Ready"]["status"]) == ("True", "True")
    failed = _by_type(phase_patch(scheduled, Phase.FAILED, reason=Reason.IMAGE_CORRUPT, message="bad", now=T0))
    assert failed["Succeeded"] == {**failed["Succeeded"], "status": "False", "reason": "ImageCorrupt"}
    assert failed["Ready"]["reason"] == "Failed"
    assert failed["Scheduled"]["status"] == "True"


def test_failed_at_intake_says_it_was_never_scheduled() -> None:
    queued = phase_patch(None, Phase.QUEUED, now=T0)
    failed = _by_type(phase_patch(queued, Phase.FAILED, reason=Reason.NO_IMAGES, now=T0))
    assert failed["Scheduled"]["status"] == "False"
    assert failed["Scheduled"]["reason"] == "NotScheduled"


def test_extra_fields_are_camel_cased_and_serialised() -> None:
    patch = phase_patch(None, Phase.SCHEDULED, job_name="mab-1", scheduled_at=T0, attempts=1)
    assert patch["jobName"] == "mab-1"
    assert patch["scheduledAt"] == "2026-12-04T10:00:00Z"
    assert patch["attempts"] == 1


def test_set_condition_keeps_order_and_others() -> None:
    conds = parse_conditions(phase_patch(None, Phase.QUEUED, now=T0)["conditions"])
    before = [c.type for c in conds]
    after = set_condition(conds, ConditionType.READY, ConditionStatus.TRUE, "Succeeded", now=T0)
    assert [c.type for c in after] == before
    assert next(c for c in after if c.type == ConditionType.READY).status == ConditionStatus.TRUE
    assert conds[2].status == ConditionStatus.FALSE  # the input list is not mutated
