"""Functions-style event delivery: each committed write becomes an event; subscribed functions get an execution.

Like Appwrite's functions queue, delivery is asynchronous and never retried. Executions for one
(function, document) pair run in write order; different documents run concurrently.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .store import WriteEvent, unique_id

# At most this many executions in flight, like the executor's bounded worker pool.
MAX_CONCURRENT_EXECUTIONS = 32


def document_event(database_id: str, collection_id: str, document_id: str, action: str) -> str:
    return f"databases.{database_id}.collections.{collection_id}.documents.{document_id}.{action}"


def row_event(database_id: str, table_id: str, row_id: str, action: str) -> str:
    return f"databases.{database_id}.tables.{table_id}.rows.{row_id}.{action}"


def pattern_matches(pattern: str, event: str) -> bool:
    """`*` stands for one segment; a pattern may stop after any resource id (then it matches every action)."""
    want, have = pattern.split("."), event.split(".")
    if len(want) > len(have) or (len(want) < len(have) and len(want) % 2):
        return False
    return all(w in {"*", h} for w, h in zip(want, have, strict=False))


@dataclass
class Subscription:
    function_id: str
    url: str
    events: list[str]
    user_id: str = ""
    timeout: float = 15.0
    enabled: bool = True

    def wants(self, names: list[str]) -> bool:
        return self.enabled and any(pattern_matches(p, n) for p in self.events for n in names)


@dataclass
class EventRecord:
    """A write as the event bus saw it, whether or not any function was subscribed."""

    name: str  # the concrete event sent as x-appwrite-event
    names: list[str]  # every form it matches under (documents and tables mirrors)
    action: str
    database_id: str
    collection_id: str
    document_id: str
    via_rows: bool
    payload: dict[str, Any]
    at: float = field(default_factory=time.time)


@dataclass
class Execution:
    id: str
    function_id: str
    event: str
    document_id: str
    url: str
    headers: dict[str, str]
    body: str
    status: int | None = None  # the handler's HTTP status, None while pending or when unreachable
    error: str = ""
    response_body: str = ""
    duration: float = 0.0  # seconds
    done: bool = False


class EventBus:
    def __init__(self, issue_key: Callable[[], str], row_event_style: str = "legacy") -> None:
        if row_event_style not in {"legacy", "tables"}:
            raise ValueError("row_event_style must be 'legacy' or 'tables'")
        self.row_event_style = row_event_style
        self._issue_key = issue_key
        self._condition = threading.Condition()
        self.subscriptions: list[Subscription] = []
        self.events: list[EventRecord] = []
        self.executions: list[Execution] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._chains: dict[tuple[str, str], asyncio.Task[None]] = {}

    # -- lifecycle (on the server loop) --------------------------------------------------------------

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._semaphore = asyncio.Semaphore(MAX_CONCURRENT_EXECUTIONS)

    async def close(self) -> None:
        pending = [t for t in self._chains.values() if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._chains.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset(self) -> None:
        with self._condition:
            self.subscriptions = []
            self.events = []
            self.executions = []

    def subscribe(self, subscription: Subscription) -> Subscription:
        with self._condition:
            self.subscriptions.append(subscription)
        return subscription

    # -- publishing (any thread, called under the store lock so order is the commit order) ----------

    def on_write(self, write: WriteEvent) -> None:
        names = [
            document_event(write.database_id, write.collection_id, write.document_id, write.action),
            row_event(write.database_id, write.collection_id, write.document_id, write.action),
        ]
        # Both routes carry the legacy documents pattern first (sdk-facts section 1); "tables" flips it for rows.
        name = names[1] if write.via_rows and self.row_event_style == "tables" else names[0]
        record = EventRecord(
            name,
            names,
            write.action,
            write.database_id,
            write.collection_id,
            write.document_id,
            write.via_rows,
            write.payload,
        )
        with self._condition:
            self.events.append(record)
            targets = [s for s in self.subscriptions if s.wants(names)]
            executions = [self._prepare(s, record) for s in targets]
            self.executions.extend(executions)
            self._condition.notify_all()
        if not executions or self._loop is None:
            return
        for subscription, execution in zip(targets, executions, strict=True):
            self._loop.call_soon_threadsafe(self._schedule, subscription, execution)

    def _prepare(self, subscription: Subscription, record: EventRecord) -> Execution:
        execution_id = unique_id()
        headers = {
            "user-agent": "Appwrite/1.8.0",
            "content-type": "application/json",
            "x-appwrite-trigger": "event",
            "x-appwrite-event": record.name,
            "x-appwrite-key": self._issue_key(),
            "x-appwrite-user-id": subscription.user_id,
            "x-appwrite-user-jwt": "",
            "x-appwrite-execution-id": execution_id,
            "x-appwrite-country-code": "",
            "x-appwrite-continent-code": "",
            "x-appwrite-continent-eu": "false",
        }
        body = json.dumps(record.payload, ensure_ascii=False, separators=(",", ":"))
        return Execution(
            execution_id, subscription.function_id, record.name, record.document_id, subscription.url, headers, body
        )

    def _schedule(self, subscription: Subscription, execution: Execution) -> None:
        key = (subscription.function_id, execution.document_id)
        previous = self._chains.get(key)
        task = asyncio.get_running_loop().create_task(self._run_after(previous, subscription, execution))
        self._chains[key] = task
        task.add_done_callback(lambda t, k=key: self._chains.pop(k, None) if self._chains.get(k) is t else None)  # type: ignore[misc]

    async def _run_after(
        self, previous: asyncio.Task[None] | None, subscription: Subscription, execution: Execution
    ) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        assert self._semaphore is not None
        async with self._semaphore:
            await self._deliver(subscription, execution)

    async def _deliver(self, subscription: Subscription, execution: Execution) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        started = time.perf_counter()
        try:
            async with self._session.post(
                execution.url,
                data=execution.body.encode(),
                headers=execution.headers,
                timeout=aiohttp.ClientTimeout(total=subscription.timeout),
            ) as response:
                execution.response_body = (await response.text(errors="replace"))[:8000]
                execution.status = response.status
        except TimeoutError:
            execution.error = f"Operation timed out after {subscription.timeout:g} seconds"
        except aiohttp.ClientError as error:
            execution.error = f"{type(error).__name__}: {error}"
        finally:
            execution.duration = time.perf_counter() - started
            with self._condition:
                execution.done = True
                self._condition.notify_all()

    # -- waiting (test thread) -----------------------------------------------------------------------

    def wait(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(predicate, timeout)


def ephemeral_key() -> str:
    """Appwrite hands executions a short-lived key carrying the function's scopes."""
    return "ephemeral_" + secrets.token_urlsafe(24)
