"""The reason set is closed, complete and documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from mistake_api import REASONS, Outcome, Reason, analysis_error_text, is_retryable

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[3] / "docs" / "reasons.md"


def test_every_reason_has_its_metadata() -> None:
    assert set(REASONS) == set(Reason)


def test_every_reason_is_documented_with_its_outcome() -> None:
    text = DOC.read_text(encoding="utf-8")
    for reason, meta in REASONS.items():
        assert f"| `{reason.value}` | {meta.outcome.value} |" in text, f"docs/reasons.md lacks {reason.value}"


def test_reasons_are_valid_condition_reasons() -> None:
    assert all(r.value.isalnum() and r.value[0].isupper() for r in Reason)


def test_budget_reasons_are_final() -> None:
    assert not is_retryable(Reason.RETRIES_EXHAUSTED)
    assert not is_retryable(Reason.EXPIRED)
    assert is_retryable(Reason.LLM_RATE_LIMITED)
    assert REASONS[Reason.SUPERSEDED].outcome is Outcome.CANCEL


def test_analysis_error_text_is_bounded_and_names_the_reason() -> None:
    text = analysis_error_text(Reason.IMAGE_CORRUPT, "x" * 5000)
    assert len(text) == 1000
    assert text.startswith("图片已损坏，无法读取 [ImageCorrupt]: xx")
    assert analysis_error_text("NoImages", "") == "错题记录缺少图片 [NoImages]"
