"""`mistake-testbed dev-cluster up`: run the emulated cluster for a person until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from mistake_testbed.kube.thread import DevCluster

DEFAULT_CRDS = Path(__file__).resolve().parents[4] / "charts" / "mistake-analyzer" / "crds"


def _parse_image(text: str) -> tuple[str, list[str]]:
    image, sep, command = text.partition("=")
    if not sep or not command.strip():
        raise argparse.ArgumentTypeError("expected IMAGE=COMMAND, e.g. worker:dev='python -m mistake_worker'")
    import shlex

    return image, shlex.split(command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mistake-testbed dev-cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the dev cluster and keep it running until Ctrl-C")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free port)")
    up.add_argument("--workdir", type=Path, default=None, help="kubeconfig and pod logs go here (default: temp)")
    up.add_argument(
        "--crds",
        type=Path,
        action="append",
        default=None,
        help=f"CRD file or folder to load at start (repeatable; default: {DEFAULT_CRDS} when present)",
    )
    up.add_argument(
        "--image",
        type=_parse_image,
        action="append",
        default=[],
        metavar="IMAGE=COMMAND",
        help="run containers of IMAGE that set no command with this local command",
    )
    up.add_argument("--no-jobs", action="store_true", help="run without the Job controller")
    up.add_argument("--json", action="store_true", help="print one JSON line with url and kubeconfig path")
    args = parser.parse_args(argv)

    crds = args.crds if args.crds is not None else ([DEFAULT_CRDS] if DEFAULT_CRDS.is_dir() else [])
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    cluster = DevCluster(
        port=args.port,
        workdir=args.workdir,
        preload=crds,
        images=dict(args.image),
        job_controller=not args.no_jobs,
        keep_history=False,  # a long-running cluster must not keep every version of every object
    )
    try:
        cluster.start()
        if args.json:
            print(json.dumps({"url": cluster.url, "kubeconfig": str(cluster.kubeconfig)}), flush=True)
        else:
            print(
                f"dev cluster listening on {cluster.url}\n"
                f"kubeconfig: {cluster.kubeconfig}\n"
                f"pod logs:   {cluster.workdir / 'pods'}\n\n"
                f"use it with:\n"
                f"  export KUBECONFIG={cluster.kubeconfig}\n"
                f"  kubectl get namespaces\n"
                f"  kubectl get mistakeanalyses -A\n\n"
                f"Ctrl-C stops it.",
                flush=True,
            )
        stop.wait()
    finally:
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("dev cluster stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
