"""Collection, attribute, index and bucket declarations, loaded from `schema.json` (domain.md section 1)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).with_name("schema.json")

# Appwrite's integer attributes default to the signed 64-bit range.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
ATTRIBUTE_TYPES = {"string", "integer", "double", "boolean", "datetime", "email", "url", "enum"}


@dataclass(frozen=True)
class Attribute:
    key: str
    type: str
    size: int = 0
    required: bool = False
    default: Any = None
    array: bool = False
    min: float | None = None
    max: float | None = None
    elements: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Attribute:
        type_ = str(raw["type"])
        if type_ not in ATTRIBUTE_TYPES:
            raise ValueError(f"attribute {raw['key']}: unsupported type {type_}")
        low, high = raw.get("min"), raw.get("max")
        if type_ == "integer":
            low = INT_MIN if low is None else low
            high = INT_MAX if high is None else high
        return cls(
            key=str(raw["key"]),
            type=type_,
            size=int(raw.get("size") or 0),
            required=bool(raw.get("required", False)),
            default=raw.get("default"),
            array=bool(raw.get("array", False)),
            min=low,
            max=high,
            elements=tuple(raw.get("elements") or ()),
        )


@dataclass(frozen=True)
class Index:
    key: str
    type: str  # key | unique | fulltext
    attributes: tuple[str, ...]
    orders: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Index:
        return cls(
            key=str(raw["key"]),
            type=str(raw.get("type", "key")),
            attributes=tuple(raw["attributes"]),
            orders=tuple(raw.get("orders") or ()),
        )


@dataclass(frozen=True)
class Collection:
    id: str
    name: str
    attributes: dict[str, Attribute]
    indexes: tuple[Index, ...] = ()
    permissions: tuple[str, ...] = ()
    document_security: bool = True

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Collection:
        attributes = [Attribute.from_json(a) for a in raw.get("attributes", [])]
        return cls(
            id=str(raw["id"]),
            name=str(raw.get("name", raw["id"])),
            attributes={a.key: a for a in attributes},
            indexes=tuple(Index.from_json(i) for i in raw.get("indexes", [])),
            permissions=tuple(raw.get("permissions", [])),
            document_security=bool(raw.get("documentSecurity", True)),
        )

    @property
    def unique_indexes(self) -> tuple[Index, ...]:
        return tuple(i for i in self.indexes if i.type == "unique")


@dataclass(frozen=True)
class Bucket:
    id: str
    name: str
    maximum_file_size: int = 30_000_000
    allowed_file_extensions: tuple[str, ...] = ()
    compression: str = "none"
    encryption: bool = False
    antivirus: bool = False
    permissions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Bucket:
        return cls(
            id=str(raw["id"]),
            name=str(raw.get("name", raw["id"])),
            maximum_file_size=int(raw.get("maximumFileSize", 30_000_000)),
            allowed_file_extensions=tuple(raw.get("allowedFileExtensions", [])),
            compression=str(raw.get("compression", "none")),
            encryption=bool(raw.get("encryption", False)),
            antivirus=bool(raw.get("antivirus", False)),
            permissions=tuple(raw.get("permissions", [])),
        )


@dataclass(frozen=True)
class Schema:
    databases: dict[str, dict[str, Collection]] = field(default_factory=dict)
    buckets: dict[str, Bucket] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Schema:
        databases = {
            str(db["id"]): {c.id: c for c in (Collection.from_json(x) for x in db.get("collections", []))}
            for db in raw.get("databases", [])
        }
        buckets = {b.id: b for b in (Bucket.from_json(x) for x in raw.get("buckets", []))}
        return cls(databases=databases, buckets=buckets)


def load_schema(path: Path | str | None = None) -> Schema:
    """The schema file at `path`, by default the production one shipped beside this module."""
    raw = json.loads(Path(path or SCHEMA_PATH).read_text(encoding="utf-8"))
    return Schema.from_json(raw)
