"""`ClusterEmulator`: kmock's `KubernetesEmulator` with the API server semantics our code and kubectl rely on.

kmock supplies the HTTP server (`kmock.Server`), request recording and the reaction DSL (`emu[...] << ...`),
the bundled discovery data of the built-in resources, and the object history store (`emu.objects`).
This layer adds what the stock emulator lacks (see docs/dev-cluster.md): object metadata and resourceVersions,
conflicts, PUT, the status subresource, selectors, watches that resume and time out, CRD registration and
schema validation, finalizers, garbage collection, namespaces and Table output; and it dispatches requests
directly, without kmock's per-request scan of every recorded request, while no reactions are defined.

All state changes happen synchronously on the emulator's event loop, so a watch registered in the same step
as its snapshot can never miss an event.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import copy
import functools
import itertools
import json
import logging
import random
import re
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import jsonpointer
import kmock
import yaml
from kmock._internal import apps

from mistake_testbed.kube import protobuf, tables
from mistake_testbed.kube.schema import StructuralSchema, validation_error_message
from mistake_testbed.kube.util import (
    JSON,
    LABEL_RE,
    NAME_RE,
    ApiError,
    merge_patch,
    not_found,
    parse_field_selector,
    parse_label_selector,
    rfc3339,
)

log = logging.getLogger(__name__)

GroupResource = tuple[str, str]  # (group, plural): one storage per group resource, shared by its versions
ObjKey = tuple[str | None, str]  # (namespace or None, name)

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
DEFAULT_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
SERVER_VERSION: JSON = {
    "major": "1",
    "minor": "35",
    "gitVersion": "v1.35.0-devcluster",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
}
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_CRD = ("apiextensions.k8s.io", "customresourcedefinitions")


@dataclass
class ResourceDef:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    shortnames: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    subresources: set[str] = field(default_factory=set)
    schema: StructuralSchema | None = None
    columns: list[JSON] | None = None
    custom: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gr(self) -> GroupResource:
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


@dataclass
class Event:
    rv: int
    type: str  # ADDED, MODIFIED, DELETED
    obj: JSON
    old: JSON | None


@dataclass(eq=False)  # identity semantics: watchers live in sets
class Watcher:
    gr: GroupResource
    namespace: str | None
    labels: Callable[[Mapping[str, str]], bool]
    fields: Callable[[Mapping[str, Any]], bool]
    queue: asyncio.Queue[tuple[str, JSON] | None] = field(default_factory=asyncio.Queue)

    def matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata") or {}
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        return self.labels(meta.get("labels") or {}) and self.fields(obj)

    def translate(self, event: Event) -> tuple[str, JSON] | None:
        """The event as this watcher sees it: objects entering or leaving its selector appear added or deleted."""
        new_ok = self.matches(event.obj)
        if event.type == "ADDED":
            return ("ADDED", event.obj) if new_ok else None
        if event.type == "DELETED":
            return ("DELETED", event.obj) if new_ok else None
        old_ok = self.matches(event.old)
        if new_ok and old_ok:
            return ("MODIFIED", event.obj)
        if new_ok:
            return ("ADDED", event.obj)
        if old_ok:
            return ("DELETED", event.obj)
        return None

    def offer(self, event: Event) -> None:
        seen = self.translate(event)
        if seen is not None:
            self.queue.put_nowait(seen)


@dataclass
class ParsedPath:
    group: str
    version: str
    plural: str
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_resource_path(path: str) -> ParsedPath | None:
    """`/api/v1/...` or `/apis/G/V/...` into its parts; None for discovery and non-resource paths."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if rest and rest[0] == "watch":  # legacy `/watch/` paths
        rest = rest[1:]
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in {"status", "finalize"}:
        namespace, rest = rest[1], rest[2:]
    if not rest:
        return None
    return ParsedPath(
        group=group,
        version=version,
        plural=rest[0],
        namespace=namespace,
        name=rest[1] if len(rest) > 1 else None,
        subresource="/".join(rest[2:]) or None,
    )


@attrs.define(kw_only=True)
class ClusterEmulator(kmock.KubernetesEmulator):
    """An in-memory Kubernetes API server; serve it with `kmock.Server(emu)` inside `async with emu`."""

    keep_history: bool = True  # kmock's per-object version history (`emu.objects[...].history`) for tests
    event_log_size: int = 20000  # per group resource: how far back a watch can resume by resourceVersion
    max_recorded_requests: int | None = 50000  # bound kmock's request recording in long-running clusters
    pod_log_path: Callable[[str, str], Path | None] | None = None  # (namespace, pod) -> log file for /log

    _defs: dict[tuple[str, str, str], ResourceDef] = attrs.field(factory=dict, init=False)
    _store: dict[GroupResource, dict[ObjKey, JSON]] = attrs.field(
        factory=lambda: collections.defaultdict(dict), init=False
    )
    _log: dict[GroupResource, collections.deque[Event]] = attrs.field(factory=dict, init=False)
    _log_floor: dict[GroupResource, int] = attrs.field(factory=dict, init=False)
    _watchers: dict[GroupResource, set[Watcher]] = attrs.field(factory=lambda: collections.defaultdict(set), init=False)
    _dependents: dict[str, set[tuple[GroupResource, ObjKey]]] = attrs.field(
        factory=lambda: collections.defaultdict(set), init=False
    )
    _rv: itertools.count[int] = attrs.field(factory=lambda: itertools.count(1), init=False)
    _last_rv: int = attrs.field(default=0, init=False)
    _request_ids: itertools.count[int] = attrs.field(factory=itertools.count, init=False)
    _closing: bool = attrs.field(default=False, init=False)
    _cluster_ip: itertools.count[int] = attrs.field(factory=lambda: itertools.count(10), init=False)
    _hooks: list[Callable[[str, ResourceDef, JSON, JSON | None], None]] = attrs.field(factory=list, init=False)
    # Propagation policy of objects waiting for their finalizers, applied when they are finally removed.
    _pending_propagation: dict[tuple[GroupResource, ObjKey], str] = attrs.field(factory=dict, init=False)
    stats: collections.Counter[str] = attrs.field(factory=collections.Counter, init=False)
    # Called with every parsed request before it is answered (tests wait for an operator's first watch).
    request_listeners: list[Callable[[kmock.Request], None]] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        # kmock's own post-init registers per-action fallback reactions; this layer answers those requests
        # itself (see _handle), so no reaction is registered and `_payloads` holds only the user's.
        with warnings.catch_warnings():  # kmock 0.8 reads its bundled data with a deprecated importlib call
            warnings.simplefilter("ignore", DeprecationWarning)
            self.resources.load_bundled()
        for res in list(self.resources):
            if not isinstance(res, kmock.resource):
                continue
            info = self.resources[res]
            if res.group is None or res.version is None or res.plural is None:
                continue
            self._register(
                ResourceDef(
                    group=res.group,
                    version=res.version,
                    plural=res.plural,
                    kind=info.kind or res.plural.capitalize(),
                    namespaced=bool(info.namespaced),
                    singular=info.singular or (info.kind or res.plural).lower(),
                    shortnames=sorted(info.shortnames),
                    categories=sorted(info.categories),
                    subresources=set(info.subresources),
                )
            )
        for ns in DEFAULT_NAMESPACES:
            self.create_object(
                ("", "namespaces"), None, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            )
        self.create_object(
            ("", "serviceaccounts"),
            "default",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
        )

    # --- registry ---------------------------------------------------------------------------------------------

    def _register(self, rdef: ResourceDef) -> None:
        self._defs[rdef.group, rdef.version, rdef.plural] = rdef
        # Keep kmock's discovery view in step, for tests that inspect `emu.resources`.
        self.resources[kmock.resource(rdef.group, rdef.version, rdef.plural)] = kmock.ResourceInfo(
            kind=rdef.kind,
            namespaced=rdef.namespaced,
            singular=rdef.singular,
            shortnames=set(rdef.shortnames),
            categories=set(rdef.categories),
            subresources=rdef.subresources,
            verbs=set(ALL_VERBS),
        )

    def _unregister(self, group: str, version: str, plural: str) -> None:
        self._defs.pop((group, version, plural), None)
        res = kmock.resource(group, version, plural)
        if res in self.resources:
            del self.resources[res]

    def resource_def(self, group: str, version: str, plural: str) -> ResourceDef | None:
        return self._defs.get((group, version, plural))

    def find_def(self, gr: GroupResource) -> ResourceDef:
        """Any served version of a group resource (storage is shared by versions)."""
        for (group, _, plural), rdef in self._defs.items():
            if (group, plural) == gr:
                return rdef
        raise KeyError(gr)

    def register_crd(self, crd: Mapping[str, Any]) -> list[ResourceDef]:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group = spec["group"]
        registered = []
        for version in spec.get("versions") or []:
            if not version.get("served", True):
                continue
            subresources = set((version.get("subresources") or {}).keys())
            schema = (version.get("schema") or {}).get("openAPIV3Schema")
            rdef = ResourceDef(
                group=group,
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                shortnames=list(names.get("shortNames") or []),
                categories=list(names.get("categories") or []),
                subresources=subresources,
                schema=StructuralSchema(schema) if schema else None,
                columns=list(version.get("additionalPrinterColumns") or []) or None,
                custom=True,
            )
            self._register(rdef)
            registered.append(rdef)
        return registered

    def preload(self, paths: Iterable[str | Path]) -> None:
        """Create every object in these YAML files (CRDs first), as `kubectl apply -f` would."""
        docs: list[JSON] = []
        for path in paths:
            p = Path(path)
            files = sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) if p.is_dir() else [p]
            for f in files:
                docs += [d for d in yaml.safe_load_all(f.read_text(encoding="utf-8")) if d]
        docs.sort(key=lambda d: d.get("kind") != "CustomResourceDefinition")
        for doc in docs:
            rdef = self.def_for_kind(doc["apiVersion"], doc["kind"])
            ns = (doc.get("metadata") or {}).get("namespace") or ("default" if rdef.namespaced else None)
            self.create_object(rdef.gr, ns, doc, version=rdef.version)

    def def_for_kind(self, api_version: str, kind: str) -> ResourceDef:
        group, _, version = api_version.rpartition("/")
        for rdef in self._defs.values():
            if (rdef.group, rdef.version, rdef.kind) == (group, version, kind):
                return rdef
        raise KeyError(f"{api_version} {kind}")

    # --- object store: synchronous operations, also used in-process (job controller, tests) ---------------------

    def get_object(self, gr: GroupResource, namespace: str | None, name: str) -> JSON | None:
        obj = self._store[gr].get((namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list_objects(
        self,
        gr: GroupResource,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[JSON]:
        watcher = Watcher(gr, namespace, parse_label_selector(label_selector), parse_field_selector(field_selector))
        objs = [obj for obj in self._store[gr].values() if watcher.matches(obj)]
        objs.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
        return copy.deepcopy(objs)

    @property
    def resource_version(self) -> int:
        return self._last_rv

    def on_change(self, hook: Callable[[str, ResourceDef, JSON, JSON | None], None]) -> None:
        """Call `hook(event_type, rdef, obj, old)` synchronously after every stored change."""
        self._hooks.append(hook)

    def subscribe(self, gr: GroupResource, namespace: str | None = None, label_selector: str | None = None) -> Watcher:
        watcher = Watcher(gr, namespace, parse_label_selector(label_selector), lambda o: True)
        self._watchers[gr].add(watcher)
        return watcher

    def unsubscribe(self, watcher: Watcher) -> None:
        self._watchers[watcher.gr].discard(watcher)

    def _next_rv(self) -> str:
        self._last_rv = next(self._rv)
        return str(self._last_rv)

    def _commit(self, rdef: ResourceDef, key: ObjKey, event_type: str, obj: JSON, old: JSON | None) -> None:
        gr = rdef.gr
        store = self._store[gr]
        if event_type == "DELETED":
            store.pop(key, None)
        else:
            store[key] = obj
        self._index_owners(gr, key, old if event_type != "ADDED" else None, obj if event_type != "DELETED" else None)
        self._mirror(rdef, key, event_type, obj)
        event = Event(int(obj["metadata"]["resourceVersion"]), event_type, obj, old)
        log_ = self._log.get(gr)
        if log_ is None:
            log_ = self._log[gr] = collections.deque(maxlen=self.event_log_size)
        if len(log_) == log_.maxlen:
            self._log_floor[gr] = log_[0].rv
        log_.append(event)
        for watcher in list(self._watchers.get(gr, ())):
            watcher.offer(event)
        self.stats[event_type] += 1
        for hook in self._hooks:
            try:
                hook(event_type, rdef, obj, old)
            except Exception:  # a broken hook must not break the API server
                log.exception("change hook failed")

    def _mirror(self, rdef: ResourceDef, key: ObjKey, event_type: str, obj: JSON) -> None:
        """Keep kmock's `objects` view (with history) in step, so kmock assertions keep working."""
        mkey = (kmock.resource(rdef.group, rdef.version, rdef.plural), key[0], key[1])
        existing = self._objects._objects.get(mkey)
        if event_type == "DELETED":
            if existing is not None:
                existing.delete()
        elif existing is None:
            self._objects[mkey] = obj
        elif self.keep_history:
            existing.history.append(obj)
        else:
            existing.history[:] = [obj]

    def _index_owners(self, gr: GroupResource, key: ObjKey, old: JSON | None, new: JSON | None) -> None:
        def uids(o: JSON | None) -> set[str]:
            refs = ((o or {}).get("metadata") or {}).get("ownerReferences") or []
            return {str(r.get("uid")) for r in refs if r.get("uid")}

        for uid in uids(old) - uids(new):
            self._dependents[uid].discard((gr, key))
        for uid in uids(new):
            self._dependents[uid].add((gr, key))

    def _key(self, rdef: ResourceDef, namespace: str | None, name: str) -> ObjKey:
        return (namespace if rdef.namespaced else None, name)

    def _require_namespace(self, rdef: ResourceDef, namespace: str | None, creating: bool) -> None:
        if not rdef.namespaced:
            return
        if not namespace:
            raise ApiError(400, "BadRequest", "the namespace of the provided object is missing")
        ns = self._store[("", "namespaces")].get((None, namespace))
        if ns is None:
            raise ApiError(
                404,
                "NotFound",
                f'namespaces "{namespace}" not found',
                {"name": namespace, "kind": "namespaces"},
            )
        if creating and ns["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                "Forbidden",
                f"unable to create new content in namespace {namespace} because it is being terminated",
            )

    def create_object(
        self,
        gr: GroupResource,
        namespace: str | None,
        body: Mapping[str, Any],
        *,
        version: str | None = None,
        dry_run: bool = False,
        field_validation: str | None = None,
        warnings: list[str] | None = None,
    ) -> JSON:
        rdef = self._defs.get((gr[0], version, gr[1])) if version else self.find_def(gr)
        assert rdef is not None
        obj: JSON = copy.deepcopy(dict(body))
        meta: JSON = obj.setdefault("metadata", {}) or {}
        obj["metadata"] = meta
        obj["apiVersion"] = rdef.api_version
        obj["kind"] = rdef.kind
        body_ns = meta.get("namespace")
        if rdef.namespaced:
            if namespace and body_ns and body_ns != namespace:
                raise ApiError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            namespace = namespace or body_ns
            self._require_namespace(rdef, namespace, creating=True)
            meta["namespace"] = namespace
        else:
            namespace = None
            meta.pop("namespace", None)
        if not meta.get("name"):
            if meta.get("generateName"):
                suffix = "".join(random.choices(_SUFFIX_ALPHABET, k=5))
                meta["name"] = f"{meta['generateName']}{suffix}"
            else:
                raise self._invalid(rdef, "", [("metadata.name", "name or generateName is required", None)])
        name = str(meta["name"])
        pattern = LABEL_RE if gr == ("", "namespaces") else NAME_RE
        if len(name) > 253 or not pattern.match(name):
            msg = (
                f'metadata.name: Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            )
            raise self._invalid(rdef, name, [("metadata.name", msg, name)])
        key = self._key(rdef, namespace, name)
        if key in self._store[gr]:
            what = f"{rdef.plural}.{rdef.group}" if rdef.group else rdef.plural
            raise ApiError(
                409,
                "AlreadyExists",
                f'{what} "{name}" already exists',
                {"name": name, "group": rdef.group, "kind": rdef.plural},
            )
        for dropped in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion", "uid"):
            meta.pop(dropped, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339()
        meta["generation"] = 1
        if rdef.has_status and gr != _CRD:
            obj.pop("status", None)
        self._defaults_on_create(rdef, obj)
        obj = self._admit(rdef, obj, field_validation, warnings)
        if dry_run:
            return obj
        meta = obj["metadata"]
        meta["resourceVersion"] = self._next_rv()
        if gr == _CRD:
            self._crd_created(obj)
        self._commit(rdef, key, "ADDED", obj, None)
        return copy.deepcopy(obj)

    def _defaults_on_create(self, rdef: ResourceDef, obj: JSON) -> None:
        meta = obj["metadata"]
        spec = obj.setdefault("spec", {}) if rdef.gr in {("batch", "jobs"), ("", "pods")} else obj.get("spec")
        if rdef.gr == ("", "namespaces"):
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj["status"] = {"phase": "Active"}
        elif rdef.gr == ("", "pods"):
            assert isinstance(spec, dict)
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("serviceAccountName", "default")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif rdef.gr == ("batch", "jobs"):
            assert isinstance(spec, dict)
            if spec.get("completions") is None and spec.get("parallelism") is None:
                spec["completions"] = 1
            spec.setdefault("parallelism", 1)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
            uid = meta["uid"]
            job_labels = {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": meta["name"],
                "controller-uid": uid,
                "job-name": meta["name"],
            }
            template = spec.setdefault("template", {})
            tmeta = template.setdefault("metadata", {})
            tmeta["labels"] = {**(tmeta.get("labels") or {}), **job_labels}
            if not spec.get("manualSelector"):
                spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
            if not meta.get("labels"):
                meta["labels"] = dict(tmeta["labels"])
            obj["status"] = {}
        elif rdef.gr == ("", "secrets"):
            string_data = obj.pop("stringData", None) or {}
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()
            obj.setdefault("type", "Opaque")
        elif rdef.gr == ("", "services") and isinstance(spec, dict):
            spec.setdefault("type", "ClusterIP")
            if spec.get("clusterIP") != "None":
                n = next(self._cluster_ip)
                spec.setdefault("clusterIP", f"10.96.{n // 250}.{n % 250 + 1}")

    def _admit(self, rdef: ResourceDef, obj: JSON, field_validation: str | None, warnings: list[str] | None) -> JSON:
        """Default, prune and validate a custom object against its CRD schema."""
        if rdef.schema is None:
            return obj
        obj = rdef.schema.default(obj)
        pruned, dropped = rdef.schema.prune(obj)
        name = str(obj["metadata"].get("name", ""))
        if dropped and field_validation == "Strict":
            fields = ", ".join(f'unknown field "{d}"' for d in dropped)
            raise ApiError(
                400,
                "BadRequest",
                f'{rdef.kind} in version "{rdef.version}" cannot be handled as a {rdef.kind}: '
                f"strict decoding error: {fields}",
            )
        if dropped and field_validation != "Ignore" and warnings is not None:
            warnings.extend(f'unknown field "{d}"' for d in dropped)
        errors = rdef.schema.errors(pruned)
        if errors:
            raise self._invalid(rdef, name, errors)
        return pruned

    def _invalid(self, rdef: ResourceDef, name: str, errors: list[tuple[str, str, Any]]) -> ApiError:
        return ApiError(
            422,
            "Invalid",
            validation_error_message(rdef.kind, rdef.group, name, errors),
            {
                "name": name,
                "group": rdef.group,
                "kind": rdef.kind,
                "causes": [
                    {"reason": "FieldValueInvalid", "message": message, "field": field_}
                    for field_, message, _ in errors
                ],
            },
        )

    def _conflict(self, rdef: ResourceDef, name: str) -> ApiError:
        what = f"{rdef.plural}.{rdef.group}" if rdef.group else rdef.plural
        return ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            {"name": name, "group": rdef.group, "kind": rdef.plural},
        )

    def update_object(
        self,
        rdef: ResourceDef,
        namespace: str | None,
        name: str,
        mutate: Callable[[JSON], JSON],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_validation: str | None = None,
        warnings: list[str] | None = None,
    ) -> JSON:
        """Replace an object with `mutate(current)`, applying the API server's rules to the result."""
        key = self._key(rdef, namespace, name)
        old = self._store[rdef.gr].get(key)
        if old is None:
            raise not_found(rdef.plural, rdef.group, name)
        proposed = mutate(copy.deepcopy(old))
        if not isinstance(proposed, dict):
            raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
        sent_rv = (proposed.get("metadata") or {}).get("resourceVersion")
        if sent_rv not in (None, "") and str(sent_rv) != old["metadata"]["resourceVersion"]:
            raise self._conflict(rdef, name)
        new: JSON
        if subresource in {"status", "finalize"} and rdef.has_status:
            new = copy.deepcopy(old)
            if "status" in proposed:
                new["status"] = proposed["status"]
            else:
                new.pop("status", None)
        else:
            new = proposed
            new["apiVersion"], new["kind"] = rdef.api_version, rdef.kind
            if rdef.has_status and rdef.gr != _CRD:
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            meta = new.setdefault("metadata", {}) or {}
            new["metadata"] = meta
            old_meta = old["metadata"]
            for fixed in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation"):
                if fixed in old_meta:
                    meta[fixed] = old_meta[fixed]
                else:
                    meta.pop(fixed, None)
            if old_meta.get("deletionTimestamp"):
                # Finalizers may only be removed from an object being deleted.
                old_fins = list(old_meta.get("finalizers") or [])
                new_fins = [f for f in meta.get("finalizers") or [] if f in old_fins]
                if new_fins:
                    meta["finalizers"] = new_fins
                else:
                    meta.pop("finalizers", None)
            if rdef.gr == ("", "secrets"):
                self._defaults_on_create(rdef, new)
            new = self._admit(rdef, new, field_validation, warnings)
            if rdef.schema is not None:
                transition = rdef.schema.transition_errors(old, new)
                if transition:
                    raise self._invalid(rdef, name, transition)
            meta = new["metadata"]
            body_old = {k: v for k, v in old.items() if k not in {"metadata", "status"}}
            body_new = {k: v for k, v in new.items() if k not in {"metadata", "status"}}
            if body_old != body_new:
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return copy.deepcopy(old)  # no-op writes neither bump the resourceVersion nor notify watchers
        if dry_run:
            return new
        new["metadata"]["resourceVersion"] = self._next_rv()
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._commit(rdef, key, "MODIFIED", new, old)
            self._remove(rdef, key, "Background")
            return copy.deepcopy(new)
        if rdef.gr == _CRD:
            self._crd_created(new)
        self._commit(rdef, key, "MODIFIED", new, old)
        return copy.deepcopy(new)

    def patch_status(self, gr: GroupResource, namespace: str | None, name: str, status: JSON) -> JSON:
        """Merge-patch an object's status (in-process controllers use this)."""
        rdef = self.find_def(gr)
        return self.update_object(
            rdef,
            namespace,
            name,
            lambda cur: merge_patch(cur, {"status": status}),
            subresource="status" if rdef.has_status else None,
        )

    def delete_object(
        self,
        gr: GroupResource,
        namespace: str | None,
        name: str,
        *,
        propagation: str | None = None,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> JSON:
        rdef = self.find_def(gr)
        key = self._key(rdef, namespace, name)
        obj = self._store[gr].get(key)
        if obj is None:
            raise not_found(rdef.plural, rdef.group, name)
        pre = preconditions or {}
        if pre.get("uid") and pre["uid"] != obj["metadata"]["uid"]:
            raise self._conflict(rdef, name)
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != obj["metadata"]["resourceVersion"]:
            raise self._conflict(rdef, name)
        if dry_run:
            return copy.deepcopy(obj)
        if propagation is None:
            # batch/v1 Jobs deleted through the API orphan their pods unless told otherwise (kubectl says Background).
            propagation = "Orphan" if gr == ("batch", "jobs") else "Background"
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return copy.deepcopy(obj)
        if gr == ("", "namespaces"):
            # A namespace terminates: its content is deleted first, then the namespace itself goes.
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = rfc3339()
            new["metadata"]["resourceVersion"] = self._next_rv()
            new["status"] = {"phase": "Terminating"}
            self._commit(rdef, key, "MODIFIED", new, obj)
            self._empty_namespace(name)
            self._maybe_finish_namespace(name)
            return self.get_object(gr, None, name) or new
        if meta.get("finalizers"):
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = rfc3339()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            new["metadata"]["resourceVersion"] = self._next_rv()
            self._commit(rdef, key, "MODIFIED", new, obj)
            self._pending_propagation[(gr, key)] = propagation
            return copy.deepcopy(new)
        return self._remove(rdef, key, propagation)

    def _remove(self, rdef: ResourceDef, key: ObjKey, propagation: str | None) -> JSON:
        """Physically delete an object, then collect its dependents (and a namespace's content)."""
        gr = rdef.gr
        obj = self._store[gr].get(key)
        if obj is None:
            return {}
        propagation = self._pending_propagation.pop((gr, key), propagation) or "Background"
        final = copy.deepcopy(obj)
        final["metadata"]["resourceVersion"] = self._next_rv()
        self._commit(rdef, key, "DELETED", final, obj)
        uid = obj["metadata"]["uid"]
        for dep_gr, dep_key in list(self._dependents.pop(uid, set())):
            dep = self._store[dep_gr].get(dep_key)
            if dep is None:
                continue
            dep_def = self.find_def(dep_gr)
            if propagation == "Orphan":
                self.update_object(
                    dep_def,
                    dep_key[0],
                    dep_key[1],
                    functools.partial(_drop_owner, uid=uid),
                )
            else:
                self._try_delete(dep_gr, dep_key, "Background")
        if key[0] is not None:
            self._maybe_finish_namespace(key[0])
        if gr == _CRD:
            self._crd_deleted(obj)
        return final

    def _try_delete(self, gr: GroupResource, key: ObjKey, propagation: str) -> None:
        with contextlib.suppress(ApiError):  # already gone or being deleted: nothing to collect
            self.delete_object(gr, key[0], key[1], propagation=propagation)

    def _empty_namespace(self, namespace: str) -> None:
        for gr, objs in list(self._store.items()):
            for key in [k for k in objs if k[0] == namespace]:
                self._try_delete(gr, key, "Background")

    def _maybe_finish_namespace(self, namespace: str) -> None:
        ns = self._store[("", "namespaces")].get((None, namespace))
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if any(k[0] == namespace for objs in self._store.values() for k in objs):
            return
        self._remove(self.find_def(("", "namespaces")), (None, namespace), "Background")

    def _crd_created(self, crd: JSON) -> None:
        self.register_crd(crd)
        names = (crd.get("spec") or {}).get("names") or {}
        stamp = rfc3339()
        crd["status"] = {
            "acceptedNames": names,
            "storedVersions": [v["name"] for v in crd["spec"].get("versions") or [] if v.get("storage")],
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": m,
                    "lastTransitionTime": stamp,
                }
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }

    def _crd_deleted(self, crd: JSON) -> None:
        spec = crd.get("spec") or {}
        gr = (spec["group"], spec["names"]["plural"])
        for key in list(self._store[gr]):
            rdef = self.find_def(gr)
            self._commit(rdef, key, "DELETED", self._store[gr][key], self._store[gr][key])
        for version in spec.get("versions") or []:
            self._unregister(spec["group"], version["name"], spec["names"]["plural"])

    # --- HTTP ----------------------------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        body = await raw_request.read()
        try:
            request = self._parse_request(raw_request, body)
            self._requests.append(request)
            for listener in list(self.request_listeners):
                listener(request)
            if self.max_recorded_requests and len(self._requests) > 2 * self.max_recorded_requests:
                del self._requests[: len(self._requests) - self.max_recorded_requests]
            return await self._handle(request)
        except ApiError as exc:
            return _json(exc.status(), exc.code)
        except Exception as exc:
            log.error("emulator error on %s %s\n%s", raw_request.method, raw_request.path, traceback.format_exc())
            return _json(ApiError(500, "InternalError", repr(exc)).status(), 500)

    def _parse_request(self, raw: aiohttp.web.BaseRequest, body: bytes) -> kmock.Request:
        text = body.decode("utf-8", errors="replace")
        content_type = raw.headers.get("Content-Type", "")
        data: Any = None
        if body:
            try:
                if "protobuf" in content_type:
                    data = protobuf.decode(body)
                else:
                    data = yaml.safe_load(text) if "yaml" in content_type else json.loads(text)
            except protobuf.UnsupportedProtobufError as exc:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f"the body of the request was in an unknown format - accepted media types include: "
                    f"application/json, application/yaml ({exc})",
                ) from exc
            except (ValueError, yaml.YAMLError) as exc:
                raise ApiError(400, "BadRequest", f"unable to decode the request body: {exc}") from exc
        parsed = parse_resource_path(raw.path)
        action: kmock.action | None = None
        if parsed is not None:
            method = raw.method.upper()
            if method == "GET":
                watching = raw.query.get("watch") in {"true", "1"} or "/watch/" in raw.path
                action = kmock.action.WATCH if watching else (kmock.action.FETCH if parsed.name else kmock.action.LIST)
            elif method == "POST":
                action = kmock.action.CREATE
            elif method in {"PATCH", "PUT"} and parsed.name:
                action = kmock.action.UPDATE
            elif method == "DELETE":
                action = kmock.action.DELETE
        return kmock.Request(
            id=next(self._request_ids),
            raw_request=raw,
            url=raw.url,
            method=raw.method,
            params=dict(raw.query),
            headers=dict(raw.headers),
            body=body,
            text=text,
            data=data,
            action=action,
            resource=kmock.resource(parsed.group, parsed.version, parsed.plural) if parsed else None,
            namespace=parsed.namespace if parsed else None,
            name=parsed.name if parsed else None,
            subresource=parsed.subresource if parsed else None,
        )

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if self._payloads:
            # The user defined reactions: let kmock's DSL try them (its cost grows with recorded requests),
            # and answer as an API server when none of them matches.
            try:
                return await apps.RawHandler._handle(self, request)
            except NotImplementedError:
                pass
        self.stats["requests"] += 1
        return await self._dispatch(request)

    async def _dispatch(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        path = raw.path.rstrip("/") or "/"
        method = raw.method.upper()
        if method == "GET":
            static = self._api_static(path, raw)
            if static is not None:
                return static
        parsed = parse_resource_path(path)
        if parsed is None:
            if method == "GET":
                discovery = self._api_discovery(path)
                if discovery is not None:
                    return _json(discovery)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rdef = self._defs.get((parsed.group, parsed.version, parsed.plural))
        if rdef is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if not rdef.namespaced and parsed.namespace is not None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        query = raw.query
        dry_run = query.get("dryRun") == "All"
        warnings: list[str] = []
        fv = query.get("fieldValidation")
        if parsed.subresource == "log" and method == "GET" and rdef.gr == ("", "pods"):
            return self._api_pod_log(parsed)
        if parsed.subresource not in {None, "status", "finalize"} or (
            parsed.subresource is not None and parsed.subresource not in rdef.subresources
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if method == "GET" and request.action == kmock.action.WATCH:
            return await self._api_watch(request, rdef, parsed)
        if method == "GET" and parsed.name is None:
            return self._api_list(raw, rdef, parsed)
        if method == "GET":
            assert parsed.name is not None
            obj = self._store[rdef.gr].get(self._key(rdef, parsed.namespace, parsed.name))
            if obj is None:
                raise not_found(rdef.plural, rdef.group, parsed.name)
            return self._respond_object(raw, rdef, obj)
        if method == "POST" and parsed.name is None:
            if not isinstance(request.data, dict):
                raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")
            obj = self.create_object(
                rdef.gr,
                parsed.namespace,
                request.data,
                version=rdef.version,
                dry_run=dry_run,
                field_validation=fv,
                warnings=warnings,
            )
            return self._respond_object(raw, rdef, obj, 201, warnings)
        if method == "DELETE" and parsed.name is None:
            return self._api_delete_collection(raw, request, rdef, parsed)
        if method == "DELETE":
            assert parsed.name is not None
            opts = request.data if isinstance(request.data, dict) else {}
            propagation = opts.get("propagationPolicy") or query.get("propagationPolicy")
            if propagation is None and opts.get("orphanDependents") is not None:
                propagation = "Orphan" if opts["orphanDependents"] else "Background"
            obj = self.delete_object(
                rdef.gr,
                parsed.namespace,
                parsed.name,
                propagation=propagation,
                preconditions=opts.get("preconditions"),
                dry_run=dry_run,
            )
            return self._respond_object(raw, rdef, obj)
        if method in {"PUT", "PATCH"} and parsed.name is not None:
            return self._api_write(raw, request, rdef, parsed, dry_run, fv, warnings)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource")

    def _api_write(
        self,
        raw: aiohttp.web.BaseRequest,
        request: kmock.Request,
        rdef: ResourceDef,
        parsed: ParsedPath,
        dry_run: bool,
        fv: str | None,
        warnings: list[str],
    ) -> aiohttp.web.StreamResponse:
        assert parsed.name is not None
        data = request.data
        ctype = raw.headers.get("Content-Type", "application/json").split(";")[0].strip()
        mutate: Callable[[JSON], JSON]
        if raw.method.upper() == "PUT":
            if not isinstance(data, dict):
                raise ApiError(400, "BadRequest", "the body of the request must be a JSON object")

            def mutate(cur: JSON) -> JSON:
                return copy.deepcopy(data)

        elif ctype == "application/json-patch+json":
            if not isinstance(data, list):
                raise ApiError(400, "BadRequest", "a JSON patch must be a list of operations")

            def mutate(cur: JSON) -> JSON:
                try:
                    result: JSON = jsonpatch.apply_patch(cur, data)
                except jsonpatch.JsonPatchTestFailed as exc:
                    raise ApiError(
                        422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
                    ) from exc
                except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
                    raise ApiError(
                        422, "Invalid", f"the server rejected our request due to an error in our request: {exc}"
                    ) from exc
                if rdef.has_status and parsed.subresource is None:
                    # A JSON patch cannot carry a stale resourceVersion the way a merge patch does.
                    result.setdefault("metadata", {}).pop("resourceVersion", None)
                return result

        elif ctype in {"application/merge-patch+json", "application/strategic-merge-patch+json"}:
            if not isinstance(data, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            strategic = ctype.startswith("application/strategic")

            def mutate(cur: JSON) -> JSON:
                patched: JSON = strategic_merge(cur, data) if strategic else merge_patch(cur, data)
                return patched

        elif ctype == "application/apply-patch+yaml":
            if not isinstance(data, dict):
                raise ApiError(400, "BadRequest", "an apply patch must be an object")
            key = self._key(rdef, parsed.namespace, parsed.name)
            if key not in self._store[rdef.gr] and parsed.subresource is None:
                body = copy.deepcopy(data)
                body.setdefault("metadata", {})["name"] = parsed.name
                obj = self.create_object(
                    rdef.gr,
                    parsed.namespace,
                    body,
                    version=rdef.version,
                    dry_run=dry_run,
                    field_validation=fv,
                    warnings=warnings,
                )
                return self._respond_object(raw, rdef, obj, 201, warnings)

            def mutate(cur: JSON) -> JSON:
                applied = copy.deepcopy(data)
                applied.get("metadata", {}).pop("resourceVersion", None)
                result: JSON = strategic_merge(cur, applied)
                return result

        else:
            raise ApiError(415, "UnsupportedMediaType", f"the body of the request was in an unknown format: {ctype}")
        obj = self.update_object(
            rdef,
            parsed.namespace,
            parsed.name,
            mutate,
            subresource=parsed.subresource,
            dry_run=dry_run,
            field_validation=fv,
            warnings=warnings,
        )
        return self._respond_object(raw, rdef, obj, 200, warnings)

    def _api_delete_collection(
        self, raw: aiohttp.web.BaseRequest, request: kmock.Request, rdef: ResourceDef, parsed: ParsedPath
    ) -> aiohttp.web.StreamResponse:
        objs = self.list_objects(
            rdef.gr, parsed.namespace, raw.query.get("labelSelector"), raw.query.get("fieldSelector")
        )
        opts = request.data if isinstance(request.data, dict) else {}
        propagation = opts.get("propagationPolicy") or raw.query.get("propagationPolicy")
        deleted = []
        for obj in objs:
            meta = obj["metadata"]
            try:
                deleted.append(
                    self.delete_object(rdef.gr, meta.get("namespace"), meta["name"], propagation=propagation)
                )
            except ApiError:
                continue
        return _json(self._list_body(rdef, deleted))

    def _list_body(self, rdef: ResourceDef, items: list[JSON]) -> JSON:
        return {
            "apiVersion": rdef.api_version,
            "kind": f"{rdef.kind}List",
            "metadata": {"resourceVersion": str(self._last_rv)},
            "items": [self._as_version(rdef, o) for o in items],
        }

    def _as_version(self, rdef: ResourceDef, obj: JSON) -> JSON:
        if obj.get("apiVersion") == rdef.api_version:
            return obj
        return {**obj, "apiVersion": rdef.api_version}

    def _respond_object(
        self,
        raw: aiohttp.web.BaseRequest,
        rdef: ResourceDef,
        obj: JSON,
        status: int = 200,
        warnings: list[str] | None = None,
    ) -> aiohttp.web.StreamResponse:
        headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None
        obj = self._as_version(rdef, obj)
        if tables.wants_table(raw.headers.get("Accept", "")):
            table = tables.render_table(
                rdef.group,
                rdef.plural,
                rdef.columns,
                [obj],
                obj["metadata"].get("resourceVersion", ""),
                raw.query.get("includeObject", "Metadata"),
            )
            return _json(table, status, headers)
        return _json(obj, status, headers)

    def _api_list(
        self, raw: aiohttp.web.BaseRequest, rdef: ResourceDef, parsed: ParsedPath
    ) -> aiohttp.web.StreamResponse:
        items = self.list_objects(
            rdef.gr, parsed.namespace, raw.query.get("labelSelector"), raw.query.get("fieldSelector")
        )
        if tables.wants_table(raw.headers.get("Accept", "")):
            table = tables.render_table(
                rdef.group,
                rdef.plural,
                rdef.columns,
                [self._as_version(rdef, o) for o in items],
                str(self._last_rv),
                raw.query.get("includeObject", "Metadata"),
            )
            return _json(table)
        return _json(self._list_body(rdef, items))

    async def _api_watch(
        self, request: kmock.Request, rdef: ResourceDef, parsed: ParsedPath
    ) -> aiohttp.web.StreamResponse:
        raw = request._raw_request
        assert raw is not None
        query = raw.query
        name_selector = f"metadata.name={parsed.name}" if parsed.name else None
        field_sel = ",".join(s for s in (query.get("fieldSelector"), name_selector) if s)
        watcher = Watcher(
            rdef.gr,
            parsed.namespace,
            parse_label_selector(query.get("labelSelector")),
            parse_field_selector(field_sel),
        )
        initial: list[tuple[str, JSON]] = []
        expired = False
        since = query.get("resourceVersion") or ""
        # Snapshot and registration happen in one synchronous step: nothing can be missed or doubled.
        initial_events = query.get("sendInitialEvents") == "true"
        if since in {"", "0"} or initial_events:
            objs = sorted(self._store[rdef.gr].values(), key=lambda o: int(o["metadata"]["resourceVersion"]))
            initial = [("ADDED", o) for o in objs if watcher.matches(o)]
        else:
            try:
                since_rv = int(since)
            except ValueError as exc:
                raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}") from exc
            if since_rv < self._log_floor.get(rdef.gr, 0):
                expired = True
            else:
                for event in self._log.get(rdef.gr, ()):
                    if event.rv > since_rv:
                        seen = watcher.translate(event)
                        if seen is not None:
                            initial.append(seen)
        snapshot_rv = self._last_rv
        if not expired:
            self._watchers[rdef.gr].add(watcher)
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        as_table = tables.wants_table(raw.headers.get("Accept", ""))
        response = aiohttp.web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        self.stats["watches"] += 1
        try:
            await response.prepare(raw)
            if expired:
                gone = ApiError(410, "Expired", f"too old resource version: {since} ({self._log_floor[rdef.gr]})")
                await response.write(json.dumps({"type": "ERROR", "object": gone.status()}).encode() + b"\n")
                await response.write_eof()
                return response
            for event_type, obj in initial:
                await response.write(self._watch_line(rdef, event_type, obj, as_table, raw))
            if initial_events:
                # A streaming list (watch-list) ends its initial snapshot with this bookmark.
                bookmark = {
                    "kind": rdef.kind,
                    "apiVersion": rdef.api_version,
                    "metadata": {
                        "resourceVersion": str(snapshot_rv),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                await response.write(json.dumps({"type": "BOOKMARK", "object": bookmark}).encode() + b"\n")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout if timeout is not None else None
            while not self._closing:
                wait = 1.0 if deadline is None else min(1.0, deadline - loop.time())
                if wait <= 0:
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), timeout=wait)
                except TimeoutError:
                    # Periodic wake-up: notice clients that went away while nothing happened.
                    if raw.transport is None or raw.transport.is_closing():
                        break
                    continue
                if item is None:
                    break
                await response.write(self._watch_line(rdef, item[0], item[1], as_table, raw))
            await response.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._watchers[rdef.gr].discard(watcher)
        return response

    def _watch_line(
        self, rdef: ResourceDef, event_type: str, obj: JSON, as_table: bool, raw: aiohttp.web.BaseRequest
    ) -> bytes:
        out = self._as_version(rdef, obj)
        if as_table:
            out = tables.render_table(
                rdef.group,
                rdef.plural,
                rdef.columns,
                [out],
                out["metadata"].get("resourceVersion", ""),
                raw.query.get("includeObject", "Metadata"),
            )
        return json.dumps({"type": event_type, "object": out}).encode() + b"\n"

    def _api_pod_log(self, parsed: ParsedPath) -> aiohttp.web.StreamResponse:
        assert parsed.name is not None
        assert parsed.namespace is not None
        if self._store[("", "pods")].get((parsed.namespace, parsed.name)) is None:
            raise not_found("pods", "", parsed.name)
        path = self.pod_log_path(parsed.namespace, parsed.name) if self.pod_log_path else None
        text = path.read_bytes() if path is not None and path.exists() else b""
        return aiohttp.web.Response(body=text, content_type="text/plain")

    def _api_static(self, path: str, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse | None:
        if path in {"/healthz", "/readyz", "/livez"}:
            return aiohttp.web.Response(text="ok")
        if path == "/version":
            return _json(SERVER_VERSION)
        if path == "/openapi/v3":
            return _json({"paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}"} for p in self._group_versions()}})
        if path.startswith("/openapi/v3/"):
            return self._api_openapi(path.removeprefix("/openapi/v3/"))
        return None

    def _group_versions(self) -> list[str]:
        gvs = {f"apis/{d.group}/{d.version}" if d.group else f"api/{d.version}" for d in self._defs.values()}
        return sorted(gvs)

    def _api_openapi(self, gv: str) -> aiohttp.web.StreamResponse:
        """A minimal OpenAPI v3 document: just enough for kubectl to find server-side field validation."""
        if gv not in self._group_versions():
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        parts = gv.split("/")
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        param = {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}}
        paths: JSON = {}
        schemas: JSON = {}
        for d in self._defs.values():
            if (d.group, d.version) != (group, version):
                continue
            base = f"/{gv}/namespaces/{{namespace}}/{d.plural}" if d.namespaced else f"/{gv}/{d.plural}"
            gvk = [{"group": d.group, "version": d.version, "kind": d.kind}]
            for p in (base, f"{base}/{{name}}"):
                paths[p] = {
                    "post" if p == base else "patch": {
                        "parameters": [param],
                        "x-kubernetes-group-version-kind": gvk[0],
                    }
                }
            schema_name = f"{d.group or 'core'}.{d.version}.{d.kind}"
            body: JSON = copy.deepcopy(d.schema.raw) if d.schema is not None else {"type": "object"}
            body["x-kubernetes-group-version-kind"] = gvk
            schemas[schema_name] = body
        return _json(
            {
                "openapi": "3.0.0",
                "info": {"title": "Kubernetes", "version": "v1.35.0"},
                "paths": paths,
                "components": {"schemas": schemas},
            }
        )

    def _api_discovery(self, path: str) -> JSON | None:
        if path == "/":
            return {"paths": ["/api", "/api/v1", "/apis", "/healthz", "/openapi/v3", "/version"]}
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}],
            }
        if path == "/apis":
            groups: dict[str, list[str]] = {}
            for d in self._defs.values():
                if d.group and d.version not in groups.setdefault(d.group, []):
                    groups[d.group].append(d.version)
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [self._group_body(g, vs) for g, vs in sorted(groups.items())],
            }
        parts = [p for p in path.split("/") if p]
        if len(parts) == 2 and parts[0] == "apis":
            versions = [d.version for d in self._defs.values() if d.group == parts[1]]
            if not versions:
                return None
            return {"kind": "APIGroup", "apiVersion": "v1", **self._group_body(parts[1], list(dict.fromkeys(versions)))}
        if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            defs = [d for d in self._defs.values() if (d.group, d.version) == (group, version)]
            if not defs:
                return None
            resources: list[JSON] = []
            for d in sorted(defs, key=lambda d: d.plural):
                entry: JSON = {
                    "name": d.plural,
                    "singularName": d.singular,
                    "namespaced": d.namespaced,
                    "kind": d.kind,
                    "verbs": ALL_VERBS,
                }
                if d.shortnames:
                    entry["shortNames"] = d.shortnames
                if d.categories:
                    entry["categories"] = d.categories
                resources.append(entry)
                for sub in sorted(d.subresources):
                    resources.append(
                        {
                            "name": f"{d.plural}/{sub}",
                            "singularName": "",
                            "namespaced": d.namespaced,
                            "kind": d.kind,
                            "verbs": ["get", "patch", "update"] if sub in {"status", "scale"} else ["get"],
                        }
                    )
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version,
                "resources": resources,
            }
        return None

    @staticmethod
    def _group_body(group: str, versions: list[str]) -> JSON:
        # Prefer the most stable version, the way the API server orders them.
        def rank(v: str) -> tuple[int, int, int]:
            m = re.match(r"v(\d+)(alpha|beta)?(\d+)?", v)
            if not m:
                return (0, 0, 0)
            stability = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
            return (stability, int(m.group(1)), int(m.group(3) or 0))

        ordered = sorted(versions, key=rank, reverse=True)
        gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in ordered]
        return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}

    # --- lifecycle -----------------------------------------------------------------------------------------------

    def close_watches(self) -> None:
        """End every open watch stream (on shutdown), so the HTTP server can stop promptly."""
        self._closing = True
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.queue.put_nowait(None)

    @property
    def watch_count(self) -> int:
        return sum(len(w) for w in self._watchers.values())


def _drop_owner(obj: JSON, uid: str) -> JSON:
    refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
    if refs:
        obj["metadata"]["ownerReferences"] = refs
    else:
        obj["metadata"].pop("ownerReferences", None)
    return obj


_MERGE_KEYS = ("name", "mountPath", "containerPort", "devicePath", "ip", "topologyKey")


def _merge_key(items: list[Any]) -> str | None:
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    for key in _MERGE_KEYS:
        if all(key in i for i in items):
            return key
    return None


def strategic_merge(target: Any, patch: Any) -> Any:
    """Strategic merge patch, approximated: lists of keyed objects (by name, mountPath, ...) merge by key.

    Directives (`$patch`, `$setElementOrder/...`, `$retainKeys`, ...) are honoured as far as deletions go.
    """
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if not str(k).startswith("$")}
    result: JSON = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if str(key).startswith("$"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            merge_key = _merge_key(value)
            if merge_key is not None and _merge_key(result[key]) == merge_key:
                merged = {item[merge_key]: item for item in result[key]}
                order = [item[merge_key] for item in result[key]]
                for item in value:
                    k = item[merge_key]
                    if item.get("$patch") == "delete":
                        merged.pop(k, None)
                        continue
                    if k not in merged:
                        order.append(k)
                    merged[k] = strategic_merge(merged.get(k), item)
                result[key] = [merged[k] for k in order if k in merged]
            else:
                result[key] = [strategic_merge(None, v) if isinstance(v, Mapping) else v for v in value]
        else:
            result[key] = strategic_merge(result.get(key), value)
    return result


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        body=json.dumps(body).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )
