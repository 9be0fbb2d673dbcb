"""Writes that production Appwrite refuses are refused here too, with the same codes and error types."""

from __future__ import annotations

from typing import Any

import pytest
from appwrite.exception import AppwriteException
from appwrite_support import Api, question, record

from mistake_testbed.appwrite import AppwriteTestServer, load_schema

pytestmark = pytest.mark.integration

# (collection, data, status, error suffix, text in the message)
REFUSED: list[tuple[str, dict[str, Any], int, str, str]] = [
    ("questions", {k: v for k, v in question().items() if k != "content"}, 400, "invalid_structure", '"content"'),
    ("questions", question(content="x" * 5001), 400, "invalid_structure", "no longer than 5000 chars"),
    ("questions", question(difficulty="3"), 400, "invalid_structure", "valid integer"),
    ("questions", question(difficulty=True), 400, "invalid_structure", "valid integer"),
    ("questions", question(qualityScore="high"), 400, "invalid_structure", "valid float"),
    ("questions", question(isPublic="yes"), 400, "invalid_structure", "valid boolean"),
    ("questions", question(moduleIds="m1"), 400, "invalid_structure", "must be an array"),
    ("questions", question(subject=["math"]), 400, "invalid_structure", "must not be an array"),
    ("questions", question(options=["A. " + "x" * 2000]), 400, "invalid_structure", "no longer than 2000"),
    ("questions", question(bogus=1), 400, "invalid_structure", "Unknown"),
    ("mistake_records", record(analyzedAt="yesterday"), 400, "invalid_structure", "valid date"),
    ("mistake_records", {"originalImageIds": ["i"]}, 400, "invalid_structure", '"userId"'),
    (
        "user_knowledge_points",
        {"userId": "u", "moduleId": "m", "subject": "math", "name": "n", "masteryScore": 101},
        400,
        "invalid_structure",
        "between 0 and 100",
    ),
    ("profiles", {"userId": "u", "todayMistakes": 1025}, 400, "invalid_structure", "between 0 and 1024"),
    (
        "knowledge_points_library",
        {"subject": "数学", "educationLevel": "初中", "name": "n", "grades": [13]},
        400,
        "invalid_structure",
        "between 1 and 12",
    ),
]


@pytest.mark.parametrize(("collection", "data", "status", "suffix", "text"), REFUSED)
def test_schema_violations_are_refused(
    api: Api, appwrite: AppwriteTestServer, collection: str, data: dict[str, Any], status: int, suffix: str, text: str
) -> None:
    with pytest.raises(AppwriteException) as caught:
        api.create(collection, "unique()", data)
    assert caught.value.code == status
    assert caught.value.type == f"{api.noun}_{suffix}"
    assert text in caught.value.message
    assert appwrite.documents(collection) == []


def test_update_is_validated_against_the_merged_document(api: Api) -> None:
    api.create("questions", "q1", question())
    with pytest.raises(AppwriteException) as caught:
        api.update("questions", "q1", {"content": None})
    assert caught.value.type == f"{api.noun}_invalid_structure"
    with pytest.raises(AppwriteException):
        api.update("questions", "q1", {"solvingHint": "h" * 5001})
    assert api.get("questions", "q1").data["content"] == "1+1=?"


def test_required_arrays_may_be_empty(api: Api) -> None:
    created = api.create("questions", "q1", question(moduleIds=[], knowledgePointIds=[]))
    assert created.data["moduleIds"] == []


def test_datetimes_are_normalised_like_appwrite(api: Api) -> None:
    created = api.create("mistake_records", "r1", record(analyzedAt="2026-01-02T03:04:05.678901Z"))
    assert created.data["analyzedAt"] == "2026-01-02T03:04:05.678+00:00"


@pytest.mark.parametrize(
    ("collection", "first", "second"),
    [
        (
            "user_knowledge_points",
            {"userId": "u1", "moduleId": "m1", "subject": "math", "name": "勾股定理"},
            {"userId": "u1", "moduleId": "m1", "subject": "math", "name": "勾股定理", "importance": "high"},
        ),
        ("profiles", {"userId": "u1"}, {"userId": "u1", "grade": 9}),
        (
            "knowledge_points_library",
            {"subject": "数学", "educationLevel": "初中", "name": "函数"},
            {"subject": "数学", "educationLevel": "初中", "name": "函数", "order": 5},
        ),
    ],
)
def test_unique_index_duplicates_conflict(
    api: Api, collection: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    api.create(collection, "a", first)
    with pytest.raises(AppwriteException) as caught:
        api.create(collection, "b", second)
    assert (caught.value.code, caught.value.type) == (409, f"{api.noun}_already_exists")
    # An update that would collide is refused as well.
    api.create(collection, "c", {**first, "name": "other"} if "name" in first else {"userId": "u2"})
    with pytest.raises(AppwriteException) as again:
        api.update(collection, "c", {"name": first["name"]} if "name" in first else {"userId": "u1"})
    assert again.value.code == 409


def test_schema_file_covers_every_collection_and_bucket() -> None:
    schema = load_schema()
    collections = schema.databases["main"]
    assert set(collections) == {
        "mistake_records",
        "questions",
        "knowledge_points_library",
        "user_knowledge_points",
        "review_states",
        "profiles",
    }
    assert collections["questions"].attributes["content"].size == 5000
    assert collections["questions"].attributes["content"].required
    assert [i.key for i in collections["user_knowledge_points"].unique_indexes] == ["userId_name_unique"]
    assert {b.id: b.maximum_file_size for b in schema.buckets.values()} == {
        "origin_question_image": 30_000_000,
        "extracted-images": 30_000_000,
    }
