"""Decode and measure the images a request carries (data URLs), and find sample markers in them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import math
import re
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

# Generated samples carry `MISTAKE-SAMPLE:<name>;` in a JPEG comment / PNG text chunk (the `;` ends it, as
# binary bytes follow). Pillow keeps it through resize and re-encode, so the fixture lookup still works when
# the client pre-processes the photo.
MARKER_PREFIX = b"MISTAKE-SAMPLE:"
_MARKER_RE = re.compile(rb"MISTAKE-SAMPLE:([A-Za-z0-9_.-]{1,64});")
_DATA_URL_RE = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?((?:;[\w-]+=[\w.-]+)*);base64,", re.ASCII)

# Limits of a typical hosted vision API; above them the request is refused with a 400 like a provider would.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000


class ImageRejectedError(ValueError):
    """The image part cannot be used; `code` is the provider-style error code."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ImageInfo:
    media_type: str
    size_bytes: int
    width: int
    height: int
    format: str
    sha256: str
    marker: str | None
    detail: str

    @property
    def pixels(self) -> int:
        return self.width * self.height


def find_marker(data: bytes) -> str | None:
    """The sample name embedded by the sample generator, if any (searched in the first and last 64 KiB)."""
    for chunk in (data[:65536], data[-65536:]):
        found = _MARKER_RE.search(chunk)
        if found:
            return found.group(1).decode("ascii")
    return None


def decode_image_url(url: str, detail: str = "auto") -> tuple[bytes, ImageInfo]:
    """Decode a `data:` URL and read the image header (no full decode: cheap even for 12 MP photos)."""
    if url.startswith(("http://", "https://")):
        raise ImageRejectedError(
            "The test server only accepts base64 data URLs, not remote image URLs.", "invalid_image_url"
        )
    match = _DATA_URL_RE.match(url)
    if not match:
        raise ImageRejectedError("Invalid image URL: expected a base64 data URL.", "invalid_image_url")
    try:
        data = base64.b64decode(url[match.end() :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ImageRejectedError(f"Invalid base64 image data: {exc}", "invalid_image_format") from exc
    if not data:
        raise ImageRejectedError("You uploaded an unsupported image. The image data is empty.", "invalid_image_format")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageRejectedError(
            f"Image is too large: {len(data)} bytes exceeds the {MAX_IMAGE_BYTES} byte limit.", "image_too_large"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                fmt = image.format or "unknown"
                # Header-only open does not notice a cut-off file; the last bytes must be the EOI marker.
                if fmt == "JPEG" and not data.rstrip(b"\0").endswith(b"\xff\xd9"):
                    raise ImageRejectedError(
                        "You uploaded an unsupported image. The JPEG data is truncated.", "invalid_image_format"
                    )
    except ImageRejectedError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageRejectedError(f"Image dimensions are too large: {exc}", "image_too_large") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejectedError(
            "You uploaded an unsupported image. Please make sure your image is a valid PNG, JPEG, GIF or WEBP.",
            "invalid_image_format",
        ) from exc
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageRejectedError(f"Image dimensions are too large: {width}x{height}.", "image_too_large")
    info = ImageInfo(
        media_type=match.group(1) or "application/octet-stream",
        size_bytes=len(data),
        width=width,
        height=height,
        format=fmt,
        sha256=hashlib.sha256(data).hexdigest(),
        marker=find_marker(data),
        detail=detail if detail in ("low", "high", "auto") else "auto",
    )
    return data, info


def image_tokens(width: int, height: int, detail: str = "auto") -> int:
    """Prompt tokens for one image, following OpenAI's published tile formula for GPT-4o-class models.

    low: 85. high/auto: fit within 2048x2048, then shrink so the short side is at most 768, then
    85 + 170 per 512-px tile.
    """
    if detail == "low" or width <= 0 or height <= 0:
        return 85
    scale = min(1.0, 2048 / max(width, height))
    w, h = width * scale, height * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    tiles = math.ceil(w / 512) * math.ceil(h / 512)
    return 85 + 170 * tiles


def text_tokens(text: str) -> int:
    """Rough token count: about 4 ASCII characters per token, one token per CJK/other character."""
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    return math.ceil(ascii_chars / 4) + (len(text) - ascii_chars)
