"""Typed models of the MistakeAnalysis resource. The CRD schema is generated from these (see crd.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer, StringConstraints
from pydantic.alias_generators import to_camel

from .constants import APPWRITE_ID_MAX, APPWRITE_ID_PATTERN, DEFAULT_BUCKET_ID, MAX_IMAGE_IDS
from .reasons import Reason
from .states import ConditionStatus, ConditionType, Phase


def rfc3339(moment: datetime) -> str:
    """Kubernetes-style UTC timestamp, kept to microseconds so latencies can be measured from status."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


Timestamp = Annotated[AwareDatetime, PlainSerializer(rfc3339, return_type=str, when_used="json")]
AppwriteId = Annotated[str, StringConstraints(pattern=APPWRITE_ID_PATTERN, max_length=APPWRITE_ID_MAX)]
IMMUTABLE = "self == oldSelf"


def _immutable(what: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": IMMUTABLE, "message": f"{what} is immutable"}]}


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=False)

    def to_api(self) -> dict[str, Any]:
        """The JSON form stored in the resource (camelCase, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RecordRef(_Model):
    """The Appwrite record (document or row) to analyse."""

    database_id: AppwriteId = Field(description="Appwrite database id.")
    collection_id: AppwriteId = Field(description="Collection (or table) id, normally mistake_records.")
    document_id: AppwriteId = Field(description="Document (or row) id of the mistake record.")


class Reanalysis(_Model):
    """Present when the student asked for a re-analysis."""

    wrong_reason: Annotated[str, StringConstraints(max_length=1000)] | None = Field(
        default=None, description="The student's note on what the previous analysis got wrong."
    )
    previous_question_id: Annotated[str, StringConstraints(max_length=100)] | None = Field(
        default=None, description="The question document written by the previous analysis."
    )


class Origin(StrEnum):
    TRIGGER = "trigger"
    SWEEPER = "sweeper"
    CLI = "cli"


class Source(_Model):
    """Where the request came from, for tracing."""

    origin: Origin = Field(default=Origin.TRIGGER, description="What created this analysis.")
    event: Annotated[str, StringConstraints(max_length=512)] | None = Field(
        default=None, description="The Appwrite event name that asked for it, if any."
    )
    received_at: Timestamp | None = Field(default=None, description="When the request was received.")


class MistakeAnalysisSpec(_Model):
    """What to analyse. Only `priority` and `cancel` may change after creation."""

    record: RecordRef = Field(json_schema_extra=_immutable("record"))
    user_id: Annotated[str, StringConstraints(max_length=36)] = Field(
        description="Appwrite userId of the record's owner.", json_schema_extra=_immutable("userId")
    )
    image_ids: list[Annotated[str, StringConstraints(max_length=2000)]] = Field(
        default_factory=list,
        max_length=MAX_IMAGE_IDS,
        description="Storage file ids of the question photos, in page order.",
        json_schema_extra=_immutable("imageIds"),
    )
    bucket_id: AppwriteId = Field(
        default=DEFAULT_BUCKET_ID,
        description="Storage bucket holding the photos.",
        json_schema_extra=_immutable("bucketId"),
    )
    revision: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(
        description="The record's $updatedAt that asked for this analysis.", json_schema_extra=_immutable("revision")
    )
    reanalysis: Reanalysis | None = Field(default=None, json_schema_extra=_immutable("reanalysis"))
    priority: int = Field(default=0, ge=-1000, le=1000, description="Higher runs first; ties run oldest first.")
    cancel: bool = Field(default=False, description="Set to true to stop this analysis.")
    source: Source | None = Field(default=None, json_schema_extra=_immutable("source"))


class Condition(_Model):
    """A Kubernetes-convention condition (metav1.Condition)."""

    type: ConditionType
    status: ConditionStatus
    reason: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", max_length=1024)]
    message: Annotated[str, StringConstraints(max_length=32768)] = ""
    last_transition_time: Timestamp
    observed_generation: int | None = Field(default=None, ge=0)


class AnalysisResult(_Model):
    """Bookkeeping of a successful analysis; the analysis itself lives in Appwrite."""

    question_id: Annotated[str, StringConstraints(max_length=100)] | None = None
    subject: Annotated[str, StringConstraints(max_length=20)] | None = None
    model: Annotated[str, StringConstraints(max_length=200)] | None = None
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    llm_seconds: float = Field(default=0.0, ge=0)
    llm_calls: int = Field(default=0, ge=0)


class AnalysisError(_Model):
    """Why the analysis failed, was cancelled, or (while Queued again) why the last attempt did not finish."""

    reason: Reason
    message: Annotated[str, StringConstraints(max_length=1000)] = ""
    retryable: bool = False


class MistakeAnalysisStatus(_Model):
    phase: Phase | None = None
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    observed_generation: int | None = Field(default=None, ge=0)
    attempts: int = Field(default=0, ge=0, description="Attempts started so far (a Job picked the analysis up).")
    job_name: Annotated[str, StringConstraints(max_length=63)] | None = None
    queued_at: Timestamp | None = None
    scheduled_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    next_attempt_at: Timestamp | None = Field(default=None, description="Not to be batched before this time.")
    result: AnalysisResult | None = None
    error: AnalysisError | None = None
    record_synced: bool | None = Field(
        default=None, description="True once the Appwrite record holds this analysis's final outcome."
    )


class MistakeAnalysis(_Model):
    api_version: str = "mistakes.dev/v1alpha1"
    kind: str = "MistakeAnalysis"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: MistakeAnalysisSpec
    status: MistakeAnalysisStatus = Field(default_factory=MistakeAnalysisStatus)

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def generation(self) -> int | None:
        value = self.metadata.get("generation")
        return int(value) if value is not None else None
