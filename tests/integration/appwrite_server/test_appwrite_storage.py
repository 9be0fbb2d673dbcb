"""Storage through the SDK: multipart create (single and chunked), metadata, download and view, size limits."""

from __future__ import annotations

import hashlib

import pytest
from appwrite.exception import AppwriteException
from appwrite.input_file import InputFile
from appwrite.models.file import File
from appwrite.services.storage import Storage

from mistake_testbed.appwrite import AppwriteTestServer
from mistake_testbed.appwrite.schema import Bucket

pytestmark = pytest.mark.integration

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
JPEG = b"\xff\xd8\xff\xe0" + b"\x01" * 64
BUCKET = "origin_question_image"


@pytest.mark.parametrize(
    ("name", "data", "mime"),
    [
        ("page.png", PNG, "image/png"),
        ("page.jpg", JPEG, "image/jpeg"),
        ("fake.jpg", b"%PDF-1.7\n...", "application/pdf"),
        ("fake.jpg", b"<!DOCTYPE html><html></html>", "text/html"),
    ],
)
def test_create_get_download_view(appwrite: AppwriteTestServer, name: str, data: bytes, mime: str) -> None:
    storage = Storage(appwrite.client())
    created = storage.create_file(BUCKET, "f1", InputFile.from_bytes(data, name))
    assert isinstance(created, File)
    assert (created.id, created.bucketid, created.name, created.mimetype) == ("f1", BUCKET, name, mime)
    assert created.sizeoriginal == len(data)
    assert created.chunksuploaded == created.chunkstotal == 1
    assert created.encryption is True  # origin_question_image is an encrypted bucket

    meta = storage.get_file(BUCKET, "f1")
    assert isinstance(meta, File)
    assert meta.signature == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert storage.get_file_download(BUCKET, "f1") == data
    assert storage.get_file_view(BUCKET, "f1") == data
    download = next(r for r in reversed(appwrite.requests) if r.path.endswith("/download"))
    assert download.status == 200


def test_large_files_arrive_in_chunks_and_reassemble(appwrite: AppwriteTestServer) -> None:
    data = bytes(range(256)) * (6 * 1024 * 1024 // 256 + 7)  # a bit over 6 MiB: two chunks
    storage = Storage(appwrite.client())
    created = storage.create_file(BUCKET, "big", InputFile.from_bytes(data, "big.jpg"))
    assert created.chunkstotal == 2
    assert created.chunksuploaded == 2
    uploads = [r for r in appwrite.requests if r.method == "POST" and r.path.endswith("/files")]
    assert len(uploads) == 2
    assert all("Content-Range" in r.headers for r in uploads)
    assert storage.get_file_download(BUCKET, "big") == data


def test_bucket_maximum_size_is_enforced(appwrite: AppwriteTestServer) -> None:
    appwrite.add_bucket(Bucket("tiny", "tiny", maximum_file_size=100))
    storage = Storage(appwrite.client())
    with pytest.raises(AppwriteException) as caught:
        storage.create_file("tiny", "f1", InputFile.from_bytes(b"x" * 101, "a.png"))
    assert (caught.value.code, caught.value.type) == (400, "storage_invalid_file_size")
    assert storage.create_file("tiny", "f2", InputFile.from_bytes(b"x" * 100, "a.png")).sizeoriginal == 100


def test_production_limit_refuses_the_first_chunk_of_an_oversize_upload(appwrite: AppwriteTestServer) -> None:
    # The SDK announces the total in content-range, so the server refuses before more chunks are sent.
    data = b"\0" * 30_000_001
    with pytest.raises(AppwriteException) as caught:
        Storage(appwrite.client()).create_file(BUCKET, "huge", InputFile.from_bytes(data, "huge.jpg"))
    assert caught.value.type == "storage_invalid_file_size"
    assert appwrite.state.files.files == {}


@pytest.mark.parametrize(
    ("bucket", "file_id", "type_"),
    [("nope", "f1", "storage_bucket_not_found"), (BUCKET, "missing", "storage_file_not_found")],
)
def test_missing_files_and_buckets_are_404(appwrite: AppwriteTestServer, bucket: str, file_id: str, type_: str) -> None:
    storage = Storage(appwrite.client())
    for call in (storage.get_file, storage.get_file_download, storage.get_file_view):
        with pytest.raises(AppwriteException) as caught:
            call(bucket, file_id)
        assert (caught.value.code, caught.value.type) == (404, type_)


def test_duplicate_file_id_conflicts_and_delete_returns_empty(appwrite: AppwriteTestServer) -> None:
    storage = Storage(appwrite.client())
    storage.create_file(BUCKET, "f1", InputFile.from_bytes(PNG, "a.png"))
    with pytest.raises(AppwriteException) as caught:
        storage.create_file(BUCKET, "f1", InputFile.from_bytes(PNG, "a.png"))
    assert (caught.value.code, caught.value.type) == (409, "storage_file_already_exists")
    assert storage.delete_file(BUCKET, "f1") == b""
    assert storage.list_files(BUCKET).total == 0


def test_seeded_files_are_downloadable(appwrite: AppwriteTestServer) -> None:
    model = appwrite.put_file(BUCKET, JPEG, "photo.jpg")
    assert Storage(appwrite.client()).get_file_download(BUCKET, model["$id"]) == JPEG
