"""A TLS-terminating reverse proxy in front of the dev cluster that also checks the bearer token.

The emulated API server speaks plain HTTP and ignores credentials; the trigger must talk HTTPS with a
ServiceAccount token. This proxy (loopback, certificate from a `trustme` CA) gives it a real TLS endpoint and a real
401 for a wrong token, like an API server would. `hold()` makes it keep requests unanswered (a slow API);
`down()` closes the listener (connection refused, an API server that is away) until `up()`.
Used by the trigger's tests, the demo and the end-to-end stack (`mistake_testbed.stack`).
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Self

import aiohttp
import trustme
from aiohttp import web

from mistake_testbed.loop_thread import LoopThread, close_listener

HOST = "127.0.0.1"
_FORWARDED = ("content-type", "accept", "user-agent")


def _status(code: int, reason: str, message: str) -> web.Response:
    body: dict[str, object] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body.update(message=message, reason=reason, code=code)
    return web.Response(text=json.dumps(body), status=code, content_type="application/json")


class TlsProxy:
    def __init__(self, upstream: str, token: str, ca: trustme.CA | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.token = token
        self.ca = ca or trustme.CA()
        self.port = 0
        self.requests = 0
        self.statuses: list[int] = []
        self.peers: set[tuple[str, int]] = set()  # client (host, port) pairs: one per TCP connection
        self._held = False
        self._release: asyncio.Event | None = None
        self._thread = LoopThread("tls-proxy")
        self._lock = threading.Lock()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._ssl: ssl.SSLContext | None = None
        self.is_down = False

    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}"

    @property
    def ca_pem(self) -> str:
        return self.ca.cert_pem.bytes().decode()

    def hold(self) -> None:
        """From now on, keep every request waiting (until `release()` or shutdown), then answer 503."""
        self._held = True

    def release(self) -> None:
        self._held = False
        loop = self._thread.loop
        if loop is not None and self._release is not None:
            loop.call_soon_threadsafe(self._release.set)

    def down(self) -> None:
        """Close the listener and every open connection: clients get connection refused until `up()`."""
        if not self.is_down:
            self._call(self._close_listener)
            self.is_down = True

    def up(self) -> None:
        """Listen again on the same port."""
        if self.is_down:
            self._call(self._open_listener)
            self.is_down = False

    def _call(self, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._thread.call(factory, 10)

    async def _close_listener(self) -> None:
        await close_listener(self._site, self._runner)

    async def _open_listener(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, HOST, self.port, ssl_context=self._ssl, reuse_address=True)
        await self._site.start()

    def start(self) -> Self:
        self._thread.start(self._main, timeout=10)
        return self

    def stop(self) -> None:
        self.release()
        self._thread.stop(timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    async def _main(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        self._release = asyncio.Event()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert(HOST, "localhost").configure_cert(context)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        self._runner = runner
        self._ssl = context
        site = web.TCPSite(runner, HOST, 0, ssl_context=context, reuse_address=True)
        await site.start()
        self._site = site
        self.port = int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as session:
            self._session = session
            ready()
            await stop.wait()
        await runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        with self._lock:
            self.requests += 1
            if peer:
                self.peers.add((str(peer[0]), int(peer[1])))
        response = await self._answer(request)
        with self._lock:
            self.statuses.append(response.status)
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _status(401, "Unauthorized", "Unauthorized")
        if self._held:
            assert self._release is not None
            await self._release.wait()
            return _status(503, "ServiceUnavailable", "held by the test")
        assert self._session is not None
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body or None, headers=headers
        ) as upstream:
            data = await upstream.read()
            return web.Response(
                body=data, status=upstream.status, content_type=upstream.content_type or "application/json"
            )
