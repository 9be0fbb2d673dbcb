"""Inputs a robust image pipeline must refuse: each is written straight to disk."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from mistake_testbed.samples.catalog import OVERSIZE_BYTES, BadSpec

PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n"
    b"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
HTML_BYTES = (
    "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>404 Not Found</title></head>\n"
    "<body><h1>404 Not Found</h1><p>文件不存在或已过期。</p></body></html>\n"
).encode()

BOMB_SIDE = 20_000


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def decompression_bomb_png(side: int = BOMB_SIDE) -> bytes:
    """A complete 1-bit greyscale PNG of side x side white pixels; all-zero rows compress ~1000:1."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    parts = [compressor.compress(row) for _ in range(side)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def write_oversize_jpeg(path: Path, source_jpeg: bytes, total: int = OVERSIZE_BYTES) -> None:
    """A decodable JPEG of more than `total` bytes: COM (comment) segments of filler after SOI.

    Streams the segments to disk so the file never sits in memory.
    """
    if source_jpeg[:2] != b"\xff\xd8":
        raise ValueError("source is not a JPEG")
    chunk_payload = 65533  # the largest a 16-bit segment length allows
    filler = (b"PADDING " * (chunk_payload // 8 + 1))[:chunk_payload]
    segment = b"\xff\xfe" + struct.pack(">H", chunk_payload + 2) + filler
    written = 2 + len(source_jpeg) - 2
    with path.open("wb") as out:
        out.write(b"\xff\xd8")
        while written < total:
            out.write(segment)
            written += len(segment)
        out.write(source_jpeg[2:])


def bad_bytes(spec: BadSpec, valid_jpeg: bytes) -> bytes:
    """Bytes of the small bad inputs (all but `oversize`)."""
    if spec.kind == "empty":
        return b""
    if spec.kind == "truncated_jpeg":
        return valid_jpeg[: len(valid_jpeg) * 6 // 10]
    if spec.kind == "pdf_as_jpg":
        return PDF_BYTES
    if spec.kind == "html_as_jpg":
        return HTML_BYTES
    if spec.kind == "decompression_bomb":
        return decompression_bomb_png()
    raise ValueError(f"{spec.kind} is written to disk with write_oversize_jpeg")
