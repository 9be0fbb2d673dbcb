"""The batch runner: every member of this Job's batch, with bounded concurrency, failures isolated per record.

Per member: read the CR (skip when terminal or not ours) → claim it (Running) → read the Appwrite record
(cancel when deleted, superseded or already done) → analyse → write back → Succeeded; or Failed (permanent
reason, with `failed` in Appwrite) or a retryable `status.error` left on the Running CR for the operator.
SIGTERM stops new claims; in-flight records get a grace period, then are released with reason `Interrupted`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from mistake_api import (
    AnalysisError,
    AnalysisResult,
    MistakeAnalysis,
    Phase,
    Reason,
    analysis_error_text,
    is_terminal,
    phase_patch,
    utcnow,
)
from mistake_api.constants import ANNOTATION_CANCEL_REASON, EXIT_OK, EXIT_RETRYABLE

from .crs import CRApi, CRUnavailableError, LostOwnershipError, ownership_ops, set_ops
from .errors import WorkerError
from .images import ImageLimits, PreparedImage, prepare_image
from .llm import LLMClient
from .prompt import PreviousQuestion, PromptContext
from .settings import WorkerSettings
from .store import AppwriteStore, NotFoundError
from .writeback import ModuleCatalog, Writer, appwrite_time, education_level, parse_time, question_id_for

log = logging.getLogger(__name__)


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"  # terminal already, not ours, or ownership lost: nothing to do
    RETRY = "retry"  # a retryable error is on the CR; the operator requeues it
    RELEASED = "released"  # interrupted (SIGTERM) and released with a retryable error
    NOT_STARTED = "not_started"  # never claimed because the pod is stopping
    UNREPORTED = "unreported"  # the Kubernetes API could not be told

    @property
    def final(self) -> bool:
        return self in (Outcome.SUCCEEDED, Outcome.FAILED, Outcome.CANCELLED, Outcome.SKIPPED)


@dataclass
class Member:
    name: str
    status: dict[str, Any]
    cr: MistakeAnalysis | None = None


class BatchRunner:
    def __init__(
        self,
        *,
        members: list[str],
        job_name: str,
        settings: WorkerSettings,
        crs: CRApi,
        store: AppwriteStore,
        llm: LLMClient,
        image_pool: Executor | None,
    ) -> None:
        self.members = members
        self.job_name = job_name
        self.settings = settings
        self.crs = crs
        self.store = store
        self.llm = llm
        self.writer = Writer(store)
        self.catalog = ModuleCatalog(store)
        self.image_pool = image_pool
        self.limits = ImageLimits(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            long_side=settings.image_long_side,
            short_side=settings.image_short_side,
            jpeg_quality=settings.jpeg_quality,
        )
        self.stopping = asyncio.Event()
        self.outcomes: dict[str, Outcome] = {}
        self._claimed: dict[str, Member] = {}

    # -- batch --------------------------------------------------------------------------------------------

    def request_stop(self) -> None:
        if not self.stopping.is_set():
            log.warning("stop requested: no new records; in-flight ones get %gs", self.settings.shutdown_grace_seconds)
            self.stopping.set()

    async def run(self) -> int:
        queue: asyncio.Queue[str] = asyncio.Queue()
        for name in self.members:
            queue.put_nowait(name)
        # LLM concurrency is bounded by the LLM client's semaphore; records in flight may exceed it so downloads,
        # image work and write-back of some records overlap the LLM calls of others.
        lanes = [asyncio.create_task(self._lane(queue)) for _ in range(min(len(self.members), self._lanes()))]
        done_all: asyncio.Future[Any] = asyncio.ensure_future(asyncio.gather(*lanes, return_exceptions=True))
        stop: asyncio.Future[Any] = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({done_all, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not done_all.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(done_all), self.settings.shutdown_grace_seconds)
            for lane in lanes:
                lane.cancel()
            await asyncio.gather(*lanes, return_exceptions=True)
            await self._release_interrupted()
        stop.cancel()
        await asyncio.gather(done_all, return_exceptions=True)
        for name in self.members:
            self.outcomes.setdefault(name, Outcome.NOT_STARTED)
        counts = Counter(o.value for o in self.outcomes.values())
        log.info("batch %s finished: %s", self.job_name, dict(counts))
        return EXIT_OK if all(o.final for o in self.outcomes.values()) else EXIT_RETRYABLE

    def _lanes(self) -> int:
        return self.settings.concurrency * 2

    async def _lane(self, queue: asyncio.Queue[str]) -> None:
        while not self.stopping.is_set():
            try:
                name = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                self.outcomes[name] = await self._member(name)
            except asyncio.CancelledError:
                raise
            except Exception:  # the last line of isolation: one record never takes the batch down
                log.exception("unexpected error around %s", name)
                self.outcomes[name] = Outcome.UNREPORTED
            if name in self.outcomes:
                self._claimed.pop(name, None)

    async def _release_interrupted(self) -> None:
        for name, member in list(self._claimed.items()):
            if name in self.outcomes:
                continue
            error = AnalysisError(reason=Reason.INTERRUPTED, message="the pod was stopped (SIGTERM)", retryable=True)
            try:
                await self._patch(member, {"error": error.to_api()})
                self.outcomes[name] = Outcome.RELEASED
            except (LostOwnershipError, CRUnavailableError) as exc:
                log.warning("could not release %s: %s", name, exc)
                self.outcomes[name] = Outcome.UNREPORTED

    # -- one member ---------------------------------------------------------------------------------------

    async def _member(self, name: str) -> Outcome:
        try:
            raw = await self.crs.get(name)
        except CRUnavailableError as exc:
            log.warning("%s: cannot read the analysis: %s", name, exc)
            return Outcome.UNREPORTED
        if raw is None:
            log.info("%s: gone", name)
            return Outcome.SKIPPED
        status = dict(raw.get("status") or {})
        phase = status.get("phase")
        if is_terminal(phase) or status.get("jobName") != self.job_name:
            log.info("%s: skipped (phase %s, job %s)", name, phase, status.get("jobName"))
            return Outcome.SKIPPED
        if phase not in (Phase.SCHEDULED, Phase.RUNNING):
            return Outcome.SKIPPED
        try:
            cr = MistakeAnalysis.model_validate(raw)
        except ValueError as exc:
            cr = None
            spec_error = str(exc)
        member = Member(name, status, cr)
        # Claim: only if the object is exactly what we just read and still ours.
        claim = phase_patch(status, Phase.RUNNING, generation=_generation(raw), started_at=utcnow())
        ops = ownership_ops(self.job_name, str(phase), str(raw.get("metadata", {}).get("resourceVersion")))
        try:
            claimed = await self.crs.patch_status(name, ops + set_ops(status, claim))
        except LostOwnershipError:
            log.info("%s: claim lost (changed or taken meanwhile)", name)
            return Outcome.SKIPPED
        except CRUnavailableError as exc:
            log.warning("%s: claim failed: %s", name, exc)
            return Outcome.UNREPORTED
        member.status = dict(claimed.get("status") or {})
        self._claimed[name] = member
        if cr is None:
            return await self._fail(member, None, WorkerError(Reason.INVALID_SPEC, spec_error))
        if cr.spec.cancel:
            return await self._cancel(member, _cancel_reason(raw), "spec.cancel is set")
        try:
            async with asyncio.timeout(self.settings.record_timeout_seconds):
                return await self._analyse(member, cr)
        except WorkerError as error:
            return await self._fail(member, cr, error)
        except TimeoutError:
            deadline = f"record took over {self.settings.record_timeout_seconds:g}s"
            return await self._fail(member, cr, WorkerError(Reason.INTERNAL_ERROR, deadline))
        except (LostOwnershipError, CRUnavailableError) as exc:
            log.warning("%s: cannot report: %s", name, exc)
            return Outcome.SKIPPED if isinstance(exc, LostOwnershipError) else Outcome.UNREPORTED
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("%s: unexpected error", name)
            return await self._fail(member, cr, WorkerError(Reason.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))

    async def _patch(self, member: Member, values: dict[str, Any], remove: tuple[str, ...] = ()) -> None:
        ops = ownership_ops(self.job_name, str(member.status.get("phase")))
        updated = await self.crs.patch_status(member.name, ops + set_ops(member.status, values, remove))
        member.status = dict(updated.get("status") or {})

    async def _finish(self, member: Member, phase: Phase, reason: Reason | str, message: str, **fields: Any) -> Outcome:
        fields = {k: v for k, v in fields.items() if v is not None}
        now = utcnow()
        values = phase_patch(member.status, phase, reason=reason, message=message[:1000], finished_at=now, **fields)
        remove = ("error",) if phase is Phase.SUCCEEDED else ()
        try:
            await self._patch(member, values, remove)
        except LostOwnershipError:
            log.warning("%s: ownership lost before reporting %s", member.name, phase.value)
            return Outcome.SKIPPED
        except CRUnavailableError as exc:
            log.warning("%s: could not report %s: %s", member.name, phase.value, exc)
            return Outcome.UNREPORTED
        return {Phase.SUCCEEDED: Outcome.SUCCEEDED, Phase.FAILED: Outcome.FAILED}.get(phase, Outcome.CANCELLED)

    async def _cancel(self, member: Member, reason: Reason, message: str) -> Outcome:
        log.info("%s: cancelled (%s): %s", member.name, reason.value, message)
        error = AnalysisError(reason=reason, message=message, retryable=False)
        # Superseded, RecordDeleted, NotPending: the record needs no write. A plain cancel is left to the
        # operator, which knows whether a newer analysis of the record is active.
        synced = True if reason is not Reason.CANCELLED else None
        return await self._finish(member, Phase.CANCELLED, reason, message, error=error, record_synced=synced)

    async def _fail(self, member: Member, cr: MistakeAnalysis | None, error: WorkerError) -> Outcome:
        if error.retryable:
            log.warning("%s: retryable %s: %s", member.name, error.reason.value, error.message)
            problem = AnalysisError(reason=error.reason, message=error.message, retryable=True)
            try:
                await self._patch(member, {"error": problem.to_api()})
            except LostOwnershipError:
                return Outcome.SKIPPED
            except CRUnavailableError:
                return Outcome.UNREPORTED
            return Outcome.RETRY
        log.warning("%s: failed %s: %s", member.name, error.reason.value, error.message)
        synced: bool | None = None
        if cr is not None:
            ref = cr.spec.record
            text = analysis_error_text(error.reason, error.message)
            try:
                await self.store.update_row(
                    ref.collection_id,
                    ref.document_id,
                    {"analysisStatus": "failed", "analysisError": text},
                    database_id=ref.database_id,
                )
                synced = True
            except NotFoundError:
                synced = True  # the record is gone; nothing to tell it
            except WorkerError as write_error:
                # The operator's outbox writes `failed` for a Failed analysis whose recordSynced is not set.
                log.warning("%s: failed status not saved to Appwrite: %s", member.name, write_error)
        problem = AnalysisError(reason=error.reason, message=error.message, retryable=False)
        return await self._finish(
            member, Phase.FAILED, error.reason, error.message, error=problem, record_synced=synced
        )

    # -- the analysis -------------------------------------------------------------------------------------

    async def _analyse(self, member: Member, cr: MistakeAnalysis) -> Outcome:
        spec = cr.spec
        ref = spec.record
        record = await self.store.get_row(ref.collection_id, ref.document_id, database_id=ref.database_id)
        if record is None:
            return await self._cancel(member, Reason.RECORD_DELETED, f"record {ref.document_id} does not exist")
        cancel = _stale(record, spec.revision)
        if cancel is not None:
            return await self._cancel(member, *cancel)
        user_id = str(record.get("userId") or "")
        if user_id != spec.user_id:
            raise WorkerError(Reason.INVALID_SPEC, "the record's userId differs from spec.userId")
        if not spec.image_ids:
            raise WorkerError(Reason.NO_IMAGES, "the record has no images")
        if len(spec.image_ids) > self.settings.max_images:
            raise WorkerError(Reason.TOO_MANY_IMAGES, f"{len(spec.image_ids)} > {self.settings.max_images}")
        first_analysis = not record.get("analyzedAt")
        await self.store.update_row(
            ref.collection_id, ref.document_id, {"analysisStatus": "processing"}, database_id=ref.database_id
        )

        wrong_reason = record.get("wrongReason") or (spec.reanalysis.wrong_reason if spec.reanalysis else None)
        existing_qid = record.get("questionId") or (spec.reanalysis.previous_question_id if spec.reanalysis else None)
        images_task = asyncio.ensure_future(self._images(spec.bucket_id, spec.image_ids))
        try:
            (profile, user_kps), previous = await asyncio.gather(
                self.writer.user_context(user_id),
                self._previous(existing_qid if wrong_reason else None),
            )
            level = education_level(profile.get("grade") if profile else None)
            modules_here = await self.catalog.at_level(level)
            images = await images_task
        finally:
            if not images_task.done():
                images_task.cancel()
        candidates = ModuleCatalog.by_subject(modules_here)
        ctx = PromptContext(
            education_level=level,
            candidates=candidates,
            user_knowledge_points=user_kps,
            wrong_reason=str(wrong_reason) if wrong_reason else None,
            previous=previous,
            page_count=len(images),
        )
        analysis, usage = await self.llm.analyse(ctx, images, [n for names in candidates.values() for n in names])
        modules = await self.catalog.resolve(analysis.subject, level, analysis.modules)

        question_id = str(existing_qid or question_id_for(ref.database_id, ref.collection_id, ref.document_id))
        now = utcnow()
        kps = await self.writer.link_knowledge_points(user_id, analysis, modules, question_id, now)
        await self.writer.write_question(question_id, bool(existing_qid), user_id, analysis, modules, kps)
        await self.store.update_row(
            ref.collection_id,
            ref.document_id,
            {"analysisStatus": "ocrOK", "questionId": question_id, "subject": analysis.subject},
            database_id=ref.database_id,
        )
        completed: dict[str, Any] = {
            "analysisStatus": "completed",
            "analyzedAt": appwrite_time(now),
            "moduleIds": [m.id for m in modules],
            "knowledgePointIds": [k.id for k in kps],
            "analysisError": None,
        }
        if record.get("wrongReason"):
            completed["wrongReason"] = None
        await self.store.update_row(ref.collection_id, ref.document_id, completed, database_id=ref.database_id)
        if first_analysis:
            # After `completed`: a crash before this line loses one increment, never counts one twice.
            try:
                await self.writer.count_mistake(user_id, now)
            except WorkerError as exc:
                log.warning("%s: profile stats not updated: %s", member.name, exc)
        result = AnalysisResult(
            question_id=question_id,
            subject=analysis.subject,
            model=usage.model[:200],
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            llm_seconds=round(usage.seconds, 3),
            llm_calls=usage.calls,
        )
        log.info(
            "%s: succeeded (%s, %d+%d tokens, %.2fs LLM)",
            member.name,
            analysis.subject,
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.seconds,
        )
        return await self._finish(member, Phase.SUCCEEDED, "Analysed", "", result=result)

    async def _previous(self, question_id: Any) -> PreviousQuestion | None:
        if not question_id:
            return None
        row = await self.writer.previous_question(str(question_id))
        if row is None:
            return None
        options = row.get("options") or []
        return PreviousQuestion(
            content=str(row.get("content") or "")[:2000],
            type=str(row.get("type") or ""),
            subject=str(row.get("subject") or ""),
            options=tuple(str(o) for o in options),
        )

    async def _images(self, bucket_id: str, image_ids: list[str]) -> list[PreparedImage]:
        # Pages are fetched concurrently but kept in page order.
        return list(await asyncio.gather(*(self._image(bucket_id, file_id) for file_id in image_ids)))

    async def _image(self, bucket_id: str, file_id: str) -> PreparedImage:
        try:
            info = await self.store.file_info(bucket_id, file_id)
            if info.size > self.limits.max_bytes:
                raise WorkerError(Reason.IMAGE_TOO_LARGE, f"{file_id}: {info.size} bytes > {self.limits.max_bytes}")
            raw = await self.store.download(bucket_id, file_id)
        except NotFoundError as exc:
            raise WorkerError(Reason.IMAGE_NOT_FOUND, f"{bucket_id}/{file_id}") from exc
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self.image_pool, prepare_image, raw, self.limits)
        except WorkerError as exc:
            raise WorkerError(exc.reason, f"{file_id}: {exc.message}") from exc


def _generation(raw: dict[str, Any]) -> int | None:
    value = raw.get("metadata", {}).get("generation")
    return int(value) if value is not None else None


def _stale(record: dict[str, Any], revision: str) -> tuple[Reason, str] | None:
    """Why the record no longer wants this analysis, or None to go ahead.

    Our own status writes move `$updatedAt` too, so a newer timestamp alone means nothing: only a newer
    *pending* revision (the client asked again) supersedes, and only a completion after this request ends it.
    """
    asked = parse_time(revision)
    updated = parse_time(record.get("$updatedAt"))
    status = record.get("analysisStatus") or "pending"
    if asked is None:
        return None
    if status == "pending" and updated is not None and updated > asked:
        return Reason.SUPERSEDED, f"the record changed at {record.get('$updatedAt')} after revision {revision}"
    analyzed: datetime | None = parse_time(record.get("analyzedAt"))
    if status == "completed" and analyzed is not None and analyzed > asked:
        return Reason.NOT_PENDING, f"the record was analysed at {record.get('analyzedAt')}"
    return None


def _cancel_reason(raw: dict[str, Any]) -> Reason:
    """Superseded when the operator said so (then the record belongs to the newer analysis), else Cancelled."""
    annotations = (raw.get("metadata") or {}).get("annotations") or {}
    if annotations.get(ANNOTATION_CANCEL_REASON) == Reason.SUPERSEDED.value:
        return Reason.SUPERSEDED
    return Reason.CANCELLED
