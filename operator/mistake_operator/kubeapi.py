"""A small asyncio Kubernetes API client for the operator's own writes.

kopf does the watching; this client does the creates and patches the controller loop issues. It logs in the way
kopf does (service account in a pod, kubeconfig elsewhere) and reuses one aiohttp session with bounded concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import kopf

from mistake_api import constants as c

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def conflict(self) -> bool:
        """409 (exists or stale resourceVersion) or 422 from a failed JSON-patch test: someone else moved first."""
        return self.status in (409, 422)


def analyses_path(namespace: str | None, name: str | None = None, *, status: bool = False) -> str:
    """Path of the collection (all namespaces when `namespace` is None), an object, or its status."""
    scope = f"/namespaces/{namespace}" if namespace else ""
    path = f"/apis/{c.GROUP}/{c.VERSION}{scope}/{c.PLURAL}"
    if name:
        path += f"/{name}"
        if status:
            path += "/status"
    return path


def jobs_path(namespace: str | None, name: str | None = None) -> str:
    scope = f"/namespaces/{namespace}" if namespace else ""
    path = f"/apis/batch/v1{scope}/jobs"
    return f"{path}/{name}" if name else path


@dataclass
class _Login:
    server: str
    headers: dict[str, str]
    ssl: ssl.SSLContext | bool
    auth: aiohttp.BasicAuth | None
    at: float


def _ssl_context(info: kopf.ConnectionInfo, tmp: Path) -> ssl.SSLContext | bool:
    if not info.server.startswith("https"):
        return True
    if info.insecure:
        return False
    ctx = ssl.create_default_context(cafile=str(info.ca_path) if info.ca_path else None)
    if info.ca_data:
        data = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
        ctx.load_verify_locations(cadata=data)
    cert, key = info.certificate_path, info.private_key_path
    if info.certificate_data and info.private_key_data:
        cert, key = tmp / "client.crt", tmp / "client.key"
        Path(cert).write_bytes(_bytes(info.certificate_data))
        Path(key).write_bytes(_bytes(info.private_key_data))
    if cert and key:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def login(settings: kopf.OperatorSettings | None = None) -> kopf.ConnectionInfo:
    """Credentials as kopf would find them: in-cluster service account first, then kubeconfig."""
    settings = settings or kopf.OperatorSettings()
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise RuntimeError("no Kubernetes credentials: neither a service account nor a kubeconfig was found")
    return info


class KubeApi:
    """JSON requests against the API server. Retries 429/5xx and connection errors a few times, briefly."""

    # Service-account tokens rotate; logging in again now and then picks up the new one.
    RELOGIN_SECONDS = 300.0

    def __init__(
        self, info: kopf.ConnectionInfo | None = None, *, concurrency: int = 32, timeout: float = 30.0
    ) -> None:
        self._info = info
        self._session: aiohttp.ClientSession | None = None
        self._login: _Login | None = None
        self._limit = asyncio.Semaphore(concurrency)
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._tmp = Path(tempfile.mkdtemp(prefix="mistake-operator-"))
        self.requests = 0  # for benchmarks: API requests made

    def _credentials(self) -> _Login:
        if self._login is None or (self._info is None and time.monotonic() - self._login.at > self.RELOGIN_SECONDS):
            info = self._info or login()
            headers = {"Accept": "application/json", "User-Agent": "mistake-analyzer-operator"}
            if info.token:
                headers["Authorization"] = f"Bearer {info.token}"
            auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
            self._login = _Login(
                info.server.rstrip("/"), headers, _ssl_context(info, self._tmp), auth, time.monotonic()
            )
        return self._login

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        attempts: int = 4,
    ) -> Any:
        cred = self._credentials()
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = dict(cred.headers)
        if body is not None:
            headers["Content-Type"] = content_type
        delay = 0.2
        for attempt in range(1, attempts + 1):
            try:
                async with (
                    self._limit,
                    self._session.request(
                        method,
                        cred.server + path,
                        json=body,
                        params=params,
                        headers=headers,
                        ssl=cred.ssl,
                        auth=cred.auth,
                    ) as resp,
                ):
                    self.requests += 1
                    data: Any = await resp.json(content_type=None) if resp.content_length != 0 else None
                    if resp.status < 300:
                        return data
                    err = _error(resp.status, data)
                    if resp.status not in RETRY_STATUSES or attempt == attempts:
                        raise err
                    retry_after = resp.headers.get("Retry-After", "")
                    wait = float(retry_after) if retry_after.isdigit() else delay
            except (aiohttp.ClientConnectionError, TimeoutError) as exc:
                if attempt == attempts:
                    raise ApiError(0, "Unavailable", str(exc) or type(exc).__name__) from exc
                wait = delay
            await asyncio.sleep(wait)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    async def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", path, body=body)
        return result

    async def get(self, path: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", path)
        return result

    async def list_items(self, path: str, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self.request("GET", path, params=params)
        items: list[dict[str, Any]] = result.get("items", [])
        return items

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PATCH", path, body=patch, content_type=MERGE_PATCH)
        return result

    async def json_patch(self, path: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("PATCH", path, body=ops, content_type=JSON_PATCH)
        return result

    async def delete(self, path: str, *, propagation: str = "Background") -> None:
        await self.request("DELETE", path, body={"propagationPolicy": propagation})


def _error(status: int, data: Any) -> ApiError:
    if isinstance(data, dict):
        return ApiError(status, str(data.get("reason", "")), str(data.get("message", "")))
    return ApiError(status, "", str(data)[:200])
