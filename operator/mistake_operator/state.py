"""What the operator knows about the cluster: a cache of MistakeAnalyses and batch Jobs, fed by kopf's watches.

The cache is only ever a copy of the API (rebuilt from the initial listing after a restart). Decisions are made
from it, and every write is conditional on the object's current state on the server, so a stale cache can delay
work but never duplicate it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mistake_api import constants as c
from mistake_api.states import ACTIVE_PHASES, TERMINAL_PHASES, Phase

Key = tuple[str, str]  # (namespace, name)
_PHASES = frozenset(p.value for p in Phase)


def parse_time(value: Any) -> datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class AnalysisView:
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    created: datetime | None
    body: dict[str, Any]

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.body.get("spec") or {}
        return spec

    @property
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.body.get("status") or {}
        return status

    @property
    def phase(self) -> Phase | None:
        raw = self.status.get("phase")
        return Phase(raw) if isinstance(raw, str) and raw in _PHASES else None

    @property
    def priority(self) -> int:
        return int(self.spec.get("priority") or 0)

    @property
    def cancel(self) -> bool:
        return bool(self.spec.get("cancel"))

    @property
    def attempts(self) -> int:
        return int(self.status.get("attempts") or 0)

    @property
    def job_name(self) -> str | None:
        name = self.status.get("jobName")
        return str(name) if name else None

    @property
    def queued_at(self) -> datetime | None:
        return parse_time(self.status.get("queuedAt")) or self.created

    @property
    def next_attempt_at(self) -> datetime | None:
        return parse_time(self.status.get("nextAttemptAt"))

    @property
    def record_key(self) -> str:
        labels = self.body.get("metadata", {}).get("labels") or {}
        return str(labels.get(c.LABEL_RECORD, ""))

    @property
    def revision(self) -> str:
        return str(self.spec.get("revision", ""))

    @property
    def active(self) -> bool:
        return self.phase is None or self.phase in ACTIVE_PHASES

    @property
    def terminal(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @property
    def record_synced(self) -> bool:
        """A final outcome other than success still owes Appwrite a write until this is true."""
        return bool(self.status.get("recordSynced"))

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> AnalysisView:
        meta = body.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            resource_version=str(meta.get("resourceVersion", "")),
            generation=int(meta.get("generation") or 1),
            created=parse_time(meta.get("creationTimestamp")),
            body=_plain(body),
        )


@dataclass
class JobView:
    namespace: str
    name: str
    uid: str
    members: tuple[str, ...]
    created: datetime | None
    finished: bool
    failed: bool
    reason: str
    reconciled: bool
    body: dict[str, Any]

    @property
    def key(self) -> Key:
        return (self.namespace, self.name)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobView:
        meta = body.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        try:
            members = tuple(json.loads(annotations.get(c.ANNOTATION_MEMBERS, "[]")))
        except ValueError:
            members = ()
        conditions = (body.get("status") or {}).get("conditions") or []
        done = {cond.get("type"): cond for cond in conditions if cond.get("status") == "True"}
        failed = "Failed" in done
        reason = str(done["Failed"].get("reason", "")) if failed else ""
        return cls(
            namespace=str(meta.get("namespace", "")),
            name=str(meta.get("name", "")),
            uid=str(meta.get("uid", "")),
            members=members,
            created=parse_time(meta.get("creationTimestamp")),
            finished=failed or "Complete" in done,
            failed=failed,
            reason=reason,
            reconciled=annotations.get(RECONCILED_ANNOTATION) == "true",
            body=_plain(body),
        )


RECONCILED_ANNOTATION = f"{c.GROUP}/reconciled"


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    # kopf hands out read-only body views; keep a plain copy of what we need.
    return json.loads(json.dumps(dict(body), default=_jsonable))  # type: ignore[no-any-return]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, Iterable):
        return list(value)
    return str(value)


@dataclass
class ClusterState:
    analyses: dict[Key, AnalysisView] = field(default_factory=dict)
    jobs: dict[Key, JobView] = field(default_factory=dict)
    # Jobs this process created whose ADDED event may not have arrived yet.
    pending_jobs: dict[Key, JobView] = field(default_factory=dict)
    by_record: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))

    def upsert_analysis(self, body: Mapping[str, Any]) -> tuple[AnalysisView | None, AnalysisView]:
        view = AnalysisView.from_body(body)
        old = self.analyses.get(view.key)
        self.analyses[view.key] = view
        if view.record_key:
            self.by_record[(view.namespace, view.record_key)].add(view.name)
        return old, view

    def remove_analysis(self, namespace: str, name: str) -> AnalysisView | None:
        view = self.analyses.pop((namespace, name), None)
        if view is not None and view.record_key:
            names = self.by_record.get((namespace, view.record_key))
            if names is not None:
                names.discard(name)
                if not names:
                    del self.by_record[(namespace, view.record_key)]
        return view

    def upsert_job(self, body: Mapping[str, Any]) -> tuple[JobView | None, JobView]:
        view = JobView.from_body(body)
        old = self.jobs.get(view.key)
        self.jobs[view.key] = view
        self.pending_jobs.pop(view.key, None)
        return old, view

    def remove_job(self, namespace: str, name: str) -> JobView | None:
        self.pending_jobs.pop((namespace, name), None)
        return self.jobs.pop((namespace, name), None)

    def live_jobs(self, namespace: str | None = None) -> list[JobView]:
        """Jobs not yet finished, including ones just created and not yet seen through the watch."""
        seen = {**self.pending_jobs, **self.jobs}
        return [j for j in seen.values() if not j.finished and (namespace is None or j.namespace == namespace)]

    def held_members(self, namespace: str) -> set[str]:
        """Analyses named by a live Job: never to be put into another batch."""
        return {m for job in self.live_jobs(namespace) for m in job.members}

    def record_siblings(self, view: AnalysisView) -> list[AnalysisView]:
        names = self.by_record.get((view.namespace, view.record_key), set())
        return [
            self.analyses[(view.namespace, n)] for n in names if n != view.name and (view.namespace, n) in self.analyses
        ]

    def namespaces(self) -> set[str]:
        return {ns for ns, _ in self.analyses} | {ns for ns, _ in self.jobs} | {ns for ns, _ in self.pending_jobs}
