"""The sweeper's first pass waits for the controller's resync: before it, every analysis looks missing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from mistake_operator.metrics import Metrics
from mistake_operator.records import Record
from mistake_operator.settings import Settings
from mistake_operator.sweeper import Sweeper

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]


class FakeRecords:
    def __init__(self) -> None:
        self.scans = 0
        self.scanned = asyncio.Event()

    async def scan(
        self, statuses: tuple[str, ...], updated_before: datetime, *, page_size: int
    ) -> AsyncIterator[Record]:
        self.scans += 1
        self.scanned.set()
        for _ in ():
            yield Record("main", "mistake_records", "r1", "2026-01-01T00:00:00.000+00:00", {})


class FakeApi:
    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        raise AssertionError("nothing to create")


async def test_no_pass_before_the_controller_is_ready() -> None:
    records = FakeRecords()
    sweeper = Sweeper(Settings(), FakeApi(), records, Metrics(CollectorRegistry()), "ns")  # type: ignore[arg-type]
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(sweeper.run(list, stop, ready))
    for _ in range(20):  # let the task run as far as it can without the ready signal
        await asyncio.sleep(0)
    assert records.scans == 0
    ready.set()
    await asyncio.wait_for(records.scanned.wait(), timeout=5)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert records.scans == 2  # pending, then processing/ocrOK


async def test_stop_before_ready_ends_the_task() -> None:
    records = FakeRecords()
    sweeper = Sweeper(Settings(), FakeApi(), records, Metrics(CollectorRegistry()), "ns")  # type: ignore[arg-type]
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(sweeper.run(list, stop, ready))
    await asyncio.sleep(0)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert records.scans == 0
