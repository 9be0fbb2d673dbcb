"""A real `kopf run` process against the dev cluster: every kind of handler fires, status and Events land."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from devcluster_support import GROUP, PLURAL, analysis

from mistake_testbed.fixtures.kube import ToolRunner
from mistake_testbed.kube import ClusterEmulator, DevCluster

pytestmark = pytest.mark.integration

MA = (GROUP, PLURAL)

HANDLERS = """
import pathlib
import kopf

MARKS = pathlib.Path(__file__).parent / "marks"
MARKS.mkdir(exist_ok=True)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="probe.mistakes.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="probe.mistakes.dev")
    settings.posting.level = 0


@kopf.on.create("mistakes.dev", "v1alpha1", "mistakeanalyses")
def created(body, patch, **_):
    patch.status["phase"] = "Queued"
    kopf.info(body, reason="Created", message="queued by the probe")


@kopf.timer("mistakes.dev", "v1alpha1", "mistakeanalyses", interval=0.3)
def tick(status, patch, **_):
    patch.status["attempts"] = (status.get("attempts") or 0) + 1


@kopf.daemon("mistakes.dev", "v1alpha1", "mistakeanalyses")
async def watcher(name, body, stopped, **_):
    # Async, so kopf sees it stop at once (it polls sync daemons only every 60 s by default).
    kopf.info(body, reason="DaemonStarted", message="daemon-" + name)
    await stopped.wait()
    (MARKS / ("daemon-stopped-" + name)).touch()


@kopf.on.delete("mistakes.dev", "v1alpha1", "mistakeanalyses")
def deleted(name, **_):
    (MARKS / ("deleted-" + name)).touch()
"""


def test_kopf_handlers_fire_against_the_dev_cluster(
    dev_cluster: DevCluster, kube_namespace: str, kubectl: ToolRunner, start_operator: Any, tmp_path: Path
) -> None:
    handlers = tmp_path / "probe_handlers.py"
    handlers.write_text(HANDLERS, encoding="utf-8")
    argv = [sys.executable, "-m", "kopf", "run", "--standalone", f"--namespace={kube_namespace}", str(handlers)]
    op = start_operator(argv, cwd=tmp_path, watch=PLURAL)
    kubectl("apply", "-f", "-", input=yaml.safe_dump(analysis("probe")))

    def ready(emu: ClusterEmulator) -> dict[str, Any] | None:
        obj = emu.get_object(MA, kube_namespace, "probe")
        status = (obj or {}).get("status") or {}
        ok = status.get("phase") == "Queued" and status.get("attempts", 0) >= 2
        return obj if ok else None

    obj = dev_cluster.wait_for(ready, timeout=60, what="create and timer handlers")
    assert obj["metadata"]["finalizers"]  # kopf holds the object for its delete handler and daemon

    def events_posted(emu: ClusterEmulator) -> dict[str, str]:
        events = emu.list_objects(("", "events"), kube_namespace, field_selector="involvedObject.name=probe")
        found = {e.get("reason", ""): e.get("message", "") for e in events}
        return found if {"Created", "DaemonStarted"} <= set(found) else {}

    posted = dev_cluster.wait_for(events_posted, timeout=30, what="the Created and DaemonStarted events")
    assert posted["Created"] == "queued by the probe"
    assert posted["DaemonStarted"] == "daemon-probe"

    kubectl("delete", "ma", "probe", "--wait=false")
    try:
        dev_cluster.wait_for(lambda emu: emu.get_object(MA, kube_namespace, "probe") is None, timeout=30)
    except TimeoutError:
        pytest.fail(f"the delete never completed; operator log:\n{op.log_text()[-5000:]}")
    marks = tmp_path / "marks"
    assert (marks / "deleted-probe").exists()
    assert (marks / "daemon-stopped-probe").exists()
    log = op.log_text()
    assert "Failed to post an event" not in log
    assert "Request attempt" not in log  # no API call had to be retried
