"""Everything the worker writes to Appwrite besides the record status, made idempotent.

- Question: the record's `questionId` when it has one (re-analysis updates in place), else a deterministic id
  from the record's ids, so a retry or a duplicate analysis of the same record writes the same question.
- Knowledge points: looked up by the unique (userId, moduleId, name); created with a deterministic id from the
  same triple, and a 409 (a concurrent creator, or a legacy row with a random id) means "look it up again".
  The back-link (questionIds) is appended in the same write that creates or updates the KP, and `mistakeCount`
  and `lastMistakeAt` change only when the question id was not linked yet: once per (KP, question).
- Review states: one per (userId, knowledgePointId), deterministic id, 409 ignored.
- Profile stats (domain §4.9): counted only for the record's first analysis (no `analyzedAt` before), after the
  record has been written `completed`. The counters (totalMistakes, todayMistakes, weekMistakes) are atomic
  server-side increments, so pods counting the same user at once lose nothing; the daily reset, activeDays and
  the weekly chart are one plain write of values computed once, before the increments.
Per-user locks serialise the read-modify-write steps of one user's records inside this pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appwrite.query import Query

from mistake_api import Reason
from mistake_api.subjects import SUBJECTS, subject_code

from .analysis import Analysis, clamp
from .errors import WorkerError
from .prompt import FALLBACK_MODULE
from .store import (
    MODULES,
    PROFILES,
    QUESTIONS,
    REVIEW_STATES,
    USER_KPS,
    AppwriteStore,
    BoundReachedError,
    ConflictError,
    NotFoundError,
)

log = logging.getLogger(__name__)
DEFAULT_TZ = "Asia/Shanghai"
STAT_LIMITS = {"todayMistakes": 1024, "weekMistakes": 10240, "activeDays": 10240}
COUNTERS = ("totalMistakes", "todayMistakes", "weekMistakes")


def stable_id(prefix: str, *parts: str) -> str:
    """A valid Appwrite id (<= 36 chars, starts with a letter) that depends only on `parts`."""
    payload = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode()
    return prefix + hashlib.sha256(payload).hexdigest()[:32]


def question_id_for(database_id: str, collection_id: str, record_id: str) -> str:
    return stable_id("q", "question", database_id, collection_id, record_id)


def kp_id_for(user_id: str, module_id: str, name: str) -> str:
    return stable_id("k", "kp", user_id, module_id, name)


def review_state_id_for(user_id: str, kp_id: str) -> str:
    return stable_id("r", "review", user_id, kp_id)


def appwrite_time(moment: datetime) -> str:
    """Appwrite's datetime text: UTC with milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def user_zone(name: Any) -> tzinfo:
    try:
        return ZoneInfo(str(name or DEFAULT_TZ))
    except (ZoneInfoNotFoundError, ValueError):
        # Without tz data (slim images) Asia/Shanghai is still exactly UTC+8 (no DST).
        return timezone(timedelta(hours=8))


def education_level(grade: Any) -> str:
    try:
        value = int(grade)
    except (TypeError, ValueError):
        return "初中"
    if 1 <= value <= 6:
        return "小学"
    if 10 <= value <= 12:
        return "高中"
    return "初中"


@dataclass(frozen=True)
class Module:
    id: str
    name: str
    subject: str  # Chinese name, as in the library
    level: str


class ModuleCatalog:
    """The shared subject-module library, read once per education level per pod (it is global and rarely edited)."""

    def __init__(self, store: AppwriteStore) -> None:
        self._store = store
        self._by_level: dict[str, asyncio.Task[list[Module]]] = {}
        self._any_level: dict[str, asyncio.Task[list[Module]]] = {}

    async def _fetch(self, queries: list[str]) -> list[Module]:
        rows = await self._store.list_rows(MODULES, [*queries, Query.order_asc("order"), Query.limit(1000)])
        return [
            Module(str(r["$id"]), str(r.get("name", "")), str(r.get("subject", "")), str(r.get("educationLevel", "")))
            for r in rows
            if r.get("isActive", True) is not False
        ]

    async def _cached(self, cache: dict[str, asyncio.Task[list[Module]]], key: str, queries: list[str]) -> list[Module]:
        task = cache.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(self._fetch(queries))
            cache[key] = task
        # shield: one record being cancelled must not cancel the fetch the others share
        return await asyncio.shield(task)

    async def at_level(self, level: str) -> list[Module]:
        return await self._cached(self._by_level, level, [Query.equal("educationLevel", level)])

    async def any_level(self, subject_cn: str) -> list[Module]:
        return await self._cached(self._any_level, subject_cn, [Query.equal("subject", subject_cn)])

    @staticmethod
    def by_subject(modules: Sequence[Module]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = defaultdict(list)
        for m in modules:
            code = subject_code(m.subject)
            if code is not None and m.name not in out[code]:
                out[code].append(m.name)
        return dict(out)

    async def resolve(self, subject: str, level: str, names: Sequence[str]) -> list[Module]:
        """Domain §4.9 order: (name, level), (name, any level), 未分类 at the level, 未分类 at any level."""
        subject_cn = SUBJECTS[subject]
        here = [m for m in await self.at_level(level) if m.subject == subject_cn]
        chosen = [m for name in names for m in here if m.name == name][:2]
        if chosen:
            return _unique(chosen)
        anywhere = await self.any_level(subject_cn)
        chosen = [m for name in names for m in anywhere if m.name == name][:2]
        if chosen:
            return _unique(chosen)
        for pool in (here, anywhere):
            fallback = [m for m in pool if m.name == FALLBACK_MODULE]
            if fallback:
                return fallback[:1]
        raise WorkerError(Reason.MODULE_NOT_FOUND, f"no module at all for subject {subject} ({subject_cn})")


def _unique(modules: list[Module]) -> list[Module]:
    seen: dict[str, Module] = {}
    for m in modules:
        seen.setdefault(m.id, m)
    return list(seen.values())


@dataclass(frozen=True)
class LinkedKP:
    id: str
    name: str
    module_id: str
    category: str
    importance: str


class Writer:
    def __init__(self, store: AppwriteStore) -> None:
        self.store = store
        self._user_locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        # Prompt context per user for this batch (level, known KP names): a hint, so a batch-old copy is fine.
        self._context: dict[str, asyncio.Task[tuple[dict[str, Any] | None, dict[str, list[str]]]]] = {}
        # (userId, kpId) whose review state this pod has seen or created: a state is created once and never
        # removed by the worker, so later records of the batch need not look it up again.
        self._reviewed: set[tuple[str, str]] = set()
        self._stats_pending: dict[str, list[tuple[datetime, asyncio.Future[bool]]]] = {}
        self._stats_flushers: dict[str, asyncio.Task[None]] = {}

    async def user_context(self, user_id: str) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
        task = self._context.get(user_id)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.ensure_future(self._load_context(user_id))
            self._context[user_id] = task
        return await asyncio.shield(task)

    async def _load_context(self, user_id: str) -> tuple[dict[str, Any] | None, dict[str, list[str]]]:
        profile, names = await asyncio.gather(self.profile(user_id), self.user_kp_names(user_id))
        return profile, names

    def user_lock(self, user_id: str) -> asyncio.Lock:
        return self._user_locks[user_id]

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        rows = await self.store.list_rows(PROFILES, [Query.equal("userId", user_id), Query.limit(1)])
        return rows[0] if rows else None

    async def user_kp_names(self, user_id: str, limit: int = 200) -> dict[str, list[str]]:
        rows = await self.store.list_rows(USER_KPS, [Query.equal("userId", user_id), Query.limit(limit)])
        out: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            code = subject_code(str(r.get("subject", "")))
            name = str(r.get("name", ""))
            if code and name and name not in out[code] and len(out[code]) < 40:
                out[code].append(name)
        return dict(out)

    # -- knowledge points ---------------------------------------------------------------------------------

    async def link_knowledge_points(
        self, user_id: str, analysis: Analysis, modules: Sequence[Module], question_id: str, now: datetime
    ) -> list[LinkedKP]:
        """Find or create each KP with the question linked; returns them in the analysis' order."""
        by_name = {m.name: m for m in modules}
        wanted: list[tuple[str, Module, str, str]] = []
        for kp in analysis.knowledge_points:
            module = by_name.get(kp.module, modules[0])
            if all(w[0] != kp.name or w[1].id != module.id for w in wanted):
                wanted.append((kp.name, module, kp.category, kp.importance))
        linked: list[LinkedKP] = []
        created: set[str] = set()
        async with self.user_lock(user_id):
            existing = await self._find_kps(user_id, [w[1].id for w in wanted], [w[0] for w in wanted])
            for name, module, category, importance in wanted:
                row = existing.get((module.id, name))
                if row is None:
                    subject = analysis.subject
                    row, new = await self._create_kp(user_id, subject, module.id, name, importance, question_id, now)
                    if new:
                        created.add(str(row["$id"]))
                else:
                    await self._update_kp(row, importance, question_id, now)
                linked.append(LinkedKP(str(row["$id"]), name, module.id, category, importance))
        await self._ensure_review_states(user_id, [k.id for k in linked], now, created)
        return linked

    async def _find_kps(
        self, user_id: str, module_ids: list[str], names: list[str]
    ) -> dict[tuple[str, str], dict[str, Any]]:
        rows = await self.store.list_rows(
            USER_KPS,
            [
                Query.equal("userId", user_id),
                Query.equal("moduleId", sorted(set(module_ids))),
                Query.equal("name", sorted(set(names))),
                Query.limit(100),
            ],
        )
        return {(str(r.get("moduleId")), str(r.get("name"))): r for r in rows}

    async def _create_kp(
        self, user_id: str, subject: str, module_id: str, name: str, importance: str, question_id: str, now: datetime
    ) -> tuple[dict[str, Any], bool]:
        """The KP row, and whether this call created it."""
        data = {
            "userId": user_id,
            "moduleId": module_id,
            "subject": subject,
            "name": clamp(name, 100),
            "description": "",
            "importance": importance,
            "mistakeCount": 1,
            "masteredCount": 0,
            "lastMistakeAt": appwrite_time(now),
            "questionIds": [question_id],
        }
        try:
            return await self.store.create_row(USER_KPS, kp_id_for(user_id, module_id, name), data), True
        except ConflictError as conflict:
            # Someone (another pod, or a write of ours that landed before a retry) created it: link to that row.
            found = await self._find_kps(user_id, [module_id], [name])
            row = found.get((module_id, name))
            if row is None:
                detail = f"knowledge point {name!r} conflicts but is not found"
                raise WorkerError(Reason.APPWRITE_REJECTED, detail) from conflict
            await self._update_kp(row, importance, question_id, now)
            return row, False

    async def _update_kp(self, row: dict[str, Any], importance: str, question_id: str, now: datetime) -> None:
        linked = [str(q) for q in (row.get("questionIds") or [])]
        data: dict[str, Any] = {}
        if question_id not in linked:
            data["questionIds"] = [*linked, question_id]
            data["mistakeCount"] = int(row.get("mistakeCount") or 0) + 1
            data["lastMistakeAt"] = appwrite_time(now)
        if row.get("importance") != importance:
            data["importance"] = importance
        if data:
            await self.store.update_row(USER_KPS, str(row["$id"]), data)

    async def _ensure_review_states(
        self, user_id: str, kp_ids: list[str], now: datetime, created: Collection[str] = ()
    ) -> None:
        todo = [k for k in kp_ids if (user_id, k) not in self._reviewed]
        # A KP this call created has no review state under any other id yet: only ours can exist (409).
        lookup = [k for k in todo if k not in created]
        have: set[str] = set()
        if lookup:
            rows = await self.store.list_rows(
                REVIEW_STATES,
                [Query.equal("userId", user_id), Query.equal("knowledgePointId", lookup), Query.limit(100)],
            )
            have = {str(r.get("knowledgePointId")) for r in rows}
        today = appwrite_time(now.replace(hour=0, minute=0, second=0, microsecond=0))
        for kp_id in todo:
            if kp_id in have:
                self._reviewed.add((user_id, kp_id))
                continue
            data = {
                "userId": user_id,
                "knowledgePointId": kp_id,
                "status": "newLearning",
                "masteryScore": 0,
                "currentInterval": 1,
                "nextReviewDate": today,
                "lastReviewDate": None,
                "totalReviews": 0,
                "consecutiveCorrect": 0,
                "totalCorrect": 0,
                "totalWrong": 0,
                "isActive": True,
            }
            # Already there (the deterministic id makes a second create a no-op).
            with contextlib.suppress(ConflictError):
                await self.store.create_row(REVIEW_STATES, review_state_id_for(user_id, kp_id), data)
            self._reviewed.add((user_id, kp_id))

    # -- question -----------------------------------------------------------------------------------------

    async def write_question(
        self,
        question_id: str,
        existing: bool,
        user_id: str,
        analysis: Analysis,
        modules: Sequence[Module],
        kps: Sequence[LinkedKP],
    ) -> None:
        primary = [k for k in kps if k.category == "primary"]
        explanation = analysis.explanation
        if analysis.error_explanation:
            explanation = clamp(f"{explanation}\n\n【错因分析】{analysis.error_explanation}".strip(), 5000)
        data: dict[str, Any] = {
            "subject": analysis.subject,
            "moduleIds": [m.id for m in modules],
            "knowledgePointIds": [k.id for k in kps],
            "primaryKnowledgePointIds": [k.id for k in primary],
            "type": analysis.type,
            "difficulty": analysis.difficulty,
            "content": analysis.content,
            "options": list(analysis.options),
            "answer": analysis.answer,
            "explanation": explanation,
            "importance": primary[0].importance if primary else "normal",
            "extractedImages": [],
        }
        if analysis.solving_hint:
            data["solvingHint"] = analysis.solving_hint
        created = {
            **data,
            "imageIds": [],
            "source": "ocr",
            "createdBy": user_id,
            "isPublic": False,
            "feedbackCount": 0,
            "qualityScore": 5.0,
        }
        if existing:
            try:
                await self.store.update_row(QUESTIONS, question_id, data)
                return
            except NotFoundError:
                log.info("question %s of the record is gone; creating it again", question_id)
        try:
            await self.store.create_row(QUESTIONS, question_id, created)
        except ConflictError:
            await self.store.update_row(QUESTIONS, question_id, data)

    async def previous_question(self, question_id: str) -> dict[str, Any] | None:
        try:
            return await self.store.get_row(QUESTIONS, question_id)
        except WorkerError as error:
            if error.retryable:
                raise
            return None  # a broken previous question only costs the feedback context

    # -- profile stats ------------------------------------------------------------------------------------

    async def count_mistake(self, user_id: str, now: datetime) -> bool:
        """Domain §4.9 step 7 for one new mistake; False when the user has no profile.

        Mistakes of one user that arrive while that user's profile is being written are counted together by the
        next flush (one read, one plain write, one increment per counter for all of them), leaving the values
        one flush each would leave.
        """
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        # Mark a failure seen even when this record was cancelled meanwhile (no "never retrieved" warning).
        waiter.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._stats_pending.setdefault(user_id, []).append((now, waiter))
        flusher = self._stats_flushers.get(user_id)
        if flusher is None or flusher.done():
            self._stats_flushers[user_id] = asyncio.ensure_future(self._flush_stats(user_id))
        # shield: a record cancelled while waiting must not cancel the write the others share
        return await asyncio.shield(waiter)

    async def _flush_stats(self, user_id: str) -> None:
        async with self.user_lock(user_id):
            while self._stats_pending.get(user_id):
                batch = self._stats_pending.pop(user_id)
                try:
                    counted = await self._write_stats(user_id, [now for now, _ in batch])
                except asyncio.CancelledError:
                    for _, waiter in batch:
                        waiter.cancel()
                    raise
                except Exception as error:
                    for _, waiter in batch:
                        if not waiter.done():
                            waiter.set_exception(error)
                    continue
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_result(counted)

    async def _write_stats(self, user_id: str, moments: Sequence[datetime]) -> bool:
        profile = await self.profile(user_id)
        if profile is None:
            return False
        row_id = str(profile["$id"])
        write, increments = stats_plan(profile, moments)
        try:
            # First the plain write: a daily reset must land before today's increment, or it would wipe it.
            await self.store.update_row(PROFILES, row_id, write)
            for column, amount in increments.items():
                await self._increment(row_id, column, amount)
        except NotFoundError:
            return False  # the profile was deleted meanwhile: like no profile at all
        return True

    async def _increment(self, row_id: str, column: str, amount: int) -> None:
        """`column += amount`, stopping at the column maximum (Appwrite refuses a result past `max` as a whole)."""
        if amount <= 0:
            return
        maximum = STAT_LIMITS.get(column)
        try:
            await self.store.increment_row(PROFILES, row_id, column, amount, maximum)
        except BoundReachedError:
            # Near the maximum: one at a time until it is reached.
            with contextlib.suppress(BoundReachedError):
                for _ in range(amount if amount > 1 else 0):
                    await self.store.increment_row(PROFILES, row_id, column, 1, maximum)


def stats_plan(profile: dict[str, Any], moments: Sequence[datetime]) -> tuple[dict[str, Any], dict[str, int]]:
    """(plain write, atomic increments) for new mistakes at `moments`, equal to one `stats_update` after another.

    The plain write holds the daily reset (todayMistakes and todayPracticeSessions to 0, lastResetDate), activeDays
    and lastActiveAt (the same whoever computes them for the same day), the weekly chart (a same-user race between
    pods can lose one update of it) and statsUpdatedAt. The counters are increments: totalMistakes and
    weekMistakes by the number of mistakes, todayMistakes by those since the last reset among them. A counter the
    profile holds as null is written 0 first (SQL adds nothing to NULL).
    """
    current = dict(profile)
    write: dict[str, Any] = {c: 0 for c in COUNTERS if profile.get(c) is None}
    today = 0
    for now in sorted(moments):
        step = stats_update(current, now)
        if "lastResetDate" in step:
            write.update(todayMistakes=0, todayPracticeSessions=0, lastResetDate=step["lastResetDate"])
            today = 0
        today += 1
        current.update(step)
    for key in ("activeDays", "lastActiveAt", "weeklyMistakesData", "statsUpdatedAt"):
        write[key] = current[key]
    return write, {"totalMistakes": len(moments), "weekMistakes": len(moments), "todayMistakes": today}


def stats_update(profile: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The profile columns to write for one more mistake at `now` (absolute values, computed once)."""
    zone = user_zone(profile.get("timezone"))
    today = now.astimezone(zone).date()

    def local_day(value: Any) -> date | None:
        moment = parse_time(value)
        return moment.astimezone(zone).date() if moment else None

    stamp = appwrite_time(now)
    out: dict[str, Any] = {"statsUpdatedAt": stamp, "lastActiveAt": stamp}
    today_mistakes = int(profile.get("todayMistakes") or 0)
    if local_day(profile.get("lastResetDate")) != today:
        today_mistakes = 0
        out["todayPracticeSessions"] = 0
        out["lastResetDate"] = stamp
    active_days = int(profile.get("activeDays") or 0)
    if local_day(profile.get("lastActiveAt")) != today:
        active_days += 1
    out["activeDays"] = min(active_days, STAT_LIMITS["activeDays"])
    out["todayMistakes"] = min(today_mistakes + 1, STAT_LIMITS["todayMistakes"])
    out["weekMistakes"] = min(int(profile.get("weekMistakes") or 0) + 1, STAT_LIMITS["weekMistakes"])
    out["totalMistakes"] = int(profile.get("totalMistakes") or 0) + 1
    out["weeklyMistakesData"] = _weekly(profile.get("weeklyMistakesData"), today)
    return out


def _weekly(raw: Any, today: date) -> str:
    counts: dict[str, int] = {}
    try:
        entries = json.loads(raw) if isinstance(raw, str) and raw else []
    except json.JSONDecodeError:
        entries = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("date"), str):
            try:
                counts[entry["date"]] = counts.get(entry["date"], 0) + int(entry.get("count") or 0)
            except (TypeError, ValueError):
                continue
    key = today.isoformat()
    counts[key] = counts.get(key, 0) + 1
    oldest = (today - timedelta(days=6)).isoformat()
    kept = sorted((d, c) for d, c in counts.items() if oldest <= d <= key)
    return json.dumps([{"date": d, "count": c} for d, c in kept], separators=(",", ":"))
