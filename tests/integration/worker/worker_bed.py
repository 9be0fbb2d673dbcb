"""The worker against the stand-ins: Appwrite test server, LLM test server, dev cluster, sample photos.

`WorkerBed` seeds records and their MistakeAnalysis members (Scheduled for a Job), runs a batch in-process
(`run`) or as a real `python -m mistake_worker` process (`spawn`), and reads the results back.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mistake_api import GROUP, PLURAL, analysis_from_record, phase_patch
from mistake_api.constants import DEFAULT_BUCKET_ID, ENV_BATCH_MEMBERS, ENV_JOB_NAME, ENV_NAMESPACE
from mistake_api.states import Phase
from mistake_testbed.appwrite.seed import seed_main, seed_record
from mistake_testbed.appwrite.server import AppwriteTestServer
from mistake_testbed.fixtures.paths import ROOT
from mistake_testbed.kube import DevCluster
from mistake_testbed.kube.util import merge_patch
from mistake_testbed.llm import AnalysisFixture, LLMTestServer
from mistake_testbed.samples import Sample, SampleSet
from mistake_worker.images import ImageLimits, prepare_image

CR = (GROUP, PLURAL)
USER = "user-1"


def prepared_sha256s(sample: Sample) -> tuple[str, ...]:
    """What the LLM server sees of a sample after the worker's preparation (markers do not survive re-encoding)."""
    return tuple(
        hashlib.sha256(prepare_image(sample.read(i), ImageLimits()).data).hexdigest() for i in range(len(sample.paths))
    )


@dataclass
class WorkerBed:
    aw: AppwriteTestServer
    llm: LLMTestServer
    cluster: DevCluster
    namespace: str
    samples: SampleSet
    kubeconfig: Path
    job_name: str = field(default_factory=lambda: f"mab-{uuid.uuid4().hex[:12]}")
    members: list[str] = field(default_factory=list)

    # -- seeding ----------------------------------------------------------------------------------------

    def register(self, sample: Sample) -> None:
        assert sample.expected is not None
        self.llm.add_fixture(
            AnalysisFixture(name=sample.name, facts=sample.expected.facts(), sha256s=prepared_sha256s(sample))
        )

    def put_sample(self, sample: Sample) -> list[str]:
        ids = []
        for i, path in enumerate(sample.paths):
            file_id = f"f{uuid.uuid4().hex[:16]}{i}"
            self.aw.put_file(DEFAULT_BUCKET_ID, path.read_bytes(), filename=path.name, file_id=file_id)
            ids.append(file_id)
        return ids

    def record(self, image_ids: list[str], user_id: str = USER, **fields: Any) -> dict[str, Any]:
        return seed_record(self.aw, image_ids, user_id=user_id, record_id=f"rec{uuid.uuid4().hex[:12]}", **fields)

    def member(self, record: dict[str, Any], job_name: str | None = None, **spec: Any) -> str:
        """A MistakeAnalysis for the record's current revision, Scheduled for this bed's Job."""
        body = analysis_from_record(
            record, database_id="main", collection_id="mistake_records", namespace=self.namespace
        )
        body["spec"].update(spec)
        created = self.cluster.create(CR, self.namespace, body)
        name = str(created["metadata"]["name"])
        status = phase_patch({}, Phase.SCHEDULED, job_name=job_name or self.job_name, attempts=1)
        self.patch_status(name, status)
        self.members.append(name)
        return name

    def photo_member(self, name: str, **fields: Any) -> tuple[str, dict[str, Any]]:
        sample = self.samples.photo(name)
        self.register(sample)
        record = self.record(self.put_sample(sample), **fields)
        return self.member(record), record

    def patch_spec(self, name: str, spec: dict[str, Any]) -> None:
        emu = self.cluster.emu

        def change(cur: dict[str, Any]) -> dict[str, Any]:
            return merge_patch(cur, {"spec": spec})

        self.cluster.call(lambda: emu.update_object(emu.find_def(CR), self.namespace, name, change))

    def patch_status(self, name: str, status: dict[str, Any]) -> None:
        self.cluster.call(lambda: self.cluster.emu.patch_status(CR, self.namespace, name, status))

    def update_record(self, record_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """As the app would: through the SDK (moves $updatedAt like a client edit)."""
        from appwrite.services.tables_db import TablesDB

        from mistake_worker.store import row_dict

        return row_dict(TablesDB(self.aw.client()).update_row("main", "mistake_records", record_id, data))

    # -- running ----------------------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **self.aw.env(),
            "OPENAI_BASE_URL": self.llm.base_url,
            "OPENAI_API_KEY": self.llm.api_key,
            "LLM_MODEL": self.llm.model,
            "KUBECONFIG": str(self.kubeconfig),
            ENV_BATCH_MEMBERS: __import__("json").dumps(self.members),
            ENV_NAMESPACE: self.namespace,
            ENV_JOB_NAME: self.job_name,
            "MISTAKE_WORKER_CONCURRENCY": "4",
            "MISTAKE_WORKER_LLM_MAX_RETRIES": "2",
            "MISTAKE_WORKER_APPWRITE_BACKOFF_SECONDS": "0.05",
            "MISTAKE_WORKER_SHUTDOWN_GRACE_SECONDS": "2",
        }
        env.update(extra)
        return env

    def run(self, monkeypatch: pytest.MonkeyPatch, **extra: str) -> int:
        """The batch in this process (real SDKs, real HTTP), returning the exit code."""
        from mistake_worker.__main__ import run_batch
        from mistake_worker.settings import load_settings

        for key, value in self.env(**extra).items():
            monkeypatch.setenv(key, value)
        return asyncio.run(run_batch(load_settings()))

    def spawn(self, **extra: str) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "MISTAKE_", "APPWRITE_", "OPENAI_"))}
        env.update(self.env(**extra))
        paths = [str(ROOT / p) for p in ("job_image", "api")]
        env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
        return subprocess.Popen(
            [sys.executable, "-m", "mistake_worker"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    # -- reading ----------------------------------------------------------------------------------------

    def cr(self, name: str) -> dict[str, Any]:
        obj = self.cluster.get(CR, self.namespace, name)
        assert obj is not None, name
        return obj

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.cr(name).get("status") or {})

    def doc(self, collection: str, doc_id: str) -> dict[str, Any]:
        return self.aw.document(collection, doc_id)

    def docs(self, collection: str, **where: Any) -> list[dict[str, Any]]:
        return [d for d in self.aw.documents(collection) if all(d.get(k) == v for k, v in where.items())]


@pytest.fixture
def bed(
    appwrite: AppwriteTestServer,
    llm: LLMTestServer,
    dev_cluster: DevCluster,
    kube_namespace: str,
    sample_set: SampleSet,
) -> WorkerBed:
    seed_main(appwrite)
    return WorkerBed(appwrite, llm, dev_cluster, kube_namespace, sample_set, dev_cluster.kubeconfig)
