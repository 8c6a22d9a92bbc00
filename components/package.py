"""GpuSharing as a Pulumi component package: the same component, for programs in any language.

`pulumi package add` runs provider/__main__.py, which serves the class below with Pulumi's
component provider host; the host infers the package schema (provider/schema.json, reviewed
and tested) from the type annotations and docstrings here. So this module must not use
`from __future__ import annotations`: the analyzer needs the annotations as types.

The inputs are the stack's configuration sections under their config key names (camelCase
in the schema): a stack file's `existingCluster`, `sharing`, `gpuNodeGroups`, ... can be
pasted as the component's properties. They are turned back into the raw configuration the
stack reads and validated by the same code (`load_settings`), so the component refuses what
the stack refuses, with the same messages, before it registers anything. Then it reads and
checks the cluster as an existing-cluster stack does and runs the stack's own GpuSharing body.

Every input is plain (known when the program runs, not an Output): the values decide which
resources exist and are validated before any is registered, as the stack's config is.
"""

import datetime as dt
import math
import typing
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi

from components import gpu_sharing
from components.cluster_source import existing_cluster_handle, read_existing_cluster
from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import look_up_aws_context
from eks_gpu_slicing.settings import ConfigError, Settings, load_settings

# --- Inputs: one TypedDict per configuration section ------------------------------------------
# Field names are the config keys in snake_case (the schema camel-cases them back); a key
# added to a settings section needs a field here, then `make schema` (docs/component-package.md).


class ExistingCluster(TypedDict):
    """The EKS cluster GPU sharing is added to; it is read, never changed."""

    name: str
    (
        "Name of the EKS cluster (read with eks:DescribeCluster when the program runs). It must "
        "authenticate with API or API_AND_CONFIG_MAP (access entries)."
    )
    private_subnet_ids: list[str]
    """Private subnets of the cluster's VPC where the GPU node groups run (subnet-...)."""
    pod_identity_agent: NotRequired[str]
    (
        "Needed only to install Karpenter: `installed` when the cluster already runs the eks-pod-"
        "identity-agent add-on, `create` to add it (and remove it on destroy)."
    )
    system_node_selector: NotRequired[dict[str, str]]
    (
        "Node labels of the cluster's system nodes, where Karpenter's controller and Node "
        "Feature Discovery's master and gc run (default: no selector, any untainted node)."
    )
    node_security_group_ids: NotRequired[list[str]]
    (
        "Security groups the cluster's other nodes run in besides the cluster security group "
        "(sg-...): GPU nodes get them too, beside the cluster security group."
    )


class MigPartitioning(TypedDict):
    """How each GPU of a `mig` profile is split into hardware slices (docs/mig.md)."""

    layout: Any
    (
        "A catalogue layout name (`all-<profile>`, e.g. `all-1g.10gb`, or `all-balanced`), or "
        "a map of slice profile to count per GPU (e.g. {1g.10gb: 4, 3g.40gb: 1}). A string or "
        "a map: the schema has no type for either-or, so it is checked by the stack's rules."
    )
    strategy: str
    (
        "The device plugin's MIG strategy: `single` (every slice is nvidia.com/gpu; uniform "
        "layouts only) or `mixed` (one resource per slice type, nvidia.com/mig-<profile>)."
    )


class SharingProfile(TypedDict):
    """How each physical GPU on a node is advertised: one device, `replicas` virtual ones, or
    hardware slices (MIG)."""

    strategy: NotRequired[str]
    """`time-slicing` (the default), `mps`, `mig` or `none`."""
    replicas: NotRequired[int]
    (
        "Virtual GPUs per physical GPU, at least 2 (at most 48 with MPS); required unless the "
        "strategy is `none`, where it must be left out."
    )
    rename_by_default: NotRequired[bool]
    (
        "Advertise the shared GPUs as `nvidia.com/gpu.shared` instead of `nvidia.com/gpu` "
        "(default false)."
    )
    fail_requests_greater_than_one: NotRequired[bool]
    (
        "Refuse pods that ask for more than one replica; unset: the device plugin's default for "
        "the strategy (false for time-slicing, true for MPS)."
    )
    mig: NotRequired[MigPartitioning]
    """With strategy `mig`: the layout and MIG strategy (`replicas` then time-slices each slice)."""


class GpuNodeGroup(TypedDict):
    """An EKS managed node group of one NVIDIA GPU instance type, shared per one profile."""

    instance_type: str
    """A supported NVIDIA GPU instance type, e.g. g4dn.xlarge, g5.2xlarge, p4d.24xlarge."""
    min_size: int
    """Fewest nodes (0 or more)."""
    desired_size: int
    """Nodes to start with, between minSize and maxSize."""
    max_size: int
    """Most nodes (1 or more)."""
    disk_size_gi_b: NotRequired[int]
    """Root volume size in GiB, 20 to 16384 (default 100)."""
    capacity_type: NotRequired[str]
    """`ON_DEMAND` (the default) or `SPOT`."""
    sharing: NotRequired[str]
    """Name of the sharing profile of its GPUs (default `default`)."""
    ami_type: NotRequired[str]
    (
        "`AL2023_x86_64_NVIDIA` (the default; the device plugin runs as a Helm release) or "
        "`BOTTLEROCKET_x86_64_NVIDIA` (its own plugin, set up from the profile). Changing it "
        "replaces the group."
    )


class DevicePlugin(TypedDict):
    """The NVIDIA device plugin Helm release and its sharing ConfigMap."""

    chart_version: NotRequired[str]
    """Exact chart version (MAJOR.MINOR.PATCH); the values are checked against the default."""
    namespace: NotRequired[str]
    """Namespace of the release (not `default`)."""
    default_profile: NotRequired[str]
    """Sharing profile for GPU nodes without the config label (default `default`)."""
    gfd: NotRequired[bool]
    """Also run GPU Feature Discovery, which labels nodes with GPU model and sharing."""


class DemoWorkload(TypedDict):
    """A Deployment of pods that each ask for one virtual GPU."""

    enabled: NotRequired[bool]
    """Create it (default false)."""
    replicas: NotRequired[int]
    """Number of pods (0 or more, default 5)."""
    image: NotRequired[str]
    """Container image pinned to a tag other than latest, or a digest."""
    namespace: NotRequired[str]
    """Its own namespace, which enforces the restricted Pod Security Standard."""
    profile: NotRequired[str]
    """Sharing profile whose nodes it runs on (default: the device plugin's default)."""
    tenant: NotRequired[str]
    """Run it as this tenant: in the tenant's namespace, within its quota (namespace left out)."""


class Benchmark(TypedDict):
    """The GPU sharing benchmark as a Kubernetes Job on each chosen GPU node group."""

    enabled: NotRequired[bool]
    """Create the Jobs (default false)."""
    image: NotRequired[str]
    """Container image pinned to a tag other than latest, or a digest."""
    node_groups: NotRequired[list[str]]
    """GPU node groups to measure; all of them when left out."""
    models: NotRequired[list[str]]
    """Models to run: a non-empty subset of mlp, transformer."""
    modes: NotRequired[list[str]]
    (
        "Modes to compare: a non-empty subset of exclusive, time-slicing (and the others the "
        "benchmark knows)."
    )
    duration_seconds: NotRequired[float]
    """Seconds per measurement, more than 0 and at most 60."""
    repetitions: NotRequired[int]
    """Measurements per case, 1 to 10."""
    namespace: NotRequired[str]
    """Namespace of the Jobs, which enforces the restricted Pod Security Standard."""


class GpuMetrics(TypedDict):
    """The NVIDIA DCGM exporter on every GPU node, with per-pod attribution."""

    enabled: NotRequired[bool]
    """Install it (default false)."""
    chart_version: NotRequired[str]
    """Exact dcgm-exporter chart version (MAJOR.MINOR.PATCH)."""
    namespace: NotRequired[str]
    """Namespace of the release (not `default`: the exporter runs with hostPID)."""
    service_monitor: NotRequired[bool]
    """Also create a ServiceMonitor (the Prometheus Operator's CRDs must be installed)."""
    interval: NotRequired[str]
    """Scrape interval as a Prometheus duration, at least 1s (default 15s)."""


class KarpenterNodePool(TypedDict):
    """A Karpenter NodePool and its EC2NodeClass: GPU instances shared per one profile."""

    instance_types: list[str]
    """Supported NVIDIA GPU instance types the pool may launch (at least one, no repeats)."""
    limits: dict[str, str]
    (
        "Upper bounds of the pool as Kubernetes quantities, e.g. cpu: '32', memory: 128Gi (at "
        "least one: without limits it can launch GPU instances without bound). A whole number is "
        "passed on as a number, as in a stack file."
    )
    capacity_types: NotRequired[list[str]]
    """Purchase options: a non-empty list of on-demand, spot, reserved (default on-demand)."""
    expire_after: NotRequired[str]
    """Node lifetime as a Karpenter duration (e.g. 720h) or Never."""
    consolidate_after: NotRequired[str]
    """Wait before consolidating, as a Karpenter duration (default 5m)."""
    consolidation_policy: NotRequired[str]
    """`WhenEmpty` (the default: never evict running GPU pods) or `WhenEmptyOrUnderutilized`."""
    max_pods: NotRequired[int]
    """Pods per node, 1 to 737; unset: Karpenter derives it from the instance type."""
    volume_size_gi_b: NotRequired[int]
    """Root volume size in GiB, 20 to 16384 (default 100)."""
    sharing: NotRequired[str]
    """Name of the sharing profile of its GPUs (default `default`)."""
    weight: NotRequired[int]
    """Priority among pools, 1 to 100."""


class Karpenter(TypedDict):
    """Karpenter: install its controller here, or only add GPU pools to one that runs."""

    enabled: NotRequired[bool]
    """Use Karpenter (default false)."""
    version: NotRequired[str]
    """Exact Karpenter version to install (one with NodeOverlay)."""
    namespace: NotRequired[str]
    """Namespace of the controller."""
    ami_release: NotRequired[str]
    (
        "EKS-optimized AMI release of the pools' nodes (v<YYYYMMDD>); it must carry the cluster's"
        " Kubernetes version."
    )
    node_pools: NotRequired[dict[str, KarpenterNodePool]]
    """GPU node pools by name."""
    install: NotRequired[bool]
    (
        "false: a Karpenter already runs on the cluster; only its pools are added (default true)."
        " Its NodeOverlays need the NodeOverlay feature gate."
    )
    node_role_name: NotRequired[str]
    """With install false: the IAM role name of the running Karpenter's nodes."""
    discovery_tag_value: NotRequired[str]
    (
        "With install false: the value of its karpenter.sh/discovery tag (default: the cluster's "
        "name)."
    )


class TenantDefaults(TypedDict):
    """CPU and memory for a tenant's containers that set none (a LimitRange); no GPU slices."""

    cpu_request: NotRequired[str]
    """Default CPU request as a Kubernetes quantity (e.g. 100m)."""
    cpu_limit: NotRequired[str]
    """Default CPU limit (e.g. 1); without cpuRequest the request equals it."""
    memory_request: NotRequired[str]
    """Default memory request (e.g. 256Mi)."""
    memory_limit: NotRequired[str]
    """Default memory limit (e.g. 1Gi); without memoryRequest the request equals it."""


class Tenant(TypedDict):
    """A team on the shared GPUs: its namespace, its quota of slices, defaults, principals."""

    quota: dict[str, int]
    (
        "Slices the team may hold at once, keyed by sharing profile or by resource "
        "(nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-<profile>), 0 to 100000 each; a "
        "ResourceQuota on requests.<resource>, every other GPU resource at 0."
    )
    namespace: NotRequired[str]
    """Its namespace, created by the component (default: the tenant's name)."""
    pod_security: NotRequired[str]
    """Pod Security Standards level the namespace enforces: `privileged`, `baseline` or
    `restricted` (the default)."""
    defaults: NotRequired[TenantDefaults]
    """CPU and memory for containers that set none."""
    principals: NotRequired[list[str]]
    (
        "IAM role or user ARNs (at most 20) given AmazonEKSEditPolicy in the namespace only, "
        "through EKS access entries (the cluster must authenticate with API or "
        "API_AND_CONFIG_MAP)."
    )


class GpuSharingArgs(TypedDict):
    """Inputs of GpuSharing: the stack's configuration keys for an existing cluster."""

    existing_cluster: ExistingCluster
    """The cluster to add GPU sharing to, by name, and the subnets for its GPU nodes."""
    kubernetes_version: NotRequired[str]
    (
        "The cluster's Kubernetes minor version (e.g. '1.35'); checked against the cluster's own "
        "when given, which is taken when left out."
    )
    sharing: NotRequired[dict[str, SharingProfile]]
    """Sharing profiles by name (default: `default`, time-slicing with 10 replicas)."""
    gpu_node_groups: NotRequired[dict[str, GpuNodeGroup]]
    """GPU managed node groups by name (at least one, or Karpenter node pools)."""
    device_plugin: NotRequired[DevicePlugin]
    """The NVIDIA device plugin release."""
    demo_workload: NotRequired[DemoWorkload]
    """A demo Deployment on the shared GPUs."""
    benchmark: NotRequired[Benchmark]
    """The in-cluster sharing benchmark."""
    gpu_metrics: NotRequired[GpuMetrics]
    """The DCGM exporter."""
    karpenter: NotRequired[Karpenter]
    """Karpenter, installed here or already running."""
    tags: NotRequired[dict[str, str]]
    """AWS tags for every AWS resource it creates (besides project and stack)."""
    tenants: NotRequired[dict[str, Tenant]]
    """Teams sharing the GPUs by name: namespace, quota of slices, defaults, principals."""


# --- Outputs ---------------------------------------------------------------------------------


class GpuNodeGroupReport(TypedDict):
    """What a GPU node group advertises to the scheduler, and what each virtual GPU is."""

    instance_type: str
    """EC2 instance type."""
    ami_type: str
    """EKS AMI type."""
    profile: str
    """Sharing profile name."""
    strategy: str
    """Sharing strategy of the profile."""
    replicas: int
    """Virtual GPUs per physical GPU."""
    resource_name: str
    """Extended resource pods request (nvidia.com/gpu or nvidia.com/gpu.shared)."""
    gpu_model: str
    """NVIDIA GPU model."""
    gpu_memory_gi_b: float
    """Memory of one GPU, GiB."""
    gpus_per_node: int
    """Physical GPUs per node."""
    virtual_gpus_per_node: int
    """Virtual GPUs one node advertises."""
    virtual_gpus_at_max_size: int
    """Virtual GPUs of the group at maxSize."""
    gpu_memory_per_virtual_gpu_gi_b: float
    """GPU memory each virtual GPU can count on, GiB."""
    usd_per_virtual_gpu_hour: float
    """On-demand price per virtual GPU and hour, USD."""
    price_source: str
    """Where the price is from (on-demand, region, date)."""
    isolation: str
    """What the strategy isolates between pods, and what it does not."""


class KarpenterNodePoolReport(TypedDict):
    """What a Karpenter pool's nodes advertise to the scheduler."""

    node_pool: str
    """Name of the NodePool object."""
    profile: str
    """Sharing profile name."""
    strategy: str
    """Sharing strategy of the profile."""
    resource_name: str
    """Extended resource pods request."""
    virtual_gpus_per_instance_type: dict[str, int]
    """Virtual GPUs one node of each instance type advertises."""


class TenantQuotaReport(TypedDict):
    """One resource of a tenant's quota and what it stands for when all its slices are used."""

    key: str
    """The quota key it came from: a sharing profile or the resource."""
    slices: int
    """Slices the tenant may hold at once."""
    usd_per_slice_hour_min: float
    """Lowest on-demand price of one slice over the nodes it may land on, USD per hour."""
    usd_per_slice_hour_max: float
    """Highest on-demand price of one slice, USD per hour."""
    usd_per_hour_min: float
    """slices x the lowest price, USD per hour."""
    usd_per_hour_max: float
    """slices x the highest price, USD per hour."""
    gpu_memory_gi_b_min: float
    """slices x the least GPU memory one slice counts on, GiB."""
    gpu_memory_gi_b_max: float
    """slices x the most GPU memory one slice counts on, GiB."""
    instance_types: list[str]
    """Instance types whose nodes advertise it."""


class TenantReport(TypedDict):
    """A tenant: where it runs, who may edit there, and what its quota stands for."""

    namespace: str
    """Its namespace."""
    pod_security: str
    """Pod Security Standards level the namespace enforces."""
    principals: list[str]
    """IAM principals with edit rights in the namespace."""
    quota: dict[str, TenantQuotaReport]
    """Per resource it was given: slices, price and memory."""
    usd_per_hour_min: float
    """The whole quota in use at the lowest prices, USD per hour."""
    usd_per_hour_max: float
    """The whole quota in use at the highest prices, USD per hour."""
    gpu_memory_gi_b_min: float
    """GPU memory the whole quota counts on, at the least per slice, GiB."""
    gpu_memory_gi_b_max: float
    """GPU memory the whole quota counts on, at the most per slice, GiB."""
    price_source: str
    """Where the prices are from (on-demand, region, date)."""


class TenantQuotaTotalReport(TypedDict):
    """One GPU resource over all tenants."""

    quota: int
    """What the tenants' quotas add up to."""
    capacity: int
    """The most the stack can ever offer (absent when a pool has no countable limit)."""


# Kubernetes quantities, int or string in a stack file; the schema (which has no unions) types
# them as strings.
_QUANTITY_MAPS = {(KarpenterNodePool, "limits")}


def plain_config(value: Any, typ: Any, path: str = "") -> Any:
    """Inputs (snake_case keys, as the provider host hands them over) back into the raw
    configuration the stack reads: keys of the input types camel-cased as the schema names
    them, map keys (profile, group and pool names, tags) kept, whole numbers as ints
    (numbers cross the wire as doubles), and a pool limit that is a whole number as an int,
    as an unquoted one is in a stack file. An Output is refused: the values must be known."""
    if isinstance(value, pulumi.Output):
        raise pulumi.RunError(
            f"{path or 'args'}: must be a known value, not an Output: it decides which "
            "resources GpuSharing registers and is validated before any is"
        )
    origin = typing.get_origin(typ)
    if typing.is_typeddict(typ) and isinstance(value, Mapping):
        hints = typing.get_type_hints(typ)
        config = {}
        for key, item in value.items():
            if item is None:
                continue
            if (typ, key) in _QUANTITY_MAPS and isinstance(item, Mapping):
                config[_config_key(key)] = _quantities(item)
            else:
                config[_config_key(key)] = plain_config(item, hints.get(key, Any), _at(path, key))
        return config
    if origin is dict and isinstance(value, Mapping):
        item_type = typing.get_args(typ)[1]
        return {k: plain_config(v, item_type, f"{path}.{k}") for k, v in value.items()}
    if origin is list and isinstance(value, list | tuple):
        item_type = typing.get_args(typ)[0]
        return [plain_config(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
    if typ is Any and isinstance(value, Mapping):  # a MIG layout map: counts as ints
        return {k: plain_config(v, Any, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, float) and value.is_integer() and typ is not float:
        return int(value)
    return value


def _config_key(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _at(path: str, key: str) -> str:
    return f"{path}.{_config_key(key)}" if path else _config_key(key)


def _quantities(limits: Mapping[str, Any]) -> dict[str, Any]:
    return {resource: _quantity(value) for resource, value in limits.items()}


def _quantity(value: Any) -> Any:
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def settings_of_args(args: Mapping[str, Any], stack: str) -> Settings:
    """Validated settings for the component's inputs; ConfigError as the stack's config."""
    return load_settings(plain_config(args, GpuSharingArgs), stack=stack)


class GpuSharing(gpu_sharing.GpuSharing):
    """Shared NVIDIA GPUs (time-slicing or MPS) on an existing EKS cluster."""

    # GPU managed node groups, the NVIDIA device plugin and its sharing ConfigMap, optional
    # Karpenter pools, GPU metrics, a demo and a benchmark: the stack's GpuSharing, with the
    # stack's configuration keys as inputs. One per cluster and program: its parts have fixed
    # names, as the cluster's objects do.

    device_plugin_config_map: pulumi.Output[str]
    """Name of the ConfigMap holding the device plugin's sharing configuration."""
    gpu_node_groups: pulumi.Output[dict[str, GpuNodeGroupReport]]
    """Per GPU node group: what it advertises to the scheduler."""
    karpenter_node_pools: pulumi.Output[dict[str, KarpenterNodePoolReport]] | None
    """Per Karpenter pool: what its nodes advertise (absent without Karpenter)."""
    benchmark_jobs: pulumi.Output[dict[str, str]] | None
    """Per GPU node group: the name of its benchmark Job (absent when off)."""
    tenants: pulumi.Output[dict[str, TenantReport]] | None
    """Per tenant: namespace, principals, and what its quota stands for (absent without)."""
    tenant_quota_totals: pulumi.Output[dict[str, TenantQuotaTotalReport]] | None
    """Per GPU resource: the tenants' quotas added up and the capacity (absent without)."""

    _adopts_stack_parts = False

    def __init__(self, name: str, args: GpuSharingArgs, opts: pulumi.ResourceOptions | None = None):
        try:
            settings = settings_of_args(args, pulumi.get_stack())
        except ConfigError as exc:
            # The stack's message, before anything is registered (as read_settings does).
            raise pulumi.RunError(str(exc)) from None
        for warning in settings.warnings(dt.date.today()):
            pulumi.log.warn(warning)
        # Read and checked before the component registers, as the stack refuses a cluster.
        aws_context = look_up_aws_context(settings)
        read = read_existing_cluster(settings, aws_context)
        pulumi.ComponentResource.__init__(self, gpu_sharing.GPU_SHARING_TYPE, name, None, opts)
        cluster = existing_cluster_handle(read, settings, aws_context, parent=self)
        tags = {
            facts.PROJECT_TAG: facts.PROJECT,
            facts.STACK_TAG: pulumi.get_stack(),
            **settings.tags,
        }
        self._share(
            name,
            gpu_sharing.GpuSharingArgs(
                cluster=cluster, settings=settings, aws=aws_context, tags=tags
            ),
        )


# What provider/__main__.py serves, and what provider/schema.json is generated for. The version
# is the host's own default; a consumer pins a release by the Git tag it adds.
PACKAGE_NAME = facts.COMPONENT_PACKAGE
PACKAGE_VERSION = "0.0.0"
