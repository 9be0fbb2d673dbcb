"""Run the LLM test server in a background thread (sync tests, demo) or in the caller's asyncio loop."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

from aiohttp import web

from mistake_testbed.llm.answers import AnalysisFixture
from mistake_testbed.llm.app import LLMServerConfig, LLMServerState, make_app
from mistake_testbed.llm.faults import FaultRule
from mistake_testbed.llm.stats import RequestRecord, Stats
from mistake_testbed.loop_thread import LoopThread

LOOPBACK = "127.0.0.1"


class LLMTestServer:
    """An OpenAI-compatible server on loopback.

    Sync: ``with LLMTestServer() as llm: OpenAI(base_url=llm.base_url, api_key=llm.api_key)``.
    Async: ``async with LLMTestServer() as llm: ...`` runs it in the current loop.
    """

    def __init__(
        self,
        *,
        host: str = LOOPBACK,
        port: int = 0,
        api_key: str | None = "sk-testbed",
        model: str = "test-vision",
        fixtures: Iterable[AnalysisFixture] = (),
        seed: int = 0,
        latency: FaultRule | None = None,
        **config: Any,
    ) -> None:
        self.host = host
        self._requested_port = port
        self.port = 0
        self.config = LLMServerConfig(
            api_key=api_key, model=model, seed=seed, latency=latency, fixtures=tuple(fixtures), **config
        )
        self.state = LLMServerState(self.config)
        self._runner: web.AppRunner | None = None
        self._thread = LoopThread(f"llm-test-server-{id(self):x}")

    # --- addresses ---------------------------------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as the SDK's `base_url` (ends in /v1)."""
        return f"{self.root_url}/v1"

    @property
    def admin_url(self) -> str:
        return f"{self.root_url}/_admin"

    @property
    def api_key(self) -> str:
        return self.config.api_key or "sk-anything"

    @property
    def model(self) -> str:
        return self.config.model

    # --- controls ------------------------------------------------------------------------------------------------
    @property
    def stats(self) -> Stats:
        return self.state.stats

    @property
    def requests(self) -> list[RequestRecord]:
        return self.state.stats.requests

    @property
    def peak_concurrency(self) -> int:
        return self.state.stats.peak_concurrency

    @property
    def in_flight(self) -> int:
        return self.state.stats.in_flight

    def add_fault(self, rule: FaultRule | None = None, /, **kwargs: Any) -> FaultRule:
        """Add a fault rule, e.g. ``add_fault(kind="rate_limit", retry_after=1, times=2)``."""
        return self.state.faults.add(rule, **kwargs)

    def remove_fault(self, rule_id: str) -> bool:
        return self.state.faults.remove(rule_id)

    def clear_faults(self) -> None:
        self.state.faults.clear()

    @property
    def faults(self) -> list[FaultRule]:
        return self.state.faults.rules()

    def add_fixture(self, fixture: AnalysisFixture) -> None:
        self.state.fixtures.add(fixture)

    def reset(self) -> None:
        """Clear faults and request records (fixtures stay)."""
        self.state.reset()

    # --- lifecycle ---------------------------------------------------------------------------------------------
    async def start_async(self) -> None:
        # Large backlog so 100+ simultaneous connects are not refused by the kernel queue.
        self._runner = web.AppRunner(make_app(self.state), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port, backlog=1024, reuse_address=True)
        await site.start()
        addresses = self._runner.addresses
        self.port = int(addresses[0][1]) if addresses else self._requested_port

    async def stop_async(self) -> None:
        self.state.shutdown.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> LLMTestServer:
        """Start in a daemon thread with its own loop; returns once the port is bound."""
        # stop_async sets the shutdown event first, which releases held (`timeout` fault) connections.
        self._thread.serve(self.start_async, self.stop_async)
        return self

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> LLMTestServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LLMTestServer:
        await self.start_async()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_async()
