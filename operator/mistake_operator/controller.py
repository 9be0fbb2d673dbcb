"""The controller loop: every write the operator makes, decided from the watched state.

kopf's watch handlers only feed `ClusterState` and wake this loop. Each pass runs the steps below in order;
every step is idempotent and every status write is conditional (JSON-patch `test` ops), so a crash at any
instant followed by a restart picks up exactly where the API says things are.

Scheduling protocol (why members are marked before the Job exists):
1. members go Queued → Scheduled with `jobName` = the deterministic batch name (a conditional patch each);
2. the Job is created with exactly the members that were marked.
A crash between 1 and 2 leaves analyses Scheduled for a Job that does not exist; `ensure_jobs` creates it
(same name, so a Job that does exist answers 409). The worker only takes analyses Scheduled for its own Job, so
no analysis is ever worked on by two live Jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

import kopf

from mistake_api import Phase, Reason, analysis_error_text, phase_patch, utcnow
from mistake_api import constants as c
from mistake_api.reasons import REASONS, Outcome

from . import batching, intake, observe, retry
from . import metrics as m
from .jobs import build_job, job_name_for
from .kubeapi import ApiError, KubeApi, analyses_path, jobs_path
from .records import UNFINISHED, RecordError, Records
from .settings import Settings
from .state import RECONCILED_ANNOTATION, AnalysisView, ClusterState, JobView, parse_time

log = logging.getLogger("mistake_operator.controller")

CANCEL_REASON_ANNOTATION = c.ANNOTATION_CANCEL_REASON
# How long a Scheduled analysis may wait for its Job to show up in the watch before the controller acts on it.
JOB_APPEAR_GRACE = timedelta(seconds=5)
COALESCE_SECONDS = 0.02  # gather a burst of watch events into one pass
CLEANUP_INTERVAL = 30.0  # at most; shorter when the TTL itself is short


def _rv_newer(incoming: str, cached: str) -> bool:
    if incoming.isdigit() and cached.isdigit():
        return int(incoming) >= int(cached)
    return True


class Controller:
    def __init__(
        self,
        settings: Settings,
        api: KubeApi,
        metrics: m.Metrics,
        records: Records | None,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.api = api
        self.metrics = metrics
        self.records = records
        self.clock = clock
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self.state = ClusterState()
        self._wake = asyncio.Event()
        self._creating: set[tuple[str, str]] = set()  # Jobs this process is creating right now
        self._last_cleanup = 0.0
        self.ready = asyncio.Event()
        self.heartbeat = time.monotonic()
        self.passes = 0
        self._intake_chunk = max(2 * settings.batch_size, 200)
        self._tasks: set[asyncio.Task[None]] = set()
        # per-step back-off after failures: key -> (not before, current delay)
        self._gates: dict[tuple[str, ...], tuple[float, float]] = {}

    # ----------------------------------------------------------------- fed by the watch handlers
    def analysis_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        if event_type == "DELETED":
            gone = self.state.remove_analysis(*key)
            if gone is not None and gone.active:
                self._spawn(self._deleted_while_active(gone))
            self.wake()
            return
        cached = self.state.analyses.get(key)
        if cached is not None and not _rv_newer(str(meta.get("resourceVersion", "")), cached.resource_version):
            return  # an older copy than the one we hold (e.g. a watch replay after our own list)
        old, new = self.state.upsert_analysis(body)
        observe.analysis_transition(self.metrics, old, new)
        self.wake()

    def job_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        ns, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        if event_type == "DELETED":
            old = self.state.remove_job(ns, name)
            observe.job_transition(self.metrics, old, None, ns)
            if old is not None and not old.reconciled:
                self._spawn(self._guarded(self._reconcile_job(old, gone=True)))
            self.wake()
            return
        old_job, new_job = self.state.upsert_job(body)
        observe.job_transition(self.metrics, old_job, new_job, ns)
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    # ----------------------------------------------------------------- the loop
    @property
    def clusterwide(self) -> bool:
        return "*" in self.settings.namespaces

    async def resync(self) -> None:
        """Seed the cache from a fresh list, so the first decisions after a (re)start see the whole picture."""
        scopes: list[str | None] = [None] if self.clusterwide else list(self.namespaces())
        label = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
        for ns in scopes:
            for body in await self.api.list_items(analyses_path(ns)):
                self.analysis_event("ADDED", body)
            for body in await self.api.list_items(jobs_path(ns), label_selector=label):
                self.state.upsert_job(body)

    def namespaces(self) -> list[str]:
        """Namespaces to batch in: the configured ones, or every namespace seen when watching all."""
        if self.clusterwide:
            return sorted(self.state.namespaces())
        return list(self.settings.namespaces) or ["default"]

    async def run(self) -> None:
        await self.resync()
        self.ready.set()
        while True:
            self.heartbeat = time.monotonic()
            try:
                await self.run_pass()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.metrics.counter(m.OPERATOR_ERRORS).labels("controller").inc()
                log.exception("controller pass failed; retrying")
                await asyncio.sleep(1.0)
            await self._sleep_until_needed()

    async def _sleep_until_needed(self) -> None:
        now = self.clock()
        due = batching.next_flush_in(self.state.analyses.values(), set(), self.settings, now)
        timeout = min(due if due is not None else 5.0, 5.0)
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=max(timeout, 0.005))
        await asyncio.sleep(COALESCE_SECONDS)

    async def run_pass(self) -> None:
        self.passes += 1
        now = self.clock()
        views = list(self.state.analyses.values())
        # Intake in chunks, oldest first, so a burst of thousands is batched as it is taken in rather than after.
        new = sorted((v for v in views if v.phase is None), key=lambda v: (v.created or now, v.name))
        chunk = new[: self._intake_chunk]
        await self._gather(self._intake(v) for v in chunk)
        if len(new) > len(chunk):
            self.wake()
        await self._supersede(now)
        await self._gather(self._cancel_queued(v, now) for v in views if v.phase is Phase.QUEUED and v.cancel)
        await self._gather(
            self._reconcile_job(j) for j in list(self.state.jobs.values()) if j.finished and not j.reconciled
        )
        await self.ensure_jobs(now)
        await self.schedule(now)
        await self._gather(
            self._gated(("outbox", *v.key), self._sync_record(v))
            for v in views
            if v.phase in (Phase.FAILED, Phase.CANCELLED) and not v.record_synced and self._due(("outbox", *v.key))
        )
        cleanup_every = min(CLEANUP_INTERVAL, max(self.settings.finished_ttl_seconds / 2, 0.5))
        if time.monotonic() - self._last_cleanup > cleanup_every:
            self._last_cleanup = time.monotonic()
            await self.cleanup(now)

    async def _gather(self, coros: Iterable[Awaitable[None]]) -> None:
        await asyncio.gather(*(self._guarded(coro) for coro in coros))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)  # keep a reference until done: the loop holds only weak ones
        task.add_done_callback(self._tasks.discard)

    def _due(self, key: tuple[str, ...]) -> bool:
        """False while a step that failed for `key` is backing off, so a down service is not hammered every pass."""
        gate = self._gates.get(key)
        return gate is None or time.monotonic() >= gate[0]

    async def _gated(self, key: tuple[str, ...], coro: Awaitable[None]) -> None:
        """Run a step; on failure back off for `key` (1 s doubling to 60 s), on success forget it."""
        try:
            await coro
        except (ApiError, RecordError) as err:
            if isinstance(err, ApiError) and (err.conflict or err.not_found):
                log.debug("lost a race (%s); the next pass sees the new state", err)
                return
            delay = min(self._gates.get(key, (0.0, 0.5))[1] * 2, 60.0)
            self._gates[key] = (time.monotonic() + delay, delay)
            self.metrics.counter(m.OPERATOR_ERRORS).labels("appwrite" if isinstance(err, RecordError) else "api").inc()
            log.warning("%s failed (retrying in %.0f s): %s", "/".join(key), delay, err)
        else:
            self._gates.pop(key, None)

    async def _guarded(self, coro: Awaitable[None]) -> None:
        try:
            await coro
        except ApiError as err:
            if err.conflict or err.not_found:
                log.debug("lost a race (%s); the next pass sees the new state", err)
            else:
                self.metrics.counter(m.OPERATOR_ERRORS).labels("api").inc()
                log.warning("API request failed: %s", err)
        except RecordError as err:
            self.metrics.counter(m.OPERATOR_ERRORS).labels("appwrite").inc()
            log.warning("Appwrite request failed: %s", err)

    # ----------------------------------------------------------------- status writes
    async def _patch_status(
        self, view: AnalysisView, patch: Mapping[str, Any], tests: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write status fields conditionally: `tests` maps JSON pointers to the values the server must hold."""
        ops: list[dict[str, Any]] = [{"op": "test", "path": p, "value": v} for p, v in (tests or {}).items()]
        if not view.status:
            ops.append({"op": "add", "path": "/status", "value": {k: v for k, v in patch.items() if v is not None}})
        else:
            for key, value in patch.items():
                if value is None:
                    if key in view.status:
                        ops.append({"op": "remove", "path": f"/status/{key}"})
                else:
                    ops.append({"op": "add", "path": f"/status/{key}", "value": value})
        result = await self.api.json_patch(analyses_path(view.namespace, view.name, status=True), ops)
        self.analysis_event("MODIFIED", result)
        return result

    def _event(self, view: AnalysisView, reason: str, message: str, *, warning: bool = False) -> None:
        body: Any = {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {"name": view.name, "namespace": view.namespace, "uid": view.uid},
        }
        # Outside a running operator (unit tests) there is no event poster: LookupError from its context vars.
        with contextlib.suppress(LookupError):
            (kopf.warn if warning else kopf.info)(body, reason=reason, message=message)

    # ----------------------------------------------------------------- 1. intake
    async def _intake(self, view: AnalysisView) -> None:
        now = self.clock()  # queuedAt is the moment of the write: queue waits are measured from it
        annotations = view.body.get("metadata", {}).get("annotations") or {}
        raw_count = str(annotations.get(c.ANNOTATION_ORIGINAL_IMAGE_COUNT, ""))
        rejection = intake.check_spec(view.spec, self.settings, int(raw_count) if raw_count.isdigit() else None)
        tests = {"/metadata/resourceVersion": view.resource_version}
        if rejection is not None:
            patch = phase_patch(
                None,
                Phase.FAILED,
                reason=rejection.reason,
                message=rejection.message,
                generation=view.generation,
                now=now,
                queued_at=now,
                finished_at=now,
                attempts=0,
                error={"reason": rejection.reason.value, "message": rejection.message[:1000], "retryable": False},
            )
            await self._patch_status(view, patch, tests)
            self._event(view, rejection.reason.value, rejection.message, warning=True)
            return
        if view.cancel:
            await self._finish_cancelled(view, Reason.CANCELLED, "cancelled before it was queued", now, tests)
            return
        patch = phase_patch(None, Phase.QUEUED, generation=view.generation, now=now, queued_at=now, attempts=0)
        await self._patch_status(view, patch, tests)
        self._event(view, "Queued", f"record {view.spec.get('record', {}).get('documentId')} queued for analysis")

    # ----------------------------------------------------------------- 2. one active analysis per record
    async def _supersede(self, now: datetime) -> None:
        groups: dict[tuple[str, str], list[AnalysisView]] = {}
        for view in self.state.analyses.values():
            if view.active and not view.cancel and view.record_key and view.phase is not None:
                groups.setdefault((view.namespace, view.record_key), []).append(view)
        losers = [v for group in groups.values() if len(group) > 1 for v in intake.superseded(group)]
        await self._gather(self._cancel_superseded(v, now) for v in losers)

    async def _cancel_superseded(self, view: AnalysisView, now: datetime) -> None:
        if view.phase is Phase.QUEUED:
            await self._finish_cancelled(
                view, Reason.SUPERSEDED, "a newer revision of the record was queued", now, {"/status/phase": "Queued"}
            )
            return
        # Held by a Job: ask the worker to drop it; the Job's reconciliation records the outcome.
        patch = {
            "metadata": {"annotations": {CANCEL_REASON_ANNOTATION: Reason.SUPERSEDED.value}},
            "spec": {"cancel": True},
        }
        result = await self.api.merge_patch(analyses_path(view.namespace, view.name), patch)
        self.analysis_event("MODIFIED", result)

    async def _cancel_queued(self, view: AnalysisView, now: datetime) -> None:
        reason = self._cancel_reason(view)
        await self._finish_cancelled(view, reason, "spec.cancel was set", now, {"/status/phase": "Queued"})

    def _cancel_reason(self, view: AnalysisView) -> Reason:
        annotations = view.body.get("metadata", {}).get("annotations") or {}
        raw = annotations.get(CANCEL_REASON_ANNOTATION, Reason.CANCELLED.value)
        return Reason(raw) if raw in REASONS else Reason.CANCELLED

    async def _finish_cancelled(
        self, view: AnalysisView, reason: Reason, message: str, now: datetime, tests: Mapping[str, Any]
    ) -> None:
        extra: dict[str, Any] = {} if view.status else {"queued_at": now, "attempts": 0}
        patch = phase_patch(
            view.status,
            Phase.CANCELLED,
            reason=reason,
            message=message,
            generation=view.generation,
            now=now,
            finished_at=now,
            error={"reason": reason.value, "message": message, "retryable": False},
            # Superseded analyses leave the record to the newer one: nothing to write to Appwrite.
            record_synced=True if reason is Reason.SUPERSEDED else None,
            **extra,
        )
        await self._patch_status(view, patch, tests)
        self._event(view, reason.value, message)

    # ----------------------------------------------------------------- 3. Jobs that ended
    async def _reconcile_job(self, job: JobView, *, gone: bool = False) -> None:
        now = self.clock()
        for name in job.members:
            view = self.state.analyses.get((job.namespace, name))
            if view is None or view.job_name != job.name or view.phase not in (Phase.SCHEDULED, Phase.RUNNING):
                continue  # finished, re-queued already, or never marked for this Job
            await self._after_attempt(view, None if gone else job, now)
        if not gone:
            patch = {"metadata": {"annotations": {RECONCILED_ANNOTATION: "true"}}}
            result = await self.api.merge_patch(jobs_path(job.namespace, job.name), patch)
            self.state.upsert_job(result)

    async def _after_attempt(self, view: AnalysisView, job: JobView | None, now: datetime) -> None:
        tests = {"/status/jobName": view.job_name, "/status/phase": view.phase.value if view.phase else ""}
        if view.cancel:
            await self._finish_cancelled(view, self._cancel_reason(view), "cancelled while in a Job", now, tests)
            return
        decision = retry.decide(view, job, self.settings, now, self.rng)
        if isinstance(decision, retry.Requeue):
            patch = phase_patch(
                view.status,
                Phase.QUEUED,
                message=f"retry {view.attempts + 1} after {decision.reason.value}",
                generation=view.generation,
                now=now,
                queued_at=now,
                next_attempt_at=decision.next_attempt_at,
                job_name=None,
                error={"reason": decision.reason.value, "message": decision.message[:1000], "retryable": True},
            )
            await self._patch_status(view, patch, tests)
            self.metrics.counter(m.RETRIES).labels(view.namespace, decision.reason.value).inc()
            self._event(view, "Retrying", f"{decision.reason.value}: {decision.message}"[:1000], warning=True)
            return
        patch = phase_patch(
            view.status,
            Phase.FAILED,
            reason=decision.reason,
            message=decision.message[:1000],
            generation=view.generation,
            now=now,
            finished_at=now,
            error={"reason": decision.reason.value, "message": decision.message[:1000], "retryable": False},
        )
        await self._patch_status(view, patch, tests)
        self._event(view, decision.reason.value, decision.message[:1000], warning=True)

    # ----------------------------------------------------------------- 4. Jobs that should exist
    def _known_job(self, namespace: str, name: str) -> bool:
        key = (namespace, name)
        return key in self.state.jobs or key in self.state.pending_jobs or key in self._creating

    async def ensure_jobs(self, now: datetime) -> None:
        """Analyses Scheduled or Running for a Job that is not there: create it, or (if it ran) retry them."""
        missing: dict[tuple[str, str], list[AnalysisView]] = {}
        for view in self.state.analyses.values():
            if view.phase not in (Phase.SCHEDULED, Phase.RUNNING) or not view.job_name:
                continue
            if self._known_job(view.namespace, view.job_name):
                continue
            scheduled_at = parse_time(view.status.get("scheduledAt")) or now
            if now - scheduled_at < JOB_APPEAR_GRACE:
                continue
            missing.setdefault((view.namespace, view.job_name), []).append(view)
        await self._gather(
            self._gated(("job", ns, name), self._restore_job(ns, name, members, now))
            for (ns, name), members in missing.items()
            if self._due(("job", ns, name))
        )

    async def _restore_job(self, namespace: str, name: str, members: list[AnalysisView], now: datetime) -> None:
        try:
            body = await self.api.get(jobs_path(namespace, name))
        except ApiError as err:
            if not err.not_found:
                raise
        else:
            self.state.upsert_job(body)  # it exists; the watch was just behind
            return
        running = [v for v in members if v.phase is Phase.RUNNING]
        scheduled = [v for v in members if v.phase is Phase.SCHEDULED]
        for view in running:
            await self._after_attempt(view, None, now)  # its worker was there and is gone
        if scheduled:
            log.info("re-creating Job %s/%s for %d scheduled analyses", namespace, name, len(scheduled))
            await self._create_job(namespace, name, scheduled)

    async def _create_job(self, namespace: str, name: str, members: list[AnalysisView]) -> None:
        manifest = build_job(namespace, name, members, self.settings)
        key = (namespace, name)
        self._creating.add(key)
        try:
            created = await self.api.create(jobs_path(namespace), manifest)
        except ApiError as err:
            if err.status != 409:
                raise
            created = await self.api.get(jobs_path(namespace, name))  # made before a crash: adopt it
        else:
            self.metrics.counter(m.JOBS_CREATED).labels(namespace).inc()
            self.metrics.histogram(m.BATCH_SIZE).labels(namespace).observe(len(members))
        finally:
            self._creating.discard(key)
        self.state.pending_jobs[key] = JobView.from_body(created)

    # ----------------------------------------------------------------- 5. batching
    def _live_job_names(self, namespace: str) -> set[str]:
        names = {j.name for j in self.state.live_jobs(namespace)}
        names |= {n for ns, n in self._creating if ns == namespace}
        finished = {j.name for j in self.state.jobs.values() if j.namespace == namespace and j.finished}
        for view in self.state.analyses.values():
            if view.namespace == namespace and view.phase in (Phase.SCHEDULED, Phase.RUNNING) and view.job_name:
                names.add(view.job_name)
        return names - finished

    async def schedule(self, now: datetime) -> None:
        for namespace in self.namespaces():
            queue = [v for v in self.state.analyses.values() if v.namespace == namespace]
            held = self.state.held_members(namespace)
            held_count = sum(1 for v in queue if v.phase in (Phase.SCHEDULED, Phase.RUNNING))
            live = len(self._live_job_names(namespace))
            plans = batching.plan(namespace, queue, held, live, held_count, self.settings, now)
            await asyncio.gather(*(self._guarded(self._start_batch(b, now)) for b in plans))

    async def _start_batch(self, batch: batching.Batch, now: datetime) -> None:
        name = job_name_for(batch.members)
        key = (batch.namespace, name)
        self._creating.add(key)  # counts against maxActiveJobs from this instant
        try:
            # the moment of the write, not of the pass: queue-wait metrics are measured from these stamps
            stamp = self.clock()
            marked = await asyncio.gather(*(self._mark_scheduled(v, name, stamp) for v in batch.members))
            members = [v for v in marked if v is not None]
            if members:
                await self._create_job(batch.namespace, name, members)
        finally:
            self._creating.discard(key)

    async def _mark_scheduled(self, view: AnalysisView, job_name: str, now: datetime) -> AnalysisView | None:
        patch = phase_patch(
            view.status,
            Phase.SCHEDULED,
            reason="JobCreated",
            message=f"in Job {job_name}",
            generation=view.generation,
            now=now,
            job_name=job_name,
            scheduled_at=now,
            attempts=view.attempts + 1,
            next_attempt_at=None,
        )
        try:
            result = await self._patch_status(view, patch, {"/status/phase": "Queued"})
        except ApiError as err:
            if err.conflict or err.not_found:
                return None
            raise
        return AnalysisView.from_body(result)

    # ----------------------------------------------------------------- 6. Appwrite outbox
    async def _sync_record(self, view: AnalysisView) -> None:
        """Tell Appwrite about a final failure or cancellation, unless a newer analysis owns the record now."""
        if self.records is None:
            return
        error = view.status.get("error") or {}
        reason = str(error.get("reason") or Reason.INTERNAL_ERROR.value)
        record = view.spec.get("record") or {}
        newer_active = any(s.active for s in self.state.record_siblings(view))
        if not newer_active and reason in REASONS and REASONS[Reason(reason)].outcome is not Outcome.CANCEL:
            await self.records.mark_failed(
                record.get("databaseId", ""),
                record.get("collectionId", ""),
                record.get("documentId", ""),
                analysis_error_text(reason, str(error.get("message") or "")),
            )
        elif not newer_active and reason == Reason.CANCELLED.value:
            await self._mark_cancelled(record)
        await self._patch_status(
            view, {"recordSynced": True}, {"/status/phase": view.phase.value if view.phase else ""}
        )

    async def _mark_cancelled(self, record: Mapping[str, Any]) -> None:
        assert self.records is not None
        current = await self.records.get(
            record.get("databaseId", ""), record.get("collectionId", ""), record.get("documentId", "")
        )
        if current is not None and current.status in UNFINISHED:
            await self.records.mark_failed(
                current.database_id, current.collection_id, current.id, analysis_error_text(Reason.CANCELLED, "")
            )

    async def _deleted_while_active(self, view: AnalysisView) -> None:
        """A deleted analysis is a cancellation: leave the record failed/Cancelled rather than spinning."""
        if self.records is None or any(s.active for s in self.state.record_siblings(view)):
            return
        try:
            await self._mark_cancelled(view.spec.get("record") or {})
        except RecordError as err:
            log.warning("could not mark record of deleted analysis %s cancelled: %s", view.name, err)

    # ----------------------------------------------------------------- 7. clean-up
    async def cleanup(self, now: datetime) -> None:
        ttl = self.settings.finished_ttl_seconds
        expired = [
            v
            for v in self.state.analyses.values()
            if v.terminal
            and (v.phase is Phase.SUCCEEDED or v.record_synced)
            and (finished := parse_time(v.status.get("finishedAt"))) is not None
            and (now - finished).total_seconds() > ttl
        ]
        await self._gather(self.api.delete(analyses_path(v.namespace, v.name)) for v in expired)

    # ----------------------------------------------------------------- reporting
    def refresh_gauges(self) -> None:
        observe.gauges(self.metrics, self.state, self.settings.inflight_budget, self.clock())

    def queue_stats(self) -> dict[str, int]:
        """The previous worker API's /queue/stats shape, computed from the resources."""
        counts = {"total": 0, "pending": 0, "processing": 0, "completed": 0, "failed": 0, "cancelled": 0}
        for view in self.state.analyses.values():
            counts["total"] += 1
            if view.phase in (None, Phase.QUEUED):
                counts["pending"] += 1
            elif view.phase in (Phase.SCHEDULED, Phase.RUNNING):
                counts["processing"] += 1
            elif view.phase is Phase.SUCCEEDED:
                counts["completed"] += 1
            elif view.phase is Phase.FAILED:
                counts["failed"] += 1
            else:
                counts["cancelled"] += 1
        return counts
