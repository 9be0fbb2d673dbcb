"""Table-driven decisions of the trigger: malformed and irrelevant deliveries are skipped, each with its reason."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pytest
from trigger_support import DOC_EVENT, DROP, ROW_EVENT, TOKEN, FakeSession, headers, record

from mistake_testbed.appwrite.runtime import RuntimeResult, invoke, make_context

pytestmark = pytest.mark.unit


def run(trigger: ModuleType, body: Any, event: str | None) -> RuntimeResult:
    return invoke(trigger.main, make_context(body, headers(event)))


def only_line(result: RuntimeResult) -> str:
    lines = result.logs + result.errors
    assert len(lines) == 1, lines
    return lines[0]


@dataclass(frozen=True)
class Case:
    id: str
    body: Any
    event: str | None
    reason: str
    record: str | None = None  # expected record= token in the log line
    extra: dict[str, str] = field(default_factory=dict)  # further expected key=value tokens


R1 = "main/mistake_records/r1"
CASES = [
    Case("no event header (a manual execution)", record(), None, "missing_event"),
    Case("account event", record(), "users.user-1.sessions.s1.create", "unsupported_event"),
    Case("storage event", record(), "buckets.origin_question_image.files.f1.create", "unsupported_event"),
    Case(
        "event without an action",
        record(),
        "databases.main.collections.mistake_records.documents.r1",
        "unsupported_event",
    ),
    Case(
        "collections paired with rows",
        record(),
        "databases.main.collections.mistake_records.rows.r1.create",
        "unsupported_event",
    ),
    Case("document delete", record(), DOC_EVENT.format(action="delete"), "delete_event"),
    Case("row delete", record(), ROW_EVENT.format(action="delete"), "delete_event"),
    Case("increment action", record(), DOC_EVENT.format(action="increment"), "unsupported_action"),
    Case("body is not JSON", "{not json", DOC_EVENT.format(action="create"), "invalid_json"),
    Case("body is empty", "", DOC_EVENT.format(action="create"), "empty_body"),
    Case("body is not UTF-8", b"\xff\xfe{", DOC_EVENT.format(action="create"), "invalid_encoding"),
    Case(
        "body is a JSON list",
        [record()],
        DOC_EVENT.format(action="create"),
        "body_not_object",
        extra={"body_type": "list"},
    ),
    Case("body is a JSON string", '"pending"', DOC_EVENT.format(action="create"), "body_not_object"),
    Case("body is JSON null", "null", DOC_EVENT.format(action="update"), "body_not_object"),
    Case("no $id", record(**{"$id": DROP}), DOC_EVENT.format(action="create"), "missing_record_id"),
    Case("$id is a number", record(**{"$id": 7}), DOC_EVENT.format(action="create"), "invalid_record_id"),
    Case("$id with a slash", record(**{"$id": "r/1"}), DOC_EVENT.format(action="create"), "invalid_record_id"),
    Case("$id of 37 chars", record(**{"$id": "r" * 37}), DOC_EVENT.format(action="create"), "invalid_record_id"),
    Case(
        "event names another record",
        record(**{"$id": "r2"}),
        DOC_EVENT.format(action="create"),
        "event_body_mismatch",
        "main/mistake_records/r2",
    ),
    Case(
        "event names another collection",
        record(),
        "databases.main.collections.questions.documents.r1.create",
        "event_body_mismatch",
        R1,
    ),
    Case(
        "a record of another collection",
        record(**{"$collectionId": "questions"}),
        "databases.main.collections.questions.documents.r1.create",
        "other_collection",
        "main/questions/r1",
    ),
    Case(
        "status processing", record(analysisStatus="processing"), DOC_EVENT.format(action="update"), "not_pending", R1
    ),
    Case("status ocrOK", record(analysisStatus="ocrOK"), DOC_EVENT.format(action="update"), "not_pending", R1),
    Case("status completed", record(analysisStatus="completed"), DOC_EVENT.format(action="update"), "not_pending", R1),
    Case("status failed", record(analysisStatus="failed"), DOC_EVENT.format(action="update"), "not_pending", R1),
    Case(
        "status PENDING (case matters)",
        record(analysisStatus="PENDING"),
        ROW_EVENT.format(action="update"),
        "not_pending",
        R1,
    ),
    Case(
        "status is a number",
        record(analysisStatus=0),
        DOC_EVENT.format(action="update"),
        "not_pending",
        R1,
        {"status": "int"},
    ),
    Case("no $updatedAt", record(**{"$updatedAt": DROP}), DOC_EVENT.format(action="create"), "missing_revision", R1),
    Case(
        "$updatedAt is empty", record(**{"$updatedAt": ""}), DOC_EVENT.format(action="create"), "missing_revision", R1
    ),
    Case(
        "$updatedAt of 65 chars",
        record(**{"$updatedAt": "2" * 65}),
        DOC_EVENT.format(action="create"),
        "invalid_revision",
        R1,
    ),
    Case(
        "database id not an Appwrite id",
        record(**{"$databaseId": "-main"}),
        "databases.-main.collections.mistake_records.documents.r1.create",
        "invalid_record_id",
        "-main/mistake_records/r1",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_irrelevant_or_malformed_delivery_is_skipped_with_its_reason(
    trigger: ModuleType, session: FakeSession, case: Case
) -> None:
    result = run(trigger, case.body, case.event)

    assert result.status == 200
    assert result.json() == {
        "decision": "skipped",
        "reason": case.reason,
        "record": case.record,
        "analysis": None,
        "httpStatus": None,
    }
    assert result.errors == []
    line = only_line(result)
    tokens = line.split(" ")
    assert "decision=skipped" in tokens
    assert f"reason={case.reason}" in tokens
    if case.record is not None:
        assert f"record={case.record}" in tokens
    for key, value in case.extra.items():
        assert f"{key}={value}" in tokens
    assert session.calls == []  # nothing was sent to Kubernetes


def test_the_table_covers_at_least_fifteen_distinct_payloads() -> None:
    assert len(CASES) >= 15
    assert len({c.reason for c in CASES}) >= 12


def test_a_long_or_odd_field_is_clipped_and_quoted_in_the_log(trigger: ModuleType, session: FakeSession) -> None:
    status = "weird\nstatus " + "x" * 500
    line = only_line(run(trigger, record(analysisStatus=status), DOC_EVENT.format(action="update")))
    assert "\n" not in line
    assert "x" * 200 not in line
    assert 'status="weird\\nstatus ' in line


# --- bodies the handler accepts ----------------------------------------------------------------------------------


def test_pending_document_create_posts_one_resource(trigger: ModuleType, session: FakeSession) -> None:
    result = run(trigger, record(), DOC_EVENT.format(action="create"))

    name = trigger.analysis_name("main", "mistake_records", "r1", "2026-01-05T08:00:00.000+00:00")
    assert result.json() == {
        "decision": "queued",
        "reason": "created",
        "record": R1,
        "analysis": name,
        "httpStatus": 201,
    }
    assert (
        only_line(result)
        == f"mistake-trigger decision=queued reason=created record={R1} analysis={name} http=201 action=create"
    )
    assert len(session.calls) == 1
    call = session.calls[0]
    assert call["url"] == "https://127.0.0.1:6443/apis/mistakes.dev/v1alpha1/namespaces/analyses/mistakeanalyses"
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert call["timeout"] == (3.0, 3.0)
    assert call["allow_redirects"] is False
    posted = session.posted
    assert posted["metadata"]["name"] == name
    assert posted["metadata"]["namespace"] == "analyses"
    assert posted["spec"]["imageIds"] == ["img-1", "img-2"]
    assert "reanalysis" not in posted["spec"]


@pytest.mark.parametrize(
    ("event", "fields"),
    [
        pytest.param(DOC_EVENT.format(action="update"), {}, id="document update"),
        pytest.param(DOC_EVENT.format(action="upsert"), {}, id="document upsert"),
        pytest.param(
            ROW_EVENT.format(action="create"), {"$tableId": "mistake_records", "$collectionId": DROP}, id="row create"
        ),
        pytest.param(
            ROW_EVENT.format(action="upsert"), {"$tableId": "mistake_records", "$collectionId": DROP}, id="row upsert"
        ),
        pytest.param(
            "tablesDB.main.tables.mistake_records.rows.r1.update",
            {"$tableId": "mistake_records", "$collectionId": DROP},
            id="tablesDB update",
        ),
        pytest.param(DOC_EVENT.format(action="create"), {"analysisStatus": DROP}, id="status absent"),
        pytest.param(DOC_EVENT.format(action="create"), {"analysisStatus": None}, id="status null"),
        pytest.param(
            DOC_EVENT.format(action="create"), {"$databaseId": DROP, "$collectionId": DROP}, id="ids from the event"
        ),
    ],
)
def test_pending_records_of_every_event_form_are_queued(
    trigger: ModuleType, session: FakeSession, event: str, fields: dict[str, Any]
) -> None:
    result = run(trigger, record(**fields), event)
    assert result.json()["decision"] == "queued"
    assert session.posted["spec"]["record"] == {
        "databaseId": "main",
        "collectionId": "mistake_records",
        "documentId": "r1",
    }
    assert session.posted["spec"]["source"]["event"] == event


def test_record_ids_with_dots_are_taken_from_the_body(trigger: ModuleType, session: FakeSession) -> None:
    body = record(**{"$id": "a.b.create", "$databaseId": "db.1"})
    result = run(trigger, body, "databases.db.1.collections.mistake_records.documents.a.b.create.update")
    assert result.json()["record"] == "db.1/mistake_records/a.b.create"
    assert session.posted["spec"]["record"]["documentId"] == "a.b.create"


class BareRequest:
    """An older runtime's request: only `body` (already a dict or a string) and `headers`."""

    def __init__(self, body: Any, headers: dict[str, str]) -> None:
        self.body = body
        self.headers = headers


class BareContext:
    def __init__(self, body: Any, event: str) -> None:
        self.req = BareRequest(body, headers(event))
        self.res = make_context().res
        self.logs: list[str] = []
        self.errors: list[str] = []

    def log(self, message: str) -> None:
        self.logs.append(message)

    def error(self, message: str) -> None:
        self.errors.append(message)


@pytest.mark.parametrize("shape", ["dict", "str", "bytes"])
def test_body_may_arrive_as_a_dict_or_text(trigger: ModuleType, session: FakeSession, shape: str) -> None:
    text = json.dumps(record())
    body = {"dict": record(), "str": text, "bytes": text.encode()}[shape]
    context = BareContext(body, DOC_EVENT.format(action="create"))
    response = trigger.main(context)
    assert json.loads(response["body"])["decision"] == "queued"
    assert len(context.logs) == 1
    assert context.errors == []


def test_a_record_without_images_still_gets_a_resource(trigger: ModuleType, session: FakeSession) -> None:
    result = run(trigger, record(originalImageIds=[]), DOC_EVENT.format(action="create"))
    assert result.json()["decision"] == "queued"
    assert session.posted["spec"]["imageIds"] == []


def test_more_than_64_images_pass_the_first_64_and_the_true_count(trigger: ModuleType, session: FakeSession) -> None:
    images = [f"img-{i}" for i in range(70)]
    result = run(trigger, record(originalImageIds=images), DOC_EVENT.format(action="create"))
    assert result.json()["decision"] == "queued"
    assert session.posted["spec"]["imageIds"] == images[:64]
    assert session.posted["metadata"]["annotations"]["mistakes.dev/original-image-count"] == "70"


def test_odd_user_and_image_values_still_give_an_acceptable_resource(trigger: ModuleType, session: FakeSession) -> None:
    body = record(userId="u" * 40, originalImageIds=["img-1", 5, None, "img-2"])
    result = run(trigger, body, DOC_EVENT.format(action="create"))
    assert result.json()["decision"] == "queued"
    assert session.posted["spec"]["userId"] == ""  # the operator fails it as InvalidSpec
    assert session.posted["spec"]["imageIds"] == ["img-1", "img-2"]


def test_reanalysis_carries_the_feedback_and_previous_question(trigger: ModuleType, session: FakeSession) -> None:
    body = record(wrongReason="题目识别错了", questionId="q-9", **{"$updatedAt": "2026-01-06T09:00:00.000+00:00"})
    result = run(trigger, body, DOC_EVENT.format(action="update"))
    assert result.json()["decision"] == "queued"
    assert session.posted["spec"]["reanalysis"] == {"wrongReason": "题目识别错了", "previousQuestionId": "q-9"}
    assert "题目识别错了" not in only_line(result)  # user text stays out of the logs


def test_collections_can_be_configured(
    trigger: ModuleType, session: FakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MISTAKE_COLLECTION_IDS", "mistake_records, mistake_records_v2")
    body = record(**{"$collectionId": "mistake_records_v2"})
    result = run(trigger, body, "databases.main.collections.mistake_records_v2.documents.r1.create")
    assert result.json()["decision"] == "queued"
