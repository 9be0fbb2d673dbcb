"""What the model "says": fixture lookup by image, and answer text for each response format."""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mistake_api.subjects import SUBJECTS
from mistake_testbed.llm.schema_instance import (
    JSON,
    Alternatives,
    Hints,
    SchemaGenerationError,
    generate_instance,
    schema_errors,
)

# Synonyms so a fixture's facts land in whichever vocabulary the client's schema uses.
TYPE_SYNONYMS = {
    "choice": ("choice", "single_choice", "singleChoice", "multiple_choice", "multipleChoice", "选择题"),
    "fillBlank": ("fillBlank", "fill", "fill_blank", "fill-in-blank", "fill_in_blank", "blank", "填空题"),
    "shortAnswer": ("shortAnswer", "solve", "short_answer", "calculation", "answer", "essay", "解答题"),
    "essay": ("essay", "shortAnswer", "solve", "writing", "作文"),
}
KEY_ALIASES = {
    "content": ("content", "text", "questionText", "question_text", "questionContent", "stem", "ocrText"),
    "options": ("options", "choices"),
    "answer": ("answer", "correctAnswer", "correct_answer", "finalAnswer", "final_answer"),
    "type": ("type", "questionType", "question_type"),
    "subject": ("subject", "subjectCode", "subject_code"),
}

DEFAULT_FACTS: dict[str, JSON] = {
    "subject": "math",
    "type": "shortAnswer",
    "content": "计算 \\(1 + 1\\) 的值。",
    "options": [],
    "answer": "2",
}

FormatKind = Literal["text", "json_object", "json_schema"]


@dataclass(frozen=True)
class ResponseFormat:
    kind: FormatKind = "text"
    name: str = "response"
    schema: Mapping[str, JSON] | None = None
    strict: bool = False

    @property
    def schema_key(self) -> str:
        return json.dumps(self.schema, sort_keys=True, ensure_ascii=False) if self.schema is not None else ""


@dataclass
class AnalysisFixture:
    """Expected analysis for a photo: the facts the model would read off it."""

    name: str
    facts: dict[str, JSON]
    response: dict[str, JSON] | None = None
    """An exact object to return when it validates against the requested schema (and in json_object mode)."""
    markers: tuple[str, ...] = ()
    sha256s: tuple[str, ...] = ()

    def hints(self) -> Hints:
        return facts_to_hints(self.facts)


def facts_to_hints(facts: Mapping[str, JSON]) -> Hints:
    hints: dict[str, JSON] = {}
    for key, value in facts.items():
        if key == "subject" and isinstance(value, str):
            value = Alternatives((value, SUBJECTS.get(value, value)))
        elif key == "type" and isinstance(value, str):
            value = Alternatives(TYPE_SYNONYMS.get(value, (value,)))
        for alias in KEY_ALIASES.get(key, (key,)):
            hints[alias] = value
    return Hints.of(hints)


class FixtureTable:
    """Fixtures by image sha256 and by sample marker; thread-safe."""

    def __init__(self, fixtures: Iterable[AnalysisFixture] = ()) -> None:
        self._lock = threading.Lock()
        self._by_name: dict[str, AnalysisFixture] = {}
        self._by_key: dict[str, AnalysisFixture] = {}
        for fixture in fixtures:
            self.add(fixture)

    def add(self, fixture: AnalysisFixture) -> None:
        with self._lock:
            self._by_name[fixture.name] = fixture
            for key in (fixture.name, *fixture.markers, *fixture.sha256s):
                self._by_key[key] = fixture

    def remove(self, name: str) -> bool:
        with self._lock:
            fixture = self._by_name.pop(name, None)
            if fixture is None:
                return False
            self._by_key = {k: v for k, v in self._by_key.items() if v is not fixture}
            return True

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._by_name)

    def get(self, name: str) -> AnalysisFixture | None:
        with self._lock:
            return self._by_name.get(name)

    def lookup(self, sha256s: Iterable[str], markers: Iterable[str]) -> AnalysisFixture | None:
        """Exact bytes first (sha256), then the embedded marker (survives re-encoding)."""
        with self._lock:
            for key in (*sha256s, *markers):
                if key in self._by_key:
                    return self._by_key[key]
        return None


class AnswerBuilder:
    """Builds the assistant's content for a format and fixture; caches schema-driven instances."""

    def __init__(self, cache_size: int = 1024) -> None:
        self._cache: OrderedDict[tuple[str, str], JSON] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def instance(self, fmt: ResponseFormat, fixture: AnalysisFixture | None) -> JSON:
        """A schema-valid object (json_schema) or a plain object (json_object)."""
        if fmt.kind == "json_object" or fmt.schema is None:
            if fixture is not None and fixture.response is not None:
                return fixture.response
            return dict(fixture.facts if fixture is not None else DEFAULT_FACTS)
        key = (fmt.schema_key, fixture.name if fixture is not None else "")
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        if fixture is not None and fixture.response is not None and not schema_errors(fmt.schema, fixture.response):
            value: JSON = fixture.response
        else:
            hints = fixture.hints() if fixture is not None else facts_to_hints(DEFAULT_FACTS)
            value = generate_instance(fmt.schema, hints)
        with self._lock:
            self._cache[key] = value
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return value

    def content(self, fmt: ResponseFormat, fixture: AnalysisFixture | None) -> str:
        if fmt.kind == "text":
            return segmented_text(fixture.facts if fixture is not None else DEFAULT_FACTS)
        return json.dumps(self.instance(fmt, fixture), ensure_ascii=False)


def segmented_text(facts: Mapping[str, JSON]) -> str:
    """Free-text answer in the legacy marker format (##TYPE## ... ##END##) the previous worker parsed."""
    options = facts.get("options") or []
    lines = [
        "##TYPE##",
        str(facts.get("type", "shortAnswer")),
        "##SUBJECT##",
        str(facts.get("subject", "math")),
        "##CONTENT##",
        str(facts.get("content", "")),
        "##OPTIONS##",
        *[str(o) for o in options],
        "##PIC##",
        "##END##",
    ]
    return "\n".join(lines)


def violate_schema(schema: Mapping[str, JSON], valid: JSON) -> JSON:
    """A JSON value the schema rejects, derived from a valid one (drop a required key, else a wrong type)."""
    candidates: list[JSON] = []
    if isinstance(valid, dict):
        for key in schema.get("required", []) or list(valid):
            broken = dict(valid)
            broken.pop(key, None)
            candidates.append(broken)
            broken = dict(valid)
            broken[key] = {"unexpected": [1, 2, 3]}
            candidates.append(broken)
        candidates.append({**valid, "unexpectedProperty": True})
    candidates += [[], "not an object", 12345, None]
    for candidate in candidates:
        if schema_errors(schema, candidate):
            return candidate
    raise SchemaGenerationError("the schema accepts everything; cannot violate it")


def default_fixture_facts() -> dict[str, Any]:
    return dict(DEFAULT_FACTS)
