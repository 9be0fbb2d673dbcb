"""`mistake-api`: small tools around the contract.

mistake-api crd [--check]                         generate (or check) the CRD YAML in the chart
mistake-api name DATABASE COLLECTION RECORD REV   print the MistakeAnalysis name for a record revision
mistake-api reasons                               list failure and cancellation reasons
"""

from __future__ import annotations

import sys

from . import crd
from .naming import analysis_name
from .reasons import REASONS


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        print(__doc__)
        return 0
    command, rest = args[0], args[1:]
    if command == "crd":
        return crd.main(rest)
    if command == "name" and len(rest) == 4:
        print(analysis_name(*rest))
        return 0
    if command == "reasons":
        for reason, meta in REASONS.items():
            print(f"{reason.value:<22} {meta.outcome.value:<7} {meta.summary}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
