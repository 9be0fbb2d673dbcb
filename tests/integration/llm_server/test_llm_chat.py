"""Chat completions and Responses API through the real openai SDK: formats, fixtures, usage, request errors."""

from __future__ import annotations

import json

import openai
import pytest
from llm_helpers import ANALYSIS_SCHEMA, png_data_url, schema_format, vision_messages
from openai import OpenAI
from pydantic import BaseModel

from mistake_testbed.llm import LLMTestServer, schema_errors
from mistake_testbed.samples import SampleSet

pytestmark = pytest.mark.integration


def test_image_with_strict_schema_returns_schema_valid_json(openai_client: OpenAI, llm: LLMTestServer) -> None:
    result = openai_client.chat.completions.create(
        model=llm.model,
        temperature=0,
        max_completion_tokens=2048,
        messages=vision_messages(png_data_url()),
        response_format=schema_format(),
    )
    choice = result.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.content is not None
    assert schema_errors(ANALYSIS_SCHEMA, json.loads(choice.message.content)) == []
    assert result.usage is not None
    assert result.usage.prompt_tokens > 0
    assert result.usage.completion_tokens > 0
    [seen] = llm.requests
    assert (seen.status, seen.retry_count, seen.image_count) == (200, 0, 1)


def test_every_sample_photo_round_trips_its_expected_analysis(
    openai_client: OpenAI, llm: LLMTestServer, sample_set: SampleSet
) -> None:
    for sample in sample_set.photos():
        expected = sample.expected
        assert expected is not None
        result = openai_client.chat.completions.create(
            model=llm.model, messages=vision_messages(*sample.data_urls()), response_format=schema_format()
        )
        analysis = json.loads(result.choices[0].message.content or "")
        assert analysis["subject"] == expected.subject, sample.name
        assert expected.snippet in analysis["question"]["text"], sample.name
        assert analysis["question"]["options"] == list(expected.options), sample.name
        assert analysis["answer"] == expected.answer, sample.name
        # The schema says "fill"/"solve": the server maps the fixture's vocabulary onto the enum.
        assert analysis["question"]["type"] in ("choice", "fill", "solve")
        assert (analysis["question"]["type"] == "choice") == (expected.type == "choice")
    assert {r.fixture for r in llm.requests} == {s.name for s in sample_set.photos()}


def test_parse_with_pydantic_model(openai_client: OpenAI, llm: LLMTestServer, sample_set: SampleSet) -> None:
    class Question(BaseModel):
        subject: str
        type: str
        content: str
        options: list[str]
        answer: str

    result = openai_client.chat.completions.parse(
        model=llm.model,
        messages=vision_messages(sample_set.photo("english-choice").data_url()),
        response_format=Question,
    )
    parsed = result.choices[0].message.parsed
    assert parsed is not None
    assert (parsed.subject, parsed.type, parsed.answer) == ("english", "choice", "B")
    assert parsed.options[1] == "B. Of course not"


def test_json_object_mode_returns_an_object(openai_client: OpenAI, llm: LLMTestServer, sample_set: SampleSet) -> None:
    result = openai_client.chat.completions.create(
        model=llm.model,
        messages=vision_messages(sample_set.photo("physics-choice").data_url(), text="Answer in JSON."),
        response_format={"type": "json_object"},
    )
    data = json.loads(result.choices[0].message.content or "")
    assert data["subject"] == "physics"
    assert data["answer"] == "C"


def test_json_object_mode_requires_the_word_json(openai_client: OpenAI, llm: LLMTestServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model=llm.model, messages=vision_messages(png_data_url()), response_format={"type": "json_object"}
        )
    assert "json" in caught.value.message


def test_plain_text_mode_uses_the_legacy_marker_format(openai_client: OpenAI, llm: LLMTestServer) -> None:
    result = openai_client.chat.completions.create(model=llm.model, messages=vision_messages(png_data_url()))
    content = result.choices[0].message.content or ""
    assert content.startswith("##TYPE##")
    assert content.rstrip().endswith("##END##")


def test_responses_api_with_json_schema(openai_client: OpenAI, llm: LLMTestServer, sample_set: SampleSet) -> None:
    sample = sample_set.photo("chemistry-fill")
    response = openai_client.responses.create(
        model=llm.model,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Read the question."},
                    {"type": "input_image", "image_url": sample.data_url(), "detail": "high"},
                ],
            }
        ],
        text={"format": {"type": "json_schema", "name": "analysis", "strict": True, "schema": ANALYSIS_SCHEMA}},
    )
    assert response.status == "completed"
    data = json.loads(response.output_text)
    assert schema_errors(ANALYSIS_SCHEMA, data) == []
    assert data["subject"] == "chemistry"
    assert data["question"]["type"] == "fill"
    assert response.usage is not None
    assert response.usage.input_tokens > 85
    assert llm.requests[-1].endpoint == "responses"


def test_models_list(openai_client: OpenAI, llm: LLMTestServer) -> None:
    assert llm.model in [m.id for m in openai_client.models.list()]


@pytest.mark.parametrize("key", [None, "sk-wrong-key-0000"])
def test_wrong_or_missing_key_is_an_authentication_error(llm: LLMTestServer, key: str | None) -> None:
    client = OpenAI(base_url=llm.base_url, api_key=key or "unused", max_retries=0)
    headers = {"Authorization": ""} if key is None else {}
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(
            model=llm.model, messages=[{"role": "user", "content": "hi"}], extra_headers=headers
        )
    assert caught.value.status_code == 401
    assert isinstance(caught.value.body, dict)
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.request_id
    assert caught.value.request_id.startswith("req_")


def test_strict_schema_without_additional_properties_false_is_refused(
    openai_client: OpenAI, llm: LLMTestServer
) -> None:
    loose = {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]}
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model=llm.model, messages=vision_messages(png_data_url()), response_format=schema_format(loose)
        )
    assert "additionalProperties" in caught.value.message


def test_bad_images_are_refused_with_400(openai_client: OpenAI, llm: LLMTestServer, sample_set: SampleSet) -> None:
    codes = {}
    for sample in sample_set.bad_inputs():
        with pytest.raises(openai.BadRequestError) as caught:
            openai_client.chat.completions.create(
                model=llm.model, messages=vision_messages(sample.data_url()), response_format=schema_format()
            )
        codes[sample.name] = caught.value.code
    assert codes == {
        "empty": "invalid_image_format",
        "truncated": "invalid_image_format",
        "pdf-as-jpg": "invalid_image_format",
        "html-as-jpg": "invalid_image_format",
        "decompression-bomb": "image_too_large",
    }


def test_prompt_tokens_grow_with_image_size(openai_client: OpenAI, llm: LLMTestServer) -> None:
    tokens = []
    # Past a 768-px short side the tile formula scales the image down, so the growth stops there.
    for side in (256, 512, 768):
        result = openai_client.chat.completions.create(
            model=llm.model, messages=vision_messages(png_data_url(side, side * 2)), response_format=schema_format()
        )
        assert result.usage is not None
        tokens.append(result.usage.prompt_tokens)
    assert tokens[0] < tokens[1] < tokens[2]
    assert [r.prompt_tokens for r in llm.requests] == tokens


def test_low_detail_costs_the_same_for_any_size(openai_client: OpenAI, llm: LLMTestServer) -> None:
    tokens = set()
    for side in (256, 2048):
        message = [{"type": "image_url", "image_url": {"url": png_data_url(side, side), "detail": "low"}}]
        result = openai_client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": message}])
        assert result.usage is not None
        tokens.add(result.usage.prompt_tokens)
    assert len(tokens) == 1


def test_small_token_budget_stops_with_length(openai_client: OpenAI, llm: LLMTestServer) -> None:
    result = openai_client.chat.completions.create(
        model=llm.model,
        messages=vision_messages(png_data_url()),
        response_format=schema_format(),
        max_completion_tokens=5,
    )
    choice = result.choices[0]
    assert choice.finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice.message.content or "")
