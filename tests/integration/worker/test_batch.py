"""A batch of sample photos end to end: completed records, Succeeded analyses, one question each."""

from __future__ import annotations

import pytest
from worker_bed import WorkerBed

from mistake_api.constants import EXIT_OK
from mistake_testbed.samples import PHOTOS

pytestmark = pytest.mark.integration


def test_every_sample_photo_ends_completed_and_succeeded(bed: WorkerBed, monkeypatch: pytest.MonkeyPatch) -> None:
    made = {spec.name: bed.photo_member(spec.name) for spec in PHOTOS}

    assert bed.run(monkeypatch) == EXIT_OK

    for sample_name, (member, record) in made.items():
        expected = bed.samples.photo(sample_name).expected
        assert expected is not None
        status = bed.status(member)
        assert status["phase"] == "Succeeded", (sample_name, status)
        assert status["result"]["subject"] == expected.subject
        assert status["result"]["llmCalls"] == 1
        assert status["result"]["promptTokens"] > 0
        rec = bed.doc("mistake_records", record["$id"])
        assert rec["analysisStatus"] == "completed", (sample_name, rec)
        assert rec["subject"] == expected.subject
        assert rec["analyzedAt"]
        assert rec["moduleIds"]
        assert rec["knowledgePointIds"]
        question = bed.doc("questions", rec["questionId"])
        assert question["$id"] == status["result"]["questionId"]
        assert question["type"] == expected.type
        assert expected.snippet in question["content"]
        assert question["answer"] == expected.answer
        assert question["explanation"]
        assert question["createdBy"] == "user-1"
        if expected.type == "choice":
            assert question["options"] == list(expected.options)
        for kp_id in rec["knowledgePointIds"]:
            kp = bed.doc("user_knowledge_points", kp_id)
            assert question["$id"] in kp["questionIds"]
            assert kp["subject"] == expected.subject
    # One question per record, one stats increment per record.
    assert len(bed.docs("questions")) == len(PHOTOS)
    profile = bed.docs("profiles", userId="user-1")[0]
    assert profile["totalMistakes"] == len(PHOTOS)
    # Pages of the two-page question went in one request, in order.
    two_page = [r for r in bed.llm.requests if r.fixture == "math-two-page"]
    assert len(two_page) == 1
    assert two_page[0].image_count == 2
    assert bed.llm.peak_concurrency <= 4
