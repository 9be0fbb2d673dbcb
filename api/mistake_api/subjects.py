"""The nine subject codes the app uses, and their Chinese names (the modules library stores the Chinese name)."""

from __future__ import annotations

from typing import Final

SUBJECTS: Final[dict[str, str]] = {
    "math": "数学",
    "physics": "物理",
    "chemistry": "化学",
    "biology": "生物",
    "chinese": "语文",
    "english": "英语",
    "history": "历史",
    "geography": "地理",
    "politics": "政治",
}
SUBJECT_CODES: Final[dict[str, str]] = {name: code for code, name in SUBJECTS.items()}


def subject_code(value: str) -> str | None:
    """The code for a code or a Chinese name (older rows hold the Chinese name); None when it is neither."""
    return value if value in SUBJECTS else SUBJECT_CODES.get(value)
