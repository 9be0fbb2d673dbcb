"""kopf wiring: watches feed the controller; start-up starts it, the sweeper and the HTTP endpoints.

Only watch-event handlers are registered: they store nothing on the objects (no finalizers, no progress
annotations), so the operator costs no extra API writes per analysis.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf
from prometheus_client import REGISTRY

from mistake_api import constants as c

from . import http
from .controller import Controller
from .kubeapi import KubeApi
from .metrics import Metrics
from .records import Records
from .settings import Settings, load
from .sweeper import Sweeper

log = logging.getLogger("mistake_operator")


class Runtime:
    """Everything the handlers share, built at start-up."""

    def __init__(self) -> None:
        self.controller: Controller | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.stop = asyncio.Event()
        self.runner: Any = None


RUNTIME = Runtime()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    config: Settings = load()
    logging.getLogger().setLevel(config.log_level)
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.batching.batch_window = 0.01  # react to a burst of creates within milliseconds
    settings.scanning.disabled = True  # namespaces are explicit: no cluster-wide namespace RBAC needed
    settings.networking.error_backoffs = [1, 2, 5, 10]
    api = KubeApi()
    metrics = Metrics(REGISTRY)
    records = Records(config.appwrite) if config.appwrite.project_id else None
    if records is None:
        log.warning("no Appwrite project configured: failures are not written back and the sweeper is off")
    controller = Controller(config, api, metrics, records)
    RUNTIME.controller = controller
    RUNTIME.stop = asyncio.Event()
    RUNTIME.tasks = [asyncio.create_task(controller.run(), name="controller")]
    if records is not None and config.sweeper.enabled:
        # Watching all namespaces, recovered analyses go to the operator's own namespace.
        home = [os.environ.get("POD_NAMESPACE", "default")] if controller.clusterwide else controller.namespaces()
        for ns in home:
            sweeper = Sweeper(config, api, records, metrics, ns)
            snapshot = controller.state.analyses.values
            RUNTIME.tasks.append(
                asyncio.create_task(sweeper.run(snapshot, RUNTIME.stop, controller.ready), name=f"sweeper-{ns}")
            )
    app = http.make_app(
        REGISTRY,
        controller.queue_stats,
        lambda: controller.heartbeat,
        controller.ready.is_set,
        controller.refresh_gauges,
    )
    RUNTIME.runner = await http.serve(app, config.bind_address, {config.metrics_port, config.health_port})
    log.info(
        "operator started: namespaces=%s batchSize=%d maxActiveJobs=%d budget=%d",
        controller.namespaces(),
        config.batch_size,
        config.max_active_jobs,
        config.inflight_budget,
    )


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    RUNTIME.stop.set()
    for task in RUNTIME.tasks:
        task.cancel()
    await asyncio.gather(*RUNTIME.tasks, return_exceptions=True)
    if RUNTIME.runner is not None:
        await RUNTIME.runner.cleanup()
    if RUNTIME.controller is not None:
        await RUNTIME.controller.api.close()
    log.info("operator stopped")


# Async on purpose: kopf runs sync handlers in a thread pool, and the cache must only change on the event loop.
@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL)
async def analysis_event(type: str, body: kopf.Body, **_: Any) -> None:
    if RUNTIME.controller is not None:
        RUNTIME.controller.analysis_event(type, body)


@kopf.on.event("batch", "v1", "jobs", labels={c.LABEL_MANAGED_BY: c.MANAGED_BY})
async def job_event(type: str, body: kopf.Body, **_: Any) -> None:
    if RUNTIME.controller is not None:
        RUNTIME.controller.job_event(type, body)
