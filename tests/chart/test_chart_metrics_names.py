"""Every metric the dashboard and the alerts query exists in mistake_operator.metrics, with the labels used."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from chart_support import CHART, Rendered, rule_groups

from mistake_api.states import TERMINAL_PHASES, Phase
from mistake_operator import dashboard
from mistake_operator.metrics import SPECS, all_series

pytestmark = pytest.mark.chart

# Series Prometheus itself writes for every scrape target.
PROMETHEUS_BUILTINS = {"up"}
FUNCTIONS = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "delta", "deriv", "absent", "histogram_quantile",
    "label_values", "by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "clamp_min", "clamp_max", "topk", "bottomk", "time", "vector", "scalar",
}  # fmt: skip
LABELS_BY_SERIES = {series: set(spec.labels) | ({"le"} if series.endswith("_bucket") else set())
                    for spec in SPECS for series in spec.series}  # fmt: skip


def parse(expr: str) -> tuple[set[str], set[str], dict[str, set[str]]]:
    """(metric names, label names used in matchers and groupings, label values matched with = or =~)."""
    labels: set[str] = set()
    values: dict[str, set[str]] = {}
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        for name, op, value in re.findall(r'([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"([^"]*)"', matchers):
            labels.add(name)
            if op in {"=", "=~"}:
                values.setdefault(name, set()).update(value.split("|"))
    for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", expr):
        labels.update(x.strip() for x in grouping.split(",") if x.strip())
    stripped = re.sub(r'"[^"]*"', "", expr)
    stripped = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", stripped)
    stripped = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", " ", stripped)
    stripped = re.sub(r"label_values\(([a-zA-Z_:][\w:]*),[^)]*\)", r"\1", stripped)
    names = {t for t in re.findall(r"(?<![\w$.])[a-zA-Z_:][\w:]*", stripped) if t not in FUNCTIONS}
    return names, labels, values


def dashboard_exprs() -> Iterator[str]:
    data = json.loads((CHART / "dashboards" / dashboard.FILE_NAME).read_text(encoding="utf-8"))

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, value in node.items():
                is_query = key == "expr" or (key == "query" and "label_values" in str(value))
                if is_query and isinstance(value, str):
                    yield value
                else:
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    yield from walk(data)


def alert_exprs(rendered: dict[str, Rendered]) -> list[str]:
    return [rule["expr"] for group in rule_groups(rendered["monitoring-on"]) for rule in group["rules"]]


def _check(expr: str) -> set[str]:
    names, labels, values = parse(expr)
    assert names, f"no metric found in {expr!r}"
    unknown = names - all_series() - PROMETHEUS_BUILTINS
    assert not unknown, f"{expr!r} uses metrics the operator does not export: {unknown}"
    allowed_labels = {"job", "instance"}.union(*(LABELS_BY_SERIES.get(n, set()) for n in names))
    assert labels <= allowed_labels, f"{expr!r} uses labels {labels - allowed_labels} its metrics do not have"
    terminal = {p.value for p in TERMINAL_PHASES}
    assert values.get("outcome", set()) <= terminal, expr
    assert values.get("phase", set()) <= {p.value for p in Phase}, expr
    return names


def test_the_parser_finds_names_and_catches_strangers() -> None:
    names, labels, values = parse('sum by (le, outcome) (rate(foo_bucket{namespace=~"$namespace", outcome="A|B"}[5m]))')
    assert names == {"foo_bucket"}
    assert labels == {"le", "outcome", "namespace"}
    assert values["outcome"] == {"A", "B"}
    with pytest.raises(AssertionError):
        _check("sum(rate(mistake_analysis_no_such_metric_total[5m]))")
    with pytest.raises(AssertionError):
        _check('sum by (user_id) (mistake_analysis_resources{phase="Queued"})')


def test_dashboard_uses_only_known_metrics() -> None:
    exprs = list(dashboard_exprs())
    assert len(exprs) >= 20
    used = set().union(*(_check(e) for e in exprs))
    # The dashboard covers every metric family the operator exports.
    families = {s.name for s in SPECS if any(series in used for series in s.series)}
    assert families == {s.name for s in SPECS}


def test_alerts_use_only_known_metrics(rendered: dict[str, Rendered]) -> None:
    exprs = alert_exprs(rendered)
    assert len(exprs) == 6
    for expr in exprs:
        _check(expr)


def test_dashboard_is_up_to_date() -> None:
    assert dashboard.main(["--check"]) == 0


def test_dashboard_has_the_required_panels() -> None:
    data = json.loads(dashboard.render())
    titles = {p["title"] for p in data["panels"]}
    for wanted in (
        "Throughput",
        "Queue depth by phase",
        "Queue wait percentiles",
        "End-to-end latency percentiles",
        "Batch sizes",
        "Active Jobs and in-flight analyses",
        "Failures and cancellations by reason",
        "Retries by reason",
        "LLM latency by model",
        "LLM tokens by model",
        "Sweeper recoveries",
    ):
        assert wanted in titles
    ids = [p["id"] for p in data["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_check_detects_drift(tmp_path: Any) -> None:
    (tmp_path / dashboard.FILE_NAME).write_text("{}", encoding="utf-8")
    assert dashboard.main(["--check", "--output-dir", str(tmp_path)]) == 1
    assert dashboard.main(["--output-dir", str(tmp_path)]) == 0
    assert dashboard.main(["--check", "--output-dir", str(tmp_path)]) == 0
