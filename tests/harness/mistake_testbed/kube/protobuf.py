"""Decode the Kubernetes protobuf request bodies that client-go's typed clients send for a few built-ins.

client-go's typed clientsets (helm's release storage, `kubectl create configmap|secret`) encode request
bodies as protobuf: the `k8s\\x00` magic, then a `runtime.Unknown` envelope holding the object's own protobuf
message. Only the messages below are understood (field numbers from the Kubernetes `generated.proto` files);
any other type answers 415, and clients that can send JSON (kubectl -f, the Python client, kopf) never hit this.
"""

from __future__ import annotations

import base64
import datetime
from typing import Any

MAGIC = b"k8s\x00"

# field number -> (json name, kind, nested schema name)
Schema = dict[int, tuple[str, str, str | None]]

SCHEMAS: dict[str, Schema] = {
    "Unknown": {1: ("typeMeta", "message", "TypeMeta"), 2: ("raw", "bytes", None)},
    "TypeMeta": {1: ("apiVersion", "string", None), 2: ("kind", "string", None)},
    "ObjectMeta": {
        1: ("name", "string", None),
        2: ("generateName", "string", None),
        3: ("namespace", "string", None),
        5: ("uid", "string", None),
        6: ("resourceVersion", "string", None),
        7: ("generation", "varint", None),
        8: ("creationTimestamp", "message", "Time"),
        11: ("labels", "map_string", None),
        12: ("annotations", "map_string", None),
        13: ("ownerReferences", "repeated_message", "OwnerReference"),
        14: ("finalizers", "repeated_string", None),
    },
    "OwnerReference": {
        1: ("kind", "string", None),
        3: ("name", "string", None),
        4: ("uid", "string", None),
        5: ("apiVersion", "string", None),
        6: ("controller", "bool", None),
        7: ("blockOwnerDeletion", "bool", None),
    },
    "Time": {1: ("seconds", "varint", None), 2: ("nanos", "varint", None)},
    "Secret": {
        1: ("metadata", "message", "ObjectMeta"),
        2: ("data", "map_bytes", None),
        3: ("type", "string", None),
        4: ("stringData", "map_string", None),
        5: ("immutable", "bool", None),
    },
    "ConfigMap": {
        1: ("metadata", "message", "ObjectMeta"),
        2: ("data", "map_string", None),
        3: ("binaryData", "map_bytes", None),
        4: ("immutable", "bool", None),
    },
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "varint", None),
        2: ("preconditions", "message", "Preconditions"),
        3: ("orphanDependents", "bool", None),
        4: ("propagationPolicy", "string", None),
        5: ("dryRun", "repeated_string", None),
    },
    "Preconditions": {1: ("uid", "string", None), 2: ("resourceVersion", "string", None)},
}


class UnsupportedProtobufError(ValueError):
    pass


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise UnsupportedProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) for every field of one message."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise UnsupportedProtobufError(f"wire type {wire}")
        out.append((number, wire, value))
    return out


def _decode(data: bytes, schema_name: str) -> dict[str, Any]:
    schema = SCHEMAS[schema_name]
    result: dict[str, Any] = {}
    for number, _, value in _fields(data):
        if number not in schema:
            continue  # fields this layer does not need (managedFields, selfLink, ...)
        name, kind, nested = schema[number]
        if kind == "string":
            result[name] = value.decode("utf-8")
        elif kind == "bytes" or kind == "varint":
            result[name] = value
        elif kind == "bool":
            result[name] = bool(value)
        elif kind == "message":
            assert nested is not None
            result[name] = _decode(value, nested)
        elif kind == "repeated_message":
            assert nested is not None
            result.setdefault(name, []).append(_decode(value, nested))
        elif kind == "repeated_string":
            result.setdefault(name, []).append(value.decode("utf-8"))
        elif kind in {"map_string", "map_bytes"}:
            entry = {n: v for n, _, v in _fields(value)}
            key = entry.get(1, b"").decode("utf-8")
            raw = entry.get(2, b"")
            result.setdefault(name, {})[key] = (
                raw.decode("utf-8") if kind == "map_string" else base64.b64encode(raw).decode()
            )
    return result


def _time(value: dict[str, Any]) -> str:
    moment = datetime.datetime.fromtimestamp(int(value.get("seconds", 0)), tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded request body (one of the supported kinds)."""
    if not body.startswith(MAGIC):
        raise UnsupportedProtobufError("missing the k8s protobuf magic")
    envelope = _decode(body[len(MAGIC) :], "Unknown")
    type_meta = envelope.get("typeMeta") or {}
    kind = type_meta.get("kind", "")
    if kind not in SCHEMAS or kind in {"Unknown", "TypeMeta", "Time"}:
        raise UnsupportedProtobufError(f"protobuf bodies of kind {kind or '?'} are not supported")
    obj = _decode(envelope.get("raw", b""), kind)
    meta = obj.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("creationTimestamp"), dict):
        meta["creationTimestamp"] = _time(meta["creationTimestamp"])
    if type_meta.get("apiVersion"):
        obj["apiVersion"] = type_meta["apiVersion"]
    obj["kind"] = kind
    return obj
