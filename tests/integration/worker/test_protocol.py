"""The CR protocol, idempotency, failure reasons and shutdown, with the real SDKs against the stand-ins."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from worker_bed import CR, WorkerBed

from mistake_api import phase_patch
from mistake_api.constants import EXIT_OK, EXIT_PERMANENT, EXIT_RETRYABLE
from mistake_api.states import Phase
from mistake_testbed.kube.util import merge_patch
from mistake_testbed.samples import BAD_INPUTS
from mistake_worker.writeback import Writer

pytestmark = pytest.mark.integration

BAD_REASONS = {
    "empty": "ImageCorrupt",
    "truncated": "ImageCorrupt",
    "pdf-as-jpg": "ImageUnsupported",
    "html-as-jpg": "ImageUnsupported",
    "decompression-bomb": "ImageBomb",
}


def _wait(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.02)


def test_same_member_twice_and_a_crash_before_the_record_update_count_once(
    bed: WorkerBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    member, record = bed.photo_member("math-choice")
    # A crash right after the question (and its KPs) were written, before the record update.
    original = Writer.write_question

    async def write_then_crash(self: Writer, *args: Any, **kwargs: Any) -> None:
        await original(self, *args, **kwargs)
        raise RuntimeError("simulated crash after the question write")

    monkeypatch.setattr(Writer, "write_question", write_then_crash)
    assert bed.run(monkeypatch) == EXIT_RETRYABLE
    monkeypatch.setattr(Writer, "write_question", original)
    status = bed.status(member)
    assert status["phase"] == "Running"
    assert status["error"]["reason"] == "InternalError"
    assert status["error"]["retryable"] is True
    assert len(bed.docs("questions")) == 1
    assert bed.doc("mistake_records", record["$id"])["analysisStatus"] == "processing"
    # The operator requeues and schedules it again (same job here); the retry continues normally.
    retry = phase_patch(status, Phase.SCHEDULED, job_name=bed.job_name)
    bed.patch_status(member, retry)
    assert bed.run(monkeypatch) == EXIT_OK
    assert bed.status(member)["phase"] == "Succeeded"
    # And the same member once more: terminal, skipped without writes.
    writes = bed.aw.writes("questions")
    assert bed.run(monkeypatch) == EXIT_OK
    assert bed.aw.writes("questions") == writes

    rec = bed.doc("mistake_records", record["$id"])
    assert rec["analysisStatus"] == "completed"
    assert len(bed.docs("questions")) == 1
    kps = bed.docs("user_knowledge_points", userId="user-1")
    assert len(kps) == len(rec["knowledgePointIds"])
    assert all(kp["questionIds"] == [rec["questionId"]] and kp["mistakeCount"] == 1 for kp in kps)
    assert len(bed.docs("review_states", userId="user-1")) == len(kps)
    assert bed.docs("profiles", userId="user-1")[0]["totalMistakes"] == 1


def test_reanalysis_updates_the_question_in_place_and_does_not_count_again(
    bed: WorkerBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, record = bed.photo_member("physics-choice")
    assert bed.run(monkeypatch) == EXIT_OK
    first = bed.doc("mistake_records", record["$id"])
    # The student says the recognition was wrong and asks again: the record goes back to pending.
    updated = bed.update_record(record["$id"], {"analysisStatus": "pending", "wrongReason": "选项看错了"})
    bed.member(updated)
    assert bed.run(monkeypatch) == EXIT_OK
    rec = bed.doc("mistake_records", record["$id"])
    assert rec["analysisStatus"] == "completed"
    assert rec["wrongReason"] is None
    assert rec["questionId"] == first["questionId"]
    assert len(bed.docs("questions")) == 1
    assert bed.docs("profiles", userId="user-1")[0]["totalMistakes"] == 1
    feedback = [r for r in bed.llm.requests if r.fixture == "physics-choice"]
    assert len(feedback) == 2


def test_bad_inputs_fail_with_named_reasons(bed: WorkerBed, monkeypatch: pytest.MonkeyPatch) -> None:
    made = {}
    for spec in BAD_INPUTS:
        if spec.lazy:
            continue
        sample = bed.samples.bad(spec.name)
        made[spec.name] = bed.member(bed.record(bed.put_sample(sample))), None
    missing = bed.record(["does-not-exist"])
    made["missing"] = bed.member(missing), missing
    assert bed.run(monkeypatch) == EXIT_OK
    # A file larger than the cap: refused from its metadata, before the download (earlier members are terminal
    # now and skipped).
    big = bed.record(bed.put_sample(bed.samples.photo("math-choice")))
    made["oversize"] = bed.member(big), big
    assert bed.run(monkeypatch, MISTAKE_WORKER_MAX_IMAGE_BYTES="20000") == EXIT_OK
    expected = {**BAD_REASONS, "missing": "ImageNotFound", "oversize": "ImageTooLarge"}
    for name, (member, _) in made.items():
        status = bed.status(member)
        assert status["phase"] == "Failed", (name, status)
        assert status["error"]["reason"] == expected[name], (name, status["error"])
        assert status["error"]["retryable"] is False
        assert status["recordSynced"] is True
        record_id = bed.cr(member)["spec"]["record"]["documentId"]
        rec = bed.doc("mistake_records", record_id)
        assert rec["analysisStatus"] == "failed"
        assert f"[{expected[name]}]" in rec["analysisError"]
    assert not [r for r in bed.aw.requests if r.path.endswith(f"/files/{big['originalImageIds'][0]}/download")]
    assert bed.llm.requests == []


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "refusal"}, "LLMRefused"),
        ({"kind": "truncated"}, "LLMTruncated"),
        ({"kind": "content_filter"}, "LLMContentFiltered"),
        ({"kind": "schema_violation"}, "LLMInvalidOutput"),
        ({"kind": "malformed_json"}, "LLMInvalidOutput"),
        ({"kind": "http_error", "status": 400}, "LLMBadRequest"),
    ],
)
def test_permanent_llm_faults_fail_with_named_reasons(
    bed: WorkerBed, monkeypatch: pytest.MonkeyPatch, fault: dict[str, object], reason: str
) -> None:
    member, record = bed.photo_member("math-fill")
    bed.llm.add_fault(**fault)
    assert bed.run(monkeypatch) == EXIT_OK
    status = bed.status(member)
    assert status["phase"] == "Failed"
    assert status["error"]["reason"] == reason
    assert f"[{reason}]" in bed.doc("mistake_records", record["$id"])["analysisError"]
    # At most two LLM calls per record (one repair for invalid output).
    assert len(bed.llm.requests) == (2 if reason == "LLMInvalidOutput" else 1)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"kind": "rate_limit", "retry_after": 0.05}, "LLMRateLimited"),
        ({"kind": "http_error", "status": 503}, "LLMUnavailable"),
        ({"kind": "timeout", "delay": 30}, "LLMTimeout"),
        ({"kind": "http_error", "status": 401}, "LLMAuthFailed"),
    ],
)
def test_lasting_transient_llm_faults_leave_a_retryable_error(
    bed: WorkerBed, monkeypatch: pytest.MonkeyPatch, fault: dict[str, object], reason: str
) -> None:
    member, record = bed.photo_member("math-fill")
    bed.llm.add_fault(**fault)
    code = bed.run(monkeypatch, MISTAKE_WORKER_LLM_MAX_RETRIES="1", MISTAKE_WORKER_LLM_TIMEOUT_SECONDS="0.5")
    assert code == EXIT_RETRYABLE
    status = bed.status(member)
    assert status["phase"] == "Running"
    assert status["error"] == {**status["error"], "reason": reason, "retryable": True}
    # The operator owns the final "failed"; the record is left in progress.
    assert bed.doc("mistake_records", record["$id"])["analysisStatus"] == "processing"


def test_transient_faults_are_retried_and_succeed(bed: WorkerBed, monkeypatch: pytest.MonkeyPatch) -> None:
    member, record = bed.photo_member("english-choice")
    bed.llm.add_fault(kind="rate_limit", retry_after=0.05, times=1)
    bed.llm.add_fault(kind="http_error", status=503, times=1)
    bed.aw.fail(503, route=r"/rows|/documents", count=2)
    assert bed.run(monkeypatch) == EXIT_OK
    assert bed.status(member)["phase"] == "Succeeded"
    assert bed.doc("mistake_records", record["$id"])["analysisStatus"] == "completed"
    assert [r.status for r in bed.llm.requests] == [429, 503, 200]


def test_cancelled_superseded_deleted_and_foreign_members(bed: WorkerBed, monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled, _ = bed.photo_member("math-choice")
    bed.patch_spec(cancelled, {"cancel": True})
    # A member for an older revision of a record the client has since asked again for (still pending).
    sample = bed.samples.photo("math-choice")
    superseded = bed.member(bed.record(bed.put_sample(sample)), revision="2020-01-01T00:00:00.000+00:00")
    deleted, rec2 = bed.photo_member("math-choice")
    bed.aw.state.store.delete("main", "mistake_records", rec2["$id"], rows=False)
    foreign, rec3 = bed.photo_member("math-choice")
    bed.patch_status(foreign, {"jobName": "mab-other"})
    assert bed.run(monkeypatch) == EXIT_OK
    assert bed.status(cancelled)["error"]["reason"] == "Cancelled"
    assert bed.status(superseded)["phase"] == "Cancelled"
    assert bed.status(superseded)["error"]["reason"] == "Superseded"
    assert bed.status(deleted)["error"]["reason"] == "RecordDeleted"
    assert bed.status(foreign)["phase"] == "Scheduled"  # not ours: untouched
    assert bed.doc("mistake_records", rec3["$id"]).get("analysisStatus") in (None, "pending")
    assert bed.llm.requests == []


def test_llm_concurrency_never_exceeds_the_bound(bed: WorkerBed, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(24):
        bed.photo_member("math-choice")
    bed.llm.add_fault(kind="latency", delay=0.1)
    assert bed.run(monkeypatch, MISTAKE_WORKER_CONCURRENCY="5") == EXIT_OK
    assert len(bed.llm.requests) == 24
    assert 1 < bed.llm.peak_concurrency <= 5


def test_sigterm_releases_in_flight_members_and_exits_1(bed: WorkerBed) -> None:
    members = [bed.photo_member("math-choice")[0] for _ in range(3)]
    bed.llm.add_fault(kind="latency", delay=30)
    proc = bed.spawn(MISTAKE_WORKER_SHUTDOWN_GRACE_SECONDS="0.2")
    try:
        _wait(lambda: bed.llm.in_flight == 3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_RETRYABLE, out
    for member in members:
        status = bed.status(member)
        assert status["phase"] == "Running"
        assert status["error"]["reason"] == "Interrupted"
        assert status["error"]["retryable"] is True


def test_invalid_configuration_exits_42(bed: WorkerBed) -> None:
    proc = bed.spawn(MISTAKE_WORKER_CONCURRENCY="0")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_PERMANENT, out
    assert "invalid worker configuration" in out


def test_a_member_the_operator_cancelled_as_superseded_says_so(bed: WorkerBed, monkeypatch: pytest.MonkeyPatch) -> None:
    member, record = bed.photo_member("math-choice")
    emu = bed.cluster.emu

    def cancel(cur: dict[str, Any]) -> dict[str, Any]:
        patch = {"metadata": {"annotations": {"mistakes.dev/cancel-reason": "Superseded"}}, "spec": {"cancel": True}}
        return merge_patch(cur, patch)

    bed.cluster.call(lambda: emu.update_object(emu.find_def(CR), bed.namespace, member, cancel))
    assert bed.run(monkeypatch) == EXIT_OK
    status = bed.status(member)
    assert (status["phase"], status["error"]["reason"], status["recordSynced"]) == ("Cancelled", "Superseded", True)
    # The record belongs to the newer analysis: this one wrote nothing to it.
    assert bed.doc("mistake_records", record["$id"]).get("analysisStatus") in (None, "pending")
