"""200 records of every kind through the real trigger, operator, Job controller and worker; Prometheus scrapes
the operator throughout, and every query of the Grafana dashboard evaluates against what it scraped."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from e2e_support import settle_and_check

from mistake_testbed.stack import BAD_KINDS, PHOTO_KINDS, Prometheus, Stack, Summary, dashboard_queries, wait_until
from mistake_testbed.stack.core import DASHBOARD_DIR

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

RECORDS = 200
REANALYSES = 20
# Every photo kind (one two-page, two phone-size with EXIF) in turn, with one bad input per 50 records.
MIX = [*PHOTO_KINDS * 5, *PHOTO_KINDS[:4], *BAD_KINDS]


@dataclass
class Run:
    stack: Stack
    summary: Summary
    prometheus: Prometheus


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> Iterator[Prometheus]:
    if not Prometheus.installed():
        pytest.skip("prometheus is not installed (Debian package `prometheus`): run ./dev setup")
    prom = stack.start_prometheus()
    yield prom
    prom.stop()


@pytest.fixture(scope="module")
def happy_run(stack: Stack, prometheus: Prometheus) -> Run:
    stack.redeploy("e2e-happy")
    wait_until(prometheus.targets_up, 30, "prometheus to scrape the operator")
    created = stack.create_records(RECORDS, kinds=MIX)
    stack.wait_settled(180)
    completed = [r.id for r in created if r.expected_reason is None]
    stack.reanalyze(completed[:REANALYSES], wrong_reason="审题不仔细")
    settle_and_check(stack)
    # Two more scrapes, so every counter increment of the run is in Prometheus.
    last = stack.summary()
    wait_until(lambda: _scraped_finished(prometheus, stack.namespace) >= last.phases["Succeeded"], 30, "a scrape")
    return Run(stack, last, prometheus)


def _scraped_finished(prom: Prometheus, namespace: str) -> float:
    answer = prom.query(f'sum(mistake_analysis_finished_total{{namespace="{namespace}",outcome="Succeeded"}})')
    results = answer["data"]["result"]
    return float(results[0]["value"][1]) if results else 0.0


def test_every_record_is_analysed_once_with_the_right_outcome(happy_run: Run) -> None:
    summary, stack = happy_run.summary, happy_run.stack
    bad = RECORDS // len(MIX) * len(BAD_KINDS) + sum(1 for k in MIX[: RECORDS % len(MIX)] if k in BAD_KINDS)
    assert summary.record_status == Counter({"completed": RECORDS - bad, "failed": bad})
    # The re-analyses were asked after completion: each one is a second Succeeded analysis of its record.
    assert summary.phases == Counter({"Succeeded": RECORDS - bad + REANALYSES, "Failed": bad})
    assert summary.failed_records == Counter({reason: bad // len(BAD_KINDS) for reason in BAD_KINDS.values()})
    # Two-page records send both pages in one request; nothing needed a retry.
    assert summary.result_llm_calls == summary.phases["Succeeded"] == summary.llm_calls
    assert summary.result_prompt_tokens == summary.llm_prompt_tokens > 0
    assert len(summary.latencies) == len(stack.analyses())
    # Batching: far fewer Jobs than analyses, and never more live at once than allowed.
    assert summary.jobs < summary.phases["Succeeded"] // 2
    assert stack.cluster is not None
    assert stack.cluster.max_active_jobs() <= 4


def test_every_dashboard_query_evaluates_and_the_key_ones_have_data(happy_run: Run) -> None:
    prom, ns = happy_run.prometheus, happy_run.stack.namespace
    variables = {"namespace": ns, "__rate_interval": "1m", "datasource": "prometheus"}
    (path,) = sorted(DASHBOARD_DIR.glob("*.json"))
    results: dict[str, int] = {}
    for title, expr in dashboard_queries(path, variables):
        answer = prom.query(expr)
        assert answer["status"] == "success", (title, expr, answer)
        assert "$" not in expr, expr
        results[expr] = len(answer["data"]["result"])
    assert len(results) >= 20
    key = {
        "Queue depth by phase": f'sum by (phase) (mistake_analysis_resources{{namespace=~"{ns}"}})',
        "Throughput": f'sum by (outcome) (rate(mistake_analysis_finished_total{{namespace=~"{ns}"}}[1m]))',
        "Active Jobs": f'sum(mistake_analysis_jobs_active{{namespace=~"{ns}"}})',
        "LLM tokens": "sum by (model, kind) (rate(mistake_analysis_llm_tokens_total[1m]))",
        "Jobs created": f'sum(rate(mistake_analysis_jobs_created_total{{namespace=~"{ns}"}}[1m]))',
    }
    for name, expr in key.items():
        assert results.get(expr, 0) > 0, f"{name}: {expr} returned no data"
    # The scraped gauge agrees with the API.
    answer = prom.query(f'sum(mistake_analysis_resources{{namespace="{ns}",phase="Succeeded"}})')
    assert float(answer["data"]["result"][0]["value"][1]) == happy_run.summary.phases["Succeeded"]
