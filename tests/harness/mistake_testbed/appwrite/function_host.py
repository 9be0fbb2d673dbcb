"""An HTTP function runtime: serves one `main(context)` module the way open-runtimes does.

Point an `AppwriteTestServer` subscription at `host.url` and the real trigger function runs on every
matching write; each run's status, body and `context.log`/`context.error` lines are kept in `host.runs`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

from aiohttp import web

from mistake_testbed.loop_thread import LoopThread

from .runtime import RuntimeContext, RuntimeRequest, invoke_async

_loaded = 0


def load_entrypoint(path: Path | str) -> ModuleType:
    """Import a function's entry file (e.g. trigger_function/src/main.py) under a private module name."""
    global _loaded
    entry = Path(path).resolve()
    _loaded += 1
    spec = importlib.util.spec_from_file_location(f"_appwrite_function_{_loaded}", entry)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load function entrypoint {entry}")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it: dataclasses and typing look their module up in sys.modules.
    sys.modules[spec.name] = module
    # Sibling modules of the entry file import the way they would in the runtime's code folder.
    sys.path.insert(0, str(entry.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(entry.parent))
    if not callable(getattr(module, "main", None)):
        raise ImportError(f"{entry} defines no main(context)")
    return module


@dataclass
class FunctionRun:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_body: bytes = b""
    logs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0


class FunctionHost:
    """`with FunctionHost("trigger_function/src/main.py", env={...}) as fn:` then POST to `fn.url`."""

    def __init__(
        self,
        entrypoint: Path | str | Callable[[RuntimeContext], Any],
        env: dict[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.entrypoint = entrypoint
        self.env = dict(env or {})
        self.host = host
        self.port = port
        self.runs: list[FunctionRun] = []
        self._condition = threading.Condition()
        self._saved_env: dict[str, str | None] = {}
        self._main: Callable[[RuntimeContext], Any] | None = None
        self._thread = LoopThread("function-host")
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> FunctionHost:
        # Functions read their variables from the environment, some at import time: set them first.
        for name, value in self.env.items():
            self._saved_env[name] = os.environ.get(name)
            os.environ[name] = value
        if callable(self.entrypoint):
            self._main = self.entrypoint
        else:
            self._main = load_entrypoint(self.entrypoint).main
        self._thread.serve(self._start_async, self._stop_async)
        return self

    async def _stop_async(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _start_async(self) -> None:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        if self.port == 0 and sockets:
            self.port = int(sockets[0].getsockname()[1])

    def stop(self) -> None:
        self._thread.stop(timeout=10)
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}

    def __enter__(self) -> FunctionHost:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        assert self._main is not None
        body = await request.read()
        limit = request.headers.get("x-open-runtimes-timeout", "")
        if limit and (not limit.isdigit() or int(limit) == 0):
            return web.Response(text='Header "x-open-runtimes-timeout" must be an integer greater than 0.', status=500)
        host_header = request.headers.get("host", "")
        host, _, port = host_header.partition(":")
        scheme = request.headers.get("x-forwarded-proto", "http")
        req = RuntimeRequest(
            body,
            dict(request.headers),
            request.method,
            request.path,
            request.query_string,
            scheme,
            host,
            int(port) if port.isdigit() else None,
        )
        result = await invoke_async(self._main, RuntimeContext(req), float(limit) if limit else None)
        run = FunctionRun(
            request.method,
            request.path,
            dict(req.headers),
            body,
            result.status,
            result.body,
            result.logs,
            result.errors,
            result.duration,
        )
        with self._condition:
            self.runs.append(run)
            self._condition.notify_all()
        response = web.Response(body=result.body, status=result.status)
        for name, value in result.headers.items():
            if not name.startswith("x-open-runtimes-"):
                response.headers[name] = value
        content_type = result.headers.get("content-type", "text/plain").lower()
        if not content_type.startswith("multipart/") and "charset=" not in content_type:
            content_type += "; charset=utf-8"
        response.headers["content-type"] = content_type
        return response

    def wait_for_runs(self, count: int, timeout: float = 10.0) -> list[FunctionRun]:
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self.runs) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(self.runs)} of {count} function runs within {timeout:g}s")
                self._condition.wait(remaining)
            return list(self.runs)
