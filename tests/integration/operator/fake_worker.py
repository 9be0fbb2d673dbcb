"""A stand-in for the analysis worker, run by the dev cluster's Job controller as a pod's command.

It follows the worker's CR protocol (claim Scheduled-for-my-Job as Running, then finish) and is steered by
FAKE_WORKER_MODE (succeed | retryable | permanent | hang | hang-once | crash). Each success is appended to
FAKE_WORKER_LEDGER so tests can prove every analysis succeeded exactly once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
import yaml

from mistake_api import Phase, phase_patch

GROUP_PATH = "/apis/mistakes.dev/v1alpha1/namespaces/{ns}/mistakeanalyses/{name}"


def server() -> str:
    config = yaml.safe_load(Path(os.environ["KUBECONFIG"]).read_text())
    return str(config["clusters"][0]["cluster"]["server"]).rstrip("/")


def patch_status(session: requests.Session, url: str, status: dict[str, Any], job: str, phase: str) -> bool:
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/status/jobName", "value": job},
        {"op": "test", "path": "/status/phase", "value": phase},
    ]
    ops += [{"op": "add", "path": f"/status/{k}", "value": v} for k, v in status.items()]
    resp = session.patch(url + "/status", json=ops, headers={"Content-Type": "application/json-patch+json"}, timeout=10)
    return resp.status_code == 200


def _first_hang(ledger: str) -> bool:
    try:
        Path(ledger + ".hung").touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def main() -> int:
    mode = os.environ.get("FAKE_WORKER_MODE", "succeed")
    members = json.loads(os.environ["MISTAKE_BATCH_MEMBERS"])
    ns, job = os.environ["MISTAKE_NAMESPACE"], os.environ["MISTAKE_JOB_NAME"]
    ledger = os.environ.get("FAKE_WORKER_LEDGER")
    base = server()
    session = requests.Session()
    if mode == "crash":
        return 1
    exit_code = 0
    for name in members:
        url = base + GROUP_PATH.format(ns=ns, name=name)
        resp = session.get(url, timeout=10)
        if resp.status_code != 200:
            continue
        body = resp.json()
        status = body.get("status") or {}
        if status.get("phase") != "Scheduled" or status.get("jobName") != job or body["spec"].get("cancel"):
            continue
        now = datetime.now(UTC)
        if not patch_status(session, url, phase_patch(status, Phase.RUNNING, started_at=now), job, "Scheduled"):
            continue
        status = session.get(url, timeout=10).json()["status"]
        if mode == "hang" or (mode == "hang-once" and ledger and _first_hang(ledger)):
            time.sleep(3600)  # a stuck pod: the test kills it
        time.sleep(float(os.environ.get("FAKE_WORKER_DELAY", "0")))  # simulated analysis time
        if mode == "retryable":
            err = {"reason": "LLMRateLimited", "message": "429 from the provider", "retryable": True}
            patch_status(session, url, {"error": err}, job, "Running")
            exit_code = 1
            continue
        if mode == "permanent":
            err = {"reason": "ImageCorrupt", "message": "truncated JPEG", "retryable": False}
            patch = phase_patch(status, Phase.FAILED, reason="ImageCorrupt", finished_at=datetime.now(UTC), error=err)
            patch_status(session, url, patch, job, "Running")
            continue
        result = {
            "questionId": f"q-{name[-8:]}",
            "subject": "math",
            "model": "test-vision",
            "promptTokens": 900,
            "completionTokens": 300,
            "llmSeconds": 0.5,
            "llmCalls": 1,
        }
        patch = phase_patch(status, Phase.SUCCEEDED, finished_at=datetime.now(UTC), result=result)
        if patch_status(session, url, patch, job, "Running") and ledger:
            with open(ledger, "a", encoding="utf-8") as fh:
                fh.write(f"{name} {job}\n")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
