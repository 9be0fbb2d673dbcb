"""Properties of the deterministic names: valid, stable, and collision-resistant."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mistake_api import analysis_name, batch_name, record_key, user_key
from mistake_api.naming import MAX_NAME, is_dns1123_label

pytestmark = pytest.mark.unit

# Appwrite custom ids: up to 36 chars of letters, digits, '.', '-', '_' (not starting with a special char).
ID_ALPHABET = string.ascii_letters + string.digits + "._-"
appwrite_ids = st.text(ID_ALPHABET, min_size=1, max_size=36).filter(lambda s: s[0].isalnum())
# Anything at all, to show names stay valid for ids we never expect.
any_text = st.text(min_size=0, max_size=300)


@settings(max_examples=10_000, deadline=None)
@given(db=any_text, col=any_text, rec=any_text, rev=any_text)
def test_names_are_valid_dns1123_labels(db: str, col: str, rec: str, rev: str) -> None:
    name = analysis_name(db, col, rec, rev)
    assert len(name) <= MAX_NAME
    assert is_dns1123_label(name), name
    assert name == analysis_name(db, col, rec, rev)


@settings(max_examples=2_000, deadline=None)
@given(rec=appwrite_ids, rev=any_text)
def test_case_variants_get_distinct_names(rec: str, rev: str) -> None:
    variants = {rec, rec.lower(), rec.upper(), rec.swapcase()}
    names = {analysis_name("main", "mistake_records", v, rev) for v in variants}
    assert len(names) == len(variants)


def test_ten_thousand_ids_including_case_and_sanitising_twins_do_not_collide() -> None:
    ids: set[str] = set()
    for i in range(2_500):
        base = f"Rec{i:05d}x"
        # case twins and ids the sanitiser maps to the same slug ("a.b", "a_b", "a-b", "A.B")
        ids.update({base, base.lower(), f"{base}.a_b", f"{base}-a.b"})
    assert len(ids) == 10_000
    names = {analysis_name("main", "mistake_records", rid, "2026-12-04T10:00:00.000+00:00") for rid in ids}
    assert len(names) == len(ids)
    assert all(is_dns1123_label(n) for n in names)


def test_every_input_part_changes_the_name() -> None:
    base = ("main", "mistake_records", "abc", "2026-12-04T10:00:00.000+00:00")
    names = {analysis_name(*base)}
    for i in range(4):
        changed = list(base)
        changed[i] = changed[i] + "x"
        names.add(analysis_name(*changed))
    assert len(names) == 5


def test_separator_characters_cannot_forge_a_collision() -> None:
    assert analysis_name("a", "b,c", "d", "r") != analysis_name("a,b", "c", "d", "r")
    assert analysis_name("a", "b", "c\x1fd", "r") != analysis_name("a", "b\x1fc", "d", "r")


def test_name_keeps_a_readable_record_id() -> None:
    name = analysis_name("main", "mistake_records", "6b12d867001e15101d30", "rev")
    assert name.startswith("ma-6b12d867001e15101d30-")


def test_names_are_stable_across_versions() -> None:
    # Golden values: the trigger function and existing clusters depend on these never changing.
    assert analysis_name("main", "mistake_records", "Doc_1", "2026-12-04T10:00:00.000+00:00") == (
        "ma-doc-1-nn2ql4dv3dmnhlxr"
    )
    assert record_key("main", "mistake_records", "Doc_1") == "47gysk35d2xvvy4l"
    assert user_key("user-1") == "nu7vw27puuh5tbm3"


@given(members=st.lists(st.tuples(appwrite_ids, st.integers(0, 10)), min_size=1, max_size=50, unique=True))
def test_batch_name_ignores_order_and_tracks_attempts(members: list[tuple[str, int]]) -> None:
    name = batch_name(members)
    assert is_dns1123_label(name)
    assert name == batch_name(list(reversed(members)))
    bumped = [(n, a + 1) for n, a in members]
    assert batch_name(bumped) != name


@given(db=appwrite_ids, col=appwrite_ids, rec=appwrite_ids)
def test_record_key_is_a_valid_label_value(db: str, col: str, rec: str) -> None:
    key = record_key(db, col, rec)
    assert is_dns1123_label(key)
    assert key != record_key(db, col, rec + "x")
