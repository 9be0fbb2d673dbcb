"""OpenAI wire format: parse chat/responses requests, build response and error bodies."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mistake_testbed.llm.answers import ResponseFormat
from mistake_testbed.llm.images import ImageInfo, ImageRejectedError, decode_image_url, image_tokens, text_tokens

JSON = Any

# Per-message framing overhead in OpenAI's chat token accounting.
TOKENS_PER_MESSAGE = 4


class APIResponseError(Exception):
    """An error the server answers with OpenAI's `{"error": {message, type, param, code}}` body."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, JSON]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class ParsedRequest:
    endpoint: str  # "chat" | "responses"
    model: str
    text: str
    images: list[ImageInfo]
    fmt: ResponseFormat
    max_tokens: int | None
    message_count: int
    body: dict[str, JSON] = field(repr=False)

    @property
    def prompt_tokens(self) -> int:
        return (
            text_tokens(self.text)
            + TOKENS_PER_MESSAGE * self.message_count
            + sum(image_tokens(i.width, i.height, i.detail) for i in self.images)
        )


def _bad(message: str, param: str | None = None, code: str | None = None) -> APIResponseError:
    return APIResponseError(400, message, param=param, code=code)


def _require_model(body: Mapping[str, JSON]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("you must provide a model parameter", param="model", code="missing_required_parameter")
    if body.get("stream"):
        raise _bad("stream=true is not supported by the test server", param="stream", code="unsupported_value")
    return model


def _image(url: JSON, detail: JSON, param: str) -> ImageInfo:
    if not isinstance(url, str):
        raise _bad("image_url must be a string", param=param, code="invalid_type")
    try:
        return decode_image_url(url, detail if isinstance(detail, str) else "auto")[1]
    except ImageRejectedError as exc:
        raise _bad(str(exc), param=param, code=exc.code) from exc


def parse_chat(body: Mapping[str, JSON], check_strict: bool, require_json_word: bool) -> ParsedRequest:
    model = _require_model(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty array", param="messages", code="invalid_type")
    texts: list[str] = []
    images: list[ImageInfo] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise _bad(f"Invalid message at messages[{i}]: a role is required", param=f"messages[{i}]")
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            for j, part in enumerate(content):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    texts.append(str(part.get("text", "")))
                elif kind == "image_url":
                    spec = part.get("image_url")
                    url = spec.get("url") if isinstance(spec, dict) else spec
                    detail = spec.get("detail", "auto") if isinstance(spec, dict) else "auto"
                    images.append(_image(url, detail, f"messages[{i}].content[{j}].image_url"))
                else:
                    raise _bad(
                        f"Invalid content part type {kind!r} at messages[{i}].content[{j}]",
                        param=f"messages[{i}].content[{j}].type",
                        code="invalid_value",
                    )
        elif content is not None:
            raise _bad(f"Invalid content at messages[{i}]", param=f"messages[{i}].content")
    fmt = _chat_format(body.get("response_format"))
    text = "\n".join(texts)
    _check_format(fmt, text, check_strict, require_json_word, "response_format")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return ParsedRequest(
        endpoint="chat",
        model=model,
        text=text,
        images=images,
        fmt=fmt,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        message_count=len(messages),
        body=dict(body),
    )


def _chat_format(spec: JSON) -> ResponseFormat:
    if spec is None:
        return ResponseFormat("text")
    if not isinstance(spec, dict):
        raise _bad("response_format must be an object", param="response_format")
    kind = spec.get("type")
    if kind == "text":
        return ResponseFormat("text")
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        inner = spec.get("json_schema")
        if not isinstance(inner, dict) or not isinstance(inner.get("schema"), dict):
            raise _bad(
                "Missing required parameter: 'response_format.json_schema.schema'.",
                param="response_format.json_schema",
                code="missing_required_parameter",
            )
        return ResponseFormat(
            "json_schema", str(inner.get("name", "response")), inner["schema"], bool(inner.get("strict"))
        )
    raise _bad(f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object' and 'json_schema'.",
               param="response_format.type", code="invalid_value")  # fmt: skip


def parse_responses(body: Mapping[str, JSON], check_strict: bool, require_json_word: bool) -> ParsedRequest:
    model = _require_model(body)
    raw = body.get("input")
    texts: list[str] = []
    images: list[ImageInfo] = []
    count = 0
    if isinstance(body.get("instructions"), str):
        texts.append(body["instructions"])
        count += 1
    if isinstance(raw, str):
        texts.append(raw)
        count += 1
    elif isinstance(raw, list):
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                raise _bad(f"Invalid input item at input[{i}]", param=f"input[{i}]")
            count += 1
            content = item.get("content")
            if isinstance(content, str):
                texts.append(content)
                continue
            for j, part in enumerate(content if isinstance(content, list) else []):
                kind = part.get("type") if isinstance(part, dict) else None
                if kind in ("input_text", "text", "output_text"):
                    texts.append(str(part.get("text", "")))
                elif kind == "input_image":
                    images.append(_image(part.get("image_url"), part.get("detail", "auto"), f"input[{i}].content[{j}]"))
                else:
                    raise _bad(f"Invalid content part type {kind!r}", param=f"input[{i}].content[{j}].type")
    else:
        raise _bad("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    text_spec = body.get("text")
    spec = text_spec.get("format") if isinstance(text_spec, dict) else None
    if spec is None:
        fmt = ResponseFormat("text")
    elif isinstance(spec, dict) and spec.get("type") == "json_schema":
        if not isinstance(spec.get("schema"), dict):
            raise _bad("Missing required parameter: 'text.format.schema'.", param="text.format.schema",
                       code="missing_required_parameter")  # fmt: skip
        fmt = ResponseFormat("json_schema", str(spec.get("name", "response")), spec["schema"], bool(spec.get("strict")))
    elif isinstance(spec, dict) and spec.get("type") in ("json_object", "text"):
        fmt = ResponseFormat(spec["type"])
    else:
        raise _bad("Invalid text.format", param="text.format.type", code="invalid_value")
    text = "\n".join(texts)
    _check_format(fmt, text, check_strict, require_json_word, "text.format")
    max_tokens = body.get("max_output_tokens")
    return ParsedRequest(
        endpoint="responses",
        model=model,
        text=text,
        images=images,
        fmt=fmt,
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        message_count=count,
        body=dict(body),
    )


def _check_format(fmt: ResponseFormat, text: str, check_strict: bool, require_json_word: bool, param: str) -> None:
    if fmt.kind == "json_object" and require_json_word and "json" not in text.lower():
        raise _bad(
            f"'messages' must contain the word 'json' in some form, to use '{param}' of type 'json_object'.",
            param="messages",
        )
    if fmt.kind == "json_schema" and fmt.strict and check_strict and fmt.schema is not None:
        problem = strict_schema_problem(fmt.schema)
        if problem:
            raise _bad(f"Invalid schema for {param} '{fmt.name}': {problem}", param=param, code="invalid_json_schema")


def strict_schema_problem(schema: Mapping[str, JSON]) -> str | None:
    """The first rule of OpenAI's strict structured-output mode this schema breaks, if any."""
    if schema.get("type") != "object":
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{schema.get('type')}\"'."

    def walk(node: JSON, path: tuple[str, ...]) -> str | None:
        if not isinstance(node, dict):
            return None
        context = f"In context=({', '.join(repr(p) for p in path)})"
        props = node.get("properties")
        if node.get("type") == "object" or isinstance(props, dict):
            if node.get("additionalProperties") is not False:
                return f"{context}, 'additionalProperties' is required to be supplied and to be false."
            missing = [k for k in (props or {}) if k not in node.get("required", [])]
            if missing:
                return (
                    f"{context}, 'required' is required to be supplied and to be an array including every key "
                    f"in properties. Missing '{missing[0]}'."
                )
        children: list[tuple[JSON, tuple[str, ...]]] = []
        for key in ("properties", "$defs", "definitions"):
            for name, sub in (node.get(key) or {}).items():
                children.append((sub, (*path, key, name)))
        for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
            for index, sub in enumerate(node.get(key) or []):
                children.append((sub, (*path, key, str(index))))
        if isinstance(node.get("items"), dict):
            children.append((node["items"], (*path, "items")))
        for sub, sub_path in children:
            problem = walk(sub, sub_path)
            if problem:
                return problem
        return None

    return walk(schema, ())


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def chat_body(
    req: ParsedRequest,
    content: str | None,
    finish_reason: str,
    completion_tokens: int,
    refusal: str | None = None,
) -> dict[str, JSON]:
    prompt_tokens = req.prompt_tokens
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": req.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal, "annotations": []},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_testbed",
    }


def responses_body(
    req: ParsedRequest,
    content: str | None,
    finish_reason: str,
    completion_tokens: int,
    refusal: str | None = None,
) -> dict[str, JSON]:
    prompt_tokens = req.prompt_tokens
    parts: list[dict[str, JSON]] = []
    if refusal is not None:
        parts.append({"type": "refusal", "refusal": refusal})
    elif content is not None:
        parts.append({"type": "output_text", "text": content, "annotations": [], "logprobs": []})
    incomplete = {"length": "max_output_tokens", "content_filter": "content_filter"}.get(finish_reason)
    fmt: dict[str, JSON] = {"type": req.fmt.kind}
    if req.fmt.kind == "json_schema":
        fmt.update(name=req.fmt.name, schema=req.fmt.schema, strict=req.fmt.strict)
    return {
        "id": new_id("resp_"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "error": None,
        "incomplete_details": {"reason": incomplete} if incomplete else None,
        "instructions": req.body.get("instructions"),
        "max_output_tokens": req.max_tokens,
        "model": req.model,
        "output": [
            {
                "type": "message",
                "id": new_id("msg_"),
                "status": "incomplete" if incomplete else "completed",
                "role": "assistant",
                "content": parts,
            }
        ],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": req.body.get("temperature", 1.0),
        "text": {"format": fmt},
        "tool_choice": "auto",
        "tools": [],
        "top_p": req.body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "metadata": {},
    }
