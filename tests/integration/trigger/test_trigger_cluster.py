"""The real trigger, run by the Appwrite test server's event delivery, creating MistakeAnalysis resources in the
dev cluster over TLS; and each way the Kubernetes API can fail ending in one logged error and a normal answer."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

import pytest
import requests
import trustme
from trigger_cluster_support import MA, Deployed, Records

from mistake_api import analysis_name, record_key, user_key
from mistake_api import constants as c
from mistake_testbed.appwrite.server import AppwriteTestServer
from mistake_testbed.appwrite.values import format_datetime, now_iso
from mistake_testbed.kube import DevCluster
from mistake_testbed.kube.tls_proxy import TlsProxy

pytestmark = pytest.mark.integration


def analyses(cluster: DevCluster, namespace: str) -> list[dict[str, Any]]:
    return cluster.list_objects(MA, namespace)


def only_line(deployed: Deployed, index: int = 0) -> tuple[list[str], list[str]]:
    run = deployed.host.runs[index]
    assert len(run.logs) + len(run.errors) == 1, (run.logs, run.errors)
    return run.logs, run.errors


def test_a_pending_record_becomes_the_expected_analysis(
    deploy: Callable[..., Deployed], appwrite: AppwriteTestServer, dev_cluster: DevCluster, kube_namespace: str
) -> None:
    deployed = deploy()
    Records(appwrite).create("rec-1", originalImageIds=["img-1", "img-2"])
    (execution,) = appwrite.wait_for_executions(1)
    stored = appwrite.document("mistake_records", "rec-1")

    assert execution.status == 200
    assert execution.event == "databases.main.collections.mistake_records.documents.rec-1.create"
    name = analysis_name("main", "mistake_records", "rec-1", stored["$updatedAt"])
    assert deployed.outcomes() == [
        {
            "decision": "queued",
            "reason": "created",
            "record": "main/mistake_records/rec-1",
            "analysis": name,
            "httpStatus": 201,
        }
    ]
    (analysis,) = analyses(dev_cluster, kube_namespace)
    assert analysis["metadata"]["name"] == name
    assert analysis["metadata"]["labels"][c.LABEL_RECORD] == record_key("main", "mistake_records", "rec-1")
    assert analysis["metadata"]["labels"][c.LABEL_USER] == user_key("user-1")
    assert analysis["metadata"]["labels"][c.LABEL_ORIGIN] == "trigger"
    spec = analysis["spec"]
    assert spec["record"] == {"databaseId": "main", "collectionId": "mistake_records", "documentId": "rec-1"}
    assert spec["imageIds"] == ["img-1", "img-2"]
    assert spec["revision"] == stored["$updatedAt"]
    assert spec["source"]["event"] == execution.event
    logs, errors = only_line(deployed)
    assert errors == []
    assert logs[0].startswith("mistake-trigger decision=queued reason=created record=main/mistake_records/rec-1")

    # The worker's own status writes fire update events too; they must not queue anything.
    Records(appwrite).update("rec-1", analysisStatus="processing")
    appwrite.wait_for_executions(2)
    assert deployed.outcomes()[1]["reason"] == "not_pending"
    assert len(analyses(dev_cluster, kube_namespace)) == 1


@pytest.mark.parametrize("style", ["legacy", "tables"])
def test_rows_written_through_tablesdb_are_queued_for_either_event_name(
    deploy: Callable[..., Deployed], dev_cluster: DevCluster, kube_namespace: str, style: str
) -> None:
    with AppwriteTestServer(seed=7, row_event_style=style) as server:
        deployed = deploy(server)
        Records(server, rows=True).create("row-1", originalImageIds=[])
        (execution,) = server.wait_for_executions(1)
        stored = server.document("mistake_records", "row-1")

    expected_event = {
        "legacy": "databases.main.collections.mistake_records.documents.row-1.create",
        "tables": "databases.main.tables.mistake_records.rows.row-1.create",
    }[style]
    assert execution.event == expected_event
    assert deployed.outcomes()[0]["decision"] == "queued"
    (analysis,) = analyses(dev_cluster, kube_namespace)
    assert analysis["metadata"]["name"] == analysis_name("main", "mistake_records", "row-1", stored["$updatedAt"])
    assert analysis["spec"]["imageIds"] == []  # no images still gets a resource; the operator fails it by name


@pytest.mark.parametrize("rows", [False, True], ids=["documents", "rows"])
def test_upserts_are_queued(
    deploy: Callable[..., Deployed],
    appwrite: AppwriteTestServer,
    dev_cluster: DevCluster,
    kube_namespace: str,
    rows: bool,
) -> None:
    deployed = deploy()
    Records(appwrite, rows=rows).upsert("up-1")
    (execution,) = appwrite.wait_for_executions(1)
    assert execution.event.endswith(".up-1.upsert")
    assert deployed.outcomes()[0]["decision"] == "queued"
    (analysis,) = analyses(dev_cluster, kube_namespace)
    assert analysis["spec"]["source"]["event"] == execution.event


def test_duplicate_deliveries_of_one_event_make_one_analysis(
    deploy: Callable[..., Deployed], appwrite: AppwriteTestServer, dev_cluster: DevCluster, kube_namespace: str
) -> None:
    deployed = deploy()
    # A second subscription of the same function URL: every write is delivered twice, concurrently.
    appwrite.subscribe(deployed.host.url, events=deployed.subscription.events, function_id="mistake-analyzer-copy")
    Records(appwrite).create("dup-1")
    first, second = appwrite.wait_for_executions(2)
    # And a replay of the recorded delivery, byte for byte, like a redelivered event.
    replay = requests.post(first.url, data=first.body.encode(), headers=first.headers, timeout=10)

    assert {first.status, second.status, replay.status_code} == {200}
    decisions = sorted(o["decision"] for o in deployed.outcomes())
    assert decisions == ["already_queued", "already_queued", "queued"]
    assert {o["analysis"] for o in deployed.outcomes()} == {
        analyses(dev_cluster, kube_namespace)[0]["metadata"]["name"]
    }
    assert len(analyses(dev_cluster, kube_namespace)) == 1
    assert all(run.errors == [] for run in deployed.host.runs)


def test_a_reanalysis_makes_a_second_analysis(
    deploy: Callable[..., Deployed], appwrite: AppwriteTestServer, dev_cluster: DevCluster, kube_namespace: str
) -> None:
    deployed = deploy()
    records = Records(appwrite)
    records.create("re-1")
    appwrite.wait_for_executions(1)
    records.update("re-1", analysisStatus="completed", questionId="q-1")
    appwrite.wait_for_executions(2)
    completed_at = appwrite.document("mistake_records", "re-1")["$updatedAt"]
    # $updatedAt has millisecond resolution: let the clock move past it so the re-analysis is a newer revision.
    appwrite.wait_for(lambda: now_iso() > completed_at, timeout=5, interval=0.001)
    records.update("re-1", analysisStatus="pending", wrongReason="第二题识别错了")
    appwrite.wait_for_executions(3)
    revision = appwrite.document("mistake_records", "re-1")["$updatedAt"]

    assert [o["decision"] for o in deployed.outcomes()] == ["queued", "skipped", "queued"]
    found = {a["spec"]["revision"]: a for a in analyses(dev_cluster, kube_namespace)}
    assert len(found) == 2
    assert found[revision]["spec"]["reanalysis"] == {"wrongReason": "第二题识别错了", "previousQuestionId": "q-1"}
    assert found[revision]["metadata"]["name"] == analysis_name("main", "mistake_records", "re-1", revision)
    labels = {a["metadata"]["labels"][c.LABEL_RECORD] for a in found.values()}
    assert labels == {record_key("main", "mistake_records", "re-1")}  # both revisions of one record
    assert "第二题识别错了" not in "\n".join(run.logs[0] for run in deployed.host.runs)


def test_one_tls_session_serves_consecutive_events(
    deploy: Callable[..., Deployed],
    appwrite: AppwriteTestServer,
    tls_proxy: TlsProxy,
    dev_cluster: DevCluster,
    kube_namespace: str,
) -> None:
    deployed = deploy(K8S_CA_CERT=__import__("base64").b64encode(tls_proxy.ca_pem.encode()).decode())
    records = Records(appwrite)
    for n in range(4):
        records.create(f"warm-{n}")
        appwrite.wait_for_executions(n + 1)  # one at a time, as a warm runtime sees them

    assert [o["decision"] for o in deployed.outcomes()] == ["queued"] * 4
    assert len(analyses(dev_cluster, kube_namespace)) == 4
    assert deployed.module_globals["TRANSPORT"].builds == 1
    assert len(tls_proxy.peers) == 1  # one TCP (and TLS) connection carried all four creates


# --- failures: each one error line, a normal answer, and nothing created --------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def assert_failed_cleanly(
    deployed: Deployed, appwrite: AppwriteTestServer, reason: str, record_id: str
) -> dict[str, Any]:
    (execution,) = appwrite.wait_for_executions(1)
    # The delivery answered 200 with no executor error: the function returned within its timeout.
    assert (execution.status, execution.error) == (200, "")
    (outcome,) = deployed.outcomes()
    assert outcome["decision"] == "failed"
    assert outcome["reason"] == reason
    logs, errors = only_line(deployed)
    assert logs == []
    assert f"reason={reason}" in errors[0]
    assert f"record=main/mistake_records/{record_id}" in errors[0]
    assert TOKEN_MARKERS.isdisjoint(errors[0].split())
    return outcome


TOKEN_MARKERS = {"Bearer", "trigger-sa-token-0c1d2e", "wrong-token"}


def test_wrong_ca_is_a_tls_error(
    deploy: Callable[..., Deployed], appwrite: AppwriteTestServer, dev_cluster: DevCluster, kube_namespace: str
) -> None:
    deployed = deploy(K8S_CA_CERT=trustme.CA().cert_pem.bytes().decode())
    Records(appwrite).create("ca-1")
    assert_failed_cleanly(deployed, appwrite, "k8s_tls_error", "ca-1")
    assert analyses(dev_cluster, kube_namespace) == []


def test_wrong_token_is_unauthorized(
    deploy: Callable[..., Deployed], appwrite: AppwriteTestServer, dev_cluster: DevCluster, kube_namespace: str
) -> None:
    deployed = deploy(K8S_TOKEN="wrong-token")
    Records(appwrite).create("tok-1")
    outcome = assert_failed_cleanly(deployed, appwrite, "k8s_unauthorized", "tok-1")
    assert outcome["httpStatus"] == 401
    assert analyses(dev_cluster, kube_namespace) == []


def test_api_down_is_a_connection_error(
    deploy: Callable[..., Deployed], appwrite: AppwriteTestServer, dev_cluster: DevCluster, kube_namespace: str
) -> None:
    deployed = deploy(K8S_API_URL=f"https://127.0.0.1:{closed_port()}")
    Records(appwrite).create("down-1")
    assert_failed_cleanly(deployed, appwrite, "k8s_connection_error", "down-1")
    assert analyses(dev_cluster, kube_namespace) == []


def test_slow_api_times_out_within_the_configured_timeout(
    deploy: Callable[..., Deployed],
    appwrite: AppwriteTestServer,
    tls_proxy: TlsProxy,
    dev_cluster: DevCluster,
    kube_namespace: str,
) -> None:
    deployed = deploy(K8S_TIMEOUT="0.5")
    tls_proxy.hold()
    Records(appwrite).create("slow-1")
    assert_failed_cleanly(deployed, appwrite, "k8s_timeout", "slow-1")
    assert tls_proxy.requests == 1  # it did reach the API, which never answered in time
    assert analyses(dev_cluster, kube_namespace) == []


def test_an_api_that_refuses_the_resource_is_reported(
    deploy: Callable[..., Deployed], appwrite: AppwriteTestServer
) -> None:
    deployed = deploy(K8S_NAMESPACE="no-such-namespace")
    Records(appwrite).create("ns-1")
    outcome = assert_failed_cleanly(deployed, appwrite, "k8s_not_found", "ns-1")
    assert outcome["httpStatus"] == 404


def test_formatted_revision_matches_the_server_clock_format() -> None:
    # The re-analysis test compares now_iso() strings: they must sort like the instants they name.
    from datetime import UTC, datetime, timedelta

    earlier = datetime(2026, 1, 1, 23, 59, 59, 999000, tzinfo=UTC)
    assert format_datetime(earlier) < format_datetime(earlier + timedelta(milliseconds=1))
