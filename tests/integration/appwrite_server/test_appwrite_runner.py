"""The runner from asyncio code, seeding helpers and the command line."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import requests
from appwrite.query import Query
from appwrite.services.tables_db import TablesDB

from mistake_testbed.appwrite import AppwriteTestServer
from mistake_testbed.appwrite.seed import seed_record

pytestmark = pytest.mark.integration


@pytest.mark.asyncio
async def test_async_context_manager_keeps_the_loop_free() -> None:
    async with AppwriteTestServer() as aw:
        rows = TablesDB(aw.client())
        created = await asyncio.to_thread(rows.create_row, "main", "mistake_records", "r1", {"userId": "u1"})
        assert created.id == "r1"
        assert aw.writes("mistake_records") == 1
    with pytest.raises(requests.ConnectionError):
        await asyncio.to_thread(requests.get, aw.endpoint + "/health/version", timeout=2)


def test_seeded_modules_profile_and_record(appwrite_seeded: AppwriteTestServer) -> None:
    rows = TablesDB(appwrite_seeded.client())
    middle_math = rows.list_rows(
        "main",
        "knowledge_points_library",
        [Query.equal("subject", "数学"), Query.equal("educationLevel", "初中"), Query.order_asc("order")],
    )
    assert [r.data["name"] for r in middle_math.rows][-1] == "未分类"
    levels = {(d["subject"], d["educationLevel"]) for d in appwrite_seeded.documents("knowledge_points_library")}
    assert len(levels) >= 6
    profile = rows.list_rows("main", "profiles", [Query.equal("userId", "user-1")]).rows[0]
    assert profile.data["grade"] == 8
    record = seed_record(appwrite_seeded, ["img-1"], record_id="r1")
    assert record["analysisStatus"] == "pending"
    assert appwrite_seeded.writes("mistake_records") == 0  # seeding is not an API write
    assert appwrite_seeded.events == []


def test_cli_prints_endpoint_project_and_key() -> None:
    command = [sys.executable, "-m", "mistake_testbed.cli", "appwrite-test-server", "--port", "0", "--key", "k1"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        endpoint = lines[0].split()[1]
        assert endpoint.startswith("http://127.0.0.1:")
        assert endpoint.endswith("/v1")
        assert lines[1].split()[-1] == "mistake-analyzer-test"
        assert lines[2].split()[-1] == "k1"
        assert requests.get(endpoint + "/health/version", timeout=5).json()["version"]
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_cli_refuses_non_loopback_hosts() -> None:
    from mistake_testbed.appwrite.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--host", "example.invalid"])
    assert exit_info.value.code == 2
