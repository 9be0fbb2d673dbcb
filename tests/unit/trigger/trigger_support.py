"""Payloads, headers and a fake HTTP session shared by the trigger's unit tests."""

from __future__ import annotations

import json
from typing import Any

import requests

TOKEN = "sa-token-4f1b9c2e7d"
APPWRITE_KEY = "ephemeral_k3y-that-must-stay-private"
USER_JWT = "eyJhbGciOiJIUzI1NiJ9.user-jwt-marker"
DOC_EVENT = "databases.main.collections.mistake_records.documents.r1.{action}"
ROW_EVENT = "databases.main.tables.mistake_records.rows.r1.{action}"


DROP = object()  # a field value meaning "leave the field out"


def record(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "$id": "r1",
        "$sequence": "1",
        "$collectionId": "mistake_records",
        "$databaseId": "main",
        "$createdAt": "2026-01-05T08:00:00.000+00:00",
        "$updatedAt": "2026-01-05T08:00:00.000+00:00",
        "$permissions": [],
        "userId": "user-1",
        "originalImageIds": ["img-1", "img-2"],
        "analysisStatus": "pending",
        "wrongReason": None,
        "questionId": None,
    }
    base.update(fields)
    return {k: v for k, v in base.items() if v is not DROP}


def headers(event: str | None) -> dict[str, str]:
    out = {
        "content-type": "application/json",
        "x-appwrite-trigger": "event",
        "x-appwrite-key": APPWRITE_KEY,
        "x-appwrite-user-id": "user-1",
        "x-appwrite-user-jwt": USER_JWT,
        "x-appwrite-execution-id": "exec-1",
    }
    if event is not None:
        out["x-appwrite-event"] = event
    return out


class FakeSession:
    """Stands in for the HTTP session: records each POST and answers with a status or raises an exception."""

    def __init__(self, answer: int | BaseException = 201, message: str = "") -> None:
        self.answer = answer
        self.message = message
        self.calls: list[dict[str, Any]] = []

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        self.calls.append({"url": url, **kwargs})
        if isinstance(self.answer, BaseException):
            raise self.answer
        response = requests.Response()
        response.status_code = self.answer
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": self.message}
        response._content = json.dumps(status).encode()
        response.headers["content-type"] = "application/json"
        return response

    @property
    def posted(self) -> dict[str, Any]:
        return dict(json.loads(self.calls[-1]["data"]))
