"""Helpers shared by the Appwrite stand-in tests: one generic facade over the Databases and TablesDB SDK services."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import pytest
from appwrite.client import Client
from appwrite.models.document import Document
from appwrite.models.document_list import DocumentList
from appwrite.models.row import Row
from appwrite.models.row_list import RowList
from appwrite.services.databases import Databases
from appwrite.services.tables_db import TablesDB

DB = "main"


class _Quiet:
    """Calls Databases methods with their DeprecationWarning recorded and dropped.

    The SDK's decorator forces `simplefilter('always')` and leaves a global filter behind; recording
    inside catch_warnings keeps both out of the test output and restores the filters afterwards.
    """

    def __init__(self, service: Databases) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._service, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with warnings.catch_warnings(record=True):
                return method(*args, **kwargs)

        return call


@dataclass
class Api:
    """The same operations through either SDK service, so each test runs against both routes."""

    name: str
    client: Client

    @property
    def rows(self) -> bool:
        return self.name == "tablesdb"

    @property
    def item_type(self) -> type[Any]:
        return Row if self.rows else Document

    @property
    def list_type(self) -> type[Any]:
        return RowList if self.rows else DocumentList

    @property
    def noun(self) -> str:
        return "row" if self.rows else "document"

    def _svc(self) -> Any:
        return TablesDB(self.client) if self.rows else _Quiet(Databases(self.client))

    def create(self, col: str, id_: str, data: dict[str, Any], permissions: list[str] | None = None) -> Any:
        if self.rows:
            return self._svc().create_row(DB, col, id_, data, permissions)
        return self._svc().create_document(DB, col, id_, data, permissions)

    def get(self, col: str, id_: str, queries: list[str] | None = None) -> Any:
        if self.rows:
            return self._svc().get_row(DB, col, id_, queries=queries)
        return self._svc().get_document(DB, col, id_, queries=queries)

    def list(self, col: str, queries: list[str] | None = None, total: bool | None = None) -> Any:
        if self.rows:
            return self._svc().list_rows(DB, col, queries, total=total)
        return self._svc().list_documents(DB, col, queries, total=total)

    def query(self, col: str, queries: list[str]) -> Any:
        if self.rows:
            return self._svc().create_query(DB, col, queries)
        return self._svc().create_query(DB, col, queries)

    def update(
        self, col: str, id_: str, data: dict[str, Any] | None = None, permissions: list[str] | None = None
    ) -> Any:
        if self.rows:
            return self._svc().update_row(DB, col, id_, data, permissions)
        return self._svc().update_document(DB, col, id_, data, permissions)

    def upsert(self, col: str, id_: str, data: dict[str, Any]) -> Any:
        if self.rows:
            return self._svc().upsert_row(DB, col, id_, data)
        return self._svc().upsert_document(DB, col, id_, data)

    def delete(self, col: str, id_: str) -> Any:
        if self.rows:
            return self._svc().delete_row(DB, col, id_)
        return self._svc().delete_document(DB, col, id_)


@pytest.fixture(params=["databases", "tablesdb"])
def api(request: pytest.FixtureRequest, appwrite_client: Client) -> Api:
    return Api(request.param, appwrite_client)


def record(**fields: Any) -> dict[str, Any]:
    """A valid mistake_records payload."""
    return {"userId": "user-1", "originalImageIds": ["img-1"], **fields}


def question(**fields: Any) -> dict[str, Any]:
    """A valid questions payload (every required attribute)."""
    base = {
        "subject": "math",
        "moduleIds": [],
        "knowledgePointIds": [],
        "type": "choice",
        "difficulty": 3,
        "content": "1+1=?",
    }
    return {**base, **fields}
