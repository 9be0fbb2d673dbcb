"""Server-side `Table` output (`Accept: ...;as=Table`), which is what `kubectl get` prints."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mistake_testbed.kube.util import JSON, age, jsonpath, parse_time

NAME_COLUMN: JSON = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "description": "Name must be unique within a namespace.",
    "priority": 0,
}
AGE_COLUMN: JSON = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def _pod_ready(obj: Mapping[str, Any]) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or []) or len(statuses)
    ready = sum(1 for s in statuses if s.get("ready"))
    return f"{ready}/{total}"


def _pod_status(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "Terminating"
    status = obj.get("status") or {}
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            return str(state["waiting"]["reason"])
        if "terminated" in state and state["terminated"].get("reason"):
            return str(state["terminated"]["reason"])
    return str(status.get("phase") or "Pending")


def _pod_restarts(obj: Mapping[str, Any]) -> int:
    return sum(int(s.get("restartCount") or 0) for s in (obj.get("status") or {}).get("containerStatuses") or [])


def _job_status(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in {"Complete", "Failed"}:
            return str(cond["type"])
    if (obj.get("spec") or {}).get("suspend"):
        return "Suspended"
    return "Running"


def _job_completions(obj: Mapping[str, Any]) -> str:
    spec = obj.get("spec") or {}
    succeeded = int((obj.get("status") or {}).get("succeeded") or 0)
    completions = spec.get("completions")
    return f"{succeeded}/{completions if completions is not None else 1}"


def _job_duration(obj: Mapping[str, Any]) -> str:
    status = obj.get("status") or {}
    start = parse_time(str(status.get("startTime") or ""))
    if start is None:
        return ""
    end = parse_time(str(status.get("completionTime") or ""))
    if end is None:
        return age(str(status["startTime"]))
    return age_between(start, end)


def age_between(start: Any, end: Any) -> str:
    from mistake_testbed.kube.util import human_duration

    return human_duration((end - start).total_seconds())


# Built-in resources with columns of their own: (column definition, cell function).
_BUILTIN: dict[tuple[str, str], list[tuple[JSON, Any]]] = {
    ("", "pods"): [
        ({"name": "Ready", "type": "string"}, _pod_ready),
        ({"name": "Status", "type": "string"}, _pod_status),
        ({"name": "Restarts", "type": "string"}, lambda o: str(_pod_restarts(o))),
    ],
    ("batch", "jobs"): [
        ({"name": "Status", "type": "string"}, _job_status),
        ({"name": "Completions", "type": "string"}, _job_completions),
        ({"name": "Duration", "type": "string"}, _job_duration),
    ],
    ("", "namespaces"): [
        ({"name": "Status", "type": "string"}, lambda o: str((o.get("status") or {}).get("phase") or "")),
    ],
}


def _cell(column: Mapping[str, Any], obj: Mapping[str, Any]) -> Any:
    values = jsonpath(obj, str(column.get("jsonPath") or ""))
    if not values:
        return None
    value = values[0]
    col_type = column.get("type")
    if col_type == "date":
        return age(str(value))
    if col_type == "integer" and isinstance(value, int | float):
        return int(value)
    if col_type == "number" and isinstance(value, int | float):
        return value
    if col_type == "boolean" and isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value
    if len(values) > 1 or isinstance(value, list | dict):
        return ",".join(json.dumps(v) if isinstance(v, list | dict) else str(v) for v in values)
    return str(value)


def _partial(obj: Mapping[str, Any]) -> JSON:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata", {})}


def render_table(
    group: str,
    plural: str,
    printer_columns: list[JSON] | None,
    objects: list[JSON],
    resource_version: str,
    include_object: str = "Metadata",
) -> JSON:
    definitions: list[JSON] = [dict(NAME_COLUMN)]
    cells_for: list[Any] = [lambda o: (o.get("metadata") or {}).get("name", "")]
    if printer_columns:
        for col in printer_columns:
            definitions.append(
                {
                    "name": col.get("name", ""),
                    "type": "string" if col.get("type") == "date" else col.get("type", "string"),
                    "format": col.get("format", ""),
                    "description": col.get("description", ""),
                    "priority": int(col.get("priority", 0)),
                }
            )
            cells_for.append(lambda o, c=col: _cell(c, o))
    else:
        for definition, fn in _BUILTIN.get((group, plural), []):
            definitions.append({"format": "", "description": "", "priority": 0, **definition})
            cells_for.append(fn)
        definitions.append({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0})
        cells_for.append(lambda o: age((o.get("metadata") or {}).get("creationTimestamp")))
    rows = []
    for obj in objects:
        row: JSON = {"cells": [fn(obj) for fn in cells_for]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = _partial(obj)
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": definitions,
        "rows": rows,
    }


def wants_table(accept: str) -> bool:
    return "as=Table" in accept
