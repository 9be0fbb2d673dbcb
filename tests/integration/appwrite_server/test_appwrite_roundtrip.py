"""Every SDK call of sdk-facts section 1 against the stand-in: return types, system fields, error codes and types."""

from __future__ import annotations

import re
import warnings

import pytest
from appwrite.exception import AppwriteException
from appwrite.permission import Permission
from appwrite.query import Query
from appwrite.role import Role
from appwrite.services.databases import Databases
from appwrite.services.tables_db import TablesDB
from appwrite_support import DB, Api, question, record

from mistake_testbed.appwrite import AppwriteTestServer

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")


def test_create_returns_model_with_system_fields_and_defaults(api: Api) -> None:
    perms = [Permission.read(Role.any()), Permission.update(Role.user("u1"))]
    created = api.create("mistake_records", "rec1", record(), perms)

    assert isinstance(created, api.item_type)
    assert created.id == "rec1"
    assert created.sequence == "1"
    assert (created.tableid if api.rows else created.collectionid) == "mistake_records"
    assert created.databaseid == DB
    assert ISO_MS.match(created.createdat)
    assert created.createdat == created.updatedat
    assert created.permissions == ['read("any")', 'update("user:u1")']
    # Declared defaults are applied; unset attributes come back as null.
    assert created.data["analysisStatus"] == "pending"
    assert created.data["masteryStatus"] == "notStarted"
    assert created.data["reviewCount"] == 0
    assert created.data["isImportant"] is False
    assert created.data["questionId"] is None


def test_get_update_upsert_delete_cycle(api: Api, appwrite: AppwriteTestServer) -> None:
    api.create("mistake_records", "rec1", record())

    got = api.get("mistake_records", "rec1")
    assert isinstance(got, api.item_type)
    assert got.data["userId"] == "user-1"

    updated = api.update("mistake_records", "rec1", {"analysisStatus": "processing"})
    assert isinstance(updated, api.item_type)
    assert updated.data["analysisStatus"] == "processing"
    assert updated.data["originalImageIds"] == ["img-1"]  # PATCH keeps what it was not given
    assert updated.updatedat >= updated.createdat

    upserted = api.upsert("mistake_records", "rec1", {"note": "n"})
    assert upserted.data["note"] == "n"
    assert upserted.sequence == "1"
    fresh = api.upsert("mistake_records", "rec2", record(note="new"))
    assert fresh.sequence == "2"

    assert api.delete("mistake_records", "rec1") == b""  # 204 with a non-JSON content type
    assert [d["$id"] for d in appwrite.documents("mistake_records")] == ["rec2"]
    assert appwrite.writes("mistake_records", "rec1") == 4


def test_update_without_data_changes_only_permissions(api: Api) -> None:
    api.create("mistake_records", "rec1", record())
    updated = api.update("mistake_records", "rec1", permissions=[Permission.read(Role.any())])
    assert updated.permissions == ['read("any")']
    assert updated.data["userId"] == "user-1"


def test_list_and_query_return_lists_with_total(api: Api) -> None:
    for i in range(3):
        api.create("mistake_records", f"r{i}", record(analysisStatus="pending" if i else "completed"))

    listed = api.list("mistake_records", [Query.equal("analysisStatus", "pending")])
    assert isinstance(listed, api.list_type)
    items = listed.rows if api.rows else listed.documents
    assert listed.total == 2
    assert [i.id for i in items] == ["r1", "r2"]
    assert all(isinstance(i, api.item_type) for i in items)

    no_total = api.list("mistake_records", [Query.limit(1)], total=False)
    assert no_total.total == 0
    assert len(no_total.rows if api.rows else no_total.documents) == 1

    queried = api.query("mistake_records", [Query.order_desc("$sequence"), Query.limit(2)])
    assert isinstance(queried, api.list_type)
    assert [i.id for i in (queried.rows if api.rows else queried.documents)] == ["r2", "r1"]


def test_get_with_select_returns_only_selected_attributes(api: Api) -> None:
    api.create("mistake_records", "rec1", record(note="x"))
    got = api.get("mistake_records", "rec1", [Query.select(["note"])])
    assert got.id == "rec1"
    assert got.data == {"note": "x"}


@pytest.mark.parametrize(
    ("action", "status", "suffix"),
    [
        ("get_missing", 404, "not_found"),
        ("update_missing", 404, "not_found"),
        ("delete_missing", 404, "not_found"),
        ("create_duplicate", 409, "already_exists"),
        ("unknown_collection", 404, "not_found"),
    ],
)
def test_errors_carry_appwrite_code_and_type(api: Api, action: str, status: int, suffix: str) -> None:
    api.create("mistake_records", "rec1", record())
    calls = {
        "get_missing": lambda: api.get("mistake_records", "nope"),
        "update_missing": lambda: api.update("mistake_records", "nope", {"note": "x"}),
        "delete_missing": lambda: api.delete("mistake_records", "nope"),
        "create_duplicate": lambda: api.create("mistake_records", "rec1", record()),
        "unknown_collection": lambda: api.get("no_such_collection", "rec1"),
    }
    with pytest.raises(AppwriteException) as caught:
        calls[action]()
    noun = ("table" if api.rows else "collection") if action == "unknown_collection" else api.noun
    assert caught.value.code == status
    assert caught.value.type == f"{noun}_{suffix}"
    assert f'"type":"{noun}_{suffix}"' in caught.value.response
    assert '"version"' in caught.value.response


def test_unknown_database_is_database_not_found(api: Api) -> None:
    svc = TablesDB(api.client)
    with pytest.raises(AppwriteException) as caught:
        svc.get_row("nodb", "mistake_records", "x")
    assert (caught.value.code, caught.value.type) == (404, "database_not_found")


def test_tablesdb_and_databases_see_the_same_data(appwrite: AppwriteTestServer) -> None:
    client = appwrite.client()
    docs, rows = Databases(client), TablesDB(client)
    docs.create_document(DB, "questions", "q1", question())
    rows.update_row(DB, "questions", "q1", {"content": "2+2=?"})
    doc = docs.get_document(DB, "questions", "q1")
    row = rows.get_row(DB, "questions", "q1")
    assert doc.data == row.data
    assert doc.data["content"] == "2+2=?"
    assert (doc.id, doc.sequence, doc.createdat, doc.updatedat) == (row.id, row.sequence, row.createdat, row.updatedat)
    assert doc.collectionid == row.tableid == "questions"


def test_databases_methods_warn_deprecated_without_failing(appwrite: AppwriteTestServer) -> None:
    docs = Databases(appwrite.client())
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        docs.create_document(DB, "questions", "q1", question())
    assert any(issubclass(w.category, DeprecationWarning) for w in seen)
    assert appwrite.document("questions", "q1")["content"] == "1+1=?"


def test_unique_id_placeholder_generates_sdk_style_ids(api: Api) -> None:
    created = api.create("mistake_records", "unique()", record())
    assert re.fullmatch(r"[0-9a-f]{20}", created.id)


def test_invalid_document_id_is_argument_invalid(api: Api) -> None:
    with pytest.raises(AppwriteException) as caught:
        api.create("mistake_records", "_bad id", record())
    assert (caught.value.code, caught.value.type) == (400, "general_argument_invalid")


@pytest.mark.parametrize(
    ("key", "project", "status", "type_"),
    [
        ("", None, 401, "general_unauthorized_scope"),
        ("wrong-key", None, 401, "user_unauthorized"),
        (None, "other-project", 404, "project_not_found"),
    ],
)
def test_requests_need_project_and_key(
    appwrite: AppwriteTestServer, key: str | None, project: str | None, status: int, type_: str
) -> None:
    client = appwrite.client(project_id=project)
    if key is not None:
        client.set_key(key)
        if key == "":
            del client._global_headers["x-appwrite-key"]
    with pytest.raises(AppwriteException) as caught:
        TablesDB(client).list_rows(DB, "mistake_records")
    assert (caught.value.code, caught.value.type) == (status, type_)


def test_connection_refused_is_code_zero(appwrite: AppwriteTestServer) -> None:
    appwrite.down()
    with pytest.raises(AppwriteException) as caught:
        TablesDB(appwrite.client()).list_rows(DB, "mistake_records")
    assert caught.value.code == 0
    appwrite.up()
    assert TablesDB(appwrite.client()).list_rows(DB, "mistake_records").total == 0
