"""Operator scheduling throughput: N analyses created at once, a worker that finishes instantly.

Prints analyses scheduled per second, the p95 queue wait (Queued → Scheduled) against the bound `maxBatchWait`,
and the operator's CPU seconds per 1,000 analyses (read from /proc for the operator process alone).

    ./dev bench operator_scheduling [--count 5000] [--batch-size 100] [--max-active-jobs 60] [--max-batch-wait 1.0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "operator"))

from operator_support import MA, analysis, operator_argv, operator_env  # noqa: E402

from mistake_testbed.kube import DevCluster  # noqa: E402

CRDS = ROOT / "charts" / "mistake-analyzer" / "crds"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    ap.add_argument("--count", type=int, default=5000)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--max-active-jobs", type=int, default=60)
    ap.add_argument("--max-batch-wait", type=float, default=1.0)
    args = ap.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp,
        DevCluster(workdir=Path(tmp) / "cluster", preload=[CRDS], keep_history=False) as cluster,
    ):
        ns = "bench"
        cluster.create_namespace(ns)
        env, _ = operator_env(
            cluster,
            ns,
            batch_size=args.batch_size,
            max_active_jobs=args.max_active_jobs,
            per_pod_concurrency=args.batch_size,
            max_batch_wait_seconds=args.max_batch_wait,
            log_level="WARNING",
        )
        full_env = {**os.environ, **env, "KUBECONFIG": str(cluster.kubeconfig)}
        log = open(Path(tmp) / "operator.log", "wb")  # noqa: SIM115 - closed below
        op = subprocess.Popen(operator_argv(), env=full_env, stdout=log, stderr=subprocess.STDOUT)
        try:
            time.sleep(3)  # let the operator start and list (not part of the measurement)
            cpu0 = cpu_seconds(op.pid)
            t0 = time.monotonic()
            for i in range(args.count):
                cluster.create(MA, ns, analysis(ns, i))
            created = time.monotonic() - t0
            deadline = time.monotonic() + 600
            while True:
                objs = cluster.list_objects(MA, ns)
                phases = [(o.get("status") or {}).get("phase") for o in objs]
                if phases.count("Succeeded") == args.count:
                    break
                if time.monotonic() > deadline:
                    print(f"timed out: {dict((p, phases.count(p)) for p in set(phases))}")
                    return 1
                time.sleep(0.2)
            cpu = cpu_seconds(op.pid) - cpu0
        finally:
            op.terminate()
            op.wait(30)
            log.close()
        waits, scheduled = [], []
        for o in objs:
            st = o["status"]
            waits.append((parse(st["scheduledAt"]) - parse(st["queuedAt"])).total_seconds())
            scheduled.append(parse(st["scheduledAt"]))
        first_queued = min(parse(o["status"]["queuedAt"]) for o in objs)
        span = max((max(scheduled) - first_queued).total_seconds(), 1e-3)
        p95 = statistics.quantiles(waits, n=20)[18]
        print(f"analyses: {args.count}, batch size {args.batch_size}, maxActiveJobs {args.max_active_jobs}")
        print(f"created in {created:.1f} s ({args.count / created:.0f}/s through the API)")
        print(f"scheduled: {args.count / span:.0f} analyses/s (first queued → last scheduled {span:.2f} s)")
        print(f"queue wait p50 {statistics.median(waits):.3f} s, p95 {p95:.3f} s")
        print(f"ratio p95 queue wait / maxBatchWait ({args.max_batch_wait} s): {p95 / args.max_batch_wait:.2f}")
        print(f"operator CPU: {cpu:.1f} s in all, {cpu / args.count * 1000:.2f} s per 1,000 analyses")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
