"""`AppwriteTestServer`: the stand-in on a background thread with its own event loop.

Usable as `with AppwriteTestServer() as aw:` from sync code, `async with` from a running loop
(start and stop then happen off the loop), or started and stopped by hand.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from mistake_testbed.loop_thread import LoopThread, close_listener

from .app import RequestRecord, ServerState, build_app
from .events import EventBus, EventRecord, Execution, Subscription, ephemeral_key
from .faults import Fault, FaultPlan
from .schema import Bucket, Collection, Schema, load_schema
from .storage import FileStore
from .store import Store

if TYPE_CHECKING:
    from appwrite.client import Client

T = TypeVar("T")
DEFAULT_PROJECT = "mistake-analyzer-test"


class AppwriteTestServer:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        project_id: str = DEFAULT_PROJECT,
        api_key: str | None = None,
        schema: Schema | Path | str | None = None,
        apply_schema: bool = True,
        seed: int = 0,
        row_event_style: str = "legacy",
    ) -> None:
        self.host = host
        self.port = port
        self.project_id = project_id
        self.api_key = api_key or "standard_" + secrets.token_hex(32)
        self.apply_schema = apply_schema
        loaded = schema if isinstance(schema, Schema) else load_schema(schema)
        self._keys: set[str] = {self.api_key}
        bus = EventBus(self._issue_key, row_event_style)
        store = Store(loaded)
        store.reset(apply_schema)
        store.listeners.append(bus.on_write)
        files = FileStore(loaded.buckets)
        files.reset(apply_schema)
        self.state = ServerState(store, files, bus, FaultPlan(seed), project_id, self._keys)
        self._thread = LoopThread("appwrite-test-server")
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.is_down = False

    # -- lifecycle -----------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> AppwriteTestServer:
        self._thread.serve(self._start_async, self._stop_async)
        return self

    async def _start_async(self) -> None:
        loop = asyncio.get_running_loop()
        self.state.bus.attach(loop)
        self._runner = web.AppRunner(build_app(self.state), access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        if self.port == 0 and server is not None:
            sockets = getattr(server, "sockets", None) or []
            self.port = int(sockets[0].getsockname()[1])

    async def _stop_async(self) -> None:
        await self.state.bus.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        self._thread.stop()

    def __enter__(self) -> AppwriteTestServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    async def __aenter__(self) -> AppwriteTestServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def _call(self, factory: Callable[[], Coroutine[Any, Any, T]], timeout: float = 10) -> T:
        """Run a coroutine on the server loop from another thread and wait for its result."""
        return self._thread.call(factory, timeout)

    # -- clients -------------------------------------------------------------------------------------

    def client(self, key: str | None = None, project_id: str | None = None) -> Client:
        from appwrite.client import Client

        client = Client().set_endpoint(self.endpoint).set_project(project_id or self.project_id)
        return client.set_key(key or self.api_key)

    def env(self) -> dict[str, str]:
        """Environment variables the worker and the trigger read, pointing at this server."""
        return {
            "APPWRITE_ENDPOINT": self.endpoint,
            "APPWRITE_FUNCTION_API_ENDPOINT": self.endpoint,
            "APPWRITE_PROJECT_ID": self.project_id,
            "APPWRITE_FUNCTION_PROJECT_ID": self.project_id,
            "APPWRITE_API_KEY": self.api_key,
            "APPWRITE_DATABASE_ID": "main",
        }

    def _issue_key(self) -> str:
        key = ephemeral_key()
        self._keys.add(key)
        return key

    # -- state ---------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Fresh data, logs, subscriptions and faults; the listener and its port stay."""
        self.state.store.reset(self.apply_schema)
        self.state.files.reset(self.apply_schema)
        self.state.bus.reset()
        self.state.faults.clear()
        self.state.requests.clear()
        self._keys.intersection_update({self.api_key})
        if self.is_down:
            self.up()
        self.state.drop_connections = False

    def add_collection(self, collection: Collection, database_id: str = "main") -> None:
        self.state.store.add_collection(database_id, collection)

    def add_bucket(self, bucket: Bucket) -> None:
        self.state.files.add_bucket(bucket)

    def insert(
        self,
        collection_id: str,
        data: dict[str, Any],
        document_id: str = "unique()",
        database_id: str = "main",
        permissions: list[str] | None = None,
    ) -> dict[str, Any]:
        """Seed a document directly (validated, but neither counted as a write nor published as an event)."""
        return self.state.store.create(
            database_id, collection_id, document_id, data, permissions or [], rows=False, publish=False
        )

    def put_file(
        self, bucket_id: str, data: bytes, filename: str = "image.jpg", file_id: str = "unique()"
    ) -> dict[str, Any]:
        """Seed a file directly; returns its File model."""
        from .store import check_id

        return self.state.files.put(bucket_id, check_id(file_id, "fileId"), filename, data, [], None)

    # -- inspection ----------------------------------------------------------------------------------

    def documents(self, collection_id: str, database_id: str = "main") -> list[dict[str, Any]]:
        return self.state.store.documents(collection_id, database_id)

    def document(self, collection_id: str, document_id: str, database_id: str = "main") -> dict[str, Any]:
        return self.state.store.get(database_id, collection_id, document_id, rows=False)

    def writes(self, collection_id: str, document_id: str | None = None) -> int:
        """Committed create/update/upsert/delete calls through the API (seeding not counted)."""
        return self.state.store.writes(collection_id, document_id)

    def file_bytes(self, bucket_id: str, file_id: str) -> bytes:
        stored, _ = self.state.files.get(bucket_id, file_id)
        return stored.data

    @property
    def requests(self) -> list[RequestRecord]:
        return list(self.state.requests)

    @property
    def events(self) -> list[EventRecord]:
        with self.state.bus._condition:
            return list(self.state.bus.events)

    @property
    def executions(self) -> list[Execution]:
        with self.state.bus._condition:
            return list(self.state.bus.executions)

    # -- event delivery ------------------------------------------------------------------------------

    def subscribe(
        self,
        url: str,
        events: list[str] | None = None,
        function_id: str = "mistake-analyzer",
        timeout: float = 15.0,
        user_id: str = "",
    ) -> Subscription:
        """Deliver matching events to `url` like Appwrite's executor (defaults: the trigger's two events)."""
        patterns = events or [
            "databases.*.collections.mistake_records.documents.*.create",
            "databases.*.collections.mistake_records.documents.*.update",
        ]
        return self.state.bus.subscribe(Subscription(function_id, url, list(patterns), user_id, timeout))

    def wait_for_executions(self, count: int, timeout: float = 10.0, function_id: str | None = None) -> list[Execution]:
        """Wait until `count` executions (of `function_id`, if given) have finished; raise on the deadline."""

        def finished() -> list[Execution]:
            return [
                e for e in self.state.bus.executions if e.done and (function_id is None or e.function_id == function_id)
            ]

        if not self.state.bus.wait(lambda: len(finished()) >= count, timeout):
            raise TimeoutError(f"{len(finished())} of {count} executions finished within {timeout:g}s")
        return finished()

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.01) -> None:
        """Poll a condition on server state (for example a document's status) until it holds."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"condition not met within {timeout:g}s")
            time.sleep(interval)

    # -- faults --------------------------------------------------------------------------------------

    @property
    def faults(self) -> FaultPlan:
        return self.state.faults

    def add_latency(self, seconds: float, share: float = 1.0, route: str | None = None, **window: Any) -> Fault:
        return self.faults.add(Fault("latency", share=share, route=route, latency=seconds, **window))

    def fail(self, status: int = 503, share: float = 1.0, route: str | None = None, **window: Any) -> Fault:
        """Answer matching requests with `status` and an Appwrite error body."""
        return self.faults.add(Fault("error", share=share, route=route, status=status, **window))

    def rate_limit(self, share: float = 1.0, route: str | None = None, **window: Any) -> Fault:
        """Answer matching requests with 429 general_rate_limit_exceeded and X-RateLimit-* headers."""
        return self.faults.add(Fault("rate_limit", share=share, route=route, status=429, **window))

    def clear_faults(self) -> None:
        self.faults.clear()
        self.state.drop_connections = False

    def down(self, mode: str = "refuse") -> None:
        """Stop answering: "refuse" closes the listener (connection refused), "reset" drops each connection."""
        if mode == "reset":
            self.state.drop_connections = True
            return
        if mode != "refuse":
            raise ValueError("mode must be 'refuse' or 'reset'")
        if not self.is_down:
            self._call(self._close_listener)
            self.is_down = True

    def up(self) -> None:
        self.state.drop_connections = False
        if self.is_down:
            self._call(self._open_listener)
            self.is_down = False

    async def _close_listener(self) -> None:
        await close_listener(self._site, self._runner)

    async def _open_listener(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
