"""The demo: the whole system on the embedded dev cluster (run it with `./dev demo`).

Until every component is in place it runs what exists and says what is still missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from mistake_api import analysis_name, crd

PARTS = {
    "mistake_testbed.kube": "dev cluster (emulated Kubernetes API + Job controller)",
    "mistake_testbed.appwrite": "Appwrite test server",
    "mistake_testbed.llm": "OpenAI-compatible test server",
    "mistake_operator.main": "operator",
    "mistake_worker.runner": "worker",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="./dev demo", description=__doc__.splitlines()[0] if __doc__ else "")
    parser.parse_args(argv)
    print("MistakeAnalysis CRD:", crd.default_path())
    print("example name:", analysis_name("main", "mistake_records", "6b12d867001e15101d30", "2026-12-04T10:00:00Z"))
    missing = [text for module, text in PARTS.items() if importlib.util.find_spec(module) is None]
    for text in missing:
        print(f"not available yet: {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
