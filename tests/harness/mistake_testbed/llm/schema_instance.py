"""Build a JSON value that satisfies a JSON Schema, optionally steered by hints.

The test server answers structured-output requests with an instance of the schema the client sent, so a
client under test always gets something its own validator accepts. Hints (property name -> value) let a
fixture put known facts (subject, type, content, ...) wherever the schema has a matching property name.
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

JSON = Any

# Nesting depth after which the generator prefers the smallest option (null branch, empty array, required only),
# so recursive schemas terminate.
MAX_DEPTH = 12


class SchemaGenerationError(ValueError):
    """The generator could not build a value the schema accepts (e.g. an unsupported `pattern`)."""


@dataclass(frozen=True)
class Alternatives:
    """Several acceptable hint values, tried in order (e.g. "fillBlank", "fill", "fill_blank")."""

    values: tuple[JSON, ...]


def normalise_key(name: str) -> str:
    """Property names compare case- and separator-insensitively: `question_type` == `questionType`."""
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclass
class Hints:
    """Values to use for properties by (normalised) name, at any depth of the generated object."""

    values: dict[str, JSON] = field(default_factory=dict)

    @classmethod
    def of(cls, mapping: Mapping[str, JSON] | None) -> Hints:
        return cls({normalise_key(k): v for k, v in (mapping or {}).items()})

    def get(self, name: str) -> tuple[bool, JSON]:
        key = normalise_key(name)
        return (key in self.values, self.values.get(key))


@lru_cache(maxsize=512)
def _validator_for(schema_text: str) -> Draft202012Validator:
    schema = json.loads(schema_text)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise SchemaGenerationError(f"invalid JSON Schema: {exc.message}") from exc
    return Draft202012Validator(schema)


def validator_for(schema: Mapping[str, JSON]) -> Draft202012Validator:
    """A cached validator: building one is far more expensive than validating a small instance."""
    return _validator_for(json.dumps(schema, sort_keys=True, ensure_ascii=False))


def schema_errors(schema: Mapping[str, JSON], instance: JSON) -> list[str]:
    """Readable validation errors, empty when the instance is valid."""
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in validator_for(schema).iter_errors(instance)
    ]


class _Generator:
    def __init__(self, root: Mapping[str, JSON], hints: Hints) -> None:
        self.root = root
        self.hints = hints

    # --- helpers -------------------------------------------------------------------------------------------
    def resolve(self, schema: Mapping[str, JSON]) -> Mapping[str, JSON]:
        seen = 0
        while "$ref" in schema:
            ref = schema["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise SchemaGenerationError(f"only local $ref is supported, got {ref!r}")
            target: JSON = self.root
            for part in ref.lstrip("#").strip("/").split("/") if ref != "#" else []:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            # Sibling keywords next to $ref (2020-12 allows them) refine the target.
            merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
            schema = merged
            seen += 1
            if seen > 50:
                raise SchemaGenerationError(f"$ref cycle at {ref}")
        return schema

    def accepts(self, schema: Mapping[str, JSON], value: JSON) -> bool:
        sub = dict(schema)
        if "$defs" in self.root and "$defs" not in sub:
            sub["$defs"] = self.root["$defs"]
        if "definitions" in self.root and "definitions" not in sub:
            sub["definitions"] = self.root["definitions"]
        try:
            return bool(validator_for(sub).is_valid(value))
        except SchemaGenerationError:
            return False

    def hinted(self, schema: Mapping[str, JSON], hint: JSON) -> tuple[bool, JSON]:
        """The first hint candidate the sub-schema accepts, adapted (enum case, string length) if needed."""
        candidates = hint.values if isinstance(hint, Alternatives) else (hint,)
        resolved = self.resolve(schema)
        for candidate in candidates:
            if self.accepts(schema, candidate):
                return True, candidate
        for candidate in candidates:
            if isinstance(candidate, str):
                enum = resolved.get("enum")
                if isinstance(enum, list):
                    for option in enum:
                        if isinstance(option, str) and option.lower() == candidate.lower():
                            return True, option
                max_len = resolved.get("maxLength")
                if isinstance(max_len, int) and len(candidate) > max_len and self.accepts(schema, candidate[:max_len]):
                    return True, candidate[:max_len]
        return False, None

    # --- generation ----------------------------------------------------------------------------------------
    def generate(self, schema: JSON, depth: int, name: str = "") -> JSON:
        if schema is True or schema == {}:
            return f"{name or 'value'}"
        if schema is False:
            raise SchemaGenerationError("schema `false` accepts nothing")
        schema = self.resolve(cast(Mapping[str, JSON], schema))
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            options = schema["enum"]
            if not options:
                raise SchemaGenerationError("empty enum")
            return options[0]
        if "allOf" in schema:
            merged: dict[str, JSON] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                for key, value in part.items():
                    if key in ("properties",) and key in merged:
                        merged[key] = {**merged[key], **value}
                    elif key == "required" and key in merged:
                        merged[key] = [*merged[key], *value]
                    else:
                        merged[key] = value
            return self.generate(merged, depth, name)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                branches: Sequence[JSON] = schema[key]
                base = {k: v for k, v in schema.items() if k != key}
                # Deep down, prefer a null branch so recursive structures end.
                order = list(branches)
                if depth > MAX_DEPTH:
                    order.sort(key=lambda b: 0 if self.resolve(b).get("type") == "null" else 1)
                else:
                    order.sort(key=lambda b: 1 if self.resolve(b).get("type") == "null" else 0)
                last_error: Exception | None = None
                for branch in order:
                    try:
                        value = self.generate({**base, **self.resolve(branch)}, depth + 1, name)
                    except SchemaGenerationError as exc:
                        last_error = exc
                        continue
                    if key == "anyOf" or self.accepts(schema, value):
                        return value
                raise SchemaGenerationError(f"no {key} branch could be generated: {last_error}")
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or ["null"]
            if depth > MAX_DEPTH and "null" in kind:
                kinds = ["null"]
            kind = kinds[0]
        if kind is None:
            kind = self.infer_type(schema)
        method = getattr(self, f"gen_{kind}", None)
        if method is None:
            raise SchemaGenerationError(f"unsupported type {kind!r}")
        return method(schema, depth, name)

    @staticmethod
    def infer_type(schema: Mapping[str, JSON]) -> str:
        if "properties" in schema or "required" in schema or "additionalProperties" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema or "minItems" in schema:
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return "string"

    def gen_null(self, schema: Mapping[str, JSON], depth: int, name: str) -> JSON:
        return None

    def gen_boolean(self, schema: Mapping[str, JSON], depth: int, name: str) -> JSON:
        return False

    def gen_object(self, schema: Mapping[str, JSON], depth: int, name: str) -> JSON:
        properties: Mapping[str, JSON] = schema.get("properties", {})
        required = list(schema.get("required", []))
        keys = list(properties) if depth <= MAX_DEPTH else [k for k in properties if k in required]
        keys += [k for k in required if k not in keys]
        result: dict[str, JSON] = {}
        for key in keys:
            sub = properties.get(key, schema.get("additionalProperties", True))
            if sub is False:
                sub = True
            found, hint = self.hints.get(key)
            if found and sub is not True:
                ok, value = self.hinted(sub, hint)
                if ok:
                    result[key] = value
                    continue
            elif found:
                result[key] = hint.values[0] if isinstance(hint, Alternatives) else hint
                continue
            result[key] = self.generate(sub, depth + 1, key)
        min_props = schema.get("minProperties", 0)
        extra = schema.get("additionalProperties", True)
        index = 0
        while len(result) < min_props and extra is not False:
            index += 1
            result[f"extra{index}"] = self.generate(extra, depth + 1, f"extra{index}")
        return result

    def gen_array(self, schema: Mapping[str, JSON], depth: int, name: str) -> JSON:
        min_items = int(schema.get("minItems", 0))
        max_items = schema.get("maxItems")
        prefix: Sequence[JSON] = schema.get("prefixItems", [])
        items = schema.get("items", True)
        # One element shows the shape of a list; zero when the depth budget is spent.
        count = max(min_items, len(prefix), 0 if depth > MAX_DEPTH else 1)
        if isinstance(max_items, int):
            count = min(count, max_items)
        if items is False:
            count = min(count, len(prefix))
        values: list[JSON] = []
        for index in range(count):
            sub = prefix[index] if index < len(prefix) else items
            value = self.generate(sub, depth + 1, f"{name}{index + 1}")
            if schema.get("uniqueItems") and value in values:
                value = self.distinct(sub, values, depth, f"{name}{index + 1}")
            values.append(value)
        return values

    def distinct(self, schema: JSON, taken: list[JSON], depth: int, name: str) -> JSON:
        resolved = self.resolve(schema) if isinstance(schema, Mapping) else {}
        for option in resolved.get("enum", []):
            if option not in taken:
                return option
        kind = resolved.get("type")
        for n in range(1, 1000):
            if kind in ("integer", "number"):
                candidate: JSON = self.generate(schema, depth + 1, name) + n
            else:
                candidate = f"{name}-{n}"
            if candidate not in taken and self.accepts(resolved, candidate):
                return candidate
        raise SchemaGenerationError("could not generate unique array items")

    def gen_integer(self, schema: Mapping[str, JSON], depth: int, name: str) -> JSON:
        low = schema.get("minimum")
        high = schema.get("maximum")
        if "exclusiveMinimum" in schema:
            low = max(low if low is not None else -(10**18), int(schema["exclusiveMinimum"]) + 1)
        if "exclusiveMaximum" in schema:
            high = min(high if high is not None else 10**18, int(-(-schema["exclusiveMaximum"] // 1)) - 1)
        value = int(-(-low // 1)) if low is not None else 0 if high is None or high >= 0 else int(high)
        step = schema.get("multipleOf")
        if isinstance(step, int) and step > 0 and value % step:
            value += step - value % step
        if high is not None and value > high:
            raise SchemaGenerationError(f"no integer in [{low}, {high}] for {name}")
        return value

    def gen_number(self, schema: Mapping[str, JSON], depth: int, name: str) -> JSON:
        low = schema.get("minimum", schema.get("exclusiveMinimum"))
        high = schema.get("maximum", schema.get("exclusiveMaximum"))
        if low is not None and high is not None:
            value: float = (float(low) + float(high)) / 2
        elif low is not None:
            value = float(low) + (1 if "exclusiveMinimum" in schema else 0)
        elif high is not None:
            value = min(0.0, float(high) - 1)
        else:
            value = 0.0
        step = schema.get("multipleOf")
        if step:
            value = (value // step + (1 if value % step else 0)) * step
        return int(value) if float(value).is_integer() and schema.get("type") == "integer" else value

    def gen_string(self, schema: Mapping[str, JSON], depth: int, name: str) -> JSON:
        fmt = schema.get("format")
        formatted = {
            "date-time": "2026-01-01T00:00:00Z",
            "date": "2026-01-01",
            "time": "00:00:00Z",
            "email": "student@example.com",
            "uri": "https://example.com/",
            "uuid": "00000000-0000-4000-8000-000000000000",
            "ipv4": "127.0.0.1",
        }
        text = formatted.get(fmt, f"{name or 'text'}") if isinstance(fmt, str) else f"{name or 'text'}"
        min_len = int(schema.get("minLength", 0))
        max_len = schema.get("maxLength")
        if len(text) < min_len:
            text = (text * (min_len // max(len(text), 1) + 1))[:min_len]
        if isinstance(max_len, int):
            text = text[:max_len]
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and not self.accepts({"type": "string", "pattern": pattern}, text):
            text = self.match_pattern(pattern, min_len, max_len)
        return text

    def match_pattern(self, pattern: str, min_len: int, max_len: int | None) -> str:
        # Simple patterns (character classes, anchors) usually accept one of these.
        pool = ["a", "A", "0", "a1", "abc", "A1", "x_1", "2026-01-01", "aaaa", "0000", "math", "A-1", "_"]
        pool += [ch * max(min_len, 1) for ch in string.ascii_letters + string.digits]
        for candidate in pool:
            if len(candidate) < min_len or (max_len is not None and len(candidate) > max_len):
                continue
            if self.accepts({"type": "string", "pattern": pattern}, candidate):
                return candidate
        raise SchemaGenerationError(f"cannot generate a string for pattern {pattern!r}")


def generate_instance(schema: Mapping[str, JSON], hints: Mapping[str, JSON] | Hints | None = None) -> JSON:
    """An instance of `schema`, using hint values where the schema accepts them; always schema-valid.

    Raises SchemaGenerationError when the schema is invalid or nothing valid could be built.
    """
    hint_set = hints if isinstance(hints, Hints) else Hints.of(hints)
    validator_for(schema)  # raises SchemaGenerationError on an invalid schema
    value = _Generator(schema, hint_set).generate(schema, 0)
    errors = schema_errors(schema, value)
    if errors:
        raise SchemaGenerationError("generated value does not validate: " + "; ".join(errors[:3]))
    return value
