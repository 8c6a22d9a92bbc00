"""GpuSharing as a Pulumi component package: the same component, for programs in any language.

`pulumi package add` runs provider/__main__.py, which serves the class below through
`GpuSharingProvider`, the SDK's component provider; it infers the package schema
(provider/schema.json, reviewed and tested) from the type annotations and docstrings here and
in components/package_inputs.py. So this module must not use
`from __future__ import annotations`: the analyzer needs the annotations as types.

The inputs are the stack's configuration sections under their config key names (camelCase
in the schema): a stack file's `existingCluster`, `sharing`, `gpuNodeGroups`, ... can be
pasted as the component's properties. Their types are generated from the settings models
(`make generate` writes components/package_inputs.py). They are turned back into the raw
configuration the stack reads and validated by the same code (`load_settings`), so the
component refuses what the stack refuses, with the same messages (a misspelt key included),
before it registers anything. Then it reads and checks the cluster as an existing-cluster
stack does and runs the stack's own GpuSharing body.

Every input is plain (known when the program runs, not an Output): the values decide which
resources exist and are validated before any is registered, as the stack's config is.
"""

import datetime as dt
import math
import typing
from collections.abc import Mapping
from typing import Any, NotRequired, TypedDict

import pulumi
from pulumi.provider.experimental.component import ComponentProvider

from components import gpu_sharing
from components.cluster_source import existing_cluster_handle, read_existing_cluster
from components.package_inputs import INT_OR_STRING, MAP_ALTERNATIVES, GpuSharingArgs
from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import look_up_aws_context
from eks_gpu_slicing.settings import ConfigError, Settings, load_settings
from eks_gpu_slicing.settings.existing_cluster import CREATED_CLUSTER_KEYS, NOT_PACKAGE_INPUTS

# --- Outputs ---------------------------------------------------------------------------------
# Written here, not generated: they are the stack's reports (builders/workloads.py and
# builders/karpenter.py), and tests/test_package.py checks every key those build is declared,
# with the ones that are not always there NotRequired. One-line docstrings: Python 3.13
# dedents a docstring's later lines, and the schema must not depend on the Python version.


class HamiReport(TypedDict):
    """What one HAMi installation gives a hami group's slices."""

    split_count: int
    """Containers that may share one GPU."""
    memory_scaling: float
    """Device memory HAMi hands out per GPU, as a multiple of the GPU's own."""
    core_policy: str
    """How a container's nvidia.com/gpucores limit applies: default, force or disable."""
    scheduler_name: str
    """The scheduler a hami pod names (schedulerName)."""
    memory_resource: str
    """The resource a hami pod requests its device memory in (MiB)."""
    even_share_mi_b: int
    """GPU memory x memoryScaling / splitCount, MiB: the share if every slice asked alike."""
    memory_per_slice: str
    """What caps a slice's memory: each pod's own request."""


class GpuNodeGroupReport(TypedDict):
    """What a GPU node group advertises to the scheduler, and what each virtual GPU is."""

    instance_type: str
    """EC2 instance type."""
    ami_type: str
    """EKS AMI type."""
    profile: str
    """Sharing profile name."""
    strategy: str
    """Sharing strategy of the profile: time-slicing, mps, none, mig or hami."""
    replicas: int
    """Virtual GPUs per physical GPU (per MIG slice, with MIG)."""
    resource_name: str
    """Extended resource a pod requests (with MIG mixed: the smallest slice's)."""
    gpu_model: str
    """NVIDIA GPU model."""
    gpu_memory_gi_b: float
    """Memory of one GPU, GiB."""
    gpus_per_node: int
    """Physical GPUs per node."""
    virtual_gpus_per_node: int
    """Virtual GPUs (or MIG slices and their replicas) one node advertises."""
    virtual_gpus_at_max_size: int
    """Virtual GPUs of the group at maxSize."""
    gpu_memory_per_virtual_gpu_gi_b: float
    """GPU memory each virtual GPU can count on, GiB."""
    usd_per_virtual_gpu_hour: NotRequired[float]
    """On-demand USD per virtual GPU and hour; absent without an on-demand price."""
    price_source: str
    """Where the price is from (on-demand, region, date)."""
    isolation: str
    """What the strategy isolates between pods, and what it does not."""
    mig_layout: NotRequired[str]
    """MIG only: the layout's name, the value of the nodes' nvidia.com/mig.config label."""
    mig_strategy: NotRequired[str]
    """MIG only: the device plugin's MIG strategy, single or mixed."""
    slices_per_node: NotRequired[dict[str, int]]
    """MIG only: per slice resource, the devices one node advertises."""
    slice_memory_gi_b: NotRequired[dict[str, float]]
    """MIG only: per slice resource, the device memory of one slice, GiB."""
    usd_per_slice_hour: NotRequired[dict[str, float]]
    """MIG only: per slice resource, on-demand USD per device and hour (if priced)."""
    hami: NotRequired[HamiReport]
    """hami only: the installation's values and what caps each slice's memory."""


class KarpenterNodePoolReport(TypedDict):
    """What a Karpenter pool's nodes advertise to the scheduler."""

    node_pool: str
    """Name of the NodePool object."""
    profile: str
    """Sharing profile name."""
    strategy: str
    """Sharing strategy of the profile: time-slicing, mps, none or mig."""
    resource_name: str
    """Extended resource a pod requests (MIG mixed: the first instance type's smallest slice)."""
    virtual_gpus_per_instance_type: dict[str, int]
    """Virtual GPUs (or MIG slices and their replicas) one node of each instance type advertises."""
    resources_per_instance_type: NotRequired[dict[str, dict[str, int]]]
    """MIG only: per instance type, each slice resource and how many one node advertises."""


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
    capacity: NotRequired[int]
    """The most the stack can ever offer (absent when a pool has no countable limit)."""


# --- Inputs back into the stack's configuration ------------------------------------------------


def plain_config(value: Any, typ: Any, path: str = "") -> Any:
    """Inputs (snake_case keys, as the provider hands them over) back into the raw
    configuration the stack reads: keys of the input types camel-cased as the schema names
    them, map keys (profile, group and pool names, tags) kept, whole numbers as ints
    (numbers cross the wire as doubles), and a quantity that is a whole number as an int,
    as an unquoted one is in a stack file. A null is a key left out, as in a stack file. A
    key the schema does not declare (GpuSharingProvider keeps it) is passed on as given, so
    load_settings refuses it as it refuses a misspelt key in a stack file. An Output is
    refused: the values must be known."""
    if isinstance(value, pulumi.Output):
        raise pulumi.RunError(
            f"{path or 'args'}: must be a known value, not an Output: it decides which "
            "resources GpuSharing registers and is validated before any is"
        )
    origin = typing.get_origin(typ)
    if typing.is_typeddict(typ) and isinstance(value, Mapping):
        hints = typing.get_type_hints(typ)
        alternatives = MAP_ALTERNATIVES.get(typ, {})
        config: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            config_key = alternatives.get(key) or _config_key(key)
            if config_key in config:
                raise ConfigError(
                    [f"{_at(path, key)}: give {config_key} or {_config_key(key)}, not both"]
                )
            if (
                key not in alternatives
                and config_key in alternatives.values()
                and (isinstance(item, Mapping))
            ):
                mapped = next(_config_key(k) for k, v in alternatives.items() if v == config_key)
                raise ConfigError([f"{_at(path, key)}: a name here; give the map form as {mapped}"])
            if key in INT_OR_STRING.get(typ, ()):
                config[config_key] = _int_or_string(item)
            else:
                config[config_key] = plain_config(item, hints.get(key, Any), _at(path, key))
        return config
    if origin is dict and isinstance(value, Mapping):
        item_type = typing.get_args(typ)[1]
        return {k: plain_config(v, item_type, f"{path}.{k}") for k, v in value.items()}
    if origin is list and isinstance(value, list | tuple):
        item_type = typing.get_args(typ)[0]
        return [plain_config(v, item_type, f"{path}[{i}]") for i, v in enumerate(value)]
    if typ is Any and isinstance(value, Mapping):  # a key the schema does not know: as given
        return {k: plain_config(v, Any, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, float) and value.is_integer() and typ is not float:
        return int(value)
    return value


def _config_key(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part[:1].upper() + part[1:] for part in rest)


def _at(path: str, key: str) -> str:
    return f"{path}.{_config_key(key)}" if path else _config_key(key)


def _int_or_string(value: Any) -> Any:
    """A Kubernetes quantity (in a map or list, each) as a stack file would give it: a whole
    number as an int."""
    if isinstance(value, Mapping):
        return {k: _int_or_string(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_int_or_string(v) for v in value]
    if isinstance(value, str) and value.isdigit():
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def settings_of_args(args: Mapping[str, Any], stack: str) -> Settings:
    """Validated settings for the component's inputs; ConfigError as the stack's config, with
    the keys that are not inputs of the component refused too."""
    config = plain_config(args, GpuSharingArgs)
    # The keys for a cluster the stack creates get the stack's own message (load_settings);
    # the others are refused here, where the stack would take them.
    not_inputs = [
        f"{key}: not an input of GpuSharing ({why})"
        for key, why in NOT_PACKAGE_INPUTS.items()
        if key in config and key not in CREATED_CLUSTER_KEYS
    ]
    try:
        settings = load_settings(config, stack=stack)
    except ConfigError as exc:
        raise ConfigError([*not_inputs, *exc.problems]) from None
    if not_inputs:
        raise ConfigError(not_inputs)
    return settings


class GpuSharing(gpu_sharing.GpuSharing):
    """NVIDIA GPUs shared between pods (time-slicing, MPS or MIG) on an existing EKS cluster."""

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


class GpuSharingProvider(ComponentProvider):
    """The SDK's component provider for GpuSharing, except that an input the schema does not
    declare is kept (under the name it was given) rather than dropped without a word, so
    GpuSharing refuses it with the stack's did-you-mean. The SDK's provider maps only the declared
    properties, at every level (pulumi 3.272, provider/experimental/component.py,
    map_input_properties)."""

    def __init__(self) -> None:
        super().__init__([GpuSharing], PACKAGE_NAME, None, PACKAGE_VERSION)

    def map_input_properties(self, inputs, properties, mapping, component_name, property_path):
        mapped = super().map_input_properties(
            inputs, properties, mapping, component_name, property_path
        )
        if isinstance(inputs, Mapping):
            mapped.update({k: v for k, v in inputs.items() if k not in properties})
        return mapped


def provider() -> GpuSharingProvider:
    """What provider/__main__.py serves (and provider/schema.json is generated from)."""
    return GpuSharingProvider()
