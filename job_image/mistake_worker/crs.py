"""MistakeAnalysis access: read a member, and patch its `/status` only while this Job still owns it.

Every status write is a JSON patch whose first operations are `test`s of `/status/jobName` and `/status/phase`
(and, for the claim, `/metadata/resourceVersion`): a pod that lost its analysis to a newer Job, or to the
operator, gets 422 (or 409/404) and walks away instead of overwriting someone else's progress.
The official `kubernetes` client is synchronous; its calls run on a small thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from mistake_api import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)
JSON_PATCH = "application/json-patch+json"


class LostOwnershipError(Exception):
    """The analysis is gone or no longer this Job's (a `test` failed, 404, 409 or 422)."""


class CRUnavailableError(Exception):
    """The Kubernetes API did not answer usefully after retries."""


class CRApi(Protocol):
    async def get(self, name: str) -> dict[str, Any] | None: ...

    async def patch_status(self, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]: ...


def ownership_ops(job_name: str, phase: str, resource_version: str | None = None) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/status/jobName", "value": job_name},
        {"op": "test", "path": "/status/phase", "value": phase},
    ]
    if resource_version is not None:
        ops.append({"op": "test", "path": "/metadata/resourceVersion", "value": resource_version})
    return ops


def set_ops(
    current_status: Mapping[str, Any], values: Mapping[str, Any], remove: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """`add` for each value (add replaces an existing member) and `remove` for present keys only."""
    ops: list[dict[str, Any]] = [{"op": "add", "path": f"/status/{key}", "value": v} for key, v in values.items()]
    ops += [{"op": "remove", "path": f"/status/{key}"} for key in remove if key in current_status]
    return ops


class KubeCRApi:
    """CRApi over the official client: `KUBECONFIG` when set (dev cluster), else the in-cluster service account."""

    def __init__(self, namespace: str, pool: ThreadPoolExecutor, attempts: int = 4, backoff: float = 0.3) -> None:
        from kubernetes import client, config

        # A configuration of our own, never the module-global default: the kubernetes package reads $KUBECONFIG
        # once at import, and in-process callers (tests, the demo) may point at different clusters.
        configuration = client.Configuration()
        kubeconfig = os.environ.get("KUBECONFIG")
        if kubeconfig:
            config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        # One connection per pool thread, so concurrent patches do not queue on urllib3's default of 4.
        configuration.connection_pool_maxsize = max(4, pool._max_workers)
        self._api = client.CustomObjectsApi(client.ApiClient(configuration))
        self._exception = client.ApiException
        self._namespace = namespace
        self._pool = pool
        self._attempts = attempts
        self._backoff = backoff

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        delay = self._backoff
        for attempt in range(1, self._attempts + 1):
            try:
                return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
            except self._exception as error:
                status = int(error.status or 0)
                if status in (404, 409, 422):
                    raise LostOwnershipError(f"HTTP {status}: {error.reason}") from error
                if 400 <= status < 500 and status != 429:
                    raise CRUnavailableError(f"HTTP {status}: {error.reason}") from error
                detail = f"HTTP {status}: {error.reason}"
            except OSError as error:  # urllib3 connection errors derive from it
                detail = f"{type(error).__name__}: {error}"
            except Exception as error:  # urllib3 MaxRetryError and friends
                detail = f"{type(error).__name__}: {error}"
            if attempt == self._attempts:
                raise CRUnavailableError(detail)
            log.info("kubernetes API call failed (attempt %d), retrying: %s", attempt, detail)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))  # noqa: S311 - jitter
            delay *= 2
        raise AssertionError("unreachable")

    async def get(self, name: str) -> dict[str, Any] | None:
        try:
            obj = await self._call(
                self._api.get_namespaced_custom_object, GROUP, VERSION, self._namespace, PLURAL, name
            )
        except LostOwnershipError:
            return None
        return dict(obj)

    async def patch_status(self, name: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        obj = await self._call(
            self._api.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            self._namespace,
            PLURAL,
            name,
            ops,
            _content_type=JSON_PATCH,
        )
        return dict(obj)
