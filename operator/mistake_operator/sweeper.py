"""The sweeper: Appwrite records waiting for an analysis that has no live MistakeAnalysis get one.

This is what makes a missed or failed trigger harmless. Pending records older than the grace period, and
records stuck in processing/ocrOK longer than `stuckSeconds`, are re-queued when no active analysis (nor a
final one still owing Appwrite its outcome) exists for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from mistake_api import Origin, analysis_from_record, record_key, utcnow

from . import metrics as m
from .kubeapi import ApiError, KubeApi, analyses_path
from .records import OCR_OK, PENDING, PROCESSING, Record, RecordError, Records
from .settings import Settings
from .state import AnalysisView

log = logging.getLogger("mistake_operator.sweeper")


def covered(views: Iterable[AnalysisView]) -> set[str]:
    """Record keys that need no recovery: an analysis is active, or a final one still owes Appwrite a write."""
    keys = set()
    for view in views:
        if view.active or (view.terminal and not view.record_synced and view.phase is not None):
            keys.add(view.record_key)
    return keys


class Sweeper:
    def __init__(self, settings: Settings, api: KubeApi, records: Records, metrics: m.Metrics, namespace: str) -> None:
        self.settings = settings
        self.api = api
        self.records = records
        self.metrics = metrics
        self.namespace = namespace

    async def sweep(self, views: Iterable[AnalysisView], now: datetime) -> int:
        """One pass; returns the number of records recovered."""
        live = covered(v for v in views if v.namespace == self.namespace)
        cfg = self.settings.sweeper
        recovered = 0
        groups = (
            ((PENDING,), now - timedelta(seconds=cfg.grace_seconds)),
            ((PROCESSING, OCR_OK), now - timedelta(seconds=cfg.stuck_seconds)),
        )
        for statuses, cutoff in groups:
            async for record in self.records.scan(statuses, cutoff, page_size=cfg.page_size):
                key = record_key(record.database_id, record.collection_id, record.id)
                if key in live:
                    continue
                if await self._recover(record, now):
                    live.add(key)
                    recovered += 1
                    self.metrics.counter(m.SWEEPER_RECOVERIES).labels(self.namespace, record.status).inc()
        return recovered

    async def _recover(self, record: Record, now: datetime) -> bool:
        body = analysis_from_record(
            {"$id": record.id, "$updatedAt": record.updated_at, **record.data},
            database_id=record.database_id,
            collection_id=record.collection_id,
            namespace=self.namespace,
            origin=Origin.SWEEPER,
            received_at=now,
        )
        try:
            await self.api.create(analyses_path(self.namespace), body)
        except ApiError as err:
            if err.status != 409:
                raise
            # This exact revision was analysed already and ended; ask for a fresh revision instead.
            fresh = await self.records.set_pending(record)
            return await self._recover(fresh, now) if fresh.updated_at != record.updated_at else False
        log.info("sweeper re-queued record %s (%s since %s)", record.id, record.status, record.updated_at)
        return True

    async def run(
        self,
        snapshot: Callable[[], Iterable[AnalysisView]],
        stop: asyncio.Event,
        ready: asyncio.Event | None = None,
    ) -> None:
        interval = self.settings.sweeper.interval_seconds
        if ready is not None:
            # Before the controller's first list every analysis looks missing: a pass then would re-queue (and
            # bump the revision of) every pending record that already has one, e.g. after an operator restart.
            waits = [asyncio.ensure_future(ready.wait()), asyncio.ensure_future(stop.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
        while not stop.is_set():
            try:
                found = await self.sweep(list(snapshot()), utcnow())
                self.metrics.counter(m.SWEEPER_RUNS).labels("ok").inc()
                if found:
                    log.info("sweeper recovered %d records", found)
            except (ApiError, RecordError) as err:
                self.metrics.counter(m.SWEEPER_RUNS).labels("error").inc()
                log.warning("sweeper pass failed: %s", err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
