"""An emulated Kubernetes API (kmock plus a layer of API-server semantics), a Job controller that runs pods as
local processes, and helpers to serve them from a thread. See docs/dev-cluster.md."""

from mistake_testbed.kube.emulator import ClusterEmulator, ResourceDef, parse_resource_path, strategic_merge
from mistake_testbed.kube.jobs import JobController, JobControllerOptions
from mistake_testbed.kube.thread import DevCluster, kubeconfig_text
from mistake_testbed.kube.util import ApiError

__all__ = [
    "ApiError",
    "ClusterEmulator",
    "DevCluster",
    "JobController",
    "JobControllerOptions",
    "ResourceDef",
    "kubeconfig_text",
    "parse_resource_path",
    "strategic_merge",
]
