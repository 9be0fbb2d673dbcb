"""Operator settings: one typed model, read from the environment and an optional settings file.

Precedence: environment (`MISTAKE_*`, nested with `__`, e.g. `MISTAKE_JOB__IMAGE`) over the file named by
`MISTAKE_SETTINGS_FILE` (YAML or JSON, the chart mounts its ConfigMap there) over defaults. Invalid settings stop
start-up with a message naming the field.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mistake_api.constants import DEFAULT_COLLECTION_ID, DEFAULT_DATABASE_ID

PositiveSeconds = Annotated[float, Field(gt=0)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EnvFromSource(_Section):
    """A Secret or ConfigMap whose keys become environment variables of the Job pods."""

    secret: str | None = None
    config_map: str | None = None

    @model_validator(mode="after")
    def _one_of(self) -> EnvFromSource:
        if (self.secret is None) == (self.config_map is None):
            raise ValueError("give exactly one of secret or config_map")
        return self


class JobTemplate(_Section):
    """The parts of each batch Job that come from configuration."""

    image: str = "mistake-analyzer-worker:latest"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    command: list[str] = Field(default_factory=lambda: ["python", "-m", "mistake_worker"])
    service_account: str = "mistake-analyzer-job"
    resources: dict[str, dict[str, str]] = Field(
        default_factory=lambda: {
            "requests": {"cpu": "250m", "memory": "256Mi"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        }
    )
    env: dict[str, str] = Field(default_factory=dict, description="Plain (non-secret) environment variables.")
    env_from: list[EnvFromSource] = Field(default_factory=list)
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    priority_class_name: str | None = None
    image_pull_secrets: list[str] = Field(default_factory=list)
    active_deadline_seconds: int = Field(default=1800, ge=30)
    # Pod-level retries only help against node loss; per-record retries are the operator's job.
    backoff_limit: int = Field(default=1, ge=0, le=10)
    ttl_seconds_after_finished: int = Field(default=3600, ge=0)
    extra_labels: dict[str, str] = Field(default_factory=dict)


class Sweeper(_Section):
    enabled: bool = True
    interval_seconds: PositiveSeconds = 60.0
    grace_seconds: PositiveSeconds = Field(default=120.0, description="How long a pending record may wait for its CR")
    stuck_seconds: PositiveSeconds = Field(
        default=1800.0, description="How long a record may sit in processing/ocrOK without a live analysis"
    )
    page_size: int = Field(default=100, ge=1, le=5000)


class Appwrite(_Section):
    endpoint: str = "http://localhost/v1"
    project_id: str = ""
    api_key: SecretStr = SecretStr("")
    database_id: str = DEFAULT_DATABASE_ID
    collection_id: str = DEFAULT_COLLECTION_ID
    timeout_seconds: PositiveSeconds = 10.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MISTAKE_", env_nested_delimiter="__", extra="forbid")

    namespaces: list[str] = Field(default_factory=list, description="Namespaces to watch; empty = the pod's own")
    batch_size: int = Field(default=20, ge=1, le=500)
    max_batch_wait_seconds: PositiveSeconds = 2.0
    max_active_jobs: int = Field(default=5, ge=1, le=1000)
    per_pod_concurrency: int = Field(default=20, ge=1, le=1000)
    max_inflight_requests: int | None = Field(
        default=None, ge=1, description="Cluster-wide LLM concurrency budget; default maxActiveJobs × perPodConcurrency"
    )
    max_attempts: int = Field(default=5, ge=1, le=100)
    backoff_base_seconds: PositiveSeconds = 10.0
    backoff_cap_seconds: PositiveSeconds = 600.0
    max_analysis_age_seconds: PositiveSeconds = 24 * 3600.0
    max_images_per_record: int = Field(default=8, ge=1, le=64)
    finished_ttl_seconds: float = Field(default=7 * 24 * 3600.0, ge=0, description="Keep finished CRs this long")
    job: JobTemplate = Field(default_factory=JobTemplate)
    sweeper: Sweeper = Field(default_factory=Sweeper)
    appwrite: Appwrite = Field(default_factory=Appwrite)
    metrics_port: int = Field(default=8080, ge=0, le=65535)
    health_port: int = Field(default=8081, ge=0, le=65535)
    bind_address: str = "0.0.0.0"  # noqa: S104 - inside a pod, probes and Prometheus come from outside
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.backoff_cap_seconds < self.backoff_base_seconds:
            raise ValueError("backoff_cap_seconds must be at least backoff_base_seconds")
        return self

    @property
    def inflight_budget(self) -> int:
        """Records the whole cluster may have in LLM calls at once."""
        return self.max_inflight_requests or self.max_active_jobs * self.per_pod_concurrency

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _FileSource(settings_cls))


class _FileSource(PydanticBaseSettingsSource):
    """The settings file (the chart's ConfigMap), YAML or JSON, camelCase or snake_case keys."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("MISTAKE_SETTINGS_FILE")
        if not path:
            return {}
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise SettingsError(f"{path}: expected a mapping at the top level")
        return _snake_keys(data)


def _snake(key: str) -> str:
    return "".join(f"_{ch.lower()}" if ch.isupper() else ch for ch in key).lstrip("_")


# Keys whose values are user data (label names, env names, resource names): their own keys are kept as given.
_OPAQUE = {"env", "node_selector", "resources", "extra_labels", "tolerations"}


def _snake_keys(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = _snake(key)
        if isinstance(value, dict) and name not in _OPAQUE:
            value = _snake_keys(value)
        elif isinstance(value, list) and name == "env_from":
            value = [_snake_keys(v) if isinstance(v, dict) else v for v in value]
        out[name] = value
    return out


class SettingsError(RuntimeError):
    """Settings are invalid; the message names every bad field."""


def load(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(settings)'}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid operator settings: {problems}") from None
