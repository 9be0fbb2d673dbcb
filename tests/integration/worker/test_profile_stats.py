"""Profile stats written by two pods at once for the same user, through the real SDK against the stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from mistake_testbed.appwrite.seed import seed_main
from mistake_testbed.appwrite.server import AppwriteTestServer
from mistake_worker.settings import AppwriteSettings, WorkerSettings
from mistake_worker.store import AppwriteStore
from mistake_worker.writeback import Writer, appwrite_time

pytestmark = pytest.mark.integration

USER = "user-1"
PROFILE = "profile-user-1"


class Meeting:
    """Holds each arriving pod until `parties` pods have arrived."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.arrived = 0
        self.everyone = asyncio.Event()

    async def arrive(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.everyone.set()
        await self.everyone.wait()


class PodWriter(Writer):
    """A pod's writer whose first profile read waits until the other pod has read the profile too: the worst
    interleaving of a same-user race, made certain instead of likely."""

    def __init__(self, store: AppwriteStore, meeting: Meeting) -> None:
        super().__init__(store)
        self._meeting = meeting
        self._met = False

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        row = await super().profile(user_id)
        if not self._met:
            self._met = True
            await self._meeting.arrive()
        return row


@pytest.fixture
def pods(appwrite: AppwriteTestServer) -> Iterator[list[AppwriteStore]]:
    """Two stores with their own SDK client and thread pool, as two Job pods have."""
    seed_main(appwrite)
    env = appwrite.env()
    settings = AppwriteSettings(
        endpoint=env["APPWRITE_ENDPOINT"],
        project_id=env["APPWRITE_PROJECT_ID"],
        api_key=SecretStr(env["APPWRITE_API_KEY"]),
    )
    worker = WorkerSettings(appwrite_backoff_seconds=0.05)
    pools = [ThreadPoolExecutor(4, thread_name_prefix=f"pod{i}") for i in range(2)]
    yield [AppwriteStore(settings, worker, pool) for pool in pools]
    for pool in pools:
        pool.shutdown(wait=True)


def _update_profile(appwrite: AppwriteTestServer, **fields: Any) -> None:
    appwrite.state.store.update("main", "profiles", PROFILE, fields, None, rows=False)


def test_two_pods_counting_one_users_records_at_once_lose_no_count(
    appwrite: AppwriteTestServer, pods: list[AppwriteStore]
) -> None:
    now = datetime.now(UTC)
    _update_profile(
        appwrite,
        totalMistakes=40,
        todayMistakes=2,
        weekMistakes=9,
        activeDays=3,
        lastResetDate=appwrite_time(now),  # today: no daily reset in this race
        lastActiveAt=appwrite_time(now - timedelta(days=2)),
    )
    per_pod = 10

    async def both() -> list[bool]:
        meeting = Meeting(len(pods))
        writers = [PodWriter(store, meeting) for store in pods]
        return await asyncio.gather(*(w.count_mistake(USER, now) for w in writers for _ in range(per_pod)))

    assert asyncio.run(both()) == [True] * (2 * per_pod)
    profile = appwrite.document("profiles", PROFILE)
    assert profile["totalMistakes"] == 40 + 2 * per_pod
    assert profile["todayMistakes"] == 2 + 2 * per_pod
    assert profile["weekMistakes"] == 9 + 2 * per_pod
    assert profile["activeDays"] == 4  # one new active day, however many pods noticed it


def test_counters_stop_at_the_column_maxima(appwrite: AppwriteTestServer, pods: list[AppwriteStore]) -> None:
    now = datetime.now(UTC)
    _update_profile(appwrite, todayMistakes=1022, weekMistakes=10240, totalMistakes=7, lastResetDate=appwrite_time(now))

    async def count(n: int) -> list[bool]:
        writer = Writer(pods[0])
        return await asyncio.gather(*(writer.count_mistake(USER, now) for _ in range(n)))

    assert asyncio.run(count(5)) == [True] * 5
    profile = appwrite.document("profiles", PROFILE)
    assert (profile["todayMistakes"], profile["weekMistakes"], profile["totalMistakes"]) == (1024, 10240, 12)


def test_the_days_first_mistake_resets_today_before_counting(
    appwrite: AppwriteTestServer, pods: list[AppwriteStore]
) -> None:
    now = datetime.now(UTC)
    yesterday = appwrite_time(now - timedelta(days=1))
    _update_profile(
        appwrite, todayMistakes=30, todayPracticeSessions=4, lastResetDate=yesterday, lastActiveAt=yesterday
    )

    async def count() -> bool:
        return await Writer(pods[0]).count_mistake(USER, now)

    assert asyncio.run(count()) is True
    profile = appwrite.document("profiles", PROFILE)
    assert (profile["todayMistakes"], profile["todayPracticeSessions"]) == (1, 0)
    assert profile["lastResetDate"] == profile["lastActiveAt"] == profile["statsUpdatedAt"]
    assert profile["activeDays"] == 1
    assert profile["totalMistakes"] == 1
