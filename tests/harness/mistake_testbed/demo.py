"""The demo: the whole system on the embedded dev cluster (run it with `./dev demo`).

Starts the dev cluster (CRD applied with kubectl), the Appwrite and LLM stand-ins (or the real services named in
the environment), the real trigger behind a TLS proxy, the real operator and its worker Jobs; creates N sample
records with generated photos so the trigger fires through event delivery; shows live progress; prints a summary.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mistake_testbed.stack import PHOTO_KINDS, Stack, StackConfig, real_services
from mistake_testbed.stack.services import wait_until

FAULTS = {
    "llm-429": "the LLM answers 429 with Retry-After: 1 to every call for 4 s",
    "appwrite-503": "Appwrite answers 503 to every request for 5 s",
    "kill-operator": "the operator is SIGKILLed once a third of the records are done, then restarted",
    "kill-pod": "the first batch Job's pod is SIGKILLed while it runs",
    "api-down": "the Kubernetes API refuses the trigger while the first half of the records is written; "
    "the sweeper recovers them",
}
PHASES = ("New", "Queued", "Scheduled", "Running", "Succeeded", "Failed", "Cancelled")
SHOWN_ROWS = 15


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev demo",
        description="The whole Mistake Analyzer system on the embedded dev cluster.",
        epilog="faults: " + "; ".join(f"{k}: {v}" for k, v in FAULTS.items()),
    )
    parser.add_argument("-n", "--records", type=int, default=40, help="sample records to create (default 40)")
    parser.add_argument("--reanalyze", type=int, default=0, help="re-analyse this many records once they complete")
    parser.add_argument("--keep", action="store_true", help="keep everything running for inspection (Ctrl-C ends)")
    parser.add_argument("--fault", choices=sorted(FAULTS), action="append", default=[], help="inject a fault")
    parser.add_argument("--prometheus", action="store_true", help="also run Prometheus scraping the operator")
    parser.add_argument("--run-dir", type=Path, default=None, help="logs and state (default: a new temp folder)")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    args = parser.parse_args(argv)
    if args.records < 1:
        parser.error("--records must be at least 1")
    return args


def phase_table(counts: dict[str, int], total_records: int, status: dict[str, int]) -> Table:
    table = Table(title="MistakeAnalyses by phase", expand=False)
    for phase in PHASES:
        table.add_column(phase, justify="right")
    table.add_row(*(str(counts.get(p, 0)) for p in PHASES))
    table.caption = f"records in Appwrite: {total_records}  " + "  ".join(f"{k} {v}" for k, v in sorted(status.items()))
    return table


def stack_config(args: argparse.Namespace) -> StackConfig:
    operator: dict[str, object] = {}
    if "api-down" in args.fault:
        # Recover missed events within a few seconds instead of the production default of minutes.
        operator["sweeper"] = {"interval_seconds": 1.0, "grace_seconds": 3.0}
    run_dir = args.run_dir or Path(f"/tmp/mistake-demo-{time.strftime('%Y%m%d-%H%M%S')}")
    return StackConfig(run_dir=run_dir, operator=operator, prometheus=args.prometheus)


class FaultDriver:
    """Injects the chosen faults at their moments, from a background thread watching the stack."""

    def __init__(self, stack: Stack, faults: list[str], total: int, console: Console) -> None:
        self.stack = stack
        self.faults = faults
        self.total = total
        self.console = console
        self.done = threading.Event()
        self.notes: list[str] = []
        self._thread = threading.Thread(target=self._run, name="demo-faults", daemon=True)

    def before_records(self) -> None:
        stack = self.stack
        if "llm-429" in self.faults and stack.llm is not None:
            stack.llm.add_fault(kind="rate_limit", retry_after=1, duration=4.0)
            self.notes.append("LLM 429 storm for 4 s")
        if "appwrite-503" in self.faults and stack.appwrite is not None:
            stack.appwrite.fail(503, duration=5.0)
            self.notes.append("Appwrite 503 for 5 s")
        if "kill-pod" in self.faults and stack.cluster is not None:
            self._thread.start()

    def _run(self) -> None:
        stack = self.stack
        assert stack.cluster is not None

        def running_pod() -> str | None:
            for pod in stack.cluster.list_objects(("", "pods"), stack.namespace) if stack.cluster else []:
                if (pod.get("status") or {}).get("phase") == "Running":
                    return str(pod["metadata"]["name"])
            return None

        try:
            wait_until(lambda: running_pod() is not None, 60, "a running pod")
        except TimeoutError:
            return
        name = running_pod()
        if name and stack.cluster.kill_pod(stack.namespace, name):
            self.notes.append(f"pod {name} SIGKILLed")

    def progress(self, finished: int) -> None:
        if "kill-operator" in self.faults and not self.done.is_set() and finished >= max(1, self.total // 3):
            self.done.set()
            self.stack.restart_operator(kill=True)
            self.notes.append("operator SIGKILLed and restarted")


def create_records(stack: Stack, args: argparse.Namespace, console: Console) -> None:
    count = args.records
    if "api-down" in args.fault and stack.proxy is not None:
        first = count // 2 or 1
        stack.proxy.down()
        stack.create_records(first)
        stack.proxy.up()
        console.print(f"[yellow]fault:[/] the API refused the trigger for the first {first} records")
        if count > first:
            stack.create_records(count - first, kinds=PHOTO_KINDS[first % len(PHOTO_KINDS) :] + PHOTO_KINDS)
    else:
        stack.create_records(count)


def run(args: argparse.Namespace, console: Console) -> int:
    real_appwrite, real_llm = real_services()
    config = stack_config(args)
    console.print(f"[bold]Mistake Analyzer demo[/] — {args.records} records, run folder {config.run_dir}")
    console.print(
        f"Appwrite: {'real (' + os.environ['APPWRITE_ENDPOINT'] + ')' if real_appwrite else 'local stand-in'};  "
        f"LLM: {'real (' + os.environ['OPENAI_BASE_URL'] + ')' if real_llm else 'local stand-in'}"
    )
    with console.status("starting the dev cluster, stand-ins, trigger and operator ..."):
        stack = Stack(config).__enter__()
    try:
        console.print(f"stack up; operator on http://127.0.0.1:{stack.metrics_port}/metrics")
        driver = FaultDriver(stack, args.fault, args.records, console)
        driver.before_records()
        started = time.monotonic()
        create_records(stack, args, console)
        ok = watch(stack, driver, args, console, started)
        if ok and args.reanalyze:
            chosen = list(stack.records)[: args.reanalyze]
            console.print(f"re-analysing {len(chosen)} records ...")
            stack.reanalyze(chosen)
            ok = watch(stack, driver, args, console, started)
        summary = stack.summary()
        console.print()
        console.rule("summary")
        for note in driver.notes:
            console.print(f"[yellow]fault:[/] {note}")
        for line in summary.lines():
            console.print(line)
        print_analyses(stack, console)
        all_good = ok and summary.record_status.get("completed", 0) == summary.records
        console.print(
            "[bold green]every analysis succeeded[/]"
            if all_good
            else "[bold red]not every analysis succeeded[/] (see the reasons above)"
        )
        if args.keep:
            keep_running(stack, console)
        return 0 if all_good else 1
    finally:
        with console.status("stopping ..."):
            stack.stop()


def watch(stack: Stack, driver: FaultDriver, args: argparse.Namespace, console: Console, started: float) -> bool:
    progress = Progress(
        TextColumn("analyses"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = progress.add_task("records", total=len(stack.records))
    deadline = time.monotonic() + args.timeout
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while True:
            docs = stack.record_docs()
            status: dict[str, int] = {}
            for doc in docs.values():
                key = str(doc.get("analysisStatus"))
                status[key] = status.get(key, 0) + 1
            finished = status.get("completed", 0) + status.get("failed", 0)
            progress.update(task, completed=finished)
            live.update(Group(progress, phase_table(stack.phase_counts(), len(docs), status)))
            driver.progress(finished)
            if stack.settled():
                return True
            if time.monotonic() > deadline:
                console.print(f"[red]gave up after {args.timeout:g} s[/]")
                return False
            time.sleep(0.25)  # a display refresh, not a synchronisation


def print_analyses(stack: Stack, console: Console) -> None:
    assert stack.kubectl is not None
    try:
        out = stack.kubectl("get", "mistakeanalyses", "--sort-by=.metadata.creationTimestamp").stdout
    except (RuntimeError, FileNotFoundError) as err:
        console.print(f"(kubectl get mistakeanalyses failed: {err})")
        return
    lines = out.rstrip("\n").splitlines()
    console.print(f"\n$ kubectl -n {stack.namespace} get mistakeanalyses", highlight=False)
    for line in lines[: SHOWN_ROWS + 1]:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    if len(lines) > SHOWN_ROWS + 1:
        console.print(f"... and {len(lines) - SHOWN_ROWS - 1} more", highlight=False)


def keep_running(stack: Stack, console: Console) -> None:
    assert stack.cluster is not None
    ns = stack.namespace
    lines = [
        "",
        "Everything keeps running. In another terminal:",
        f"  export KUBECONFIG={stack.cluster.kubeconfig}",
        f"  export PATH={Path(sys.executable).parent}:$PATH      # kubectl and helm from ./dev setup",
        f"  kubectl -n {ns} get mistakeanalyses            # or: kubectl get ma -A",
        f"  kubectl -n {ns} get ma -o wide --sort-by=.status.finishedAt",
        f"  kubectl -n {ns} describe ma <name>             # conditions and events",
        f"  kubectl -n {ns} get jobs,pods",
        f"  kubectl -n {ns} logs job/<job name>            # the worker's log",
        f"  kubectl -n {ns} get events --field-selector involvedObject.kind=MistakeAnalysis",
        "",
        f"Operator: http://127.0.0.1:{stack.metrics_port}/metrics  /queue/stats  /healthz  /readyz",
        f"  log: {stack.run_dir / 'operator.log'}    pod logs: {stack.cluster.workdir / 'pods'}",
    ]
    if stack.appwrite is not None:
        aw = stack.appwrite
        lines.append(f"Appwrite stand-in: {aw.endpoint}  project {aw.project_id}  key {aw.api_key}")
    if stack.llm is not None:
        lines.append(f"LLM stand-in: {stack.llm.base_url}  key {stack.llm.api_key}  stats: {stack.llm.admin_url}/stats")
    if stack.prometheus is not None:
        lines.append(f"Prometheus: {stack.prometheus.url}  (graph: {stack.prometheus.url}/graph)")
    lines += [
        "PromQL to try (in Prometheus, or read the raw series with curl .../metrics):",
        f'  sum by (phase) (mistake_analysis_resources{{namespace="{ns}"}})',
        "  sum by (outcome, reason) (mistake_analysis_finished_total)",
        "  histogram_quantile(0.95, sum by (le) (rate(mistake_analysis_end_to_end_seconds_bucket[5m])))",
        "  sum by (kind) (mistake_analysis_llm_tokens_total)",
        "",
        "Press Ctrl-C to stop everything.",
    ]
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    try:
        return run(args, console)
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
