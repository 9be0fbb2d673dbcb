"""What the trigger does with each answer of the Kubernetes API, its configuration, its session, and its secrets."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import ModuleType

import pytest
import requests
import trustme
from trigger_support import APPWRITE_KEY, DOC_EVENT, TOKEN, USER_JWT, FakeSession, headers, record

from mistake_testbed.appwrite.runtime import RuntimeResult, invoke, make_context

pytestmark = pytest.mark.unit

R1 = "main/mistake_records/r1"


def run(trigger: ModuleType, body: object = None, event: str | None = None) -> RuntimeResult:
    body = record() if body is None else body
    return invoke(trigger.main, make_context(body, headers(event or DOC_EVENT.format(action="create"))))


@pytest.mark.parametrize(
    ("answer", "decision", "reason"),
    [
        (201, "queued", "created"),
        (200, "queued", "created"),
        (409, "already_queued", "exists"),
        (400, "failed", "k8s_bad_request"),
        (401, "failed", "k8s_unauthorized"),
        (403, "failed", "k8s_forbidden"),
        (404, "failed", "k8s_not_found"),
        (422, "failed", "k8s_invalid"),
        (429, "failed", "k8s_throttled"),
        (500, "failed", "k8s_server_error"),
        (503, "failed", "k8s_server_error"),
        (302, "failed", "k8s_unexpected_status"),
    ],
)
def test_each_api_status_has_its_decision(
    trigger: ModuleType, session: FakeSession, answer: int, decision: str, reason: str
) -> None:
    session.answer = answer
    session.message = 'mistakeanalyses.mistakes.dev is forbidden: User "system:serviceaccount:x:y" cannot create'
    result = run(trigger)

    body = result.json()
    assert result.status == 200
    assert (body["decision"], body["reason"], body["httpStatus"], body["record"]) == (decision, reason, answer, R1)
    assert body["analysis"].startswith("ma-r1-")
    lines = result.logs + result.errors
    assert len(lines) == 1
    if decision == "failed":
        assert result.logs == []
        assert f"reason={reason}" in result.errors[0]
        assert f"record={R1}" in result.errors[0]
        assert "message=" in result.errors[0]  # the API's own words help whoever reads the log
    else:
        assert result.errors == []


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (requests.exceptions.SSLError("certificate verify failed"), "k8s_tls_error"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "k8s_connect_timeout"),
        (requests.exceptions.ReadTimeout("read timed out"), "k8s_timeout"),
        (requests.exceptions.ConnectionError("connection refused"), "k8s_connection_error"),
        (requests.exceptions.ChunkedEncodingError("broken"), "k8s_request_error"),
        (RuntimeError("a bug"), "internal_error"),
    ],
)
def test_transport_failures_are_one_error_line_and_a_normal_answer(
    trigger: ModuleType, session: FakeSession, error: BaseException, reason: str
) -> None:
    session.answer = error
    result = run(trigger)

    assert result.status == 200
    assert result.json()["decision"] == "failed"
    assert result.json()["reason"] == reason
    assert result.logs == []
    assert len(result.errors) == 1
    assert f"reason={reason}" in result.errors[0]
    if reason != "internal_error":
        assert f"record={R1}" in result.errors[0]


@pytest.mark.parametrize(
    ("env", "reason", "variable"),
    [
        ({"K8S_API_URL": ""}, "config_missing", "K8S_API_URL"),
        ({"K8S_TOKEN": " "}, "config_missing", "K8S_TOKEN"),
        ({"K8S_API_URL": "http://127.0.0.1:8080"}, "config_insecure_url", "K8S_API_URL"),
        ({"K8S_CA_CERT": "not base64 at all!"}, "config_invalid_ca", "K8S_CA_CERT"),
        ({"K8S_CA_CERT": base64.b64encode(b"hello").decode()}, "config_invalid_ca", "K8S_CA_CERT"),
        ({"K8S_TIMEOUT": "soon"}, "config_invalid_number", "K8S_TIMEOUT/ANALYSIS_PRIORITY"),
        ({"K8S_TIMEOUT": "0"}, "config_invalid_number", "K8S_TIMEOUT"),
        ({"ANALYSIS_PRIORITY": "5000"}, "config_invalid_number", "ANALYSIS_PRIORITY"),
    ],
)
def test_bad_configuration_is_reported_without_calling_the_api(
    trigger: ModuleType,
    session: FakeSession,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    reason: str,
    variable: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run(trigger)

    assert result.json()["decision"] == "failed"
    assert result.json()["reason"] == reason
    assert result.errors == [f"mistake-trigger decision=failed reason={reason} record={R1} variable={variable}"]
    assert session.calls == []


def test_configuration_does_not_matter_for_skipped_events(trigger: ModuleType) -> None:
    result = run(trigger, record(analysisStatus="completed"))
    assert result.json()["reason"] == "not_pending"  # no K8S_* set at all, yet no error
    assert result.errors == []


def test_timeout_namespace_priority_and_bucket_come_from_the_environment(
    trigger: ModuleType, session: FakeSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("K8S_TIMEOUT", "1.5")
    monkeypatch.setenv("K8S_NAMESPACE", "prod")
    monkeypatch.setenv("ANALYSIS_PRIORITY", "10")
    monkeypatch.setenv("ANALYSIS_BUCKET_ID", "photos")
    monkeypatch.setenv("K8S_API_URL", "https://kube.example:6443/")
    run(trigger)
    call = session.calls[0]
    assert call["timeout"] == (1.5, 1.5)
    assert call["url"] == "https://kube.example:6443/apis/mistakes.dev/v1alpha1/namespaces/prod/mistakeanalyses"
    assert session.posted["spec"]["priority"] == 10
    assert session.posted["spec"]["bucketId"] == "photos"


# --- the session and the CA ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca_pem() -> str:
    return trustme.CA().cert_pem.bytes().decode()


def config(trigger: ModuleType, **changes: str) -> object:
    values = {"api_url": "https://127.0.0.1:6443", "token": TOKEN, "ca_pem": None}
    values.update(changes)
    return trigger.Config(values["api_url"], values["token"], values["ca_pem"], "ns", 3.0, 0, "bucket")


@pytest.mark.parametrize("form", ["pem", "pem on one line", "base64"])
def test_ca_is_accepted_as_pem_or_base64_and_written_once(
    trigger: ModuleType, ca_pem: str, monkeypatch: pytest.MonkeyPatch, form: str
) -> None:
    raw = {
        "pem": ca_pem,
        "pem on one line": ca_pem.replace("\n", "\\n"),
        "base64": base64.b64encode(ca_pem.encode()).decode(),
    }[form]
    monkeypatch.setenv("K8S_API_URL", "https://127.0.0.1:6443")
    monkeypatch.setenv("K8S_TOKEN", TOKEN)
    monkeypatch.setenv("K8S_CA_CERT", raw)
    loaded = trigger.load_config()
    _, verify = trigger.TRANSPORT.session(loaded)
    assert Path(verify).read_text().strip() == ca_pem.strip()
    _, again = trigger.TRANSPORT.session(trigger.load_config())
    assert again == verify
    assert trigger.TRANSPORT.builds == 1


def test_one_session_serves_every_invocation_until_the_url_or_ca_changes(trigger: ModuleType, ca_pem: str) -> None:
    first, verify = trigger.TRANSPORT.session(config(trigger))
    assert verify is True  # no CA given: the system trust store
    for _ in range(5):
        assert trigger.TRANSPORT.session(config(trigger, token="rotated"))[0] is first
    assert trigger.TRANSPORT.builds == 1

    with_ca, ca_file = trigger.TRANSPORT.session(config(trigger, ca_pem=ca_pem))
    assert with_ca is not first
    assert Path(ca_file).is_file()
    moved, _ = trigger.TRANSPORT.session(config(trigger, ca_pem=ca_pem, api_url="https://10.0.0.1:443"))
    assert moved is not with_ca
    assert trigger.TRANSPORT.builds == 3
    assert moved.trust_env is False


# --- secrets ------------------------------------------------------------------------------------------------------

SECRETS = (TOKEN, APPWRITE_KEY, USER_JWT, "Bearer")


@pytest.mark.parametrize(
    "answer",
    [
        201,
        409,
        401,
        403,
        422,
        500,
        requests.exceptions.SSLError(f"bad handshake with Bearer {TOKEN}"),
        requests.exceptions.ConnectionError(f"refused; headers were Authorization: Bearer {TOKEN}"),
        ValueError(f"unexpected {TOKEN}"),
    ],
)
def test_no_secret_reaches_a_log_line_or_the_response(
    trigger: ModuleType, session: FakeSession, answer: object
) -> None:
    session.answer = answer  # type: ignore[assignment]
    session.message = "denied"
    body = record(wrongReason="private feedback text", questionId="q-1")
    result = run(trigger, body)

    visible = "\n".join([*result.logs, *result.errors, result.text])
    for secret in (*SECRETS, "private feedback text"):
        assert secret not in visible
    assert len(result.logs) + len(result.errors) == 1


def test_the_posted_request_carries_the_token_only_in_the_authorization_header(
    trigger: ModuleType, session: FakeSession
) -> None:
    run(trigger)
    call = session.calls[0]
    assert call["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in call["url"]
    assert TOKEN not in call["data"].decode()
    assert APPWRITE_KEY not in call["data"].decode()


def test_the_response_is_json_with_a_fixed_shape(trigger: ModuleType, session: FakeSession) -> None:
    result = run(trigger)
    assert result.status == 200
    assert result.headers["content-type"] == "application/json"
    assert set(json.loads(result.body)) == {"decision", "reason", "record", "analysis", "httpStatus"}
