"""The operator's HTTP endpoints: /metrics, /queue/stats, /healthz (liveness) and /readyz (readiness).

Served on both the metrics and the health port, so probes and Prometheus can be pointed anywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# A pass of the controller loop runs at least every few seconds; a much older heartbeat means it is wedged.
STALE_HEARTBEAT_SECONDS = 60.0


def make_app(
    registry: CollectorRegistry,
    stats: Callable[[], dict[str, int]],
    heartbeat: Callable[[], float],
    ready: Callable[[], bool],
    refresh: Callable[[], None] = lambda: None,
) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        refresh()  # gauges are computed from the watched state at scrape time, so they are never stale
        body = generate_latest(registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def queue_stats(_: web.Request) -> web.Response:
        return web.json_response(stats())

    async def healthz(_: web.Request) -> web.Response:
        age = time.monotonic() - heartbeat()
        if age > STALE_HEARTBEAT_SECONDS:
            return web.json_response({"status": "stalled", "heartbeatAgeSeconds": round(age, 1)}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        if not ready():
            return web.json_response({"status": "starting"}, status=503)
        return web.json_response({"status": "ready"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/queue/stats", queue_stats)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve(app: web.Application, host: str, ports: set[int]) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    for port in sorted(ports):
        await web.TCPSite(runner, host, port).start()
    return runner
