"""Helpers for operator integration tests: its environment, analyses to create, and waits on their phases."""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mistake_api import Origin, analysis_from_record
from mistake_testbed.kube import DevCluster

HERE = Path(__file__).resolve().parent
MA = ("mistakes.dev", "mistakeanalyses")
JOBS = ("batch", "jobs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def operator_env(
    cluster: DevCluster,
    namespace: str,
    *,
    worker_mode: str = "succeed",
    worker_delay: float = 0.0,
    ledger: Path | None = None,
    appwrite: Any = None,
    **settings: Any,
) -> tuple[dict[str, str], int]:
    """Environment for `python -m mistake_operator` against `cluster`, with the fake worker as the Job command."""
    port = free_port()
    env = {
        "MISTAKE_NAMESPACES": json.dumps([namespace]),
        "MISTAKE_METRICS_PORT": str(port),
        "MISTAKE_HEALTH_PORT": str(port),
        "MISTAKE_BIND_ADDRESS": "127.0.0.1",
        "MISTAKE_JOB__COMMAND": json.dumps([sys.executable, str(HERE / "fake_worker.py")]),
        "MISTAKE_JOB__ENV": json.dumps(
            {
                "KUBECONFIG": str(cluster.kubeconfig),
                "FAKE_WORKER_MODE": worker_mode,
                "FAKE_WORKER_LEDGER": str(ledger or ""),
                "FAKE_WORKER_DELAY": str(worker_delay),
            }
        ),
        "MISTAKE_SWEEPER__ENABLED": "false",
    }
    if appwrite is not None:
        env.update(
            MISTAKE_APPWRITE__ENDPOINT=appwrite.endpoint,
            MISTAKE_APPWRITE__PROJECT_ID=appwrite.project_id,
            MISTAKE_APPWRITE__API_KEY=appwrite.api_key,
            MISTAKE_SWEEPER__ENABLED="true",
        )
    for key, value in settings.items():
        env[f"MISTAKE_{key.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    return env, port


def operator_argv() -> list[str]:
    return [sys.executable, "-m", "mistake_operator"]


def record(i: int, *, images: int = 1, revision: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "$id": f"rec{i:05d}",
        "$updatedAt": revision or f"2026-12-04T10:{i // 60 % 60:02d}:{i % 60:02d}.000+00:00",
        "userId": "user-1",
        "originalImageIds": [f"img{i:05d}p{p}" for p in range(images)],
        "analysisStatus": "pending",
        **extra,
    }


def analysis(namespace: str, i: int, *, priority: int = 0, **rec: Any) -> dict[str, Any]:
    return analysis_from_record(
        record(i, **rec),
        database_id="main",
        collection_id="mistake_records",
        namespace=namespace,
        origin=Origin.CLI,
        priority=priority,
    )


def create_analyses(cluster: DevCluster, namespace: str, bodies: list[dict[str, Any]]) -> list[str]:
    for body in bodies:
        cluster.create(MA, namespace, body)
    return [b["metadata"]["name"] for b in bodies]


def phases(cluster: DevCluster, namespace: str) -> Counter[str]:
    return Counter(str((o.get("status") or {}).get("phase")) for o in cluster.list_objects(MA, namespace))


def wait_phases(
    cluster: DevCluster, namespace: str, check: Callable[[Counter[str]], bool], timeout: float = 60.0
) -> Counter[str]:
    deadline = time.monotonic() + timeout
    while True:
        seen = phases(cluster, namespace)
        if check(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"phases never reached the expected state: {dict(seen)}")
        time.sleep(0.05)  # polling the emulator's store: the assertion is the condition, not the delay


def http_get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def job_members(cluster: DevCluster, namespace: str) -> dict[str, list[str]]:
    out = {}
    for job in cluster.list_objects(JOBS, namespace):
        meta = job["metadata"]
        out[meta["name"]] = json.loads((meta.get("annotations") or {}).get("mistakes.dev/members", "[]"))
    return out
