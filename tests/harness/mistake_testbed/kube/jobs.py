"""A Job controller and a kubelet stand-in for the emulator: Jobs get Pods, and Pods run as local processes.

Each Pod runs its first container's `command + args` (or, without a command, the local command its image maps
to) as a subprocess in its own process group, with the pod's environment resolved the way the kubelet does
(`value`, `valueFrom` Secret/ConfigMap/fieldRef, `envFrom`). Output goes to one log file per pod, also served
at `pods/NAME/log`. The controller honours parallelism, completions, Indexed completion mode, backoffLimit
(with a short exponential delay), activeDeadlineSeconds, podFailurePolicy on exit codes, restartPolicy
OnFailure, suspend and ttlSecondsAfterFinished, and writes Pod phases and Job status/conditions as Kubernetes
does. Fault hooks let tests kill a running pod, make pods hang and fail pod start.

Everything runs on the emulator's event loop and talks to the store in-process, like the controllers that
live inside a real control plane.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from mistake_testbed.kube.emulator import ClusterEmulator, ResourceDef
from mistake_testbed.kube.util import JSON, ApiError, jsonpath, parse_time, rfc3339

log = logging.getLogger(__name__)

JOBS = ("batch", "jobs")
PODS = ("", "pods")
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
UID_LABEL = "batch.kubernetes.io/controller-uid"
LOG_ANNOTATION = "devcluster.mistakes.dev/log-file"

PodPredicate = Callable[[JSON], bool]
# (reference key, resource, base64-encoded data)
_ENV_FROM = (("configMapRef", ("", "configmaps"), False), ("secretRef", ("", "secrets"), True))
_VALUE_FROM = (("secretKeyRef", ("", "secrets"), True), ("configMapKeyRef", ("", "configmaps"), False))


@dataclasses.dataclass
class JobControllerOptions:
    log_dir: Path
    # image (with or without its tag) -> argv prefix, for containers without `command`
    images: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # command[0] -> local executable; `python` runs this interpreter so pods see the project's packages
    commands: dict[str, str] = dataclasses.field(
        default_factory=lambda: {"python": sys.executable, "python3": sys.executable}
    )
    backoff_seconds: float = 0.2  # first retry delay; the real controller starts at 10 s
    max_backoff_seconds: float = 2.0
    max_grace_seconds: float = 2.0  # cap on terminationGracePeriodSeconds when a pod is deleted
    inherit_env: tuple[str, ...] = ("PATH", "LANG", "LC_ALL", "TZ", "TMPDIR", "SSL_CERT_FILE")
    extra_env: dict[str, str] = dataclasses.field(default_factory=dict)
    node_name: str = "dev-node"


class MissingReferenceError(Exception):
    pass


class StartFailureError(Exception):
    pass


@dataclasses.dataclass
class PodRun:
    namespace: str
    name: str
    uid: str
    job_uid: str | None
    task: asyncio.Task[None] | None = None
    process: asyncio.subprocess.Process | None = None
    killed: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    deleted: bool = False
    restarts: int = 0
    log_path: Path | None = None
    active: bool = False


@dataclasses.dataclass
class JobTrack:
    """What the controller has counted for a Job (the real one keeps this with pod finalizers)."""

    succeeded: set[str] = dataclasses.field(default_factory=set)
    failed: set[str] = dataclasses.field(default_factory=set)
    ignored: set[str] = dataclasses.field(default_factory=set)
    succeeded_indexes: set[int] = dataclasses.field(default_factory=set)
    last_failure: float = 0.0
    finished: bool = False


class JobController:
    def __init__(self, emulator: ClusterEmulator, options: JobControllerOptions) -> None:
        self.emu = emulator
        self.options = options
        options.log_dir.mkdir(parents=True, exist_ok=True)
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._queued: set[tuple[str, str]] = set()
        self._worker: asyncio.Task[None] | None = None
        self._timers: set[asyncio.TimerHandle] = set()
        self._runs: dict[tuple[str, str], PodRun] = {}
        self._tracks: dict[str, JobTrack] = {}
        # Fault hooks: predicates over the pod object (None = off).
        self.hang: PodPredicate | None = None
        self.fail_start: PodPredicate | None = None
        # Inspection for tests: history of what happened and peak concurrency.
        self.history: list[JSON] = []
        self.active_by_job: dict[str, int] = {}
        self.max_active_jobs = 0
        self.max_active_pods = 0
        self._closed = False
        emulator.pod_log_path = self.log_path
        emulator.on_change(self._on_change)

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="job-controller")
        for job in self.emu.list_objects(JOBS):
            self._enqueue(job["metadata"]["namespace"], job["metadata"]["name"])

    async def shutdown(self) -> None:
        """Stop reconciling and kill every pod process (process groups, so children go too)."""
        self._closed = True
        for timer in self._timers:
            timer.cancel()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        runs = list(self._runs.values())
        for run in runs:
            self._signal(run, signal.SIGKILL)
        tasks = [r.task for r in runs if r.task is not None and not r.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5)

    def log_path(self, namespace: str, pod: str) -> Path:
        return self.options.log_dir / f"{namespace}_{pod}.log"

    # --- fault hooks ----------------------------------------------------------------------------------------------

    def kill_pod(self, namespace: str, name: str) -> bool:
        """SIGKILL a running pod's processes (exit code 137), as if the container was killed."""
        run = self._runs.get((namespace, name))
        if run is None:
            return False
        run.killed.set()
        self._signal(run, signal.SIGKILL)
        return True

    def running_pods(self) -> list[tuple[str, str]]:
        return sorted(k for k, r in self._runs.items() if r.task is not None and not r.task.done())

    # --- events ---------------------------------------------------------------------------------------------------

    def _on_change(self, event_type: str, rdef: ResourceDef, obj: JSON, old: JSON | None) -> None:
        if self._closed:
            return
        meta = obj["metadata"]
        if rdef.gr == JOBS:
            self._enqueue(meta["namespace"], meta["name"])
            if event_type == "DELETED":
                self._tracks.pop(meta["uid"], None)
        elif rdef.gr == PODS:
            key = (meta["namespace"], meta["name"])
            if event_type == "DELETED":
                run = self._runs.get(key)
                if run is not None and run.task is not None and not run.task.done():
                    run.deleted = True
                    grace = float((obj.get("spec") or {}).get("terminationGracePeriodSeconds") or 0)
                    self._terminate(run, min(grace, self.options.max_grace_seconds))
                phase = (obj.get("status") or {}).get("phase")
                job_uid = (meta.get("labels") or {}).get(UID_LABEL)
                track = self._tracks.get(job_uid or "")
                if track is not None and not track.finished and phase not in {"Succeeded", "Failed"}:
                    track.failed.add(meta["uid"])  # a pod lost before finishing counts as failed
                    track.last_failure = time.monotonic()
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "Job" and ref.get("controller"):
                    self._enqueue(meta["namespace"], ref["name"])

    def _enqueue(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        if key not in self._queued and not self._closed:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def _enqueue_at(self, delay: float, namespace: str, name: str) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                self._timers.discard(handle)
            self._enqueue(namespace, name)

        handle = loop.call_later(max(delay, 0.0), fire)
        self._timers.add(handle)

    async def _work(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                self._reconcile(*key)
            except Exception:
                log.exception("job controller: reconciling %s/%s failed", *key)

    # --- the Job controller ---------------------------------------------------------------------------------------

    def _reconcile(self, namespace: str, name: str) -> None:
        job = self.emu.get_object(JOBS, namespace, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        meta, spec = job["metadata"], job.get("spec") or {}
        status: JSON = job.get("status") or {}
        uid = meta["uid"]
        track = self._tracks.setdefault(uid, JobTrack())
        if _finished(status):
            track.finished = True
            self._schedule_ttl(job)
            return
        pods = self.emu.list_objects(PODS, namespace, label_selector=f"{UID_LABEL}={uid}")
        indexed = spec.get("completionMode") == "Indexed"
        now = time.monotonic()
        active: list[JSON] = []
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            pod_uid = pod["metadata"]["uid"]
            if phase == "Succeeded":
                if pod_uid not in track.succeeded:
                    track.succeeded.add(pod_uid)
                    if indexed:
                        track.succeeded_indexes.add(_pod_index(pod))
            elif phase == "Failed":
                if pod_uid not in track.failed and pod_uid not in track.ignored:
                    action, message = self._failure_action(spec, pod)
                    if action == "Ignore":
                        track.ignored.add(pod_uid)
                    else:
                        track.failed.add(pod_uid)
                        track.last_failure = now
                    if action == "FailJob":
                        self._finish(job, pods, "Failed", "PodFailurePolicy", message, track)
                        return
            elif not pod["metadata"].get("deletionTimestamp"):
                active.append(pod)
        updates: JSON = {}
        if not status.get("startTime") and not spec.get("suspend"):
            updates["startTime"] = status["startTime"] = rfc3339()
        restarts = sum(r.restarts for r in self._runs.values() if r.job_uid == uid)
        failed = len(track.failed)
        if failed + restarts > int(spec.get("backoffLimit", 6)):
            self._finish(
                job, pods, "Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit", track
            )
            return
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(str(status.get("startTime") or ""))
        if deadline is not None and started is not None:
            elapsed = (parse_time(rfc3339()) or started) - started
            left = float(deadline) - elapsed.total_seconds()
            if left <= 0:
                self._finish(
                    job, pods, "Failed", "DeadlineExceeded", "Job was active longer than specified deadline", track
                )
                return
            self._enqueue_at(left + 0.05, namespace, name)
        completions = spec.get("completions")
        succeeded = len(track.succeeded)
        if indexed:
            done = completions is not None and all(i in track.succeeded_indexes for i in range(int(completions)))
        elif completions is not None:
            done = succeeded >= int(completions)
        else:
            done = succeeded >= 1 and not active
        if done:
            self._finish(
                job, pods, "Complete", "CompletionsReached", "Reached expected number of succeeded pods", track
            )
            return
        if spec.get("suspend"):
            for pod in active:
                self._delete_pod(pod)
            active = []
        else:
            active += self._create_pods(job, active, track, now)
        updates.update(
            {
                "active": len(active),
                "ready": sum(1 for p in active if (p.get("status") or {}).get("phase") == "Running"),
                "succeeded": succeeded,
                "failed": failed,
                "terminating": 0,
                "uncountedTerminatedPods": {},
            }
        )
        if indexed:
            updates["completedIndexes"] = _ranges(track.succeeded_indexes)
        self._write_job_status(job, updates)

    def _create_pods(self, job: JSON, active: list[JSON], track: JobTrack, now: float) -> list[JSON]:
        spec = job["spec"]
        parallelism = int(spec.get("parallelism", 1))
        completions = spec.get("completions")
        failures = len(track.failed)
        if failures and track.last_failure:
            delay = min(self.options.backoff_seconds * 2 ** (failures - 1), self.options.max_backoff_seconds)
            wait = track.last_failure + delay - now
            if wait > 0:
                self._enqueue_at(wait, job["metadata"]["namespace"], job["metadata"]["name"])
                return []
        created: list[JSON] = []
        if spec.get("completionMode") == "Indexed":
            busy = {_pod_index(p) for p in active}
            todo = [i for i in range(int(completions or 0)) if i not in track.succeeded_indexes and i not in busy]
            for index in todo[: max(parallelism - len(active), 0)]:
                created.append(self._create_pod(job, index))
        else:
            remaining = int(completions) - len(track.succeeded) if completions is not None else parallelism
            if completions is None and track.succeeded:
                remaining = 0
            want = min(parallelism, remaining) - len(active)
            for _ in range(max(want, 0)):
                created.append(self._create_pod(job, None))
        return created

    def _create_pod(self, job: JSON, index: int | None) -> JSON:
        meta = job["metadata"]
        template = job["spec"].get("template") or {}
        tmeta = dict(template.get("metadata") or {})
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        pod_spec = dict(template.get("spec") or {})
        containers = [dict(c) for c in pod_spec.get("containers") or []]
        if index is not None:
            labels[INDEX_KEY] = annotations[INDEX_KEY] = str(index)
            ref = {"fieldRef": {"fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}
            for c in containers:
                c["env"] = [*(c.get("env") or []), {"name": "JOB_COMPLETION_INDEX", "valueFrom": ref}]
        pod_spec["containers"] = containers
        pod_spec["nodeName"] = self.options.node_name
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{meta['name']}-{index}-" if index is not None else f"{meta['name']}-",
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": pod_spec,
        }
        created = self.emu.create_object(PODS, meta["namespace"], pod)
        cmeta = created["metadata"]
        run = PodRun(cmeta["namespace"], cmeta["name"], cmeta["uid"], meta["uid"])
        run.log_path = self.log_path(run.namespace, run.name)
        self._runs[(run.namespace, run.name)] = run
        run.task = asyncio.get_running_loop().create_task(self._run_pod(run), name=f"pod {run.name}")
        self._record("pod-created", run, job=meta["name"])
        return created

    def _failure_action(self, spec: JSON, pod: JSON) -> tuple[str, str]:
        """The podFailurePolicy action for a failed pod: FailJob, Ignore or Count."""
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        conditions = {
            c.get("type") for c in (pod.get("status") or {}).get("conditions") or [] if c.get("status") == "True"
        }
        for i, rule in enumerate((spec.get("podFailurePolicy") or {}).get("rules") or []):
            on_codes = rule.get("onExitCodes")
            if on_codes:
                values = {int(v) for v in on_codes.get("values") or []}
                for cs in statuses:
                    if on_codes.get("containerName") and cs.get("name") != on_codes["containerName"]:
                        continue
                    code = ((cs.get("state") or {}).get("terminated") or {}).get("exitCode")
                    if code is None or code == 0:
                        continue
                    hit = code in values if on_codes.get("operator", "In") == "In" else code not in values
                    if hit:
                        message = (
                            f"Container {cs.get('name')} for pod {pod['metadata']['namespace']}/"
                            f"{pod['metadata']['name']} failed with exit code {code} matching "
                            f"{rule.get('action')} rule at index {i}"
                        )
                        return str(rule.get("action", "Count")), message
            for cond in rule.get("onPodConditions") or []:
                if cond.get("type") in conditions:
                    return str(rule.get("action", "Count")), f"Pod has condition {cond.get('type')} (rule {i})"
        return "Count", ""

    def _finish(self, job: JSON, pods: list[JSON], outcome: str, reason: str, message: str, track: JobTrack) -> None:
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if phase not in {"Succeeded", "Failed"}:
                self._delete_pod(pod)
        stamp = rfc3339()
        prior = "SuccessCriteriaMet" if outcome == "Complete" else "FailureTarget"
        conditions = [
            *((job.get("status") or {}).get("conditions") or []),
            *(
                {
                    "type": t,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": stamp,
                    "lastTransitionTime": stamp,
                }
                for t in (prior, outcome)
            ),
        ]
        status: JSON = {
            "active": 0,
            "ready": 0,
            "terminating": 0,
            "succeeded": len(track.succeeded),
            "failed": len(track.failed),
            "uncountedTerminatedPods": {},
            "conditions": conditions,
        }
        if outcome == "Complete":
            status["completionTime"] = stamp
        if job["spec"].get("completionMode") == "Indexed":
            status["completedIndexes"] = _ranges(track.succeeded_indexes)
        track.finished = True
        self._write_job_status(job, status)
        self._record(f"job-{outcome.lower()}", None, job=job["metadata"]["name"], reason=reason)
        fresh = self.emu.get_object(JOBS, job["metadata"]["namespace"], job["metadata"]["name"])
        if fresh is not None:
            self._schedule_ttl(fresh)

    def _schedule_ttl(self, job: JSON) -> None:
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        finished_at = None
        for cond in (job.get("status") or {}).get("conditions") or []:
            if cond.get("type") in {"Complete", "Failed"} and cond.get("status") == "True":
                finished_at = parse_time(str(cond.get("lastTransitionTime") or ""))
        if finished_at is None:
            return
        now = parse_time(rfc3339()) or finished_at
        left = float(ttl) - (now - finished_at).total_seconds()
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        if left > 0:
            self._enqueue_at(left, ns, name)
            return
        with contextlib.suppress(ApiError):
            self.emu.delete_object(JOBS, ns, name, propagation="Background")
            self._record("job-ttl-deleted", None, job=name)

    def _write_job_status(self, job: JSON, status: JSON) -> None:
        current = job.get("status") or {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        with contextlib.suppress(ApiError):
            self.emu.patch_status(JOBS, job["metadata"]["namespace"], job["metadata"]["name"], status)

    def _delete_pod(self, pod: JSON) -> None:
        with contextlib.suppress(ApiError):
            self.emu.delete_object(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])

    # --- the kubelet ----------------------------------------------------------------------------------------------

    async def _run_pod(self, run: PodRun) -> None:
        key = (run.namespace, run.name)
        try:
            await self._run_pod_inner(run)
        except asyncio.CancelledError:
            self._signal(run, signal.SIGKILL)
            raise
        except Exception:
            log.exception("pod %s/%s: runner failed", *key)
        finally:
            self._set_active(run, False)

    async def _run_pod_inner(self, run: PodRun) -> None:
        pod = self.emu.get_object(PODS, run.namespace, run.name)
        if pod is None:
            return
        spec = pod.get("spec") or {}
        container = (spec.get("containers") or [{}])[0]
        cname = str(container.get("name", "main"))
        image = str(container.get("image", ""))
        if self.fail_start is not None and self.fail_start(pod):
            self._terminated(run, cname, image, 128, "StartError", "pod start failed (injected fault)", None)
            return
        env: dict[str, str] | None = None
        while env is None:
            try:
                env = self._resolve_env(pod, container)
            except MissingReferenceError as exc:
                # The kubelet keeps the pod Pending and retries until the referenced object appears.
                self._pod_status(run, {"phase": "Pending", "containerStatuses": [_waiting(cname, image, str(exc))]})
                await asyncio.sleep(0.5)
                pod = self.emu.get_object(PODS, run.namespace, run.name)
                if pod is None or run.deleted:
                    return
        try:
            argv = self._resolve_argv(container, env)
        except StartFailureError as exc:
            self._terminated(run, cname, image, 128, "StartError", str(exc), None)
            return
        cwd = _pod_workdir(self.options.log_dir / "pods" / f"{run.namespace}_{run.name}", container)
        restart_on_failure = spec.get("restartPolicy") == "OnFailure"
        assert run.log_path is not None
        while True:
            started = rfc3339()
            if self.hang is not None and self.hang(pod):
                self._running(run, cname, image, started, None)
                await run.killed.wait()  # hangs until killed, deleted or its deadline passes
                code = 137
            else:
                with run.log_path.open("ab") as out:
                    try:
                        process = await asyncio.create_subprocess_exec(
                            *argv,
                            env=env,
                            cwd=str(cwd),
                            stdin=asyncio.subprocess.DEVNULL,
                            stdout=out,
                            stderr=asyncio.subprocess.STDOUT,
                            start_new_session=True,
                        )
                    except OSError as exc:
                        self._terminated(run, cname, image, 128, "StartError", f"exec {argv[0]}: {exc}", None)
                        return
                run.process = process
                self._running(run, cname, image, started, process.pid)
                rc = await process.wait()
                code = 128 - rc if rc < 0 else rc
            if run.deleted:
                return
            if code != 0 and restart_on_failure and not run.killed.is_set():
                run.restarts += 1
                self._record("pod-restarted", run, exit_code=code)
                self._enqueue_owner(run)
                await asyncio.sleep(min(self.options.backoff_seconds * 2 ** (run.restarts - 1), 2.0))
                if run.deleted:
                    return
                continue
            reason = "Completed" if code == 0 else "Error"
            self._terminated(run, cname, image, code, reason, None, started)
            return

    def _enqueue_owner(self, run: PodRun) -> None:
        pod = self.emu.get_object(PODS, run.namespace, run.name)
        for ref in ((pod or {}).get("metadata") or {}).get("ownerReferences") or []:
            if ref.get("kind") == "Job":
                self._enqueue(run.namespace, ref["name"])

    def _running(self, run: PodRun, cname: str, image: str, started: str, pid: int | None) -> None:
        self._set_active(run, True)
        self._record("pod-running", run, pid=pid)
        state = {"running": {"startedAt": started}}
        self._pod_status(
            run,
            {
                "phase": "Running",
                "startTime": started,
                "podIP": "127.0.0.1",
                "hostIP": "127.0.0.1",
                "conditions": _conditions(True),
                "containerStatuses": [_container_status(cname, image, True, state, run.restarts, pid)],
            },
        )

    def _terminated(
        self,
        run: PodRun,
        cname: str,
        image: str,
        code: int,
        reason: str,
        message: str | None,
        started: str | None,
    ) -> None:
        terminated: JSON = {"exitCode": code, "reason": reason, "finishedAt": rfc3339()}
        if started:
            terminated["startedAt"] = started
        if message:
            terminated["message"] = message
        phase = "Succeeded" if code == 0 else "Failed"
        self._record("pod-" + phase.lower(), run, exit_code=code, reason=reason)
        self._pod_status(
            run,
            {
                "phase": phase,
                "conditions": _conditions(False),
                "containerStatuses": [
                    _container_status(cname, image, False, {"terminated": terminated}, run.restarts, None)
                ],
            },
        )

    def _pod_status(self, run: PodRun, status: JSON) -> None:
        if run.deleted:
            return
        with contextlib.suppress(ApiError):
            self.emu.patch_status(PODS, run.namespace, run.name, status)

    def _resolve_env(self, pod: JSON, container: JSON) -> dict[str, str]:
        ns = pod["metadata"]["namespace"]
        env = {k: os.environ[k] for k in self.options.inherit_env if k in os.environ}
        env.update(self.options.extra_env)
        env["HOSTNAME"] = pod["metadata"]["name"]
        for source in container.get("envFrom") or []:
            prefix = source.get("prefix") or ""
            for ref_key, gr, decode in (
                ("configMapRef", ("", "configmaps"), False),
                ("secretRef", ("", "secrets"), True),
            ):
                ref = source.get(ref_key)
                if not ref:
                    continue
                obj = self.emu.get_object(gr, ns, ref["name"])
                if obj is None:
                    if ref.get("optional"):
                        continue
                    raise MissingReferenceError(f'{gr[1][:-1]} "{ref["name"]}" not found')
                for k, v in (obj.get("data") or {}).items():
                    env[prefix + k] = _b64(v) if decode else str(v)
        for item in container.get("env") or []:
            name = item["name"]
            if "value" in item:
                env[name] = _expand(str(item["value"]), env)
                continue
            source = item.get("valueFrom") or {}
            value = self._value_from(pod, source)
            if value is not None:
                env[name] = value
        return env

    def _value_from(self, pod: JSON, source: JSON) -> str | None:
        ns = pod["metadata"]["namespace"]
        for ref_key, gr, decode in (
            ("secretKeyRef", ("", "secrets"), True),
            ("configMapKeyRef", ("", "configmaps"), False),
        ):
            ref = source.get(ref_key)
            if not ref:
                continue
            obj = self.emu.get_object(gr, ns, ref["name"])
            data = (obj or {}).get("data") or {}
            if obj is None or ref["key"] not in data:
                if ref.get("optional"):
                    return None
                what = "secret" if decode else "configmap"
                raise MissingReferenceError(f"couldn't find key {ref['key']} in {what} {ns}/{ref['name']}")
            return _b64(data[ref["key"]]) if decode else str(data[ref["key"]])
        field_ref = source.get("fieldRef")
        if field_ref:
            path = str(field_ref["fieldPath"])
            if path in {"status.podIP", "status.hostIP"}:
                return "127.0.0.1"
            found = jsonpath(pod, "." + path)
            return str(found[0]) if found else ""
        if source.get("resourceFieldRef"):
            return "0"
        return None

    def _resolve_argv(self, container: JSON, env: Mapping[str, str]) -> list[str]:
        command = [str(c) for c in container.get("command") or []]
        args = [str(a) for a in container.get("args") or []]
        if not command:
            image = str(container.get("image", ""))
            base = re.sub(r"(@sha256:[0-9a-f]+|:[^/:]+)$", "", image)
            prefix = self.options.images.get(image) or self.options.images.get(base)
            if prefix is None:
                raise StartFailureError(
                    f"image {image!r} has no local command mapping and the container sets no command"
                )
            command = list(prefix)
        argv = [_expand(a, env) for a in command + args]
        argv[0] = self.options.commands.get(argv[0], argv[0])
        if os.sep not in argv[0] and shutil.which(argv[0], path=env.get("PATH")) is None:
            raise StartFailureError(f'exec: "{argv[0]}": executable file not found in $PATH')
        return argv

    # --- processes ------------------------------------------------------------------------------------------------

    def _terminate(self, run: PodRun, grace: float) -> None:
        run.killed.set()
        self._signal(run, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        loop.call_later(grace, self._signal, run, signal.SIGKILL)

    @staticmethod
    def _signal(run: PodRun, sig: signal.Signals) -> None:
        process = run.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)

    def _set_active(self, run: PodRun, active: bool) -> None:
        job = run.job_uid or ""
        if run.active == active:
            return
        run.active = active
        self.active_by_job[job] = self.active_by_job.get(job, 0) + (1 if active else -1)
        if self.active_by_job[job] <= 0:
            self.active_by_job.pop(job, None)
        self.max_active_jobs = max(self.max_active_jobs, len(self.active_by_job))
        self.max_active_pods = max(self.max_active_pods, sum(self.active_by_job.values()))

    def _record(self, what: str, run: PodRun | None, **details: Any) -> None:
        entry: JSON = {"t": time.monotonic(), "event": what, **details}
        if run is not None:
            entry.update(namespace=run.namespace, pod=run.name)
        self.history.append(entry)


def _pod_workdir(default: Path, container: JSON) -> Path:
    """The container's workingDir when it exists on this machine, else a fresh directory per pod."""
    wanted = container.get("workingDir")
    if wanted and Path(wanted).is_dir():
        return Path(wanted)
    default.mkdir(parents=True, exist_ok=True)
    return default


def _finished(status: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") in {"Complete", "Failed"} and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _pod_index(pod: JSON) -> int:
    value = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY, "-1")
    return int(value)


def _ranges(indexes: set[int]) -> str:
    """`0-2,4`: the way Job status lists completed indexes."""
    parts: list[str] = []
    for i in sorted(indexes):
        if parts and "-" in parts[-1] and int(parts[-1].split("-")[1]) == i - 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{i}"
        elif parts and "-" not in parts[-1] and int(parts[-1]) == i - 1:
            parts[-1] = f"{parts[-1]}-{i}"
        else:
            parts.append(str(i))
    return ",".join(parts)


def _b64(value: Any) -> str:
    return base64.b64decode(str(value)).decode("utf-8", errors="replace")


def _expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes `$(VAR)` expansion (`$$` escapes)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", sub, text)


def _conditions(ready: bool) -> list[JSON]:
    stamp = rfc3339()
    value = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp},
        {"type": "Initialized", "status": "True", "lastTransitionTime": stamp},
        {"type": "ContainersReady", "status": value, "lastTransitionTime": stamp},
        {"type": "Ready", "status": value, "lastTransitionTime": stamp},
    ]


def _container_status(name: str, image: str, ready: bool, state: JSON, restarts: int, pid: int | None) -> JSON:
    status: JSON = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": restarts,
        "state": state,
    }
    if pid is not None:
        status["containerID"] = f"local://{pid}"
    return status


def _waiting(name: str, image: str, message: str) -> JSON:
    return _container_status(
        name, image, False, {"waiting": {"reason": "CreateContainerConfigError", "message": message}}, 0, None
    )
