"""What one more Job (pod) adds: throughput at 1, 2, 4 and 8 active Jobs, fixed per-pod concurrency and LLM latency.

    ./dev bench job_scaling [--jobs 1 2 4 8] [--records 160] [--concurrency 10] [--latency 1.0]

One stack (dev cluster, stand-ins, real trigger, operator and worker pods); for each `maxActiveJobs` the operator
is redeployed into a fresh namespace over fresh Appwrite data and the same workload runs: `--records` records,
`--concurrency` LLM calls per pod, batches of the same size (the operator's default in-flight budget, jobs x
concurrency, would cut larger batches to it anyway), so every Job is one pod start and one round of LLM calls.
Throughput is records / (first record created -> last analysis final). Printed and plotted: throughput per Job
count, the speed-up against 1 Job next to the ideal (linear) speed-up, and the CPU the run used, since on a
2-core machine the curve flattens where the CPU runs out rather than where the design stops scaling.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import _stack_bench as sb

NAME = "job_scaling"


def measure(stack: Any, jobs: int, args: argparse.Namespace) -> dict[str, Any]:
    settings = sb.operator_settings(jobs, args.concurrency, args.concurrency, 0.5)
    stack.redeploy(f"bench-jobs-{jobs}-{int(time.time()) % 100000}", operator=settings)
    cpu0 = sb.CpuSnapshot.take(stack)
    sb.submit(stack, args.records, threads=args.threads)
    sb.wait_final(stack, args.records, timeout=args.timeout)
    stack.wait_settled(120)
    cpu = sb.CpuSnapshot.take(stack) - cpu0
    timeline = sb.Timeline.of(stack)
    status = sb.fail_if_lost(stack, args.records)
    total = timeline.last_final - timeline.first_request
    assert stack.cluster is not None
    wall_cpu = cpu.total / total  # cores kept busy on average
    result = {
        "jobs": jobs,
        "status": status,
        "jobs_created": len(stack.jobs()),
        "pods": sb.pods_of(stack),
        "total_s": round(total, 2),
        "throughput_per_s": round(args.records / total, 2),
        "ideal_throughput_per_s": round(jobs * args.concurrency / args.latency, 1),
        "cpu": cpu.as_dict(),
        "cores_busy": round(wall_cpu, 2),
        "peak_active_jobs": stack.cluster.max_active_jobs(),
    }
    print(
        f"{jobs} Jobs: total {total:.1f} s, {result['throughput_per_s']:.1f} analyses/s "
        f"(ideal while running {result['ideal_throughput_per_s']:g}/s), {result['jobs_created']} Jobs created, "
        f"CPU {cpu.total:.1f} s = {wall_cpu:.2f} cores busy (other processes {cpu.others:.1f} s); {status}"
    )
    return result


def plot(data: dict[str, Any]) -> None:
    plt = sb.pyplot()
    runs = data["runs"]
    jobs = [r["jobs"] for r in runs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 2.8))
    left.plot(jobs, [r["throughput_per_s"] for r in runs], "o-", label="measured")
    for r in runs:  # where the CPU runs out is the story of this curve on a small machine
        left.annotate(
            f"{r['cores_busy']:.1f} cores",
            (r["jobs"], r["throughput_per_s"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    left.set_xlabel("active Jobs (pods)")
    left.set_ylabel("analyses / s")
    left.set_xticks(jobs)
    left.set_xlim(0.5, max(jobs) * 1.2)  # room for the labels
    left.set_title(f"throughput ({data['concurrency']} per pod, {data['latency_s']:g} s LLM)")
    right.plot(jobs, [r["speedup"] for r in runs], "o-", label="measured")
    right.plot(jobs, jobs, "--", color="grey", label="linear")
    right.set_xlabel("active Jobs (pods)")
    right.set_ylabel("speed-up against 1 Job")
    right.set_xticks(jobs)
    right.set_title(f"speed-up ({data['records']} records, {data['machine']['cores']} cores)")
    right.legend(loc="upper left")
    sb.save_plot(fig, NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--records", type=int, default=160)
    parser.add_argument("--concurrency", type=int, default=10, help="perPodConcurrency, the same for every run")
    parser.add_argument("--latency", type=float, default=1.0, help="simulated LLM latency, seconds")
    parser.add_argument("--threads", type=int, default=8, help="threads creating record rows")
    parser.add_argument("--timeout", type=float, default=600.0, help="per Job count")
    args = parser.parse_args(argv)
    info = sb.machine()
    sb.print_machine(info)
    runs = []
    first = sb.operator_settings(args.jobs[0], args.concurrency, args.concurrency, 0.5)
    with sb.bench_stack(args.latency, first, namespace="bench-boot") as stack:
        for jobs in args.jobs:
            runs.append(measure(stack, jobs, args))
    base = runs[0]["throughput_per_s"] / runs[0]["jobs"]  # per Job, so a list not starting at 1 still compares
    for r in runs:
        r["speedup"] = round(r["throughput_per_s"] / base, 2)
        r["efficiency"] = round(r["speedup"] / r["jobs"], 2)
    print(
        "speed-up against 1 Job: "
        + ", ".join(f"{r['jobs']} Jobs x{r['speedup']:.2f} ({r['efficiency']:.0%} of linear)" for r in runs)
    )
    data = {
        "machine": info,
        "records": args.records,
        "concurrency": args.concurrency,
        "latency_s": args.latency,
        "batch_size": args.concurrency,
        "runs": runs,
    }
    sb.write_json(NAME, data)
    plot(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
