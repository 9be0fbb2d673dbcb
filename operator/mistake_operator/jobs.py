"""The batch Job for a set of analyses: deterministic name, membership inside, restricted pod security."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from mistake_api import batch_name
from mistake_api import constants as c

from .settings import Settings
from .state import AnalysisView

CONTAINER = "worker"


def job_name_for(members: Sequence[AnalysisView]) -> str:
    # attempts + 1: the attempt this Job is about to start
    return batch_name([(m.name, m.attempts + 1) for m in members])


def build_job(namespace: str, name: str, members: Sequence[AnalysisView], settings: Settings) -> dict[str, Any]:
    names = sorted(m.name for m in members)
    member_json = json.dumps(names, separators=(",", ":"))
    tpl = settings.job
    labels = {
        **tpl.extra_labels,
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_PART_OF: c.PART_OF,
        c.LABEL_COMPONENT: c.COMPONENT_JOB,
        c.LABEL_BATCH: name,
    }
    annotations = {c.ANNOTATION_MEMBERS: member_json}
    env: list[dict[str, Any]] = [
        {"name": c.ENV_BATCH_MEMBERS, "value": member_json},
        {"name": c.ENV_JOB_NAME, "value": name},
        {"name": c.ENV_NAMESPACE, "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "MISTAKE_WORKER_CONCURRENCY", "value": str(min(settings.per_pod_concurrency, len(members)))},
        {"name": "TMPDIR", "value": "/tmp"},  # noqa: S108 - an emptyDir: the root filesystem is read-only
    ]
    env += [{"name": k, "value": v} for k, v in sorted(tpl.env.items())]
    env_from: list[dict[str, Any]] = [
        {"secretRef": {"name": src.secret}} if src.secret else {"configMapRef": {"name": src.config_map}}
        for src in tpl.env_from
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": tpl.image,
        "imagePullPolicy": tpl.image_pull_policy,
        "command": list(tpl.command),
        "env": env,
        "resources": tpl.resources,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],  # noqa: S108
    }
    if env_from:
        container["envFrom"] = env_from
    pod_spec: dict[str, Any] = {
        "serviceAccountName": tpl.service_account,
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
    }
    if tpl.node_selector:
        pod_spec["nodeSelector"] = tpl.node_selector
    if tpl.tolerations:
        pod_spec["tolerations"] = tpl.tolerations
    if tpl.priority_class_name:
        pod_spec["priorityClassName"] = tpl.priority_class_name
    if tpl.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": s} for s in tpl.image_pull_secrets]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": labels, "annotations": annotations},
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": tpl.backoff_limit,
            "activeDeadlineSeconds": tpl.active_deadline_seconds,
            "ttlSecondsAfterFinished": tpl.ttl_seconds_after_finished,
            "podFailurePolicy": {
                "rules": [
                    # The worker says a retry of this pod cannot help: fail the Job now, the operator retries
                    # per analysis.
                    {
                        "action": "FailJob",
                        "onExitCodes": {"containerName": CONTAINER, "operator": "In", "values": [c.EXIT_PERMANENT]},
                    },
                    # Evictions and preemptions are not the worker's fault: do not spend backoffLimit on them.
                    {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                ]
            },
            "template": {
                "metadata": {"labels": labels, "annotations": annotations},
                "spec": pod_spec,
            },
        },
    }
