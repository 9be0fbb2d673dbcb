"""The schema-driven instance generator always produces a value the schema accepts."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from mistake_testbed.llm import Alternatives, SchemaGenerationError, generate_instance, schema_errors
from mistake_testbed.llm.answers import facts_to_hints

pytestmark = pytest.mark.unit

names = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)


@st.composite
def string_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    low = draw(st.integers(0, 30))
    if draw(st.booleans()):
        schema["minLength"] = low
    if draw(st.booleans()):
        schema["maxLength"] = low + draw(st.integers(0, 30))
    if draw(st.booleans()):
        schema["format"] = draw(st.sampled_from(["date-time", "date", "email", "uri", "uuid"]))
    return schema


@st.composite
def number_schemas(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["integer", "number"]))
    schema: dict[str, Any] = {"type": kind}
    low = draw(st.integers(-1000, 1000))
    if draw(st.booleans()):
        schema["minimum"] = low
    if draw(st.booleans()):
        schema["maximum"] = low + draw(st.integers(2, 100))
    if kind == "integer" and draw(st.booleans()):
        schema["exclusiveMinimum"] = low - 1
    return schema


leaves = st.one_of(
    string_schemas(),
    number_schemas(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    st.lists(st.one_of(names, st.integers()), min_size=1, max_size=5, unique=True).map(lambda v: {"enum": v}),
    st.sampled_from(["a", 1, True]).map(lambda v: {"const": v}),
)


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    return {**schema, "type": [kind, "null"]} if isinstance(kind, str) and kind != "null" else schema


def extend(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    def obj(props: dict[str, dict[str, Any]], strict: bool) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "object", "properties": props, "required": sorted(props)}
        if strict:
            schema["additionalProperties"] = False
        return schema

    def arr(items: dict[str, Any], low: int, extra: int) -> dict[str, Any]:
        return {"type": "array", "items": items, "minItems": low, "maxItems": low + extra}

    return st.one_of(
        st.builds(obj, st.dictionaries(names, children, max_size=5), st.booleans()),
        st.builds(arr, children, st.integers(0, 3), st.integers(0, 3)),
        st.builds(lambda a, b: {"anyOf": [a, b]}, children, children),
        st.builds(lambda a: {"anyOf": [a, {"type": "null"}]}, children),
        st.builds(nullable, children),
    )


schemas = st.recursive(leaves, extend, max_leaves=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas)
def test_generated_instance_validates(schema: dict[str, Any]) -> None:
    assert schema_errors(schema, generate_instance(schema)) == []


@settings(max_examples=60, deadline=None)
@given(schemas, st.dictionaries(names, st.one_of(st.text(max_size=20), st.integers(), st.booleans())))
def test_hints_never_break_validity(schema: dict[str, Any], hints: dict[str, Any]) -> None:
    assert schema_errors(schema, generate_instance(schema, hints)) == []


def test_pydantic_schema_with_refs_and_nullable() -> None:
    class KnowledgePoint(BaseModel):
        name: str = Field(max_length=20)
        role: str

    class Analysis(BaseModel):
        subject: str
        difficulty: int = Field(ge=1, le=5)
        hint: str | None
        points: list[KnowledgePoint] = Field(min_length=2, max_length=3)
        child: Analysis | None = None

    schema = Analysis.model_json_schema()
    value = generate_instance(schema, {"subject": "physics"})
    assert schema_errors(schema, value) == []
    assert value["subject"] == "physics"
    assert 1 <= value["difficulty"] <= 5
    assert len(value["points"]) == 2


def test_hints_adapt_to_enum_vocabulary_and_length() -> None:
    schema = {
        "type": "object",
        "required": ["subject", "questionType", "content"],
        "properties": {
            "subject": {"enum": ["数学", "物理"]},
            "questionType": {"enum": ["SINGLE_CHOICE", "FILL", "SOLVE"]},
            "content": {"type": "string", "maxLength": 5},
        },
    }
    hints = facts_to_hints({"subject": "physics", "type": "fillBlank", "content": "abcdefghij"})
    assert generate_instance(schema, hints) == {"subject": "物理", "questionType": "FILL", "content": "abcde"}


def test_hint_alternatives_take_the_first_accepted() -> None:
    schema = {"type": "object", "required": ["kind"], "properties": {"kind": {"enum": ["b", "c"]}}}
    assert generate_instance(schema, {"kind": Alternatives(("a", "c", "b"))}) == {"kind": "c"}


def test_invalid_or_impossible_schemas_raise() -> None:
    with pytest.raises(SchemaGenerationError):
        generate_instance({"type": "nonsense"})
    with pytest.raises(SchemaGenerationError):
        generate_instance({"type": "integer", "minimum": 5, "maximum": 4})
    with pytest.raises(SchemaGenerationError):
        generate_instance({"$ref": "https://example.com/schema.json"})
