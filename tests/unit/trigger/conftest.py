"""The trigger function, loaded from its entry file the way the Appwrite runtime loads it (it is not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from trigger_support import TOKEN, FakeSession

ENTRY = Path(__file__).resolve().parents[3] / "trigger_function" / "src" / "main.py"
MODULE = "mistake_trigger_function_main"


def load_trigger() -> ModuleType:
    if MODULE in sys.modules:
        return sys.modules[MODULE]
    spec = importlib.util.spec_from_file_location(MODULE, ENTRY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[MODULE] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def trigger(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The trigger module with a clean HTTP session and no K8S_* settings inherited from the environment."""
    module = load_trigger()
    for name in ("K8S_API_URL", "K8S_TOKEN", "K8S_CA_CERT", "K8S_NAMESPACE", "K8S_TIMEOUT", "ANALYSIS_PRIORITY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANALYSIS_BUCKET_ID", raising=False)
    monkeypatch.delenv("MISTAKE_COLLECTION_IDS", raising=False)
    module.TRANSPORT.reset()
    yield module
    module.TRANSPORT.reset()


@pytest.fixture
def session(trigger: ModuleType, monkeypatch: pytest.MonkeyPatch) -> FakeSession:
    fake = FakeSession()
    monkeypatch.setattr(trigger.TRANSPORT, "session", lambda config: (fake, True))
    monkeypatch.setenv("K8S_API_URL", "https://127.0.0.1:6443")
    monkeypatch.setenv("K8S_TOKEN", TOKEN)
    monkeypatch.setenv("K8S_NAMESPACE", "analyses")
    return fake
