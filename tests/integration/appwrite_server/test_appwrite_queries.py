"""The query subset, sent the way the SDK serialises it (GET `queries[n]=` params and POST `/query` bodies)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from appwrite.exception import AppwriteException
from appwrite.query import Query
from appwrite_support import Api, record

pytestmark = pytest.mark.integration

# Five records: r0..r4 with reviewCount 0..4, note set on even ones, subject alternating.
QUERIES: list[tuple[str, Callable[[], list[str]], list[str]]] = [
    ("equal", lambda: [Query.equal("subject", "math")], ["r0", "r2", "r4"]),
    ("equal list", lambda: [Query.equal("$id", ["r1", "r3"])], ["r1", "r3"]),
    ("notEqual skips nulls", lambda: [Query.not_equal("note", "n0")], ["r2", "r4"]),
    ("isNull", lambda: [Query.is_null("note")], ["r1", "r3"]),
    ("isNotNull", lambda: [Query.is_not_null("note")], ["r0", "r2", "r4"]),
    ("lessThan", lambda: [Query.less_than("reviewCount", 2)], ["r0", "r1"]),
    ("lessThanEqual", lambda: [Query.less_than_equal("reviewCount", 2)], ["r0", "r1", "r2"]),
    ("greaterThan", lambda: [Query.greater_than("reviewCount", 2)], ["r3", "r4"]),
    ("greaterThanEqual", lambda: [Query.greater_than_equal("reviewCount", 2)], ["r2", "r3", "r4"]),
    ("limit offset", lambda: [Query.limit(2), Query.offset(1)], ["r1", "r2"]),
    ("orderDesc", lambda: [Query.order_desc("reviewCount"), Query.limit(2)], ["r4", "r3"]),
    (
        "orderAsc then desc",
        lambda: [Query.order_asc("subject"), Query.order_desc("reviewCount")],
        ["r4", "r2", "r0", "r3", "r1"],
    ),
    ("cursorAfter", lambda: [Query.cursor_after("r2")], ["r3", "r4"]),
    ("cursorAfter with order", lambda: [Query.order_desc("reviewCount"), Query.cursor_after("r2")], ["r1", "r0"]),
    ("cursorBefore", lambda: [Query.cursor_before("r2")], ["r0", "r1"]),
    ("contains array", lambda: [Query.contains("originalImageIds", ["img-3"])], ["r3"]),
    ("or", lambda: [Query.or_queries([Query.equal("$id", "r0"), Query.greater_than("reviewCount", 3)])], ["r0", "r4"]),
    (
        "createdAt order",
        lambda: [Query.order_desc("$createdAt"), Query.order_desc("$sequence"), Query.limit(1)],
        ["r4"],
    ),
]


@pytest.fixture
def five(api: Api) -> Api:
    for i in range(5):
        data = record(reviewCount=i, subject="math" if i % 2 == 0 else "physics", originalImageIds=[f"img-{i}"])
        if i % 2 == 0:
            data["note"] = f"n{i}"
        api.create("mistake_records", f"r{i}", data)
    return api


@pytest.mark.parametrize(("name", "build", "expected"), QUERIES, ids=[q[0] for q in QUERIES])
@pytest.mark.parametrize("via", ["list", "query"])
def test_query(five: Api, name: str, build: Callable[[], list[str]], expected: list[str], via: str) -> None:
    result = five.list("mistake_records", build()) if via == "list" else five.query("mistake_records", build())
    items = result.rows if five.rows else result.documents
    assert [i.id for i in items] == expected


def test_total_counts_matches_before_paging(five: Api) -> None:
    result = five.list("mistake_records", [Query.equal("subject", "math"), Query.limit(1)])
    assert result.total == 3


def test_select_returns_system_ids_and_chosen_attributes(five: Api) -> None:
    result = five.list("mistake_records", [Query.select(["$id", "reviewCount"]), Query.limit(1)])
    item = (result.rows if five.rows else result.documents)[0]
    assert item.data == {"reviewCount": 0}
    assert item.id == "r0"
    assert item.sequence == "1"


@pytest.mark.parametrize(
    ("queries", "type_"),
    [
        ([Query.equal("nope", "x")], "general_query_invalid"),
        (['{"method":"fancy"}'], "general_query_invalid"),
        (["not json"], "general_query_invalid"),
        ([Query.cursor_after("missing")], "general_cursor_not_found"),
        ([Query.limit(5001)], "general_query_invalid"),
    ],
)
def test_invalid_queries_are_400(five: Api, queries: list[str], type_: str) -> None:
    with pytest.raises(AppwriteException) as caught:
        five.list("mistake_records", queries)
    assert (caught.value.code, caught.value.type) == (400, type_)
