"""Buckets and files: single and chunked (content-range) uploads, bucket size limits, MIME sniffing."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import AppwriteError
from .schema import Bucket
from .values import now_iso

# Appwrite stores chunks of APP_STORAGE_CHUNK_SIZE; the SDK slices uploads the same way.
CHUNK_SIZE = 5 * 1024 * 1024
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+)$")
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"BM", "image/bmp"),
)


def sniff_mime(data: bytes, filename: str) -> str:
    """Content first, like Appwrite's finfo check; the file name only as a fallback."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    head = data[:512].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        return "text/html"
    if not data:
        return "application/x-empty"
    guessed, _ = mimetypes.guess_type(filename)
    return guessed or "application/octet-stream"


def file_not_found() -> AppwriteError:
    return AppwriteError(404, "storage_file_not_found", "The requested file could not be found.")


def bucket_not_found() -> AppwriteError:
    return AppwriteError(404, "storage_bucket_not_found", "Storage bucket with the requested ID could not be found.")


@dataclass
class StoredFile:
    id: str
    bucket_id: str
    name: str
    size: int
    permissions: list[str]
    created_at: str
    chunks_total: int = 1
    chunks: dict[int, bytes] = field(default_factory=dict)
    data: bytes = b""
    mime_type: str = "application/octet-stream"
    updated_at: str = ""

    @property
    def complete(self) -> bool:
        return len(self.chunks) >= self.chunks_total

    def model(self, bucket: Bucket) -> dict[str, Any]:
        return {
            "$id": self.id,
            "bucketId": self.bucket_id,
            "$createdAt": self.created_at,
            "$updatedAt": self.updated_at or self.created_at,
            "$permissions": list(self.permissions),
            "name": self.name,
            "folder": "",
            "key": self.name,
            "signature": hashlib.md5(self.data, usedforsecurity=False).hexdigest() if self.complete else "",
            "mimeType": self.mime_type,
            "sizeOriginal": self.size,
            "sizeActual": self.size,
            "chunksTotal": self.chunks_total,
            "chunksUploaded": len(self.chunks),
            "encryption": bucket.encryption,
            "compression": bucket.compression,
        }


class FileStore:
    def __init__(self, buckets: dict[str, Bucket]) -> None:
        self.lock = threading.RLock()
        self.declared = dict(buckets)
        self.buckets: dict[str, Bucket] = {}
        self.files: dict[tuple[str, str], StoredFile] = {}
        self.reset()

    def reset(self, apply_schema: bool = True) -> None:
        with self.lock:
            self.buckets = dict(self.declared) if apply_schema else {}
            self.files = {}

    def add_bucket(self, bucket: Bucket) -> None:
        with self.lock:
            self.buckets[bucket.id] = bucket

    def bucket(self, bucket_id: str) -> Bucket:
        bucket = self.buckets.get(bucket_id)
        if bucket is None:
            raise bucket_not_found()
        return bucket

    def put(
        self,
        bucket_id: str,
        file_id: str,
        filename: str,
        data: bytes,
        permissions: list[str],
        content_range: str | None,
    ) -> dict[str, Any]:
        """Store one upload or one chunk of it; the model shows chunksUploaded/chunksTotal like Appwrite."""
        with self.lock:
            bucket = self.bucket(bucket_id)
            start, total = 0, len(data)
            if content_range:
                match = _RANGE.match(content_range.strip())
                if not match:
                    raise AppwriteError(400, "storage_invalid_content_range", "Invalid content range.")
                start, end, total = (int(g) for g in match.groups())
                if end - start + 1 != len(data) or end >= total:
                    raise AppwriteError(400, "storage_invalid_content_range", "Invalid content range.")
            if total > bucket.maximum_file_size:
                raise AppwriteError(400, "storage_invalid_file_size", "File size not allowed.")
            extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
            if bucket.allowed_file_extensions and extension not in bucket.allowed_file_extensions:
                raise AppwriteError(400, "storage_file_type_unsupported", "File extension not allowed.")
            existing = self.files.get((bucket_id, file_id))
            if existing is not None and (existing.complete or not content_range):
                raise AppwriteError(
                    409, "storage_file_already_exists", "A storage file with the requested ID already exists."
                )
            if existing is None:
                existing = StoredFile(
                    id=file_id,
                    bucket_id=bucket_id,
                    name=filename,
                    size=total,
                    permissions=list(permissions),
                    created_at=now_iso(),
                    chunks_total=max(1, -(-total // CHUNK_SIZE)) if content_range else 1,
                )
                self.files[(bucket_id, file_id)] = existing
            existing.chunks[start // CHUNK_SIZE if content_range else 0] = data
            if existing.complete:
                existing.data = b"".join(existing.chunks[i] for i in sorted(existing.chunks))
                existing.mime_type = sniff_mime(existing.data, filename)
                existing.updated_at = now_iso()
            return existing.model(bucket)

    def get(self, bucket_id: str, file_id: str) -> tuple[StoredFile, Bucket]:
        with self.lock:
            bucket = self.bucket(bucket_id)
            stored = self.files.get((bucket_id, file_id))
            if stored is None:
                raise file_not_found()
            return stored, bucket

    def delete(self, bucket_id: str, file_id: str) -> None:
        with self.lock:
            self.bucket(bucket_id)
            if self.files.pop((bucket_id, file_id), None) is None:
                raise file_not_found()

    def listing(self, bucket_id: str) -> dict[str, Any]:
        with self.lock:
            bucket = self.bucket(bucket_id)
            files = [f.model(bucket) for (b, _), f in self.files.items() if b == bucket_id]
        return {"total": len(files), "files": files}
