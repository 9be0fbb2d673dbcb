"""Fault rule parsing and selection, and the token formulas."""

from __future__ import annotations

import pytest

from mistake_testbed.llm import FaultRule, image_tokens, text_tokens
from mistake_testbed.llm.faults import FaultBook, RequestFacts, parse_fault_header

pytestmark = pytest.mark.unit

FACTS = RequestFacts(endpoint="chat", model="m", text="please analyse", markers=("math-fill",), sha256s=("abc",))


def test_header_spec_parses_kinds_and_typed_parameters() -> None:
    rules = parse_fault_header("latency;delay=0.2, rate_limit;retry_after=1.5;should_retry=false")
    assert [(r.kind, r.delay) for r in rules] == [("latency", 0.2), ("rate_limit", 0.0)]
    assert (rules[1].status, rules[1].retry_after, rules[1].should_retry) == (429, 1.5, False)
    with pytest.raises(ValueError, match="unknown fault kind"):
        parse_fault_header("explode")
    with pytest.raises(ValueError, match="unknown fault fields"):
        parse_fault_header("latency;colour=red")


def test_latency_adds_up_and_first_decisive_rule_wins() -> None:
    book = FaultBook()
    book.add(kind="latency", delay=0.1)
    book.add(kind="latency", delay=0.2)
    first = book.add(kind="http_error", status=503)
    book.add(kind="refusal")
    delay, rule = book.select(FACTS)
    assert delay == pytest.approx(0.3)
    assert rule is first


@pytest.mark.parametrize(
    ("field", "value", "hit"),
    [("match", "math-fill", True), ("match", "analyse", True), ("match", "abc", True), ("match", "english", False),
     ("endpoint", "responses", False), ("endpoint", "chat", True), ("start_after", 60.0, False),
     ("duration", 0.0, False), ("duration", 60.0, True)],
)  # fmt: skip
def test_rule_matching(field: str, value: object, hit: bool) -> None:
    book = FaultBook()
    book.add(FaultRule.from_json({"kind": "refusal", field: value}))
    assert (book.select(FACTS)[1] is not None) == hit


def test_times_limits_hits() -> None:
    book = FaultBook()
    rule = book.add(kind="refusal", times=2)
    outcomes = [book.select(FACTS)[1] is not None for _ in range(4)]
    assert outcomes == [True, True, False, False]
    assert rule.hits == 2


def test_probability_is_reproducible_after_clear() -> None:
    book = FaultBook(seed=7)

    def run() -> list[bool]:
        book.clear()
        book.add(kind="refusal", probability=0.5)
        return [book.select(FACTS)[1] is not None for _ in range(50)]

    first = run()
    assert first == run()
    assert 0 < sum(first) < 50


def test_delay_distributions_stay_in_bounds() -> None:
    book = FaultBook(seed=1)
    book.add(kind="latency", delay=0.1, delay_max=0.3, distribution="uniform")
    book.add(kind="latency", delay=0.5, delay_max=0.6, distribution="exponential")
    for _ in range(50):
        delay, _rule = book.select(FACTS)
        assert 0.1 <= delay <= 0.9


@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [((1024, 1024), "high", 765), ((2048, 4096), "high", 1105), ((4032, 3024), "low", 85), ((512, 512), "auto", 255)],
)
def test_image_tokens_follow_the_tile_formula(size: tuple[int, int], detail: str, tokens: int) -> None:
    assert image_tokens(*size, detail) == tokens


def test_text_tokens() -> None:
    assert text_tokens("abcd" * 10) == 10
    assert text_tokens("春风又绿江南岸") == 7
