"""The alert rules: promtool accepts them, and unit tests prove each alert fires, and stays quiet, when it should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import NAMESPACE, RELEASE, Rendered, rule_groups

pytestmark = pytest.mark.chart

ALERTS = {
    "MistakeAnalysisBacklogGrowing",
    "MistakeAnalysisQueuedTooLong",
    "MistakeAnalysisFailureRatioHigh",
    "MistakeAnalysisJobsFailing",
    "MistakeAnalyzerOperatorDown",
    "MistakeAnalysisSweeperRecovering",
}
EXTRA = {"team": "learning"}  # additionalAlertLabels of the monitoring-on case
UP_JOB = f"{RELEASE}-mistake-analyzer-metrics"


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if path is None:
        pytest.skip("promtool not found: install Debian's `prometheus` package (./dev setup does)")
    return path


def _alert(severity: str, **labels: str) -> dict[str, Any]:
    return {"exp_labels": {"severity": severity, **EXTRA, **labels}}


# Each case: input series, then (minute, alert, expected alerts) checks. An empty list means "must be quiet".
TESTS: list[dict[str, Any]] = [
    {
        "name": "backlog growing",
        "input_series": [
            # a: grows by 2 per minute past 50; b: large but flat; c: growing but small.
            {"series": 'mistake_analysis_resources{namespace="a",phase="Queued"}', "values": "40+2x60"},
            {"series": 'mistake_analysis_resources{namespace="b",phase="Queued"}', "values": "200x60"},
            {"series": 'mistake_analysis_resources{namespace="c",phase="Queued"}', "values": "0+0.5x60"},
            {"series": 'mistake_analysis_resources{namespace="a",phase="Running"}', "values": "0+5x60"},
        ],
        "alert_rule_test": [
            {"eval_time": "15m", "alertname": "MistakeAnalysisBacklogGrowing", "exp_alerts": []},
            {
                "eval_time": "40m",
                "alertname": "MistakeAnalysisBacklogGrowing",
                "exp_alerts": [_alert("warning", namespace="a")],
            },
        ],
    },
    {
        "name": "oldest queued too old",
        "input_series": [
            {"series": 'mistake_analysis_oldest_queued_age_seconds{namespace="a"}', "values": "0+60x60"},
            {"series": 'mistake_analysis_oldest_queued_age_seconds{namespace="b"}', "values": "0x60"},
        ],
        "alert_rule_test": [
            {"eval_time": "25m", "alertname": "MistakeAnalysisQueuedTooLong", "exp_alerts": []},
            {
                "eval_time": "40m",
                "alertname": "MistakeAnalysisQueuedTooLong",
                "exp_alerts": [_alert("warning", namespace="a")],
            },
        ],
    },
    {
        "name": "failure ratio high",
        "input_series": [
            # a: 30 % failed; b: 10 % failed; c: all failed but too few to judge; d: only cancellations.
            {
                "series": 'mistake_analysis_finished_total{namespace="a",outcome="Failed",reason="LLMRefused"}',
                "values": "0+3x60",
            },
            {
                "series": 'mistake_analysis_finished_total{namespace="a",outcome="Succeeded",reason="Analysed"}',
                "values": "0+7x60",
            },
            {
                "series": 'mistake_analysis_finished_total{namespace="b",outcome="Failed",reason="ImageCorrupt"}',
                "values": "0+1x60",
            },
            {
                "series": 'mistake_analysis_finished_total{namespace="b",outcome="Succeeded",reason="Analysed"}',
                "values": "0+9x60",
            },
            {
                "series": 'mistake_analysis_finished_total{namespace="c",outcome="Failed",reason="NoImages"}',
                "values": "0+0.25x60",
            },
            {
                "series": 'mistake_analysis_finished_total{namespace="d",outcome="Cancelled",reason="Superseded"}',
                "values": "0+10x60",
            },
            {
                "series": 'mistake_analysis_finished_total{namespace="d",outcome="Succeeded",reason="Analysed"}',
                "values": "0+5x60",
            },
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "MistakeAnalysisFailureRatioHigh", "exp_alerts": []},
            {
                "eval_time": "30m",
                "alertname": "MistakeAnalysisFailureRatioHigh",
                "exp_alerts": [_alert("critical", namespace="a")],
            },
        ],
    },
    {
        "name": "jobs failing",
        "input_series": [
            {"series": 'mistake_analysis_jobs_failed_total{namespace="a",reason="OOMKilled"}', "values": "0+1x30"},
            {
                "series": 'mistake_analysis_jobs_failed_total{namespace="b",reason="DeadlineExceeded"}',
                "values": "0x10 1x20",
            },
        ],
        "alert_rule_test": [
            {"eval_time": "1m", "alertname": "MistakeAnalysisJobsFailing", "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": "MistakeAnalysisJobsFailing",
                "exp_alerts": [_alert("warning", namespace="a")],
            },
        ],
    },
    {
        "name": "operator down (scrape fails)",
        "input_series": [{"series": f'up{{job="{UP_JOB}",namespace="{NAMESPACE}"}}', "values": "1x10 0x30"}],
        "alert_rule_test": [
            {"eval_time": "8m", "alertname": "MistakeAnalyzerOperatorDown", "exp_alerts": []},
            {"eval_time": "13m", "alertname": "MistakeAnalyzerOperatorDown", "exp_alerts": []},
            {"eval_time": "30m", "alertname": "MistakeAnalyzerOperatorDown", "exp_alerts": [_alert("critical")]},
        ],
    },
    {
        "name": "operator down (target gone) and up (PodMonitor job)",
        "input_series": [
            {"series": 'up{job="someone-else"}', "values": "1x30"},
        ],
        "alert_rule_test": [
            {"eval_time": "3m", "alertname": "MistakeAnalyzerOperatorDown", "exp_alerts": []},
            {"eval_time": "10m", "alertname": "MistakeAnalyzerOperatorDown", "exp_alerts": [_alert("critical")]},
        ],
    },
    {
        "name": "operator up",
        "input_series": [
            {"series": f'up{{job="{NAMESPACE}/{RELEASE}-mistake-analyzer-operator"}}', "values": "1x40"},
        ],
        "alert_rule_test": [{"eval_time": "30m", "alertname": "MistakeAnalyzerOperatorDown", "exp_alerts": []}],
    },
    {
        "name": "sweeper recovering",
        "input_series": [
            {
                "series": 'mistake_analysis_sweeper_recoveries_total{namespace="a",status="pending"}',
                "values": "0+1x120",
            },
            {
                "series": 'mistake_analysis_sweeper_recoveries_total{namespace="b",status="processing"}',
                "values": "0+0.1x120",
            },
        ],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "MistakeAnalysisSweeperRecovering", "exp_alerts": []},
            {
                "eval_time": "90m",
                "alertname": "MistakeAnalysisSweeperRecovering",
                "exp_alerts": [_alert("warning", namespace="a")],
            },
        ],
    },
]


def _without_annotations(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """promtool compares annotations too; the unit tests pin expressions, `for` and labels."""
    return [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]} for g in groups]


def test_rules_cover_every_documented_alert(rendered: dict[str, Rendered]) -> None:
    names = {r["alert"] for g in rule_groups(rendered["monitoring-on"]) for r in g["rules"]}
    assert names == ALERTS
    for group in rule_groups(rendered["monitoring-on"]):
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert {"summary", "description", "runbook"} <= rule["annotations"].keys()


def test_every_alert_is_unit_tested() -> None:
    tested = {c["alertname"] for t in TESTS for c in t["alert_rule_test"]}
    assert tested == ALERTS
    for alert in ALERTS:
        checks = [c for t in TESTS for c in t["alert_rule_test"] if c["alertname"] == alert]
        assert any(c["exp_alerts"] for c in checks), f"{alert} is never shown firing"
        assert any(not c["exp_alerts"] for c in checks), f"{alert} is never shown quiet"


def test_promtool_check_rules(promtool: str, alert_rules_file: Path) -> None:
    result = subprocess.run([promtool, "check", "rules", str(alert_rules_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(ALERTS)} rules found" in result.stdout + result.stderr


def test_promtool_test_rules(promtool: str, rendered: dict[str, Rendered], tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _without_annotations(rule_groups(rendered["monitoring-on"]))}))
    tests = tmp_path / "tests.yaml"
    tests.write_text(
        yaml.safe_dump(
            {
                "rule_files": [rules.name],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", **{k: v for k, v in t.items() if k != "name"}} for t in TESTS],
            }
        )
    )
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_test_rules_catches_a_wrong_expectation(
    promtool: str, rendered: dict[str, Rendered], tmp_path: Path
) -> None:
    """The harness can fail: claiming the flat backlog alerts is reported as a failure."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": _without_annotations(rule_groups(rendered["monitoring-on"]))}))
    wrong = {
        "interval": "1m",
        "input_series": [{"series": 'mistake_analysis_resources{namespace="b",phase="Queued"}', "values": "200x60"}],
        "alert_rule_test": [
            {
                "eval_time": "40m",
                "alertname": "MistakeAnalysisBacklogGrowing",
                "exp_alerts": [_alert("warning", namespace="b")],
            }
        ],
    }
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [rules.name], "tests": [wrong]}))
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
