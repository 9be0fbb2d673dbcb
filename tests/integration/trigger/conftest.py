"""Fixtures: the trigger deployed on the Appwrite test server's function host, the dev cluster behind TLS."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from trigger_cluster_support import ENTRY, TOKEN, Deployed, function_config

from mistake_testbed.appwrite.function_host import FunctionHost
from mistake_testbed.appwrite.server import AppwriteTestServer
from mistake_testbed.kube import DevCluster
from mistake_testbed.kube.tls_proxy import TlsProxy


@pytest.fixture
def tls_proxy(dev_cluster: DevCluster) -> Iterator[TlsProxy]:
    with TlsProxy(dev_cluster.url, TOKEN) as proxy:
        yield proxy


@pytest.fixture
def deploy(
    appwrite: AppwriteTestServer,
    function_host: Callable[..., FunctionHost],
    tls_proxy: TlsProxy,
    kube_namespace: str,
) -> Callable[..., Deployed]:
    """`deploy(**env)`: start the real entry file with the K8S_* variables (overridable) and subscribe it."""

    def start(server: AppwriteTestServer | None = None, **overrides: str) -> Deployed:
        env = {
            "K8S_API_URL": tls_proxy.url,
            "K8S_TOKEN": TOKEN,
            "K8S_CA_CERT": tls_proxy.ca_pem,
            "K8S_NAMESPACE": kube_namespace,
            "K8S_TIMEOUT": "3",
        }
        env.update(overrides)
        host = function_host(ENTRY, env=env)
        target = server or appwrite
        config = function_config()
        subscription = target.subscribe(
            host.url, events=config["events"], function_id=config["$id"], timeout=float(config["timeout"])
        )
        return Deployed(host, subscription, target)

    return start
