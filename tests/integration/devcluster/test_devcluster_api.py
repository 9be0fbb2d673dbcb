"""Contract tests of the emulated API server, through the official `kubernetes` client."""

from __future__ import annotations

import json
import threading
import urllib.request
from typing import Any

import pytest
from devcluster_support import GROUP, PLURAL, VERSION, analysis
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from mistake_testbed.kube import DevCluster

pytestmark = pytest.mark.integration


def _status(exc: ApiException) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(exc.body)
    return body


def test_create_sets_metadata_and_answers_201(custom: Any, kube_namespace: str) -> None:
    obj = custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, analysis("a1"))
    meta = obj["metadata"]  # the client returns None unless the answer is 201
    assert meta["namespace"] == kube_namespace
    assert meta["uid"]
    assert int(meta["resourceVersion"]) > 0
    assert meta["creationTimestamp"].endswith("Z")
    assert meta["generation"] == 1
    assert obj["spec"]["priority"] == 0  # defaulted from the CRD schema


def test_duplicate_create_is_409_already_exists(custom: Any, kube_namespace: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, analysis("dup"))
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, analysis("dup"))
    assert exc.value.status == 409
    assert _status(exc.value)["reason"] == "AlreadyExists"


def test_generate_name_gives_distinct_names(core: Any, kube_namespace: str) -> None:
    body = {"metadata": {"generateName": "gen-"}, "data": {"k": "v"}}
    first = core.create_namespaced_config_map(kube_namespace, body)
    second = core.create_namespaced_config_map(kube_namespace, body)
    assert first.metadata.name.startswith("gen-")
    assert first.metadata.name != second.metadata.name


def test_stale_resource_version_conflicts_on_merge_patch_and_put(custom: Any, kube_namespace: str) -> None:
    obj = custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, analysis("rv"))
    stale = obj["metadata"]["resourceVersion"]
    fresh = custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "rv", {"metadata": {"resourceVersion": stale}, "spec": {"priority": 5}}
    )
    assert int(fresh["metadata"]["resourceVersion"]) > int(stale)
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            kube_namespace,
            PLURAL,
            "rv",
            {"metadata": {"resourceVersion": stale}, "spec": {"priority": 6}},
        )
    assert exc.value.status == 409
    assert _status(exc.value)["reason"] == "Conflict"
    body = dict(fresh, spec=dict(fresh["spec"], priority=7))
    body["metadata"] = dict(fresh["metadata"], resourceVersion=stale)
    with pytest.raises(ApiException) as exc:
        custom.replace_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "rv", body)
    assert exc.value.status == 409
    body["metadata"]["resourceVersion"] = fresh["metadata"]["resourceVersion"]
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "rv", body)
    assert replaced["spec"]["priority"] == 7
    assert replaced["metadata"]["generation"] == 3


def test_json_patch_test_op_guards_resource_version(kube_namespace: str, custom: Any) -> None:
    obj = custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, analysis("jp"))
    rv = obj["metadata"]["resourceVersion"]

    def json_patch(ops: list[dict[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "jp", ops, _content_type="application/json-patch+json"
        )
        return result

    # What kopf sends to add its finalizer.
    ok = json_patch(
        [
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers", "value": ["x.dev/f"]},
        ]
    )
    assert ok["metadata"]["finalizers"] == ["x.dev/f"]
    with pytest.raises(ApiException) as exc:
        json_patch([{"op": "test", "path": "/metadata/resourceVersion", "value": rv}])
    assert exc.value.status == 422
    assert _status(exc.value)["kind"] == "Status"


def test_status_subresource_and_main_resource_ignore_each_other(custom: Any, kube_namespace: str) -> None:
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, analysis("st"))
    after_status = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, kube_namespace, PLURAL, "st", {"spec": {"priority": 42}, "status": {"phase": "Queued"}}
    )
    assert after_status["status"]["phase"] == "Queued"
    assert after_status["spec"]["priority"] == 0
    assert after_status["metadata"]["generation"] == 1
    after_main = custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "st", {"spec": {"priority": 3}, "status": {"phase": "Failed"}}
    )
    assert after_main["status"]["phase"] == "Queued"
    assert after_main["spec"]["priority"] == 3
    assert after_main["metadata"]["generation"] == 2


def test_noop_patch_keeps_resource_version(custom: Any, kube_namespace: str) -> None:
    obj = custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, analysis("noop"))
    same = custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "noop", {"spec": {"priority": 0}}
    )
    assert same["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]


def test_schema_validation_rejects_bad_objects_with_422_status(custom: Any, kube_namespace: str) -> None:
    bad = analysis("bad", priority="high")
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, bad)
    status = _status(exc.value)
    assert exc.value.status == 422
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.priority"
    assert "must be of type integer" in status["message"]
    missing = analysis("missing")
    del missing["spec"]["userId"]
    with pytest.raises(ApiException) as exc:
        custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, missing)
    assert "spec.userId: Required value" in _status(exc.value)["message"]


def test_unknown_fields_are_pruned_and_immutable_fields_rejected(custom: Any, kube_namespace: str) -> None:
    obj = custom.create_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, analysis("prune", surprise="x")
    )
    assert "surprise" not in obj["spec"]
    with pytest.raises(ApiException) as exc:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, kube_namespace, PLURAL, "prune", {"spec": {"userId": "u2"}}
        )
    assert exc.value.status == 422
    assert "userId is immutable" in _status(exc.value)["message"]


def test_label_and_field_selectors_on_list(core: Any, kube_namespace: str) -> None:
    for name, color in (("s1", "red"), ("s2", "blue"), ("s3", "red")):
        core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": name, "labels": {"color": color}}})
    reds = core.list_namespaced_config_map(kube_namespace, label_selector="color=red")
    assert sorted(i.metadata.name for i in reds.items) == ["s1", "s3"]
    assert reds.kind == "ConfigMapList"
    assert int(reds.metadata.resource_version) > 0
    not_red = core.list_namespaced_config_map(kube_namespace, label_selector="color notin (red)")
    assert [i.metadata.name for i in not_red.items] == ["s2"]
    named = core.list_namespaced_config_map(kube_namespace, field_selector="metadata.name=s3")
    assert [i.metadata.name for i in named.items] == ["s3"]


def test_watch_with_selector_sees_transitions_and_times_out(core: Any, kube_namespace: str) -> None:
    listing = core.list_namespaced_config_map(kube_namespace)
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "w1", "labels": {"batch": "b1"}}})
    core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "w2", "labels": {"batch": "b2"}}})
    core.patch_namespaced_config_map("w1", kube_namespace, {"data": {"k": "v"}})
    core.patch_namespaced_config_map("w1", kube_namespace, {"metadata": {"labels": {"batch": "b9"}}})
    seen = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            kube_namespace,
            label_selector="batch=b1",
            resource_version=listing.metadata.resource_version,
            timeout_seconds=1,
        )
    ]
    # Resumed from the list's resourceVersion: every change since, as seen through the selector; the stream
    # then ends by itself when the server-side timeout passes.
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_start_loses_no_events(core: Any, kube_namespace: str) -> None:
    count = 40
    names = {f"race-{i}" for i in range(count)}

    def create_all() -> None:
        for name in sorted(names):
            core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": name}})

    writer = threading.Thread(target=create_all)
    writer.start()
    seen: list[str] = []
    w = watch.Watch()
    for event in w.stream(core.list_namespaced_config_map, kube_namespace, timeout_seconds=30):
        if event["type"] == "ADDED" and event["object"].metadata.name in names:
            seen.append(event["object"].metadata.name)
        if len(seen) == count:
            w.stop()
    writer.join()
    assert sorted(seen) == sorted(names)


def test_watch_from_expired_resource_version_gets_410(private_cluster: DevCluster) -> None:
    emu = private_cluster.emu
    private_cluster.call(lambda: setattr(emu, "event_log_size", 3))
    first = private_cluster.create(("", "configmaps"), "default", {"metadata": {"name": "c0"}})
    for i in range(1, 6):
        private_cluster.create(("", "configmaps"), "default", {"metadata": {"name": f"c{i}"}})
    url = f"{private_cluster.url}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion="
    with urllib.request.urlopen(url + first["metadata"]["resourceVersion"], timeout=10) as response:  # noqa: S310
        event = json.loads(response.readline())
    assert event["type"] == "ERROR"
    assert event["object"]["code"] == 410


def test_finalizers_hold_deletion_until_removed(custom: Any, kube_namespace: str) -> None:
    body = analysis("fin")
    body["metadata"]["finalizers"] = ["test.dev/hold"]
    custom.create_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, body)
    custom.delete_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "fin")
    held = custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "fin")
    assert held["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, kube_namespace, PLURAL, "fin", {"metadata": {"finalizers": None}}
    )
    with pytest.raises(ApiException) as exc:
        custom.get_namespaced_custom_object(GROUP, VERSION, kube_namespace, PLURAL, "fin")
    assert exc.value.status == 404


def test_owner_references_cascade_and_orphan(core: Any, kube_namespace: str) -> None:
    def owned(name: str, owner: Any) -> None:
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": owner.metadata.name, "uid": owner.metadata.uid}
        core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": name, "ownerReferences": [ref]}})

    owner = core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "owner"}})
    owned("child", owner)
    core.delete_namespaced_config_map("owner", kube_namespace)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("child", kube_namespace)
    assert exc.value.status == 404
    owner2 = core.create_namespaced_config_map(kube_namespace, {"metadata": {"name": "owner2"}})
    owned("orphan", owner2)
    core.delete_namespaced_config_map("owner2", kube_namespace, propagation_policy="Orphan")
    orphan = core.read_namespaced_config_map("orphan", kube_namespace)
    assert not orphan.metadata.owner_references


def test_namespaces_scope_objects_and_cascade(core: Any, new_namespace: Any) -> None:
    ns = new_namespace()
    assert ns in {n.metadata.name for n in core.list_namespace().items}
    core.create_namespaced_config_map(ns, {"metadata": {"name": "inside"}})
    with pytest.raises(ApiException) as exc:
        core.create_namespaced_config_map("no-such-namespace", {"metadata": {"name": "x"}})
    assert exc.value.status == 404
    core.delete_namespace(ns)
    with pytest.raises(ApiException) as exc:
        core.read_namespaced_config_map("inside", ns)
    assert exc.value.status == 404
    with pytest.raises(ApiException) as exc:
        core.read_namespace(ns)
    assert exc.value.status == 404


def test_events_and_leases(core: Any, kube_client: Any, kube_namespace: str) -> None:
    for name, target in (("e1", "ma-1"), ("e2", "ma-2")):
        core.create_namespaced_event(
            kube_namespace,
            {
                "metadata": {"name": name},
                "involvedObject": {"kind": "MistakeAnalysis", "name": target, "namespace": kube_namespace},
                "reason": "Queued",
                "message": "queued",
                "type": "Normal",
            },
        )
    found = core.list_namespaced_event(kube_namespace, field_selector="involvedObject.name=ma-2")
    assert [e.metadata.name for e in found.items] == ["e2"]
    leases = client.CoordinationV1Api(kube_client)
    lease = leases.create_namespaced_lease(
        kube_namespace, {"metadata": {"name": "leader"}, "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15}}
    )
    lease.spec.holder_identity = "b"
    replaced = leases.replace_namespaced_lease("leader", kube_namespace, lease)
    assert replaced.spec.holder_identity == "b"


def test_crd_created_through_the_api_becomes_discoverable(kube_client: Any, kube_namespace: str) -> None:
    ext = client.ApiextensionsV1Api(kube_client)
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.probe.example.dev"},
        "spec": {
            "group": "probe.example.dev",
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"spec": {"type": "object", "properties": {"size": {"type": "integer"}}}},
                        }
                    },
                }
            ],
        },
    }
    ext.create_custom_resource_definition(crd)
    try:
        resources = client.CustomObjectsApi(kube_client).get_api_resources("probe.example.dev", "v1")
        assert [r.name for r in resources.resources] == ["widgets"]
        created = client.CustomObjectsApi(kube_client).create_namespaced_custom_object(
            "probe.example.dev",
            "v1",
            kube_namespace,
            "widgets",
            {"apiVersion": "probe.example.dev/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": {"size": 3}},
        )
        assert created["spec"]["size"] == 3
        established = ext.read_custom_resource_definition("widgets.probe.example.dev")
        assert {c.type for c in established.status.conditions} >= {"Established"}
    finally:
        ext.delete_custom_resource_definition("widgets.probe.example.dev")
    with pytest.raises(ApiException) as exc:
        client.CustomObjectsApi(kube_client).get_api_resources("probe.example.dev", "v1")
    assert exc.value.status == 404


def test_user_reactions_coexist_with_the_api(private_cluster: DevCluster) -> None:
    emu = private_cluster.emu
    private_cluster.call(lambda: emu["get /custom-endpoint"] << {"hello": "world"})
    with urllib.request.urlopen(f"{private_cluster.url}/custom-endpoint", timeout=10) as response:  # noqa: S310
        assert json.loads(response.read()) == {"hello": "world"}
    with urllib.request.urlopen(f"{private_cluster.url}/api/v1/namespaces", timeout=10) as response:  # noqa: S310
        assert json.loads(response.read())["kind"] == "NamespaceList"
