"""Sample question photos (rendered with a CJK font) and bad inputs, each with its expected analysis."""

from mistake_testbed.samples.catalog import (
    BAD_INPUTS,
    PHOTOS,
    SAMPLES_VERSION,
    BadSpec,
    Expected,
    Page,
    PhotoSpec,
    bad_input,
    photo,
)
from mistake_testbed.samples.render import FontMissingError, cjk_font_path, render_page
from mistake_testbed.samples.store import Sample, SampleSet, analysis_fixtures

__all__ = [
    "BAD_INPUTS",
    "PHOTOS",
    "SAMPLES_VERSION",
    "BadSpec",
    "Expected",
    "FontMissingError",
    "Page",
    "PhotoSpec",
    "Sample",
    "SampleSet",
    "analysis_fixtures",
    "bad_input",
    "cjk_font_path",
    "photo",
    "render_page",
]
