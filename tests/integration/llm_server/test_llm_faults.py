"""Each injected fault surfaces through the real openai SDK as it would from a provider."""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

import openai
import pytest
import requests
from llm_helpers import ANALYSIS_SCHEMA, png_data_url, schema_format, vision_messages
from openai import OpenAI
from pydantic import BaseModel

from mistake_testbed.llm import FAULT_HEADER, LLMTestServer, RequestRecord, schema_errors
from mistake_testbed.samples import SampleSet

pytestmark = pytest.mark.integration

# Arrival gaps are measured on the server; this only absorbs float rounding, never a slow machine.
EPSILON = 0.005


def ask(client: OpenAI, llm: LLMTestServer, **kwargs: Any) -> Any:
    return client.chat.completions.create(
        model=llm.model, messages=vision_messages(png_data_url()), response_format=schema_format(), **kwargs
    )


def gaps(records: list[RequestRecord]) -> list[float]:
    return [b.arrival - a.arrival for a, b in itertools.pairwise(records)]


def test_sdk_retry_waits_for_retry_after_seconds(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="rate_limit", retry_after=1, times=2)
    result = ask(openai_client.with_options(max_retries=2), llm)
    assert result.choices[0].finish_reason == "stop"
    records = llm.requests
    assert [r.status for r in records] == [429, 429, 200]
    assert [r.retry_count for r in records] == [0, 1, 2]
    assert all(gap >= 1.0 - EPSILON for gap in gaps(records)), gaps(records)


def test_sdk_retry_prefers_retry_after_ms(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="http_error", status=503, retry_after_ms=300, retry_after=5, times=2)
    ask(openai_client.with_options(max_retries=2), llm)
    records = llm.requests
    assert [r.status for r in records] == [503, 503, 200]
    # Both headers were sent; the SDK must have used the millisecond one (0.3 s, not 5 s).
    assert all(gap >= 0.3 - EPSILON for gap in gaps(records)), gaps(records)
    assert all(gap < 5.0 for gap in gaps(records)), "retry-after-ms should win over Retry-After"


def test_retry_after_beyond_two_minutes_is_not_retried(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="rate_limit", retry_after=600)
    with pytest.raises(openai.RateLimitError) as caught:
        ask(openai_client.with_options(max_retries=2), llm)
    assert caught.value.response.headers["retry-after"] == "600"
    assert len(llm.requests) == 1


def test_should_retry_false_stops_the_sdk_retry(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="http_error", status=500, should_retry=False)
    with pytest.raises(openai.InternalServerError):
        ask(openai_client.with_options(max_retries=2), llm)
    assert len(llm.requests) == 1


@pytest.mark.parametrize(
    ("spec", "error", "status"),
    [
        ("rate_limit;retry_after=1", openai.RateLimitError, 429),
        ("http_error", openai.InternalServerError, 500),
        ("http_error;status=503", openai.InternalServerError, 503),
        ("http_error;status=400", openai.BadRequestError, 400),
        ("http_error;status=403", openai.PermissionDeniedError, 403),
        ("http_error;status=404", openai.NotFoundError, 404),
        ("http_error;status=409", openai.ConflictError, 409),
        ("http_error;status=422", openai.UnprocessableEntityError, 422),
    ],
)
def test_status_faults_raise_the_documented_exception(
    openai_client: OpenAI, llm: LLMTestServer, spec: str, error: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(error) as caught:
        ask(openai_client.with_options(max_retries=0), llm, extra_headers={FAULT_HEADER: spec})
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict)
    assert "message" in caught.value.body
    assert caught.value.request_id


def test_timeout_fault_is_an_api_timeout_error(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="timeout")
    with pytest.raises(openai.APITimeoutError):
        ask(openai_client.with_options(max_retries=0, timeout=0.5), llm)
    # The server notices the client hanging up and records the request as unanswered.
    assert llm.stats.wait_for(lambda s: s.in_flight == 0, timeout=10)
    [record] = llm.requests
    assert record.client_gone
    assert record.status is None


def test_timeouts_are_retried_by_the_sdk(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="timeout", times=1)
    result = ask(openai_client.with_options(max_retries=1, timeout=0.5), llm)
    assert result.choices[0].finish_reason == "stop"
    assert [r.retry_count for r in llm.requests] == [0, 1]


def test_latency_fault_delays_the_answer(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="latency", delay=0.2)
    ask(openai_client, llm)
    [record] = llm.requests
    assert record.start is not None
    assert record.start - record.arrival >= 0.2 - EPSILON


def test_malformed_json_content(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="malformed_json")
    result = ask(openai_client, llm)
    assert result.choices[0].finish_reason == "stop"
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.choices[0].message.content or "")


def test_schema_violating_content(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="schema_violation")
    result = ask(openai_client, llm)
    data = json.loads(result.choices[0].message.content or "")
    assert schema_errors(ANALYSIS_SCHEMA, data) != []


def test_refusal(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="refusal")
    message = ask(openai_client, llm).choices[0].message
    assert message.content is None
    assert message.refusal


def test_truncated_output(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="truncated")
    choice = ask(openai_client, llm).choices[0]
    assert choice.finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice.message.content or "")


def test_content_filter(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="content_filter")
    choice = ask(openai_client, llm).choices[0]
    assert choice.finish_reason == "content_filter"
    assert choice.message.content is None


class Answer(BaseModel):
    subject: str
    answer: str


@pytest.mark.parametrize(
    ("kind", "error"),
    [("truncated", openai.LengthFinishReasonError), ("content_filter", openai.ContentFilterFinishReasonError)],
)
def test_parse_raises_the_sdk_finish_reason_errors(
    openai_client: OpenAI, llm: LLMTestServer, kind: str, error: type[Exception]
) -> None:
    llm.add_fault(kind=kind)
    with pytest.raises(error):
        openai_client.chat.completions.parse(
            model=llm.model, messages=vision_messages(png_data_url()), response_format=Answer
        )


def test_parse_surfaces_a_refusal(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="refusal")
    message = (
        openai_client.chat.completions.parse(
            model=llm.model, messages=vision_messages(png_data_url()), response_format=Answer
        )
        .choices[0]
        .message
    )
    assert message.parsed is None
    assert message.refusal


def test_responses_api_truncated_and_refused(openai_client: OpenAI, llm: LLMTestServer) -> None:
    text_format = {"format": {"type": "json_schema", "name": "a", "strict": True, "schema": ANALYSIS_SCHEMA}}
    llm.add_fault(kind="truncated", times=1)
    llm.add_fault(kind="refusal", times=1)
    truncated = openai_client.responses.create(model=llm.model, input="Analyse.", text=text_format)  # type: ignore[arg-type]
    assert truncated.status == "incomplete"
    assert truncated.incomplete_details is not None
    assert truncated.incomplete_details.reason == "max_output_tokens"
    refused = openai_client.responses.create(model=llm.model, input="Analyse.", text=text_format)  # type: ignore[arg-type]
    assert refused.output_text == ""
    assert refused.output[0].content[0].type == "refusal"


def test_rule_matching_a_sample_marker_only_hits_that_photo(
    openai_client: OpenAI, llm: LLMTestServer, sample_set: SampleSet
) -> None:
    llm.add_fault(kind="http_error", status=500, match="math-fill")
    client = openai_client.with_options(max_retries=0)
    for name in ("math-choice", "math-fill", "english-choice"):
        with contextlib.suppress(openai.InternalServerError):
            client.chat.completions.create(
                model=llm.model,
                messages=vision_messages(sample_set.photo(name).data_url()),
                response_format=schema_format(),
            )
    assert {r.fixture or r.markers[0]: r.status for r in llm.requests} == {
        "math-choice": 200,
        "math-fill": 500,
        "english-choice": 200,
    }


def test_share_of_requests_is_seeded(openai_client: OpenAI, llm: LLMTestServer) -> None:
    def run() -> list[int | None]:
        llm.reset()
        llm.add_fault(kind="http_error", status=500, probability=0.3)
        client = openai_client.with_options(max_retries=0)
        for _ in range(30):
            with contextlib.suppress(openai.InternalServerError):
                client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": "hi"}])
        return [r.status for r in llm.requests]

    first, second = run(), run()
    assert first == second
    assert 0 < first.count(500) < 30


def test_time_window(openai_client: OpenAI, llm: LLMTestServer) -> None:
    llm.add_fault(kind="http_error", status=500, start_after=3600)
    llm.add_fault(kind="http_error", status=503, duration=0)
    ask(openai_client.with_options(max_retries=0), llm)
    assert [r.status for r in llm.requests] == [200]
    assert all(not rule.to_json()["active"] for rule in llm.faults)


def test_admin_endpoint_drives_faults_and_stats(openai_client: OpenAI, llm: LLMTestServer) -> None:
    created = requests.post(f"{llm.admin_url}/faults", json={"kind": "rate_limit", "retry_after": 1}, timeout=5)
    assert created.status_code == 201
    with pytest.raises(openai.RateLimitError):
        ask(openai_client.with_options(max_retries=0), llm)
    listed = requests.get(f"{llm.admin_url}/faults", timeout=5).json()["faults"]
    assert [(f["id"], f["hits"]) for f in listed] == [(created.json()["id"], 1)]
    assert requests.delete(f"{llm.admin_url}/faults/{created.json()['id']}", timeout=5).status_code == 200
    ask(openai_client.with_options(max_retries=0), llm)
    stats = requests.get(f"{llm.admin_url}/stats", timeout=5).json()
    assert stats["by_status"] == {"429": 1, "200": 1}
    assert [r["retry_count"] for r in stats["request_log"]] == [0, 0]
    assert requests.post(f"{llm.admin_url}/reset", timeout=5).json() == {"ok": True}
    assert requests.get(f"{llm.admin_url}/stats", timeout=5).json()["requests"] == 0
    bad = requests.post(f"{llm.admin_url}/faults", json={"kind": "explode"}, timeout=5)
    assert bad.status_code == 400
