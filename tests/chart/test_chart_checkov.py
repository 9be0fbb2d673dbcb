"""checkov on every rendered values case: no failed check beyond the justified skips in .checkov.yaml."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, ROOT

pytestmark = pytest.mark.chart

CONFIG = CHART / ".checkov.yaml"
# checkov pins old versions of packages the project needs (packaging, python-dateutil), so it may live in its own
# virtualenv; CHECKOV names the executable explicitly.
CANDIDATES = (ROOT / ".venv" / "bin" / "checkov", ROOT / ".venv" / "tools" / "checkov" / "bin" / "checkov")
# A pod that breaks the rules on purpose, so the run proves checkov really checks (it must fail here only).
CANARY = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "canary", "namespace": "canary"},
    "spec": {"containers": [{"name": "c", "image": "busybox", "securityContext": {"privileged": True}}]},
}


@pytest.fixture(scope="session")
def checkov() -> str:
    explicit = os.environ.get("CHECKOV")
    found = explicit or next((str(p) for p in CANDIDATES if p.is_file()), None) or shutil.which("checkov")
    if not found:
        pytest.skip(
            "checkov not found: `python -m venv .venv/tools/checkov && .venv/tools/checkov/bin/pip install checkov`"
        )
    return found


@pytest.fixture(scope="session")
def checkov_report(checkov: str, rendered_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    scan_dir = tmp_path_factory.mktemp("checkov")
    for path in rendered_dir.glob("*.yaml"):
        shutil.copy(path, scan_dir / path.name)
    (scan_dir / "zz-canary.yaml").write_text(yaml.safe_dump(CANARY), encoding="utf-8")
    result = subprocess.run(
        [checkov, "--config-file", str(CONFIG), "--skip-download", "-o", "json", "-d", str(scan_dir)],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert result.stdout, result.stderr
    data = json.loads(result.stdout)
    reports = data if isinstance(data, list) else [data]
    (report,) = [r for r in reports if r["check_type"] == "kubernetes"]
    assert isinstance(report, dict)
    return report


def test_rendered_chart_passes_checkov(checkov_report: dict[str, Any]) -> None:
    summary = checkov_report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 200
    chart_failures = [
        f"{f['check_id']} {f['check_name']} ({f['resource']} in {f['file_path']})"
        for f in checkov_report["results"]["failed_checks"]
        if not f["resource"].startswith("Pod.canary")
    ]
    assert chart_failures == []


def test_checkov_flags_the_canary(checkov_report: dict[str, Any]) -> None:
    failed = {
        f["check_id"] for f in checkov_report["results"]["failed_checks"] if f["resource"].startswith("Pod.canary")
    }
    assert "CKV_K8S_16" in failed  # privileged container


def test_every_skip_is_justified() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    skips = config["skip-check"]
    assert 0 < len(skips) <= 5, "keep the list of skipped checks short"
    text = CONFIG.read_text(encoding="utf-8")
    for check in skips:
        # The comment right above the entry names the check and says why it does not apply.
        match = re.search(rf"((?:\s*#.*\n)+)\s*- {re.escape(check)}\n", text)
        assert match, f"{check} has no justification comment"
        assert check in match.group(1), f"{check}: the comment does not name it"
        assert len(match.group(1)) > 80, f"{check}: justification too thin"
