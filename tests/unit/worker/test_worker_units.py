"""Plain functions of the worker: images, validation, prompt and schema, ids, stats, staleness, error classes."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import openai
import pytest
import requests
import urllib3.exceptions
from appwrite.exception import AppwriteException
from PIL import Image
from pydantic import SecretStr

from mistake_api import Reason
from mistake_worker.analysis import CONTENT_MAX, InvalidOutput, parse_analysis
from mistake_worker.errors import WorkerError, appwrite_reason
from mistake_worker.images import ImageLimits, prepare_image, sniff, target_size
from mistake_worker.llm import classify
from mistake_worker.prompt import SYSTEM_PROMPT, PromptContext, analysis_schema, user_text
from mistake_worker.runner import _stale
from mistake_worker.settings import AppwriteSettings, BatchSettings, WorkerSettings
from mistake_worker.store import AppwriteStore, BoundReachedError, _EnvOnceSession, never_sent
from mistake_worker.writeback import (
    Writer,
    education_level,
    kp_id_for,
    question_id_for,
    stable_id,
    stats_update,
)

pytestmark = pytest.mark.unit


def _jpeg(width: int, height: int, orientation: int = 1) -> bytes:
    image = Image.new("RGB", (width, height), (250, 250, 250))
    image.paste((0, 0, 0), (0, 0, width // 4, height // 8))  # a dark block top-left to check orientation
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes(), comment=b"secret")
    return out.getvalue()


def test_sniff_trusts_bytes_not_names() -> None:
    assert sniff(_jpeg(8, 8)) == "JPEG"
    assert sniff(b"%PDF-1.4 ...") is None
    assert sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"


def test_a_12_megapixel_photo_is_bounded_oriented_and_stripped() -> None:
    raw = _jpeg(4032, 3024, orientation=6)  # stored landscape, displayed portrait
    prepared = prepare_image(raw, ImageLimits())
    assert (prepared.width, prepared.height) == (1024, 1365)
    assert prepared.source_width * prepared.source_height == 4032 * 3024
    assert len(prepared.data) < len(raw)
    with Image.open(io.BytesIO(prepared.data)) as out:
        assert out.format == "JPEG"
        assert not out.getexif()
        assert "comment" not in out.info
        # After rotating 90° clockwise the dark block is at the top-right.
        assert out.getpixel((out.width - 5, 5))[0] < 60
        assert out.getpixel((5, 5))[0] > 200


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", Reason.IMAGE_CORRUPT),
        (b"<!DOCTYPE html><html></html>", Reason.IMAGE_UNSUPPORTED),
        (b"\x00\x00\x00\x18ftypheic\x00\x00", Reason.IMAGE_UNSUPPORTED),
    ],
)
def test_refusals_are_named(data: bytes, reason: Reason) -> None:
    with pytest.raises(WorkerError) as caught:
        prepare_image(data, ImageLimits())
    assert caught.value.reason is reason


def test_truncated_oversize_and_bomb() -> None:
    raw = _jpeg(600, 400)
    with pytest.raises(WorkerError, match="ImageCorrupt"):
        prepare_image(raw[: len(raw) // 2], ImageLimits())
    with pytest.raises(WorkerError, match="ImageTooLarge"):
        prepare_image(raw, ImageLimits(max_bytes=100))
    with pytest.raises(WorkerError, match="ImageBomb"):
        prepare_image(raw, ImageLimits(max_pixels=1000))


def test_target_size_keeps_aspect_and_never_upscales() -> None:
    assert target_size(800, 600, ImageLimits()) == (800, 600)
    assert target_size(4000, 1000, ImageLimits()) == (1568, 392)


VALID = {
    "content": "已知 \\(x=1\\)",
    "type": "choice",
    "options": ["A. 1", "B. 2"],
    "subject": "数学",
    "answer": "A",
    "explanation": "步骤",
    "modules": ["函数（描述）"],
    "knowledgePoints": [
        {"name": "一次函数", "module": "函数", "category": "bogus", "importance": "high"},
        {"name": "一次函数", "module": "函数", "category": "primary", "importance": "high"},
    ],
    "solvingHint": "提示",
    "errorCause": {"category": "carelessness", "explanation": "看错"},
    "difficulty": 9,
    "figures": [{"page": 1, "box": [0, 0, 10, 10], "caption": ""}, {"page": 1, "box": [5, 5, 1, 1], "caption": ""}],
}


def test_analysis_is_normalised_and_clamped() -> None:
    data = {**VALID, "content": "题" * (CONTENT_MAX + 50)}
    analysis = parse_analysis("```json\n" + json.dumps(data, ensure_ascii=False) + "\n```")
    assert analysis.subject == "math"
    assert len(analysis.content) == CONTENT_MAX
    assert analysis.modules == ("函数",)
    assert [k.name for k in analysis.knowledge_points] == ["一次函数"]
    assert analysis.knowledge_points[0].category == "primary"  # at least one primary
    assert analysis.difficulty == 5
    assert len(analysis.figures) == 1


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", json.dumps({**VALID, "subject": "astrology"}), json.dumps({**VALID, "knowledgePoints": []})],
)
def test_invalid_answers_raise_with_problems(text: str) -> None:
    with pytest.raises(InvalidOutput):
        parse_analysis(text)


def test_system_prompt_is_constant_and_variable_parts_go_to_the_user_message() -> None:
    ctx = PromptContext("初中", {"math": ["函数"]}, wrong_reason="选项识别错了", page_count=2)
    text = user_text(ctx)
    assert "选项识别错了" in text
    assert "函数" in text
    assert "选项识别错了" not in SYSTEM_PROMPT
    assert "\\( \\)" in SYSTEM_PROMPT
    assert "\\[ \\]" in SYSTEM_PROMPT


def test_schema_is_strict_mode_compatible() -> None:
    schema = analysis_schema(["函数"])

    def check(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "object":
                assert node["additionalProperties"] is False
                assert set(node["required"]) == set(node["properties"])
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    check(schema)
    assert schema["properties"]["modules"]["items"]["enum"] == ["函数", "未分类"]


def test_ids_are_deterministic_valid_and_distinct() -> None:
    a = question_id_for("main", "mistake_records", "r1")
    assert a == question_id_for("main", "mistake_records", "r1")
    assert a != question_id_for("main", "mistake_records", "R1")
    assert len(a) <= 36
    assert a[0].isalpha()
    assert kp_id_for("u", "m", "x") != kp_id_for("u", "m", "y")
    assert stable_id("k", "a|b") != stable_id("k", "a", "b")


def test_stats_follow_the_users_day() -> None:
    now = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 01:00 on 3 March in Asia/Shanghai
    profile = {
        "timezone": "Asia/Shanghai",
        "todayMistakes": 7,
        "weekMistakes": 10240,
        "totalMistakes": 20,
        "activeDays": 3,
        "lastResetDate": "2026-03-02T10:00:00.000+00:00",  # 2 March local: a new day has begun
        "lastActiveAt": "2026-03-02T10:00:00.000+00:00",
        "weeklyMistakesData": json.dumps([{"date": "2026-02-20", "count": 1}, {"date": "2026-03-02", "count": 7}]),
    }
    update = stats_update(profile, now)
    assert update["todayMistakes"] == 1
    assert update["todayPracticeSessions"] == 0
    assert update["activeDays"] == 4
    assert update["weekMistakes"] == 10240  # clamped to the column maximum
    assert update["totalMistakes"] == 21
    assert json.loads(update["weeklyMistakesData"]) == [
        {"date": "2026-03-02", "count": 7},
        {"date": "2026-03-03", "count": 1},
    ]


def test_education_level_from_grade() -> None:
    assert [education_level(g) for g in (3, 8, 11, None, "x")] == ["小学", "初中", "高中", "初中", "初中"]


def test_stale_records() -> None:
    rev = "2026-01-01T00:00:00.000+00:00"
    later = "2026-01-01T00:00:05.000+00:00"
    assert _stale({"$updatedAt": later, "analysisStatus": "pending"}, rev)[0] is Reason.SUPERSEDED  # type: ignore[index]
    # Our own earlier writes moved $updatedAt: a retry continues.
    assert _stale({"$updatedAt": later, "analysisStatus": "processing"}, rev) is None
    assert _stale({"$updatedAt": later, "analysisStatus": "ocrOK"}, rev) is None
    done = {"$updatedAt": later, "analysisStatus": "completed", "analyzedAt": later}
    assert _stale(done, rev)[0] is Reason.NOT_PENDING  # type: ignore[index]
    assert _stale({"$updatedAt": rev, "analysisStatus": "pending"}, rev) is None


def _status_error(status: int) -> openai.APIStatusError:
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    response = httpx2.Response(status, request=request, json={"error": {"message": "boom"}})
    return openai.APIStatusError("boom", response=response, body=None)


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (429, Reason.LLM_RATE_LIMITED),
        (503, Reason.LLM_UNAVAILABLE),
        (401, Reason.LLM_AUTH_FAILED),
        (400, Reason.LLM_BAD_REQUEST),
    ],
)
def test_llm_errors_are_classified(status: int, reason: Reason) -> None:
    assert classify(_status_error(status)).reason is reason


def test_timeouts_and_appwrite_codes() -> None:
    request = httpx2.Request("POST", "http://llm/v1/chat/completions")
    assert classify(openai.APITimeoutError(request=request)).reason is Reason.LLM_TIMEOUT
    assert appwrite_reason(0) is Reason.APPWRITE_UNAVAILABLE
    assert appwrite_reason(429) is Reason.APPWRITE_UNAVAILABLE
    assert appwrite_reason(401) is Reason.APPWRITE_AUTH_FAILED
    assert appwrite_reason(400) is Reason.APPWRITE_REJECTED


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MISTAKE_WORKER_CONCURRENCY", "50")
    monkeypatch.setenv("MISTAKE_BATCH_MEMBERS", '["ma-a", "ma-b"]')
    monkeypatch.setenv("MISTAKE_NAMESPACE", "ns")
    monkeypatch.setenv("MISTAKE_JOB_NAME", "mab-x")
    assert WorkerSettings().concurrency == 50
    assert BatchSettings().members == ["ma-a", "ma-b"]  # type: ignore[call-arg]
    monkeypatch.setenv("MISTAKE_BATCH_MEMBERS", '["ma-a", "ma-a"]')
    with pytest.raises(ValueError, match="duplicate"):
        BatchSettings()  # type: ignore[call-arg]


def test_sdk_sessions_read_proxy_settings_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "appwrite.local")
    session = _EnvOnceSession()
    plain = requests.Session()
    for url in ("https://cloud.example/v1/x", "https://appwrite.local/v1/x"):
        expected = plain.merge_environment_settings(url, {}, None, True, None)
        assert session.merge_environment_settings(url, {}, None, True, None) == expected

    def proxies(url: str) -> Any:
        return session.merge_environment_settings(url, {}, None, True, None)["proxies"]

    assert proxies("https://cloud.example/v1/y")["https"] == "http://proxy.internal:3128"
    # Answered from the cache: a later change of the environment (which a pod never sees) is not re-read.
    monkeypatch.setenv("HTTPS_PROXY", "http://other:1")
    assert proxies("https://cloud.example/v1/z")["https"] == "http://proxy.internal:3128"
    assert "https" not in proxies("https://appwrite.local/v1/z")


class _ProfileStore:
    """Just enough of AppwriteStore for the profile stats: one profile, every read and write counted."""

    def __init__(self, profile: dict[str, Any]) -> None:
        self.profile = profile
        self.reads = 0
        self.writes = 0
        self.increments = 0

    async def list_rows(self, table: str, queries: list[str]) -> list[dict[str, Any]]:
        self.reads += 1
        await asyncio.sleep(0)  # a real read yields to the loop
        return [dict(self.profile)]

    async def update_row(self, table: str, row_id: str, data: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        await asyncio.sleep(0)
        self.profile = {**self.profile, **data}
        return dict(self.profile)

    async def increment_row(
        self, table: str, row_id: str, column: str, value: int = 1, maximum: int | None = None
    ) -> dict[str, Any]:
        self.increments += 1
        await asyncio.sleep(0)
        result = int(self.profile.get(column) or 0) + value
        if maximum is not None and result > maximum:
            raise BoundReachedError(column)
        self.profile = {**self.profile, column: result}
        return dict(self.profile)


def test_concurrent_mistakes_of_one_user_are_counted_as_one_write_each_would() -> None:
    start = {"$id": "p1", "userId": "u1", "timezone": "Asia/Shanghai", "totalMistakes": 3, "weekMistakes": 1}
    # Around local midnight in Shanghai (16:00 UTC), so the day reset happens inside the group.
    moments = [datetime(2025, 3, 3, 15, 59, tzinfo=UTC) + timedelta(seconds=s) for s in range(1, 120, 17)]
    expected = dict(start)
    for now in moments:  # one write per mistake, strictly one after another
        expected.update(stats_update(expected, now))

    store = _ProfileStore(dict(start))
    writer = Writer(store)  # type: ignore[arg-type]

    async def count_all() -> list[bool]:
        return await asyncio.gather(*(writer.count_mistake("u1", now) for now in moments))

    assert asyncio.run(count_all()) == [True] * len(moments)
    assert store.profile == expected
    assert store.profile["totalMistakes"] == 3 + len(moments)
    assert store.writes < len(moments)  # the ones that queued behind the first write share the second
    assert store.reads == store.writes
    assert store.increments <= 3 * store.writes  # one per counter and flush


@pytest.fixture
def io_pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(1) as pool:
        yield pool


def _store(pool: ThreadPoolExecutor) -> AppwriteStore:
    settings = AppwriteSettings(endpoint="http://127.0.0.1:9/v1", project_id="p", api_key=SecretStr("k"))
    return AppwriteStore(settings, WorkerSettings(appwrite_backoff_seconds=0.001), pool)


def _failing_once(failure: Exception, calls: list[int]) -> Any:
    def call() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise failure
        return "ok"

    return call


def _sdk_error(code: int = 0, type_: str | None = None, cause: Exception | None = None) -> AppwriteException:
    error = AppwriteException(cause if cause is not None else "boom", code, type_)
    error.__context__ = cause  # the SDK raises it inside `except Exception as e`
    return error


def test_increments_are_retried_only_when_they_cannot_have_been_applied(io_pool: ThreadPoolExecutor) -> None:
    no_connection = urllib3.exceptions.NewConnectionError(None, "Connection refused")  # type: ignore[arg-type]
    refused = requests.exceptions.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/v1", no_connection))  # type: ignore[arg-type]
    dropped = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted."))
    assert never_sent(_sdk_error(cause=refused))
    assert never_sent(_sdk_error(cause=requests.exceptions.ConnectTimeout("connect timed out")))
    assert not never_sent(_sdk_error(cause=dropped))
    assert not never_sent(_sdk_error(cause=requests.exceptions.ReadTimeout("read timed out")))

    retried = [_sdk_error(429, "general_rate_limit_exceeded"), _sdk_error(503, "general_server_error")]
    for failure in [*retried, _sdk_error(cause=refused)]:
        calls: list[int] = []
        assert asyncio.run(_store(io_pool)._call("increment", _failing_once(failure, calls), idempotent=False)) == "ok"
        assert len(calls) == 2
    for failure in [_sdk_error(500, "general_unknown"), _sdk_error(cause=dropped)]:
        calls = []
        with pytest.raises(WorkerError, match="not retried"):
            asyncio.run(_store(io_pool)._call("increment", _failing_once(failure, calls), idempotent=False))
        assert len(calls) == 1
        calls = []  # the same failure of an idempotent write is retried
        assert asyncio.run(_store(io_pool)._call("update", _failing_once(failure, calls))) == "ok"

    calls = []
    with pytest.raises(BoundReachedError):
        asyncio.run(_store(io_pool)._call("increment", _failing_once(_sdk_error(400, "column_limit_exceeded"), calls)))
