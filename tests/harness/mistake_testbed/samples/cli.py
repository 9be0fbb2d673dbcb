"""`mistake-testbed samples DIR`: write the sample photos, bad inputs and manifest.json to DIR."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mistake_testbed.samples.render import FontMissingError
from mistake_testbed.samples.store import SampleSet


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mistake-testbed samples", description=__doc__)
    parser.add_argument("dest", type=Path, help="output folder (created if missing)")
    parser.add_argument("--no-oversize", action="store_true", help="skip the >30 MB file")
    args = parser.parse_args(argv)
    try:
        samples = SampleSet.default()
    except FontMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    written = samples.write_all(args.dest, include_oversize=not args.no_oversize)
    for path in written:
        print(f"{path.stat().st_size:>12,}  {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
