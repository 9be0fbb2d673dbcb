"""Shared by the whole-stack benchmarks (e2e_scale, batching_vs_per_record, job_scaling).

They run the real system on loopback through `mistake_testbed.stack.Stack` (dev cluster, Appwrite and LLM
stand-ins, TLS proxy, real trigger, real operator, real worker pods) and measure it from the outside:

- records are written the way the app writes them: photos uploaded first (not timed), then the rows created from
  a few threads at once, each create firing the trigger through the stand-in's event delivery;
- every time comes from the analyses' own status timestamps (`spec.revision` = the record's `$updatedAt`,
  `scheduledAt`, `startedAt`, `finishedAt`), so polling never adds to a measured duration;
- CPU is read per process group: this process (every stand-in, the proxy and the trigger host share it), the
  operator (from /proc), and the worker pods (reaped children);
- Kubernetes API requests are counted by the dev cluster as they arrive, by client and verb, and object writes
  by the store's change events (which also cover the in-process Job controller's pod and Job writes).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from mistake_api.constants import DEFAULT_BUCKET_ID, DEFAULT_COLLECTION_ID, DEFAULT_DATABASE_ID
from mistake_testbed.stack import BAD_KINDS, PHOTO_KINDS, RecordInfo, Stack, StackConfig

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# Production sweeper timing: on a healthy run it never has anything to recover, and a 5 s sweep of 1,000
# records would only add Appwrite load that a real deployment does not have.
SWEEPER = {"interval_seconds": 60.0, "grace_seconds": 120.0}
QUIET_WORKER = {"MISTAKE_WORKER_LOG_LEVEL": "WARNING"}


def machine() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": [round(load1, 2), round(load5, 2)],
        "network": "loopback",
    }


def print_machine(info: dict[str, Any]) -> None:
    print(
        f"machine: {info['cores']} cores, Python {info['python']}, loopback; "
        f"load average before the run {info['load_before'][0]} (1 min), {info['load_before'][1]} (5 min)"
    )


@contextlib.contextmanager
def bench_stack(latency: float, operator: dict[str, Any], namespace: str = "bench") -> Iterator[Stack]:
    """The stack, started; on exit every process it started is stopped and its run folder (logs) removed,
    unless MISTAKE_BENCH_KEEP is set (then the folder's path is printed)."""
    run_dir = Path(tempfile.mkdtemp(prefix="mistake-bench-"))
    config = StackConfig(
        run_dir=run_dir,
        namespace=namespace,
        operator={"log_level": "WARNING", "sweeper": dict(SWEEPER), **operator},
        worker_env=dict(QUIET_WORKER),
        llm_latency=(latency, latency),
        use_environment=False,  # stand-ins only, whatever the shell exports
    )
    try:
        with Stack(config) as stack:
            yield stack
    finally:
        if os.environ.get("MISTAKE_BENCH_KEEP"):
            print(f"run folder kept: {run_dir}")
        else:
            shutil.rmtree(run_dir, ignore_errors=True)


def operator_settings(
    jobs: int, concurrency: int, batch_size: int, wait: float, inflight: int | None = None
) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "max_active_jobs": jobs,
        "per_pod_concurrency": concurrency,
        "batch_size": batch_size,
        "max_batch_wait_seconds": wait,
        "log_level": "WARNING",
        "sweeper": dict(SWEEPER),
    }
    if inflight is not None:  # else the operator's default, jobs x concurrency
        settings["max_inflight_requests"] = inflight
    return settings


# ---------------------------------------------------------------------------------------------------- records
def submit(stack: Stack, count: int, kinds: Sequence[str] = PHOTO_KINDS, threads: int = 8) -> float:
    """Upload every record's photos, then create all rows from `threads` threads; returns when the first began.

    The rows are what fires the trigger (as in the app, whose upload precedes the row), so only they are timed.
    """
    from appwrite.input_file import InputFile
    from appwrite.services.storage import Storage
    from appwrite.services.tables_db import TablesDB

    assert stack.appwrite is not None
    tag = uuid.uuid4().hex[:6]
    pending: list[tuple[RecordInfo, dict[str, Any]]] = []
    blobs: dict[str, tuple[bytes, str]] = {}
    storage = Storage(stack.appwrite.client())
    for i in range(count):
        kind = kinds[i % len(kinds)]
        sample = stack.samples.photo(kind) if kind in PHOTO_KINDS else None
        user_id = stack.config.users[i % len(stack.config.users)][0]
        image_ids = []
        for page, path in enumerate(sample.paths if sample else ()):
            if str(path) not in blobs:
                blobs[str(path)] = (path.read_bytes(), path.name)
            data, name = blobs[str(path)]
            file_id = f"f{tag}{i:05d}p{page}"
            storage.create_file(DEFAULT_BUCKET_ID, file_id, InputFile.from_bytes(data, name))
            image_ids.append(file_id)
        info = RecordInfo(
            id=f"r{tag}{i:05d}",
            kind=kind,
            user_id=user_id,
            image_ids=image_ids,
            expected_reason=BAD_KINDS.get(kind),
            expected_subject=sample.expected.subject if sample is not None and sample.expected else None,
            created_wall=0.0,
        )
        pending.append((info, {"userId": user_id, "originalImageIds": image_ids, "analysisStatus": "pending"}))

    local = threading.local()

    def create(item: tuple[RecordInfo, dict[str, Any]]) -> None:
        info, data = item
        if not hasattr(local, "rows"):
            assert stack.appwrite is not None
            local.rows = TablesDB(stack.appwrite.client())
        info.created_wall = time.time()
        stack.records[info.id] = info
        local.rows.create_row(DEFAULT_DATABASE_ID, DEFAULT_COLLECTION_ID, info.id, data)

    first = time.time()
    with ThreadPoolExecutor(threads, thread_name_prefix="bench-records") as pool:
        list(pool.map(create, pending))
    return first


def wait_final(stack: Stack, count: int, timeout: float) -> None:
    """Until `count` analyses are final; a cheap poll (the measured times come from the analyses themselves)."""
    deadline = time.monotonic() + timeout
    while True:
        phases = Counter(str((o.get("status") or {}).get("phase")) for o in stack.analyses())
        final = phases["Succeeded"] + phases["Failed"] + phases["Cancelled"]
        if final >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{final} of {count} analyses final after {timeout:g} s: {dict(phases)}")
        time.sleep(1.0)  # polling: the store has no cheap change notification for a thread outside its loop


# ---------------------------------------------------------------------------------------------------- timings
def ts(text: Any) -> float | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment.timestamp()


@dataclass
class Timeline:
    """Per analysis: (requested, scheduled, started, finished, job, phase), wall-clock seconds."""

    rows: list[tuple[float, float | None, float | None, float | None, str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, stack: Stack) -> Timeline:
        out = cls()
        for obj in stack.analyses():
            status = obj.get("status") or {}
            requested = ts(obj["spec"].get("revision"))
            assert requested is not None
            out.rows.append(
                (
                    requested,
                    ts(status.get("scheduledAt")),
                    ts(status.get("startedAt")),
                    ts(status.get("finishedAt")),
                    str(status.get("jobName") or ""),
                    str(status.get("phase") or "New"),
                )
            )
        return out

    @property
    def first_request(self) -> float:
        return min(r[0] for r in self.rows)

    @property
    def last_final(self) -> float:
        return max(r[3] for r in self.rows if r[3] is not None)

    def latencies(self) -> list[float]:
        return [r[3] - r[0] for r in self.rows if r[3] is not None and r[5] in ("Succeeded", "Failed")]

    def job_starts(self) -> list[tuple[float, float]]:
        """(when the Job was created, seconds until its pod claimed a member), first Job first.

        Members are marked Scheduled just before their Job is created, so the start is the last mark to the
        first claim: Job create, pod create, process start and imports, the worker's first API read.
        """
        marks: dict[str, float] = {}
        claims: dict[str, float] = {}
        for _, scheduled, started, _, job, _ in self.rows:
            if job and scheduled is not None:
                marks[job] = max(marks.get(job, 0.0), scheduled)
            if job and started is not None:
                claims[job] = min(claims.get(job, float("inf")), started)
        return sorted((marks[j], claims[j] - marks[j]) for j in marks if j in claims)

    def series(self, step: float = 1.0) -> dict[str, list[float]]:
        """Per `step` from the first request: finished per second, waiting (not yet started), running."""
        t0 = self.first_request
        n = int((self.last_final - t0) / step) + 2
        times = [i * step for i in range(n)]
        done = [0.0] * n
        for r in self.rows:
            if r[3] is not None:
                done[min(int((r[3] - t0) / step), n - 1)] += 1 / step
        waiting: list[float] = []
        running: list[float] = []
        for t in times:
            at = t0 + t
            waiting.append(sum(1 for r in self.rows if r[0] <= at and (r[2] is None or r[2] > at)))
            running.append(sum(1 for r in self.rows if r[2] is not None and r[2] <= at and (r[3] is None or r[3] > at)))
        return {"t": times, "finished_per_s": done, "waiting": waiting, "running": running}


# ---------------------------------------------------------------------------------------------------- CPU
def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSnapshot:
    stack_process: float  # this process: stand-ins, proxy, trigger host, Job controller, the bench itself
    children: float  # reaped children: the worker pods (and any kubectl run meanwhile)
    operator: float
    machine: float = 0.0  # the whole machine, to tell how much CPU other processes took meanwhile

    @classmethod
    def take(cls, stack: Stack) -> CpuSnapshot:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        op = stack.operator.process.pid if stack.operator and stack.operator.process else 0
        ours = (me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime, _proc_cpu(op) if op else 0.0)
        return cls(*ours, machine=machine_busy())

    def __sub__(self, other: CpuSnapshot) -> CpuSnapshot:
        return CpuSnapshot(
            self.stack_process - other.stack_process,
            self.children - other.children,
            self.operator - other.operator,
            self.machine - other.machine,
        )

    @property
    def others(self) -> float:
        """CPU other processes on the machine used meanwhile (0 on a quiet machine)."""
        return max(self.machine - self.total, 0.0)

    @property
    def total(self) -> float:
        return self.stack_process + self.children + self.operator

    def as_dict(self) -> dict[str, float]:
        return {
            "stack_process_s": round(self.stack_process, 2),
            "worker_pods_s": round(self.children, 2),
            "operator_s": round(self.operator, 2),
            "total_s": round(self.total, 2),
            "other_processes_s": round(self.others, 2),
        }


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy since boot (every process, ours or not), from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_bound(cpu: CpuSnapshot, cores: int) -> tuple[float, str]:
    """The shortest wall time this much CPU allows: all of it spread over the cores, or the busiest single
    process on one core (the stand-ins share one interpreter lock), whichever is longer."""
    spread = cpu.total / cores
    if cpu.stack_process >= spread:
        return cpu.stack_process, "the stand-ins' process on one core"
    return spread, f"all CPU over {cores} cores"


# ---------------------------------------------------------------------------------------------------- API requests
def client_of(agent: str) -> str:
    agent = agent.lower()
    if "operator" in agent or agent.startswith("kopf") or "aiohttp" in agent:
        return "operator"  # its own writes name it; kopf's watches go out as aiohttp
    if "trigger" in agent or agent.startswith("python-requests"):
        return "trigger"
    if "worker" in agent or agent.startswith("openapi-generator"):
        return "worker"  # the official client's default
    if agent.startswith("kubectl"):
        return "kubectl"
    return agent.split("/")[0] or "other"


class ApiCounter:
    """HTTP requests the dev cluster answers, by client and verb, plus object writes of its store."""

    def __init__(self, stack: Stack) -> None:
        assert stack.cluster is not None
        self.cluster = stack.cluster
        self.requests: Counter[tuple[str, str]] = Counter()

        def listen(request: Any) -> None:
            headers = request.headers or {}
            agent = str(headers.get("User-Agent") or headers.get("user-agent") or "")
            verb = str(getattr(request.method, "value", request.method) or "?")  # kmock gives an enum
            if verb == "GET" and (request.params or {}).get("watch") in ("true", "1"):
                verb = "WATCH"
            self.requests[(client_of(agent), verb)] += 1

        self._listen = listen
        self.cluster.call(lambda: self.cluster.emu.request_listeners.append(listen))
        self._writes0 = self._writes()

    def _writes(self) -> Counter[str]:
        return self.cluster.call(lambda: Counter(self.cluster.emu.stats))

    def snapshot(self) -> dict[str, Any]:
        requests = self.cluster.call(lambda: Counter(self.requests))
        writes = self._writes() - self._writes0
        by_client: Counter[str] = Counter()
        for (client, _), n in requests.items():
            by_client[client] += n
        return {
            "requests": sum(requests.values()),
            "by_client": dict(by_client),
            "by_client_verb": {f"{c} {v}": n for (c, v), n in sorted(requests.items())},
            "object_writes": sum(n for k, n in writes.items() if k in ("ADDED", "MODIFIED", "DELETED")),
        }

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cluster.call(lambda: self.cluster.emu.request_listeners.remove(self._listen))


# ---------------------------------------------------------------------------------------------------- output
def write_json(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n", encoding="utf-8")
    print(f"raw numbers: {path.relative_to(ROOT)}")
    return path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "figure.dpi": 100})
    return plt


def save_plot(fig: Any, name: str) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot: {path.relative_to(ROOT)}")
    return path


def pods_of(stack: Stack) -> int:
    assert stack.cluster is not None
    return sum(
        1 for e in stack.cluster.history() if e.get("event") == "pod-created" and e.get("namespace") == stack.namespace
    )


def fail_if_lost(stack: Stack, count: int) -> dict[str, int]:
    """Every record must end completed: a benchmark of a run that lost work would be meaningless."""
    status = Counter(str(d.get("analysisStatus")) for d in stack.record_docs().values())
    if status.get("completed", 0) != count:
        print(f"WARNING: not every record completed: {dict(status)}", file=sys.stderr)
    return dict(status)
