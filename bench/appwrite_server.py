"""Throughput of the Appwrite test server: 100 concurrent clients on loopback, mixed reads and writes.

Run: .venv/bin/python bench/appwrite_server.py [--clients 100] [--seconds 5] [--in-process]
The server runs in its own process by default so client and server do not share one interpreter lock.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
from collections import Counter
from urllib.parse import urlencode

import aiohttp

TARGET = 500.0
KEY = "bench-key"
PROJECT = "bench"


def start_subprocess() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "mistake_testbed.cli", "appwrite-test-server", "--port", "0"]
    command += ["--project", PROJECT, "--key", KEY]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("endpoint:"):
            return process, line.split()[1]
    raise RuntimeError("server did not start")


async def run(endpoint: str, clients: int, seconds: float) -> tuple[Counter[str], float]:
    headers = {"X-Appwrite-Project": PROJECT, "X-Appwrite-Key": KEY, "content-type": "application/json"}
    rows = f"{endpoint}/tablesdb/main/tables/mistake_records/rows"
    counts: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        for i in range(clients):
            body = {"rowId": f"r{i}", "data": {"userId": f"u{i % 10}", "originalImageIds": ["img"]}}
            async with session.post(rows, data=json.dumps(body)) as response:
                assert response.status == 201, await response.text()
        query = urlencode(
            {
                "queries[0]": json.dumps({"method": "equal", "attribute": "userId", "values": ["u1"]}),
                "queries[1]": json.dumps({"method": "limit", "values": [10]}),
            }
        )
        deadline = time.perf_counter() + seconds

        async def client(n: int) -> None:
            rng = random.Random(n)
            while time.perf_counter() < deadline:
                pick = rng.random()
                row = f"{rows}/r{rng.randrange(clients)}"
                if pick < 0.6:
                    request = session.get(row)
                elif pick < 0.85:
                    request = session.get(f"{rows}?{query}")
                else:
                    request = session.patch(row, data=json.dumps({"data": {"note": str(rng.random())}}))
                async with request as response:
                    await response.read()
                    counts["ok" if response.status < 300 else f"http {response.status}"] += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return counts, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--in-process", action="store_true", help="run the server on a thread of this process")
    args = parser.parse_args()

    if args.in_process:
        from mistake_testbed.appwrite import AppwriteTestServer

        with AppwriteTestServer(project_id=PROJECT, api_key=KEY) as server:
            counts, elapsed = asyncio.run(run(server.endpoint, args.clients, args.seconds))
    else:
        process, endpoint = start_subprocess()
        try:
            counts, elapsed = asyncio.run(run(endpoint, args.clients, args.seconds))
        finally:
            process.terminate()
            process.wait(timeout=10)

    total = sum(counts.values())
    rate = counts["ok"] / elapsed
    print(f"clients={args.clients} seconds={elapsed:.1f} requests={total} outcomes={dict(counts)}")
    print(f"appwrite test server: {rate:.0f} requests/s ({rate / TARGET:.2f}x the {TARGET:.0f}/s target)")
    return 0 if rate >= TARGET and counts["ok"] == total else 1


if __name__ == "__main__":
    raise SystemExit(main())
