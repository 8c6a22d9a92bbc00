"""Pure functions for HAMi (chart `hami` 2.10.0): its Helm values, and what a pod of a `hami`
profile carries.

No Pulumi here: the Hami component turns these into a release, and tests call them directly.
Everything comes from the profile's `hami` block, the cluster's Kubernetes version and the
same node labels and taint the GPU nodes get (builders/workloads.py).

What the values do, each checked against the chart's templates at v2.10.0
(shared/reference/hami-2.10.0) and HAMi's source at that tag:
- HAMi's device plugin runs only on nodes of hami profiles (devicePlugin.nvidiaNodeSelector,
  the eks-gpu-slicing/device-plugin=hami label) and tolerates the GPU taint (the chart renders
  no toleration of its own); NVIDIA's release and GFD select `helm`, so they never run there.
- The webhook changes only pods that name HAMi's scheduler: with
  scheduler.forceOverwriteDefaultScheduler false it skips a pod whose schedulerName is
  default-scheduler (pkg/scheduler/webhook.go, Handle), which every other pod keeps. With
  the chart's default (true) it would move every pod that requests nvidia.com/gpu, on any
  profile's nodes, to HAMi's scheduler, which places pods only on nodes HAMi registered.
- The extender considers only hami nodes (scheduler.nodeLabelSelector, pkg/scheduler/
  scheduler.go RegisterFromNodeAnnotations).
- Its kube-scheduler is the upstream image at the control plane's minor version.
- Both Services are ClusterIP: the chart's NodePort would open ports 31992, 31993 and 31998
  on every node, and the webhook reaches the scheduler through the Service by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import HamiSettings, SharingProfile

# Service type for both of the chart's Services (scheduler and device-plugin monitor).
CLUSTER_IP = "ClusterIP"


def node_selector() -> dict[str, str]:
    """The nodes HAMi's device plugin runs on: GPU nodes of hami profiles."""
    return {
        facts.GPU_PRESENT_LABEL: facts.GPU_PRESENT_VALUE,
        facts.DEVICE_PLUGIN_SOURCE_LABEL: facts.DEVICE_PLUGIN_FROM_HAMI,
    }


def host_paths(*, bottlerocket: bool) -> dict[str, str]:
    """global.gpuHookPath and the two paths that must follow it (facts.HAMI_HOOK_PATH)."""
    hook = facts.HAMI_HOOK_PATH["bottlerocket" if bottlerocket else "al2023"]
    return {
        "gpuHookPath": hook,
        "libPath": f"{hook}/vgpu",
        "ctrPath": f"{hook}/vgpu/containers",
    }


def helm_values(
    *,
    hami: HamiSettings,
    kubernetes_version: str,
    system_node_selector: Mapping[str, str] | None = None,
    bottlerocket: bool = False,
) -> dict[str, Any]:
    """Values for the hami chart.

    `kubernetes_version`: the control plane's minor version (ClusterHandle's), which the
    kube-scheduler image follows. `system_node_selector`: where cluster-wide controllers run
    (the scheduler Deployment and the certificate hook Jobs); none: any untainted node.
    `bottlerocket`: HAMi's nodes run Bottlerocket, whose /usr/local is read-only.
    """
    gpu_taint = {"key": facts.GPU_TAINT_KEY, "operator": "Exists", "effect": facts.K8S_NO_SCHEDULE}
    values: dict[str, Any] = {
        "scheduler": {
            "kubeScheduler": {
                "image": {
                    "registry": facts.KUBE_SCHEDULER_REGISTRY,
                    "repository": facts.KUBE_SCHEDULER_REPOSITORY,
                    # Always set: left empty, the chart takes Helm's idea of the server
                    # version, which is Helm's default when rendered without a cluster.
                    "tag": facts.kube_scheduler_tag(kubernetes_version),
                }
            },
            "forceOverwriteDefaultScheduler": False,
            "nodeLabelSelector": {facts.DEVICE_PLUGIN_SOURCE_LABEL: facts.DEVICE_PLUGIN_FROM_HAMI},
            "service": {"type": CLUSTER_IP},
        },
        "devicePlugin": {
            "nvidiaNodeSelector": node_selector(),
            "tolerations": [gpu_taint],
            "deviceSplitCount": hami.split_count,
            "deviceMemoryScaling": hami.memory_scaling,
            "service": {"type": CLUSTER_IP},
        },
        "devices": {"nvidia": {"gpuCorePolicy": hami.core_policy}},
    }
    if system_node_selector:
        system = dict(system_node_selector)
        values["scheduler"]["nodeSelector"] = system
        values["scheduler"]["patch"] = {"nodeSelector": dict(system)}
    if bottlerocket:
        paths = host_paths(bottlerocket=True)
        values["global"] = {"gpuHookPath": paths["gpuHookPath"]}
        values["devicePlugin"]["libPath"] = paths["libPath"]
        values["devicePlugin"]["monitor"] = {"ctrPath": paths["ctrPath"]}
    return values


def slice_limits(profile: SharingProfile, instance: facts.GpuInstance) -> dict[str, int]:
    """The extended-resource limits of a container that takes one even slice of a hami
    profile's GPU: one nvidia.com/gpu and the even share of the memory HAMi hands out
    (GPU memory x memoryScaling / splitCount) in nvidia.com/gpumem, MiB. HAMi-core caps the
    container's device memory at exactly that request; a pod may ask for more or less."""
    return {
        facts.GPU_RESOURCE: 1,
        facts.HAMI_MEMORY_RESOURCE: profile.memory_per_device_mib(instance),
    }


def report(profile: SharingProfile, instance: facts.GpuInstance) -> dict[str, Any]:
    """The hami part of a group's sharing report: the installation's values and what memory a
    slice has (`make validate`, the stack output)."""
    assert profile.hami is not None
    return {
        "splitCount": profile.hami.split_count,
        "memoryScaling": profile.hami.memory_scaling,
        "corePolicy": profile.hami.core_policy,
        "schedulerName": facts.HAMI_SCHEDULER_NAME,
        "memoryResource": facts.HAMI_MEMORY_RESOURCE,
        "evenShareMiB": profile.memory_per_device_mib(instance),
        "memoryPerSlice": (
            f"each pod's device memory is capped at what it requests in "
            f"{facts.HAMI_MEMORY_RESOURCE} (MiB); the even share is the GPU's memory x "
            f"memoryScaling / splitCount = {profile.memory_per_device_mib(instance)} MiB"
        ),
    }
