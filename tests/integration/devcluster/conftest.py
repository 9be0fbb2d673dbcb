"""Fixtures shared by the dev-cluster tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def custom(kube_client: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(kube_client)


@pytest.fixture
def core(kube_client: Any) -> Any:
    from kubernetes import client

    return client.CoreV1Api(kube_client)
