"""The aiohttp application: OpenAI-compatible endpoints plus the `/_admin` control surface."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mistake_testbed.llm.answers import AnalysisFixture, AnswerBuilder, FixtureTable, violate_schema
from mistake_testbed.llm.faults import FAULT_HEADER, FaultBook, FaultRule, RequestFacts, parse_fault_header
from mistake_testbed.llm.images import text_tokens
from mistake_testbed.llm.protocol import (
    APIResponseError,
    ParsedRequest,
    chat_body,
    new_id,
    parse_chat,
    parse_responses,
    responses_body,
)
from mistake_testbed.llm.schema_instance import SchemaGenerationError
from mistake_testbed.llm.stats import RequestRecord, Stats

REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
# The SDK rejects bodies above its own limits long before this; it only guards the server's memory.
MAX_BODY_BYTES = 64 * 1024 * 1024
# Hold time for a `timeout` fault without an explicit delay: far beyond any sane client timeout.
DEFAULT_HOLD_SECONDS = 3600.0


@dataclass
class LLMServerConfig:
    api_key: str | None = "sk-testbed"
    """Bearer token required on /v1/*; None accepts any or no key."""
    model: str = "test-vision"
    models: tuple[str, ...] = ("test-vision", "test-text")
    strict_models: bool = False
    """Answer 404 model_not_found for a model outside `models` (real providers do)."""
    check_strict_schema: bool = True
    """Refuse strict json_schema requests that OpenAI's strict mode would refuse (additionalProperties, required)."""
    require_json_word: bool = True
    """json_object mode needs the word "json" in the prompt, as OpenAI and DashScope require."""
    seed: int = 0
    latency: FaultRule | None = None
    """A permanent latency rule (CLI option), not cleared by `reset()`."""
    fixtures: Iterable[AnalysisFixture] = field(default_factory=tuple)


class LLMServerState:
    """Everything the handlers share with the test: fixtures, faults, stats."""

    def __init__(self, config: LLMServerConfig) -> None:
        self.config = config
        self.fixtures = FixtureTable(config.fixtures)
        self.faults = FaultBook(config.seed)
        self.stats = Stats()
        self.answers = AnswerBuilder()
        self.shutdown = asyncio.Event()

    def reset(self) -> None:
        self.faults.clear()
        self.stats.reset()


def _json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, request_id: str | None = None
) -> web.Response:
    out = {"x-request-id": request_id or new_id("req_"), **(headers or {})}
    return web.Response(
        body=json.dumps(data, ensure_ascii=False).encode(),
        status=status,
        content_type="application/json",
        headers=out,
    )


def _error_response(err: APIResponseError, request_id: str) -> web.Response:
    return _json_response(err.body(), err.status, err.headers, request_id)


def _auth_error(request: web.Request, api_key: str | None) -> APIResponseError | None:
    if api_key is None:
        return None
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer ") or not header[7:].strip():
        return APIResponseError(
            401,
            "You didn't provide an API key. You need to provide your API key in an Authorization header using "
            "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
        )
    given = header[7:].strip()
    if given != api_key:
        shown = f"{given[:3]}{'*' * 8}{given[-4:]}" if len(given) > 8 else "***"
        return APIResponseError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")
    return None


def _retry_count(request: web.Request) -> int | None:
    raw = request.headers.get("x-stainless-retry-count")
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _fault_error(rule: FaultRule) -> APIResponseError:
    headers: dict[str, str] = {}
    if rule.retry_after is not None:
        value = rule.retry_after
        headers["Retry-After"] = str(int(value)) if float(value).is_integer() else str(value)
    if rule.retry_after_ms is not None:
        headers["retry-after-ms"] = str(rule.retry_after_ms)
    if rule.should_retry is not None:
        headers["x-should-retry"] = "true" if rule.should_retry else "false"
    if rule.kind == "rate_limit":
        headers.update({"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0"})
        return APIResponseError(
            rule.status,
            rule.message or "Rate limit reached for requests. Please try again later.",
            type_="requests",
            code="rate_limit_exceeded",
            headers=headers,
        )
    status = rule.status
    default = {
        503: ("The engine is currently overloaded, please try again later.", "server_error", None),
        500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
        400: ("Bad request (injected).", "invalid_request_error", None),
        403: ("You are not allowed to use this model (injected).", "invalid_request_error", "permission_denied"),
        404: ("The model does not exist (injected).", "invalid_request_error", "model_not_found"),
        408: ("Request timed out (injected).", "server_error", None),
        409: ("Conflict (injected).", "invalid_request_error", None),
        422: ("Unprocessable entity (injected).", "invalid_request_error", None),
    }
    message, type_, code = default.get(status, (f"Injected HTTP {status}.", "server_error", None))
    return APIResponseError(status, rule.message or message, type_=type_, code=code, headers=headers)


async def _hold(request: web.Request, state: LLMServerState, seconds: float) -> bool:
    """Keep the connection open without answering; True when the client went away first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        transport = request.transport
        if transport is None or transport.is_closing():
            return True
        if state.shutdown.is_set():
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.shutdown.wait(), timeout=min(0.05, deadline - time.monotonic()))
    return False


def _content_for(
    state: LLMServerState, parsed: ParsedRequest, fixture: AnalysisFixture | None, fault: FaultRule | None
) -> tuple[str | None, str, str | None]:
    """(content, finish_reason, refusal) after content faults and the max-token budget."""
    fmt = parsed.fmt
    kind = fault.kind if fault is not None else None
    if kind == "refusal":
        return None, "stop", fault.message if fault and fault.message else REFUSAL_TEXT
    if kind == "content_filter":
        return None, "content_filter", None
    content = state.answers.content(fmt, fixture)
    if kind == "schema_violation":
        if fmt.kind == "json_schema" and fmt.schema is not None:
            valid = json.loads(content)
            content = json.dumps(violate_schema(fmt.schema, valid), ensure_ascii=False)
        else:
            content = json.dumps(["not", "the", "expected", "object"])
    elif kind == "malformed_json":
        # A classic model slip: fenced output with a trailing comma.
        body = content.rstrip()
        body = body[:-1].rstrip() + ",\n}" if body.endswith("}") else body + ","
        content = f"```json\n{body}\n```"
    if kind == "truncated":
        return content[: max(1, len(content) // 2)], "length", None
    if parsed.max_tokens is not None and text_tokens(content) > parsed.max_tokens:
        # Like a real model, stop at the budget: roughly 4 chars per token for the cut.
        return content[: max(1, parsed.max_tokens * 4)][: len(content) - 1], "length", None
    return content, "stop", None


def make_app(state: LLMServerState) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY_BYTES)

    def api(
        parse: Callable[[dict[str, Any], bool, bool], ParsedRequest],
        render: Callable[..., dict[str, Any]],
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handler(request: web.Request) -> web.StreamResponse:
            record = state.stats.begin(request.method, request.path, _retry_count(request))
            status: int | None = None
            try:
                response = await _serve(request, record, parse, render)
                status = None if record.client_gone else response.status
                return response
            finally:
                state.stats.finish(record, status)

        return handler

    async def _serve(
        request: web.Request,
        record: RequestRecord,
        parse: Callable[[dict[str, Any], bool, bool], ParsedRequest],
        render: Callable[..., dict[str, Any]],
    ) -> web.StreamResponse:
        request_id = new_id("req_")
        config = state.config
        try:
            auth = _auth_error(request, config.api_key)
            if auth is not None:
                raise auth
            try:
                body = await request.json(loads=json.loads)
            except ValueError as exc:
                raise APIResponseError(400, f"We could not parse the JSON body of your request: {exc}") from exc
            if not isinstance(body, dict):
                raise APIResponseError(400, "The request body must be a JSON object.")
            parsed = parse(body, config.check_strict_schema, config.require_json_word)
            record.model = parsed.model
            record.endpoint = parsed.endpoint
            record.image_count = len(parsed.images)
            record.image_pixels = sum(i.pixels for i in parsed.images)
            record.markers = [i.marker for i in parsed.images if i.marker]
            record.prompt_tokens = parsed.prompt_tokens
            if config.strict_models and parsed.model not in config.models:
                raise APIResponseError(
                    404,
                    f"The model `{parsed.model}` does not exist or you do not have access to it.",
                    param="model",
                    code="model_not_found",
                )
            facts = RequestFacts(
                endpoint=parsed.endpoint,
                model=parsed.model,
                text=parsed.text,
                markers=tuple(record.markers),
                sha256s=tuple(i.sha256 for i in parsed.images),
            )
            extra = [config.latency] if config.latency is not None else []
            header = request.headers.get(FAULT_HEADER)
            if header:
                try:
                    extra += parse_fault_header(header)
                except (ValueError, TypeError) as exc:
                    raise APIResponseError(400, f"bad {FAULT_HEADER} header: {exc}") from exc
            delay, fault = state.faults.select(facts, extra)
            record.fault = fault.kind if fault is not None else None
            if delay > 0:
                await asyncio.sleep(delay)
            if fault is not None and fault.kind == "timeout":
                record.client_gone = await _hold(request, state, fault.delay or DEFAULT_HOLD_SECONDS)
                if record.client_gone:
                    # Nobody is listening; the status stays None in the record.
                    return web.Response(status=499)
            elif fault is not None and fault.kind in ("rate_limit", "http_error"):
                raise _fault_error(fault)
            record.start = time.monotonic()
            fixture = state.fixtures.lookup(facts.sha256s, facts.markers)
            record.fixture = fixture.name if fixture is not None else None
            try:
                content, finish, refusal = _content_for(state, parsed, fixture, fault)
            except SchemaGenerationError as exc:
                raise APIResponseError(
                    400,
                    f"Invalid schema for response_format: {exc}",
                    param="response_format",
                    code="invalid_json_schema",
                ) from exc
            completion = text_tokens(content or refusal or "")
            if finish == "length" and parsed.max_tokens is not None:
                completion = parsed.max_tokens
            record.completion_tokens = completion
            record.finish_reason = finish
            data = render(parsed, content, finish, completion, refusal)
            return _json_response(
                data, headers={"openai-processing-ms": "1", "openai-model": parsed.model}, request_id=request_id
            )
        except APIResponseError as err:
            return _error_response(err, request_id)

    async def models(request: web.Request) -> web.StreamResponse:
        auth = _auth_error(request, state.config.api_key)
        if auth is not None:
            return _error_response(auth, new_id("req_"))
        names = dict.fromkeys((state.config.model, *state.config.models))
        data = [{"id": name, "object": "model", "created": 1767225600, "owned_by": "testbed"} for name in names]
        return _json_response({"object": "list", "data": data})

    async def admin_stats(request: web.Request) -> web.StreamResponse:
        include = request.query.get("requests", "true").lower() != "false"
        return _json_response(state.stats.to_json(include_requests=include))

    async def admin_reset(request: web.Request) -> web.StreamResponse:
        body = await _optional_json(request)
        if body.get("stats", True):
            state.stats.reset()
        if body.get("faults", True):
            state.faults.clear()
        return _json_response({"ok": True})

    async def admin_faults(request: web.Request) -> web.StreamResponse:
        return _json_response({"faults": [r.to_json() for r in state.faults.rules()]})

    async def admin_add_fault(request: web.Request) -> web.StreamResponse:
        body = await _optional_json(request)
        try:
            rule = state.faults.add(FaultRule.from_json(body))
        except (TypeError, ValueError) as exc:
            return _json_response({"error": {"message": str(exc)}}, 400)
        return _json_response(rule.to_json(), 201)

    async def admin_delete_fault(request: web.Request) -> web.StreamResponse:
        found = state.faults.remove(request.match_info["rule_id"])
        return _json_response({"removed": found}, 200 if found else 404)

    async def admin_clear_faults(request: web.Request) -> web.StreamResponse:
        state.faults.clear()
        return _json_response({"ok": True})

    async def admin_fixtures(request: web.Request) -> web.StreamResponse:
        return _json_response({"fixtures": state.fixtures.names()})

    async def admin_add_fixture(request: web.Request) -> web.StreamResponse:
        body = await _optional_json(request)
        try:
            fixture = AnalysisFixture(
                name=str(body["name"]),
                facts=dict(body.get("facts", {})),
                response=body.get("response"),
                markers=tuple(body.get("markers", ())),
                sha256s=tuple(body.get("sha256s", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            return _json_response({"error": {"message": f"bad fixture: {exc}"}}, 400)
        state.fixtures.add(fixture)
        return _json_response({"name": fixture.name}, 201)

    async def admin_health(request: web.Request) -> web.StreamResponse:
        return _json_response({"ok": True, "model": state.config.model})

    app.router.add_post("/v1/chat/completions", api(parse_chat, chat_body))
    app.router.add_post("/v1/responses", api(parse_responses, responses_body))
    app.router.add_get("/v1/models", models)
    app.router.add_get("/_admin/health", admin_health)
    app.router.add_get("/_admin/stats", admin_stats)
    app.router.add_post("/_admin/reset", admin_reset)
    app.router.add_get("/_admin/faults", admin_faults)
    app.router.add_post("/_admin/faults", admin_add_fault)
    app.router.add_delete("/_admin/faults", admin_clear_faults)
    app.router.add_delete("/_admin/faults/{rule_id}", admin_delete_fault)
    app.router.add_get("/_admin/fixtures", admin_fixtures)
    app.router.add_post("/_admin/fixtures", admin_add_fixture)
    return app


async def _optional_json(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
