"""Throughput of the LLM test server: 100 concurrent clients on loopback, vision chat with a strict schema.

Run: .venv/bin/python bench/llm_server.py [--clients 100] [--seconds 5] [--mix]
The server runs in its own process (the `llm-test-server` command) so client and server do not share one
interpreter lock. `--mix` alternates chat, Responses API and json_object requests.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import aiohttp
from PIL import Image

TARGET = 500.0
KEY = "sk-bench"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["subject", "type", "content", "options", "difficulty"],
    "properties": {
        "subject": {"type": "string", "enum": ["math", "physics", "chemistry", "english", "chinese"]},
        "type": {"type": "string", "enum": ["choice", "fillBlank", "shortAnswer"]},
        "content": {"type": "string", "maxLength": 5000},
        "options": {"type": "array", "items": {"type": "string"}, "maxItems": 6},
        "difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
    },
}


def small_image_url() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (245, 245, 240)).save(buffer, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def bodies(mix: bool) -> list[tuple[str, bytes]]:
    url = small_image_url()
    chat = {
        "model": "test-vision",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": "You are a precise OCR expert."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Read the question in the image and answer in JSON."},
                    {"type": "image_url", "image_url": {"url": url, "detail": "high"}},
                ],
            },
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "q", "strict": True, "schema": SCHEMA}},
    }
    out = [("/v1/chat/completions", json.dumps(chat).encode())]
    if mix:
        responses = {
            "model": "test-vision",
            "input": [
                {
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": "Read the question."},
                        {"type": "input_image", "image_url": url, "detail": "high"},
                    ],
                }
            ],
            "text": {"format": {"type": "json_schema", "name": "q", "strict": True, "schema": SCHEMA}},
        }
        json_object = {**chat, "response_format": {"type": "json_object"}}
        out += [
            ("/v1/responses", json.dumps(responses).encode()),
            ("/v1/chat/completions", json.dumps(json_object).encode()),
        ]
    return out


def start_subprocess() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-m", "mistake_testbed.cli", "llm-test-server", "--port", "0"]
    command += ["--api-key", KEY, "--no-samples"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if "base_url=" in line:
            return process, line.split("base_url=")[1].split()[0].removesuffix("/v1")
    raise RuntimeError("server did not start")


async def run(root: str, clients: int, seconds: float, mix: bool) -> tuple[Counter[str], float, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {KEY}", "content-type": "application/json"}
    payloads = bodies(mix)
    counts: Counter[str] = Counter()
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
        # Warm-up: open the connections and fill the server's schema caches before timing.
        for path, body in payloads:
            async with session.post(root + path, data=body) as response:
                assert response.status == 200, await response.text()
        deadline = time.perf_counter() + seconds

        async def client(n: int) -> None:
            i = n
            while time.perf_counter() < deadline:
                path, body = payloads[i % len(payloads)]
                i += 1
                async with session.post(root + path, data=body) as response:
                    await response.read()
                    counts[str(response.status)] += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(n) for n in range(clients)))
        elapsed = time.perf_counter() - started
        async with session.get(f"{root}/_admin/stats?requests=false") as response:
            stats = await response.json()
    return counts, elapsed, stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--mix", action="store_true", help="alternate chat / responses / json_object")
    args = parser.parse_args(argv)
    process, root = start_subprocess()
    try:
        counts, elapsed, stats = asyncio.run(run(root, args.clients, args.seconds, args.mix))
    finally:
        process.terminate()
        process.wait(timeout=10)
    total = sum(counts.values())
    rate = total / elapsed
    print(f"llm test server: {total} requests in {elapsed:.2f} s with {args.clients} clients: {rate:.0f} req/s")
    print(f"statuses: {dict(counts)}; server-side peak concurrency {stats['peak_concurrency']}")
    print(f"ratio to the {TARGET:.0f} req/s target: {rate / TARGET:.2f}x")
    return 0 if rate >= TARGET and set(counts) == {"200"} else 1


if __name__ == "__main__":
    raise SystemExit(main())
