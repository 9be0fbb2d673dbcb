"""CRD structural schemas: defaulting, pruning and validation the way the API server applies them.

The OpenAPI v3 dialect of CRDs differs from JSON Schema in a few ways that matter here:
`nullable`, `x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields` (pruning is the default),
`x-kubernetes-embedded-resource`, and formats such as `date-time`. CEL rules (`x-kubernetes-validations`) and
list-type uniqueness are not evaluated.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

import jsonschema
import jsonschema.validators

from mistake_testbed.kube.util import JSON

_DATE_TIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time")
def _is_date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(_DATE_TIME_RE.match(value))


@_FORMATS.checks("date")
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(_DATE_RE.match(value))


_DROP = {
    "nullable",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-embedded-resource",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
    "x-kubernetes-validations",
    "default",
    "example",
    "externalDocs",
}


def to_json_schema(schema: Any) -> Any:
    """Translate an OpenAPI v3 structural schema into plain JSON Schema (draft 7)."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out: JSON = {}
    for key, value in schema.items():
        if key in _DROP:
            continue
        if key in {"properties", "patternProperties", "definitions"} and isinstance(value, Mapping):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        elif key in {"items", "additionalProperties", "not"} or key in {"allOf", "anyOf", "oneOf"}:
            out[key] = to_json_schema(value)
        else:
            out[key] = value
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        int_or_string: list[JSON] = [{"type": "integer"}, {"type": "string"}]
        if "anyOf" in out:
            out = {"allOf": [{"anyOf": int_or_string}, out]}
        else:
            out["anyOf"] = int_or_string
    if schema.get("nullable"):
        if "type" in out:
            out["type"] = [out["type"], "null"] if isinstance(out["type"], str) else [*out["type"], "null"]
        out = {"anyOf": [{"type": "null"}, out]} if "anyOf" in out or "oneOf" in out or "enum" in out else out
    return out


class StructuralSchema:
    """One CRD version's `openAPIV3Schema`, ready to default, prune and validate objects."""

    def __init__(self, schema: Mapping[str, Any] | None) -> None:
        self.raw: JSON = dict(schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True})
        top = copy.deepcopy(self.raw)
        # The API server validates metadata itself; the CRD schema may only restrict name and generateName.
        props = top.setdefault("properties", {})
        props.pop("metadata", None)
        props.pop("apiVersion", None)
        props.pop("kind", None)
        self._validator = jsonschema.Draft7Validator(to_json_schema(top), format_checker=_FORMATS)

    def transition_errors(self, old: JSON, new: JSON) -> list[tuple[str, str, Any]]:
        """The one CEL transition rule evaluated: `self == oldSelf` (an immutable field)."""
        errors: list[tuple[str, str, Any]] = []
        _immutable(self.raw, [], old, new, errors)
        return errors

    def default(self, obj: JSON) -> JSON:
        obj = copy.deepcopy(obj)
        _apply_defaults(obj, self.raw)
        return obj

    def prune(self, obj: JSON) -> tuple[JSON, list[str]]:
        """Drop fields the schema does not know; returns the object and the dropped paths."""
        # The API server owns metadata (name, labels, ...): the CRD schema never prunes it.
        metadata = obj.get("metadata")
        body = copy.deepcopy({k: v for k, v in obj.items() if k != "metadata"})
        dropped: list[str] = []
        schema = dict(
            self.raw, properties={k: v for k, v in (self.raw.get("properties") or {}).items() if k != "metadata"}
        )
        _prune(body, schema, "", dropped, keep={"apiVersion", "kind"})
        if metadata is not None:
            body["metadata"] = copy.deepcopy(metadata)
        return body, dropped

    def errors(self, obj: JSON) -> list[tuple[str, str, Any]]:
        """(field path, message, bad value) for every violation, sorted for stable messages."""
        result: list[tuple[str, str, Any]] = []
        for error in self._validator.iter_errors({k: v for k, v in obj.items() if k != "metadata"}):
            parts = [str(p) if isinstance(p, str) else f"[{p}]" for p in error.absolute_path]
            field = ".".join(parts).replace(".[", "[")
            result.append((field, _message(error, field), error.instance))
        return sorted(result, key=lambda item: item[0])


def _message(error: jsonschema.ValidationError, field: str) -> str:
    where = field or "<root>"
    if error.validator == "type":
        wanted: Any = error.validator_value
        wanted_text = wanted if isinstance(wanted, str) else " or ".join(str(w) for w in wanted)
        return f"{where} in body must be of type {wanted_text}: {_show(error.instance)}"
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{where + '.' if field else ''}{missing}: Required value"
    if error.validator == "enum":
        options: Any = error.validator_value
        allowed = ", ".join(_show(v) for v in options)
        return f"{where}: Unsupported value: {_show(error.instance)}: supported values: {allowed}"
    if error.validator in {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}:
        return f"{where} in body should be {error.validator} {error.validator_value}"
    if error.validator in {"minLength", "maxLength", "minItems", "maxItems", "pattern", "format"}:
        return f"{where} in body {error.message}"
    return f"{where}: {error.message}"


def _show(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


_MISSING = object()


def _immutable(
    schema: Mapping[str, Any], path: list[str], old: Any, new: Any, errors: list[tuple[str, str, Any]]
) -> None:
    if old is _MISSING or new is _MISSING:
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        if str(rule.get("rule", "")).replace(" ", "") == "self==oldSelf" and old != new:
            field = ".".join(path)
            errors.append((field, f"{field}: Invalid value: {rule.get('message') or 'field is immutable'}", new))
    props = schema.get("properties") or {}
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key, sub in props.items():
            if isinstance(sub, Mapping):
                _immutable(sub, [*path, key], old.get(key, _MISSING), new.get(key, _MISSING), errors)


def _apply_defaults(value: Any, schema: Mapping[str, Any]) -> None:
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for key, sub in props.items():
            if key not in value and isinstance(sub, Mapping) and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value and isinstance(sub, Mapping):
                _apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key, item in value.items():
                if key not in props:
                    _apply_defaults(item, extra)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for item in value:
                _apply_defaults(item, items)


def _prune(value: Any, schema: Mapping[str, Any], path: str, dropped: list[str], *, keep: set[str]) -> None:
    if schema.get("x-kubernetes-preserve-unknown-fields") and "properties" not in schema:
        return
    if schema.get("x-kubernetes-embedded-resource"):
        keep = {"apiVersion", "kind", "metadata"}
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        preserve = bool(schema.get("x-kubernetes-preserve-unknown-fields"))
        for key in list(value):
            sub_path = f"{path}.{key}" if path else key
            if props is not None and key in props:
                _prune(value[key], props[key], sub_path, dropped, keep=set())
            elif isinstance(extra, Mapping):
                _prune(value[key], extra, sub_path, dropped, keep=set())
            elif extra is True or preserve or key in keep:
                continue
            elif props is not None or extra is False:
                dropped.append(sub_path)
                del value[key]
            elif schema.get("type") == "object" and props is None and extra is None:
                # An object schema without properties keeps nothing unless told to preserve.
                dropped.append(sub_path)
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            for i, item in enumerate(value):
                _prune(item, items, f"{path}[{i}]", dropped, keep=set())


def validation_error_message(kind: str, group: str, name: str, errors: list[tuple[str, str, Any]]) -> str:
    what = f"{kind}.{group}" if group else kind
    causes = ", ".join(message for _, message, _ in errors)
    if len(errors) > 1:
        causes = f"[{causes}]"
    return f'{what} "{name}" is invalid: {causes}'
