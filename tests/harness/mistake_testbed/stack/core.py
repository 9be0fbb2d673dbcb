"""`Stack`: the whole system on loopback, as a user would run it, in one object.

    with Stack(StackConfig(run_dir=Path("/tmp/run"))) as stack:
        stack.create_records(40)
        stack.wait_settled(timeout=120)
        print(stack.summary().table())

What `start()` brings up, in order (each piece is a real process or server the production code talks to unchanged):

1. the dev cluster (emulated Kubernetes API + Job controller, pod logs in `<run>/cluster/pods/`); the CRD applied
   with `kubectl apply -f charts/mistake-analyzer/crds/` and the namespace created with kubectl;
2. the Appwrite stand-in, seeded with the subject modules and one profile per demo user (or real Appwrite when
   `APPWRITE_ENDPOINT`, `APPWRITE_PROJECT_ID` and `APPWRITE_API_KEY` are set);
3. the LLM stand-in, with a fixture for every sample photo keyed by the sha256 of the image the worker will send
   (or a real OpenAI-compatible endpoint when `OPENAI_BASE_URL`, `OPENAI_API_KEY` and `LLM_MODEL` are set);
4. a TLS proxy with a bearer token in front of the API server, and the real trigger (`trigger_function/src/main.py`)
   hosted like open-runtimes and subscribed to the events its `appwrite.config.json` lists;
5. the worker's credentials as a Secret (`kubectl apply`), and the real operator (`python -m mistake_operator`) whose
   Jobs run the real worker (`python -m mistake_worker`) with that Secret as `envFrom`;
6. optionally Prometheus scraping the operator every second.

`redeploy(namespace)` gives a later scenario a fresh namespace, fresh Appwrite data and a fresh operator while the
cluster, the servers and the proxy stay up.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from mistake_api import GROUP, PLURAL, Phase
from mistake_api.constants import DEFAULT_BUCKET_ID, DEFAULT_COLLECTION_ID, DEFAULT_DATABASE_ID
from mistake_api.states import TERMINAL_PHASES
from mistake_testbed.appwrite.function_host import FunctionHost
from mistake_testbed.appwrite.seed import seed_main, seed_profile
from mistake_testbed.appwrite.server import AppwriteTestServer
from mistake_testbed.fixtures.paths import ROOT
from mistake_testbed.kube import DevCluster
from mistake_testbed.kube.tls_proxy import TlsProxy
from mistake_testbed.llm import AnalysisFixture, FaultRule, LLMTestServer
from mistake_testbed.samples import Sample, SampleSet

from .services import Kubectl, OperatorProcess, Prometheus, free_port, wait_until

MA = (GROUP, PLURAL)
JOBS = ("batch", "jobs")
PODS = ("", "pods")
CRD_DIR = ROOT / "charts" / "mistake-analyzer" / "crds"
DASHBOARD_DIR = ROOT / "charts" / "mistake-analyzer" / "dashboards"
FUNCTION_DIR = ROOT / "trigger_function"
TRIGGER_ENTRY = FUNCTION_DIR / "src" / "main.py"
WORKER_SECRET = "mistake-analyzer-worker"
TRIGGER_TOKEN = "demo-trigger-sa-" + "0" * 8  # the proxy's only accepted bearer token

# Sample kinds: every generated photo succeeds; the bad inputs fail with the named reason.
PHOTO_KINDS: tuple[str, ...] = (
    "math-choice",
    "math-fill",
    "physics-choice",
    "chemistry-fill",
    "english-choice",
    "chinese-short",
    "math-two-page",
    "physics-choice-phone",
    "math-choice-phone-upright",
)
BAD_KINDS: dict[str, str] = {
    "bad:truncated": "ImageCorrupt",
    "bad:pdf-as-jpg": "ImageUnsupported",
    "bad:decompression-bomb": "ImageBomb",
    "no-images": "NoImages",
}
REAL_APPWRITE_VARS = ("APPWRITE_ENDPOINT", "APPWRITE_PROJECT_ID", "APPWRITE_API_KEY")
REAL_LLM_VARS = ("OPENAI_BASE_URL", "OPENAI_API_KEY", "LLM_MODEL")


def real_services(environ: dict[str, str] | None = None) -> tuple[bool, bool]:
    """(real Appwrite, real LLM): each when all of its variables are set."""
    env = os.environ if environ is None else environ
    return all(env.get(v) for v in REAL_APPWRITE_VARS), all(env.get(v) for v in REAL_LLM_VARS)


def default_operator_settings() -> dict[str, Any]:
    """Settings sized for a 2-core machine and fast feedback; overridable per stack (snake_case, nested dicts)."""
    return {
        "batch_size": 10,
        "max_batch_wait_seconds": 0.5,
        "max_active_jobs": 4,
        "per_pod_concurrency": 10,
        "backoff_base_seconds": 1.0,
        "backoff_cap_seconds": 4.0,
        "sweeper": {"interval_seconds": 5.0, "grace_seconds": 15.0},
        "log_level": "INFO",
    }


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def settings_env(settings: dict[str, Any], prefix: str = "MISTAKE_") -> dict[str, str]:
    """Operator settings as `MISTAKE_*` variables: sections nest with `__`, lists and maps as JSON."""
    env: dict[str, str] = {}
    for key, value in settings.items():
        name = f"{prefix}{key.upper()}"
        if isinstance(value, dict) and key in {"sweeper", "appwrite", "job"}:
            env.update(settings_env(value, f"{name}__"))
        elif isinstance(value, str):
            env[name] = value
        else:
            env[name] = json.dumps(value)
    return env


def parse_time(text: Any) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def prepared_sha256s(sample: Sample) -> tuple[str, ...]:
    """What the LLM receives of each page after the worker's preparation (re-encoding drops the sample markers)."""
    from mistake_worker.images import ImageLimits, prepare_image

    return tuple(
        hashlib.sha256(prepare_image(sample.read(i), ImageLimits()).data).hexdigest() for i in range(len(sample.paths))
    )


@dataclass
class StackConfig:
    run_dir: Path | None = None
    """Logs, kubeconfig, pod logs, Prometheus data; default a new folder under the temp directory."""
    namespace: str = "mistake-analyzer"
    operator: dict[str, Any] = field(default_factory=dict)
    """Operator settings merged over `default_operator_settings()` (snake_case keys, nested sections)."""
    worker_env: dict[str, str] = field(default_factory=dict)
    """Extra plain worker variables (`MISTAKE_WORKER_*` knobs) for the Job pods."""
    llm_latency: tuple[float, float] | None = (0.2, 0.6)
    """Uniform simulated LLM latency (seconds) of the stand-in; None for none."""
    prometheus: bool = False
    users: tuple[tuple[str, int], ...] = (("user-1", 8), ("user-2", 11), ("user-3", 9))
    """(userId, grade) of the profiles seeded; records are spread over these users."""
    use_environment: bool = True
    """Use real Appwrite / LLM when their variables are set in the environment."""


@dataclass
class RecordInfo:
    """A record the stack created and what should become of it."""

    id: str
    kind: str
    user_id: str
    image_ids: list[str]
    expected_reason: str | None  # None: the analysis should succeed
    expected_subject: str | None
    created_wall: float
    revisions: int = 1  # pending writes made for it (the create plus re-analyses)


class Stack:
    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        run_dir = self.config.run_dir
        if run_dir is None:
            run_dir = Path(tempfile.mkdtemp(prefix=f"mistake-stack-{time.strftime('%Y%m%d-%H%M%S')}-"))
        self.run_dir = run_dir
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.namespace = self.config.namespace
        self.real_appwrite, self.real_llm = real_services() if self.config.use_environment else (False, False)
        self.cluster: DevCluster | None = None
        self.appwrite: AppwriteTestServer | None = None
        self.llm: LLMTestServer | None = None
        self.proxy: TlsProxy | None = None
        self.trigger: FunctionHost | None = None
        self.operator: OperatorProcess | None = None
        self.prometheus: Prometheus | None = None
        self.kubectl: Kubectl | None = None
        self.samples = SampleSet.default()
        self.records: dict[str, RecordInfo] = {}
        self.metrics_port = free_port()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._started = False
        self.started_wall = 0.0

    # ------------------------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        self.started_wall = time.time()
        self.cluster = DevCluster(workdir=self.run_dir / "cluster").start()
        self.kubectl = Kubectl(self.cluster.kubeconfig, self.run_dir / "kubectl-home", self.namespace)
        self.kubectl("apply", "-f", str(CRD_DIR))
        self.kubectl("wait", "--for=condition=Established", "crd/mistakeanalyses.mistakes.dev", "--timeout=30s")
        if not self.real_appwrite:
            self.appwrite = AppwriteTestServer().start()
        if not self.real_llm:
            latency = None
            if self.config.llm_latency is not None:
                low, high = self.config.llm_latency
                latency = FaultRule(kind="latency", delay=low, delay_max=high, distribution="uniform")
            self.llm = LLMTestServer(fixtures=self.sample_fixtures(), latency=latency).start()
        self.proxy = TlsProxy(self.cluster.url, TRIGGER_TOKEN).start()
        self._deploy(self.namespace)
        if self.config.prometheus:
            self.start_prometheus()
        self._started = True
        return self

    def stop(self) -> None:
        """Stop everything this stack started, newest first; safe to call twice."""
        for stop in (
            self._stop_prometheus,
            self._stop_operator,
            self._stop_trigger,
            lambda: self.proxy.stop() if self.proxy else None,
            lambda: self.llm.stop() if self.llm else None,
            lambda: self.appwrite.stop() if self.appwrite else None,
            lambda: self.cluster.stop() if self.cluster else None,
        ):
            with contextlib.suppress(Exception):  # one failing stop must not leave the others running
                stop()
        self.proxy = self.llm = self.appwrite = self.cluster = None
        self._started = False

    def _stop_prometheus(self) -> None:
        if self.prometheus is not None:
            self.prometheus.stop()

    def _stop_operator(self) -> None:
        if self.operator is not None:
            self.operator.stop()

    def _stop_trigger(self) -> None:
        if self.trigger is not None:
            self.trigger.stop()
            self.trigger = None

    def start_prometheus(self) -> Prometheus:
        self.prometheus = Prometheus(self.run_dir / "prometheus", [f"127.0.0.1:{self.metrics_port}"])
        self.prometheus.start()
        return self.prometheus

    # ------------------------------------------------------------------------------------------------ deployment
    def redeploy(self, namespace: str, operator: dict[str, Any] | None = None, reset_data: bool = True) -> None:
        """A fresh scenario: stop the operator and trigger, new namespace, fresh stand-in data, start both again."""
        self._stop_operator()
        self._stop_trigger()
        if reset_data and self.appwrite is not None:
            self.appwrite.reset()
        if self.llm is not None:
            self.llm.reset()
        self.records.clear()
        if operator is not None:
            self.config.operator = operator
        self.namespace = namespace
        self._deploy(namespace)

    def _deploy(self, namespace: str) -> None:
        assert self.cluster is not None
        assert self.kubectl is not None
        assert self.proxy is not None
        self.kubectl.namespace = namespace
        # `kubectl create namespace` sends protobuf, which the dev cluster takes for Secrets and ConfigMaps only.
        manifest = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        if self.appwrite is not None:
            seed_main(self.appwrite, self.config.users[0][0])
            for user_id, grade in self.config.users:
                with contextlib.suppress(Exception):  # the first user's profile exists already
                    seed_profile(self.appwrite, user_id, grade=grade)
        self._start_trigger(namespace)
        self._apply_worker_secret()
        self.operator = OperatorProcess(
            self.operator_env(namespace), self.run_dir / "operator.log", self.metrics_port, ROOT
        )
        self.operator.start()

    def _start_trigger(self, namespace: str) -> None:
        assert self.proxy is not None
        env = {
            "K8S_API_URL": self.proxy.url,
            "K8S_TOKEN": TRIGGER_TOKEN,
            "K8S_CA_CERT": self.proxy.ca_pem,
            "K8S_NAMESPACE": namespace,
            "K8S_TIMEOUT": "3",
        }
        self.trigger = FunctionHost(TRIGGER_ENTRY, env=env).start()
        if self.appwrite is not None:
            entry = self.function_config()
            self.appwrite.subscribe(
                self.trigger.url, events=entry["events"], function_id=entry["$id"], timeout=float(entry["timeout"])
            )

    @staticmethod
    def function_config() -> dict[str, Any]:
        """The trigger's entry in appwrite.config.json: the stack subscribes exactly the events deployed."""
        config = json.loads((FUNCTION_DIR / "appwrite.config.json").read_text(encoding="utf-8"))
        (entry,) = config["functions"]
        return dict(entry)

    def service_env(self) -> dict[str, str]:
        """APPWRITE_* and OPENAI_*/LLM_MODEL for the worker: the stand-ins' or the real ones from the environment."""
        env: dict[str, str] = {}
        if self.appwrite is not None:
            env.update(
                APPWRITE_ENDPOINT=self.appwrite.endpoint,
                APPWRITE_PROJECT_ID=self.appwrite.project_id,
                APPWRITE_API_KEY=self.appwrite.api_key,
            )
        else:
            env.update({k: os.environ[k] for k in REAL_APPWRITE_VARS})
        env["APPWRITE_DATABASE_ID"] = os.environ.get("APPWRITE_DATABASE_ID", DEFAULT_DATABASE_ID)
        if self.llm is not None:
            env.update(OPENAI_BASE_URL=self.llm.base_url, OPENAI_API_KEY=self.llm.api_key, LLM_MODEL=self.llm.model)
        else:
            env.update({k: os.environ[k] for k in REAL_LLM_VARS})
        return env

    def _apply_worker_secret(self) -> None:
        """The worker's credentials as a Secret (stdin, never a file), read by the Job pods through envFrom."""
        assert self.kubectl is not None
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": WORKER_SECRET, "namespace": self.namespace},
            "type": "Opaque",
            "stringData": self.service_env(),
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(secret))

    def operator_env(self, namespace: str) -> dict[str, str]:
        settings = _deep_merge(default_operator_settings(), self.config.operator)
        appwrite = self.service_env()
        settings = _deep_merge(
            settings,
            {
                "namespaces": [namespace],
                "metrics_port": self.metrics_port,
                "health_port": self.metrics_port,
                "bind_address": "127.0.0.1",
                "appwrite": {
                    "endpoint": appwrite["APPWRITE_ENDPOINT"],
                    "project_id": appwrite["APPWRITE_PROJECT_ID"],
                    "api_key": appwrite["APPWRITE_API_KEY"],
                    "database_id": appwrite["APPWRITE_DATABASE_ID"],
                },
                "job": {
                    "env_from": [{"secret": WORKER_SECRET}],
                    "env": {"MISTAKE_WORKER_SHUTDOWN_GRACE_SECONDS": "5", **self.config.worker_env},
                    # Finished Jobs stay for `kubectl get jobs` during and after the run.
                    "ttl_seconds_after_finished": 3600,
                },
            },
        )
        assert self.cluster is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "MISTAKE_", "APPWRITE_", "OPENAI_"))}
        env.update(settings_env(settings))
        env.update(
            KUBECONFIG=str(self.cluster.kubeconfig),
            HOME=str(self.run_dir),
            PYTHONUNBUFFERED="1",
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        )
        return env

    def restart_operator(self, kill: bool = True) -> None:
        """Crash (SIGKILL) or stop (SIGTERM) the operator, then start it again with the same settings and port."""
        assert self.operator is not None
        if kill:
            self.operator.kill()
        else:
            self.operator.stop()
        self.operator.start()

    # ------------------------------------------------------------------------------------------------ fixtures
    def sample_fixtures(self) -> list[AnalysisFixture]:
        fixtures = []
        for kind in PHOTO_KINDS:
            sample = self.samples.photo(kind)
            assert sample.expected is not None
            fixtures.append(AnalysisFixture(name=kind, facts=sample.expected.facts(), sha256s=prepared_sha256s(sample)))
        return fixtures

    # ------------------------------------------------------------------------------------------------ records
    def _client(self) -> Any:
        if self.appwrite is not None:
            return self.appwrite.client()
        from appwrite.client import Client

        client = Client().set_endpoint(os.environ["APPWRITE_ENDPOINT"]).set_project(os.environ["APPWRITE_PROJECT_ID"])
        return client.set_key(os.environ["APPWRITE_API_KEY"])

    def kinds_for(self, count: int, mix: Sequence[str] = PHOTO_KINDS) -> list[str]:
        return [mix[i % len(mix)] for i in range(count)]

    def create_records(
        self, count: int, kinds: Sequence[str] | None = None, run_id: str | None = None
    ) -> list[RecordInfo]:
        """Upload each record's photo(s) to Storage and create its row, as the app does (each create fires events).

        `kinds` (cycled) are names from PHOTO_KINDS or BAD_KINDS; default: every photo kind in turn.
        """
        from appwrite.input_file import InputFile
        from appwrite.services.storage import Storage
        from appwrite.services.tables_db import TablesDB

        client = self._client()
        storage, rows = Storage(client), TablesDB(client)
        mix = list(kinds or PHOTO_KINDS)
        tag = run_id or uuid.uuid4().hex[:6]
        created = []
        for i in range(count):
            kind = mix[i % len(mix)]
            user_id, _ = self.config.users[i % len(self.config.users)]
            sample: Sample | None = None
            if kind.startswith("bad:"):
                sample = self.samples.bad(kind.removeprefix("bad:"))
            elif kind in PHOTO_KINDS:
                sample = self.samples.photo(kind)
            elif kind != "no-images":
                raise ValueError(f"unknown record kind {kind!r}")
            n = next(self._seq)
            record_id = f"r{tag}{n:05d}"
            image_ids = []
            for page, path in enumerate(sample.paths if sample else ()):
                file_id = f"f{tag}{n:05d}p{page}"
                storage.create_file(DEFAULT_BUCKET_ID, file_id, InputFile.from_bytes(path.read_bytes(), path.name))
                image_ids.append(file_id)
            info = RecordInfo(
                id=record_id,
                kind=kind,
                user_id=user_id,
                image_ids=image_ids,
                expected_reason=BAD_KINDS.get(kind),
                expected_subject=sample.expected.subject if sample is not None and sample.expected else None,
                created_wall=time.time(),
            )
            with self._lock:
                self.records[record_id] = info
            data = {"userId": user_id, "originalImageIds": image_ids, "analysisStatus": "pending"}
            row = rows.create_row(DEFAULT_DATABASE_ID, DEFAULT_COLLECTION_ID, record_id, data)
            if self.appwrite is None:
                self._deliver(row, "create")
            created.append(info)
        return created

    def reanalyze(self, record_ids: Iterable[str], wrong_reason: str = "我把公式记错了") -> None:
        """What the app's "analyse again" button writes: status back to pending with the student's reason."""
        from appwrite.services.tables_db import TablesDB

        rows = TablesDB(self._client())
        for record_id in record_ids:
            data = {"analysisStatus": "pending", "wrongReason": wrong_reason}
            row = rows.update_row(DEFAULT_DATABASE_ID, DEFAULT_COLLECTION_ID, record_id, data)
            self.records[record_id].revisions += 1
            if self.appwrite is None:
                self._deliver(row, "update")

    def _deliver(self, row: Any, action: str) -> None:
        """Real Appwrite cannot reach a loopback trigger: hand it the event Appwrite would have sent."""
        from mistake_worker.store import row_dict

        assert self.trigger is not None
        body = row_dict(row)
        event = f"databases.{DEFAULT_DATABASE_ID}.collections.{DEFAULT_COLLECTION_ID}.documents.{body['$id']}.{action}"
        request = urllib.request.Request(  # noqa: S310 - the loopback function host
            self.trigger.url,
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json", "x-appwrite-trigger": "event", "x-appwrite-event": event},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            response.read()

    # ------------------------------------------------------------------------------------------------ reading
    def record_docs(self) -> dict[str, dict[str, Any]]:
        """The tracked records as Appwrite has them now."""
        ids = list(self.records)
        if self.appwrite is not None:
            docs = {d["$id"]: d for d in self.appwrite.documents(DEFAULT_COLLECTION_ID)}
            return {i: docs[i] for i in ids if i in docs}
        from appwrite.query import Query
        from appwrite.services.tables_db import TablesDB

        from mistake_worker.store import row_dict

        rows = TablesDB(self._client())
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            found = rows.list_rows(
                DEFAULT_DATABASE_ID, DEFAULT_COLLECTION_ID, [Query.equal("$id", chunk), Query.limit(100)]
            )
            for row in found.rows:
                doc = row_dict(row)
                out[str(doc["$id"])] = doc
        return out

    def analyses(self) -> list[dict[str, Any]]:
        assert self.cluster is not None
        return self.cluster.list_objects(MA, self.namespace)

    def jobs(self) -> list[dict[str, Any]]:
        assert self.cluster is not None
        return self.cluster.list_objects(JOBS, self.namespace)

    def phase_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for obj in self.analyses():
            phase = str((obj.get("status") or {}).get("phase") or "New")
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    def settled(self) -> bool:
        """Every tracked record completed or failed, no analysis active, every Job finished."""
        docs = self.record_docs()
        if len(docs) < len(self.records):
            return False
        if any(d.get("analysisStatus") not in ("completed", "failed") for d in docs.values()):
            return False
        if any(_active(obj) for obj in self.analyses()):
            return False
        return all(_job_finished(job) for job in self.jobs())

    def wait_settled(self, timeout: float = 120.0) -> None:
        wait_until(self.settled, timeout, f"the stack to settle: phases {self.phase_counts()}", interval=0.2)

    def summary(self) -> Any:
        from .report import summarize

        return summarize(self)


def _active(obj: dict[str, Any]) -> bool:
    phase = (obj.get("status") or {}).get("phase")
    return phase is None or Phase(phase) not in TERMINAL_PHASES


def _job_finished(job: dict[str, Any]) -> bool:
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True" for c in conditions)
