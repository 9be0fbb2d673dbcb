"""One worker process analysing a batch, and what image preparation saves in LLM input tokens.

Run: .venv/bin/python bench/worker.py [--records 400] [--concurrency 50] [--latency 0.5] [--runs 1]

Part 1 (throughput): the Appwrite test server, the LLM test server and the dev cluster each run in a process of
their own (so none of them shares an interpreter lock with another or with the worker); the LLM answers every
request after a fixed simulated latency. N records (each with one small page photo) and their Scheduled
MistakeAnalysis members are seeded, then `python -m mistake_worker` runs the whole batch as a child process with
`MISTAKE_WORKER_CONCURRENCY=C`. Printed: achieved records/s over the ideal bound C / latency (target >= 0.9),
the worker's CPU milliseconds per record (whole process, start-up included) and peak RSS, each stand-in's CPU
per record, and the Appwrite requests per record by route.

Part 2 (tokens): a 4032x3024 phone photo before and after `prepare_image`, in image input tokens under the
pixel-proportional accounting of the production provider class (Doubao/Qwen-VL style, one token per 28x28
patch; target after/before <= 0.3), with OpenAI's tile formula printed alongside for comparison.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import multiprocessing
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
for sub in ("api", "job_image", "tests/harness"):
    sys.path.insert(0, str(ROOT / sub))

from mistake_api import GROUP, PLURAL, analysis_from_record, phase_patch  # noqa: E402
from mistake_api.constants import DEFAULT_BUCKET_ID  # noqa: E402
from mistake_api.states import Phase  # noqa: E402
from mistake_testbed.appwrite.seed import seed_main, seed_record  # noqa: E402
from mistake_testbed.appwrite.server import AppwriteTestServer  # noqa: E402
from mistake_testbed.kube import DevCluster  # noqa: E402
from mistake_testbed.llm import FaultRule, LLMTestServer, image_tokens  # noqa: E402
from mistake_testbed.samples import SampleSet  # noqa: E402
from mistake_worker.images import ImageLimits, prepare_image  # noqa: E402

CR = (GROUP, PLURAL)
TARGET_THROUGHPUT = 0.9
TARGET_TOKENS = 0.3
NAMESPACE = "bench"
JOB = "mab-bench"
_ID_IN_PATH = re.compile(r"/(rows|files)/[^/]+")


def patch_tokens(width: int, height: int) -> int:
    """Pixel-proportional image tokens: one per 28x28 patch (Qwen-VL; Doubao vision is of the same kind)."""
    return math.ceil(width / 28) * math.ceil(height / 28)


def small_page(i: int) -> bytes:
    image = Image.new("RGB", (640, 480), (245, 245, 240))
    image.paste((20, 20, 20), (40 + i % 50, 40, 400, 60))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the stand-ins, one process each ---------------------------------------------------------------------------
# Each host builds its server, answers a few commands over a pipe, and reports the CPU it spent between the
# `mark` before the worker starts and the `report` after it exits.


class _AppwriteHost:
    def __init__(self) -> None:
        self.server = AppwriteTestServer(seed=1).start()
        seed_main(self.server)

    def seed(self, records: int) -> tuple[dict[str, str], list[dict[str, Any]]]:
        rows = []
        for i in range(records):
            file_id = f"page{i}"
            self.server.put_file(DEFAULT_BUCKET_ID, small_page(i), filename=f"{file_id}.jpg", file_id=file_id)
            rows.append(seed_record(self.server, [file_id], record_id=f"rec{i}"))
        return self.server.env(), rows

    def report(self) -> dict[str, Any]:
        routes: Counter[str] = Counter()
        for r in self.server.requests:
            path = _ID_IN_PATH.sub(r"/\1/ID", r.path)
            routes[f"{r.method} {path} {r.status}"] += 1
        return {"routes": dict(routes)}

    def close(self) -> None:
        self.server.stop()


class _LLMHost:
    def __init__(self, latency: float) -> None:
        self.server = LLMTestServer(latency=FaultRule(kind="latency", delay=latency)).start()

    def info(self) -> dict[str, str]:
        return {
            "OPENAI_BASE_URL": self.server.base_url,
            "OPENAI_API_KEY": self.server.api_key,
            "LLM_MODEL": self.server.model,
        }

    def report(self) -> dict[str, Any]:
        arrivals = [r.arrival_wall for r in self.server.requests]
        return {"peak": self.server.peak_concurrency, "first": min(arrivals, default=None), "count": len(arrivals)}

    def close(self) -> None:
        self.server.stop()


class _ClusterHost:
    def __init__(self) -> None:
        workdir = Path(tempfile.mkdtemp(prefix="bench-worker-"))
        self.cluster = DevCluster(workdir=workdir, preload=[ROOT / "charts" / "mistake-analyzer" / "crds"]).start()
        self.cluster.create_namespace(NAMESPACE)

    def seed(self, rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
        members = []
        cluster = self.cluster
        for record in rows:
            body = analysis_from_record(
                record, database_id="main", collection_id="mistake_records", namespace=NAMESPACE
            )
            name = str(cluster.create(CR, NAMESPACE, body)["metadata"]["name"])
            status = phase_patch({}, Phase.SCHEDULED, job_name=JOB, attempts=1)
            cluster.call(partial(cluster.emu.patch_status, CR, NAMESPACE, name, status))
            members.append(name)
        return str(cluster.kubeconfig), members

    def report(self, members: list[str]) -> dict[str, Any]:
        phases = Counter((self.cluster.get(CR, NAMESPACE, m) or {}).get("status", {}).get("phase") for m in members)
        return {"phases": dict(phases)}

    def close(self) -> None:
        self.cluster.stop()


_HOSTS: dict[str, Any] = {"appwrite": _AppwriteHost, "llm": _LLMHost, "cluster": _ClusterHost}


def _serve(kind: str, conn: Connection, args: tuple[Any, ...]) -> None:
    host = _HOSTS[kind](*args)
    conn.send("ready")
    mark = _cpu_seconds()
    while True:
        command, call_args = conn.recv()
        if command == "mark":
            mark = _cpu_seconds()
            conn.send(None)
        elif command == "report":
            conn.send({**host.report(*call_args), "cpu": _cpu_seconds() - mark})
        elif command == "close":
            host.close()
            conn.send(None)
            return
        else:
            conn.send(getattr(host, command)(*call_args))


class Standin:
    def __init__(self, kind: str, *args: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(kind, child, args), daemon=True)
        self._process.start()
        if self._conn.recv() != "ready":
            raise RuntimeError(f"{kind} stand-in did not start")

    def __call__(self, command: str, *args: Any) -> Any:
        self._conn.send((command, args))
        return self._conn.recv()

    def close(self) -> None:
        self("close")
        self._process.join(10)


@dataclass
class Run:
    ratio: float
    records_per_s: float
    cpu_ms: float
    rss_mib: float


def throughput(
    records: int,
    concurrency: int,
    latency: float,
    extra_env: dict[str, str] | None = None,
    job_image: Path = ROOT / "job_image",
) -> Run:
    """One batch through one worker process; `job_image` may point at another checkout's worker to compare."""
    aw, llm, cluster = Standin("appwrite"), Standin("llm", latency), Standin("cluster")
    try:
        aw_env, rows = aw("seed", records)
        kubeconfig, members = cluster("seed", rows)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "MISTAKE_", "OPENAI_", "APPWRITE_"))}
        env.update(aw_env)
        env.update(llm("info"))
        env.update(
            KUBECONFIG=kubeconfig,
            MISTAKE_BATCH_MEMBERS=json.dumps(members),
            MISTAKE_NAMESPACE=NAMESPACE,
            MISTAKE_JOB_NAME=JOB,
            MISTAKE_WORKER_CONCURRENCY=str(concurrency),
            MISTAKE_WORKER_LOG_LEVEL="WARNING",
            PYTHONPATH=os.pathsep.join((str(job_image), str(ROOT / "api"))),
        )
        env.update(extra_env or {})
        for standin in (aw, llm, cluster):
            standin("mark")
        started, started_wall = time.monotonic(), time.time()
        child = subprocess.Popen([sys.executable, "-m", "mistake_worker"], env=env)
        # wait4: this worker's own CPU and peak RSS, not those of earlier runs or of the stand-ins.
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        ended, ended_wall = time.monotonic(), time.time()
        aw_report, llm_report = aw("report"), llm("report")
        cluster_report = cluster("report", members)
    finally:
        for standin in (aw, llm, cluster):
            standin.close()
    done = cluster_report["phases"].get("Succeeded", 0)
    ideal = concurrency / latency
    steady = ended_wall - (llm_report["first"] or started_wall)
    print(f"records={records} concurrency={concurrency} latency={latency}s exit={child.returncode} succeeded={done}")
    print(f"process wall {ended - started:.2f}s (incl. interpreter start), first LLM request to exit {steady:.2f}s")
    print(f"peak LLM concurrency seen by the server: {llm_report['peak']}")
    achieved = done / steady
    print(
        f"achieved {achieved:.1f} records/s; ideal bound {ideal:.1f}/s; ratio {achieved / ideal:.3f} "
        f"(target >= {TARGET_THROUGHPUT}) [whole process: {done / (ended - started) / ideal:.3f}]"
    )
    n = max(records, 1)
    cpu = (usage.ru_utime + usage.ru_stime) * 1000 / n
    rss = usage.ru_maxrss / 1024
    user, system = usage.ru_utime * 1000 / n, usage.ru_stime * 1000 / n
    print(f"worker CPU {cpu:.1f} ms/record (user {user:.1f}, system {system:.1f}); peak RSS {rss:.0f} MiB")
    print(
        "stand-ins CPU ms/record: "
        f"appwrite {aw_report['cpu'] * 1000 / n:.1f}, llm {llm_report['cpu'] * 1000 / n:.1f}, "
        f"cluster {cluster_report['cpu'] * 1000 / n:.1f}"
    )
    routes = aw_report["routes"]
    print(f"appwrite requests per record: {sum(routes.values()) / n:.2f}")
    for route, count in sorted(routes.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {count / n:5.2f}  {route}")
    return Run(ratio=achieved / ideal, records_per_s=achieved, cpu_ms=cpu, rss_mib=rss)


def tokens() -> None:
    sample = SampleSet.default().photo("physics-choice-phone")
    raw = sample.read()
    started = time.process_time()
    prepared = prepare_image(raw, ImageLimits())
    cpu_ms = (time.process_time() - started) * 1000
    w, h = prepared.source_width, prepared.source_height
    before, after = patch_tokens(w, h), patch_tokens(prepared.width, prepared.height)
    print(
        f"photo {w}x{h} {len(raw)} B -> {prepared.width}x{prepared.height} {len(prepared.data)} B ({cpu_ms:.0f} ms CPU)"
    )
    print(
        f"image tokens (28px patches): before {before}, after {after}, ratio {after / before:.3f} "
        f"(target <= {TARGET_TOKENS})"
    )
    tb, ta = image_tokens(w, h), image_tokens(prepared.width, prepared.height)
    print(f"image tokens (OpenAI tiles, provider downscales itself): before {tb}, after {ta}, ratio {ta / tb:.3f}")
    print(f"request bytes (base64): before {math.ceil(len(raw) / 3) * 4}, after {len(prepared.data_url())}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--runs", type=int, default=1, help="repeat the throughput part and print the medians")
    parser.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE", help="e.g. a worker knob")
    parser.add_argument("--job-image", type=Path, default=ROOT / "job_image", help="the worker package's parent")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.worker_env)
    tokens()
    runs = [throughput(args.records, args.concurrency, args.latency, extra, args.job_image) for _ in range(args.runs)]
    if len(runs) > 1:
        print(
            f"median of {len(runs)} runs: ratio {statistics.median(r.ratio for r in runs):.3f}, "
            f"{statistics.median(r.records_per_s for r in runs):.1f} records/s, "
            f"worker CPU {statistics.median(r.cpu_ms for r in runs):.1f} ms/record, "
            f"peak RSS {statistics.median(r.rss_mib for r in runs):.0f} MiB "
            f"(ratios {', '.join(f'{r.ratio:.3f}' for r in runs)})"
        )


if __name__ == "__main__":
    main()
