"""Functions-style event delivery to an HTTP function runtime, and the in-process runtime context."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from appwrite.services.tables_db import TablesDB
from appwrite_support import DB, Api, record

from mistake_testbed.appwrite import AppwriteTestServer
from mistake_testbed.appwrite.events import pattern_matches
from mistake_testbed.appwrite.function_host import FunctionHost
from mistake_testbed.appwrite.runtime import RuntimeContext, event_context, invoke

pytestmark = pytest.mark.integration


def echo(context: Any) -> Any:
    """A function that logs what it got and answers like the trigger (always empty)."""
    body = context.req.body
    context.log("event", context.req.headers.get("x-appwrite-event"), {"status": body.get("analysisStatus")})
    return context.res.empty()


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        (
            "databases.*.collections.mistake_records.documents.*.create",
            "databases.main.collections.mistake_records.documents.r1.create",
            True,
        ),
        (
            "databases.*.collections.mistake_records.documents.*.create",
            "databases.main.collections.mistake_records.documents.r1.update",
            False,
        ),
        ("databases.*.collections.*.documents.*", "databases.main.collections.questions.documents.q1.upsert", True),
        (
            "databases.main.tables.mistake_records.rows.*.update",
            "databases.main.tables.mistake_records.rows.r1.update",
            True,
        ),
        ("databases.*.collections.*", "databases.main.collections.questions.documents.q1.create", True),
        ("databases.*.collections", "databases.main.collections.questions.documents.q1.create", False),
        (
            "databases.*.collections.questions.documents.*.create.extra",
            "databases.main.collections.questions.documents.q1.create",
            False,
        ),
    ],
)
def test_pattern_matching(pattern: str, event: str, expected: bool) -> None:
    assert pattern_matches(pattern, event) is expected


def test_create_and_update_reach_the_function_with_executor_headers(
    api: Api, appwrite: AppwriteTestServer, function_host: Callable[..., FunctionHost]
) -> None:
    host = function_host(echo)
    appwrite.subscribe(host.url)
    api.create("mistake_records", "r1", record())
    api.update("mistake_records", "r1", {"analysisStatus": "processing"})
    api.create(
        "questions",
        "q1",
        {"subject": "m", "moduleIds": [], "knowledgePointIds": [], "type": "choice", "difficulty": 3, "content": "c"},
    )  # not subscribed

    executions = appwrite.wait_for_executions(2)
    runs = host.wait_for_runs(2)
    assert [e.status for e in executions] == [204, 204]
    assert all(e.duration > 0 for e in executions)
    first = runs[0]
    assert first.method == "POST"
    assert first.path == "/"
    headers = first.headers
    assert headers["x-appwrite-trigger"] == "event"
    assert headers["x-appwrite-event"] == "databases.main.collections.mistake_records.documents.r1.create"
    assert headers["x-appwrite-key"].startswith("ephemeral_")
    assert headers["x-appwrite-user-id"] == ""
    assert headers["x-appwrite-execution-id"] == executions[0].id
    assert headers["content-type"] == "application/json"
    payload = json.loads(first.body)
    assert payload["$id"] == "r1"
    assert payload["$sequence"] == "1"
    assert ("$tableId" in payload) is api.rows
    assert ("$collectionId" in payload) is not api.rows
    assert [r.logs[0] for r in runs] == [
        'event databases.main.collections.mistake_records.documents.r1.create {"status": "pending"}',
        'event databases.main.collections.mistake_records.documents.r1.update {"status": "processing"}',
    ]
    assert len(appwrite.events) == 3  # every write is logged, subscribed or not


def test_the_execution_key_works_against_the_server(
    appwrite: AppwriteTestServer, function_host: Callable[..., FunctionHost]
) -> None:
    def reads_back(context: Any) -> Any:
        client = appwrite.client(key=context.req.headers["x-appwrite-key"])
        row = TablesDB(client).get_row(DB, "mistake_records", context.req.body_json["$id"])
        return context.res.json({"userId": row.data["userId"]})

    host = function_host(reads_back)
    appwrite.subscribe(host.url)
    TablesDB(appwrite.client()).create_row(DB, "mistake_records", "r1", record())
    (execution,) = appwrite.wait_for_executions(1)
    assert execution.status == 200
    assert json.loads(execution.response_body) == {"userId": "user-1"}


@pytest.mark.parametrize(("style", "expected"), [("legacy", "collections"), ("tables", "tables")])
def test_row_writes_event_name_style(style: str, expected: str) -> None:
    with AppwriteTestServer(row_event_style=style) as aw:
        TablesDB(aw.client()).create_row(DB, "mistake_records", "r1", record())
        (event,) = aw.events
    assert event.name.split(".")[2] == expected
    assert {n.split(".")[2] for n in event.names} == {"collections", "tables"}
    assert "$tableId" in event.payload


def test_tables_pattern_subscription_fires_for_document_writes(
    api: Api, appwrite: AppwriteTestServer, function_host: Callable[..., FunctionHost]
) -> None:
    host = function_host(echo)
    appwrite.subscribe(
        host.url, ["databases.*.tables.mistake_records.rows.*.upsert", "databases.*.tables.*.rows.*.delete"]
    )
    api.upsert("mistake_records", "r1", record())
    api.delete("mistake_records", "r1")
    executions = appwrite.wait_for_executions(2)
    assert [e.event.rsplit(".", 1)[1] for e in executions] == ["upsert", "delete"]


def test_delivery_is_in_order_per_document(
    appwrite: AppwriteTestServer, function_host: Callable[..., FunctionHost]
) -> None:
    async def slow_first(context: Any) -> Any:
        body = context.req.body_json
        if body["note"] == "0":
            await asyncio.sleep(0.05)  # exercises ordering only; nothing waits on this
        context.log(body["$id"], body["note"])
        return context.res.json({"ok": True})

    host = function_host(slow_first)
    appwrite.subscribe(host.url, ["databases.*.collections.*.documents.*"])
    rows = TablesDB(appwrite.client())
    rows.create_row(DB, "mistake_records", "a", record(note="0"))
    for n in range(1, 5):
        rows.update_row(DB, "mistake_records", "a", {"note": str(n)})
    runs = host.wait_for_runs(5)
    assert [r.logs[0] for r in runs] == [f"a {n}" for n in range(5)]


def test_unreachable_handler_is_logged_not_retried(appwrite: AppwriteTestServer) -> None:
    appwrite.subscribe("http://127.0.0.1:9/", timeout=2)
    TablesDB(appwrite.client()).create_row(DB, "mistake_records", "r1", record())
    (execution,) = appwrite.wait_for_executions(1)
    assert execution.status is None
    assert execution.error
    assert len(appwrite.executions) == 1


@pytest.mark.parametrize(
    ("main", "status", "error_text"),
    [
        (lambda ctx: None, 500, "Return statement missing"),
        (lambda ctx: 1 / 0, 500, "ZeroDivisionError"),
        (lambda ctx: ctx.res.text("hi", 201), 201, ""),
    ],
)
def test_function_host_applies_runtime_rules(
    appwrite: AppwriteTestServer, function_host: Callable[..., FunctionHost], main: Any, status: int, error_text: str
) -> None:
    host = function_host(main)
    appwrite.subscribe(host.url)
    TablesDB(appwrite.client()).create_row(DB, "mistake_records", "r1", record())
    (execution,) = appwrite.wait_for_executions(1)
    (run,) = host.wait_for_runs(1)
    assert execution.status == status == run.status
    assert error_text in "\n".join(run.errors)


def test_function_host_loads_an_entry_file_with_env(tmp_path: Any, function_host: Callable[..., FunctionHost]) -> None:
    (tmp_path / "helper.py").write_text("PREFIX = 'seen'\n")
    (tmp_path / "main.py").write_text(
        "from __future__ import annotations\nimport os\nfrom dataclasses import dataclass\n"
        "from helper import PREFIX\n\n@dataclass\nclass Box:\n    value: int\n\n"
        "async def main(context):\n"
        "    context.log(PREFIX, os.environ['WORKER_API_URL'])\n"
        "    return context.res.json({'q': context.req.query})\n"
    )
    host = function_host(tmp_path / "main.py", env={"WORKER_API_URL": "http://127.0.0.1:1"})
    import requests

    answer = requests.get(host.url + "path?a=1&b", timeout=5)
    assert answer.json() == {"q": {"a": "1", "b": ""}}
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert host.wait_for_runs(1)[0].logs == ["seen http://127.0.0.1:1"]


# -- in-process runtime ----------------------------------------------------------------------------------


def test_in_process_context_is_shaped_like_open_runtimes(runtime_context: Callable[..., RuntimeContext]) -> None:
    ctx = runtime_context({"a": 1}, {"X-Appwrite-Event": "e"}, method="post", path="/x", query_string="k=v&flag")
    assert ctx.req.body_binary == b'{"a":1}'
    assert ctx.req.body_text == '{"a":1}'
    assert ctx.req.body_json == {"a": 1} == ctx.req.body
    assert ctx.req.headers == {"x-appwrite-event": "e", "content-type": "application/json"}
    assert (ctx.req.method, ctx.req.path, ctx.req.query) == ("POST", "/x", {"k": "v", "flag": ""})
    assert ctx.req.url == "http://localhost/x?k=v&flag"
    assert ctx.req.port == 80
    assert runtime_context("plain").req.body == "plain"
    assert runtime_context(b"", {"content-type": "application/json"}).req.body == {}
    with pytest.raises(json.JSONDecodeError):
        _ = runtime_context(b"").req.body_json


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda r: r.text("hi"), {"body": b"hi", "statusCode": 200, "headers": {}}),
        (
            lambda r: r.json({"a": [1]}, 201),
            {"body": b'{"a":[1]}', "statusCode": 201, "headers": {"content-type": "application/json"}},
        ),
        (lambda r: r.binary(b"\x00"), {"body": b"\x00", "statusCode": 200, "headers": {}}),
        (lambda r: r.empty(), {"body": b"", "statusCode": 204, "headers": {}}),
        (lambda r: r.redirect("https://x"), {"body": b"", "statusCode": 301, "headers": {"location": "https://x"}}),
        (lambda r: r.send("s", 202), {"body": "s", "statusCode": 202, "headers": {}}),
    ],
)
def test_response_helpers_return_runtime_dicts(call: Any, expected: dict[str, Any]) -> None:
    assert call(RuntimeContext().res) == expected


def test_invoke_captures_logs_and_handles_async_main() -> None:
    async def main(context: Any) -> Any:
        context.log("got", context.req.body["$id"], [1, 2])
        context.error("x" * 9000)
        return context.res.empty()

    result = invoke(main, event_context({"$id": "r1"}, "databases.main.collections.c.documents.r1.create"))
    assert result.status == 204
    assert result.body == b""
    assert result.logs == ["got r1 [1, 2]"]
    assert len(result.errors[0]) == 8000
    missing = invoke(lambda ctx: None, event_context({}, "e"))
    assert missing.status == 500
    assert "Return statement missing" in missing.errors[0]
