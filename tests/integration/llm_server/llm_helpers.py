"""Helpers for the LLM stand-in tests: a strict analysis schema and request builders."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image

# Shaped like the worker's analysis (domain.md 4.5 / peers.md 4), in OpenAI strict form.
ANALYSIS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["subject", "question", "answer", "difficulty", "knowledgePoints", "confidence"],
    "properties": {
        "subject": {"type": "string", "enum": ["math", "physics", "chemistry", "biology", "chinese", "english"]},
        "question": {"$ref": "#/$defs/Question"},
        "answer": {"type": ["string", "null"], "maxLength": 200},
        "difficulty": {"type": "integer", "minimum": 1, "maximum": 5},
        "knowledgePoints": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "role"],
                "properties": {
                    "name": {"type": "string", "minLength": 1, "maxLength": 40},
                    "role": {"type": "string", "enum": ["primary", "secondary"]},
                },
            },
        },
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "$defs": {
        "Question": {
            "type": "object",
            "additionalProperties": False,
            "required": ["text", "type", "options"],
            "properties": {
                "text": {"type": "string", "maxLength": 5000},
                "type": {"type": "string", "enum": ["choice", "fill", "solve"]},
                "options": {"type": "array", "items": {"type": "string"}, "maxItems": 6},
            },
        }
    },
}


def png_data_url(width: int = 64, height: int = 48) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (250, 250, 250)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def vision_messages(*urls: str, text: str = "Read the question in the image.") -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
    parts += [{"type": "image_url", "image_url": {"url": url, "detail": "high"}} for url in urls]
    return [{"role": "system", "content": "You are a precise OCR expert."}, {"role": "user", "content": parts}]


def schema_format(schema: dict[str, Any] = ANALYSIS_SCHEMA, name: str = "analysis") -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": name, "strict": True, "schema": schema}}
