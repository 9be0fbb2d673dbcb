"""Our batching against one Job per record (the KEDA ScaledJob pattern, batchSize 1), same stack, same workload.

    ./dev bench batching_vs_per_record [--records 200] [--latency 1.0] [--inflight 20]

One stack (dev cluster, stand-ins, real trigger, operator and worker pods), redeployed into a fresh namespace
with fresh Appwrite data for each mode; both modes make at most `--inflight` LLM calls at once:

- batched (ours): batches of 20, `maxActiveJobs` = inflight / 10, 10 LLM calls per pod (20 records in its lanes);
- per record (ScaledJob): `batchSize` 1, one analysis per Job and pod, `maxActiveJobs` = inflight (KEDA's
  `maxReplicaCount`); Jobs are created as soon as a record is queued (KEDA would add its polling interval).

Printed per mode and as ratios (per record / batched): Jobs and pods created, total time (first record created
-> last analysis final), Kubernetes API requests per record as the dev cluster counted them (by client: operator,
worker pods, trigger), object writes per record (every create, update and delete in the store, including the
Job controller's own pod and Job writes, which a real cluster's controllers and kubelets would also make), and
the CPU the whole run used.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Any

import _stack_bench as sb

NAME = "batching_vs_per_record"
BATCH = 20
PER_POD = 10


def modes(inflight: int) -> dict[str, dict[str, Any]]:
    jobs = max(inflight // PER_POD, 1)
    return {
        # A pod holds up to twice its LLM concurrency (its lanes), so the budget of held analyses is one batch per
        # Job; LLM calls in flight stay at jobs x PER_POD = inflight, as in the other mode.
        "batched": sb.operator_settings(jobs, PER_POD, BATCH, 0.5, inflight=jobs * BATCH),
        "per_record": sb.operator_settings(inflight, 1, 1, 0.05, inflight=inflight),  # a batch of one is full at once
    }


def measure(stack: Any, mode: str, settings: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    stack.redeploy(f"bench-{mode.replace('_', '-')}-{int(time.time()) % 100000}", operator=settings)
    counter = sb.ApiCounter(stack)
    cpu0 = sb.CpuSnapshot.take(stack)
    try:
        sb.submit(stack, args.records, threads=args.threads)
        sb.wait_final(stack, args.records, timeout=args.timeout)
        stack.wait_settled(120)
        api = counter.snapshot()
    finally:
        counter.close()
    cpu = sb.CpuSnapshot.take(stack) - cpu0
    timeline = sb.Timeline.of(stack)
    status = sb.fail_if_lost(stack, args.records)
    total = timeline.last_final - timeline.first_request
    n = args.records
    starts = [s for _, s in timeline.job_starts()]
    result = {
        "settings": {k: settings[k] for k in ("max_active_jobs", "per_pod_concurrency", "batch_size")},
        "status": status,
        "jobs": len(stack.jobs()),
        "pods": sb.pods_of(stack),
        "total_s": round(total, 2),
        "throughput_per_s": round(n / total, 2),
        "api_requests": api["requests"],
        "api_requests_per_record": round(api["requests"] / n, 2),
        "api_by_client_per_record": {k: round(v / n, 2) for k, v in sorted(api["by_client"].items())},
        "api_by_client_verb": api["by_client_verb"],
        "object_writes_per_record": round(api["object_writes"] / n, 2),
        "job_start_median_s": round(statistics.median(starts), 2),
        "cpu": cpu.as_dict(),
        "cpu_ms_per_record": round(cpu.total / n * 1000, 1),
    }
    print(
        f"{mode:>10}: {result['jobs']} Jobs, {result['pods']} pods, total {total:.1f} s ({n / total:.1f}/s), "
        f"API requests {result['api_requests_per_record']}/record {result['api_by_client_per_record']}, "
        f"object writes {result['object_writes_per_record']}/record, CPU {result['cpu_ms_per_record']:.0f} ms/record "
        f"(other processes {cpu.others:.1f} s), "
        f"Job start median {result['job_start_median_s']} s; {status}"
    )
    return result


def plot(data: dict[str, Any]) -> None:
    plt = sb.pyplot()
    metrics = [
        ("pods", "pods created"),
        ("total_s", "total time, s"),
        ("api_requests_per_record", "API requests / record"),
        ("cpu_ms_per_record", "CPU ms / record"),
    ]
    fig, axes = plt.subplots(1, len(metrics), figsize=(7.5, 2.4))
    for ax, (key, label) in zip(axes, metrics, strict=True):
        values = [data["batched"][key], data["per_record"][key]]
        ax.bar(["batched", "per record"], values, color=["tab:blue", "tab:red"])
        ax.set_title(f"{label}\n(x{values[1] / values[0]:.1f})" if values[0] else label)
    fig.suptitle(f"{data['records']} records, {data['latency_s']:g} s LLM, at most {data['inflight']} in flight")
    sb.save_plot(fig, NAME)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0, help="simulated LLM latency, seconds")
    parser.add_argument("--inflight", type=int, default=20, help="LLM calls in flight at most, both modes")
    parser.add_argument("--threads", type=int, default=8, help="threads creating record rows")
    parser.add_argument("--timeout", type=float, default=600.0, help="per mode")
    args = parser.parse_args(argv)
    info = sb.machine()
    sb.print_machine(info)
    data: dict[str, Any] = {
        "machine": info,
        "records": args.records,
        "latency_s": args.latency,
        "inflight": args.inflight,
    }
    settings = modes(args.inflight)
    with sb.bench_stack(args.latency, settings["batched"], namespace="bench-boot") as stack:
        for mode, mode_settings in settings.items():
            data[mode] = measure(stack, mode, mode_settings, args)
    ours, theirs = data["batched"], data["per_record"]
    ratios = {
        "jobs": theirs["jobs"] / ours["jobs"],
        "pods": theirs["pods"] / ours["pods"],
        "total_time": theirs["total_s"] / ours["total_s"],
        "api_requests_per_record": theirs["api_requests_per_record"] / ours["api_requests_per_record"],
        "object_writes_per_record": theirs["object_writes_per_record"] / ours["object_writes_per_record"],
        "cpu_per_record": theirs["cpu_ms_per_record"] / ours["cpu_ms_per_record"],
    }
    data["ratios_per_record_over_batched"] = {k: round(v, 2) for k, v in ratios.items()}
    print("ratios, one Job per record / batched: " + ", ".join(f"{k} x{v:.2f}" for k, v in ratios.items()))
    sb.write_json(NAME, data)
    plot(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
