"""The generated samples: decodable, sized and oriented as declared, deterministic; bad inputs really bad."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

from mistake_testbed.llm.answers import FixtureTable
from mistake_testbed.llm.images import find_marker
from mistake_testbed.samples import BAD_INPUTS, PHOTOS, FontMissingError, SampleSet, analysis_fixtures
from mistake_testbed.samples.catalog import OVERSIZE_BYTES

pytestmark = pytest.mark.unit


def test_photos_decode_with_declared_size_format_and_marker(sample_set: SampleSet) -> None:
    for sample in sample_set.photos():
        spec = sample.spec
        for index, path in enumerate(sample.paths):
            with Image.open(path) as image:
                image.load()
                assert image.format == spec.image_format  # type: ignore[union-attr]
                upright = ImageOps.exif_transpose(image)
                assert upright.size == spec.size, sample.name  # type: ignore[union-attr]
            assert find_marker(path.read_bytes()) == spec.markers()[index]  # type: ignore[union-attr]


def test_phone_photo_is_stored_rotated_with_exif_orientation_6(sample_set: SampleSet) -> None:
    with Image.open(sample_set.photo("physics-choice-phone").path) as image:
        assert image.size == (4032, 3024)
        assert image.getexif()[0x0112] == 6
        upright = ImageOps.exif_transpose(image).convert("L")
    # Ink is printed near the top of the upright page; the bottom band is blank paper.
    width, height = upright.size
    top_darkest = upright.crop((0, 0, width, height // 5)).getextrema()[0]
    bottom_darkest = upright.crop((0, height * 4 // 5, width, height)).getextrema()[0]
    assert isinstance(top_darkest, int)
    assert isinstance(bottom_darkest, int)
    assert top_darkest < 100 < bottom_darkest


def test_marker_survives_resize_and_reencode(sample_set: SampleSet) -> None:
    with Image.open(sample_set.photo("math-choice").path) as image:
        small = image.resize((620, 877))
        out = io.BytesIO()
        small.save(out, "JPEG", quality=70)
    assert find_marker(out.getvalue()) == "math-choice"


def test_generation_is_deterministic(tmp_path: Path) -> None:
    try:
        first, second = SampleSet(tmp_path / "a"), SampleSet(tmp_path / "b")
        names = ["math-fill", "chinese-short", "math-two-page"]
        for name in names:
            assert first.photo(name).sha256s() == second.photo(name).sha256s()
    except FontMissingError as exc:
        pytest.skip(str(exc))
    assert first.bad("decompression-bomb").read() == second.bad("decompression-bomb").read()


def test_bad_inputs_are_really_bad(sample_set: SampleSet) -> None:
    empty = sample_set.bad("empty")
    assert empty.path.stat().st_size == 0
    with Image.open(sample_set.bad("truncated").path) as image, pytest.raises(OSError, match="truncated"):
        image.load()
    for name, magic in (("pdf-as-jpg", b"%PDF-"), ("html-as-jpg", b"<!DOCTYPE html>")):
        sample = sample_set.bad(name)
        assert sample.path.suffix == ".jpg"
        assert sample.read().startswith(magic)
        with pytest.raises(UnidentifiedImageError):
            Image.open(sample.path)
    bomb = sample_set.bad("decompression-bomb")
    assert bomb.path.stat().st_size < 100_000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Image.DecompressionBombError):
            Image.open(bomb.path)


def test_oversize_file_is_big_but_a_valid_jpeg(sample_set: SampleSet) -> None:
    sample = sample_set.bad("oversize")
    assert sample.path.stat().st_size > 30_000_000
    assert sample.path.stat().st_size >= OVERSIZE_BYTES - 65_540
    with Image.open(sample.path) as image:
        image.load()
        assert image.size == (1240, 1754)


def test_fixture_table_finds_samples_by_bytes_and_by_marker(sample_set: SampleSet) -> None:
    table = FixtureTable(sample_set.fixtures())
    sample = sample_set.photo("math-two-page")
    page2 = sample.sha256s()[1]
    assert table.lookup([page2], []) is not None
    static = FixtureTable(analysis_fixtures())
    found = static.lookup([], ["math-two-page.p2"])
    assert found is not None
    assert found.facts["subject"] == "math"
    assert static.lookup(["unknown"], ["unknown"]) is None


def test_catalogue_covers_subjects_types_and_bad_kinds() -> None:
    assert {p.expected.subject for p in PHOTOS} >= {"math", "physics", "chemistry", "english", "chinese"}
    assert {p.expected.type for p in PHOTOS} >= {"choice", "fillBlank", "shortAnswer"}
    assert any(len(p.pages) > 1 for p in PHOTOS)
    assert {b.kind for b in BAD_INPUTS} == {
        "empty", "truncated_jpeg", "pdf_as_jpg", "html_as_jpg", "decompression_bomb", "oversize"
    }  # fmt: skip
