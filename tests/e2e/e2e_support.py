"""The end-to-end stack for each test module, and a fresh scenario (namespace, data, operator) for each test.

One `Stack` per module keeps the dev cluster, the Appwrite and LLM stand-ins and the TLS proxy up; `scenario`
redeploys the trigger and the operator into a new namespace over fresh Appwrite data, with the test's settings
(`@pytest.mark.operator_settings({...})`).
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mistake_testbed.samples import FontMissingError, SampleSet
from mistake_testbed.stack import Stack, StackConfig, check_consistency, metrics_problems, wait_until
from mistake_testbed.stack.services import TOOLS_DIR

# Fast retries and a sweeper that recovers within seconds; sized for a 2-core CI machine.
E2E_OPERATOR: dict[str, Any] = {
    "batch_size": 20,
    "max_batch_wait_seconds": 0.3,
    "max_active_jobs": 4,
    "per_pod_concurrency": 20,
    "backoff_base_seconds": 0.5,
    "backoff_cap_seconds": 2.0,
    "max_attempts": 6,
    "sweeper": {"interval_seconds": 1.0, "grace_seconds": 3.0},
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "operator_settings(dict): operator settings for the e2e scenario")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not (TOOLS_DIR / "kubectl").is_file():
        pytest.skip("kubectl is not installed: run ./dev setup")
    try:
        SampleSet.default()
    except FontMissingError as err:
        pytest.skip(str(err))
    # The stack talks to the stand-ins only, whatever the developer's shell exports.
    config = StackConfig(
        run_dir=tmp_path_factory.mktemp("e2e"),
        namespace=f"e2e-boot-{uuid.uuid4().hex[:6]}",
        operator=dict(E2E_OPERATOR),
        llm_latency=(0.05, 0.3),
        use_environment=False,
    )
    with Stack(config) as running:
        yield running


@pytest.fixture
def scenario(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Stack]:
    marker = request.node.get_closest_marker("operator_settings")
    settings = json.loads(json.dumps(E2E_OPERATOR))  # a deep copy
    if marker is not None:
        for key, value in marker.args[0].items():
            if isinstance(value, dict):
                settings.setdefault(key, {}).update(value)
            else:
                settings[key] = value
    name = request.node.name.lower().replace("_", "-")[:40].strip("-")
    stack.redeploy(f"{name}-{uuid.uuid4().hex[:6]}", operator=settings)
    offset = len(stack.operator.log_text()) if stack.operator else 0
    yield stack
    # Clear faults so the next scenario starts clean, and fail on a crash in the operator's log.
    assert stack.appwrite is not None
    assert stack.llm is not None
    assert stack.proxy is not None
    stack.appwrite.clear_faults()
    stack.llm.clear_faults()
    stack.proxy.up()
    log = stack.operator.log_text()[offset:] if stack.operator else ""
    assert "Traceback" not in log, log[-6000:]


def settle_and_check(
    stack: Stack, *, restarted: bool = False, timeout: float = 120.0, exact_stats: bool = True
) -> None:
    """Wait until nothing is in flight, then assert the invariants every scenario must keep (`exact_stats`: see
    check_consistency)."""
    stack.wait_settled(timeout)
    problems = check_consistency(stack, exact_stats=exact_stats)
    assert problems == [], "\n".join(problems[:40])
    # The operator refreshes its gauges about once a second: wait for a refresh that agrees, then assert.
    with contextlib.suppress(TimeoutError):
        wait_until(lambda: metrics_problems(stack, restarted) == [], 20, "the operator's metrics to agree")
    problems = metrics_problems(stack, restarted)
    assert problems == [], "\n".join(problems)
