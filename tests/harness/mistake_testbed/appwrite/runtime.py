"""An in-process stand-in for the open-runtimes v5 Python runtime: `context.req`, `context.res`, logging.

`invoke(main, context)` runs a function's `main` (sync or async) with the runtime's rules: the result
must be a `context.res.*` value, None becomes a 500 "Return statement missing", an uncaught exception is
logged through `context.error` and becomes a 500.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

LOG_LINE_LIMIT = 8000


class RuntimeRequest:
    """`context.req`: raw bytes plus the derived views the runtime exposes (snake_case names)."""

    def __init__(
        self,
        body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        path: str = "/",
        query_string: str = "",
        scheme: str = "http",
        host: str = "localhost",
        port: int | None = None,
    ) -> None:
        headers = dict(headers or {})
        if isinstance(body, Mapping | list):
            self.body_binary = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
            headers.setdefault("content-type", "application/json")
        elif isinstance(body, str):
            self.body_binary = body.encode()
        else:
            self.body_binary = body or b""
        # The runtime lower-cases header names and hides its own x-open-runtimes-* headers.
        self.headers = {k.lower(): v for k, v in headers.items() if not k.lower().startswith("x-open-runtimes-")}
        self.method = method.upper()
        self.path = path
        self.query_string = query_string
        # Naive split without URL-decoding, exactly as the runtime does it.
        self.query: dict[str, str] = {}
        for part in query_string.split("&"):
            name, _, value = part.partition("=")
            if name:
                self.query[name] = value
        self.scheme = scheme
        default_port = 443 if scheme == "https" else 80
        self.host = host
        self.port = port if port is not None else default_port
        url = f"{scheme}://{host}" + (f":{self.port}" if self.port != default_port else "") + path
        self.url = url + (f"?{query_string}" if query_string else "")

    @property
    def body_text(self) -> str:
        return self.body_binary.decode("utf-8")

    @property
    def body_json(self) -> Any:
        return json.loads(self.body_text)

    @property
    def body_raw(self) -> str:
        return self.body_text

    @property
    def body(self) -> Any:
        if self.headers.get("content-type", "text/plain").lower().startswith("application/json"):
            return self.body_json if self.body_binary else {}
        return self.body_text


class RuntimeResponse:
    """`context.res`: each method returns the dict the runtime turns into the HTTP answer."""

    def binary(self, data: bytes, statusCode: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:  # noqa: N803 (the runtime's name)
        return {"body": data, "statusCode": statusCode, "headers": dict(headers or {})}

    def text(self, body: str, statusCode: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:  # noqa: N803
        return self.binary(body.encode("utf-8"), statusCode, headers)

    def send(self, body: Any, statusCode: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:  # noqa: N803
        return {"body": body, "statusCode": statusCode, "headers": dict(headers or {})}

    def json(self, obj: Any, statusCode: int = 200, headers: dict[str, str] | None = None) -> dict[str, Any]:  # noqa: N803
        merged = {**(headers or {}), "content-type": "application/json"}
        return self.text(json.dumps(obj, separators=(",", ":")), statusCode, merged)

    def empty(self) -> dict[str, Any]:
        return self.text("", 204, {})

    def redirect(self, url: str, statusCode: int = 301, headers: dict[str, str] | None = None) -> dict[str, Any]:  # noqa: N803
        return self.text("", statusCode, {**(headers or {}), "location": url})


def _format(messages: tuple[Any, ...]) -> str:
    parts = [json.dumps(m, ensure_ascii=False) if isinstance(m, dict | list | tuple) else str(m) for m in messages]
    return " ".join(parts)[:LOG_LINE_LIMIT]


class RuntimeContext:
    """The `context` argument of `main(context)`; `logs` and `errors` keep what the function wrote."""

    def __init__(self, req: RuntimeRequest | None = None) -> None:
        self.req = req or RuntimeRequest()
        self.res = RuntimeResponse()
        self.logs: list[str] = []
        self.errors: list[str] = []

    def log(self, *messages: Any) -> None:
        self.logs.append(_format(messages))

    def error(self, *messages: Any) -> None:
        self.errors.append(_format(messages))


@dataclass
class RuntimeResult:
    """What the runtime would answer, plus the captured log lines."""

    status: int
    body: bytes
    headers: dict[str, str]
    logs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


def make_context(
    body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
    headers: Mapping[str, str] | None = None,
    **request: Any,
) -> RuntimeContext:
    """A context as an event execution would build it: dict bodies are sent as JSON."""
    return RuntimeContext(RuntimeRequest(body, headers, **request))


def event_context(
    document: Mapping[str, Any], event: str, key: str = "test-key", execution_id: str = "exec1"
) -> RuntimeContext:
    """A context for an event execution, with the headers Appwrite's executor sends."""
    headers = {
        "content-type": "application/json",
        "x-appwrite-trigger": "event",
        "x-appwrite-event": event,
        "x-appwrite-key": key,
        "x-appwrite-user-id": "",
        "x-appwrite-execution-id": execution_id,
    }
    return make_context(dict(document), headers)


def _finish(context: RuntimeContext, output: Any, started: float) -> RuntimeResult:
    if output is None:
        context.error("Return statement missing. return context.res.empty() if no response is expected.")
        output = context.res.text("", 500, {})
    body = output.get("body", b"")
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, bytes):
        body = str(body).encode("utf-8")
    headers = {str(k).lower(): str(v) for k, v in (output.get("headers") or {}).items()}
    headers.setdefault("content-type", "text/plain")
    return RuntimeResult(
        int(output.get("statusCode", 200)),
        body,
        headers,
        list(context.logs),
        list(context.errors),
        time.perf_counter() - started,
    )


async def invoke_async(
    main: Callable[[RuntimeContext], Any], context: RuntimeContext, time_limit: float | None = None
) -> RuntimeResult:
    """Run `main` like the runtime; sync functions run in a thread so the caller's loop stays free."""
    started = time.perf_counter()
    try:
        if inspect.iscoroutinefunction(main):
            output = await asyncio.wait_for(main(context), time_limit)
        else:
            output = await asyncio.wait_for(asyncio.to_thread(main, context), time_limit)
    except TimeoutError:
        context.error("Execution timed out.")
        output = context.res.text("", 500, {})
    except Exception as error:
        context.error("".join(traceback.TracebackException.from_exception(error).format()))
        output = context.res.text("", 500, {})
    return _finish(context, output, started)


def invoke(main: Callable[[RuntimeContext], Any], context: RuntimeContext) -> RuntimeResult:
    """Run `main` synchronously (an async `main` gets its own event loop)."""
    started = time.perf_counter()
    try:
        output = asyncio.run(main(context)) if inspect.iscoroutinefunction(main) else main(context)
    except Exception as error:
        context.error("".join(traceback.TracebackException.from_exception(error).format()))
        output = context.res.text("", 500, {})
    return _finish(context, output, started)
