"""The deployed trigger and the app's record writes, shared by the trigger's integration tests and the benchmark."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appwrite.services.databases import Databases
from appwrite.services.tables_db import TablesDB

from mistake_testbed.appwrite.events import Subscription
from mistake_testbed.appwrite.function_host import FunctionHost
from mistake_testbed.appwrite.server import AppwriteTestServer

FUNCTION_DIR = Path(__file__).resolve().parents[3] / "trigger_function"
ENTRY = FUNCTION_DIR / "src" / "main.py"
TOKEN = "trigger-sa-token-0c1d2e"
MA = ("mistakes.dev", "mistakeanalyses")


def function_config() -> dict[str, Any]:
    """The function's entry in its appwrite.config.json: the events subscribed are the ones deployed."""
    config = json.loads((FUNCTION_DIR / "appwrite.config.json").read_text())
    (entry,) = config["functions"]
    return dict(entry)


@dataclass
class Deployed:
    """The function as deployed: its host (runs and logs), its subscription, and the module it loaded."""

    host: FunctionHost
    subscription: Subscription
    appwrite: AppwriteTestServer

    @property
    def module_globals(self) -> dict[str, Any]:
        main = self.host._main
        assert main is not None
        return dict(main.__globals__)

    def outcomes(self) -> list[dict[str, Any]]:
        return [json.loads(run.response_body) for run in self.host.runs]


class Records:
    """Writes `mistake_records` through the Appwrite SDK, as the app does (documents or rows)."""

    def __init__(self, server: AppwriteTestServer, rows: bool = False) -> None:
        self.client = server.client()
        self.rows = rows

    def create(self, record_id: str, **fields: Any) -> dict[str, Any]:
        data = {"userId": "user-1", "originalImageIds": ["img-1"], "analysisStatus": "pending", **fields}
        if self.rows:
            return dict(TablesDB(self.client).create_row("main", "mistake_records", record_id, data).to_dict())
        with warnings.catch_warnings(record=True):  # the Databases service is deprecated in favour of TablesDB
            return dict(Databases(self.client).create_document("main", "mistake_records", record_id, data).to_dict())

    def update(self, record_id: str, **fields: Any) -> dict[str, Any]:
        if self.rows:
            return dict(TablesDB(self.client).update_row("main", "mistake_records", record_id, fields).to_dict())
        with warnings.catch_warnings(record=True):
            return dict(Databases(self.client).update_document("main", "mistake_records", record_id, fields).to_dict())

    def upsert(self, record_id: str, **fields: Any) -> dict[str, Any]:
        data = {"userId": "user-1", "originalImageIds": ["img-1"], **fields}
        if self.rows:
            return dict(TablesDB(self.client).upsert_row("main", "mistake_records", record_id, data).to_dict())
        with warnings.catch_warnings(record=True):
            return dict(Databases(self.client).upsert_document("main", "mistake_records", record_id, data).to_dict())
