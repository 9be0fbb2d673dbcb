"""Worker throughput against LLM concurrency, drawn next to the ideal bound concurrency / latency.

Run: .venv/bin/python bench/worker_plot.py [--concurrency 10 25 50] [--runs 3] [--baseline DIR] [--out PNG]

Each point is the median of `--runs` batches of 8 x concurrency records through `bench/worker.py`'s throughput
part (stand-ins in their own processes). `--baseline DIR` also runs the worker package found under DIR (e.g. an
older commit extracted with `git archive <commit> job_image | tar -x -C DIR`), in the same session, so both
lines share the machine's conditions.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import matplotlib.pyplot as plt
from worker import ROOT, Run, throughput


def series(job_image: Path, levels: list[int], runs: int, latency: float) -> list[Run]:
    out = []
    for concurrency in levels:
        results = [throughput(8 * concurrency, concurrency, latency, job_image=job_image) for _ in range(runs)]
        out.append(
            Run(
                ratio=statistics.median(r.ratio for r in results),
                records_per_s=statistics.median(r.records_per_s for r in results),
                cpu_ms=statistics.median(r.cpu_ms for r in results),
                rss_mib=statistics.median(r.rss_mib for r in results),
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--concurrency", type=int, nargs="+", default=[10, 25, 50])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--baseline", type=Path, default=None, help="parent directory of an older mistake_worker")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "worker-throughput.png")
    args = parser.parse_args()
    levels = sorted(args.concurrency)
    lines = {"worker": series(ROOT / "job_image", levels, args.runs, args.latency)}
    if args.baseline is not None:
        lines["baseline"] = series(args.baseline, levels, args.runs, args.latency)

    figure, axes = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    axes.plot(levels, [c / args.latency for c in levels], "k--", label="ideal bound (concurrency / latency)")
    axes.plot(levels, [0.9 * c / args.latency for c in levels], "k:", label="target (0.9 x bound)")
    for name, points in lines.items():
        axes.plot(levels, [p.records_per_s for p in points], "o-", label=name)
        for level, point in zip(levels, points, strict=True):
            print(
                f"{name:8s} concurrency {level:3d}: {point.records_per_s:6.1f} records/s, ratio {point.ratio:.3f}, "
                f"CPU {point.cpu_ms:.1f} ms/record, peak RSS {point.rss_mib:.0f} MiB"
            )
    axes.set_xlabel("LLM concurrency (records = 8 x concurrency)")
    axes.set_ylabel("records/s (median)")
    axes.set_title(f"One worker process, {args.latency:g} s simulated LLM latency, 2 cores")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
