"""Appwrite Function: turn a `mistake_records` create/update/upsert event into a MistakeAnalysis resource.

The function deploys alone (its folder, with `requests` only), so it carries its own copies of the naming rule and
of the few label keys it needs from `mistake_api`; tests prove they give the same names, labels and spec.

Every invocation ends in exactly one log line (`context.log` for queued/skipped, `context.error` for failures) and
one JSON response with status 200: `{"decision", "reason", "record", "analysis", "httpStatus"}` (see README).
It never raises: a lost trigger is harmless because the operator's sweeper re-creates missing analyses.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

# --- Copies of mistake_api (constants.py, naming.py); tests/unit/trigger proves they agree. -------------------------
GROUP = "mistakes.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "MistakeAnalysis"
PLURAL = "mistakeanalyses"
NAME_PREFIX = "ma"
LABEL_RECORD = f"{GROUP}/record"
LABEL_USER = f"{GROUP}/user"
LABEL_ORIGIN = f"{GROUP}/origin"
LABEL_PART_OF = "app.kubernetes.io/part-of"
PART_OF = "mistake-analyzer"
ANNOTATION_RECORD_ID = f"{GROUP}/record-id"
ORIGIN = "trigger"
DEFAULT_BUCKET_ID = "origin_question_image"
MAX_IMAGE_IDS = 64
APPWRITE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,35}$")
# Only the trigger sets this: the number of image ids the record really had when more than MAX_IMAGE_IDS were cut.
ANNOTATION_IMAGE_COUNT = f"{GROUP}/original-image-count"

MAX_NAME = 63
HASH_CHARS = 16
_UNSAFE = re.compile(r"[^a-z0-9]+")

# Field bounds of the CRD: values beyond them would make the API answer 422 and leave the record pending.
MAX_USER_ID = 36
MAX_IMAGE_ID = 2000
MAX_REVISION = 64
MAX_WRONG_REASON = 1000
MAX_QUESTION_ID = 100
MAX_EVENT = 512

ACTIONS = frozenset({"create", "update", "upsert"})
DEFAULT_NAMESPACE = "mistake-analyzer"
DEFAULT_TIMEOUT = 3.0
DEFAULT_COLLECTIONS = "mistake_records"


def _digest(parts: list[str]) -> str:
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw = hashlib.sha256(payload).digest()
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")[:HASH_CHARS]


def analysis_name(database_id: str, collection_id: str, record_id: str, revision: str) -> str:
    digest = _digest(["analysis", database_id, collection_id, record_id, revision])
    room = MAX_NAME - len(NAME_PREFIX) - len(digest) - 2
    slug = _UNSAFE.sub("-", record_id.lower()).strip("-")[:room].rstrip("-")
    return f"{NAME_PREFIX}-{slug}-{digest}" if slug else f"{NAME_PREFIX}-{digest}"


def record_key(database_id: str, collection_id: str, record_id: str) -> str:
    return _digest(["record", database_id, collection_id, record_id])


def user_key(user_id: str) -> str:
    return _digest(["user", user_id])


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


# --- Decisions -------------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    decision: str  # queued | already_queued | skipped | failed
    reason: str
    record: str | None = None  # "<database>/<collection>/<record>"
    analysis: str | None = None  # the MistakeAnalysis name
    http_status: int | None = None  # the Kubernetes API's answer, when there was one
    details: dict[str, str] = field(default_factory=dict)  # extra key=value pairs for the log line only

    @property
    def is_error(self) -> bool:
        return self.decision == "failed"

    def response(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "reason": self.reason,
            "record": self.record,
            "analysis": self.analysis,
            "httpStatus": self.http_status,
        }

    def log_line(self) -> str:
        parts = [f"decision={self.decision}", f"reason={self.reason}"]
        if self.record is not None:
            parts.append(f"record={_show(self.record)}")
        if self.analysis is not None:
            parts.append(f"analysis={self.analysis}")
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        parts.extend(f"{key}={_show(value)}" for key, value in self.details.items())
        return "mistake-trigger " + " ".join(parts)


_PLAIN = re.compile(r"^[A-Za-z0-9._:/@+-]{1,160}$")


def _show(value: object, limit: int = 120) -> str:
    """One log token: safe text as is, anything else clipped and JSON-quoted so it can never break the line."""
    text = value if isinstance(value, str) else repr(value)
    if _PLAIN.match(text):
        return text
    return json.dumps(text[:limit] + ("…" if len(text) > limit else ""))


class Skip(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, reason: str, record: str | None = None, **details: str) -> None:
        super().__init__(reason)
        self.outcome = Outcome("skipped", reason, record, details=dict(details))


# --- The event -------------------------------------------------------------------------------------------------------

_EVENT = re.compile(
    r"^(?P<api>databases|tablesdb)\.(?P<db>.+?)\.(?P<kind>collections|tables)\.(?P<col>.+?)"
    r"\.(?P<items>documents|rows)\.(?P<id>.+)\.(?P<action>[A-Za-z]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Target:
    database_id: str
    collection_id: str
    record_id: str
    action: str

    @property
    def label(self) -> str:
        return f"{self.database_id}/{self.collection_id}/{self.record_id}"


def _event_forms(db: str, col: str, rec: str) -> set[str]:
    return {
        f"databases.{db}.collections.{col}.documents.{rec}",
        f"databases.{db}.tables.{col}.rows.{rec}",
        f"tablesdb.{db}.tables.{col}.rows.{rec}",
    }


def _action_of(event: str) -> str:
    match = _EVENT.match(event)
    # collections go with documents and tables with rows; anything else is not a record event.
    if match is None or (match["kind"].lower() == "tables") != (match["items"].lower() == "rows"):
        raise Skip("unsupported_event", event=event)
    action = match["action"].lower()
    if action == "delete":
        raise Skip("delete_event", event=event)
    if action not in ACTIONS:
        raise Skip("unsupported_action", event=event)
    return action


def _read_body(req: Any) -> Any:
    """The decoded JSON body, whichever of the runtime's views is available (text first: `body` is deprecated)."""
    try:
        text = req.body_text
    except AttributeError:
        text = None
    except UnicodeDecodeError as error:
        raise Skip("invalid_encoding") from error
    if text is None:
        try:
            body = req.body
        except ValueError as error:  # the deprecated `body` parses JSON itself and raises on garbage
            raise Skip("invalid_json") from error
        if isinstance(body, dict | list):
            return body
        if isinstance(body, bytes):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError as error:
                raise Skip("invalid_encoding") from error
        else:
            text = "" if body is None else str(body)
    if not text.strip():
        raise Skip("empty_body")
    try:
        return json.loads(text)
    except ValueError as error:
        raise Skip("invalid_json") from error


def _text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) and value else None


def _target(event: str, action: str, body: dict[str, Any]) -> Target:
    """Record ids from the body, cross-checked against the event name (ids may contain dots, so the body wins)."""
    rec = body.get("$id")
    if rec is None or rec == "":
        raise Skip("missing_record_id", event=event)
    if not isinstance(rec, str) or not APPWRITE_ID.match(rec):
        raise Skip("invalid_record_id", record_id=rec if isinstance(rec, str) else type(rec).__name__)
    db = _text(body, "$databaseId")
    col = _text(body, "$collectionId") or _text(body, "$tableId")
    prefix = event[: -len(action) - 1]
    if db is not None and col is not None:
        api, _, rest = prefix.partition(".")
        if f"{api.lower()}.{rest}" not in _event_forms(db, col, rec):
            raise Skip("event_body_mismatch", f"{db}/{col}/{rec}", event=event)
    else:
        # A body without its system ids: take them from the event, whose last id must still be this record's.
        match = _EVENT.match(event)
        assert match is not None  # _action_of accepted it
        if match["id"] != rec:
            raise Skip("event_body_mismatch", event=event, record_id=rec)
        db = db or match["db"]
        col = col or match["col"]
    target = Target(db, col, rec, action)
    if not APPWRITE_ID.match(db) or not APPWRITE_ID.match(col):
        raise Skip("invalid_record_id", target.label)
    return target


def _collections() -> set[str]:
    raw = os.environ.get("MISTAKE_COLLECTION_IDS", "") or DEFAULT_COLLECTIONS
    return {part.strip() for part in raw.split(",") if part.strip()}


# --- The resource ----------------------------------------------------------------------------------------------------


def build_resource(
    target: Target, body: dict[str, Any], event: str, namespace: str, received_at: datetime, priority: int, bucket: str
) -> dict[str, Any]:
    """The MistakeAnalysis for one pending revision. Content is not judged: the operator fails bad records by name."""
    revision = body["$updatedAt"]
    user = body.get("userId")
    # A missing or oversized userId becomes "" so the API still accepts it and the operator fails it as InvalidSpec.
    user_id = user if isinstance(user, str) and len(user) <= MAX_USER_ID else ""
    raw_images = body.get("originalImageIds")
    images = [i for i in raw_images if isinstance(i, str)] if isinstance(raw_images, list) else []
    images = [i[:MAX_IMAGE_ID] for i in images]
    spec: dict[str, Any] = {
        "record": {
            "databaseId": target.database_id,
            "collectionId": target.collection_id,
            "documentId": target.record_id,
        },
        "userId": user_id,
        "imageIds": images[:MAX_IMAGE_IDS],
        "bucketId": bucket,
        "revision": revision,
    }
    wrong_reason = _text(body, "wrongReason")
    question_id = _text(body, "questionId")
    if wrong_reason or question_id:
        reanalysis: dict[str, str] = {}
        if wrong_reason:
            reanalysis["wrongReason"] = wrong_reason[:MAX_WRONG_REASON]
        if question_id:
            reanalysis["previousQuestionId"] = question_id[:MAX_QUESTION_ID]
        spec["reanalysis"] = reanalysis
    spec["priority"] = priority
    spec["cancel"] = False
    spec["source"] = {"origin": ORIGIN, "event": event[:MAX_EVENT], "receivedAt": rfc3339(received_at)}
    annotations = {ANNOTATION_RECORD_ID: target.label}
    if len(images) > MAX_IMAGE_IDS:
        # The CRD caps imageIds at 64; the operator's own limit (at most 64) fails the record as TooManyImages,
        # and this annotation keeps the true count visible.
        annotations[ANNOTATION_IMAGE_COUNT] = str(len(images))
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": analysis_name(target.database_id, target.collection_id, target.record_id, revision),
            "namespace": namespace,
            "labels": {
                LABEL_RECORD: record_key(target.database_id, target.collection_id, target.record_id),
                LABEL_USER: user_key(user_id),
                LABEL_ORIGIN: ORIGIN,
                LABEL_PART_OF: PART_OF,
            },
            "annotations": annotations,
        },
        "spec": spec,
    }


# --- Configuration and the HTTP session ------------------------------------------------------------------------------


class ConfigError(Exception):
    def __init__(self, reason: str, **details: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


@dataclass(frozen=True)
class Config:
    api_url: str
    token: str
    ca_pem: str | None
    namespace: str
    timeout: float
    priority: int
    bucket: str

    @property
    def collection_url(self) -> str:
        return f"{self.api_url}/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{PLURAL}"


def _ca_pem(raw: str) -> str | None:
    """K8S_CA_CERT as PEM text or as base64 of PEM (what `kubectl get secret -o jsonpath` prints)."""
    raw = raw.strip()
    if not raw:
        return None
    if "-----BEGIN CERTIFICATE-----" in raw:
        return raw.replace("\\n", "\n") + "\n"  # variables pasted on one line often carry literal \n
    try:
        decoded = base64.b64decode("".join(raw.split()), validate=True).decode("ascii")
    except (binascii.Error, ValueError) as error:
        raise ConfigError("config_invalid_ca", variable="K8S_CA_CERT") from error
    if "-----BEGIN CERTIFICATE-----" not in decoded:
        raise ConfigError("config_invalid_ca", variable="K8S_CA_CERT")
    return decoded.strip() + "\n"


def load_config() -> Config:
    env = os.environ
    api_url = env.get("K8S_API_URL", "").strip().rstrip("/")
    token = env.get("K8S_TOKEN", "").strip()
    if not api_url:
        raise ConfigError("config_missing", variable="K8S_API_URL")
    if not token:
        raise ConfigError("config_missing", variable="K8S_TOKEN")
    if not api_url.lower().startswith("https://"):
        raise ConfigError("config_insecure_url", variable="K8S_API_URL")  # the bearer token must not travel in clear
    namespace = env.get("K8S_NAMESPACE", "").strip() or DEFAULT_NAMESPACE
    try:
        timeout = float(env.get("K8S_TIMEOUT", "") or DEFAULT_TIMEOUT)
        priority = int(env.get("ANALYSIS_PRIORITY", "") or 0)
    except ValueError as error:
        raise ConfigError("config_invalid_number", variable="K8S_TIMEOUT/ANALYSIS_PRIORITY") from error
    if not 0 < timeout <= 60:
        raise ConfigError("config_invalid_number", variable="K8S_TIMEOUT")
    if not -1000 <= priority <= 1000:
        raise ConfigError("config_invalid_number", variable="ANALYSIS_PRIORITY")
    bucket = env.get("ANALYSIS_BUCKET_ID", "").strip() or DEFAULT_BUCKET_ID
    return Config(api_url, token, _ca_pem(env.get("K8S_CA_CERT", "")), namespace, timeout, priority, bucket)


class Transport:
    """One `requests.Session` per (API URL, CA) kept across invocations of a warm runtime, so TLS is set up once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[str, str | None] | None = None
        self._session: requests.Session | None = None
        self._verify: str | bool = True
        self.builds = 0  # how many sessions were made (tests check reuse)

    def session(self, config: Config) -> tuple[requests.Session, str | bool]:
        key = (config.api_url, config.ca_pem)
        with self._lock:
            if self._session is None or self._key != key:
                if self._session is not None:
                    self._session.close()
                self._verify = self._ca_file(config.ca_pem) if config.ca_pem else True
                session = requests.Session()
                session.trust_env = False  # no proxy or netrc from the environment may see the token
                # Executions of one runtime may run concurrently; keep a connection for each.
                adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=32, max_retries=0)
                session.mount("https://", adapter)
                self._session, self._key = session, key
                self.builds += 1
            return self._session, self._verify

    @staticmethod
    def _ca_file(pem: str) -> str:
        # Named by content so a warm runtime writes each CA once and a changed CA gets a new file.
        path = os.path.join(tempfile.gettempdir(), f"mistake-trigger-ca-{hashlib.sha256(pem.encode()).hexdigest()}.pem")
        if not os.path.exists(path):
            with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(path), delete=False, suffix=".tmp") as handle:
                handle.write(pem)
            os.replace(handle.name, path)
        return path

    def reset(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
            self._session, self._key = None, None
            self.builds = 0


TRANSPORT = Transport()

_STATUS_REASONS = {
    400: "k8s_bad_request",
    401: "k8s_unauthorized",
    403: "k8s_forbidden",
    404: "k8s_not_found",
    422: "k8s_invalid",
    429: "k8s_throttled",
}


def _api_message(response: requests.Response) -> str:
    """The Status message the API server sent, clipped: enough to act on, never the resource we posted."""
    try:
        status = response.json()
    except ValueError:
        return ""
    message = status.get("message", "") if isinstance(status, dict) else ""
    return message[:200] if isinstance(message, str) else ""


def create_analysis(config: Config, resource: dict[str, Any], record: str) -> Outcome:
    name = resource["metadata"]["name"]
    session, verify = TRANSPORT.session(config)
    headers = {
        "Authorization": f"Bearer {config.token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "mistake-analyzer-trigger/1",
    }
    try:
        response = session.post(
            config.collection_url,
            data=json.dumps(resource, ensure_ascii=False).encode("utf-8"),
            headers=headers,
            verify=verify,
            timeout=(config.timeout, config.timeout),
            allow_redirects=False,
        )
    except requests.exceptions.SSLError:
        return Outcome("failed", "k8s_tls_error", record, name)
    except requests.exceptions.ConnectTimeout:
        return Outcome("failed", "k8s_connect_timeout", record, name)
    except requests.exceptions.Timeout:
        return Outcome("failed", "k8s_timeout", record, name)
    except requests.exceptions.ConnectionError:
        return Outcome("failed", "k8s_connection_error", record, name)
    except requests.exceptions.RequestException as error:
        return Outcome("failed", "k8s_request_error", record, name, details={"error": type(error).__name__})
    code = response.status_code
    if code in (200, 201, 202):
        return Outcome("queued", "created", record, name, code)
    if code == 409:
        return Outcome("already_queued", "exists", record, name, code)
    reason = _STATUS_REASONS.get(code, "k8s_server_error" if code >= 500 else "k8s_unexpected_status")
    message = _api_message(response)
    return Outcome("failed", reason, record, name, code, {"message": message} if message else {})


# --- Entry point -----------------------------------------------------------------------------------------------------


def decide(context: Any, received_at: datetime) -> Outcome:
    headers = getattr(context.req, "headers", None)
    event = headers.get("x-appwrite-event", "") if isinstance(headers, Mapping) else ""
    if not event:
        return Outcome("skipped", "missing_event")
    try:
        action = _action_of(event)
        body = _read_body(context.req)
        if not isinstance(body, dict):
            raise Skip("body_not_object", body_type=type(body).__name__)
        target = _target(event, action, body)
        if target.collection_id not in _collections():
            raise Skip("other_collection", target.label)
        status = body.get("analysisStatus")
        if status is not None and status != "pending":
            raise Skip("not_pending", target.label, status=status if isinstance(status, str) else type(status).__name__)
        revision = body.get("$updatedAt")
        if not isinstance(revision, str) or not revision:
            raise Skip("missing_revision", target.label)
        if len(revision) > MAX_REVISION:
            raise Skip("invalid_revision", target.label)
    except Skip as skip:
        return skip.outcome
    try:
        config = load_config()
    except ConfigError as error:
        return Outcome("failed", error.reason, target.label, details=error.details)
    resource = build_resource(target, body, event, config.namespace, received_at, config.priority, config.bucket)
    outcome = create_analysis(config, resource, target.label)
    outcome.details = {"action": action, **outcome.details}
    return outcome


def main(context: Any) -> Any:
    received_at = datetime.now(UTC)
    try:
        outcome = decide(context, received_at)
    except Exception as error:  # the function must answer whatever happens; the sweeper recovers the record
        outcome = Outcome("failed", "internal_error", details={"error": type(error).__name__})
    with contextlib.suppress(Exception):  # a broken logger must not turn a decision into a 500
        (context.error if outcome.is_error else context.log)(outcome.log_line())
    return context.res.json(outcome.response())
