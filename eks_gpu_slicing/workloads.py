"""Pure functions for GPU nodes and the workloads placed on them.

Labels, taints and resource requests all come from the sharing profile, so a node group,
the device plugin and a pod can never disagree on what a node offers.
"""

from __future__ import annotations

from typing import Any

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import GpuNodeGroupSettings, SharingProfile

DEMO_APP_LABEL = "gpu-deployment"


def gpu_node_labels(profile_name: str) -> dict[str, str]:
    """Labels for a GPU node group: how the device plugin finds the node and its config."""
    return {
        facts.GPU_PRESENT_LABEL: facts.GPU_PRESENT_VALUE,
        facts.DEVICE_PLUGIN_CONFIG_LABEL: profile_name,
    }


def gpu_node_taints() -> list[dict[str, str]]:
    """EKS managed node group taints (EKS spells the effect NO_SCHEDULE)."""
    return [
        {
            "key": facts.GPU_TAINT_KEY,
            "value": facts.GPU_TAINT_VALUE,
            "effect": facts.EKS_NO_SCHEDULE,
        }
    ]


def gpu_toleration() -> dict[str, str]:
    """The Kubernetes toleration matching gpu_node_taints()."""
    return {
        "key": facts.GPU_TAINT_KEY,
        "operator": "Equal",
        "value": facts.GPU_TAINT_VALUE,
        "effect": facts.K8S_NO_SCHEDULE,
    }


def gpu_node_selector(profile_name: str) -> dict[str, str]:
    """Node selector for pods that need a virtual GPU of one profile."""
    return gpu_node_labels(profile_name)


def virtual_gpu_capacity(group: GpuNodeGroupSettings, profile: SharingProfile) -> dict[str, Any]:
    """What a GPU node group advertises to the scheduler."""
    per_node = group.instance.gpus * profile.virtual_gpus_per_gpu
    return {
        "instanceType": group.instance_type,
        "profile": group.sharing,
        "strategy": profile.strategy,
        "resourceName": profile.resource_name,
        "gpusPerNode": group.instance.gpus,
        "virtualGpusPerNode": per_node,
        "virtualGpusAtMaxSize": per_node * group.max_size,
    }


def demo_deployment(
    *, replicas: int, image: str, namespace: str, profile_name: str, profile: SharingProfile
) -> dict[str, Any]:
    """The source design's `gpu-deployment`: N pods, each limited to one virtual GPU.

    Returned as {metadata, spec} ready for a Deployment resource.
    """
    labels = {"app": DEMO_APP_LABEL}
    return {
        "metadata": {"name": DEMO_APP_LABEL, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": gpu_node_selector(profile_name),
                    "tolerations": [gpu_toleration()],
                    "containers": [
                        {
                            "name": "cuda",
                            "image": image,
                            # Show which GPU the pod got, then hold the virtual GPU.
                            "command": ["/bin/sh", "-c", "nvidia-smi -L && sleep infinity"],
                            "resources": {"limits": {profile.resource_name: 1}},
                        }
                    ],
                },
            },
        },
    }
