"""Least privilege, proven from the rendered Roles and ClusterRoles of every values case."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from chart_support import CASES, NAMESPACE, Rendered

pytestmark = pytest.mark.chart

Grant = tuple[str, str, str]  # (apiGroup, resource, verb)

OPERATOR_ALLOWED: set[Grant] = {
    *{("mistakes.dev", "mistakeanalyses", v) for v in ("get", "list", "watch", "create", "update", "patch", "delete")},
    *{("mistakes.dev", "mistakeanalyses/status", v) for v in ("get", "update", "patch")},
    *{("batch", "jobs", v) for v in ("get", "list", "watch", "create", "patch", "delete")},
    *{("", "pods", v) for v in ("get", "list", "watch")},
    *{("", "events", v) for v in ("create", "patch")},
}
OPERATOR_CLUSTER_EXTRA: set[Grant] = {("", "namespaces", "list"), ("", "namespaces", "watch")}
JOB_ALLOWED: set[Grant] = {
    ("mistakes.dev", "mistakeanalyses", "get"),
    ("mistakes.dev", "mistakeanalyses", "patch"),
    ("mistakes.dev", "mistakeanalyses/status", "get"),
    ("mistakes.dev", "mistakeanalyses/status", "patch"),
}
TRIGGER_ALLOWED: set[Grant] = {
    ("mistakes.dev", "mistakeanalyses", "create"),
    ("mistakes.dev", "mistakeanalyses", "get"),
}


def grants(role: dict[str, Any]) -> set[Grant]:
    out: set[Grant] = set()
    for rule in role.get("rules", []):
        assert "resourceNames" not in rule or rule["resourceNames"], "empty resourceNames would mean all"
        assert "nonResourceURLs" not in rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                for verb in rule["verbs"]:
                    out.add((group, resource, verb))
    return out


def roles(case: Rendered) -> Iterator[dict[str, Any]]:
    yield from case.of_kind("Role")
    yield from case.of_kind("ClusterRole")


def by_component(case: Rendered, component: str) -> list[dict[str, Any]]:
    return [r for r in roles(case) if r["metadata"]["labels"]["app.kubernetes.io/component"] == component]


@pytest.mark.parametrize("case", list(CASES))
def test_no_wildcards_anywhere(rendered: dict[str, Rendered], case: str) -> None:
    for role in roles(rendered[case]):
        for group, resource, verb in grants(role):
            assert "*" not in (group, resource, verb), f"{role['metadata']['name']} grants a wildcard"
            assert verb not in {"escalate", "bind", "impersonate"}
            assert resource not in {"secrets", "roles", "rolebindings", "clusterroles", "clusterrolebindings"}


@pytest.mark.parametrize("case", list(CASES))
def test_operator_has_exactly_what_it_needs(rendered: dict[str, Rendered], case: str) -> None:
    cluster = case == "all-namespaces"
    operator_roles = by_component(rendered[case], "operator")
    assert operator_roles
    for role in operator_roles:
        assert role["kind"] == ("ClusterRole" if cluster else "Role")
        expected = OPERATOR_ALLOWED | (OPERATOR_CLUSTER_EXTRA if cluster else set())
        assert grants(role) == expected


@pytest.mark.parametrize("case", list(CASES))
def test_job_pods_only_read_and_report_their_analyses(rendered: dict[str, Rendered], case: str) -> None:
    job_roles = by_component(rendered[case], "analysis-job")
    assert job_roles
    for role in job_roles:
        assert grants(role) == JOB_ALLOWED
        assert not any(resource == "secrets" for _, resource, _ in grants(role))


@pytest.mark.parametrize("case", [c for c in CASES if c != "no-trigger"])
def test_trigger_can_only_create_and_get_analyses(rendered: dict[str, Rendered], case: str) -> None:
    trigger_roles = by_component(rendered[case], "trigger")
    assert len(trigger_roles) == 1
    role = trigger_roles[0]
    assert role["kind"] == "Role"
    assert role["metadata"]["namespace"] == NAMESPACE
    assert grants(role) == TRIGGER_ALLOWED


def test_trigger_switch_removes_its_objects(rendered: dict[str, Rendered]) -> None:
    case = rendered["no-trigger"]
    assert by_component(case, "trigger") == []
    assert not [d for d in case.docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "trigger"]


@pytest.mark.parametrize("case", list(CASES))
def test_bindings_tie_each_role_to_its_own_account(rendered: dict[str, Rendered], case: str) -> None:
    docs = rendered[case]
    accounts = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in docs.of_kind("ServiceAccount")}
    role_names = {(r["kind"], r["metadata"]["name"]) for r in roles(docs)}
    bindings = docs.of_kind("RoleBinding") + docs.of_kind("ClusterRoleBinding")
    assert bindings
    for binding in bindings:
        assert (binding["roleRef"]["kind"], binding["roleRef"]["name"]) in role_names
        component = binding["metadata"]["labels"]["app.kubernetes.io/component"]
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert (subject["namespace"], subject["name"]) in accounts
            assert subject["name"].endswith(
                {"operator": "-operator", "analysis-job": "-job", "trigger": "-trigger"}[component]
            )


def test_cluster_scope_only_when_watching_all_namespaces(rendered: dict[str, Rendered]) -> None:
    for name, case in rendered.items():
        cluster_objects = case.of_kind("ClusterRole") + case.of_kind("ClusterRoleBinding")
        if name in {"all-namespaces", "example-all-namespaces"}:
            assert cluster_objects
        else:
            assert cluster_objects == [], name


def test_trigger_token_secret_is_bound_to_the_trigger_account(rendered: dict[str, Rendered]) -> None:
    secret = rendered["defaults"].one("Secret", "-trigger-token")
    assert secret["type"] == "kubernetes.io/service-account-token"
    account = secret["metadata"]["annotations"]["kubernetes.io/service-account.name"]
    assert account == rendered["defaults"].one("ServiceAccount", "-trigger")["metadata"]["name"]
