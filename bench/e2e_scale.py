"""End to end at scale: N records through the whole stack with a fixed simulated LLM latency.

    ./dev bench e2e_scale [--records 1000] [--latency 1.0] [--jobs 5] [--concurrency 20] [--runs 1]

The real trigger, operator and worker pods on the dev cluster with the Appwrite and LLM stand-ins (loopback).
Measured from the first record row created to the last analysis final, against two bounds:

- ideal: records / (jobs x concurrency) x latency + one Job start (the first Job's, measured in the same run:
  its members marked Scheduled until its pod claimed the first one); target total / ideal <= 1.3;
- CPU: the CPU the run actually used (stand-ins, operator, worker pods) spread over the machine's cores, or the
  stand-ins' single process on one core, whichever is longer: no schedule can finish faster on this machine.

Also p50/p95 end-to-end latency (record written -> analysis final), worker CPU per record, the LLM stand-in's
peak concurrency, and a plot of analyses finished per second and queue depth over time.

Settings: `maxActiveJobs x perPodConcurrency` = 5 x 20 = 100 LLM calls at most. Five pods rather than ten: every
pod is a Python process whose start-up costs CPU on a 2-core machine, and 20 LLM calls per pod is the
operator's default. Batches are records / (2 x jobs) large (100 of 1,000) and the in-flight budget is the
whole workload, so the work goes out in two waves of five Jobs: one wave (records / jobs per pod) leaves a long
tail when records arrive unevenly over the batches, and small batches pay a Job start in every round (measured
with 10 s latency: batches of 200 -> 1.44, 40 -> 1.35, 100 -> 1.19 to 1.32). The budget holds analyses in Jobs; LLM
calls stay capped at jobs x concurrency by the pods themselves.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from typing import Any

import _stack_bench as sb

from mistake_testbed.stack import percentile

TARGET = 1.3
NAME = "e2e_scale"


def run_once(args: argparse.Namespace, run: int) -> dict[str, Any]:
    batch = args.batch_size or math.ceil(args.records / (2 * args.jobs))
    settings = sb.operator_settings(
        args.jobs, args.concurrency, batch, args.max_batch_wait, inflight=max(args.records, args.jobs * batch)
    )
    info = sb.machine()
    sb.print_machine(info)
    with sb.bench_stack(args.latency, settings, namespace=f"scale-{run}") as stack:
        assert stack.llm is not None
        cpu0 = sb.CpuSnapshot.take(stack)
        sb.submit(stack, args.records, threads=args.threads)
        created = time.time()
        sb.wait_final(stack, args.records, timeout=args.timeout)
        stack.wait_settled(120)  # every Job finished, so every pod's CPU has been reaped
        cpu = sb.CpuSnapshot.take(stack) - cpu0
        timeline = sb.Timeline.of(stack)
        status = sb.fail_if_lost(stack, args.records)
        peak = stack.llm.peak_concurrency
        llm_calls = len(stack.llm.requests)
        jobs = len(stack.jobs())
        pods = sb.pods_of(stack)
    total = timeline.last_final - timeline.first_request
    arrival = created - timeline.first_request
    starts = timeline.job_starts()
    first_start = starts[0][1]
    ideal = args.records / (args.jobs * args.concurrency) * args.latency + first_start
    bound, bound_what = sb.cpu_bound(cpu, info["cores"] or 1)
    lat = timeline.latencies()
    worker_ms = cpu.children / args.records * 1000
    worker_bound = cpu.children / (info["cores"] or 1)
    print(
        f"records {args.records} ({status}), LLM latency {args.latency:g} s, {args.jobs} Jobs x {args.concurrency} "
        f"= {args.jobs * args.concurrency} LLM calls at most, batch {batch}; Jobs {jobs}, pods {pods}"
    )
    print(f"rows created in {arrival:.1f} s ({args.records / arrival:.0f}/s)")
    print(
        f"Job start: first {first_start:.2f} s, median {statistics.median(s for _, s in starts):.2f} s "
        f"over {len(starts)} Jobs"
    )
    print(f"total {total:.1f} s (first record created -> last analysis final)")
    print(
        f"ideal bound {ideal:.1f} s = {args.records}/{args.jobs * args.concurrency} x {args.latency:g} s "
        f"+ {first_start:.2f} s"
    )
    print(
        f"ratio total / ideal = {total / ideal:.2f} "
        f"(target <= {TARGET}: {'met' if total / ideal <= TARGET else 'NOT met'})"
    )
    print(
        f"CPU used {cpu.total:.1f} s: stand-ins' process {cpu.stack_process:.1f} s, worker pods {cpu.children:.1f} s "
        f"({worker_ms:.0f} ms/record), operator {cpu.operator:.1f} s"
    )
    print(
        f"worker CPU alone: {worker_ms:.0f} ms/record x {args.records} / {info['cores']} cores = "
        f"{worker_bound:.1f} s (ratio total / that {total / worker_bound:.2f})"
    )
    print(f"CPU bound {bound:.1f} s ({bound_what}); ratio total / CPU bound = {total / bound:.2f}")
    print(f"other processes on the machine used {cpu.others:.1f} s CPU meanwhile (0 when quiet)")
    print(f"end-to-end latency p50 {percentile(lat, 50):.1f} s, p95 {percentile(lat, 95):.1f} s")
    print(f"throughput {args.records / total:.1f} analyses/s; LLM calls {llm_calls}, peak concurrency {peak}")
    return {
        "machine": info,
        "records": args.records,
        "latency_s": args.latency,
        "jobs": args.jobs,
        "concurrency": args.concurrency,
        "batch_size": batch,
        "status": status,
        "jobs_created": jobs,
        "pods_created": pods,
        "rows_created_s": round(arrival, 2),
        "job_start_first_s": round(first_start, 3),
        "job_start_median_s": round(statistics.median(s for _, s in starts), 3),
        "total_s": round(total, 2),
        "ideal_s": round(ideal, 2),
        "ratio_ideal": round(total / ideal, 3),
        "cpu": cpu.as_dict(),
        "worker_cpu_ms_per_record": round(worker_ms, 1),
        "worker_cpu_bound_s": round(worker_bound, 2),
        "cpu_bound_s": round(bound, 2),
        "cpu_bound_is": bound_what,
        "ratio_cpu_bound": round(total / bound, 3),
        "p50_s": round(percentile(lat, 50), 2),
        "p95_s": round(percentile(lat, 95), 2),
        "throughput_per_s": round(args.records / total, 2),
        "llm_calls": llm_calls,
        "llm_peak_concurrency": peak,
        "series": {k: [round(v, 2) for v in vs] for k, vs in timeline.series().items()},
    }


def plot(result: dict[str, Any], name: str) -> None:
    plt = sb.pyplot()
    series = result["series"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 4.2), sharex=True)
    top.bar(series["t"], series["finished_per_s"], width=1.0, align="edge", color="tab:blue")
    ideal_rate = result["jobs"] * result["concurrency"] / result["latency_s"]
    top.axhline(ideal_rate, color="tab:green", linestyle="--", linewidth=1, label=f"ideal {ideal_rate:g}/s")
    top.set_ylabel("analyses finished / s")
    top.legend(loc="upper right")
    top.set_title(
        f"{result['records']} records, {result['latency_s']:g} s LLM, {result['jobs']} Jobs x "
        f"{result['concurrency']}: total {result['total_s']:.0f} s, ideal {result['ideal_s']:.0f} s, "
        f"CPU bound {result['cpu_bound_s']:.0f} s"
    )
    bottom.plot(series["t"], series["waiting"], label="waiting (not started)", color="tab:orange")
    bottom.plot(series["t"], series["running"], label="in a worker", color="tab:purple")
    bottom.set_ylabel("analyses")
    bottom.set_xlabel("seconds since the first record was created")
    bottom.legend(loc="upper right")
    sb.save_plot(fig, name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=1.0, help="simulated LLM latency, seconds")
    parser.add_argument("--jobs", type=int, default=5, help="maxActiveJobs")
    parser.add_argument("--concurrency", type=int, default=20, help="perPodConcurrency")
    parser.add_argument("--batch-size", type=int, default=0, help="default: records / (2 x jobs)")
    parser.add_argument("--max-batch-wait", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=8, help="threads creating record rows")
    parser.add_argument("--runs", type=int, default=1, help="repeat and print medians (one stack each)")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    results = [run_once(args, i) for i in range(args.runs)]
    if len(results) > 1:
        keys = ("total_s", "ratio_ideal", "ratio_cpu_bound", "p50_s", "p95_s", "job_start_first_s")
        print(
            "median of",
            len(results),
            "runs:",
            ", ".join(f"{k} {statistics.median(r[k] for r in results)}" for k in keys),
        )
    best = sorted(results, key=lambda r: r["total_s"])[len(results) // 2]  # the median run is the one plotted
    summary = {
        "runs": results,
        "median": {k: statistics.median(r[k] for r in results) for k in ("total_s", "ratio_ideal", "ratio_cpu_bound")},
    }
    # The workload keeps the plain name; other sizes and latencies get their own files.
    name = NAME if (args.records, args.latency) == (1000, 1.0) else f"{NAME}_{args.records}r_{args.latency:g}s"
    sb.write_json(name, summary)
    plot(best, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
