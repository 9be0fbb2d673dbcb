"""In-memory databases, collections and documents with Appwrite's write rules.

Documents are kept in a stored form (`$sequence` an int, attributes flat) and rendered per route:
the Documents API shows `$collectionId`, the TablesDB API `$tableId`.
"""

from __future__ import annotations

import copy
import math
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import queries
from .errors import (
    AppwriteError,
    already_exists,
    argument_invalid,
    column_bound_reached,
    column_not_found,
    column_not_numeric,
    container_not_found,
    database_not_found,
    not_found,
)
from .schema import INT_MAX, INT_MIN, Collection, Schema
from .values import apply_defaults, now_iso, user_data, validate

_VALID_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$")


def unique_id() -> str:
    """Like the SDK's ID.unique(): 13 hex chars of time then 7 random hex chars."""
    now = time.time()
    return f"{int(now):08x}{int(now * 1_000_000) % 1000:05x}{secrets.token_hex(4)[:7]}"


def check_id(value: Any, param: str) -> str:
    if value == "unique()":
        return unique_id()
    if not isinstance(value, str) or not _VALID_ID.match(value):
        raise argument_invalid(
            f"Invalid `{param}` param: Parameter must contain at most 36 chars. Valid chars are a-z, A-Z, 0-9, "
            "period, hyphen, and underscore. Can't start with a special char"
        )
    return value


@dataclass(frozen=True)
class WriteEvent:
    """One committed write, as the event queue sees it."""

    database_id: str
    collection_id: str
    document_id: str
    action: str  # create | update | upsert | delete
    via_rows: bool
    payload: dict[str, Any]  # the API response model of the write


class CollectionState:
    def __init__(self, database_id: str, schema: Collection) -> None:
        self.database_id = database_id
        self.schema = schema
        self.documents: dict[str, dict[str, Any]] = {}
        self.next_sequence = 1


def render(database_id: str, collection_id: str, stored: dict[str, Any], rows: bool) -> dict[str, Any]:
    """The API response model: system fields (all strings) then attributes."""
    out = {k: v for k, v in stored.items() if not k.startswith("$")}
    out.update(
        {
            "$id": stored["$id"],
            "$sequence": str(stored["$sequence"]),
            ("$tableId" if rows else "$collectionId"): collection_id,
            "$databaseId": database_id,
            "$createdAt": stored["$createdAt"],
            "$updatedAt": stored["$updatedAt"],
            "$permissions": list(stored["$permissions"]),
        }
    )
    return copy.deepcopy(out)


def select(rendered: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if fields is None or "*" in fields:
        return rendered
    always = {"$id", "$sequence", "$collectionId", "$tableId", "$databaseId"}
    return {k: v for k, v in rendered.items() if k in always or k in fields}


class Store:
    """Thread-safe: handlers run on the server's loop thread, inspection helpers on the test's thread."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.lock = threading.RLock()
        self.databases: dict[str, dict[str, CollectionState]] = {}
        self.write_counts: Counter[tuple[str, str]] = Counter()  # (collection, document) -> writes
        self.listeners: list[Callable[[WriteEvent], None]] = []
        self.reset()

    def reset(self, apply_schema: bool = True) -> None:
        with self.lock:
            self.databases = {}
            self.write_counts = Counter()
            if apply_schema:
                for database_id in self.schema.databases:
                    self.create_database(database_id)

    def create_database(self, database_id: str) -> None:
        with self.lock:
            collections = self.schema.databases.get(database_id, {})
            self.databases.setdefault(
                database_id, {cid: CollectionState(database_id, c) for cid, c in collections.items()}
            )

    def add_collection(self, database_id: str, collection: Collection) -> None:
        with self.lock:
            self.databases.setdefault(database_id, {})[collection.id] = CollectionState(database_id, collection)

    def collection(self, database_id: str, collection_id: str, rows: bool) -> CollectionState:
        database = self.databases.get(database_id)
        if database is None:
            raise database_not_found()
        state = database.get(collection_id)
        if state is None:
            raise container_not_found(rows)
        return state

    # -- reads ---------------------------------------------------------------------------------------

    def get(self, database_id: str, collection_id: str, document_id: str, rows: bool) -> dict[str, Any]:
        with self.lock:
            state = self.collection(database_id, collection_id, rows)
            stored = state.documents.get(document_id)
            if stored is None:
                raise not_found(rows)
            return render(database_id, collection_id, stored, rows)

    def query(
        self, database_id: str, collection_id: str, raw_queries: list[Any], rows: bool, total: bool = True
    ) -> dict[str, Any]:
        with self.lock:
            state = self.collection(database_id, collection_id, rows)
            plan = queries.parse(state.schema, raw_queries)
            page, count = queries.run(list(state.documents.values()), plan, rows)
            items = [select(render(database_id, collection_id, d, rows), plan.select) for d in page]
        return {"total": count if total else 0, ("rows" if rows else "documents"): items}

    # -- writes --------------------------------------------------------------------------------------

    def _check_unique(self, state: CollectionState, candidate: dict[str, Any], rows: bool) -> None:
        for index in state.schema.unique_indexes:
            key = tuple(candidate.get(a) for a in index.attributes)
            if any(v is None for v in key):
                continue  # SQL unique indexes let NULLs repeat
            for other in state.documents.values():
                if other["$id"] != candidate["$id"] and tuple(other.get(a) for a in index.attributes) == key:
                    raise already_exists(rows)

    def _commit(
        self, state: CollectionState, stored: dict[str, Any], action: str, rows: bool, publish: bool = True
    ) -> dict[str, Any]:
        state.documents[stored["$id"]] = stored
        rendered = render(state.database_id, state.schema.id, stored, rows)
        if not publish:  # seeding: neither a counted write nor an event
            return rendered
        self.write_counts[(state.schema.id, stored["$id"])] += 1
        self._publish(WriteEvent(state.database_id, state.schema.id, stored["$id"], action, rows, rendered))
        return rendered

    def _publish(self, event: WriteEvent) -> None:
        for listener in list(self.listeners):
            listener(event)

    def create(
        self,
        database_id: str,
        collection_id: str,
        document_id: Any,
        data: Any,
        permissions: list[str] | None,
        rows: bool,
        action: str = "create",
        publish: bool = True,
    ) -> dict[str, Any]:
        with self.lock:
            state = self.collection(database_id, collection_id, rows)
            doc_id = check_id(document_id, "rowId" if rows else "documentId")
            given = user_data(data, rows)
            perms = permissions if permissions is not None else list((data or {}).get("$permissions") or [])
            attrs = validate(state.schema, apply_defaults(state.schema, given), rows)
            if doc_id in state.documents:
                raise already_exists(rows)
            now = now_iso()
            stored = {
                **attrs,
                "$id": doc_id,
                "$sequence": state.next_sequence,
                "$createdAt": now,
                "$updatedAt": now,
                "$permissions": list(perms),
            }
            self._check_unique(state, stored, rows)
            state.next_sequence += 1
            return self._commit(state, stored, action, rows, publish)

    def update(
        self,
        database_id: str,
        collection_id: str,
        document_id: str,
        data: Any,
        permissions: list[str] | None,
        rows: bool,
        action: str = "update",
    ) -> dict[str, Any]:
        with self.lock:
            state = self.collection(database_id, collection_id, rows)
            current = state.documents.get(document_id)
            if current is None:
                raise not_found(rows)
            given = user_data(data, rows)
            merged = {k: v for k, v in current.items() if not k.startswith("$")}
            merged.update(given)
            attrs = validate(state.schema, merged, rows)
            stored = {
                **attrs,
                "$id": document_id,
                "$sequence": current["$sequence"],
                "$createdAt": current["$createdAt"],
                "$updatedAt": now_iso(),
                "$permissions": list(permissions if permissions is not None else current["$permissions"]),
            }
            self._check_unique(state, stored, rows)
            return self._commit(state, stored, action, rows)

    def upsert(
        self,
        database_id: str,
        collection_id: str,
        document_id: str,
        data: Any,
        permissions: list[str] | None,
        rows: bool,
    ) -> dict[str, Any]:
        with self.lock:
            state = self.collection(database_id, collection_id, rows)
            if document_id in state.documents:
                return self.update(database_id, collection_id, document_id, data, permissions, rows, "upsert")
            return self.create(database_id, collection_id, document_id, data, permissions, rows, "upsert")

    def adjust(
        self,
        database_id: str,
        collection_id: str,
        document_id: str,
        key: str,
        value: Any,
        bound: Any,
        rows: bool,
        decrement: bool = False,
    ) -> dict[str, Any]:
        """Atomic increment (or decrement) of one numeric column, as Appwrite's `.../{column}/increment` route.

        The change must be a number > 0; `bound` (the route's `max`, or `min` for a decrement) refuses a result
        beyond it with 400 and changes nothing. Only the bound is checked, not the column's declared range (the
        server adds in SQL without the structure validator). A null value counts as 0. Counts as a write and
        publishes an `update` event, like the route's event label.
        """
        amount = _number(value, "value", 1)
        limit = _number(bound, "min" if decrement else "max", None)
        if amount is None or amount <= 0:
            raise argument_invalid("Value must be numeric and greater than 0")
        with self.lock:
            state = self.collection(database_id, collection_id, rows)
            current = state.documents.get(document_id)
            if current is None:
                raise not_found(rows)
            attr = state.schema.attributes.get(key)
            if attr is None:
                raise column_not_found(rows)
            if attr.array or attr.type not in {"integer", "double"}:
                raise column_not_numeric(rows, key)
            if attr.type == "integer":
                if amount != int(amount):
                    raise argument_invalid(f'Value must be a whole number for the integer column "{key}"')
                amount = int(amount)
            result = (current.get(key) or 0) + (-amount if decrement else amount)
            if limit is not None and (result < limit if decrement else result > limit):
                raise column_bound_reached(rows, key, limit, upper=not decrement)
            if attr.type == "integer" and not INT_MIN <= result <= INT_MAX:
                raise column_bound_reached(rows, key, INT_MIN if decrement else INT_MAX, upper=not decrement)
            stored = {**current, key: result, "$updatedAt": now_iso()}
            return self._commit(state, stored, "update", rows)

    def delete(self, database_id: str, collection_id: str, document_id: str, rows: bool) -> None:
        with self.lock:
            state = self.collection(database_id, collection_id, rows)
            stored = state.documents.pop(document_id, None)
            if stored is None:
                raise not_found(rows)
            self.write_counts[(collection_id, document_id)] += 1
            rendered = render(database_id, collection_id, stored, rows)
            self._publish(WriteEvent(database_id, collection_id, document_id, "delete", rows, rendered))

    # -- inspection ----------------------------------------------------------------------------------

    def documents(self, collection_id: str, database_id: str = "main") -> list[dict[str, Any]]:
        with self.lock:
            state = self.collection(database_id, collection_id, rows=False)
            ordered = sorted(state.documents.values(), key=lambda d: d["$sequence"])
            return [render(database_id, collection_id, d, rows=False) for d in ordered]

    def writes(self, collection_id: str, document_id: str | None = None) -> int:
        with self.lock:
            if document_id is not None:
                return self.write_counts[(collection_id, document_id)]
            return sum(n for (c, _), n in self.write_counts.items() if c == collection_id)


def _number(value: Any, param: str, default: float | None) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise argument_invalid(f"Invalid `{param}` param: Value must be a valid number")
    return value


__all__ = ["AppwriteError", "CollectionState", "Store", "WriteEvent", "check_id", "unique_id"]
