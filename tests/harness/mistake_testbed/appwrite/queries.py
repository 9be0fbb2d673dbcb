"""Appwrite query strings (the SDK's compact JSON) parsed and applied to in-memory documents.

Comparison semantics follow the SQL adapter behind Appwrite: a null value never matches a comparison
(including notEqual), nulls sort first ascending, and the default order is `$sequence` ascending.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import AppwriteError, query_invalid
from .schema import Collection
from .values import parse_datetime

DEFAULT_LIMIT = 25
MAX_LIMIT = 5000
SYSTEM_ATTRIBUTES = {"$id": "string", "$sequence": "integer", "$createdAt": "datetime", "$updatedAt": "datetime"}
FILTERS = {
    "equal",
    "notEqual",
    "lessThan",
    "lessThanEqual",
    "greaterThan",
    "greaterThanEqual",
    "isNull",
    "isNotNull",
    "contains",
    "between",
    "startsWith",
    "endsWith",
    "and",
    "or",
}
_INDEXED_PARAM = re.compile(r"^queries\[(\d+)\]$")


@dataclass
class QueryPlan:
    filters: list[dict[str, Any]] = field(default_factory=list)
    orders: list[tuple[str, bool]] = field(default_factory=list)  # (attribute, descending)
    limit: int = DEFAULT_LIMIT
    offset: int = 0
    cursor: tuple[str, str] | None = None  # ("after"|"before", document id)
    select: list[str] | None = None


def queries_from_params(params: Mapping[str, str]) -> list[str]:
    """`queries[0]=..&queries[1]=..` (PHP-style, as requests encodes the SDK's list) in index order."""
    indexed = []
    for key, value in params.items():
        match = _INDEXED_PARAM.match(key)
        if match:
            indexed.append((int(match.group(1)), value))
        elif key in {"queries", "queries[]"}:
            indexed.append((len(indexed) + 10**9, value))
    return [value for _, value in sorted(indexed, key=lambda pair: pair[0])]


def _decode(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        query = json.loads(raw)
    except (TypeError, ValueError):
        raise query_invalid(f"Invalid query: {raw}") from None
    if not isinstance(query, dict) or "method" not in query:
        raise query_invalid(f"Invalid query: {raw}")
    return query


def _attribute_type(collection: Collection, name: str) -> str:
    if name in SYSTEM_ATTRIBUTES:
        return SYSTEM_ATTRIBUTES[name]
    attr = collection.attributes.get(name)
    if attr is None:
        raise query_invalid(f"Attribute not found in schema: {name}")
    return attr.type


def _check_filter(collection: Collection, query: dict[str, Any]) -> dict[str, Any]:
    method = query["method"]
    if method in {"and", "or"}:
        nested = [_check_filter(collection, _decode(q)) for q in query.get("values") or []]
        return {"method": method, "values": nested}
    name = query.get("attribute")
    if not isinstance(name, str):
        raise query_invalid(f"{method} queries require an attribute")
    kind = _attribute_type(collection, name)
    values = list(query.get("values") or [])
    if method not in {"isNull", "isNotNull"} and not values:
        raise query_invalid(f"{method} queries require at least one value")
    if kind == "datetime":
        values = [parse_datetime(v) or v for v in values]
    return {"method": method, "attribute": name, "values": values, "kind": kind}


def parse(collection: Collection, raw_queries: Iterable[Any]) -> QueryPlan:
    plan = QueryPlan()
    for raw in raw_queries:
        query = _decode(raw)
        method = query["method"]
        values = query.get("values") or []
        if method in FILTERS:
            plan.filters.append(_check_filter(collection, query))
        elif method in {"orderAsc", "orderDesc"}:
            name = query.get("attribute") or "$sequence"
            _attribute_type(collection, name)
            plan.orders.append((name, method == "orderDesc"))
        elif method == "limit":
            if not values or not isinstance(values[0], int) or not 0 <= values[0] <= MAX_LIMIT:
                raise query_invalid(f"Invalid limit: Value must be a valid range between 0 and {MAX_LIMIT:,}")
            plan.limit = values[0]
        elif method == "offset":
            if not values or not isinstance(values[0], int) or values[0] < 0:
                raise query_invalid("Invalid offset: Value must be a valid range between 0 and 5,000")
            plan.offset = values[0]
        elif method in {"cursorAfter", "cursorBefore"}:
            if not values or not isinstance(values[0], str):
                raise query_invalid("Invalid cursor: Cursor must be a valid document ID")
            plan.cursor = ("after" if method == "cursorAfter" else "before", values[0])
        elif method == "select":
            plan.select = [str(v) for v in values]
        else:
            raise query_invalid(f"Invalid query method: {method}")
    return plan


def _comparable(value: Any, other: Any) -> bool:
    numeric = (int, float)
    if isinstance(value, bool) or isinstance(other, bool):
        return isinstance(value, bool) and isinstance(other, bool)
    if isinstance(value, numeric) and isinstance(other, numeric):
        return True
    return isinstance(value, str) and isinstance(other, str)


def _scalar_match(method: str, value: Any, operands: list[Any]) -> bool:
    if value is None:
        return False
    if method == "equal":
        return any(_comparable(value, o) and value == o for o in operands)
    if method == "notEqual":
        return all(not (_comparable(value, o) and value == o) for o in operands)
    if method == "startsWith":
        return isinstance(value, str) and value.startswith(str(operands[0]))
    if method == "endsWith":
        return isinstance(value, str) and value.endswith(str(operands[0]))
    if method == "between":
        low, high = operands[0], operands[-1]
        return _comparable(value, low) and _comparable(value, high) and low <= value <= high
    operand = operands[0]
    if not _comparable(value, operand):
        return False
    compare: dict[str, Callable[[Any, Any], bool]] = {
        "lessThan": lambda a, b: a < b,
        "lessThanEqual": lambda a, b: a <= b,
        "greaterThan": lambda a, b: a > b,
        "greaterThanEqual": lambda a, b: a >= b,
    }
    return compare[method](value, operand)


def matches(document: Mapping[str, Any], query: dict[str, Any]) -> bool:
    method = query["method"]
    if method == "and":
        return all(matches(document, q) for q in query["values"])
    if method == "or":
        return any(matches(document, q) for q in query["values"])
    value = document.get(query["attribute"])
    if method == "isNull":
        return value is None
    if method == "isNotNull":
        return value is not None
    if method == "contains":
        if isinstance(value, list):
            return any(v in value for v in query["values"])
        return isinstance(value, str) and any(str(v) in value for v in query["values"])
    if isinstance(value, list):
        # Array attributes match when any element does, as Appwrite's JSON-array comparison does.
        return any(_scalar_match(method, v, query["values"]) for v in value)
    return _scalar_match(method, value, query["values"])


def _sort_key(value: Any) -> tuple[int, Any]:
    # Nulls first, then values of one kind; mixed kinds order by kind so sorting never raises.
    if value is None:
        return (0, 0)
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, int | float):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    return (4, json.dumps(value, sort_keys=True))


def order(documents: list[dict[str, Any]], orders: list[tuple[str, bool]]) -> list[dict[str, Any]]:
    result = sorted(documents, key=lambda d: d["$sequence"])
    for name, descending in reversed(orders):
        result.sort(key=lambda d, n=name: _sort_key(d.get(n)), reverse=descending)  # type: ignore[misc]
    return result


def run(documents: list[dict[str, Any]], plan: QueryPlan, rows: bool) -> tuple[list[dict[str, Any]], int]:
    """(page, total matched before paging) for documents in their stored form (`$sequence` an int)."""
    matched = [d for d in documents if all(matches(d, f) for f in plan.filters)]
    if plan.cursor is None:
        ordered = order(matched, plan.orders)
        return ordered[plan.offset : plan.offset + plan.limit], len(matched)
    direction, cursor_id = plan.cursor
    cursor_doc = next((d for d in documents if d["$id"] == cursor_id), None)
    if cursor_doc is None:
        noun = "Row" if rows else "Document"
        raise AppwriteError(400, "general_cursor_not_found", f"{noun} '{cursor_id}' for the 'cursor' value not found.")
    # The cursor need not match the filters: Appwrite pages relative to its position in the order.
    ordered = order([*[d for d in matched if d["$id"] != cursor_id], cursor_doc], plan.orders)
    position = next(i for i, d in enumerate(ordered) if d["$id"] == cursor_id)
    if direction == "after":
        after = ordered[position + 1 :]
        return after[plan.offset : plan.offset + plan.limit], len(matched)
    before = ordered[:position]
    start = max(len(before) - plan.offset - plan.limit, 0)
    return before[start : max(len(before) - plan.offset, 0)], len(matched)
