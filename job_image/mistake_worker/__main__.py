"""`python -m mistake_worker`: analyse this Job's batch and exit 0 (all reported), 1 (retry helps) or 42 (hopeless)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor

from mistake_api.constants import EXIT_PERMANENT, EXIT_RETRYABLE

from .crs import CRApi, KubeCRApi
from .images import configure_pillow
from .llm import LLMClient
from .runner import BatchRunner
from .settings import Settings, SettingsError, load_settings
from .store import AppwriteStore

log = logging.getLogger("mistake_worker")


async def run_batch(settings: Settings, crs: CRApi | None = None) -> int:
    worker = settings.worker
    configure_pillow(worker.max_image_pixels)
    io_pool = ThreadPoolExecutor(worker.io_pool_size, thread_name_prefix="io")
    image_pool = ThreadPoolExecutor(worker.image_threads or (os.cpu_count() or 2), thread_name_prefix="img")
    llm = LLMClient(settings.llm, worker)
    runner = BatchRunner(
        members=settings.batch.members,
        job_name=settings.batch.job_name,
        settings=worker,
        crs=crs or KubeCRApi(settings.batch.namespace, io_pool),
        store=AppwriteStore(settings.appwrite, worker, io_pool),
        llm=llm,
        image_pool=image_pool,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, runner.request_stop)
    try:
        return await runner.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await llm.close()
        # Threads stuck in an SDK call without a timeout must not keep the pod alive.
        io_pool.shutdown(wait=False, cancel_futures=True)
        image_pool.shutdown(wait=False, cancel_futures=True)


def main() -> int:
    logging.basicConfig(
        level=os.environ.get("MISTAKE_WORKER_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    try:
        settings = load_settings()
    except SettingsError as error:
        log.error("invalid worker configuration, a retry cannot help: %s", error)
        return EXIT_PERMANENT
    try:
        return asyncio.run(run_batch(settings))
    except Exception:
        log.exception("the batch runner failed")
        return EXIT_RETRYABLE


if __name__ == "__main__":
    sys.exit(main())
