"""`DevCluster`: the emulator and its Job controller served from a background thread, usable from sync code.

    with DevCluster() as cluster:
        subprocess.run(["kubectl", "--kubeconfig", str(cluster.kubeconfig), "get", "ns"])
        cluster.wait_for(lambda emu: emu.get_object(("batch", "jobs"), "default", "j1"), timeout=10)

Everything that touches the emulator runs on its own event loop (`cluster.call(fn)`), never on the caller's
thread: the emulator's state is owned by that loop.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import kmock
import yaml

from mistake_testbed.kube.emulator import ClusterEmulator, GroupResource
from mistake_testbed.kube.jobs import JobController, JobControllerOptions, PodPredicate
from mistake_testbed.kube.util import JSON
from mistake_testbed.loop_thread import LoopThread

T = TypeVar("T")
HOST = "127.0.0.1"


def kubeconfig_text(url: str, namespace: str = "default") -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "dev-cluster", "cluster": {"server": url}}],
        "users": [{"name": "dev", "user": {}}],
        "contexts": [
            {"name": "dev-cluster", "context": {"cluster": "dev-cluster", "user": "dev", "namespace": namespace}}
        ],
        "current-context": "dev-cluster",
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


class DevCluster:
    """The emulated API server on loopback plus the Job controller, in a daemon thread."""

    def __init__(
        self,
        *,
        port: int = 0,
        workdir: Path | None = None,
        preload: Iterable[str | Path] = (),
        images: dict[str, list[str]] | None = None,
        job_controller: bool = True,
        keep_history: bool = True,
        backoff_seconds: float = 0.2,
        extra_env: dict[str, str] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self._port = port
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="dev-cluster-")
            workdir = Path(self._tmp.name)
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._preload = list(preload)
        self._images = dict(images or {})
        self._with_jobs = job_controller
        self._keep_history = keep_history
        self._backoff = backoff_seconds
        self._extra_env = dict(extra_env or {})
        self._start_timeout = start_timeout
        self._thread = LoopThread("dev-cluster")
        self._changed = threading.Condition()
        self._change_count = 0
        self.url = ""
        self.port = 0
        self.kubeconfig = self.workdir / "kubeconfig"
        self.emulator: ClusterEmulator | None = None
        self.jobs: JobController | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start(self._main, timeout=self._start_timeout)
        return self

    def stop(self) -> None:
        self._thread.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def _main(self, stop: asyncio.Event, ready: Callable[[], None]) -> None:
        emu = ClusterEmulator(keep_history=self._keep_history)
        self.emulator = emu
        emu.on_change(self._notify)
        async with emu, kmock.Server(emu, host=HOST, port=self._port or None) as server:
            self.port = server.port
            self.url = f"http://{HOST}:{server.port}"
            self.kubeconfig.write_text(kubeconfig_text(self.url), encoding="utf-8")
            if self._preload:
                emu.preload(self._preload)
            if self._with_jobs:
                env = {
                    "KUBECONFIG": str(self.kubeconfig),
                    "KUBERNETES_SERVICE_HOST": HOST,
                    "KUBERNETES_SERVICE_PORT": str(server.port),
                    **self._extra_env,
                }
                self.jobs = JobController(
                    emu,
                    JobControllerOptions(
                        log_dir=self.workdir / "pods",
                        images=self._images,
                        backoff_seconds=self._backoff,
                        extra_env=env,
                    ),
                )
                self.jobs.start()
            ready()
            await stop.wait()
            if self.jobs is not None:
                await self.jobs.shutdown()
            emu.close_watches()
            # Let the watch handlers see the end of their streams before the server stops.
            deadline = time.monotonic() + 5
            while emu.watch_count and time.monotonic() < deadline:  # noqa: ASYNC110 (bounded shutdown grace)
                await asyncio.sleep(0.01)

    def _notify(self, *_: Any) -> None:
        with self._changed:
            self._change_count += 1
            self._changed.notify_all()

    # --- access from other threads --------------------------------------------------------------------------------

    def call(self, fn: Callable[[], T], timeout: float = 30.0) -> T:
        """Run `fn()` on the emulator's loop and return its result (exceptions propagate)."""

        async def wrapper() -> T:
            return fn()

        return self._thread.call(wrapper, timeout)

    @property
    def emu(self) -> ClusterEmulator:
        if self.emulator is None:
            raise RuntimeError("the dev cluster is not running")
        return self.emulator

    @property
    def controller(self) -> JobController:
        if self.jobs is None:
            raise RuntimeError("the dev cluster runs without its Job controller")
        return self.jobs

    def wait_for(self, check: Callable[[ClusterEmulator], T], timeout: float = 30.0, what: str = "") -> T:
        """Wait until `check(emulator)` (run on the loop) returns something truthy; return it.

        Wakes up on every change in the store, so it costs nothing while nothing happens.
        """
        deadline = time.monotonic() + timeout
        while True:
            with self._changed:
                seen = self._change_count
            result = self.call(lambda: check(self.emu))
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met within {timeout}s: {what or check}")
            with self._changed:
                if self._change_count == seen:
                    # Time-based checks (deadlines) need a wake-up even without store changes.
                    self._changed.wait(min(left, 0.5))

    def get(self, gr: GroupResource, namespace: str | None, name: str) -> JSON | None:
        return self.call(lambda: self.emu.get_object(gr, namespace, name))

    def list_objects(
        self, gr: GroupResource, namespace: str | None = None, label_selector: str | None = None
    ) -> list[JSON]:
        return self.call(lambda: self.emu.list_objects(gr, namespace, label_selector))

    def create(self, gr: GroupResource, namespace: str | None, body: JSON) -> JSON:
        return self.call(lambda: self.emu.create_object(gr, namespace, body))

    def create_namespace(self, name: str) -> JSON:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        return self.create(("", "namespaces"), None, body)

    def delete(self, gr: GroupResource, namespace: str | None, name: str, propagation: str | None = None) -> JSON:
        return self.call(lambda: self.emu.delete_object(gr, namespace, name, propagation=propagation))

    # --- fault hooks -------------------------------------------------------------------------------------------

    def kill_pod(self, namespace: str, name: str) -> bool:
        return self.call(lambda: self.controller.kill_pod(namespace, name))

    def hang_pods(self, predicate: PodPredicate | bool | None = True) -> None:
        """Pods started from now on hang (Running, no process) while `predicate(pod)` holds."""
        hook = _as_predicate(predicate)
        self.call(lambda: setattr(self.controller, "hang", hook))

    def fail_pod_start(self, predicate: PodPredicate | bool | None = True) -> None:
        """Pods started from now on fail to start (exit code 128, StartError) while `predicate(pod)` holds."""
        hook = _as_predicate(predicate)
        self.call(lambda: setattr(self.controller, "fail_start", hook))

    def history(self) -> list[JSON]:
        return self.call(lambda: list(self.controller.history))

    def max_active_jobs(self) -> int:
        return self.call(lambda: self.controller.max_active_jobs)

    def pod_log(self, namespace: str, pod: str) -> str:
        path = self.controller.log_path(namespace, pod)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def _as_predicate(value: PodPredicate | bool | None) -> PodPredicate | None:
    if value is None or value is False:
        return None
    if value is True:
        return lambda pod: True
    return value
