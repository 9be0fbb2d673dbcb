"""OpenAI-compatible LLM test server: chat completions and Responses API with images, structured output,
deterministic answers from a fixture table or the request's JSON schema, fault injection and measurement."""

from mistake_testbed.llm.answers import AnalysisFixture, FixtureTable, ResponseFormat
from mistake_testbed.llm.app import LLMServerConfig, LLMServerState, make_app
from mistake_testbed.llm.faults import FAULT_HEADER, FAULT_KINDS, FaultRule
from mistake_testbed.llm.images import image_tokens, text_tokens
from mistake_testbed.llm.runner import LLMTestServer
from mistake_testbed.llm.schema_instance import Alternatives, SchemaGenerationError, generate_instance, schema_errors
from mistake_testbed.llm.stats import RequestRecord, Stats

__all__ = [
    "FAULT_HEADER",
    "FAULT_KINDS",
    "Alternatives",
    "AnalysisFixture",
    "FaultRule",
    "FixtureTable",
    "LLMServerConfig",
    "LLMServerState",
    "LLMTestServer",
    "RequestRecord",
    "ResponseFormat",
    "SchemaGenerationError",
    "Stats",
    "generate_instance",
    "image_tokens",
    "make_app",
    "schema_errors",
    "text_tokens",
]
