"""The operator's view of Appwrite mistake records: final-failure writes, the sweeper's scan, and re-queueing.

The appwrite SDK is synchronous (requests, no session); every call runs in a worker thread so the event loop
never blocks.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from appwrite.client import Client
from appwrite.exception import AppwriteException
from appwrite.query import Query
from appwrite.services.tables_db import TablesDB

from mistake_api import rfc3339

from .settings import Appwrite as AppwriteSettings

# Record statuses (domain model): the app shows these; only pending/processing/ocrOK ever need recovering.
PENDING, PROCESSING, OCR_OK, COMPLETED, FAILED = "pending", "processing", "ocrOK", "completed", "failed"
UNFINISHED = (PENDING, PROCESSING, OCR_OK)


class RecordError(Exception):
    def __init__(self, message: str, *, retryable: bool, code: int = 0) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code


def _classify(exc: AppwriteException) -> RecordError:
    code = int(exc.code or 0)
    retryable = code == 0 or code == 429 or code >= 500 or code == 401
    return RecordError(f"Appwrite {code} {exc.type or ''}: {exc.message}"[:300], retryable=retryable, code=code)


@dataclass(frozen=True)
class Record:
    database_id: str
    collection_id: str
    id: str
    updated_at: str
    data: Mapping[str, Any]

    @property
    def status(self) -> str:
        return str(self.data.get("analysisStatus") or PENDING)


class Records:
    def __init__(self, settings: AppwriteSettings) -> None:
        self.settings = settings
        client = Client().set_endpoint(settings.endpoint).set_project(settings.project_id)
        client.set_key(settings.api_key.get_secret_value())
        self._tables = TablesDB(client)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except AppwriteException as exc:
            raise _classify(exc) from None

    async def get(self, database_id: str, collection_id: str, record_id: str) -> Record | None:
        try:
            row = await self._call(self._tables.get_row, database_id, collection_id, record_id)
        except RecordError as err:
            if err.code == 404:
                return None
            raise
        return Record(database_id, collection_id, row.id, row.updatedat, dict(row.data))

    async def mark_failed(self, database_id: str, collection_id: str, record_id: str, text: str) -> bool:
        """Write `failed` + analysisError. False when the record no longer exists (nothing to tell)."""
        try:
            await self._call(
                self._tables.update_row,
                database_id,
                collection_id,
                record_id,
                data={"analysisStatus": FAILED, "analysisError": text},
            )
        except RecordError as err:
            if err.code == 404:
                return False
            raise
        return True

    async def set_pending(self, record: Record) -> Record:
        """Ask for a fresh analysis: the record's new $updatedAt becomes the new analysis's revision."""
        row = await self._call(
            self._tables.update_row,
            record.database_id,
            record.collection_id,
            record.id,
            data={"analysisStatus": PENDING, "analysisError": None},
        )
        return Record(record.database_id, record.collection_id, row.id, row.updatedat, dict(row.data))

    async def scan(
        self,
        statuses: tuple[str, ...],
        updated_before: datetime,
        *,
        page_size: int,
    ) -> AsyncIterator[Record]:
        """Records in `statuses` last updated before the cut-off, oldest first."""
        queries = [
            Query.equal("analysisStatus", list(statuses)),
            Query.less_than("$updatedAt", rfc3339(updated_before)),
            Query.order_asc("$updatedAt"),
        ]
        async for record in self.iterate(queries, page_size=page_size):
            yield record

    async def iterate(self, queries: list[str], *, page_size: int = 100) -> AsyncIterator[Record]:
        """Every record matching `queries`, page by page (cursor paging, stable under concurrent writes)."""
        cursor: str | None = None
        db, col = self.settings.database_id, self.settings.collection_id
        while True:
            page_queries = [*queries, Query.limit(page_size)]
            if cursor:
                page_queries.append(Query.cursor_after(cursor))
            page = await self._call(self._tables.list_rows, db, col, queries=page_queries, total=False)
            rows = list(page.rows)
            for row in rows:
                yield Record(db, col, row.id, row.updatedat, dict(row.data))
            if len(rows) < page_size:
                return
            cursor = rows[-1].id
