"""The aiohttp application: Databases, TablesDB and Storage routes with auth, faults and request logging."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from .errors import APPWRITE_VERSION, AppwriteError, argument_invalid, route_not_found
from .events import EventBus
from .faults import FaultPlan
from .queries import parse as parse_queries
from .queries import queries_from_params
from .storage import FileStore, file_not_found
from .store import Store, check_id, select

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Chunks are 5 MB plus multipart overhead; single uploads up to the bucket limit (30 MB) must fit too.
MAX_BODY = 64 * 1024 * 1024
REQUEST_LOG_SIZE = 100_000


@dataclass
class RequestRecord:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    status: int = 0
    duration: float = 0.0
    fault: str = ""
    delay: float = 0.0  # injected latency, seconds
    at: float = field(default_factory=time.time)


@dataclass
class ServerState:
    """Everything a running server holds; shared by the HTTP handlers and the inspection helpers."""

    store: Store
    files: FileStore
    bus: EventBus
    faults: FaultPlan
    project_id: str
    api_keys: set[str]
    requests: deque[RequestRecord] = field(default_factory=lambda: deque(maxlen=REQUEST_LOG_SIZE))
    lock: threading.Lock = field(default_factory=threading.Lock)
    # "reset": accept connections but drop them without an answer (the listener stays up).
    drop_connections: bool = False


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        charset="UTF-8",
        headers=headers,
    )


def no_content() -> web.Response:
    # The SDK parses any application/json body; a 204 must carry another type so it returns b"".
    return web.Response(status=204, content_type="text/html", charset="UTF-8")


def error_response(error: AppwriteError) -> web.Response:
    return json_response(error.body(), error.code, error.headers)


def _authorise(state: ServerState, request: web.Request) -> None:
    project = request.headers.get("X-Appwrite-Project", "")
    if not project:
        raise AppwriteError(401, "general_unauthorized_scope", "Project ID is required: X-Appwrite-Project header.")
    if project != state.project_id:
        raise AppwriteError(404, "project_not_found", "Project with the requested ID could not be found.")
    key = request.headers.get("X-Appwrite-Key", "")
    if not key:
        raise AppwriteError(
            401, "general_unauthorized_scope", 'User (role: guests) missing scopes (["documents.read"])'
        )
    if key not in state.api_keys:
        raise AppwriteError(
            401, "user_unauthorized", "The current user is not authorized to perform the requested action."
        )


def make_middleware(state: ServerState) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if state.drop_connections and request.transport is not None:
            request.transport.abort()
            return web.Response(status=503)
        started = time.perf_counter()
        record = RequestRecord(request.method, request.path, request.query_string, dict(request.headers))
        state.requests.append(record)
        try:
            delay, fault = state.faults.decide(request.method, request.path)
            if delay:
                record.delay = delay
                await asyncio.sleep(delay)
            if fault is not None:
                record.fault = fault.type
                raise fault
            if not request.path.startswith("/v1/health"):
                _authorise(state, request)
            response = await handler(request)
        except AppwriteError as error:
            response = error_response(error)
        except web.HTTPNotFound:
            response = error_response(route_not_found())
        except web.HTTPMethodNotAllowed:
            response = error_response(AppwriteError(405, "general_route_not_found", "Method not allowed."))
        except web.HTTPRequestEntityTooLarge:
            response = error_response(AppwriteError(413, "storage_invalid_file_size", "File size not allowed."))
        record.status = response.status
        record.duration = time.perf_counter() - started
        return response

    return middleware


async def _json_body(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise argument_invalid("Invalid JSON body.") from None
    if not isinstance(body, dict):
        raise argument_invalid("Invalid JSON body.")
    return body


def _data_param(body: dict[str, Any]) -> Any:
    data = body.get("data")
    if isinstance(data, str):  # Appwrite also takes `data` as a JSON-encoded string
        try:
            data = json.loads(data)
        except ValueError:
            raise argument_invalid("Invalid `data` param: Value must be a valid JSON string") from None
    return data


def _permissions(body: dict[str, Any]) -> list[str] | None:
    permissions = body.get("permissions")
    if permissions is None:
        return None
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        raise argument_invalid("Invalid `permissions` param: Value must be a valid array of permission strings")
    return permissions


def _total_param(value: Any) -> bool:
    return value not in {False, "false", "0"}


class DocumentRoutes:
    """One set of handlers serves both APIs; `rows` picks the TablesDB names and error types."""

    def __init__(self, state: ServerState, rows: bool) -> None:
        self.state = state
        self.rows = rows
        self.id_param = "rowId" if rows else "documentId"
        self.container = "tableId" if rows else "collectionId"
        self.item = "rowId" if rows else "documentId"

    def _ids(self, request: web.Request) -> tuple[str, str]:
        return request.match_info["databaseId"], request.match_info[self.container]

    async def list(self, request: web.Request) -> web.Response:
        database_id, container_id = self._ids(request)
        raw = queries_from_params(request.query)
        total = _total_param(request.query.get("total", "true"))
        return json_response(self.state.store.query(database_id, container_id, raw, self.rows, total))

    async def query(self, request: web.Request) -> web.Response:
        database_id, container_id = self._ids(request)
        body = await _json_body(request)
        raw = body.get("queries") or []
        if not isinstance(raw, list):
            raise argument_invalid("Invalid `queries` param: Value must be a valid array")
        total = _total_param(body.get("total", True))
        return json_response(self.state.store.query(database_id, container_id, raw, self.rows, total))

    async def get(self, request: web.Request) -> web.Response:
        database_id, container_id = self._ids(request)
        document = self.state.store.get(database_id, container_id, request.match_info[self.item], self.rows)
        raw = queries_from_params(request.query)
        if raw:
            plan = parse_queries(self.state.store.collection(database_id, container_id, self.rows).schema, raw)
            document = select(document, plan.select)
        return json_response(document)

    async def create(self, request: web.Request) -> web.Response:
        database_id, container_id = self._ids(request)
        body = await _json_body(request)
        if self.id_param not in body:
            raise argument_invalid(f'Param "{self.id_param}" is not optional.')
        if body.get("data") is None:
            raise argument_invalid('Param "data" is not optional.')
        created = self.state.store.create(
            database_id, container_id, body[self.id_param], _data_param(body), _permissions(body), self.rows
        )
        return json_response(created, 201)

    async def update(self, request: web.Request) -> web.Response:
        database_id, container_id = self._ids(request)
        body = await _json_body(request)
        updated = self.state.store.update(
            database_id, container_id, request.match_info[self.item], _data_param(body), _permissions(body), self.rows
        )
        return json_response(updated)

    async def upsert(self, request: web.Request) -> web.Response:
        database_id, container_id = self._ids(request)
        body = await _json_body(request)
        document_id = check_id(request.match_info[self.item], self.id_param)
        upserted = self.state.store.upsert(
            database_id, container_id, document_id, _data_param(body), _permissions(body), self.rows
        )
        return json_response(upserted)

    async def _adjust(self, request: web.Request, decrement: bool) -> web.Response:
        database_id, container_id = self._ids(request)
        body = await _json_body(request)
        adjusted = self.state.store.adjust(
            database_id,
            container_id,
            request.match_info[self.item],
            request.match_info["column"],
            body.get("value"),
            body.get("min" if decrement else "max"),
            self.rows,
            decrement=decrement,
        )
        return json_response(adjusted)

    async def increment(self, request: web.Request) -> web.Response:
        return await self._adjust(request, decrement=False)

    async def decrement(self, request: web.Request) -> web.Response:
        return await self._adjust(request, decrement=True)

    async def delete(self, request: web.Request) -> web.Response:
        database_id, container_id = self._ids(request)
        self.state.store.delete(database_id, container_id, request.match_info[self.item], self.rows)
        return no_content()

    def register(self, app: web.Application) -> None:
        if self.rows:
            base = "/v1/tablesdb/{databaseId}/tables/{tableId}/rows"
            item = base + "/{rowId}"
        else:
            base = "/v1/databases/{databaseId}/collections/{collectionId}/documents"
            item = base + "/{documentId}"
        app.router.add_get(base, self.list)
        app.router.add_post(base, self.create)
        app.router.add_post(base + "/query", self.query)
        app.router.add_get(item, self.get)
        app.router.add_patch(item, self.update)
        app.router.add_put(item, self.upsert)
        app.router.add_delete(item, self.delete)
        app.router.add_patch(item + "/{column}/increment", self.increment)
        app.router.add_patch(item + "/{column}/decrement", self.decrement)


class StorageRoutes:
    def __init__(self, state: ServerState) -> None:
        self.files = state.files

    async def create(self, request: web.Request) -> web.Response:
        bucket_id = request.match_info["bucketId"]
        self.files.bucket(bucket_id)
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            raise argument_invalid('Param "file" is not optional.')
        raw_id = form.get("fileId")
        if not isinstance(raw_id, str):
            raise argument_invalid('Param "fileId" is not optional.')
        content_range = request.headers.get("Content-Range")
        # Later chunks name the upload in x-appwrite-id (the id the first chunk returned).
        upload_id = request.headers.get("X-Appwrite-Id") if content_range else None
        file_id = check_id(upload_id or raw_id, "fileId")
        permissions = [str(v) for k, v in form.items() if k.startswith("permissions[")]
        model = self.files.put(
            bucket_id, file_id, upload.filename or "file", upload.file.read(), permissions, content_range
        )
        return json_response(model, 201)

    async def list(self, request: web.Request) -> web.Response:
        return json_response(self.files.listing(request.match_info["bucketId"]))

    async def get(self, request: web.Request) -> web.Response:
        stored, bucket = self.files.get(request.match_info["bucketId"], request.match_info["fileId"])
        return json_response(stored.model(bucket))

    async def delete(self, request: web.Request) -> web.Response:
        self.files.delete(request.match_info["bucketId"], request.match_info["fileId"])
        return no_content()

    async def _content(self, request: web.Request, disposition: str) -> web.Response:
        stored, _ = self.files.get(request.match_info["bucketId"], request.match_info["fileId"])
        if not stored.complete:
            raise file_not_found()
        safe_name = stored.name.replace('"', "")
        return web.Response(
            body=stored.data,
            content_type=stored.mime_type,
            headers={"Content-Disposition": f'{disposition}; filename="{safe_name}"'},
        )

    async def download(self, request: web.Request) -> web.Response:
        return await self._content(request, "attachment")

    async def view(self, request: web.Request) -> web.Response:
        return await self._content(request, "inline")

    def register(self, app: web.Application) -> None:
        base = "/v1/storage/buckets/{bucketId}/files"
        app.router.add_get(base, self.list)
        app.router.add_post(base, self.create)
        app.router.add_get(base + "/{fileId}", self.get)
        app.router.add_delete(base + "/{fileId}", self.delete)
        app.router.add_get(base + "/{fileId}/download", self.download)
        app.router.add_get(base + "/{fileId}/view", self.view)


async def _health(request: web.Request) -> web.Response:
    return json_response({"version": APPWRITE_VERSION})


def build_app(state: ServerState) -> web.Application:
    app = web.Application(middlewares=[make_middleware(state)], client_max_size=MAX_BODY)
    DocumentRoutes(state, rows=False).register(app)
    DocumentRoutes(state, rows=True).register(app)
    StorageRoutes(state).register(app)
    app.router.add_get("/v1/health/version", _health)
    return app
