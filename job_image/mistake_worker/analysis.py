"""Validation of the model's answer: parse, normalise, bound; never trust it blindly.

`parse_analysis` raises `InvalidOutput` with a short, model-readable list of problems (used for the one repair
request); everything it accepts is normalised: known codes only, 1-3 knowledge points, strings clamped to the
Appwrite column sizes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mistake_api.subjects import SUBJECT_CODES, SUBJECTS

from .prompt import ERROR_CAUSES, FALLBACK_MODULE, IMPORTANCE, KP_CATEGORIES, QUESTION_TYPES

# Appwrite column sizes (domain model) the analysis ends up in.
CONTENT_MAX = 5000
OPTION_MAX = 2000
ANSWER_MAX = 500
EXPLANATION_MAX = 5000
HINT_MAX = 5000
NAME_MAX = 100
MAX_KNOWLEDGE_POINTS = 3
MAX_MODULES = 2

_TYPE_SYNONYMS = {
    "single_choice": "choice",
    "multiple_choice": "choice",
    "singlechoice": "choice",
    "multiplechoice": "choice",
    "选择题": "choice",
    "fill": "fillBlank",
    "fill_blank": "fillBlank",
    "fillblank": "fillBlank",
    "填空题": "fillBlank",
    "solve": "shortAnswer",
    "short_answer": "shortAnswer",
    "shortanswer": "shortAnswer",
    "calculation": "shortAnswer",
    "解答题": "shortAnswer",
    "简答题": "shortAnswer",
    "作文": "essay",
}
_FENCE = re.compile(r"^\s*```(?:json)?\s*(.*?)\s*```\s*$", re.S)


class InvalidOutput(ValueError):  # noqa: N818 - reads as "the output is invalid"
    """The answer cannot be used; `str()` lists the problems for the repair request."""


def clamp(text: Any, limit: int) -> str:
    value = "" if text is None else str(text).strip()
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass(frozen=True)
class KnowledgePoint:
    name: str
    module: str
    category: str
    importance: str


@dataclass(frozen=True)
class Figure:
    page: int
    box: tuple[int, int, int, int]
    caption: str


@dataclass(frozen=True)
class Analysis:
    content: str
    type: str
    options: tuple[str, ...]
    subject: str
    answer: str
    explanation: str
    modules: tuple[str, ...]
    knowledge_points: tuple[KnowledgePoint, ...]
    solving_hint: str
    error_cause: str
    error_explanation: str
    difficulty: int
    figures: tuple[Figure, ...] = field(default=())


def _loads(text: str) -> Any:
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    try:
        return json.loads(body)
    except json.JSONDecodeError as error:
        raise InvalidOutput(f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from error


def _subject(value: Any) -> str | None:
    text = str(value or "").strip()
    if text.lower() in SUBJECTS:
        return text.lower()
    return SUBJECT_CODES.get(text)


def _type(value: Any) -> str:
    text = str(value or "").strip()
    if text in QUESTION_TYPES:
        return text
    return _TYPE_SYNONYMS.get(text.lower(), _TYPE_SYNONYMS.get(text, "shortAnswer"))


def _module_name(value: Any) -> str:
    # Models sometimes echo "name (description)"; the library name is the part before the bracket or colon.
    text = re.split(r"[(（:：]", str(value or ""), maxsplit=1)[0]
    return clamp(text, NAME_MAX)


def parse_analysis(text: str | None) -> Analysis:
    if not text or not text.strip():
        raise InvalidOutput("the answer is empty")
    data = _loads(text)
    if not isinstance(data, dict):
        raise InvalidOutput(f"the answer must be a JSON object, not {type(data).__name__}")
    problems: list[str] = []
    content = clamp(data.get("content"), CONTENT_MAX)
    if not content:
        problems.append("content is empty")
    subject = _subject(data.get("subject"))
    if subject is None:
        problems.append(f"subject must be one of {', '.join(SUBJECTS)}")
    qtype = _type(data.get("type"))
    raw_options = data.get("options")
    options = (
        tuple(o for o in (clamp(x, OPTION_MAX) for x in raw_options) if o) if isinstance(raw_options, list) else ()
    )
    if qtype != "choice":
        options = ()
    raw_modules = data.get("modules")
    modules: list[str] = []
    for item in raw_modules if isinstance(raw_modules, list) else []:
        name = _module_name(item)
        if name and name not in modules:
            modules.append(name)
    kps: list[KnowledgePoint] = []
    raw_kps = data.get("knowledgePoints")
    for item in raw_kps if isinstance(raw_kps, list) else []:
        if not isinstance(item, dict):
            continue
        name = clamp(item.get("name"), NAME_MAX)
        if not name or any(k.name == name for k in kps):
            continue
        category = item.get("category") if item.get("category") in KP_CATEGORIES else "secondary"
        importance = item.get("importance") if item.get("importance") in IMPORTANCE else "normal"
        kps.append(KnowledgePoint(name, _module_name(item.get("module")), str(category), str(importance)))
    if not kps:
        problems.append("knowledgePoints needs 1 to 3 items with a non-empty name")
    if problems:
        raise InvalidOutput("; ".join(problems))
    assert subject is not None
    if kps and not any(k.category == "primary" for k in kps):
        first = kps[0]
        kps[0] = KnowledgePoint(first.name, first.module, "primary", first.importance)
    cause = data.get("errorCause") if isinstance(data.get("errorCause"), dict) else {}
    assert isinstance(cause, dict)
    try:
        difficulty = min(5, max(1, int(data.get("difficulty") or 3)))
    except (TypeError, ValueError):
        difficulty = 3
    return Analysis(
        content=content,
        type=qtype,
        options=options,
        subject=subject,
        answer=clamp(data.get("answer"), ANSWER_MAX),
        explanation=clamp(data.get("explanation"), EXPLANATION_MAX),
        modules=tuple(modules[:MAX_MODULES]) or (FALLBACK_MODULE,),
        knowledge_points=tuple(kps[:MAX_KNOWLEDGE_POINTS]),
        solving_hint=clamp(data.get("solvingHint"), HINT_MAX),
        error_cause=str(cause.get("category")) if cause.get("category") in ERROR_CAUSES else "other",
        error_explanation=clamp(cause.get("explanation"), 1000),
        difficulty=difficulty,
        figures=tuple(_figures(data.get("figures"))),
    )


def _figures(raw: Any) -> list[Figure]:
    out: list[Figure] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict):
            continue
        box = item.get("box")
        try:
            page = int(item.get("page") or 1)
            x1, y1, x2, y2 = (int(v) for v in box) if isinstance(box, list) and len(box) == 4 else (0, 0, 0, 0)
        except (TypeError, ValueError):
            continue
        if 0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 1000 and page >= 1:
            out.append(Figure(page, (x1, y1, x2, y2), clamp(item.get("caption"), 200)))
    return out
