"""Draw a question page the way a phone photo of a worksheet looks, with a CJK font."""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFont
from PIL.PngImagePlugin import PngInfo

from mistake_testbed.samples.catalog import Page, PhotoSpec

MARKER_PREFIX = "MISTAKE-SAMPLE:"
FONT_ENV = "MISTAKE_TESTBED_CJK_FONT"
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
)
# Face index of "Noto Sans CJK SC" inside the Debian .ttc collection (JP, KR, SC, TC, HK).
SC_FACE_INDEX = 2

PAPER = (246, 244, 236)
INK = (28, 28, 32)
PEN = (30, 60, 170)
RED = (200, 30, 30)


class FontMissingError(RuntimeError):
    """No CJK font is installed, so the Chinese samples cannot be drawn."""


@lru_cache(maxsize=1)
def cjk_font_path() -> Path:
    override = os.environ.get(FONT_ENV)
    for candidate in (override, *FONT_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise FontMissingError(
        "no CJK font found: install Debian's fonts-noto-cjk (apt-get install fonts-noto-cjk) "
        f"or point {FONT_ENV} at a .ttc/.otf with Chinese glyphs"
    )


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    path = cjk_font_path()
    index = SC_FACE_INDEX if path.suffix == ".ttc" else 0
    try:
        return ImageFont.truetype(str(path), size, index=index)
    except OSError:
        return ImageFont.truetype(str(path), size)


def _shade(image: Image.Image) -> Image.Image:
    """Uneven lighting (darker bottom-right), as in a handheld photo; deterministic."""
    w, h = image.size
    vertical = Image.linear_gradient("L")
    gradient = ImageChops.add(vertical, vertical.transpose(Image.Transpose.ROTATE_90), scale=2.0).resize((w, h))
    dark = Image.new("RGB", (w, h), (200, 196, 186))
    return Image.composite(dark, image, gradient.point(lambda v: v * 70 // 255))


def render_page(page: Page, size: tuple[int, int], shade: bool = True) -> Image.Image:
    """The upright page as an RGB image."""
    width = size[0]
    image = Image.new("RGB", size, PAPER)
    draw = ImageDraw.Draw(image)
    scale = width / 1240
    text_font = font(max(12, int(40 * scale)))
    pen_font = font(max(12, int(46 * scale)))
    margin = int(90 * scale)
    line_height = int(68 * scale)
    y = int(140 * scale)
    # A worksheet header rule, so the page is not just text on a blank field.
    draw.line([(margin, int(100 * scale)), (width - margin, int(100 * scale))], fill=(150, 150, 150), width=2)
    for line in page.lines:
        draw.text((margin, y), line, font=text_font, fill=INK)
        y += line_height
    for option in page.options:
        draw.text((margin + int(40 * scale), y), option, font=text_font, fill=INK)
        y += line_height
    if page.student_mark:
        y += line_height // 2
        draw.text((margin + int(60 * scale), y), page.student_mark, font=pen_font, fill=PEN)
        # The teacher's red cross next to the student's wrong answer.
        x0 = width - margin - int(140 * scale)
        s = int(50 * scale)
        draw.line([(x0, y), (x0 + s, y + s)], fill=RED, width=max(2, int(6 * scale)))
        draw.line([(x0 + s, y), (x0, y + s)], fill=RED, width=max(2, int(6 * scale)))
    return _shade(image) if shade else image


def encode_page(spec: PhotoSpec, index: int) -> bytes:
    """Encoded bytes of page `index` with the sample marker embedded (JPEG comment / PNG text)."""
    marker = f"{MARKER_PREFIX}{spec.markers()[index]};".encode("ascii")
    image = render_page(spec.pages[index], spec.size)
    out = io.BytesIO()
    if spec.image_format == "PNG":
        info = PngInfo()
        info.add_text("Comment", marker.decode("ascii"))
        image.save(out, "PNG", pnginfo=info, optimize=False)
        return out.getvalue()
    exif = Image.Exif()
    if spec.exif_orientation != 1:
        # Orientation 6 = "rotate 90° clockwise to display": store the upright page turned 90° counter-clockwise.
        turn = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}
        image = image.transpose(turn[spec.exif_orientation])
    exif[0x0112] = spec.exif_orientation  # Orientation
    exif[0x010F] = "MistakeTestbed"  # Make
    exif[0x0110] = "Sample Phone"  # Model
    image.save(out, "JPEG", quality=88, exif=exif.tobytes(), comment=marker)
    return out.getvalue()
