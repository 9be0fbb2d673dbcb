"""Appwrite access through the official (synchronous) SDK, each call on a bounded thread pool.

The SDK has no async client and no request timeout, so every call runs in `io_pool` under `asyncio.wait_for`:
the event loop never blocks, and a hung call costs one thread, not the batch. Transient failures (no answer,
5xx, 429) are retried here with jittered exponential backoff; writes are made idempotent by their callers
(deterministic ids, 409 handled, absolute values) so a retried write that had in fact landed does no harm.
Atomic increments are not idempotent: they are retried only after an answer that proves nothing was applied
(429, 503, or no connection made); any other failure is reported, not retried, so a count is lost at most once
and never added twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import appwrite.client as appwrite_client
import requests
import urllib3.exceptions
from appwrite.client import Client
from appwrite.exception import AppwriteException
from appwrite.services.storage import Storage
from appwrite.services.tables_db import TablesDB

from mistake_api import Reason

from .errors import WorkerError, appwrite_reason
from .settings import AppwriteSettings, WorkerSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

RECORDS = "mistake_records"
QUESTIONS = "questions"
MODULES = "knowledge_points_library"
USER_KPS = "user_knowledge_points"
REVIEW_STATES = "review_states"
PROFILES = "profiles"


class _EnvOnceSession(requests.Session):
    """A Session that resolves proxies and the CA bundle from the environment once per host and `verify` value.

    requests scans all of `os.environ` twice per request for them (a pod carries variables for every Service
    of its namespace), which was a third of the CPU of an Appwrite call. The environment does not change while
    the worker runs, so the cached answer is the same one.
    """

    def __init__(self) -> None:
        super().__init__()
        self._env_settings: dict[tuple[str, str, Any], Any] = {}

    def merge_environment_settings(
        self, url: str | bytes | None, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        if proxies or stream is not None or cert is not None or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc, verify)
        settings = self._env_settings.get(key)
        if settings is None:
            settings = self._env_settings[key] = super().merge_environment_settings(url, {}, None, verify, None)
        return {**settings, "proxies": dict(settings["proxies"])}


class _PooledRequests:
    """Stands in for the `requests` module inside the SDK's client: the same `request()` call, but on a Session
    per thread (the SDK opens a new connection for every call) and with a timeout (the SDK sets none)."""

    def __init__(self, timeout: float) -> None:
        self._local = threading.local()
        self._timeout = timeout

    def request(self, **kwargs: Any) -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = _EnvOnceSession()
        kwargs.setdefault("timeout", self._timeout)
        return session.request(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(requests, name)


def pool_sdk_connections(timeout: float) -> None:
    appwrite_client.requests = _PooledRequests(timeout)


class NotFoundError(Exception):
    """Appwrite answered 404 (row, file or bucket)."""


class ConflictError(Exception):
    """Appwrite answered 409 (the id or a unique index is taken)."""


class BoundReachedError(Exception):
    """An increment would pass its `max` (a decrement its `min`): Appwrite refused it and changed nothing."""


# Error types of Appwrite's increment/decrement routes when the result would pass the bound (TablesDB, Databases).
BOUND_REACHED_TYPES = frozenset({"column_limit_exceeded", "attribute_limit_exceeded"})
# Answers given before the request is acted on: Appwrite's rate limiter, or nothing there to serve it.
NOT_APPLIED_CODES = frozenset({429, 503})


def never_sent(error: AppwriteException) -> bool:
    """True when the SDK failed before a connection to the server existed (refused, unresolvable, connect
    timeout): the request cannot have been applied."""
    cause = error.__cause__ or error.__context__
    if not isinstance(cause, requests.exceptions.ConnectionError):
        return False
    if isinstance(cause, requests.exceptions.ConnectTimeout):
        return True
    inner = cause.args[0] if cause.args else None
    return isinstance(getattr(inner, "reason", inner), urllib3.exceptions.NewConnectionError)


def row_dict(row: Any) -> dict[str, Any]:
    """A Row/Document model or dict as one flat dict: system fields (`$id`, `$updatedAt`, ...) and user fields."""
    raw = dict(row) if isinstance(row, dict) else row.to_dict()
    data = raw.pop("data", None) or {}
    return {**raw, **data}


@dataclass(frozen=True)
class FileInfo:
    size: int
    mime_type: str
    name: str


class AppwriteStore:
    def __init__(
        self,
        settings: AppwriteSettings,
        worker: WorkerSettings,
        pool: ThreadPoolExecutor,
        client: Client | None = None,
    ) -> None:
        self.database_id = settings.database_id
        self._client = client or (
            Client()
            .set_endpoint(settings.endpoint.rstrip("/"))
            .set_project(settings.project_id)
            .set_key(settings.api_key.get_secret_value())
        )
        pool_sdk_connections(worker.appwrite_timeout_seconds)
        self._tables = TablesDB(self._client)
        self._storage = Storage(self._client)
        self._pool = pool
        self._timeout = worker.appwrite_timeout_seconds
        self._attempts = worker.appwrite_attempts
        self._backoff = worker.appwrite_backoff_seconds
        self.calls = 0

    async def _call(self, what: str, fn: Callable[..., T], *args: Any, idempotent: bool = True, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the pool. A call that is not `idempotent` is retried only when the failure
        proves it was not applied (see NOT_APPLIED_CODES and never_sent)."""
        loop = asyncio.get_running_loop()
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            self.calls += 1
            try:
                return await asyncio.wait_for(
                    loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs)), self._timeout
                )
            except AppwriteException as error:
                code = int(error.code or 0)
                if code == 404:
                    raise NotFoundError(f"{what}: {error.message}") from error
                if code == 409:
                    raise ConflictError(f"{what}: {error.message}") from error
                if code == 400 and error.type in BOUND_REACHED_TYPES:
                    raise BoundReachedError(f"{what}: {error.message}") from error
                reason = appwrite_reason(code)
                detail = f"{what}: HTTP {code} {error.type or ''} {error.message}".strip()
                replay_safe = idempotent or code in NOT_APPLIED_CODES or never_sent(error)
            except TimeoutError:
                reason, detail = Reason.APPWRITE_UNAVAILABLE, f"{what}: no answer within {self._timeout:g}s"
                replay_safe = idempotent
            if reason is not Reason.APPWRITE_UNAVAILABLE or attempt == self._attempts:
                raise WorkerError(reason, detail)
            if not replay_safe:
                raise WorkerError(reason, f"{detail} (not retried: it may have been applied)")
            log.info("appwrite %s failed (attempt %d), retrying: %s", what, attempt, detail)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter, not crypto
            delay *= 2
        raise AssertionError("unreachable")

    # -- rows --------------------------------------------------------------------------------------------

    async def get_row(self, table: str, row_id: str, database_id: str | None = None) -> dict[str, Any] | None:
        try:
            row = await self._call(f"get {table}", self._tables.get_row, database_id or self.database_id, table, row_id)
        except NotFoundError:
            return None
        return row_dict(row)

    async def list_rows(self, table: str, queries: Sequence[str]) -> list[dict[str, Any]]:
        result = await self._call(
            f"list {table}", self._tables.list_rows, self.database_id, table, list(queries), total=False
        )
        return [row_dict(r) for r in result.rows]

    async def create_row(self, table: str, row_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Create; raises ConflictError when the id or a unique index is already taken."""
        row = await self._call(f"create {table}", self._tables.create_row, self.database_id, table, row_id, data)
        return row_dict(row)

    async def update_row(
        self, table: str, row_id: str, data: dict[str, Any], database_id: str | None = None
    ) -> dict[str, Any]:
        """Update the given columns; raises NotFoundError when the row is gone."""
        row = await self._call(
            f"update {table}", self._tables.update_row, database_id or self.database_id, table, row_id, data
        )
        return row_dict(row)

    async def increment_row(
        self, table: str, row_id: str, column: str, value: int = 1, maximum: int | None = None
    ) -> dict[str, Any]:
        """Atomic `column += value` on the server; raises BoundReachedError (nothing changed) when the result
        would pass `maximum`, NotFoundError when the row is gone. Not retried once it may have been applied."""
        row = await self._call(
            f"increment {table}.{column}",
            self._tables.increment_row_column,
            self.database_id,
            table,
            row_id,
            column,
            value,
            maximum,
            idempotent=False,
        )
        return row_dict(row)

    # -- storage -----------------------------------------------------------------------------------------

    async def file_info(self, bucket_id: str, file_id: str) -> FileInfo:
        meta = await self._call("get file", self._storage.get_file, bucket_id, file_id)
        return FileInfo(size=int(meta.sizeoriginal or 0), mime_type=str(meta.mimetype or ""), name=str(meta.name))

    async def download(self, bucket_id: str, file_id: str) -> bytes:
        data = await self._call("download file", self._storage.get_file_download, bucket_id, file_id)
        if not isinstance(data, bytes | bytearray):
            # A JSON answer where bytes were expected: the SDK parsed an error-like body.
            raise WorkerError(Reason.APPWRITE_REJECTED, f"download of {file_id} returned {type(data).__name__}")
        return bytes(data)
