"""An asyncio event loop in a daemon thread, so the stand-ins can be used from synchronous tests and the demo.

`start(main)` runs `main(stop, ready)` on the thread's own loop: the coroutine sets its server up, calls `ready()`,
waits for `stop`, and tears down. `start` returns once `ready()` ran (or raises the set-up error); `stop()` sets
the event and joins. Whatever tasks are still pending afterwards (e.g. requests a fault holds open) are cancelled
and awaited before the loop closes, so none is destroyed while pending. `close_listener` is the shared "server is
down" switch of the aiohttp-based stand-ins.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web

T = TypeVar("T")
Main = Callable[[asyncio.Event, Callable[[], None]], Awaitable[None]]


class LoopThread:
    def __init__(self, name: str) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, main: Main, timeout: float = 30.0) -> None:
        if self._thread is not None:
            return
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, args=(main,), name=self.name, daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"{self.name} did not start within {timeout}s")
        if self._error is not None:
            self._thread.join(timeout)
            self._thread = None
            raise RuntimeError(f"{self.name} failed to start: {self._error!r}") from self._error

    def serve(
        self,
        setup: Callable[[], Awaitable[None]],
        teardown: Callable[[], Awaitable[None]],
        timeout: float = 30.0,
    ) -> None:
        """Start a server whose life is `setup()`, then waiting for `stop()`, then `teardown()`."""

        async def main(stop: asyncio.Event, ready: Callable[[], None]) -> None:
            await setup()
            ready()
            try:
                await stop.wait()
            finally:
                await teardown()

        self.start(main, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        loop, stop = self.loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # the loop may already be closed
                loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout)
        self._thread = None

    def call(self, factory: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30.0) -> T:
        """Run a coroutine on the loop and wait for its result."""
        if self.loop is None:
            raise RuntimeError(f"{self.name} is not running")
        return asyncio.run_coroutine_threadsafe(factory(), self.loop).result(timeout)

    def _run(self, main: Main) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        try:
            loop.run_until_complete(self._main(main))
        except BaseException as error:  # reported to the starting thread
            self._error = error
            self._ready.set()
        finally:
            with contextlib.suppress(BaseException):
                self._cancel_leftovers(loop)
            loop.close()
            self.loop = None

    async def _main(self, main: Main) -> None:
        self._stop = asyncio.Event()
        await main(self._stop, self._ready.set)

    @staticmethod
    def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())


async def close_listener(site: web.TCPSite | None, runner: web.AppRunner | None) -> None:
    """Stop accepting connections and drop the open ones, so clients see a server that is down.

    Without the second step, kept-alive connections would still be served.
    """
    if site is not None:
        await site.stop()
    server = runner.server if runner is not None else None
    for handler in list(getattr(server, "connections", [])):
        handler.force_close()
        if handler.transport is not None:
            handler.transport.close()
