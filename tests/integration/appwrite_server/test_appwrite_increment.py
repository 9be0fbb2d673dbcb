"""Atomic column increments and decrements through the real SDK (TablesDB and the deprecated Databases twin)."""

from __future__ import annotations

import threading
import warnings
from typing import Any

import pytest
from appwrite.client import Client
from appwrite.exception import AppwriteException
from appwrite.services.databases import Databases
from appwrite.services.tables_db import TablesDB
from appwrite_support import DB, Api, question

from mistake_testbed.appwrite import AppwriteTestServer

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def profile(**fields: Any) -> dict[str, Any]:
    return {"userId": "user-1", **fields}


def adjust(
    api: Api,
    col: str,
    id_: str,
    key: str,
    value: float | None = None,
    bound: float | None = None,
    *,
    down: bool = False,
) -> Any:
    if api.rows:
        tables = TablesDB(api.client)
        if down:
            return tables.decrement_row_column(DB, col, id_, key, value, bound)
        return tables.increment_row_column(DB, col, id_, key, value, bound)
    databases = Databases(api.client)
    with warnings.catch_warnings(record=True):
        if down:
            return databases.decrement_document_attribute(DB, col, id_, key, value, bound)
        return databases.increment_document_attribute(DB, col, id_, key, value, bound)


def test_increment_and_decrement_return_the_row_and_count_as_writes(api: Api, appwrite: AppwriteTestServer) -> None:
    created = api.create("profiles", "p1", profile(totalMistakes=5))

    once = adjust(api, "profiles", "p1", "totalMistakes")
    assert isinstance(once, api.item_type)
    assert once.data["totalMistakes"] == 6  # value defaults to 1
    assert once.data["userId"] == "user-1"
    assert once.sequence == created.sequence
    assert once.updatedat >= created.updatedat
    assert adjust(api, "profiles", "p1", "totalMistakes", 4).data["totalMistakes"] == 10
    assert adjust(api, "profiles", "p1", "totalMistakes", 3, down=True).data["totalMistakes"] == 7
    assert api.get("profiles", "p1").data["totalMistakes"] == 7
    assert appwrite.writes("profiles", "p1") == 4


def test_bounds_refuse_a_result_past_them_and_change_nothing(api: Api) -> None:
    api.create("profiles", "p1", profile(todayMistakes=1022))
    assert adjust(api, "profiles", "p1", "todayMistakes", 2, 1024).data["todayMistakes"] == 1024  # reaching is fine
    with pytest.raises(AppwriteException) as raised:
        adjust(api, "profiles", "p1", "todayMistakes", 1, 1024)
    noun = "column" if api.rows else "attribute"
    assert (raised.value.code, raised.value.type) == (400, f"{noun}_limit_exceeded")
    assert raised.value.message == f'{noun.capitalize()} "todayMistakes" has reached the maximum value of 1024'
    with pytest.raises(AppwriteException) as raised:
        adjust(api, "profiles", "p1", "todayMistakes", 1025, 0, down=True)
    assert (raised.value.code, raised.value.type) == (400, f"{noun}_limit_exceeded")
    assert "minimum value of 0" in raised.value.message
    assert api.get("profiles", "p1").data["todayMistakes"] == 1024


def test_the_declared_range_is_not_checked_only_the_bound(api: Api) -> None:
    api.create("profiles", "p1", profile(todayMistakes=1024))
    assert adjust(api, "profiles", "p1", "todayMistakes").data["todayMistakes"] == 1025


def test_floats_and_nulls(api: Api) -> None:
    api.create("questions", "q1", question(qualityScore=4.5))
    assert adjust(api, "questions", "q1", "qualityScore", 0.25).data["qualityScore"] == 4.75
    api.create("profiles", "p1", profile(grade=None))
    assert adjust(api, "profiles", "p1", "grade", 2).data["grade"] == 2  # null counts as 0


@pytest.mark.parametrize(
    ("col", "key", "value", "code", "type_"),
    [
        ("profiles", "timezone", 1, 400, "attribute_type_invalid"),  # a string column
        ("knowledge_points_library", "grades", 1, 400, "attribute_type_invalid"),  # an integer array
        ("profiles", "totalMistakes", 0, 400, "general_argument_invalid"),
        ("profiles", "totalMistakes", -2, 400, "general_argument_invalid"),
        ("profiles", "totalMistakes", 1.5, 400, "general_argument_invalid"),  # not whole for an integer column
        ("profiles", "noSuchColumn", 1, 404, "{noun}_not_found"),
    ],
)
def test_invalid_adjustments_are_refused(
    api: Api, appwrite: AppwriteTestServer, col: str, key: str, value: float, code: int, type_: str
) -> None:
    module = {"name": "m", "subject": "数学", "educationLevel": "初中"}
    appwrite.insert(col, profile() if col == "profiles" else module, document_id="x1")
    before = appwrite.writes(col, "x1")
    for down in (False, True):
        with pytest.raises(AppwriteException) as raised:
            adjust(api, col, "x1", key, value, down=down)
        noun = "column" if api.rows else "attribute"
        assert (raised.value.code, raised.value.type) == (code, type_.format(noun=noun))
    assert appwrite.writes(col, "x1") == before


def test_a_missing_row_is_404(api: Api) -> None:
    with pytest.raises(AppwriteException) as raised:
        adjust(api, "profiles", "nope", "totalMistakes")
    assert (raised.value.code, raised.value.type) == (404, f"{api.noun}_not_found")


def test_increments_fire_update_events(api: Api, appwrite: AppwriteTestServer) -> None:
    api.create("profiles", "p1", profile())
    adjust(api, "profiles", "p1", "totalMistakes")
    adjust(api, "profiles", "p1", "totalMistakes", down=True)
    events = appwrite.events[-2:]
    assert [e.name for e in events] == ["databases.main.collections.profiles.documents.p1.update"] * 2
    assert [e.payload["totalMistakes"] for e in events] == [1, 0]
    assert events[0].payload[("$tableId" if api.rows else "$collectionId")] == "profiles"


def test_concurrent_increments_are_never_lost(appwrite: AppwriteTestServer, appwrite_client: Client) -> None:
    TablesDB(appwrite_client).create_row(DB, "profiles", "p1", profile())
    threads, per_thread = 8, 25
    start = threading.Barrier(threads)

    def hammer() -> None:
        tables = TablesDB(appwrite.client())
        start.wait()
        for _ in range(per_thread):
            tables.increment_row_column(DB, "profiles", "p1", "totalMistakes")

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert appwrite.document("profiles", "p1")["totalMistakes"] == threads * per_thread
