"""Latency of the trigger function: 2,000 Appwrite events through `main(context)` against the dev cluster.

Run: ./dev bench trigger [--events 2000] [--concurrency 1]

The dev cluster and a TLS-terminating proxy in front of it (the trigger only speaks HTTPS with a bearer token) run in
a child process, so the handler measured here does not share an interpreter lock with the API server. Events are a
realistic mix: new pending records (create), redelivered duplicates (409, already queued) and the worker's own status
writes (update, skipped). One warm runtime handles them one after another, like Appwrite's executor reusing a
runtime; `--concurrency N` runs N at once on the same module (one shared session).
The figure that matters is p99 per event against the 1-second response budget the previous system promised.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "integration" / "trigger"))  # the TLS proxy used by the trigger's tests

from mistake_testbed.appwrite.runtime import event_context, invoke  # noqa: E402

BUDGET = 1.0  # seconds: what the previous trigger promised per event
TARGET_RATIO = 0.1
TOKEN = "bench-trigger-token"
NAMESPACE = "bench"


def serve() -> None:
    """Child process: dev cluster + TLS proxy; prints where to reach them, runs until stdin closes."""
    from mistake_testbed.kube import DevCluster
    from mistake_testbed.kube.tls_proxy import TlsProxy

    crds = ROOT / "charts" / "mistake-analyzer" / "crds"
    with DevCluster(job_controller=False, keep_history=False, preload=[crds]) as cluster:
        cluster.create_namespace(NAMESPACE)
        with TlsProxy(cluster.url, TOKEN) as proxy:
            print(json.dumps({"url": proxy.url, "ca": proxy.ca_pem}), flush=True)
            sys.stdin.read()


def load_trigger() -> ModuleType:
    spec = importlib.util.spec_from_file_location("trigger_main", ROOT / "trigger_function" / "src" / "main.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def document(n: int, status: str = "pending", revision: str | None = None) -> dict[str, Any]:
    stamp = revision or f"2026-02-01T08:{n // 60000 % 60:02d}:{n // 1000 % 60:02d}.{n % 1000:03d}+00:00"
    return {
        "$id": f"rec-{n:06d}",
        "$sequence": str(n + 1),
        "$collectionId": "mistake_records",
        "$databaseId": "main",
        "$createdAt": stamp,
        "$updatedAt": stamp,
        "$permissions": [],
        "userId": f"user-{n % 97}",
        "originalImageIds": [f"img-{n}-1", f"img-{n}-2"],
        "analysisStatus": status,
        "subject": None,
        "wrongReason": None,
        "questionId": None,
    }


def events(count: int, seed: int = 7) -> list[tuple[dict[str, Any], str]]:
    """80% new pending records, 10% redeliveries of an earlier one, 10% status updates the trigger skips."""
    rng = random.Random(seed)
    out: list[tuple[dict[str, Any], str]] = []
    created: list[int] = []
    for i in range(count):
        pick = rng.random()
        if created and pick < 0.1:
            n = rng.choice(created)
            out.append((document(n), "create"))
        elif created and pick < 0.2:
            n = rng.choice(created)
            out.append((document(n, "processing", "2026-02-02T00:00:00.000+00:00"), "update"))
        else:
            created.append(i)
            out.append((document(i), "create"))
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return 0

    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        where = json.loads(child.stdout.readline())
        return measure(args, where)
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=30)


def measure(args: argparse.Namespace, where: dict[str, str]) -> int:
    os.environ.update(
        K8S_API_URL=where["url"], K8S_TOKEN=TOKEN, K8S_CA_CERT=where["ca"], K8S_NAMESPACE=NAMESPACE, K8S_TIMEOUT="3"
    )
    trigger = load_trigger()
    workload = events(args.events)

    def one(item: tuple[dict[str, Any], str]) -> tuple[float, str]:
        body, action = item
        event = f"databases.main.collections.mistake_records.documents.{body['$id']}.{action}"
        started = time.perf_counter()
        result = invoke(trigger.main, event_context(body, event))
        elapsed = time.perf_counter() - started
        return elapsed, json.loads(result.body)["decision"]

    started = time.perf_counter()
    if args.concurrency <= 1:
        results = [one(item) for item in workload]
    else:
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, workload))
    wall = time.perf_counter() - started

    latencies = [r[0] for r in results]
    decisions = Counter(r[1] for r in results)
    with tempfile.NamedTemporaryFile("w", suffix=".pem", delete=False) as ca:
        ca.write(where["ca"])
    listing = requests.get(
        f"{where['url']}/apis/mistakes.dev/v1alpha1/namespaces/{NAMESPACE}/mistakeanalyses",
        headers={"Authorization": f"Bearer {TOKEN}"},
        verify=ca.name,
        timeout=30,
    ).json()
    stored = len(listing["items"])
    expected = len({body["$id"] for body, action in workload if action == "create"})

    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    ratio = p99 / BUDGET
    print(f"events={len(workload)} concurrency={args.concurrency} decisions={dict(decisions)}")
    print(f"analyses in the cluster={stored} (expected {expected}) sessions built={trigger.TRANSPORT.builds}")
    print(f"throughput: {len(workload) / wall:.0f} events/s over {wall:.2f} s")
    print(
        f"per event: p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, max {max(latencies) * 1000:.2f} ms, "
        f"mean {statistics.fmean(latencies) * 1000:.2f} ms; first event (TLS handshake) {latencies[0] * 1000:.1f} ms"
    )
    print(f"p99 / {BUDGET:.0f} s budget = {ratio:.4f} (target <= {TARGET_RATIO})")
    ok = ratio <= TARGET_RATIO and stored == expected and decisions.get("failed", 0) == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
