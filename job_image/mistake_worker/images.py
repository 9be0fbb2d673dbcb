"""Image preparation: sniff, guard, decode, orient, shrink and re-encode one photographed page.

Pure CPU work, run on a thread pool by the runner. Every refusal is a `WorkerError` with a named reason, and
the output is a baseline JPEG without metadata (no EXIF GPS, no comments) whose pixel count is bounded, so a
12-megapixel phone photo costs a bounded number of image tokens and a small request body.
"""

from __future__ import annotations

import base64
import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

from mistake_api import Reason

from .errors import WorkerError

# Signatures checked against the bytes, never the file name or the stored mime type (clients lie).
_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"GIF87a", 0, "GIF"),
    (b"GIF89a", 0, "GIF"),
    (b"BM", 0, "BMP"),
    (b"II*\x00", 0, "TIFF"),
    (b"MM\x00*", 0, "TIFF"),
)
_UNSUPPORTED_HINTS: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"<!DOCTYPE", "an HTML page"),
    (b"<html", "an HTML page"),
    (b"PK\x03\x04", "a ZIP archive"),
)


def sniff(data: bytes) -> str | None:
    """Pillow format name of a supported image, judged by its magic bytes; None when not one."""
    for magic, offset, fmt in _SIGNATURES:
        if data[offset : offset + len(magic)] == magic:
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return None


def describe_unsupported(data: bytes) -> str:
    head = data[:64].lstrip()
    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("ascii", "replace")
        return f"an ISO media file (brand {brand!r}, e.g. HEIC/AVIF) that is not supported"
    for magic, what in _UNSUPPORTED_HINTS:
        if head[: len(magic)].lower() == magic.lower():
            return what
    return f"unknown content starting {data[:8].hex()}"


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    width: int
    height: int
    source_format: str
    source_width: int
    source_height: int
    source_bytes: int

    def data_url(self) -> str:
        return "data:image/jpeg;base64," + base64.b64encode(self.data).decode("ascii")


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 30_000_000
    max_pixels: int = 50_000_000
    long_side: int = 1568
    short_side: int = 1024
    jpeg_quality: int = 82


def configure_pillow(max_pixels: int) -> None:
    """Process-wide Pillow guard: a declared size above the limit raises instead of warning.

    Installed once at start-up because `warnings.catch_warnings` is not thread-safe.
    """
    Image.MAX_IMAGE_PIXELS = max_pixels
    warnings.simplefilter("error", Image.DecompressionBombWarning)


def target_size(width: int, height: int, limits: ImageLimits) -> tuple[int, int]:
    scale = min(
        1.0,
        limits.long_side / max(width, height),
        limits.short_side / min(width, height),
    )
    return max(1, round(width * scale)), max(1, round(height * scale))


def prepare_image(raw: bytes, limits: ImageLimits) -> PreparedImage:
    if not raw:
        raise WorkerError(Reason.IMAGE_CORRUPT, "the file is empty")
    if len(raw) > limits.max_bytes:
        raise WorkerError(Reason.IMAGE_TOO_LARGE, f"{len(raw)} bytes > {limits.max_bytes}")
    fmt = sniff(raw)
    if fmt is None:
        raise WorkerError(Reason.IMAGE_UNSUPPORTED, describe_unsupported(raw))
    try:
        image = Image.open(io.BytesIO(raw), formats=[fmt])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise WorkerError(Reason.IMAGE_BOMB, str(error)) from error
    except UnidentifiedImageError as error:
        raise WorkerError(Reason.IMAGE_CORRUPT, f"{fmt} header cannot be read") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise WorkerError(Reason.IMAGE_CORRUPT, f"{fmt}: {error}") from error
    with image:
        width, height = image.size
        if width <= 0 or height <= 0:
            raise WorkerError(Reason.IMAGE_CORRUPT, f"{fmt} declares {width}x{height} pixels")
        if width * height > limits.max_pixels:
            raise WorkerError(Reason.IMAGE_BOMB, f"{width}x{height} pixels > {limits.max_pixels}")
        out_w, out_h = target_size(width, height, limits)
        try:
            if fmt == "JPEG":
                # DCT-domain downscaling while decoding: a 12 MP photo decodes at 1/2 or 1/4 size, far cheaper.
                image.draft("RGB", (out_w, out_h))
            image.load()
            upright = ImageOps.exif_transpose(image) or image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise WorkerError(Reason.IMAGE_BOMB, str(error)) from error
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise WorkerError(Reason.IMAGE_CORRUPT, f"{fmt}: {error}") from error
        rgb = _to_rgb(upright)
        final_w, final_h = target_size(rgb.width, rgb.height, limits)
        if (final_w, final_h) != rgb.size:
            rgb = rgb.resize((final_w, final_h), Image.Resampling.LANCZOS, reducing_gap=2.0)
        buffer = io.BytesIO()
        # A fresh info dict so no EXIF, comment or ICC data rides along (privacy, and fewer bytes).
        rgb.info = {}
        rgb.save(buffer, "JPEG", quality=limits.jpeg_quality, optimize=False, progressive=False)
        return PreparedImage(
            data=buffer.getvalue(),
            width=rgb.width,
            height=rgb.height,
            source_format=fmt,
            source_width=width,
            source_height=height,
            source_bytes=len(raw),
        )


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent areas become white paper, not black.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    return image.convert("RGB")
