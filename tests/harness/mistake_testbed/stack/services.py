"""Processes the stack runs beside its in-thread stand-ins: the operator, kubectl, and Prometheus.

None of these import pytest: the demo and the benchmarks use them as well as the end-to-end tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

TOOLS_DIR = Path(sys.prefix) / "bin"
PROMETHEUS = Path("/usr/bin/prometheus")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URLs built here
            return int(resp.status), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, OSError):
        return 0, ""


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    """Poll `check` until it holds; TimeoutError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)  # polling a condition that has no change notification


class Kubectl:
    """The project's kubectl binary against one kubeconfig, with a private HOME (its discovery cache)."""

    def __init__(self, kubeconfig: Path, home: Path, namespace: str | None = None) -> None:
        self.binary = TOOLS_DIR / "kubectl"
        self.kubeconfig = kubeconfig
        self.home = home
        self.namespace = namespace
        home.mkdir(parents=True, exist_ok=True)

    @property
    def available(self) -> bool:
        return self.binary.is_file() and os.access(self.binary, os.X_OK)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KUBE")}
        env.update(HOME=str(self.home), KUBECONFIG=str(self.kubeconfig))
        return env

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        if not self.available:
            raise FileNotFoundError(f"{self.binary} is missing: run ./dev setup")
        argv = [str(self.binary), *args]
        if self.namespace and not {"-n", "--namespace", "-A", "--all-namespaces"} & set(args):
            argv += ["--namespace", self.namespace]
        result = subprocess.run(
            argv, input=input, env=self.env(), capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result


class OperatorProcess:
    """`python -m mistake_operator` as a child process in its own session, its output appended to a log file."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int, cwd: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.port = port
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        self.ready_at = 0.0  # time.time() when /readyz first answered 200: the cache had been listed by then
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 60.0) -> None:
        with self.log_path.open("ab") as log:
            log.write(f"---- operator start {self.starts + 1} ----\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "mistake_operator"],
                env=self.env,
                cwd=str(self.cwd),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.starts += 1

        def ready() -> bool:
            if not self.running:
                raise RuntimeError(f"the operator exited during start-up; see {self.log_path}:\n{self.log_tail()}")
            return self.get("/readyz")[0] == 200

        wait_until(ready, timeout, "the operator to be ready", interval=0.1)
        self.ready_at = time.time()

    def get(self, path: str) -> tuple[int, str]:
        return http_get(f"http://127.0.0.1:{self.port}{path}")

    def metrics_text(self) -> str:
        status, body = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return body

    def kill(self) -> None:
        """SIGKILL the whole process group (a crash: no clean-up handlers run)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (graceful), then SIGKILL after `timeout`."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]


class Prometheus:
    """Debian's prometheus on loopback with a generated config: scrapes the given targets every `interval`."""

    def __init__(self, run_dir: Path, targets: list[str], interval: str = "1s", binary: Path = PROMETHEUS) -> None:
        self.run_dir = run_dir
        self.targets = targets
        self.interval = interval
        self.binary = binary
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def installed(binary: Path = PROMETHEUS) -> bool:
        return binary.is_file() and os.access(binary, os.X_OK)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": self.interval, "evaluation_interval": self.interval},
            "scrape_configs": [
                {
                    "job_name": "mistake-analyzer-operator",
                    "scrape_interval": self.interval,
                    "scrape_timeout": self.interval,
                    "static_configs": [{"targets": self.targets}],
                }
            ],
        }
        config_path = self.run_dir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        data = self.run_dir / "data"
        shutil.rmtree(data, ignore_errors=True)
        argv = [
            str(self.binary),
            f"--config.file={config_path}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with (self.run_dir / "prometheus.log").open("ab") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

        def ready() -> bool:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited; see {self.run_dir / 'prometheus.log'}")
            return http_get(f"{self.url}/-/ready")[0] == 200

        wait_until(ready, timeout, "prometheus to be ready")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def query(self, expr: str) -> dict[str, Any]:
        """The instant query's whole JSON answer (`status` is "success" or "error")."""
        status, body = http_get(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}")
        if status == 0:
            raise RuntimeError("prometheus is not answering")
        answer: dict[str, Any] = json.loads(body)
        return answer

    def targets_up(self) -> bool:
        answer = self.query("up")
        results = answer.get("data", {}).get("result", [])
        return bool(results) and all(r["value"][1] == "1" for r in results)


def dashboard_queries(path: Path, variables: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(panel title, PromQL) for every target of a Grafana dashboard JSON, template variables substituted.

    `variables` maps names to values (`namespace`, `__rate_interval`, ...); `${name}` and `$name` are replaced.
    """
    dashboard = json.loads(path.read_text(encoding="utf-8"))

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels") or [])

    names = sorted(variables, key=len, reverse=True)  # `$namespace_x` before `$namespace`
    for panel in panels(dashboard.get("panels") or []):
        for target in panel.get("targets") or []:
            expr = str(target.get("expr") or "")
            if not expr:
                continue
            for name in names:
                expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
            yield str(panel.get("title") or ""), expr
