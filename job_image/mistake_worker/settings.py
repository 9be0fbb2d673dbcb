"""Worker settings: one typed model read from the environment.

Worker knobs use the prefix `MISTAKE_WORKER_`; the services use their conventional names (`APPWRITE_*`,
`OPENAI_*`, `LLM_MODEL`) and the batch comes from `MISTAKE_BATCH_MEMBERS`, `MISTAKE_NAMESPACE`, `MISTAKE_JOB_NAME`.
Invalid settings are a permanent failure (exit code 42): a retry with the same pod spec cannot help.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mistake_api.constants import DEFAULT_DATABASE_ID, ENV_BATCH_MEMBERS, ENV_JOB_NAME, ENV_NAMESPACE

Seconds = Annotated[float, Field(gt=0)]


class OutputMode(StrEnum):
    """How the provider is asked for structured output."""

    JSON_SCHEMA = "json_schema"  # strict schema (OpenAI, recent Doubao, vLLM, SGLang)
    JSON_OBJECT = "json_object"  # JSON mode plus our own validation (DashScope VL, most others)


class WorkerSettings(BaseSettings):
    """Knobs of the worker itself (`MISTAKE_WORKER_<NAME>`)."""

    model_config = SettingsConfigDict(env_prefix="MISTAKE_WORKER_", extra="ignore", frozen=True)

    concurrency: int = Field(default=8, ge=1, le=512, description="Records processed at once (perPodConcurrency).")
    io_threads: int = Field(default=0, ge=0, le=512, description="Threads for blocking SDK calls; 0 = concurrency+4.")
    image_threads: int = Field(default=0, ge=0, le=64, description="Threads for image decoding; 0 = CPU count.")
    shutdown_grace_seconds: Seconds = Field(default=20.0, description="After SIGTERM, time in-flight records get.")
    record_timeout_seconds: Seconds = Field(default=600.0, description="Upper bound for one record.")
    # Images.
    max_images: int = Field(default=8, ge=1, le=64, description="Pages per record.")
    max_image_bytes: int = Field(default=30_000_000, ge=1, description="Per-file download cap (bucket limit).")
    max_image_pixels: int = Field(default=50_000_000, ge=1, description="Declared pixels above this are a bomb.")
    image_long_side: int = Field(default=1568, ge=256, le=8192, description="Downscale target for the long side.")
    image_short_side: int = Field(default=1024, ge=256, le=8192, description="Downscale target for the short side.")
    jpeg_quality: int = Field(default=82, ge=30, le=95)
    image_detail: str = Field(default="high", pattern="^(low|high|auto)$")
    # LLM.
    output_mode: OutputMode = OutputMode.JSON_SCHEMA
    llm_timeout_seconds: Seconds = Field(default=120.0, description="Per LLM request (read timeout).")
    llm_connect_timeout_seconds: Seconds = 10.0
    llm_max_retries: int = Field(default=3, ge=0, le=10, description="SDK retries (429/5xx/timeouts, Retry-After).")
    llm_max_output_tokens: int = Field(default=4096, ge=256, le=65_536)
    llm_temperature: float = Field(default=0.2, ge=0, le=2)
    llm_extra_body: dict[str, Any] = Field(
        default_factory=dict, description='Provider extras as JSON, e.g. {"thinking": {"type": "disabled"}}.'
    )
    # Appwrite.
    appwrite_timeout_seconds: Seconds = Field(default=30.0, description="Per Appwrite request.")
    appwrite_attempts: int = Field(default=4, ge=1, le=10, description="Attempts for transient Appwrite errors.")
    appwrite_backoff_seconds: Seconds = Field(default=0.5, description="First retry delay (doubles, jittered).")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    @property
    def io_pool_size(self) -> int:
        return self.io_threads or self.concurrency + 4


class AppwriteSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APPWRITE_", extra="ignore", frozen=True)

    endpoint: str = Field(pattern=r"^https?://.+/v1/?$")
    project_id: str = Field(min_length=1)
    api_key: SecretStr
    database_id: str = DEFAULT_DATABASE_ID


class LLMSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    base_url: str = Field(validation_alias=AliasChoices("OPENAI_BASE_URL"), pattern=r"^https?://")
    api_key: SecretStr = Field(validation_alias=AliasChoices("OPENAI_API_KEY"))
    model: str = Field(validation_alias=AliasChoices("LLM_MODEL"), min_length=1)


class BatchSettings(BaseSettings):
    """What the operator tells this pod: its Job, namespace and the member MistakeAnalysis names."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    members: list[str] = Field(validation_alias=AliasChoices(ENV_BATCH_MEMBERS), min_length=1)
    namespace: str = Field(validation_alias=AliasChoices(ENV_NAMESPACE), min_length=1)
    job_name: str = Field(validation_alias=AliasChoices(ENV_JOB_NAME), min_length=1)

    @field_validator("members", mode="before")
    @classmethod
    def _json_list(cls, value: Any) -> Any:
        # pydantic-settings decodes JSON for complex fields already; accept a plain string list too.
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("duplicate member names")
        return value


class Settings(BaseModel):
    worker: WorkerSettings
    appwrite: AppwriteSettings
    llm: LLMSettings
    batch: BatchSettings


class SettingsError(Exception):
    """The environment does not describe a runnable worker."""


def load_settings() -> Settings:
    try:
        return Settings(
            worker=WorkerSettings(),
            appwrite=AppwriteSettings(),
            llm=LLMSettings(),
            batch=BatchSettings(),
        )
    except (ValidationError, ValueError) as error:
        raise SettingsError(str(error)) from error
