"""At-least-once event delivery and impatient students: every write delivered twice, three re-analysis clicks
right after the create. One analysis per revision, one question per record, and the latest revision wins."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from e2e_support import settle_and_check

from mistake_api import constants as c
from mistake_testbed.stack import Stack

pytestmark = [pytest.mark.e2e]

RECORDS = 30
CLICKS = 3


def decisions(stack: Stack) -> Counter[str]:
    assert stack.appwrite is not None
    return Counter(json.loads(e.response_body)["decision"] for e in stack.appwrite.executions if e.done)


def test_duplicate_events_and_rapid_reanalysis_clicks(scenario: Stack) -> None:
    stack = scenario
    assert stack.appwrite is not None
    assert stack.trigger is not None
    entry = stack.function_config()
    # A second subscription of the same runtime: Appwrite's delivery is at least once, so the trigger must cope.
    stack.appwrite.subscribe(stack.trigger.url, events=entry["events"], function_id="mistake-analyzer-replay")
    created = stack.create_records(RECORDS)
    ids = [r.id for r in created]
    for click in range(CLICKS):
        stack.reanalyze(ids, wrong_reason=f"第{click + 1}次：计算错误")
    settle_and_check(stack)

    # Every pending write reached the trigger twice: one create answered 201, its twin 409.
    seen = decisions(stack)
    assert seen["failed"] == 0, seen
    by_trigger = [o for o in stack.analyses() if o["metadata"]["labels"].get(c.LABEL_ORIGIN) == "trigger"]
    assert len(by_trigger) == len(stack.analyses())
    assert seen["queued"] == len(by_trigger)
    assert seen["already_queued"] >= seen["queued"]
    # Up to four revisions per record; everything but the latest ended Superseded or analysed before the next click.
    per_record = Counter(o["spec"]["record"]["documentId"] for o in stack.analyses())
    assert set(per_record) == set(ids)
    assert all(1 <= n <= 1 + CLICKS for n in per_record.values())
    for obj in stack.analyses():
        status = obj["status"]
        assert status["phase"] in ("Succeeded", "Cancelled"), status
        if status["phase"] == "Cancelled":
            assert status["error"]["reason"] in ("Superseded", "NotPending"), status
    assert sum(per_record.values()) > RECORDS  # the clicks did ask for new analyses
    # The analysis clears the student's reason once it has used it.
    assert stack.appwrite is not None
    assert all(stack.appwrite.document("mistake_records", i).get("wrongReason") is None for i in ids)
