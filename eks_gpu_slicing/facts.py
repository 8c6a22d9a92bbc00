"""Facts about AWS, EKS and NVIDIA software that the rest of the project builds on.

This is the one place for them: settings validation, components, reports, the capacity
planner and the tests all import from here. Each fact says where it comes from; when
upstream changes, change it here and let the tests show what else moves.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from fractions import Fraction

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
# CUDA MPS: a server accepts at most 48 client contexts per GPU on Volta and later (CUDA MPS
# documentation, "Limitations"); every GPU in the instance table is Turing or newer.
MPS_MAX_CLIENTS_PER_GPU = 48
# Device memory a CUDA context takes before a workload allocates anything: 690 MiB measured
# on an H200 (benchmarks/sharing/README.md). An MPS client limited to less cannot even start.
CUDA_CONTEXT_MIB = 690
# Where the chart's MPS control daemon keeps its pipes, logs and shared memory on the host.
# AL2023 mounts /run as tmpfs: writable, node-local and emptied at boot, which is what MPS
# state should be (the chart's own default, set explicitly so a chart change is noticed).
MPS_ROOT = "/run/nvidia/mps"
# The node label the chart's MPS control daemon DaemonSet selects on (GFD sets it too).
MPS_CAPABLE_LABEL = "nvidia.com/mps.capable"
# Warn below this much device memory per virtual GPU: little beyond a CUDA context.
MIN_COMFORTABLE_GPU_MIB_PER_VIRTUAL_GPU = 1024
# Only full GPUs and MIG devices can be shared; this project shares full GPUs.
GPU_RESOURCE = "nvidia.com/gpu"
# renameByDefault advertises `<name>.shared` instead of `<name>`.
SHARED_RESOURCE_SUFFIX = ".shared"

# Node label the plugin's config-manager sidecar watches to pick a named config entry.
DEVICE_PLUGIN_CONFIG_LABEL = "nvidia.com/device-plugin.config"
# Our label saying which device plugin serves a GPU node: the Helm release (AL2023) or the one
# built into Bottlerocket. The release selects `helm`, so two plugins never share a GPU.
DEVICE_PLUGIN_SOURCE_LABEL = "eks-gpu-slicing/device-plugin"
DEVICE_PLUGIN_FROM_HELM = "helm"
DEVICE_PLUGIN_BUILT_IN = "bottlerocket"
# Nodes of `hami` profiles: HAMi's device plugin serves them (its DaemonSet selects this value),
# and neither NVIDIA's release nor Bottlerocket's built-in plugin (turned off there) does.
DEVICE_PLUGIN_FROM_HAMI = "hami"
# Our label on the system node group: where cluster-wide controllers (NFD's master and
# garbage collector) run, never on GPU nodes.
NODE_ROLE_LABEL = "eks-gpu-slicing/node-role"
SYSTEM_NODE_ROLE = "system"
# Node label the chart's default affinity accepts when Node Feature Discovery is absent.
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_PRESENT_VALUE = "true"  # a string: Kubernetes label values are never YAML booleans
# Taint that keeps non-GPU pods off GPU nodes (as in terraform-aws-eks's GPU fixture).
GPU_TAINT_KEY = "nvidia.com/gpu"
GPU_TAINT_VALUE = "true"
# EKS's API spells taint effects differently from Kubernetes.
EKS_NO_SCHEDULE = "NO_SCHEDULE"
K8S_NO_SCHEDULE = "NoSchedule"
# The NVIDIA GPU Operator runs none of its operands (its own device plugin, GFD, DCGM
# exporter, ...) on a node with this label set to "false": it removes every
# nvidia.com/gpu.deploy.* label there (gpu-operator controllers/state_manager.go,
# hasOperandsDisabled). GPU nodes this stack adds to a cluster it was given carry it, so a
# second plugin never advertises the same GPUs.
GPU_OPERATOR_OPERANDS_LABEL = "nvidia.com/gpu.deploy.operands"

# The chart values this program sets, with every option on (gfd, MIG): exactly the paths
# builders/device_plugin.helm_values emits, each one the chart 0.20.0 templates read
# (shared/reference/nvidia-device-plugin-0.20.0/values-paths.txt, the NFD sub-chart's under
# `nfd.`). Helm ignores a misspelt value without a word: `make check` refuses any other path,
# and tests/test_device_plugin_config.py and test_upstream_reference.py check both ways.
DEVICE_PLUGIN_VALUE_PATHS = frozenset(
    {
        "config.name",
        "config.default",
        "nodeSelector",
        "affinity",  # with MIG
        "tolerations",
        "podAnnotations",
        "gfd.enabled",
        "mps.root",
        # The Node Feature Discovery sub-chart (with gfd.enabled), aliased `nfd`.
        "nfd.worker.tolerations",
        "nfd.master.nodeSelector",
        "nfd.gc.nodeSelector",
    }
)

# Keys the device plugin's config file understands: the json tags of the v0.20.0 tag's
# api/config/v1 (config.go, flags.go, sharing.go, replicas.go). The plugin ignores unknown
# keys silently, so our own checker flags them.
DEVICE_PLUGIN_CONFIG_KEYS = {
    "": frozenset({"version", "flags", "resources", "sharing", "imex"}),
    "flags": frozenset(
        {
            "migStrategy",
            "failOnInitError",
            "mpsRoot",
            "nvidiaDriverRoot",
            "nvidiaDevRoot",
            "gdrcopyEnabled",
            "gdsEnabled",
            "mofedEnabled",
            "useNodeFeatureAPI",
            "deviceDiscoveryStrategy",
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
            "sharedDevicesAllocationPolicy",
        }
    ),
    "flags.gfd": frozenset(
        {"oneshot", "noTimestamp", "sleepInterval", "outputFile", "machineTypeFile"}
    ),
    "sharing": frozenset({"timeSlicing", "mps"}),
    "sharing.*": frozenset({"renameByDefault", "failRequestsGreaterThanOne", "resources"}),
    "sharing.*.resources[]": frozenset({"name", "rename", "devices", "replicas"}),
}
MIG_STRATEGIES = frozenset({"none", "single", "mixed"})

# --- GPU metrics: DCGM exporter (github.com/NVIDIA/dcgm-exporter) -----------------------------

DCGM_EXPORTER_CHART = "dcgm-exporter"
DCGM_EXPORTER_CHART_REPO = "https://nvidia.github.io/dcgm-exporter/helm-charts"
# Chart 4.8.3 ships exporter 4.6.0-4.8.3 (DCGM 4.6.0; chart version = exporter version,
# deployment/Chart.yaml). Per-pod attribution of a shared GPU's utilisation and memory came
# in 4.5.3-4.8.2 (upstream PR #594; before it every pod on a time-sliced GPU showed the
# device's values, issues #582 and #587); 4.8.3 adds pod labels on MIG devices (#660) and
# renames the node label Hostname to hostname (#655). 4.6.1-4.8.4 is newer, but its chart
# could not be read here to check the values below, so it is not pinned (docs/metrics.md).
DCGM_EXPORTER_CHART_VERSION = "4.8.3"
# The first chart (= exporter) version with per-pod attribution on shared GPUs (PR #594).
DCGM_EXPORTER_PER_POD_SINCE = "4.8.2"
# The chart whose value paths the tests check ours against (shared/reference holds 4.8.2;
# 4.8.3's templates were read by hand, see below).
DCGM_EXPORTER_REFERENCE_CHART_VERSION = "4.8.2"
DCGM_EXPORTER_RELEASE_NAME = "dcgm-exporter"
DCGM_EXPORTER_DEFAULT_NAMESPACE = "gpu-monitoring"
# Exporter flag --kubernetes-virtual-gpus (pkg/cmd/app.go): map NVML's per-process data to
# the pods sharing a GPU. It reads each process's cgroup under /proc, hence hostPID.
DCGM_VIRTUAL_GPUS_ENV = "KUBERNETES_VIRTUAL_GPUS"
# Flag --nvidia-resource-names (comma-separated): extended resources besides nvidia.com/gpu
# whose pods are attributed; without it pods of a renamed (`.shared`) resource are skipped.
DCGM_RESOURCE_NAMES_ENV = "NVIDIA_RESOURCE_NAMES"
# Metric labels of exporter 4.6.0-4.8.3 (internal/pkg/rendermetrics/render_metrics.go,
# transformation/const.go). The node label is `hostname` (NODE_NAME, set by the chart to the
# pod's node); up to 4.5.3-4.8.2 it was `Hostname` (renamed by upstream PR #655).
DCGM_NODE_LABEL = "hostname"
DCGM_GPU_LABELS = frozenset({"gpu", "UUID", "modelName", "device", "pci_bus_id"})
DCGM_POD_LABELS = frozenset({"pod", "namespace", "container", "pod_uid", "vgpu"})
# Fields attributed per process (transformation/process_metrics.go isPerProcessMetric): each
# has one device series without a `pod` label plus one series per pod. Every other field is
# copied, with the device's value, onto each pod on the GPU.
DCGM_PER_POD_FIELDS = ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_FB_USED")

# Chart values this program sets; Helm ignores a misspelt one. Chart 4.8.2's templates read
# every one (shared/reference/dcgm-exporter-4.8.2/values-paths.txt, what the tests check).
# Chart 4.8.3 (release PR #711, commit 7ad58324): its daemonset.yaml reads affinity, hostPID,
# nodeSelector, tolerations, extraEnv, resources and kubernetes.enablePodLabels, and its
# values.yaml still declares kubernetes.rbac.create and serviceMonitor.{enabled, interval,
# scrapeTimeout, relabelings}; its clusterrole and service-monitor templates could not be read
# at that commit (at 4.8.2 they read those keys).
DCGM_EXPORTER_VALUE_PATHS = frozenset(
    {
        "affinity",
        "hostPID",
        "nodeSelector",
        "tolerations",
        "extraEnv",
        "resources",
        "kubernetes.enablePodLabels",
        "kubernetes.rbac.create",
        "serviceMonitor.enabled",
        "serviceMonitor.interval",
        "serviceMonitor.scrapeTimeout",
        "serviceMonitor.relabelings",
    }
)

# --- Kubernetes -----------------------------------------------------------------------------

# Lowercase words YAML 1.1 reads as booleans or null, as Helm's YAML parser (go-yaml v2) does:
# y and n included, which PyYAML leaves as strings.
YAML_1_1_KEYWORDS = frozenset({"y", "yes", "n", "no", "true", "false", "on", "off", "null", "~"})

# Namespaces every cluster has; the stack never creates (or deletes) these.
BUILTIN_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})

# --- Networks -----------------------------------------------------------------------------

# RFC 5737 documentation ranges: examples only, never a real client's address.
DOCUMENTATION_NETWORKS = tuple(
    ipaddress.IPv4Network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
)

# --- EKS -----------------------------------------------------------------------------------

# The Kubernetes API server's port on the cluster endpoint (HTTPS).
KUBERNETES_API_PORT = 443


# Amazon EKS Kubernetes release calendar (docs.aws.amazon.com/eks/latest/userguide/
# kubernetes-versions.html, "Amazon EKS Kubernetes release calendar"; dates in UTC). A version
# is in standard support until its end date, then in extended support (billed at a higher rate
# per cluster hour, from the start of that day) for 12 months; on the end of extended support
# EKS stops creating clusters on it and upgrades existing control planes on its own. Which
# phase a version is in depends on the day: `support_on(today)`. Versions not listed cannot
# be created.
@dataclass(frozen=True)
class KubernetesRelease:
    version: str
    standard_support_ends: dt.date | None = None  # None: not announced yet
    extended_support_ends: dt.date | None = None

    def support_on(self, today: dt.date) -> str:
        """ "standard", "extended" or "ended" on that day."""
        if self.extended_support_ends and today >= self.extended_support_ends:
            return "ended"
        if self.standard_support_ends and today >= self.standard_support_ends:
            return "extended"
        return "standard"


KUBERNETES_RELEASES: dict[str, KubernetesRelease] = {
    r.version: r
    for r in (
        KubernetesRelease("1.31", dt.date(2025, 11, 26), dt.date(2026, 11, 26)),
        KubernetesRelease("1.32", dt.date(2026, 3, 23), dt.date(2027, 3, 23)),
        KubernetesRelease("1.33", dt.date(2026, 7, 29), dt.date(2027, 7, 29)),
        KubernetesRelease("1.34", dt.date(2026, 12, 2), dt.date(2027, 12, 2)),
        KubernetesRelease("1.35", dt.date(2027, 3, 27), dt.date(2028, 3, 27)),
        KubernetesRelease("1.36"),
    )
}
DEFAULT_KUBERNETES_VERSION = "1.35"


# Which EKS-optimized AMI releases carry an AL2023 x86_64 NVIDIA image for each Kubernetes
# version EKS offers here (awslabs/amazon-eks-ami CHANGELOG.md, read up to v20260714). A
# Karpenter alias `al2023@<release>` resolves through the SSM parameter
# /aws/service/eks/optimized-ami/<k8s>/amazon-linux-2023/x86_64/nvidia/
# amazon-eks-node-al2023-x86_64-nvidia-<k8s>-<release>/image_id, with <k8s> the cluster's
# version (karpenter-provider-aws v1.14.1 pkg/providers/amifamily/al2023.go): a release
# without that version leaves the EC2NodeClass AMIsReady=False and no node ever launches,
# while `pulumi up` succeeds. Managed node groups (AL2023 or Bottlerocket) need none of this:
# EKS picks their AMI release for the cluster's version (`ami_type` only names the family).
@dataclass(frozen=True)
class AmiReleaseSpan:
    """The releases (`vYYYYMMDD`) that carry one Kubernetes version: from `first` to `last`,
    or to today's newest while EKS still publishes it (`last` None)."""

    first: str
    last: str | None = None

    def carries(self, release: str) -> bool:
        return self.first <= release and (self.last is None or release <= self.last)


AL2023_NVIDIA_AMI_RELEASES: dict[str, AmiReleaseSpan] = {
    # v20241024 is the first release whose NVIDIA images are named as the alias resolves
    # them (before, `...-nvidia-560-1.31-...`). 1.29 was last carried by v20260318 and 1.28
    # by v20251112; neither is offered here (KUBERNETES_RELEASES).
    "1.31": AmiReleaseSpan("v20241024"),
    "1.32": AmiReleaseSpan("v20241225"),
    "1.33": AmiReleaseSpan("v20250519"),
    "1.34": AmiReleaseSpan("v20250915"),
    "1.35": AmiReleaseSpan("v20260114"),  # NVIDIA driver 580.105.08
    "1.36": AmiReleaseSpan("v20260610"),  # NVIDIA driver 580.159.03
}
AMI_RELEASE_PATTERN = r"^v\d{8}$"
# The newest release in the CHANGELOG this table was read from: a later one may exist, or may
# be a typo (Karpenter then reports AMINotFound and no pool node launches), so it is warned.
NEWEST_KNOWN_AMI_RELEASE = "v20260714"
# AL2023 with the NVIDIA driver and container toolkit baked in; the device plugin is ours to
# install. AL2 GPU AMIs stopped being published on 2025-11-26.
GPU_AMI_TYPE = "AL2023_x86_64_NVIDIA"
CPU_AMI_TYPE = "AL2023_x86_64_STANDARD"
# Bottlerocket's NVIDIA variant ships its own device plugin, configured by the node settings
# settings.kubelet-device-plugins.nvidia.* (time-slicing since Bottlerocket 1.25.0, MPS in
# the 1.54 docs); EKS merges our user data (TOML) with its bootstrap settings.
BOTTLEROCKET_GPU_AMI_TYPE = "BOTTLEROCKET_x86_64_NVIDIA"
BOTTLEROCKET_MIN_VERSION = {"time-slicing": "1.25.0", "mps": "1.54.0", "hami": "1.63.0"}
# settings.kubelet-device-plugins.nvidia.enabled (1.63.0+): false turns the built-in plugin off,
# as a node whose GPUs another plugin (HAMi's) advertises needs.
BOTTLEROCKET_PLUGIN_ENABLED_KEY = "enabled"
# Bottlerocket's data volume (images, containers); its OS volume is /dev/xvda.
BOTTLEROCKET_DATA_DEVICE = "/dev/xvdb"
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
# Root block device of the AL2023 EKS AMIs (standard and NVIDIA).
AL2023_ROOT_DEVICE = "/dev/xvda"

CLUSTER_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")
# EKS writes control-plane logs to this group, creating it (without retention, outliving the
# cluster) unless it already exists: the stack creates it first.
CLUSTER_LOG_GROUP = "/aws/eks/{cluster_name}/cluster"
# The values CloudWatch Logs accepts for a group's retention (PutRetentionPolicy).
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)

# Zone IDs where EKS refuses control-plane subnets (UnsupportedAvailabilityZoneException;
# pulumi/pulumi-eks#1401). Zone *names* map to IDs differently per account: exclude by ID.
EKS_UNSUPPORTED_ZONE_IDS = ("use1-az3", "usw1-az2", "cac1-az3")

# Node IAM role: what a managed node needs and nothing more (kubelet/EKS, the VPC CNI, image
# pulls). AmazonEC2ContainerRegistryPullOnly replaces the older ReadOnly policy for nodes.
NODE_ROLE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
)
CLUSTER_ADMIN_ACCESS_POLICY = "AmazonEKSClusterAdminPolicy"
# What a tenant's principals get in its namespace (EKS user guide, "Review access policy
# permissions"): like Kubernetes' `edit` role, most namespaced objects, but not Roles,
# RoleBindings, ResourceQuotas or LimitRanges, so a team cannot raise its own quota. Scoped
# with accessScope {type: namespace, namespaces: [...]}; one association per principal and
# policy (EKS: "you can only associate each policy to an access entry once").
TENANT_ACCESS_POLICY = "AmazonEKSEditPolicy"
ACCESS_SCOPE_NAMESPACE = "namespace"
ACCESS_ENTRY_STANDARD = "STANDARD"

# --- Tenants ----------------------------------------------------------------------------------

# Label on a tenant's namespace, quota and defaults: which tenant they belong to.
TENANT_LABEL = "eks-gpu-slicing/tenant"
# Names of the objects in a tenant's namespace (verify finds the quota by it).
TENANT_QUOTA_NAME = "gpu-slices"
TENANT_LIMIT_RANGE_NAME = "container-defaults"
# The ResourceQuota key of an extended resource: the quota controller counts an extended
# resource only as requests.<name> (kubernetes pkg/quota/v1/evaluator/core/pods.go,
# isExtendedResourceNameForQuota: "only quota objects in format of requests.resourceName is
# allowed", since extended resources cannot be overcommitted); the API server accepts
# limits.<name> or the bare name too, and nothing would ever count them.
QUOTA_REQUESTS_PREFIX = "requests."


# ARNs carry the partition (aws, aws-cn, aws-us-gov): never spell `arn:aws:` in an ARN.
def managed_policy_arn(partition: str, policy: str) -> str:
    """An AWS managed IAM policy's ARN."""
    return f"arn:{partition}:iam::aws:policy/{policy}"


def access_policy_arn(partition: str, policy: str) -> str:
    """An EKS cluster access policy's ARN (for access entries)."""
    return f"arn:{partition}:eks::aws:cluster-access-policy/{policy}"


# Subnet tags the AWS Load Balancer Controller and in-tree service controller look for.
PUBLIC_SUBNET_TAGS = {"kubernetes.io/role/elb": "1"}
PRIVATE_SUBNET_TAGS = {"kubernetes.io/role/internal-elb": "1"}

# --- GPU instances ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GpuInstance:
    """One EC2 GPU instance type.

    Source: Karpenter's instance-types reference (aws/karpenter-provider-aws,
    website/content/en/docs/reference/instance-types.md, release v1.14.0; the rows re-checked
    at tag v1.14.1, which has the same values): the labels instance-gpu-count,
    instance-gpu-name, instance-gpu-memory (MiB per GPU), instance-cpu, instance-memory, and
    the `pods` capacity (ENI-limited, VPC CNI without prefix delegation).
    Prices: Karpenter's generated on-demand price list for us-east-1 (PRICES_AS_OF).

    `gpus` is what the NVIDIA driver on the node shows, and so what the device plugin
    advertises: for a fractional type (`gpu_fraction` set) its one vGPU, a hardware partition
    of one physical GPU whose memory is `gpu_memory_mib`. EC2 (and so Karpenter) counts such a
    type as 0 GPUs: `karpenter_gpus`.
    """

    name: str
    gpus: int
    gpu_model: str
    gpu_memory_mib: int  # per GPU (per vGPU on a fractional type), as EC2 reports it
    vcpus: int
    memory_mib: int
    max_pods: int
    # On-demand, us-east-1; None where EC2 sells the type only through Capacity Blocks for ML
    # (no on-demand price in the list): p5e.48xlarge.
    usd_per_hour: float | None
    # The share of one physical GPU the instance's one vGPU is (g6f, gr6f: 1/8 to 1/2 of an
    # L4); None for whole GPUs.
    gpu_fraction: Fraction | None = None

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def gpu_memory_gib(self) -> float:
        return self.gpu_memory_mib / 1024

    @property
    def fractional(self) -> bool:
        return self.gpu_fraction is not None

    @property
    def driver_memory_mib(self) -> int:
        """Memory per GPU as the NVIDIA driver reports it (GPU_DRIVER_MEMORY_MIB), where known
        to be less than EC2's figure; else EC2's. What HAMi hands out per GPU."""
        return min(
            self.gpu_memory_mib, GPU_DRIVER_MEMORY_MIB.get(self.gpu_model, self.gpu_memory_mib)
        )

    @property
    def karpenter_gpus(self) -> int:
        """The nvidia.com/gpu capacity Karpenter v1.14.1 gives the type on its own: the sum of
        EC2's GpuInfo.Gpus[].Count (pkg/providers/instancetype/types.go, nvidiaGPUs), which
        is 0 for fractional types (EC2 reports Count 0, LogicalGpuCount 1;
        aws/karpenter-provider-aws#8368, open). A NodeOverlay has to add what the node will
        advertise, or pods asking for a GPU never make Karpenter launch one."""
        return 0 if self.fractional else self.gpus

    @property
    def gpu_description(self) -> str:
        """`1x L4 22 GiB`, or `1/8 L4 vGPU 2.8 GiB` for a fractional type."""
        if self.gpu_fraction is not None:
            return f"{self.gpu_fraction} {self.gpu_model} vGPU {self.gpu_memory_gib:.1f} GiB"
        return f"{self.gpus}x {self.gpu_model} {self.gpu_memory_gib:.0f} GiB"


PRICES_AS_OF = "2026-07-20"
PRICE_REGION = "us-east-1"

# Memory per GPU as the NVIDIA driver reports it (NVML's total, which nvidia-smi shows as
# "<used>MiB / <total>MiB"), for the models where it is less than EC2's (and so Karpenter's)
# instance-gpu-memory above: ECC and the driver's reservation take the rest. HAMi registers each
# GPU with this figure (HAMi v2.10.0 pkg/device-plugin/nvidiadevice/nvinternal/plugin/
# register.go: GetMemoryInfo().Total x deviceMemoryScaling), so memory per slice must come
# from it, or the last of splitCount slices never fits. Read from nvidia-smi output in public
# repositories (several each): Tesla T4 on g4dn 15360, H100 80GB HBM3 81559, H200 143771, RTX
# PRO 6000 Blackwell Server Edition (on g7e) 97887. At or above EC2's, so not listed: A10G 23028,
# L4 23034, L40S 46068, A100-SXM4-40GB 40960, A100 80GB 81920, B200 183359. B300: no reading
# found; EC2's figure stands.
GPU_DRIVER_MEMORY_MIB = {"T4": 15360, "H100": 81559, "H200": 143771, "RTX-PRO-6000": 97887}


def _family(gpu_model: str, gpu_memory_mib: int, rows: list[tuple]) -> dict[str, GpuInstance]:
    return {
        name: GpuInstance(name, gpus, gpu_model, gpu_memory_mib, vcpus, gib * 1024, pods, usd)
        for name, gpus, vcpus, gib, pods, usd in rows
    }


def _fractional(gpu_model: str, rows: list[tuple]) -> dict[str, GpuInstance]:
    """(name, fraction of one GPU, vGPU memory MiB, vCPUs, memory GiB, max pods, USD/hour):
    one vGPU per instance."""
    return {
        name: GpuInstance(name, 1, gpu_model, mib, vcpus, gib * 1024, pods, usd, fraction)
        for name, fraction, mib, vcpus, gib, pods, usd in rows
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
    # p5e.48xlarge: Karpenter's instance-types reference at v1.14.0 (gpu-count 8, gpu-name h200,
    # gpu-memory 144384, cpu 192, memory 2097152 MiB, pods 100); absent from its us-east-1
    # on-demand price list (generated 2026-07-20): sold through Capacity Blocks.
    **_family(
        "H200",
        144384,
        [("p5e.48xlarge", 8, 192, 2048, 100, None), ("p5en.48xlarge", 8, 192, 2048, 198, 63.296)],
    ),
    # g7e: NVIDIA RTX PRO 6000 Blackwell Server Edition (instance-gpu-name rtx-pro-server-6000,
    # 98304 MiB per GPU), from the same reference at tag v1.14.1; prices from the same list
    # (v1.14.1's copy, generated 2026-07-06, has the same values). Max pods agree with the
    # AL2023 AMI's nodeadm at v20260610 (instance-info.jsonl: 4, 8, 10 ENIs x 64 IPs). Its
    # driver: GPU_FAMILY_DRIVERS.
    **_family(
        "RTX-PRO-6000",
        98304,
        [
            ("g7e.2xlarge", 1, 8, 64, 254, 3.36312),
            ("g7e.4xlarge", 1, 16, 128, 506, 3.99816),
            ("g7e.8xlarge", 1, 32, 256, 506, 5.26824),
            ("g7e.12xlarge", 2, 48, 512, 632, 8.28608),
            ("g7e.24xlarge", 4, 96, 1024, 632, 16.57216),
            ("g7e.48xlarge", 8, 192, 2048, 632, 33.14432),
        ],
    ),
    # p6-b200 / p6-b300: 8 NVIDIA B200 (instance-gpu-memory 183359 MiB) / B300 (275040 MiB),
    # same reference (v1.14.1) and price list.
    **_family("B200", 183359, [("p6-b200.48xlarge", 8, 192, 2048, 198, 113.9328)]),
    **_family("B300", 275040, [("p6-b300.48xlarge", 8, 192, 4096, 198, 142.416)]),
    # g6f / gr6f: a fraction of one NVIDIA L4 each, a vGPU the hypervisor partitions (NVIDIA
    # vGPU profiles L4-3Q, L4-6Q, L4-12Q: amazon-eks-ami v20260610 nvidia-kmod-load.sh
    # NVIDIA_GRID_SUBDEVICES; which size has which is inferred from the memory). Karpenter's
    # reference (v1.14.1): instance-gpu-name l4, instance-gpu-count 0 and no nvidia.com/gpu
    # capacity (see karpenter_gpus), instance-gpu-memory 2861, 5722 or 11444 MiB, which is
    # the g6 L4's 22888 MiB over 8, 4 and 2: the fraction (Karpenter's docs say the same,
    # "from 1/8th to 1/2", concepts/nodeoverlays.md on main since #9395). Prices: the same
    # us-east-1 list. Max pods agree with nodeadm at v20260610 (2 ENIs x 10 IPs, 4 x 15, 8 x 30).
    **_fractional(
        "L4",
        [
            ("g6f.large", Fraction(1, 8), 2861, 2, 8, 20, 0.202),
            ("g6f.xlarge", Fraction(1, 8), 2861, 4, 16, 58, 0.2375),
            ("g6f.2xlarge", Fraction(1, 4), 5722, 8, 32, 58, 0.475),
            ("g6f.4xlarge", Fraction(1, 2), 11444, 16, 64, 234, 0.95),
            ("gr6f.4xlarge", Fraction(1, 2), 11444, 16, 128, 234, 1.066),
        ],
    ),
}

# DaemonSet pods this stack puts on every GPU node (VPC CNI, kube-proxy, device plugin): they
# count against the instance's max pods like any workload.
GPU_NODE_DAEMONSET_PODS = 3

# Families whose every size carries NVIDIA GPUs and runs the x86_64 NVIDIA AMI.
GPU_FAMILIES = tuple(sorted({i.family for i in GPU_INSTANCES.values()}))


@dataclass(frozen=True)
class DriverNeed:
    """The NVIDIA driver a GPU family needs, and the first EKS AL2023 NVIDIA AMI release from
    which the image of every Kubernetes version runs it (up to the pin
    KARPENTER_AL2023_AMI_RELEASE and the newest release read, NEWEST_KNOWN_AMI_RELEASE)."""

    driver: str
    first_al2023_release: str


# Families newer than the AMI releases this project can pin (AL2023_NVIDIA_AMI_RELEASES starts
# at v20241024): every other family runs on all of them. awslabs/amazon-eks-ami, scanned tag by
# tag: nvidia-kmod-load.sh loads the open kernel module only for PCI device IDs listed in
# nvidia-open-supported-devices-<driver major>.txt (Blackwell has no other), and the GRID
# module for the L4 vGPU subdevices; a release's driver majors are those of its CHANGELOG's
# kmod-nvidia-latest-dkms (one per group of Kubernetes versions: v20251029 still had 570 for
# some and 580 for others; v20260610 has 580.159.03 for all). The Amazon EKS User Guide
# ("Use EKS-optimized accelerated AMIs for GPU instances", ml-eks-optimized-ami) lists all five
# for both AL2023 x86_64 NVIDIA and Bottlerocket x86_64 aws-k8s-nvidia, without releases.
GPU_FAMILY_DRIVERS: dict[str, DriverNeed] = {
    # NVIDIA's GRID (vGPU guest) driver: AMI commit d8f3b70a (#2265) builds an
    # `nvidia-open-grid` module from the EC2 GRID runfile of the AMI's driver version; first
    # tag containing it v20250610. At v20260610 it installs the kernel module only
    # (install-nvidia-driver.sh archive-grid-kmod); whether a GRID licensing daemon runs
    # there is not confirmed (amazon-eks-ami #2450 reports unlicensed vGPUs failing after 24 h).
    "g6f": DriverNeed("NVIDIA GRID (vGPU guest) driver", "v20250610"),
    "gr6f": DriverNeed("NVIDIA GRID (vGPU guest) driver", "v20250610"),
    # RTX PRO 6000 Blackwell Server Edition, PCI 0x2BB5: in the 575 and 580 lists, not 570's;
    # every image on 580 from v20251217 (v20250801 was all 575, v20250813 back to 570).
    "g7e": DriverNeed("NVIDIA 580 (open kernel module)", "v20251217"),
    # B200, PCI 0x2901: in the 570, 575 and 580 lists; every image on one of them from
    # v20250419.
    "p6-b200": DriverNeed("NVIDIA 570 or later (open kernel module)", "v20250419"),
    # B300 SXM6 AC, PCI 0x3182: in the 580 list only; every image on 580 from v20251217.
    "p6-b300": DriverNeed("NVIDIA 580 (open kernel module)", "v20251217"),
}

# GPU families EC2 sells that no EKS-optimized NVIDIA AMI here can run, and why: refused by
# name rather than as an unknown type. g7 (RTX PRO 4500 Blackwell, PCI 0x2C3A, not in the 580
# list): "require driver version 595 or later ... EKS-optimized accelerated AMI ships with
# driver version 580" (amazon-eks-ami doc/usage/g7-ami.md, #2747, 2026-06-25); that page also
# says 595 does not support G6f. Not g7e, whose RTX PRO 6000 the 580 AMIs run.
UNSUPPORTED_GPU_FAMILIES: dict[str, str] = {
    "g7": (
        "its NVIDIA RTX PRO 4500 Blackwell needs driver 595 or later, and the EKS AL2023 "
        "NVIDIA AMIs (release v20260610 here) ship 580; a custom AMI with 595 is outside "
        "what this project checks"
    ),
}

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


# --- MIG (Multi-Instance GPU) ------------------------------------------------------------------

# Most MIG-capable GPUs (A100, H100, H200, B200) have 7 compute slices and 8 memory slices; a
# profile `Ng.Mgb` takes N compute slices and its memory slices (NVIDIA MIG User Guide,
# "Supported MIG Profiles": fraction of memory in eighths). Not all: the RTX PRO 6000 Blackwell
# has 4 (at most 4 instances; MigGpu.compute_slices). mig-parted checks placement on the node;
# sums and counts are checked here, against each GPU's own totals.
MIG_COMPUTE_SLICES = 7
MIG_MEMORY_SLICES = 8
# Standalone k8s-mig-manager (NVIDIA/mig-parted v0.15.0, deployments/container/
# nvidia-mig-manager-example*.yaml; cmd/nvidia-mig-manager/main.go).
MIG_MANAGER_VERSION = "v0.15.0"
MIG_MANAGER_IMAGE = f"nvcr.io/nvidia/cloud-native/k8s-mig-manager:{MIG_MANAGER_VERSION}"
MIG_PARTED_CONFIG_VERSION = "v1"
# The node label naming the mig-parted config to apply, and where the manager reports progress
# (pending -> rebooting -> success | failed; pkg/mig/reconfigure/reconfigure.go).
MIG_CONFIG_LABEL = "nvidia.com/mig.config"
MIG_CONFIG_STATE_LABEL = "nvidia.com/mig.config.state"
MIG_CONFIG_STATE_SUCCESS = "success"
# During a change the manager sets these node labels to MIG_PAUSED_VALUE, waits for the pods of
# the DaemonSets that select on them to leave, repartitions, then restores the previous value.
# A DaemonSet steps aside by running only where its label is not the paused value.
MIG_DEPLOY_DEVICE_PLUGIN_LABEL = "nvidia.com/gpu.deploy.device-plugin"
MIG_DEPLOY_GFD_LABEL = "nvidia.com/gpu.deploy.gpu-feature-discovery"
MIG_DEPLOY_DCGM_EXPORTER_LABEL = "nvidia.com/gpu.deploy.dcgm-exporter"
# v0.15.0, for any other DaemonSet: paused only where the node has it, then waited for by
# nodeSelector key (waitForPodsWithNodeSelector), in all namespaces; restored to "true".
MIG_DEPLOY_CLIENT_LABEL = "nvidia.com/gpu.deploy.client"
MIG_DEPLOY_CLIENT_VALUE = "true"
MIG_PAUSED_VALUE = "paused-for-mig-change"
# Our label on nodes whose profile is MIG: the mig-manager DaemonSet selects on it.
MIG_NODE_LABEL = "eks-gpu-slicing/mig"
MIG_NODE_VALUE = "true"
# Device plugin resource names: `single` advertises every slice as nvidia.com/gpu; `mixed` one
# resource per slice type, `nvidia.com/mig-<profile>` (`+` in a profile name becomes `.`).
MIG_RESOURCE_PREFIX = "nvidia.com/mig-"
# Bottlerocket's built-in MIG (nvidia-migmanager, settings.kubelet-device-plugins.nvidia.
# device-partitioning-strategy = "mig" and .mig.profile.<gpu key> = "<profile>"): single only.
BOTTLEROCKET_MIG_MIN_VERSION = "1.34.0"
# Layout names from mig-parted's default catalogue (config-default.yaml) that this project
# accepts besides `all-<profile>`.
MIG_BALANCED_LAYOUT = "all-balanced"


@dataclass(frozen=True)
class MigProfile:
    """One GPU instance profile: slices it takes, device memory it has, how many fit."""

    name: str  # as mig-parted and nvidia-smi name it, e.g. "1g.10gb"
    compute_slices: int
    memory_slices: int
    memory_gib: float  # as `nvidia-smi mig -lgip` reports it
    max_count: int  # per GPU
    # No `nvidia-smi mig -lgip` reading was found for it: memory_gib is estimated (each
    # estimate says how), and the planner and reports say so.
    memory_estimated: bool = False

    @property
    def resource_name(self) -> str:
        """The device plugin's `mixed` resource for this slice type."""
        return MIG_RESOURCE_PREFIX + self.name.replace("+", ".")


@dataclass(frozen=True)
class MigGpu:
    """A MIG-capable GPU model: its profiles and mig-parted's `all-balanced` layout for it."""

    name: str
    pci_device_id: str  # as mig-parted's device-filter spells it
    # Key under settings.kubelet-device-plugins.nvidia.mig.profile; None where this project
    # has not confirmed that a Bottlerocket release partitions this GPU (MIG is then refused
    # on Bottlerocket nodes of it).
    bottlerocket_key: str | None
    profiles: dict[str, MigProfile]
    balanced: dict[str, int]
    # The profiles Bottlerocket's nvidia-migmanager knows for this GPU (src/mig_profile.rs,
    # one `all-<profile>` layout each). It maps any other value to the whole-GPU profile
    # (serde `other`), so a profile not listed here would silently give one slice per GPU.
    bottlerocket_profiles: tuple[str, ...] = ()
    # The GPU's compute and memory slices: what a layout's profiles may take together.
    compute_slices: int = MIG_COMPUTE_SLICES
    memory_slices: int = MIG_MEMORY_SLICES


def _mig_profiles(
    rows: list[tuple[str, int, int, float, int]], estimated: tuple[str, ...] = ()
) -> dict[str, MigProfile]:
    return {row[0]: MigProfile(*row, memory_estimated=row[0] in estimated) for row in rows}


# Profiles and max counts: mig-parted v0.15.0 config-default.yaml (`all-<profile>` per GPU,
# matched by its device-filter PCI IDs) and the NVIDIA MIG User Guide. Memory GiB: H200 from
# `nvidia-smi mig -lgip` on a real H200 (driver 580); A100 and H100 from the same command's
# output as published for those GPUs. The media-extension profiles (`1g.*gb+me`, at most one
# per GPU, for NVDEC/JPEG/OFA) are left out: no layout here needs them, and a layout naming one
# is refused rather than half-supported.
MIG_GPUS: dict[str, MigGpu] = {
    "A100-40GB": MigGpu(
        "A100-40GB",
        "0x20B010DE",
        "a100.40gb",
        _mig_profiles(
            [
                ("1g.5gb", 1, 1, 4.75, 7),
                ("1g.10gb", 1, 2, 9.75, 4),
                ("2g.10gb", 2, 2, 9.75, 3),
                ("3g.20gb", 3, 4, 19.62, 2),
                ("4g.20gb", 4, 4, 19.62, 1),
                ("7g.40gb", 7, 8, 39.50, 1),
            ]
        ),
        {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1},
        bottlerocket_profiles=("1g.5gb", "2g.10gb", "3g.20gb", "7g.40gb"),
    ),
    "A100-80GB": MigGpu(
        "A100-80GB",
        "0x20B210DE",
        "a100.80gb",
        _mig_profiles(
            [
                ("1g.10gb", 1, 1, 9.50, 7),
                ("1g.20gb", 1, 2, 19.50, 4),
                ("2g.20gb", 2, 2, 19.50, 3),
                ("3g.40gb", 3, 4, 39.25, 2),
                ("4g.40gb", 4, 4, 39.25, 1),
                ("7g.80gb", 7, 8, 79.00, 1),
            ]
        ),
        {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
        bottlerocket_profiles=("1g.10gb", "2g.20gb", "3g.40gb", "7g.80gb"),
    ),
    "H100-80GB": MigGpu(
        "H100-80GB",
        "0x233010DE",
        "h100.80gb",
        _mig_profiles(
            [
                ("1g.10gb", 1, 1, 9.75, 7),
                ("1g.20gb", 1, 2, 19.62, 4),
                ("2g.20gb", 2, 2, 19.62, 3),
                ("3g.40gb", 3, 4, 39.50, 2),
                ("4g.40gb", 4, 4, 39.50, 1),
                ("7g.80gb", 7, 8, 79.25, 1),
            ]
        ),
        {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1},
        bottlerocket_profiles=("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "7g.80gb"),
    ),
    "H200-141GB": MigGpu(
        "H200-141GB",
        "0x233510DE",
        "h200.141gb",
        _mig_profiles(
            [
                ("1g.18gb", 1, 1, 16.00, 7),
                ("1g.35gb", 1, 2, 32.50, 4),
                ("2g.35gb", 2, 2, 32.50, 3),
                ("3g.71gb", 3, 4, 69.75, 2),
                ("4g.71gb", 4, 4, 69.75, 1),
                ("7g.141gb", 7, 8, 140.00, 1),
            ]
        ),
        {"1g.18gb": 2, "2g.35gb": 1, "3g.71gb": 1},
        bottlerocket_profiles=("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "7g.141gb"),
    ),
    # Blackwell (g7e, p6-b200, p6-b300). Profiles and counts from config-default.yaml v0.15.0:
    # each GPU's all-balanced entry is filtered by its PCI ID (0x2BB5 "RTX PRO 6000 Blackwell",
    # 0x2901 "B200", 0x3182 "B300"); the all-<profile> entries carry no filter, and which GPU
    # each belongs to is read from the balanced mix and the memory sizes (test_mig.py checks
    # every name's GB is its share of its GPU's). The NVIDIA MIG User Guide's supported-GPUs
    # table (docs.nvidia.com, read via the docs index) gives at most 4 instances on the RTX PRO
    # 6000 Blackwell and 7 on the B200; the copy read has no B300 row. Device plugin v0.20.0
    # has no profile table: with `mixed` it registers nvidia.com/mig-<profile> for every
    # profile the driver reports whose compute and GPU instance sizes match (internal/rm/rm.go,
    # VisitMigProfiles; names from vendored go-nvlib mig_profile.go), so it knows these as it
    # knows the others; on real Blackwell hardware under driver 580 that is not confirmed.
    # Bottlerocket: kernel-kit PRs #136 (B200, 2025-05) and #300 (RTX PRO 6000, 2025-10) add
    # them to nvidia-migmanager upstream, but the Bottlerocket release that ships each and the
    # RTX PRO 6000's settings key are not confirmed here, and no B300 support was seen: MIG on
    # Bottlerocket is refused for all three (bottlerocket_key None).
    #
    # RTX PRO 6000 Blackwell Server Edition (g7e): 4 compute and 4 memory slices (profile
    # names and counts 4/2/1, like the A30's quarters). Memory GiB: `nvidia-smi mig -lgip` in
    # bigstack-oss/cubecos #312 (1g.24gb 23.12, 2g.48gb 46.50; bottlerocket-kernel-kit #300
    # and GoogleCloudPlatform/container-engine-accelerators #564 read 23.62 for 1g.24gb on
    # another driver: the lower is kept). 4g.96gb: estimated as two 2g.48gb.
    "RTX-PRO-6000-96GB": MigGpu(
        "RTX-PRO-6000-96GB",
        "0x2BB510DE",
        None,
        _mig_profiles(
            [("1g.24gb", 1, 1, 23.12, 4), ("2g.48gb", 2, 2, 46.50, 2), ("4g.96gb", 4, 4, 93.00, 1)],
            estimated=("4g.96gb",),
        ),
        {"1g.24gb": 2, "2g.48gb": 1},
        compute_slices=4,
        memory_slices=4,
    ),
    # B200 (p6-b200). Memory GiB: `nvidia-smi mig -lgip` in NVIDIA/mig-parted #187 (B200,
    # 2025-03: 1g.23gb 20.50, 1g.45gb and 2g.45gb 44.25; #166 read 22.00 for 1g.23gb on an
    # earlier driver); 3g/4g.90gb 89.00 and 7g.180gb 178.50 from a third-party `-lgip` of a
    # B200 (a TensorRT cookbook note, 2026-09) whose first rows match #187's.
    "B200-180GB": MigGpu(
        "B200-180GB",
        "0x290110DE",
        None,
        _mig_profiles(
            [
                ("1g.23gb", 1, 1, 20.50, 7),
                ("1g.45gb", 1, 2, 44.25, 4),
                ("2g.45gb", 2, 2, 44.25, 3),
                ("3g.90gb", 3, 4, 89.00, 2),
                ("4g.90gb", 4, 4, 89.00, 1),
                ("7g.180gb", 7, 8, 178.50, 1),
            ]
        ),
        {"1g.23gb": 2, "2g.45gb": 1, "3g.90gb": 1},
    ),
    # B300 SXM6 AC (p6-b300). No `nvidia-smi mig -lgip` reading found: every memory figure is
    # estimated as the profile name's GB times the B200's reading over its name for the same
    # slice size (0.89 for 1/8, 0.98 for 2/8, 0.99 for 4/8 and 8/8), rounded down to 0.25.
    "B300-288GB": MigGpu(
        "B300-288GB",
        "0x318210DE",
        None,
        _mig_profiles(
            [
                ("1g.34gb", 1, 1, 30.25, 7),
                ("1g.67gb", 1, 2, 65.75, 4),
                ("2g.67gb", 2, 2, 65.75, 3),
                ("3g.135gb", 3, 4, 133.50, 2),
                ("4g.135gb", 4, 4, 133.50, 1),
                ("7g.269gb", 7, 8, 266.75, 1),
            ],
            estimated=("1g.34gb", "1g.67gb", "2g.67gb", "3g.135gb", "4g.135gb", "7g.269gb"),
        ),
        {"1g.34gb": 2, "2g.67gb": 1, "3g.135gb": 1},
    ),
}

# Which MIG GPU each MIG-capable instance type carries (FACTS: p4d A100 40GB, p4de A100 80GB,
# p5 H100 80GB, p5e/p5en H200 141GB; Karpenter's instance-gpu-name: g7e rtx-pro-server-6000,
# p6-b200 b200, p6-b300 b300). Every other GPU here (T4, A10G, L4, L40S, and the L4 vGPU
# slices of g6f/gr6f) has no MIG.
MIG_GPU_OF_INSTANCE: dict[str, str] = {
    "p4d.24xlarge": "A100-40GB",
    "p4de.24xlarge": "A100-80GB",
    "p5.4xlarge": "H100-80GB",
    "p5.48xlarge": "H100-80GB",
    "p5e.48xlarge": "H200-141GB",
    "p5en.48xlarge": "H200-141GB",
    **{name: "RTX-PRO-6000-96GB" for name in GPU_INSTANCES if GPU_INSTANCES[name].family == "g7e"},
    "p6-b200.48xlarge": "B200-180GB",
    "p6-b300.48xlarge": "B300-288GB",
}


def mig_gpu(instance_type: str) -> MigGpu | None:
    """The MIG GPU of an instance type, or None where its GPUs have no MIG."""
    name = MIG_GPU_OF_INSTANCE.get(instance_type)
    return MIG_GPUS[name] if name else None


# --- HAMi (github.com/Project-HAMi/HAMi): memory-capped software slices ----------------------

# Chart `hami` 2.10.0 = tag v2.10.0 (commit 4707fb02); the values, templates and value paths
# this program's output is checked against are in shared/reference/hami-2.10.0.
HAMI_CHART = "hami"
HAMI_CHART_REPO = "https://project-hami.github.io/HAMi/"
HAMI_CHART_VERSION = "2.10.0"
# With release `hami` the chart's fullname is `hami` (the release name contains the chart's
# name, templates/_helpers.tpl): objects hami-scheduler, hami-device-plugin, hami-webhook.
HAMI_RELEASE_NAME = "hami"
# Its own namespace: the device plugin needs the `privileged` Pod Security level.
HAMI_NAMESPACE = "hami-system"
# The scheduler name pods of hami profiles carry (values `schedulerName`, the chart's default):
# the extender's kube-scheduler runs under it and the webhook mutates only such pods while
# scheduler.forceOverwriteDefaultScheduler is false (pkg/scheduler/webhook.go, Handle).
HAMI_SCHEDULER_NAME = "hami-scheduler"
# What a pod of a hami profile requests (values resourceName / resourceMem / resourceCores, the
# chart's defaults; pkg/device/nvidia/device.go). Only nvidia.com/gpu reaches a node's
# allocatable (GPUs x deviceSplitCount); memory and cores are placed by HAMi's extender alone.
HAMI_MEMORY_RESOURCE = "nvidia.com/gpumem"  # MiB per vGPU, a plain integer
HAMI_CORES_RESOURCE = "nvidia.com/gpucores"  # percent of one GPU's SMs
# devices.nvidia.gpuCorePolicy: `default` (HAMi-core applies a container's gpucores limit only
# while another container uses the GPU: vGPUmonitor's feedback switches it), `force` (always),
# `disable` (never; gpucores then only places pods). pkg/device/nvidia/device.go consts,
# HAMi-core set_env_utilization_switch.
HAMI_CORE_POLICIES = ("default", "force", "disable")
# The node annotation the device plugin writes: a JSON list, one entry per GPU, each with its
# `count` (deviceSplitCount), `devmem` (MiB x memoryScaling), `devcore`, `type` and `health`
# (pkg/device/nvidia/device.go RegisterAnnos; pkg/device/devices.go DeviceInfo).
HAMI_NODE_REGISTER_ANNOTATION = "hami.io/node-nvidia-register"
# HAMi's per-container metrics, served by its device plugin's vGPUmonitor sidecar on :9394
# (Service <fullname>-device-plugin-monitor, port 31992; cmd/vGPUmonitor/metrics.go), with
# these labels: what dcgm-exporter cannot attribute on a hami node (its device IDs
# GPU-<uuid>-<n> are not ones dcgm-exporter 4.5.3-4.8.2 maps to a GPU).
HAMI_MEMORY_USED_METRIC = "hami_vgpu_memory_used_bytes"
HAMI_MEMORY_LIMIT_METRIC = "hami_vgpu_memory_limit_bytes"
HAMI_CONTAINER_METRIC_LABELS = frozenset(
    {"namespace", "pod", "container", "vdevice_index", "device_uuid"}
)
# Pod labels of the chart's two workloads (templates/device-plugin/daemonsetnvidia.yaml,
# templates/scheduler/deployment.yaml).
HAMI_COMPONENT_LABEL = "app.kubernetes.io/component"
HAMI_DEVICE_PLUGIN_COMPONENT = "hami-device-plugin"
HAMI_SCHEDULER_COMPONENT = "hami-scheduler"
# The scheduler's kube-scheduler container: the upstream image, whose registry EKS nodes pull
# from through the VPC's NAT (the chart's default is an Aliyun mirror in China). Tag v1.<minor>.0
# is published with every Kubernetes minor (kubernetes/kubernetes CHANGELOG-1.<minor>.md,
# "Container Images"; v1.31.0 to v1.36.0 seen pulled by digest in public manifests), and the
# version-skew policy only forbids a kube-scheduler newer than the API server.
KUBE_SCHEDULER_REGISTRY = "registry.k8s.io"
KUBE_SCHEDULER_REPOSITORY = "kube-scheduler"


def kube_scheduler_tag(kubernetes_version: str) -> str:
    """The kube-scheduler image tag for a control plane's minor version (`1.35` -> v1.35.0)."""
    return f"v{kubernetes_version}.0"


# Where HAMi-core lives on the host: global.gpuHookPath, with the library, ld.so.preload and the
# per-container cache directories under <hook>/vgpu. The plugin returns host paths built from
# the hook path (plugin/server.go Allocate, plugin/util.go GetLibPath) while the chart mounts
# devicePlugin.libPath at <hook>/vgpu and the monitor reads <hook>/vgpu/containers from
# devicePlugin.monitor.ctrPath, so the three are set together (HAMi #2861). AL2023: the chart's
# default /usr/local. Bottlerocket: /usr/local is read-only (HAMi #1713); /var/lib is writable.
HAMI_HOOK_PATH = {"al2023": "/usr/local", "bottlerocket": "/var/lib/hami"}
# How HAMi's device plugin hands a pod's GPUs to the NVIDIA runtime (devicePlugin.
# deviceListStrategy; its flag --device-list-strategy, cmd/device-plugin/nvidia/main.go). The
# chart's default, envvar, sets NVIDIA_VISIBLE_DEVICES, which Bottlerocket's runtime ignores in
# unprivileged containers (settings.nvidia-container-runtime.visible-devices-envvar-when-
# unprivileged, default false; bottlerocket-os/bottlerocket #3718): there the devices go as
# mounts under /var/run/nvidia-container-devices, as Bottlerocket's own plugin passes them
# (visible-devices-as-volume-mounts, default true). HAMi's Allocate handles both (plugin/
# server.go getAllocateResponse). AL2023's runtime honours the variable: the default stays.
HAMI_BOTTLEROCKET_DEVICE_LIST_STRATEGY = "volume-mounts"
# devicePlugin.deviceMemoryScaling above 1 is HAMi-core's oversubscription (the plugin sets
# CUDA_OVERSUBSCRIBE=true). No upstream maximum; this project's bound, so that pods never declare
# more than twice the GPU's memory between them.
HAMI_MAX_MEMORY_SCALING = 2.0

# Chart values this program sets. The 2.10.0 templates read each of these paths: the first set
# is in shared/reference/hami-2.10.0/values-paths.txt (a grep of literal `.Values.x`);
# HAMI_HELPER_VALUE_PATHS are read through helper dicts (templates/_helpers.tpl: the
# `hami.scheduler.kubeScheduler.image` helper hands `.Values.scheduler.kubeScheduler.image` to
# _commons.tpl `common.images.image`, which reads `.imageRoot.registry` and
# `.imageRoot.repository`), which that grep cannot see. Helm ignores a misspelt value.
HAMI_LISTED_VALUE_PATHS = frozenset(
    {
        "devicePlugin.nvidiaNodeSelector",
        "devicePlugin.tolerations",
        "devicePlugin.deviceSplitCount",
        "devicePlugin.deviceMemoryScaling",
        "devicePlugin.service.type",
        "devicePlugin.libPath",
        "devicePlugin.monitor.ctrPath",
        "devicePlugin.deviceListStrategy",
        "devices.nvidia.gpuCorePolicy",
        "global.gpuHookPath",
        "scheduler.kubeScheduler.image.tag",
        "scheduler.forceOverwriteDefaultScheduler",
        "scheduler.nodeLabelSelector",
        "scheduler.nodeSelector",
        "scheduler.patch.nodeSelector",
        "scheduler.service.type",
    }
)
HAMI_HELPER_VALUE_PATHS = frozenset(
    {
        "scheduler.kubeScheduler.image.registry",
        "scheduler.kubeScheduler.image.repository",
    }
)
HAMI_VALUE_PATHS = HAMI_LISTED_VALUE_PATHS | HAMI_HELPER_VALUE_PATHS

# --- Workloads --------------------------------------------------------------------------------

# A long-running CUDA base image for the demo Deployment: `nvidia-smi -L` then sleep, so the
# pods stay Running and occupy their virtual GPU (a sample that exits would crash-loop).
DEMO_IMAGE = "nvcr.io/nvidia/cuda:12.9.1-base-ubuntu24.04"
# PyTorch with CUDA 12.8: runs on the T4 (sm_75), A10G, L4, L40S, A100 and H100 alike, with the
# AL2023 NVIDIA AMI's driver. The sharing benchmark script is mounted into it.
BENCHMARK_IMAGE = "pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime"

# --- Karpenter (github.com/aws/karpenter-provider-aws) ---------------------------------------

# Chart and controller version whose CRDs, values and IAM policy this program is checked
# against (shared/reference/karpenter-1.14.1). NodeOverlay exists since 1.7.
KARPENTER_VERSION = "1.14.1"
KARPENTER_MIN_VERSION = (1, 7, 0)
KARPENTER_CHART = "oci://public.ecr.aws/karpenter/karpenter"
# Helm installs a chart's crds/ once and never upgrades them; Karpenter publishes its CRDs as
# a chart of their own, released with the same version.
KARPENTER_CRD_CHART = "oci://public.ecr.aws/karpenter/karpenter-crd"
KARPENTER_RELEASE_NAME = "karpenter"
KARPENTER_CRD_RELEASE_NAME = "karpenter-crd"
KARPENTER_SERVICE_ACCOUNT = "karpenter"
KARPENTER_REPLICAS = 2
KARPENTER_DISCOVERY_TAG = "karpenter.sh/discovery"
# On an existing cluster's subnets and security group, beside each discovery tag this program
# added: which stack added it (`<project>/<stack>`). A later run reads it to tell its own tag
# (kept, and removed on destroy) from one that was there before (never touched). EC2 tag keys
# and values allow letters, digits, spaces and + - = . _ : / @.
DISCOVERY_TAG_ADDED_BY = "eks-gpu-slicing/discovery-tag-added-by"
NODE_POOL_API_VERSION = "karpenter.sh/v1"
NODE_OVERLAY_API_VERSION = "karpenter.sh/v1alpha1"
NODE_CLASS_GROUP = "karpenter.k8s.aws"
NODE_CLASS_API_VERSION = f"{NODE_CLASS_GROUP}/v1"
NODE_CLASS_KIND = "EC2NodeClass"
# Well-known labels Karpenter sets on every node it launches (and requirements may use).
NODE_POOL_LABEL = "karpenter.sh/nodepool"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
KARPENTER_CAPACITY_TYPES = ("on-demand", "spot", "reserved")
# The AMI release node classes pin by default (`karpenter.amiRelease`, as `al2023@<release>`;
# the NVIDIA variant is picked for GPU instances): the first that carries every Kubernetes
# version offered here (AL2023_NVIDIA_AMI_RELEASES), so a control-plane upgrade among them
# keeps pools launching. Pinned, never @latest: nodes roll (drift) only when it changes.
KARPENTER_AL2023_AMI_RELEASE = "v20260610"
# AL2023's root device.
AL2023_ROOT_DEVICE = "/dev/xvda"
# The Karpenter node role's managed policies (getting-started CloudFormation, v1.14).
KARPENTER_NODE_POLICIES = (
    "AmazonEKSWorkerNodePolicy",
    "AmazonEKS_CNI_Policy",
    "AmazonEC2ContainerRegistryPullOnly",
    "AmazonSSMManagedInstanceCore",
)
# EKS Pod Identity: the agent add-on and the service principal roles trust.
POD_IDENTITY_AGENT_ADDON = "eks-pod-identity-agent"
POD_IDENTITY_PRINCIPAL = "pods.eks.amazonaws.com"
# Cluster authentication modes that have access entries (EKS AccessConfigResponse); nodes
# and Karpenter's controller get in through them, never through aws-auth.
ACCESS_ENTRY_AUTHENTICATION_MODES = ("API", "API_AND_CONFIG_MAP")
# Interruption queue retention (seconds): older events are stale by the time they are read.
KARPENTER_QUEUE_RETENTION_S = 300
# Chart values this program sets; the 1.14.1 templates read each of these paths
# (shared/reference/karpenter-1.14.1/values-paths.txt). Maps the chart reads whole end here.
KARPENTER_VALUE_PATHS = frozenset(
    {
        "settings.clusterName",
        "settings.interruptionQueue",
        "settings.featureGates.nodeOverlay",
        "serviceAccount.name",
        "replicas",
        "nodeSelector",
    }
)


# --- AWS Regions --------------------------------------------------------------------------------

# The commercial partition's (`aws`) Regions: the AWS Regions and Availability Zones guide
# (docs.aws.amazon.com/global-infrastructure, "AWS Regions"; its document history adds
# ap-east-2 in June 2025 and ap-southeast-6 in September 2025), the same list as pulumi-aws
# 7.51's `Region` enum less its aws-cn, aws-us-gov, aws-eusc and ISO partitions.
AWS_COMMERCIAL_REGIONS = (
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
)
# "Each Region has at least three Availability Zones" (same guide, "AWS Availability Zones").
MIN_ZONES_PER_REGION = 3
# An EKS cluster's subnets must span at least two Availability Zones (Amazon EKS User Guide,
# "View Amazon EKS networking requirements for VPC and subnets").
EKS_MIN_AVAILABILITY_ZONES = 2
# A zone ID is the Region's code shortened: each direction word to its initials (east: e,
# northeast: ne, central: c, gov: g), dashes dropped, e.g. eu-west-1 -> euw1-az1,
# ap-southeast-7 -> apse7-az1, us-gov-west-1 -> usgw1-az1.
_REGION_WORD_INITIALS = {
    "north": "n",
    "south": "s",
    "east": "e",
    "west": "w",
    "central": "c",
    "northeast": "ne",
    "northwest": "nw",
    "southeast": "se",
    "southwest": "sw",
    "gov": "g",
}


def zone_id_prefix(region: str) -> str:
    """The part of a Region's zone IDs before `-az<n>` (eu-west-1 -> euw1)."""
    area, *words = region.split("-")
    return area + "".join(_REGION_WORD_INITIALS.get(word, word) for word in words)


# --- Existing clusters ----------------------------------------------------------------------------

# Tags every AWS resource of a stack carries: this project's name and the stack's. `tags` may
# not set them (they would silently replace these).
PROJECT_TAG = "project"
STACK_TAG = "stack"

# How GPU nodes this stack adds to a cluster it was given keep the NVIDIA GPU Operator's
# operands (driver, toolkit, device plugin, GFD, DCGM, exporters, validator, MIG manager) off:
# each operand's DaemonSet selects `nvidia.com/gpu.deploy.<operand>: "true"` (gpu-operator
# v26.7.0 assets/state-*/…daemonset.yaml), and the operator sets a missing one to "true" but
# keeps any value a node has (controllers/state_manager.go, addGPUStateLabels: honoured since
# v24.9.0 at least). "false" also survives k8s-mig-manager v0.15.0, which pauses and restores
# only labels that are not "false" and sets the five it knows to "true" where absent
# (pkg/mig/reconfigure/reconfigure.go, maybeSetPaused/maybeSetTrue).
# Not GPU_OPERATOR_OPERANDS_LABEL=false instead: then the operator deletes every
# nvidia.com/gpu.deploy.* label of the node (removeAllGPUStateLabels), these and, from v26.7.0,
# MIG_DEPLOY_CLIENT_LABEL, which our MIG-paused DaemonSets select on; and after a MIG change
# the manager sets the five it knows back to "true", pulling the operands onto the node.
GPU_OPERATOR_OPERAND_LABELS = (
    "nvidia.com/gpu.deploy.driver",
    "nvidia.com/gpu.deploy.container-toolkit",
    MIG_DEPLOY_DEVICE_PLUGIN_LABEL,
    MIG_DEPLOY_GFD_LABEL,
    "nvidia.com/gpu.deploy.dcgm",
    MIG_DEPLOY_DCGM_EXPORTER_LABEL,
    "nvidia.com/gpu.deploy.node-status-exporter",
    "nvidia.com/gpu.deploy.operator-validator",
    "nvidia.com/gpu.deploy.mig-manager",
    # No operand of the operator any more, but one of the five the MIG manager sets.
    "nvidia.com/gpu.deploy.nvsm",
)
GPU_OPERATOR_OPERAND_OFF = "false"
# EC2 allows at most 16 security groups per network interface (a quota, 5 by default): the
# cluster security group and at most 15 of existingCluster.nodeSecurityGroupIds.
MAX_SECURITY_GROUPS_PER_INTERFACE = 16
