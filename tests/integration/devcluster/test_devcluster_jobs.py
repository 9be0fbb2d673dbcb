"""The Job controller: pods run as local processes; Job status and conditions follow Kubernetes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from mistake_testbed.kube import ClusterEmulator, DevCluster

pytestmark = pytest.mark.integration

JOBS, PODS = ("batch", "jobs"), ("", "pods")


def job_body(name: str, argv: list[str], **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "worker:dev", "command": argv}
    container.update(spec.pop("container", {}))
    template_spec: dict[str, Any] = {"restartPolicy": spec.pop("restartPolicy", "Never"), "containers": [container]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": template_spec}, **spec},
    }


def condition(job: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for cond in ((job or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == kind and cond["status"] == "True":
            return dict(cond)
    return None


def wait_job(cluster: DevCluster, ns: str, name: str, kind: str, timeout: float = 30) -> dict[str, Any]:
    def check(emu: ClusterEmulator) -> dict[str, Any] | None:
        job = emu.get_object(JOBS, ns, name)
        return job if condition(job, kind) else None

    return cluster.wait_for(check, timeout=timeout, what=f"job {ns}/{name} {kind}")


def script(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / name
    path.write_text(code, encoding="utf-8")
    return str(path)


def test_job_running_a_local_script_completes(
    dev_cluster: DevCluster, kube_client: Any, kube_namespace: str, tmp_path: Path
) -> None:
    marker = tmp_path / "ran.txt"
    path = script(
        tmp_path,
        "ok.py",
        "import os, sys, pathlib\n"
        "pathlib.Path(sys.argv[1]).write_text(os.environ['GREETING'] + ' ' + os.environ['POD_NAMESPACE'])\n"
        "print('done')\n",
    )
    env = [
        {"name": "GREETING", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "greeting"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_secret(kube_namespace, {"metadata": {"name": "creds"}, "stringData": {"greeting": "hello"}})
    body = job_body("ok", ["python", path, str(marker)], container={"env": env})
    client.BatchV1Api(kube_client).create_namespaced_job(kube_namespace, body)
    job = wait_job(dev_cluster, kube_namespace, "ok", "Complete")
    assert job["status"]["succeeded"] == 1
    assert job["status"]["completionTime"]
    assert marker.read_text() == f"hello {kube_namespace}"
    pods = core.list_namespaced_pod(kube_namespace, label_selector="job-name=ok").items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    assert pods[0].status.container_statuses[0].state.terminated.exit_code == 0
    log = core.read_namespaced_pod_log(pods[0].metadata.name, kube_namespace)
    assert "done" in log


def test_failing_job_fails_after_backoff_limit(dev_cluster: DevCluster, kube_namespace: str) -> None:
    body = job_body("flaky", [sys.executable, "-c", "raise SystemExit(3)"], backoffLimit=2)
    dev_cluster.create(JOBS, kube_namespace, body)
    job = wait_job(dev_cluster, kube_namespace, "flaky", "Failed")
    assert condition(job, "Failed")["reason"] == "BackoffLimitExceeded"  # type: ignore[index]
    assert job["status"]["failed"] == 3  # the first try and backoffLimit retries
    pods = dev_cluster.list_objects(PODS, kube_namespace, "job-name=flaky")
    assert len(pods) == 3
    assert {p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods} == {3}


def test_pod_failure_policy_exit_code_fails_the_job_at_once(dev_cluster: DevCluster, kube_namespace: str) -> None:
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]}
    body = job_body("fatal", [sys.executable, "-c", "raise SystemExit(42)"], backoffLimit=5, podFailurePolicy=policy)
    dev_cluster.create(JOBS, kube_namespace, body)
    job = wait_job(dev_cluster, kube_namespace, "fatal", "Failed")
    failed = condition(job, "Failed")
    assert failed is not None
    assert failed["reason"] == "PodFailurePolicy"
    assert "exit code 42" in failed["message"]
    assert len(dev_cluster.list_objects(PODS, kube_namespace, "job-name=fatal")) == 1


def test_indexed_job_honours_parallelism_and_sets_the_index(private_cluster: DevCluster, tmp_path: Path) -> None:
    out = tmp_path / "indexes"
    out.mkdir()
    code = f"import os, pathlib; pathlib.Path({str(out)!r}, os.environ['JOB_COMPLETION_INDEX']).touch()"
    body = job_body("idx", [sys.executable, "-c", code], completions=4, parallelism=2, completionMode="Indexed")
    private_cluster.create(JOBS, "default", body)
    job = wait_job(private_cluster, "default", "idx", "Complete")
    assert job["status"]["completedIndexes"] == "0-3"
    assert sorted(p.name for p in out.iterdir()) == ["0", "1", "2", "3"]
    assert private_cluster.max_active_jobs() == 1
    assert private_cluster.call(lambda: private_cluster.controller.max_active_pods) <= 2


def test_active_deadline_fails_a_hanging_job(private_cluster: DevCluster) -> None:
    private_cluster.hang_pods(True)
    body = job_body("slow", [sys.executable, "-c", "pass"], activeDeadlineSeconds=1)
    private_cluster.create(JOBS, "default", body)
    job = wait_job(private_cluster, "default", "slow", "Failed")
    assert condition(job, "Failed")["reason"] == "DeadlineExceeded"  # type: ignore[index]
    # The hanging pod was deleted and its (simulated) container stopped.
    private_cluster.wait_for(lambda emu: not private_cluster.controller.running_pods(), timeout=10)


def test_killed_pod_is_retried_and_failed_start_counts_as_failure(private_cluster: DevCluster) -> None:
    private_cluster.hang_pods(True)
    private_cluster.create(JOBS, "default", job_body("victim", [sys.executable, "-c", "pass"], backoffLimit=1))

    def running(emu: ClusterEmulator) -> str | None:
        for pod in emu.list_objects(PODS, "default", "job-name=victim"):
            if pod["status"].get("phase") == "Running":
                return str(pod["metadata"]["name"])
        return None

    first = private_cluster.wait_for(running, timeout=10)
    private_cluster.hang_pods(None)
    private_cluster.fail_pod_start(True)
    assert private_cluster.kill_pod("default", first)
    job = wait_job(private_cluster, "default", "victim", "Failed")
    pods = private_cluster.list_objects(PODS, "default", "job-name=victim")
    codes = sorted(p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods)
    assert codes == [128, 137]  # the killed pod, then its replacement that could not start
    assert job["status"]["failed"] == 2


def test_ttl_after_finished_deletes_job_and_pods(dev_cluster: DevCluster, kube_namespace: str) -> None:
    body = job_body("short", [sys.executable, "-c", "pass"], ttlSecondsAfterFinished=0)
    created = dev_cluster.create(JOBS, kube_namespace, body)
    dev_cluster.wait_for(lambda emu: emu.get_object(JOBS, kube_namespace, "short") is None, timeout=30)
    history = dev_cluster.history()
    assert any(h["event"] == "job-complete" and h["job"] == "short" for h in history)
    assert dev_cluster.list_objects(PODS, kube_namespace, f"controller-uid={created['metadata']['uid']}") == []


def test_missing_secret_keeps_pod_pending_until_created(dev_cluster: DevCluster, kube_namespace: str) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    body = job_body(
        "waits", [sys.executable, "-c", "import os; assert os.environ['TOKEN'] == 't'"], container={"env": env}
    )
    dev_cluster.create(JOBS, kube_namespace, body)

    def waiting(emu: ClusterEmulator) -> bool:
        for pod in emu.list_objects(PODS, kube_namespace, "job-name=waits"):
            state = pod["status"].get("containerStatuses", [{}])[0].get("state", {})
            if state.get("waiting", {}).get("reason") == "CreateContainerConfigError":
                return True
        return False

    dev_cluster.wait_for(waiting, timeout=10)
    dev_cluster.create(("", "secrets"), kube_namespace, {"metadata": {"name": "late"}, "stringData": {"token": "t"}})
    wait_job(dev_cluster, kube_namespace, "waits", "Complete")


def test_image_mapping_runs_containers_without_command(tmp_path: Path) -> None:
    images = {"worker": [sys.executable, "-c", "import sys; raise SystemExit(int(sys.argv[1]))"]}
    with DevCluster(workdir=tmp_path / "c", images=images) as cluster:
        body = job_body("mapped", [], container={"command": None, "args": ["0"], "image": "worker:1.2"})
        body["spec"]["template"]["spec"]["containers"][0].pop("command")
        cluster.create(JOBS, "default", body)
        job = wait_job(cluster, "default", "mapped", "Complete")
        assert job["status"]["succeeded"] == 1
