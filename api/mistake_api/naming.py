"""Deterministic, DNS-1123-safe names for analyses and batch Jobs.

The trigger function carries a copy of `analysis_name` (it deploys alone, with `requests` only); a test proves
the two give the same names. Change both together, never one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Sequence

from .constants import JOB_PREFIX, NAME_PREFIX

MAX_NAME = 63
HASH_CHARS = 16  # 80 bits of SHA-256: collisions need ~2^40 names
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_UNSAFE = re.compile(r"[^a-z0-9]+")


def _digest(parts: Sequence[str]) -> str:
    # JSON of the exact strings is unambiguous (no separator can be forged) and stable across Python versions.
    payload = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    raw = hashlib.sha256(payload).digest()
    return base64.b32encode(raw).decode("ascii").lower().rstrip("=")[:HASH_CHARS]


def _slug(text: str, room: int) -> str:
    slug = _UNSAFE.sub("-", text.lower()).strip("-")
    return slug[:room].rstrip("-")


def _compose(prefix: str, readable: str, digest: str) -> str:
    room = MAX_NAME - len(prefix) - len(digest) - 2
    slug = _slug(readable, room)
    return f"{prefix}-{slug}-{digest}" if slug else f"{prefix}-{digest}"


def analysis_name(database_id: str, collection_id: str, record_id: str, revision: str) -> str:
    """Name of the MistakeAnalysis for one revision of one record.

    The readable part is the sanitised record id; the hash covers the exact ids and revision, so ids that differ
    only in case or in characters the sanitising merges still get different names.
    """
    return _compose(NAME_PREFIX, record_id, _digest(["analysis", database_id, collection_id, record_id, revision]))


def record_key(database_id: str, collection_id: str, record_id: str) -> str:
    """Label value shared by every analysis of one record (all revisions)."""
    return _digest(["record", database_id, collection_id, record_id])


def user_key(user_id: str) -> str:
    """Label value for a user: lets kubectl select one user's analyses without putting the id in labels."""
    return _digest(["user", user_id])


def batch_name(members: Sequence[tuple[str, int]]) -> str:
    """Deterministic Job name for a batch of (analysis name, attempt) pairs.

    The same members at the same attempts always give the same Job, so a create retried after a crash answers
    409 instead of making a second Job; a later attempt of the same members gets a new Job.
    """
    parts = sorted(f"{name}#{attempt}" for name, attempt in members)
    return f"{JOB_PREFIX}-{_digest(['batch', *parts])}"


def is_dns1123_label(name: str) -> bool:
    return len(name) <= MAX_NAME and DNS1123_LABEL.match(name) is not None
