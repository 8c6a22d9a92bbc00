"""Facts about AWS, EKS and NVIDIA software that the rest of the project builds on.

This is the one place for them: settings validation, components, reports, the capacity
planner and the tests all import from here. Each fact says where it comes from; when
upstream changes, change it here and let the tests show what else moves.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# --- Pulumi project -----------------------------------------------------------------------

PROJECT = "eks-gpu-slicing"
CONFIG_NAMESPACE = PROJECT
COMPONENT_PACKAGE = "eks-gpu-slicing"  # first part of our component type tokens

# --- NVIDIA device plugin (github.com/NVIDIA/k8s-device-plugin) ------------------------------

DEVICE_PLUGIN_CHART = "nvidia-device-plugin"
DEVICE_PLUGIN_CHART_REPO = "https://nvidia.github.io/k8s-device-plugin"
# The chart version whose values and config schema this program's output is checked against.
DEVICE_PLUGIN_CHART_VERSION = "0.20.0"
DEVICE_PLUGIN_DEFAULT_NAMESPACE = "kube-system"
DEVICE_PLUGIN_RELEASE_NAME = "nvidia-device-plugin"
# Config file schema version (api/config/v1).
DEVICE_PLUGIN_CONFIG_VERSION = "v1"
# api/config/v1: a replicated resource is rejected with "number of replicas must be >= 2",
# and the plugin then crashes on the node; "no sharing" is expressed by omitting `sharing`.
MIN_SHARING_REPLICAS = 2
# Only full GPUs and MIG devices can be shared; this project shares full GPUs.
GPU_RESOURCE = "nvidia.com/gpu"
# renameByDefault advertises `<name>.shared` instead of `<name>`.
SHARED_RESOURCE_SUFFIX = ".shared"

# Node label the plugin's config-manager sidecar watches to pick a named config entry.
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
# Node label the chart's default affinity accepts when Node Feature Discovery is absent.
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_PRESENT_VALUE = "true"  # a string: Kubernetes label values are never YAML booleans
# Taint that keeps non-GPU pods off GPU nodes (as in terraform-aws-eks's GPU fixture).
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "true"
# EKS's API spells taint effects differently from Kubernetes.
EKS_NO_SCHEDULE = "NO_SCHEDULE"
K8S_NO_SCHEDULE = "NoSchedule"

# Chart values this program sets. The chart 0.20.0 templates read these paths (see
# shared/reference/nvidia-device-plugin-0.20.0/values-paths.txt); a misspelt value is
# ignored by Helm without a word, so tests check every path we emit is in this set.
DEVICE_PLUGIN_VALUE_PATHS = frozenset(
    {
        "config.name",
        "config.default",
        "config.map",
        "config.fallbackStrategies",
        "nodeSelector",
        "affinity",
        "tolerations",
        "podAnnotations",
        "priorityClassName",
        "devicePlugin.enabled",
        "gfd.enabled",
        "mps.root",
        "allowDefaultNamespace",
        "updateStrategy",
        "resources",
    }
)

# Keys the device plugin's config file (api/config/v1) understands. The plugin ignores
# unknown keys silently, so our own checker flags them.
DEVICE_PLUGIN_CONFIG_KEYS = {
    "": frozenset({"version", "flags", "resources", "sharing", "imex"}),
    "flags": frozenset(
        {
            "migStrategy",
            "failOnInitError",
            "restartOnDeviceUnhealthy",
            "nvidiaDriverRoot",
            "gdsEnabled",
            "mofedEnabled",
            "mpsRoot",
            "plugin",
            "gfd",
        }
    ),
    "flags.plugin": frozenset(
        {
            "passDeviceSpecs",
            "deviceListStrategy",
            "deviceIDStrategy",
            "cdiAnnotationPrefix",
            "nvidiaCTKPath",
            "containerDriverRoot",
        }
    ),
    "sharing": frozenset({"timeSlicing", "mps"}),
    "sharing.*": frozenset({"renameByDefault", "failRequestsGreaterThanOne", "resources"}),
    "sharing.*.resources[]": frozenset({"name", "rename", "devices", "replicas"}),
}
MIG_STRATEGIES = frozenset({"none", "single", "mixed"})

# --- EKS -----------------------------------------------------------------------------------


# Amazon EKS Kubernetes release calendar (docs.aws.amazon.com/eks/latest/userguide/
# kubernetes-versions.html), as of November 2026. Versions in extended support cost more per
# cluster hour; versions not listed cannot be created.
@dataclass(frozen=True)
class KubernetesRelease:
    version: str
    support: str  # "standard" | "extended"
    standard_support_ends: dt.date | None = None  # where known


KUBERNETES_RELEASES: dict[str, KubernetesRelease] = {
    r.version: r
    for r in (
        KubernetesRelease("1.31", "extended"),
        KubernetesRelease("1.32", "extended"),
        KubernetesRelease("1.33", "extended"),
        KubernetesRelease("1.34", "standard", dt.date(2026, 12, 2)),
        KubernetesRelease("1.35", "standard", dt.date(2027, 3, 27)),
        KubernetesRelease("1.36", "standard"),
    )
}
DEFAULT_KUBERNETES_VERSION = "1.35"

# AL2023 with the NVIDIA driver and container toolkit baked in; the device plugin is ours to
# install. AL2 GPU AMIs stopped being published on 2025-11-26.
GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA"
CPU_AMI_TYPE = "AL2023_x86_64_STANDARD"
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")

CLUSTER_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")

# Node IAM role: what a managed node needs and nothing more (kubelet/EKS, the VPC CNI, image
# pulls). AmazonEC2ContainerRegistryPullOnly replaces the older ReadOnly policy for nodes.
NODE_ROLE_POLICY_ARNS = (
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
)
CLUSTER_ADMIN_POLICY_ARN = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

# Subnet tags the AWS Load Balancer Controller and in-tree service controller look for.
PUBLIC_SUBNET_TAGS = {"kubernetes.io/role/elb": "1"}
PRIVATE_SUBNET_TAGS = {"kubernetes.io/role/internal-elb": "1"}

# --- GPU instances ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuInstance:
    """One EC2 GPU instance type.

    Source: Karpenter's instance-types reference (aws/karpenter-provider-aws,
    website/content/en/docs/reference/instance-types.md, release v1.14.0): the labels
    instance-gpu-count, instance-gpu-name, instance-gpu-memory (MiB per GPU), instance-cpu,
    instance-memory, and the `pods` capacity (ENI-limited, VPC CNI without prefix delegation).
    Prices: Karpenter's generated on-demand price list for us-east-1 (PRICES_AS_OF).
    """

    name: str
    gpus: int
    gpu_model: str
    gpu_memory_mib: int  # per GPU, as the driver reports it
    vcpus: int
    memory_mib: int
    max_pods: int
    usd_per_hour: float  # on-demand, us-east-1

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def gpu_memory_gib(self) -> float:
        return self.gpu_memory_mib / 1024


PRICES_AS_OF = "2026-07-20"


def _family(gpu_model: str, gpu_memory_mib: int, rows: list[tuple]) -> dict[str, GpuInstance]:
    return {
        name: GpuInstance(name, gpus, gpu_model, gpu_memory_mib, vcpus, gib * 1024, pods, usd)
        for name, gpus, vcpus, gib, pods, usd in rows
    }


# (name, GPUs, vCPUs, memory GiB, max pods, USD/hour)
GPU_INSTANCES: dict[str, GpuInstance] = {
    **_family(
        "T4",
        16384,
        [
            ("g4dn.xlarge", 1, 4, 16, 29, 0.526),
            ("g4dn.2xlarge", 1, 8, 32, 29, 0.752),
            ("g4dn.4xlarge", 1, 16, 64, 29, 1.204),
            ("g4dn.8xlarge", 1, 32, 128, 58, 2.176),
            ("g4dn.12xlarge", 4, 48, 192, 234, 3.912),
            ("g4dn.16xlarge", 1, 64, 256, 58, 4.352),
            ("g4dn.metal", 8, 96, 384, 737, 7.824),
        ],
    ),
    **_family(
        "A10G",
        22888,
        [
            ("g5.xlarge", 1, 4, 16, 58, 1.006),
            ("g5.2xlarge", 1, 8, 32, 58, 1.212),
            ("g5.4xlarge", 1, 16, 64, 234, 1.624),
            ("g5.8xlarge", 1, 32, 128, 234, 2.448),
            ("g5.12xlarge", 4, 48, 192, 737, 5.672),
            ("g5.16xlarge", 1, 64, 256, 234, 4.096),
            ("g5.24xlarge", 4, 96, 384, 737, 8.144),
            ("g5.48xlarge", 8, 192, 768, 345, 16.288),
        ],
    ),
    **_family(
        "L4",
        22888,
        [
            ("g6.xlarge", 1, 4, 16, 58, 0.8048),
            ("g6.2xlarge", 1, 8, 32, 58, 0.9776),
            ("g6.4xlarge", 1, 16, 64, 234, 1.3232),
            ("g6.8xlarge", 1, 32, 128, 234, 2.0144),
            ("g6.12xlarge", 4, 48, 192, 234, 4.6016),
            ("g6.16xlarge", 1, 64, 256, 737, 3.3968),
            ("g6.24xlarge", 4, 96, 384, 737, 6.6752),
            ("g6.48xlarge", 8, 192, 768, 737, 13.3504),
        ],
    ),
    **_family(
        "L40S",
        45776,
        [
            ("g6e.xlarge", 1, 4, 32, 58, 1.861),
            ("g6e.2xlarge", 1, 8, 64, 58, 2.24208),
            ("g6e.4xlarge", 1, 16, 128, 234, 3.00424),
            ("g6e.8xlarge", 1, 32, 256, 234, 4.52856),
            ("g6e.12xlarge", 4, 48, 384, 292, 10.49264),
            ("g6e.16xlarge", 1, 64, 512, 737, 7.57719),
            ("g6e.24xlarge", 4, 96, 768, 492, 15.06559),
            ("g6e.48xlarge", 8, 192, 1536, 492, 30.13118),
        ],
    ),
    **_family("A100", 40960, [("p4d.24xlarge", 8, 96, 1152, 737, 21.957642)]),
    **_family("A100", 81920, [("p4de.24xlarge", 8, 96, 1152, 737, 27.44705)]),
    **_family(
        "H100",
        81920,
        [
            ("p5.4xlarge", 1, 16, 256, 118, 6.88),
            ("p5.48xlarge", 8, 192, 2048, 100, 55.04),
        ],
    ),
    **_family("H200", 144384, [("p5en.48xlarge", 8, 192, 2048, 198, 63.296)]),
}

# DaemonSet pods this stack puts on every GPU node (VPC CNI, kube-proxy, device plugin): they
# count against the instance's max pods like any workload.
GPU_NODE_DAEMONSET_PODS = 3

# Families whose every size carries NVIDIA GPUs and runs the x86_64 NVIDIA AMI.
GPU_FAMILIES = tuple(sorted({i.family for i in GPU_INSTANCES.values()}))

# Node memory left to pods (allocatable), for sizing a pod that must fit on one node:
# - the kernel reports less than the nominal size; Karpenter estimates the difference as
#   vmMemoryOverheadPercent, default 0.075 (aws/karpenter-provider-aws settings);
# - the AL2023 AMI's nodeadm reserves 11 MiB per possible pod plus 255 MiB for the kubelet and
#   container runtime (kube-reserved; awslabs/amazon-eks-ami nodeadm/internal/kubelet/config.go);
# - the kubelet's hard eviction threshold keeps 100 MiB free (memory.available<100Mi).
VM_MEMORY_OVERHEAD = 0.075
KUBE_RESERVED_MIB_PER_POD = 11
KUBE_RESERVED_BASE_MIB = 255
EVICTION_HARD_MEMORY_MIB = 100


def allocatable_memory_mib(instance: GpuInstance) -> int:
    """About what the kubelet of an EKS AL2023 node of this type offers pods (MiB)."""
    capacity = int(instance.memory_mib * (1 - VM_MEMORY_OVERHEAD))
    reserved = KUBE_RESERVED_MIB_PER_POD * instance.max_pods + KUBE_RESERVED_BASE_MIB
    return capacity - reserved - EVICTION_HARD_MEMORY_MIB


# --- Workloads --------------------------------------------------------------------------------

# A long-running CUDA base image for the demo Deployment: `nvidia-smi -L` then sleep, so the
# pods stay Running and occupy their virtual GPU (a sample that exits would crash-loop).
DEMO_IMAGE = "nvcr.io/nvidia/cuda:12.9.1-base-ubuntu24.04"
# PyTorch with CUDA 12.8: runs on the T4 (sm_75), A10G, L4, L40S, A100 and H100 alike, with the
# AL2023 NVIDIA AMI's driver. The sharing benchmark script is mounted into it.
BENCHMARK_IMAGE = "pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime"
