"""The vision call: one chat completion per record (two when the first answer needs its one repair).

Transport retries (429 with Retry-After, 5xx, timeouts, connection errors) are the SDK's, bounded by
`llm_max_retries`; whatever still fails is classified into a named reason. A semaphore bounds the requests this
process has in flight to the pod's concurrency.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from mistake_api import Reason

from .analysis import Analysis, InvalidOutput, parse_analysis
from .errors import WorkerError
from .images import PreparedImage
from .prompt import SCHEMA_NAME, SYSTEM_PROMPT, PromptContext, analysis_schema, repair_text, user_text
from .settings import LLMSettings, OutputMode, WorkerSettings

log = logging.getLogger(__name__)
_FILTER_WORDS = ("content_filter", "content_policy", "data_inspection", "sensitive", "safety")


@dataclass
class LLMUsage:
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    calls: int = 0


def classify(error: openai.OpenAIError) -> WorkerError:
    """Name what is left after the SDK's own retries."""
    if isinstance(error, openai.APITimeoutError):
        return WorkerError(Reason.LLM_TIMEOUT, "the LLM request timed out")
    if isinstance(error, openai.APIConnectionError):
        return WorkerError(Reason.LLM_UNAVAILABLE, f"connection error: {error}")
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        detail = f"HTTP {status}: {str(error.message)[:300]}"
        if status == 429:
            return WorkerError(Reason.LLM_RATE_LIMITED, detail)
        if status in (401, 403):
            return WorkerError(Reason.LLM_AUTH_FAILED, detail)
        if status >= 500 or status in (408, 409):
            return WorkerError(Reason.LLM_UNAVAILABLE, detail)
        text = f"{error.code or ''} {error.message}".lower()
        if any(word in text for word in _FILTER_WORDS):
            return WorkerError(Reason.LLM_CONTENT_FILTERED, detail)
        return WorkerError(Reason.LLM_BAD_REQUEST, detail)
    return WorkerError(Reason.LLM_UNAVAILABLE, f"{type(error).__name__}: {error}")


class LLMClient:
    def __init__(self, settings: LLMSettings, worker: WorkerSettings, client: AsyncOpenAI | None = None) -> None:
        self.model = settings.model
        self._worker = worker
        self._client = client or AsyncOpenAI(
            base_url=settings.base_url,
            api_key=settings.api_key.get_secret_value(),
            timeout=openai.Timeout(worker.llm_timeout_seconds, connect=worker.llm_connect_timeout_seconds),
            max_retries=worker.llm_max_retries,
        )
        self._limit = asyncio.Semaphore(worker.concurrency)

    async def close(self) -> None:
        await self._client.close()

    def _response_format(self, module_names: Sequence[str]) -> dict[str, Any]:
        if self._worker.output_mode is OutputMode.JSON_SCHEMA:
            return {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": analysis_schema(module_names)},
            }
        return {"type": "json_object"}

    def messages(self, ctx: PromptContext, images: Sequence[PreparedImage]) -> list[dict[str, Any]]:
        parts: list[dict[str, Any]] = [{"type": "text", "text": user_text(ctx)}]
        for image in images:  # page order is the order of the parts
            parts.append(
                {"type": "image_url", "image_url": {"url": image.data_url(), "detail": self._worker.image_detail}}
            )
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": parts}]

    async def _complete(self, messages: list[dict[str, Any]], fmt: dict[str, Any], usage: LLMUsage) -> str | None:
        started = time.perf_counter()
        try:
            async with self._limit:
                # Plain dicts for messages/response_format: the SDK's TypedDict overloads add nothing here.
                create: Any = self._client.chat.completions.create
                response: ChatCompletion = await create(
                    model=self.model,
                    messages=messages,
                    response_format=fmt,
                    temperature=self._worker.llm_temperature,
                    max_completion_tokens=self._worker.llm_max_output_tokens,
                    extra_body=self._worker.llm_extra_body or None,
                )
        except openai.OpenAIError as error:
            raise classify(error) from error
        finally:
            usage.seconds += time.perf_counter() - started
            usage.calls += 1
        if response.usage is not None:
            usage.prompt_tokens += response.usage.prompt_tokens or 0
            usage.completion_tokens += response.usage.completion_tokens or 0
        if response.model:
            usage.model = response.model
        if not response.choices:
            raise WorkerError(Reason.LLM_INVALID_OUTPUT, "the answer has no choices")
        choice = response.choices[0]
        message = choice.message
        if getattr(message, "refusal", None):
            raise WorkerError(Reason.LLM_REFUSED, str(message.refusal)[:300])
        if choice.finish_reason == "content_filter":
            raise WorkerError(Reason.LLM_CONTENT_FILTERED, "the provider's content filter stopped the answer")
        if choice.finish_reason == "length":
            raise WorkerError(
                Reason.LLM_TRUNCATED, f"the answer hit max_completion_tokens={self._worker.llm_max_output_tokens}"
            )
        return str(message.content) if message.content is not None else None

    async def analyse(
        self, ctx: PromptContext, images: Sequence[PreparedImage], module_names: Sequence[str]
    ) -> tuple[Analysis, LLMUsage]:
        usage = LLMUsage(model=self.model)
        fmt = self._response_format(module_names)
        messages = self.messages(ctx, images)
        content = await self._complete(messages, fmt, usage)
        try:
            return parse_analysis(content), usage
        except InvalidOutput as first:
            log.info("invalid LLM answer, asking once for a repair: %s", first)
            problems = str(first)
        # The repair keeps the whole original conversation (instructions, feedback, pages) and adds the problems.
        repair = [
            *messages,
            {"role": "assistant", "content": (content or "")[:4000]},
            {"role": "user", "content": repair_text(problems)},
        ]
        content = await self._complete(repair, fmt, usage)
        try:
            return parse_analysis(content), usage
        except InvalidOutput as second:
            raise WorkerError(Reason.LLM_INVALID_OUTPUT, f"after one repair: {second}") from second
