"""Dev-cluster throughput: create N custom objects through the official client while a watch streams them.

Prints requests per second and the ratio of the last 500 creates' time to the first 500's: the emulator's cost
per request must not grow with the number of objects and requests it has seen (a ratio near 1 is linear).

    ./dev bench kube_emulator [--count 2000]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from kubernetes import client, config

from mistake_testbed.kube import DevCluster

ROOT = Path(__file__).resolve().parents[1]
CRDS = ROOT / "charts" / "mistake-analyzer" / "crds"
GROUP, VERSION, PLURAL = "mistakes.dev", "v1alpha1", "mistakeanalyses"


def body(i: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "MistakeAnalysis",
        "metadata": {"name": f"bench-{i:05d}", "labels": {"bench": "yes"}},
        "spec": {
            "record": {"databaseId": "main", "collectionId": "mistake_records", "documentId": f"doc-{i}"},
            "userId": "bench-user",
            "revision": "2026-01-01T00:00:00.000+00:00",
            "priority": i % 10,
        },
    }


def watch_until(url: str, count: int, seen: list[float], started: threading.Event) -> None:
    """Stream the watch over plain HTTP and note when each ADDED event arrives."""
    with urllib.request.urlopen(url, timeout=600) as response:  # noqa: S310 (loopback only)
        started.set()
        for line in response:
            event = json.loads(line)
            if event.get("type") == "ADDED":
                seen.append(time.perf_counter())
                if len(seen) >= count:
                    return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--window", type=int, default=500)
    args = parser.parse_args(argv)
    count, window = args.count, args.window

    with DevCluster(preload=[CRDS], job_controller=False) as cluster:
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        custom = client.CustomObjectsApi(api)
        requests_before = cluster.call(lambda: cluster.emu.stats["requests"])
        seen: list[float] = []
        started = threading.Event()
        watch_url = (
            f"{cluster.url}/apis/{GROUP}/{VERSION}/namespaces/default/{PLURAL}?watch=true&labelSelector=bench%3Dyes"
        )
        watcher = threading.Thread(target=watch_until, args=(watch_url, count, seen, started), daemon=True)
        watcher.start()
        started.wait(30)

        durations: list[float] = []
        t0 = time.perf_counter()
        for i in range(count):
            t = time.perf_counter()
            custom.create_namespaced_custom_object(GROUP, VERSION, "default", PLURAL, body(i))
            durations.append(time.perf_counter() - t)
        created = time.perf_counter()
        watcher.join(120)
        done = time.perf_counter()
        requests = cluster.call(lambda: cluster.emu.stats["requests"]) - requests_before
        listed = len(custom.list_namespaced_custom_object(GROUP, VERSION, "default", PLURAL)["items"])
        api.close()

    first, last = sum(durations[:window]), sum(durations[-window:])
    print(f"objects created: {count} (listed afterwards: {listed}); watch events received: {len(seen)}")
    print(f"creates: {created - t0:.2f} s, {count / (created - t0):.0f} creates/s")
    print(f"requests served: {requests} in {done - t0:.2f} s = {requests / (done - t0):.0f} requests/s")
    print(f"watch lag after the last create: {(seen[-1] - created) * 1000 if seen else float('nan'):.1f} ms")
    print(f"first {window} creates: {first:.3f} s; last {window}: {last:.3f} s; ratio last/first = {last / first:.2f}")
    return 0 if len(seen) >= count and listed == count else 1


if __name__ == "__main__":
    raise SystemExit(main())
