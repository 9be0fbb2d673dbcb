"""Concurrency measurement, the in-loop runner, and the start command."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
import requests
from llm_helpers import png_data_url, schema_format, vision_messages
from openai import AsyncOpenAI, OpenAI

from mistake_testbed.llm import FaultRule, LLMTestServer

pytestmark = pytest.mark.integration

N = 12


@pytest.mark.asyncio
async def test_peak_concurrency_counts_parallel_calls(async_openai_client: AsyncOpenAI, llm: LLMTestServer) -> None:
    # Each answer waits long enough that all N calls overlap even on a busy machine.
    llm.add_fault(kind="latency", delay=1.5)
    message = vision_messages(png_data_url())

    async def one() -> None:
        await async_openai_client.chat.completions.create(
            model=llm.model, messages=message, response_format=schema_format()
        )

    calls = asyncio.gather(*(one() for _ in range(N)))
    reached = await asyncio.to_thread(llm.stats.wait_for, lambda s: s.in_flight == N, 20)
    await calls
    assert reached
    assert llm.peak_concurrency == N
    assert llm.in_flight == 0
    assert len(llm.requests) == N
    assert all(r.status == 200 for r in llm.requests)


def test_sequential_calls_peak_at_one(openai_client: OpenAI, llm: LLMTestServer) -> None:
    for _ in range(3):
        openai_client.chat.completions.create(model=llm.model, messages=[{"role": "user", "content": "hi"}])
    assert llm.peak_concurrency == 1
    llm.reset()
    assert llm.requests == []
    assert llm.peak_concurrency == 0


@pytest.mark.asyncio
async def test_server_runs_inside_the_callers_loop() -> None:
    async with LLMTestServer(api_key=None, latency=FaultRule(kind="latency", delay=0.05)) as llm:
        client = AsyncOpenAI(base_url=llm.base_url, api_key="anything", max_retries=0)
        result = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        await client.close()
        assert result.choices[0].message.content
        [record] = llm.requests
        assert record.start is not None
        assert record.start - record.arrival >= 0.05 - 0.005


def test_cli_serves_until_stopped() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "mistake_testbed.cli", "llm-test-server", "--port", "0", "--no-samples"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "base_url=http://127.0.0.1:" in line
        base_url = line.split("base_url=")[1].split()[0]
        assert base_url.endswith("/v1")
        client = OpenAI(base_url=base_url, api_key="sk-testbed", max_retries=0)
        assert "test-vision" in [m.id for m in client.models.list()]
        assert requests.get(base_url.replace("/v1", "/_admin/health"), timeout=5).json()["ok"] is True
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode is not None
