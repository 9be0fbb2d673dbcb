"""What a stack run produced: the summary the demo prints, and the consistency checks the e2e suite asserts.

Latency is end to end as the student sees it: from the record write that asked for the analysis (`spec.revision`,
the record's `$updatedAt`) to the analysis' `status.finishedAt`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from mistake_api.constants import DEFAULT_COLLECTION_ID

from .core import Stack, _active, _job_finished, parse_time


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Summary:
    records: int
    record_status: Counter[str]
    phases: Counter[str]
    reasons: Counter[str]  # "Phase/Reason" of every analysis that did not succeed
    failed_records: Counter[str]  # reason of each record that ended failed
    latencies: list[float]
    elapsed: float  # first record written → last analysis finished
    llm_calls: int  # requests the LLM (stand-in) served, retries and faults included; -1 when unknown
    llm_prompt_tokens: int
    llm_completion_tokens: int
    result_llm_calls: int  # from the Succeeded analyses' results
    result_prompt_tokens: int
    result_completion_tokens: int
    jobs: int
    pods: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> int:
        return self.phases.get("Succeeded", 0)

    @property
    def throughput(self) -> float:
        finished = sum(self.record_status.get(s, 0) for s in ("completed", "failed"))
        return finished / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies, 50)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 95)

    def lines(self) -> list[str]:
        out = [
            f"records: {self.records}   completed: {self.record_status.get('completed', 0)}   "
            f"failed: {self.record_status.get('failed', 0)}",
            "analyses: " + ", ".join(f"{k} {v}" for k, v in sorted(self.phases.items())),
        ]
        if self.failed_records:
            out.append("failed records by reason: " + ", ".join(f"{k} {v}" for k, v in self.failed_records.items()))
        if self.reasons:
            out.append("analyses not succeeded: " + ", ".join(f"{k} {v}" for k, v in self.reasons.most_common()))
        out += [
            f"throughput: {self.throughput:.2f} records/s over {self.elapsed:.1f} s",
            f"end-to-end latency: p50 {self.p50:.2f} s, p95 {self.p95:.2f} s",
            f"batch Jobs: {self.jobs}, pods: {self.pods}",
        ]
        if self.llm_calls >= 0:
            out.append(
                f"LLM server: {self.llm_calls} calls, {self.llm_prompt_tokens} prompt + "
                f"{self.llm_completion_tokens} completion tokens"
            )
        out.append(
            f"LLM per analysis results: {self.result_llm_calls} calls, {self.result_prompt_tokens} prompt + "
            f"{self.result_completion_tokens} completion tokens"
        )
        return out


def summarize(stack: Stack) -> Summary:
    docs = stack.record_docs()
    analyses = stack.analyses()
    phases: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    latencies: list[float] = []
    finished_at = []
    calls = prompt = completion = 0
    for obj in analyses:
        status = obj.get("status") or {}
        phase = str(status.get("phase") or "New")
        phases[phase] += 1
        if phase in ("Failed", "Cancelled"):
            reasons[f"{phase}/{(status.get('error') or {}).get('reason', '?')}"] += 1
        end = parse_time(status.get("finishedAt"))
        begin = parse_time((obj.get("spec") or {}).get("revision"))
        if end is not None:
            finished_at.append(end.timestamp())
            if begin is not None and phase in ("Succeeded", "Failed"):
                latencies.append(max((end - begin).total_seconds(), 0.0))
        result = status.get("result") or {}
        if phase == "Succeeded":
            calls += int(result.get("llmCalls") or 0)
            prompt += int(result.get("promptTokens") or 0)
            completion += int(result.get("completionTokens") or 0)
    failed_records: Counter[str] = Counter()
    for doc in docs.values():
        if doc.get("analysisStatus") == "failed":
            failed_records[_error_reason(doc.get("analysisError"))] += 1
    started = min((r.created_wall for r in stack.records.values()), default=0.0)
    elapsed = max(finished_at, default=started) - started if started else 0.0
    llm_calls = llm_prompt = llm_completion = -1
    if stack.llm is not None:
        summary = stack.llm.stats.summary()
        llm_calls = int(summary["requests"])
        llm_prompt = int(summary["prompt_tokens"])
        llm_completion = int(summary["completion_tokens"])
    assert stack.cluster is not None
    pods = stack.cluster.list_objects(("", "pods"), stack.namespace)
    return Summary(
        records=len(stack.records),
        record_status=Counter(str(d.get("analysisStatus")) for d in docs.values()),
        phases=phases,
        reasons=reasons,
        failed_records=failed_records,
        latencies=latencies,
        elapsed=max(elapsed, 0.0),
        llm_calls=llm_calls,
        llm_prompt_tokens=llm_prompt,
        llm_completion_tokens=llm_completion,
        result_llm_calls=calls,
        result_prompt_tokens=prompt,
        result_completion_tokens=completion,
        jobs=len(stack.jobs()),
        pods=len(pods),
    )


def _error_reason(text: Any) -> str:
    """The reason code in an `analysisError` text (`图片已损坏，无法读取 [ImageCorrupt]: ...`)."""
    raw = str(text or "")
    start, end = raw.find("["), raw.find("]")
    return raw[start + 1 : end] if 0 <= start < end else "?"


# ---------------------------------------------------------------------------------------------------- checks
def check_consistency(stack: Stack, *, exact_stats: bool = True) -> list[str]:
    """Everything that must hold once the stack has settled; returns the problems found (empty: all good).

    - every tracked record is `completed`, or `failed` with a reason, and the reason is the expected one;
    - the analyses agree with Appwrite: a completed record has a Succeeded analysis for its latest revision whose
      question is the record's; a failed record's latest analysis Failed with the reason Appwrite shows;
    - nothing is stuck: no analysis outside a final phase, every Job finished;
    - no duplicates: one question per record, knowledge points unique per (user, module, name), review states
      unique per (user, knowledge point);
    - each profile's totalMistakes equals the user's completed records (atomic increments lose nothing to
      concurrent pods), or with `exact_stats=False` never exceeds them: for scenarios that kill a Job pod between
      the `completed` write and the increment, or fail the increment in a way that may have been applied
      (docs/worker.md), where a count may be lost once but never added twice.
    Needs the Appwrite stand-in (it reads the other collections directly).
    """
    assert stack.appwrite is not None, "consistency checks read the Appwrite stand-in"
    aw = stack.appwrite
    problems: list[str] = []
    docs = stack.record_docs()
    analyses = stack.analyses()
    by_record: dict[str, list[dict[str, Any]]] = {}
    for obj in analyses:
        record_id = str(obj["spec"]["record"]["documentId"])
        by_record.setdefault(record_id, []).append(obj)
        if _active(obj):
            problems.append(f"analysis {obj['metadata']['name']} stuck in {(obj.get('status') or {}).get('phase')}")
    for job in stack.jobs():
        if not _job_finished(job):
            problems.append(f"Job {job['metadata']['name']} has not finished")
    questions = {q["$id"]: q for q in aw.documents("questions")}
    question_owner: dict[str, str] = {}
    completed_by_user: Counter[str] = Counter()
    for record_id, info in stack.records.items():
        doc = docs.get(record_id)
        if doc is None:
            problems.append(f"record {record_id} is missing in Appwrite")
            continue
        status = doc.get("analysisStatus")
        crs = sorted(by_record.get(record_id, []), key=lambda o: str(o["spec"]["revision"]))
        if not crs:
            problems.append(f"record {record_id} ({status}) has no analysis")
            continue
        latest = crs[-1]
        latest_status = latest.get("status") or {}
        if status == "completed":
            completed_by_user[info.user_id] += 1
            if info.expected_reason is not None:
                problems.append(f"record {record_id} ({info.kind}) completed; expected {info.expected_reason}")
            if latest_status.get("phase") != "Succeeded":
                problems.append(f"record {record_id} completed but its latest analysis is {latest_status.get('phase')}")
            question_id = str(doc.get("questionId") or "")
            if (latest_status.get("result") or {}).get("questionId") != question_id:
                problems.append(f"record {record_id}: question {question_id} is not its latest analysis' question")
            if question_id in question_owner:
                problems.append(f"question {question_id} shared by {question_owner[question_id]} and {record_id}")
            question_owner[question_id] = record_id
            question = questions.get(question_id)
            if question is None:
                problems.append(f"record {record_id}: question {question_id} does not exist")
            elif info.expected_subject is not None and question.get("subject") != info.expected_subject:
                problems.append(
                    f"record {record_id} ({info.kind}): subject {question.get('subject')}, "
                    f"expected {info.expected_subject}"
                )
            analyzed, requested = parse_time(doc.get("analyzedAt")), parse_time(latest["spec"]["revision"])
            if analyzed is None or requested is None or analyzed < requested:
                problems.append(f"record {record_id}: analyzedAt is not after its latest request")
        elif status == "failed":
            reason = _error_reason(doc.get("analysisError"))
            if info.expected_reason is not None and reason != info.expected_reason:
                problems.append(
                    f"record {record_id} ({info.kind}) failed with {reason}; expected {info.expected_reason}"
                )
            if info.expected_reason is None:
                problems.append(f"record {record_id} ({info.kind}) failed with {reason}: {doc.get('analysisError')}")
            if latest_status.get("phase") != "Failed" or (latest_status.get("error") or {}).get("reason") != reason:
                problems.append(
                    f"record {record_id} failed with {reason} but its latest analysis is "
                    f"{latest_status.get('phase')}/{(latest_status.get('error') or {}).get('reason')}"
                )
        else:
            problems.append(f"record {record_id} is {status!r}")
    # Every question belongs to exactly one record (no orphan from a retried or duplicated analysis).
    for question_id in questions:
        if question_id not in question_owner:
            problems.append(f"question {question_id} belongs to no completed record")
    kps = aw.documents("user_knowledge_points")
    kp_keys = Counter((k.get("userId"), k.get("moduleId"), k.get("name")) for k in kps)
    problems += [f"knowledge point {key} exists {n} times" for key, n in kp_keys.items() if n > 1]
    for kp in kps:
        linked = list(kp.get("questionIds") or [])
        if len(linked) != len(set(linked)):
            problems.append(f"knowledge point {kp['$id']} links a question twice")
    states = Counter((s.get("userId"), s.get("knowledgePointId")) for s in aw.documents("review_states"))
    problems += [f"review state {key} exists {n} times" for key, n in states.items() if n > 1]
    profiles = {p.get("userId"): p for p in aw.documents("profiles")}
    for user_id, count in completed_by_user.items():
        total = (profiles.get(user_id) or {}).get("totalMistakes")
        if total is None:
            continue
        if int(total) > count or (exact_stats and int(total) != count):
            problems.append(f"profile {user_id}: totalMistakes {total}, completed records {count}")
    if len(docs) != len(aw.documents(DEFAULT_COLLECTION_ID)):
        problems.append("Appwrite holds records the stack did not create")
    return problems


# ---------------------------------------------------------------------------------------------------- metrics
def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Prometheus text → {(sample name, sorted labels): value}."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def metric_sum(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return sum(
        value
        for (sample, have), value in samples.items()
        if sample == name and all(dict(have).get(k) == v for k, v in labels.items())
    )


def metrics_problems(stack: Stack, restarted: bool) -> list[str]:
    """The operator's metrics against the analyses in the API.

    The `resources` gauge is rebuilt from the watched state, so it must equal the counts by phase exactly.
    `finished_total` counts transitions this operator process saw: without a restart it equals the final
    analyses by outcome; after a restart (counters start at zero, and analyses that finished while no operator
    was running are first seen already final) it lies between the analyses that finished after the process was
    ready and all final analyses.
    """
    assert stack.operator is not None
    samples = scrape(stack.operator.metrics_text())
    ns = stack.namespace
    problems = []
    counts = Counter(str((o.get("status") or {}).get("phase") or "New") for o in stack.analyses())
    for phase in ("Queued", "Scheduled", "Running", "Succeeded", "Failed", "Cancelled"):
        gauge = metric_sum(samples, "mistake_analysis_resources", namespace=ns, phase=phase)
        if gauge != counts.get(phase, 0):
            problems.append(f"resources{{phase={phase}}} = {gauge:g}, analyses in the API: {counts.get(phase, 0)}")
    ready_at = stack.operator.ready_at
    for outcome in ("Succeeded", "Failed", "Cancelled"):
        finished = metric_sum(samples, "mistake_analysis_finished_total", namespace=ns, outcome=outcome)
        total = counts.get(outcome, 0)
        if not restarted:
            if finished != total:
                problems.append(f"finished_total{{outcome={outcome}}} = {finished:g}, final analyses: {total}")
            continue
        after = 0
        for obj in stack.analyses():
            status = obj.get("status") or {}
            end = parse_time(status.get("finishedAt"))
            if status.get("phase") == outcome and end is not None and end.timestamp() > ready_at:
                after += 1
        if not after <= finished <= total:
            problems.append(
                f"finished_total{{outcome={outcome}}} = {finished:g}, outside [{after}, {total}] "
                "(finished after the restart, all final)"
            )
    return problems
