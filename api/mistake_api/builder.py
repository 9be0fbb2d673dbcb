"""Build a new MistakeAnalysis from an Appwrite mistake record (used by the sweeper and the CLI).

The trigger function builds the same body with its own copy of this logic; a test proves the two agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from . import constants as c
from .models import Origin, rfc3339, utcnow
from .naming import analysis_name, record_key, user_key


def analysis_from_record(
    record: Mapping[str, Any],
    *,
    database_id: str,
    collection_id: str,
    namespace: str,
    origin: Origin = Origin.TRIGGER,
    event: str | None = None,
    received_at: datetime | None = None,
    priority: int = 0,
    bucket_id: str = c.DEFAULT_BUCKET_ID,
) -> dict[str, Any]:
    """The MistakeAnalysis asking for the current revision (`$updatedAt`) of `record` to be analysed.

    Content is not judged here: a record without images still gets an analysis, which the operator fails with a
    named reason, so nothing stays pending silently.
    """
    record_id = str(record["$id"])
    revision = str(record.get("$updatedAt") or "")
    user_id = str(record.get("userId") or "")
    images = [str(i) for i in (record.get("originalImageIds") or []) if i is not None][: c.MAX_IMAGE_IDS]
    spec: dict[str, Any] = {
        "record": {"databaseId": database_id, "collectionId": collection_id, "documentId": record_id},
        "userId": user_id,
        "imageIds": images,
        "bucketId": bucket_id,
        "revision": revision,
        "priority": priority,
        "cancel": False,
        "source": {"origin": origin.value, "receivedAt": rfc3339(received_at or utcnow())},
    }
    if event:
        spec["source"]["event"] = event[:512]
    wrong_reason, question_id = record.get("wrongReason"), record.get("questionId")
    if wrong_reason or question_id:
        reanalysis: dict[str, Any] = {}
        if wrong_reason:
            reanalysis["wrongReason"] = str(wrong_reason)[:1000]
        if question_id:
            reanalysis["previousQuestionId"] = str(question_id)[:100]
        spec["reanalysis"] = reanalysis
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {
            "name": analysis_name(database_id, collection_id, record_id, revision),
            "namespace": namespace,
            "labels": {
                c.LABEL_RECORD: record_key(database_id, collection_id, record_id),
                c.LABEL_USER: user_key(user_id),
                c.LABEL_ORIGIN: origin.value,
                c.LABEL_PART_OF: c.PART_OF,
            },
            "annotations": {c.ANNOTATION_RECORD_ID: f"{database_id}/{collection_id}/{record_id}"},
        },
        "spec": spec,
    }
