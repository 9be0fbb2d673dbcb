"""Fault injection: 5xx and 429 answers, shares with a seeded random, windows, latency, the down switch."""

from __future__ import annotations

import pytest
import requests
from appwrite.exception import AppwriteException
from appwrite.services.tables_db import TablesDB
from appwrite_support import DB

from mistake_testbed.appwrite import AppwriteTestServer

pytestmark = pytest.mark.integration


def outcomes(aw: AppwriteTestServer, n: int) -> list[int]:
    rows = TablesDB(aw.client())
    seen = []
    for _ in range(n):
        try:
            rows.list_rows(DB, "mistake_records")
            seen.append(200)
        except AppwriteException as error:
            seen.append(error.code)
    return seen


@pytest.mark.parametrize(
    ("inject", "status", "type_"),
    [
        (lambda aw: aw.fail(503), 503, "general_server_error"),
        (lambda aw: aw.fail(500), 500, "general_unknown"),
        (lambda aw: aw.rate_limit(), 429, "general_rate_limit_exceeded"),
    ],
)
def test_error_faults_surface_as_appwrite_exceptions(
    appwrite: AppwriteTestServer, inject: object, status: int, type_: str
) -> None:
    inject(appwrite)  # type: ignore[operator]
    with pytest.raises(AppwriteException) as caught:
        TablesDB(appwrite.client()).list_rows(DB, "mistake_records")
    assert (caught.value.code, caught.value.type) == (status, type_)


def test_rate_limit_sends_x_ratelimit_headers(appwrite: AppwriteTestServer) -> None:
    appwrite.rate_limit()
    answer = requests.get(f"{appwrite.endpoint}/tablesdb/main/tables/mistake_records/rows", timeout=5)
    assert answer.status_code == 429
    assert answer.headers["X-RateLimit-Remaining"] == "0"
    assert int(answer.headers["X-RateLimit-Reset"]) > 0
    assert answer.headers["X-RateLimit-Limit"]
    assert answer.json()["type"] == "general_rate_limit_exceeded"


def test_route_pattern_limits_the_fault(appwrite: AppwriteTestServer) -> None:
    appwrite.fail(503, route=r"^POST .*/rows$")
    rows = TablesDB(appwrite.client())
    assert rows.list_rows(DB, "mistake_records").total == 0
    with pytest.raises(AppwriteException) as caught:
        rows.create_row(DB, "mistake_records", "r1", {"userId": "u"})
    assert caught.value.code == 503
    assert appwrite.documents("mistake_records") == []


def test_share_is_reproducible_with_a_seed(appwrite: AppwriteTestServer) -> None:
    appwrite.faults.seed(7)
    appwrite.fail(503, share=0.5)
    first = outcomes(appwrite, 40)
    appwrite.clear_faults()
    appwrite.faults.seed(7)
    appwrite.fail(503, share=0.5)
    second = outcomes(appwrite, 40)
    assert first == second
    assert 5 < first.count(503) < 35


def test_count_window_ends_the_fault(appwrite: AppwriteTestServer) -> None:
    appwrite.rate_limit(count=2)
    assert outcomes(appwrite, 4) == [429, 429, 200, 200]


def test_time_window_that_has_not_started_is_inactive(appwrite: AppwriteTestServer) -> None:
    appwrite.fail(503, start=3600)
    assert outcomes(appwrite, 2) == [200, 200]
    appwrite.fail(503, duration=3600)
    assert outcomes(appwrite, 1) == [503]


def test_latency_fault_is_applied_and_recorded(appwrite: AppwriteTestServer) -> None:
    fault = appwrite.add_latency(0.01, route="/rows$")
    assert outcomes(appwrite, 3) == [200, 200, 200]
    assert fault.hits == 3
    assert [r.delay for r in appwrite.requests] == [0.01, 0.01, 0.01]


@pytest.mark.parametrize("mode", ["refuse", "reset"])
def test_down_switch_breaks_connections_until_up(appwrite: AppwriteTestServer, mode: str) -> None:
    appwrite.down(mode)
    assert outcomes(appwrite, 2) == [0, 0]
    with pytest.raises(requests.ConnectionError):
        requests.get(appwrite.endpoint + "/health/version", timeout=5)
    appwrite.up()
    assert outcomes(appwrite, 1) == [200]


def test_request_log_records_faults(appwrite: AppwriteTestServer) -> None:
    appwrite.rate_limit(count=1)
    outcomes(appwrite, 2)
    assert [(r.status, r.fault) for r in appwrite.requests] == [(429, "general_rate_limit_exceeded"), (200, "")]
