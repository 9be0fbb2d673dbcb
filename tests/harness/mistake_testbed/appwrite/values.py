"""Attribute value checks and normalisation, with the messages of Appwrite's document Structure validator."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from .errors import AppwriteError, invalid_structure
from .schema import Attribute, Collection

# Keys the SDK or a caller may echo back inside `data`; Appwrite manages them itself.
SYSTEM_KEYS = frozenset(
    {"$id", "$sequence", "$collectionId", "$tableId", "$databaseId", "$createdAt", "$updatedAt", "$permissions"}
)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s]+$")


def format_datetime(moment: datetime) -> str:
    """Appwrite's wire format: milliseconds and an explicit +00:00 offset."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+00:00"


def now_iso() -> str:
    return format_datetime(datetime.now(UTC))


def parse_datetime(value: Any) -> str | None:
    """The value in Appwrite's stored form, or None when it is not a date Appwrite would accept."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T", 1))
    except ValueError:
        return None
    return format_datetime(moment)


def _describe(attr: Attribute) -> tuple[str, str]:
    """(label, description) as utopia's Structure validator words it for this attribute."""
    if attr.type == "string":
        return "format", f"Value must be a valid string and no longer than {attr.size} chars"
    if attr.type == "integer":
        if attr.min is not None and attr.max is not None and (attr.min, attr.max) != (-(2**63), 2**63 - 1):
            return "format", f"Value must be a valid range between {attr.min:g} and {attr.max:g}"
        return "type", "Value must be a valid integer"
    if attr.type == "double":
        if attr.min is not None and attr.max is not None:
            return "format", f"Value must be a valid range between {attr.min:g} and {attr.max:g}"
        return "type", "Value must be a valid float"
    if attr.type == "boolean":
        return "type", "Value must be a valid boolean"
    if attr.type == "datetime":
        return "format", "Value must be valid date between 0000 and 9999."
    if attr.type == "email":
        return "format", "Value must be a valid email address"
    if attr.type == "url":
        return "format", "Value must be a valid URL"
    return "format", f"Value must be one of ({', '.join(attr.elements)})"


def _check_scalar(attr: Attribute, value: Any) -> tuple[bool, Any]:
    """(valid, normalised value) for one non-null element."""
    kind = attr.type
    if kind in {"string", "email", "url", "enum"}:
        if not isinstance(value, str) or (attr.size and len(value) > attr.size):
            return False, value
        if kind == "email" and not _EMAIL.match(value):
            return False, value
        if kind == "url" and not _URL.match(value):
            return False, value
        if kind == "enum" and value not in attr.elements:
            return False, value
        return True, value
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return False, value
        low = attr.min if attr.min is not None else -(2**63)
        high = attr.max if attr.max is not None else 2**63 - 1
        return low <= value <= high, value
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return False, value
        if attr.min is not None and value < attr.min:
            return False, value
        if attr.max is not None and value > attr.max:
            return False, value
        return True, value
    if kind == "boolean":
        return isinstance(value, bool), value
    if kind == "datetime":
        normalised = parse_datetime(value)
        return normalised is not None, normalised
    return False, value


def _check_value(attr: Attribute, value: Any, rows: bool) -> Any:
    if value is None:
        return None
    noun = "Column" if rows else "Attribute"
    if attr.array:
        if not isinstance(value, list):
            raise invalid_structure(rows, f'{noun} "{attr.key}" must be an array')
        out = []
        for index, item in enumerate(value):
            ok, normalised = _check_scalar(attr, item)
            if not ok:
                label, text = _describe(attr)
                raise invalid_structure(rows, f"{noun} \"{attr.key}['{index}']\" has invalid {label}. {text}")
            out.append(normalised)
        return out
    if isinstance(value, list):
        raise invalid_structure(rows, f'{noun} "{attr.key}" must not be an array')
    ok, normalised = _check_scalar(attr, value)
    if not ok:
        label, text = _describe(attr)
        raise invalid_structure(rows, f'{noun} "{attr.key}" has invalid {label}. {text}')
    return normalised


def user_data(raw: Any, rows: bool) -> dict[str, Any]:
    """The `data` parameter as a dict without system keys (Appwrite also accepts it as a JSON string)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise AppwriteError(400, "general_argument_invalid", "Invalid `data` param: Value must be a valid object.")
    return {k: v for k, v in raw.items() if k not in SYSTEM_KEYS}


def apply_defaults(collection: Collection, data: dict[str, Any]) -> dict[str, Any]:
    """Every attribute present: given value, else the declared default, else null (as Appwrite returns them)."""
    out: dict[str, Any] = {}
    for key, attr in collection.attributes.items():
        if key in data:
            out[key] = data[key]
        elif attr.default is not None:
            out[key] = list(attr.default) if isinstance(attr.default, list) else attr.default
        else:
            out[key] = None
    # Unknown keys stay so that validation can refuse them.
    out.update({k: v for k, v in data.items() if k not in collection.attributes})
    return out


def validate(collection: Collection, data: dict[str, Any], rows: bool) -> dict[str, Any]:
    """The complete attribute set, normalised; raises `*_invalid_structure` in the validator's own order."""
    for key, attr in collection.attributes.items():
        if attr.required and data.get(key) is None:
            raise invalid_structure(rows, f'Missing required {"column" if rows else "attribute"} "{key}"')
    for key in data:
        if key not in collection.attributes:
            raise invalid_structure(rows, f'Unknown {"column" if rows else "attribute"}: "{key}"')
    return {key: _check_value(attr, data.get(key), rows) for key, attr in collection.attributes.items()}
