"""Generated samples cached on disk, keyed by SAMPLES_VERSION; safe when several test processes race."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mistake_testbed.llm.answers import AnalysisFixture
from mistake_testbed.samples.bad import bad_bytes, write_oversize_jpeg
from mistake_testbed.samples.catalog import (
    BAD_INPUTS,
    PHOTOS,
    SAMPLES_VERSION,
    BadSpec,
    Expected,
    PhotoSpec,
    bad_input,
    photo,
)
from mistake_testbed.samples.render import cjk_font_path, encode_page

CACHE_ENV = "MISTAKE_TESTBED_CACHE"
MEDIA_TYPES = {".jpg": "image/jpeg", ".png": "image/png"}


def _atomic_write(path: Path, produce: Callable[[Path], None]) -> None:
    """Write via a temp file in the same folder and rename, so a reader never sees half a file."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        produce(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _bytes_writer(data: bytes) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        tmp.write_bytes(data)

    return write


@dataclass(frozen=True)
class Sample:
    name: str
    spec: PhotoSpec | BadSpec
    paths: tuple[Path, ...]

    @property
    def is_photo(self) -> bool:
        return isinstance(self.spec, PhotoSpec)

    @property
    def expected(self) -> Expected | None:
        return self.spec.expected if isinstance(self.spec, PhotoSpec) else None

    @property
    def path(self) -> Path:
        return self.paths[0]

    def read(self, page: int = 0) -> bytes:
        return self.paths[page].read_bytes()

    def media_type(self, page: int = 0) -> str:
        # Bad inputs keep the .jpg label a client would trust: that is the point of them.
        return MEDIA_TYPES.get(self.paths[page].suffix, "application/octet-stream")

    def data_url(self, page: int = 0) -> str:
        return f"data:{self.media_type(page)};base64,{base64.b64encode(self.read(page)).decode('ascii')}"

    def data_urls(self) -> list[str]:
        return [self.data_url(i) for i in range(len(self.paths))]

    def sha256s(self) -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in self.paths]


class SampleSet:
    """The catalogue's files under `root`, generated on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    @classmethod
    def default(cls) -> SampleSet:
        cjk_font_path()  # raises FontMissingError with an install hint
        base = Path(os.environ.get(CACHE_ENV) or Path(tempfile.gettempdir()) / "mistake-testbed")
        return cls(base / f"samples-v{SAMPLES_VERSION}")

    def photo(self, name: str) -> Sample:
        spec = photo(name)
        paths = tuple(self.root / file_name for file_name in spec.file_names())
        for index, path in enumerate(paths):
            if not path.exists():
                _atomic_write(path, _bytes_writer(encode_page(spec, index)))
        return Sample(spec.name, spec, paths)

    def bad(self, name: str) -> Sample:
        spec = bad_input(name)
        path = self.root / spec.file_name
        if not path.exists():
            source = self.photo("math-choice").read()
            if spec.kind == "oversize":
                _atomic_write(path, lambda tmp: write_oversize_jpeg(tmp, source))
            else:
                _atomic_write(path, _bytes_writer(bad_bytes(spec, source)))
        return Sample(spec.name, spec, (path,))

    def photos(self) -> list[Sample]:
        return [self.photo(spec.name) for spec in PHOTOS]

    def bad_inputs(self, include_lazy: bool = False) -> list[Sample]:
        return [self.bad(spec.name) for spec in BAD_INPUTS if include_lazy or not spec.lazy]

    def manifest(self, include_lazy: bool = False) -> dict[str, Any]:
        photos = [
            {
                "name": s.name,
                "files": [p.name for p in s.paths],
                "description": s.spec.description,
                "sha256": s.sha256s(),
                "expected": s.expected.facts() if s.expected else None,
            }
            for s in self.photos()
        ]
        bad = [
            {
                "name": s.name,
                "file": s.path.name,
                "description": s.spec.description,
                "expected_error": s.spec.expected_error if isinstance(s.spec, BadSpec) else None,
            }
            for s in self.bad_inputs(include_lazy)
        ]
        return {"version": SAMPLES_VERSION, "photos": photos, "bad_inputs": bad}

    def write_all(self, dest: Path, include_oversize: bool = True) -> list[Path]:
        """Copy every sample and a manifest.json into `dest` (file copies stream, so oversize stays cheap)."""
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for sample in [*self.photos(), *self.bad_inputs(include_oversize)]:
            for path in sample.paths:
                target = dest / path.name
                shutil.copyfile(path, target)
                written.append(target)
        manifest = dest / "manifest.json"
        manifest.write_text(json.dumps(self.manifest(include_oversize), ensure_ascii=False, indent=2) + "\n")
        written.append(manifest)
        return written

    def fixtures(self) -> list[AnalysisFixture]:
        """Fixtures keyed by marker and by the exact bytes of each page."""
        return [
            AnalysisFixture(
                name=s.name,
                facts=s.expected.facts(),
                markers=tuple(s.spec.markers()),
                sha256s=tuple(s.sha256s()),
            )
            for s in self.photos()
            if s.expected is not None and isinstance(s.spec, PhotoSpec)
        ]


def analysis_fixtures() -> list[AnalysisFixture]:
    """Fixtures for every sample photo keyed by its embedded marker; needs no font and renders nothing."""
    return [AnalysisFixture(name=s.name, facts=s.expected.facts(), markers=tuple(s.markers())) for s in PHOTOS]
