"""`mistake-testbed llm-test-server`: run the OpenAI-compatible stand-in until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys

from mistake_testbed.llm.answers import AnalysisFixture
from mistake_testbed.llm.faults import FaultRule
from mistake_testbed.llm.runner import LLMTestServer


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mistake-testbed llm-test-server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="bind address (loopback by default)")
    parser.add_argument("--port", type=int, default=8090, help="0 picks a free port")
    parser.add_argument("--api-key", default="sk-testbed", help="required Bearer key")
    parser.add_argument("--no-auth", action="store_true", help="accept any or no API key")
    parser.add_argument("--model", default="test-vision")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every answer")
    parser.add_argument("--latency-max", type=float, default=None, help="upper bound (uniform/exponential)")
    parser.add_argument("--distribution", choices=("fixed", "uniform", "exponential"), default="fixed")
    parser.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults and latency")
    parser.add_argument("--no-samples", action="store_true", help="do not load the sample photos' fixtures")
    return parser


def _sample_fixtures() -> list[AnalysisFixture]:
    try:
        from mistake_testbed.samples import analysis_fixtures
    except ImportError as exc:  # the samples package is optional for the server
        print(f"samples unavailable ({exc}); answering from schemas only", file=sys.stderr)
        return []
    return analysis_fixtures()


async def _serve(server: LLMTestServer) -> None:
    async with server:
        print(f"LLM test server: base_url={server.base_url} api_key={server.config.api_key or '-'}", flush=True)
        print(f"admin: {server.admin_url}/stats  {server.admin_url}/faults  (Ctrl-C to stop)", flush=True)
        await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    latency = None
    if args.latency > 0:
        latency = FaultRule(
            kind="latency", delay=args.latency, delay_max=args.latency_max, distribution=args.distribution
        )
    server = LLMTestServer(
        host=args.host,
        port=args.port,
        api_key=None if args.no_auth else args.api_key,
        model=args.model,
        seed=args.seed,
        latency=latency,
        fixtures=() if args.no_samples else _sample_fixtures(),
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(server))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
