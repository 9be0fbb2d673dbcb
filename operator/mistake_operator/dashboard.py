"""The Grafana dashboard of the operator's metrics, generated from code into the Helm chart.

    python -m mistake_operator.dashboard            # (re)write charts/mistake-analyzer/dashboards/*.json
    python -m mistake_operator.dashboard --check    # exit 1 if a committed file differs (CI runs this as a test)

Built with `grafana-foundation-sdk` (Grafana's typed builders). Every query names metrics through the specs in
`mistake_operator.metrics`, so a renamed metric breaks here and in the drift test, not silently in Grafana.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus as prom_b
from grafana_foundation_sdk.builders import stat as stat_b
from grafana_foundation_sdk.builders import timeseries as ts_b
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dash_m

from mistake_api.states import Phase
from mistake_operator import metrics as m
from mistake_operator.metrics import MetricSpec

UID: Final = "mistake-analyzer"
FILE_NAME: Final = "mistake-analyzer.json"
# `${datasource}` lets one dashboard serve any Prometheus data source the Grafana instance has.
DATASOURCE: Final = dash_m.DataSourceRef(type_val="prometheus", uid="${datasource}")
NS: Final = 'namespace=~"$namespace"'
RATE: Final = "$__rate_interval"
QUANTILES: Final = (0.5, 0.9, 0.99)
FULL_WIDTH: Final = 24
HALF_WIDTH: Final = 12
QUARTER_WIDTH: Final = 6


def series(spec: MetricSpec, suffix: str = "") -> str:
    """A series name of `spec`, checked against what the metric really exposes."""
    name = spec.name + suffix
    if name not in spec.series:
        raise ValueError(f"{name} is not a series of {spec.name}")
    return name


def _query(expr: str, legend: str, ref: str) -> prom_b.Dataquery:
    return prom_b.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def _quantile(spec: MetricSpec, q: float, by: str = "", selector: str = NS) -> str:
    group = f"le, {by}" if by else "le"
    return f"histogram_quantile({q}, sum by ({group}) (rate({series(spec, '_bucket')}{{{selector}}}[{RATE}])))"


def _refs() -> Callable[[], str]:
    letters = iter("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    return lambda: next(letters)


def timeseries(
    title: str,
    description: str,
    queries: Sequence[tuple[str, str]],
    unit: str,
    width: int = HALF_WIDTH,
    stacked: bool = False,
) -> ts_b.Panel:
    ref = _refs()
    panel = (
        ts_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .min(0)
        .height(8)
        .span(width)
        .fill_opacity(20 if stacked else 10)
        .legend(
            common_b.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if stacked:
        panel = panel.stacking(common_b.StackingConfig().mode(common.StackingMode.NORMAL))
    for expr, legend in queries:
        panel = panel.with_target(_query(expr, legend, ref()))
    return panel


def stat(title: str, description: str, expr: str, unit: str) -> stat_b.Panel:
    return (
        stat_b.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .height(4)
        .span(QUARTER_WIDTH)
        .with_target(_query(expr, "", "A"))
    )


def _percentiles(spec: MetricSpec, by: str = "") -> list[tuple[str, str]]:
    suffix = f" {{{{{by}}}}}" if by else ""
    return [(_quantile(spec, q, by), f"p{round(q * 100)}{suffix}") for q in QUANTILES]


def build() -> dash_m.Dashboard:
    finished = series(m.FINISHED)
    succeeded, failed = Phase.SUCCEEDED.value, Phase.FAILED.value
    overview = [
        stat(
            "Queued now",
            "Analyses waiting for a batch Job.",
            f'sum({series(m.RESOURCES)}{{{NS}, phase="{Phase.QUEUED.value}"}})',
            "short",
        ),
        stat(
            "Oldest queued",
            "Age of the oldest Queued analysis; alerts fire when it grows past the configured limit.",
            f"max({series(m.OLDEST_QUEUED)}{{{NS}}})",
            "s",
        ),
        stat("Active Jobs", "Batch Jobs not yet finished.", f"sum({series(m.JOBS_ACTIVE)}{{{NS}}})", "short"),
        stat(
            "Success ratio (1h)",
            "Succeeded among analyses that finished in the last hour (cancellations excluded).",
            f'sum(increase({finished}{{{NS}, outcome="{succeeded}"}}[1h])) / '
            f'sum(increase({finished}{{{NS}, outcome=~"{succeeded}|{failed}"}}[1h]))',
            "percentunit",
        ),
    ]
    flow = [
        timeseries(
            "Throughput",
            "Analyses reaching a final phase per second, by outcome.",
            [(f"sum by (outcome) (rate({finished}{{{NS}}}[{RATE}]))", "{{outcome}}")],
            "ops",
            stacked=True,
        ),
        timeseries(
            "Queue depth by phase",
            "MistakeAnalyses per phase (terminal phases until their TTL removes them).",
            [(f"sum by (phase) ({series(m.RESOURCES)}{{{NS}}})", "{{phase}}")],
            "short",
        ),
        timeseries(
            "Queue wait percentiles",
            "Time from Queued to Scheduled, per attempt.",
            _percentiles(m.QUEUE_WAIT),
            "s",
        ),
        timeseries(
            "End-to-end latency percentiles",
            "Time from creation to a final phase, by outcome.",
            _percentiles(m.END_TO_END, "outcome"),
            "s",
        ),
    ]
    jobs = [
        timeseries(
            "Batch sizes",
            "Analyses per batch Job: percentiles and mean.",
            [
                *_percentiles(m.BATCH_SIZE),
                (
                    f"sum(rate({series(m.BATCH_SIZE, '_sum')}{{{NS}}}[{RATE}])) / "
                    f"sum(rate({series(m.BATCH_SIZE, '_count')}{{{NS}}}[{RATE}]))",
                    "mean",
                ),
            ],
            "short",
        ),
        timeseries(
            "Active Jobs and in-flight analyses",
            "Live batch Jobs, analyses they hold, and the cluster-wide LLM concurrency budget.",
            [
                (f"sum({series(m.JOBS_ACTIVE)}{{{NS}}})", "active Jobs"),
                (f"sum({series(m.SCHEDULED_INFLIGHT)}{{{NS}}})", "analyses in Jobs"),
                (f"max({series(m.INFLIGHT_BUDGET)}{{{NS}}})", "budget"),
            ],
            "short",
        ),
        timeseries(
            "Jobs created and failed",
            "Batch Jobs created per second, and Jobs that failed or vanished, by reason.",
            [
                (f"sum(rate({series(m.JOBS_CREATED)}{{{NS}}}[{RATE}]))", "created"),
                (f"sum by (reason) (rate({series(m.JOBS_FAILED)}{{{NS}}}[{RATE}]))", "failed {{reason}}"),
            ],
            "ops",
        ),
        timeseries(
            "Retries by reason",
            "Analyses sent back to Queued for another attempt, by reason.",
            [(f"sum by (reason) (rate({series(m.RETRIES)}{{{NS}}}[{RATE}]))", "{{reason}}")],
            "ops",
            stacked=True,
        ),
    ]
    outcomes = [
        timeseries(
            "Succeeded and failed",
            "Final outcomes per second.",
            [(f"sum by (outcome) (rate({finished}{{{NS}}}[{RATE}]))", "{{outcome}}")],
            "ops",
        ),
        timeseries(
            "Failures and cancellations by reason",
            "Analyses that ended without success, by reason (see docs/reasons.md).",
            [
                (
                    f'sum by (outcome, reason) (rate({finished}{{{NS}, outcome!="{succeeded}"}}[{RATE}]))',
                    "{{outcome}} {{reason}}",
                )
            ],
            "ops",
            stacked=True,
        ),
    ]
    llm = [
        timeseries(
            "LLM latency by model",
            "Seconds in LLM calls per successful analysis, percentiles by model.",
            [
                (_quantile(m.LLM_SECONDS, q, "model", selector=""), f"p{round(q * 100)} {{{{model}}}}")
                for q in QUANTILES
            ],
            "s",
        ),
        timeseries(
            "LLM tokens by model",
            "Tokens per second used by successful analyses, by model and kind (prompt or completion).",
            [(f"sum by (model, kind) (rate({series(m.LLM_TOKENS)}[{RATE}]))", "{{model}} {{kind}}")],
            "short",
            stacked=True,
        ),
        timeseries(
            "LLM calls by model",
            "LLM calls per second (more than one per analysis means repairs).",
            [(f"sum by (model) (rate({series(m.LLM_CALLS)}[{RATE}]))", "{{model}}")],
            "ops",
        ),
    ]
    sweeper = [
        timeseries(
            "Sweeper recoveries",
            "Records found without a live analysis and re-queued, by the status they were stuck in. "
            "A steady rate means triggers are being missed.",
            [(f"sum by (status) (rate({series(m.SWEEPER_RECOVERIES)}{{{NS}}}[{RATE}]))", "{{status}}")],
            "ops",
            stacked=True,
        ),
        timeseries(
            "Sweeper runs and operator errors",
            "Sweeper passes by result, and unexpected errors in operator handlers.",
            [
                (f"sum by (result) (rate({series(m.SWEEPER_RUNS)}[{RATE}]))", "sweeper {{result}}"),
                (f"sum by (handler) (rate({series(m.OPERATOR_ERRORS)}[{RATE}]))", "errors {{handler}}"),
            ],
            "ops",
        ),
    ]

    builder = (
        dash_b.Dashboard("Mistake Analyzer")
        .uid(UID)
        .description("MistakeAnalysis queue, batch Jobs, outcomes, LLM usage and the sweeper.")
        .tags(["mistake-analyzer", "kubernetes"])
        .editable()
        .tooltip(dash_m.DashboardCursorSync.CROSSHAIR)
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(dash_b.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .with_variable(
            dash_b.QueryVariable("namespace")
            .label("Namespace")
            .datasource(DATASOURCE)
            .query(f"label_values({series(m.RESOURCES)}, namespace)")
            .refresh(dash_m.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(dash_m.VariableSort.ALPHABETICAL_ASC)
            .multi(True)
            .include_all(True)
            .all_value(".*")
        )
    )
    sections: list[tuple[str, Sequence[ts_b.Panel | stat_b.Panel]]] = [
        ("Overview", overview),
        ("Queue and latency", flow),
        ("Batch Jobs", jobs),
        ("Outcomes", outcomes),
        ("LLM", llm),
        ("Sweeper", sweeper),
    ]
    # Stable panel ids keep links to a panel (`viewPanel=N`) valid across regenerations.
    ids = iter(range(1, 1000))
    for title, panels in sections:
        builder = builder.with_row(dash_b.Row(title).id(next(ids)))
        for panel in panels:
            builder = builder.with_panel(panel.id(next(ids)))
    return builder.build()


def render() -> str:
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def default_dir() -> Path:
    return Path(__file__).resolve().parents[2] / "charts" / "mistake-analyzer" / "dashboards"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mistake_operator.dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed file differs from the generator")
    parser.add_argument("--output-dir", type=Path, default=default_dir(), help="the chart's dashboards folder")
    args = parser.parse_args(argv)
    path: Path = args.output_dir / FILE_NAME
    text = render()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is stale: run `python -m mistake_operator.dashboard`", file=sys.stderr)
            return 1
        print(f"{path} is up to date")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
