"""The trigger's copies of the contract give exactly what mistake_api gives: names, labels, the spec, the CRD."""

from __future__ import annotations

import string
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trigger_support import DROP, record

from mistake_api import (
    MistakeAnalysisSpec,
    Origin,
    Reanalysis,
    RecordRef,
    Source,
    analysis_name,
    naming,
    record_key,
    user_key,
)
from mistake_api import constants as c
from mistake_api.models import rfc3339

pytestmark = pytest.mark.unit

CRD = Path(__file__).resolve().parents[3] / "charts" / "mistake-analyzer" / "crds" / f"{c.CRD_NAME}.yaml"
ID_ALPHABET = string.ascii_letters + string.digits + "._-"
appwrite_ids = st.text(ID_ALPHABET, min_size=1, max_size=36).filter(lambda s: s[0].isalnum())
any_text = st.text(max_size=200)
revisions = st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat(timespec="milliseconds"))
FIXED = settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_constants_match_the_contract(trigger: ModuleType) -> None:
    pairs = {
        "GROUP": c.GROUP,
        "VERSION": c.VERSION,
        "API_VERSION": c.API_VERSION,
        "KIND": c.KIND,
        "PLURAL": c.PLURAL,
        "NAME_PREFIX": c.NAME_PREFIX,
        "LABEL_RECORD": c.LABEL_RECORD,
        "LABEL_USER": c.LABEL_USER,
        "LABEL_ORIGIN": c.LABEL_ORIGIN,
        "LABEL_PART_OF": c.LABEL_PART_OF,
        "PART_OF": c.PART_OF,
        "ANNOTATION_RECORD_ID": c.ANNOTATION_RECORD_ID,
        "ORIGIN": Origin.TRIGGER.value,
        "DEFAULT_BUCKET_ID": c.DEFAULT_BUCKET_ID,
        "MAX_IMAGE_IDS": c.MAX_IMAGE_IDS,
        "MAX_NAME": naming.MAX_NAME,
        "HASH_CHARS": naming.HASH_CHARS,
    }
    assert {name: getattr(trigger, name) for name in pairs} == pairs
    assert trigger.APPWRITE_ID.pattern == c.APPWRITE_ID_PATTERN
    assert trigger.DEFAULT_COLLECTIONS == c.DEFAULT_COLLECTION_ID


@settings(FIXED, max_examples=2_000)
@given(db=appwrite_ids, col=appwrite_ids, rec=appwrite_ids, rev=revisions)
def test_names_equal_the_contract_for_appwrite_ids(trigger: ModuleType, db: str, col: str, rec: str, rev: str) -> None:
    assert trigger.analysis_name(db, col, rec, rev) == analysis_name(db, col, rec, rev)
    assert trigger.record_key(db, col, rec) == record_key(db, col, rec)


@settings(FIXED, max_examples=2_000)
@given(db=any_text, col=any_text, rec=any_text, rev=any_text, user=any_text)
def test_names_equal_the_contract_for_any_text(
    trigger: ModuleType, db: str, col: str, rec: str, rev: str, user: str
) -> None:
    assert trigger.analysis_name(db, col, rec, rev) == analysis_name(db, col, rec, rev)
    assert trigger.record_key(db, col, rec) == record_key(db, col, rec)
    assert trigger.user_key(user) == user_key(user)


def test_names_of_known_twins_match(trigger: ModuleType) -> None:
    twins = ["Abc", "abc", "ABC", "a.b", "a_b", "a-b", "a" * 36, "9" * 36, "x.-_y", "数学"]
    for rec in twins:
        assert trigger.analysis_name("main", "mistake_records", rec, "r") == analysis_name(
            "main", "mistake_records", rec, "r"
        )


@pytest.fixture(scope="module")
def crd_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == c.VERSION]
    return dict(version["schema"]["openAPIV3Schema"])


def expected_spec(body: dict[str, Any], received: datetime, event: str) -> dict[str, Any]:
    """The spec built with mistake_api's own models from the same record."""
    images = [i for i in body.get("originalImageIds") or [] if isinstance(i, str)]
    wrong, question = body.get("wrongReason"), body.get("questionId")
    reanalysis = (
        Reanalysis(wrong_reason=wrong or None, previous_question_id=question or None) if wrong or question else None
    )
    spec = MistakeAnalysisSpec(
        record=RecordRef(database_id=body["$databaseId"], collection_id="mistake_records", document_id=body["$id"]),
        user_id=body.get("userId") or "",
        image_ids=images[: c.MAX_IMAGE_IDS],
        bucket_id=c.DEFAULT_BUCKET_ID,
        revision=body["$updatedAt"],
        reanalysis=reanalysis,
        priority=0,
        cancel=False,
        source=Source(origin=Origin.TRIGGER, event=event, received_at=received),
    )
    return spec.to_api()


bodies = st.fixed_dictionaries(
    {
        "$id": appwrite_ids,
        "$databaseId": appwrite_ids,
        "$updatedAt": revisions,
        "userId": st.one_of(st.just(DROP), st.text(ID_ALPHABET, min_size=1, max_size=36)),
        "originalImageIds": st.one_of(st.just(DROP), st.lists(appwrite_ids, max_size=80)),
        "wrongReason": st.one_of(st.none(), st.just(""), st.text(max_size=1000)),
        "questionId": st.one_of(st.none(), st.just(""), appwrite_ids),
        "analysisStatus": st.sampled_from(["pending", None, DROP]),
    }
)


@settings(FIXED, max_examples=300)
@given(
    fields=bodies,
    received=st.datetimes(
        min_value=datetime(2020, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.just(UTC),
    ),
)
def test_the_resource_equals_the_contract_and_fits_the_crd(
    trigger: ModuleType, crd_schema: dict[str, Any], fields: dict[str, Any], received: datetime
) -> None:
    body = record(**fields)
    db, rec = body["$databaseId"], body["$id"]
    event = f"databases.{db}.collections.mistake_records.documents.{rec}.update"
    target = trigger.Target(db, "mistake_records", rec, "update")

    resource = trigger.build_resource(target, body, event, "ns", received, 0, c.DEFAULT_BUCKET_ID)

    assert resource["spec"] == expected_spec(body, received, event)
    assert MistakeAnalysisSpec.model_validate(resource["spec"]).to_api() == resource["spec"]
    jsonschema.validate(resource, crd_schema)
    metadata = resource["metadata"]
    assert metadata["name"] == analysis_name(db, "mistake_records", rec, body["$updatedAt"])
    assert naming.is_dns1123_label(metadata["name"])
    assert metadata["labels"] == {
        c.LABEL_RECORD: record_key(db, "mistake_records", rec),
        c.LABEL_USER: user_key(body.get("userId") or ""),
        c.LABEL_ORIGIN: Origin.TRIGGER.value,
        c.LABEL_PART_OF: c.PART_OF,
    }
    assert metadata["annotations"][c.ANNOTATION_RECORD_ID] == f"{db}/mistake_records/{rec}"
    assert (resource["apiVersion"], resource["kind"]) == (c.API_VERSION, c.KIND)
    assert resource["spec"]["source"]["receivedAt"] == rfc3339(received)


def test_a_resource_at_every_bound_still_fits_the_crd(trigger: ModuleType, crd_schema: dict[str, Any]) -> None:
    body = record(
        userId="u" * 36,
        originalImageIds=["i" * 3000] * 100,
        wrongReason="w" * 5000,
        questionId="q" * 300,
        **{"$id": "r" * 36, "$databaseId": "d" * 36, "$updatedAt": "9" * 64},
    )
    event = "databases." + "x" * 1000 + ".update"
    target = trigger.Target("d" * 36, "mistake_records", "r" * 36, "update")
    resource = trigger.build_resource(target, body, event, "ns", datetime.now(UTC), 1000, "b" * 36)
    jsonschema.validate(resource, crd_schema)
    MistakeAnalysisSpec.model_validate(resource["spec"])
    assert len(resource["spec"]["imageIds"]) == c.MAX_IMAGE_IDS
