"""Small pure helpers of the emulator: API errors, timestamps, selectors, JSONPath, merge patches."""

from __future__ import annotations

import copy
import datetime
import re
from collections.abc import Callable, Mapping
from typing import Any

JSON = dict[str, Any]


class ApiError(Exception):
    """An error answered as a Kubernetes `Status` body."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        details: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> JSON:
        body: JSON = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(kind_plural: str, group: str, name: str) -> ApiError:
    what = f"{kind_plural}.{group}" if group else kind_plural
    return ApiError(
        404,
        "NotFound",
        f'{what} "{name}" not found',
        {"name": name, "group": group, "kind": kind_plural},
    )


def now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def rfc3339(moment: datetime.datetime | None = None) -> str:
    """Kubernetes' `metav1.Time` form: second precision, `Z` suffix."""
    moment = moment or now()
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return None


def human_duration(seconds: float) -> str:
    """Like apimachinery's `duration.HumanDuration`, which kubectl's AGE column shows."""
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def age(timestamp: str | None) -> str:
    if not timestamp:
        return "<unknown>"
    moment = parse_time(timestamp)
    if moment is None:
        return "<invalid>"
    return human_duration((now() - moment).total_seconds())


# --- selectors ---------------------------------------------------------------------------------------------

_SET_RE = re.compile(r"^\s*([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def _split_top(text: str) -> list[str]:
    """Split a selector on commas that are not inside a `(...)` value set."""
    parts: list[str] = []
    depth = 0
    current = ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current)
    return [p.strip() for p in parts if p.strip()]


Predicate = Callable[[Mapping[str, str]], bool]


def _label_term(term: str) -> Predicate:
    m = _SET_RE.match(term)
    if m:
        key, op, values_text = m.group(1), m.group(2), m.group(3)
        values = {v.strip() for v in values_text.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    if "!=" in term:
        key, value = (s.strip() for s in term.split("!=", 1))
        return lambda labels: labels.get(key) != value
    if "=" in term:
        key, value = (s.strip() for s in re.split("==|=", term, maxsplit=1))
        return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    return lambda labels: term in labels


def parse_label_selector(text: str | None) -> Predicate:
    """Equality- and set-based label selectors (`a=b,c!=d,e in (f,g),!h,i`)."""
    preds = [_label_term(term) for term in _split_top(text or "")]
    return lambda labels: all(p(labels) for p in preds)


def field_value(obj: Mapping[str, Any], path: str) -> str | None:
    """A field selector's value of a dotted path, as a string (booleans as the API prints them)."""
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    if cur is None:
        return None
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


ObjPredicate = Callable[[Mapping[str, Any]], bool]


def _field_term(term: str) -> ObjPredicate:
    if "!=" in term:
        key, value = (s.strip() for s in term.split("!=", 1))
        return lambda obj: (field_value(obj, key) or "") != value
    if "=" in term:
        key, value = (s.strip() for s in re.split("==|=", term, maxsplit=1))
        return lambda obj: (field_value(obj, key) or "") == value
    raise ApiError(400, "BadRequest", f"invalid field selector: {term!r}")


def parse_field_selector(text: str | None) -> ObjPredicate:
    """`metadata.name=x,status.phase!=Running`: any dotted path; a missing field compares as ``""``."""
    preds = [_field_term(term) for term in _split_top(text or "")]
    return lambda obj: all(p(obj) for p in preds)


# --- JSONPath (the subset printer columns use) --------------------------------------------------------------

_TOKEN_RE = re.compile(r"""\[\?\(@\.([\w.-]+)\s*==\s*["']([^"']*)["']\)\]|\[(\d+|\*)\]|\.([\w-]+)|\['([^']+)'\]""")


def jsonpath(obj: Any, path: str) -> list[Any]:
    """Evaluate `.a.b[0].c[?(@.type=="X")].d` and `['dotted.key']`; returns every match."""
    path = path.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path.startswith("$"):
        path = path[1:]
    current: list[Any] = [obj]
    pos = 0
    while pos < len(path):
        m = _TOKEN_RE.match(path, pos)
        if not m:
            return []
        pos = m.end()
        nxt: list[Any] = []
        filt_key, filt_val, index, field, quoted = m.groups()
        for item in current:
            if filt_key is not None and isinstance(item, list):
                for element in item:
                    if isinstance(element, Mapping) and field_value(element, filt_key) == filt_val:
                        nxt.append(element)
            elif index is not None and isinstance(item, list):
                if index == "*":
                    nxt.extend(item)
                elif int(index) < len(item):
                    nxt.append(item[int(index)])
            elif (field or quoted) is not None and isinstance(item, Mapping):
                key = field if field is not None else quoted
                if key in item:
                    nxt.append(item[key])
        current = nxt
    return current


# --- patches ---------------------------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``null`` deletes); returns a new value, inputs untouched."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result: JSON = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
