"""Failing steps back off per key instead of being retried on every pass of the loop."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from prometheus_client import CollectorRegistry

from mistake_operator import metrics as m
from mistake_operator.controller import Controller
from mistake_operator.kubeapi import ApiError, KubeApi
from mistake_operator.records import RecordError
from mistake_operator.settings import Settings

pytestmark = pytest.mark.unit


def controller() -> Controller:
    api = KubeApi(kopf.ConnectionInfo(server="http://127.0.0.1:9"))
    return Controller(Settings(), api, m.Metrics(CollectorRegistry()), None)


def test_a_failed_step_waits_before_its_next_try_and_a_success_clears_it() -> None:
    ctl = controller()
    key = ("outbox", "ns", "a")

    async def fail() -> None:
        raise RecordError("Appwrite 503", retryable=True, code=503)

    async def succeed() -> None:
        return None

    async def run() -> None:
        assert ctl._due(key)
        await ctl._gated(key, fail())
        assert not ctl._due(key)
        assert ctl._due(("outbox", "ns", "other"))  # other keys are not held back
        first_delay = ctl._gates[key][1]
        await ctl._gated(key, fail())
        assert ctl._gates[key][1] == 2 * first_delay
        await ctl._gated(key, succeed())
        assert ctl._due(key)

    asyncio.run(run())
    errors = ctl.metrics.counter(m.OPERATOR_ERRORS).labels("appwrite")._value.get()
    assert errors == 2


def test_a_lost_race_is_not_a_failure() -> None:
    ctl = controller()
    key = ("job", "ns", "mab-x")

    async def conflict() -> None:
        raise ApiError(409, "AlreadyExists", "exists")

    asyncio.run(ctl._gated(key, conflict()))
    assert ctl._due(key)
