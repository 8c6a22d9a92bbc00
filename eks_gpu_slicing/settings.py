"""Typed stack settings: every configuration key, its default and its validation.

Stack YAML -> `load_settings()` -> one immutable `Settings` object handed to the components.
Nothing else reads `pulumi.Config`. Validation happens here, once, before any resource is
registered, and reports every problem with its key path at once.
"""

from __future__ import annotations

import datetime as dt
import difflib
import ipaddress
import json
import re
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from benchmarks.sharing import bench
from eks_gpu_slicing import facts

# A name used in Kubernetes label values, ConfigMap keys and Pulumi resource names.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
_EC2_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_IAM_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_KUBERNETES_VERSION = re.compile(r"^1\.\d+$")

SharingStrategy = Literal["time-slicing", "none"]


def _namespace_name(namespace: str) -> str:
    if not _DNS_LABEL.match(namespace):
        raise ValueError(f"'{namespace}' is not a valid namespace name")
    return namespace


def _pinned_image(image: str) -> str:
    if "@sha256:" in image:
        return image
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest":
        raise ValueError(f"'{image}' must be pinned to a tag other than 'latest' or a digest")
    return image


# Strings with a rule of their own, reusable across sections.
Namespace = Annotated[str, AfterValidator(_namespace_name)]
PinnedImage = Annotated[str, AfterValidator(_pinned_image)]


class ConfigError(Exception):
    """Every problem found in a stack's configuration, each as 'key.path: why'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(
            f"invalid stack configuration (namespace '{facts.CONFIG_NAMESPACE}'), "
            f"{len(problems)} {noun}:\n{lines}"
        )


class _Settings(BaseModel):
    # extra="forbid": a misspelt key is an error, not a silently ignored default.
    # strict: "10" is not 10, and true is not 1.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


# --- Sharing profiles ---------------------------------------------------------------------


class SharingProfile(_Settings):
    """How each physical GPU on a node is advertised: one device, or `replicas` virtual ones."""

    strategy: SharingStrategy = "time-slicing"
    replicas: int | None = None
    rename_by_default: bool = False
    fail_requests_greater_than_one: bool = False

    @field_validator("replicas")
    @classmethod
    def _at_least_two(cls, replicas: int | None) -> int | None:
        if replicas is not None and replicas < facts.MIN_SHARING_REPLICAS:
            raise ValueError(
                f"replicas ({replicas}) must be an integer >= {facts.MIN_SHARING_REPLICAS}: "
                "the device plugin rejects fewer and crashes on the node; "
                "use strategy 'none' for unshared GPUs"
            )
        return replicas

    @model_validator(mode="after")
    def _replicas_match_strategy(self) -> SharingProfile:
        if self.strategy == "none" and self.replicas is not None:
            raise ValueError("replicas must be left out when strategy is 'none'")
        if self.strategy != "none" and self.replicas is None:
            raise ValueError(f"replicas is required when strategy is '{self.strategy}'")
        if self.strategy == "none" and (
            self.rename_by_default or self.fail_requests_greater_than_one
        ):
            raise ValueError(
                "renameByDefault and failRequestsGreaterThanOne only apply to shared GPUs"
            )
        return self

    @property
    def shared(self) -> bool:
        return self.strategy != "none"

    @property
    def virtual_gpus_per_gpu(self) -> int:
        return self.replicas if self.shared and self.replicas else 1

    @property
    def resource_name(self) -> str:
        """The extended resource name pods must request on nodes with this profile."""
        if self.shared and self.rename_by_default:
            return facts.GPU_RESOURCE + facts.SHARED_RESOURCE_SUFFIX
        return facts.GPU_RESOURCE


DEFAULT_SHARING = {"default": SharingProfile(strategy="time-slicing", replicas=10)}


# --- Node groups ----------------------------------------------------------------------------


class NodeGroupSettings(_Settings):
    """What every managed node group has: one instance type, sizes, disk, purchase option."""

    instance_type: str
    min_size: int = Field(ge=0)
    desired_size: int = Field(ge=0)
    max_size: int = Field(ge=1)
    disk_size_gib: int = Field(default=100, ge=20, le=16384, alias="diskSizeGiB")
    capacity_type: Literal["ON_DEMAND", "SPOT"] = "ON_DEMAND"

    @model_validator(mode="after")
    def _sizes_in_order(self):
        problems = []
        if self.min_size > self.max_size:
            problems.append(f"minSize ({self.min_size}) > maxSize ({self.max_size})")
        else:
            if self.min_size > self.desired_size:
                problems.append(f"minSize ({self.min_size}) > desiredSize ({self.desired_size})")
            if self.desired_size > self.max_size:
                problems.append(f"desiredSize ({self.desired_size}) > maxSize ({self.max_size})")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class GpuNodeGroupSettings(NodeGroupSettings):
    """A managed node group of one NVIDIA GPU instance type, shared per one profile."""

    instance_type: str
    sharing: str = "default"

    @field_validator("instance_type")
    @classmethod
    def _known_gpu_instance(cls, instance_type: str) -> str:
        if instance_type in facts.GPU_INSTANCES:
            return instance_type
        family = instance_type.split(".", 1)[0]
        families = ", ".join(facts.GPU_FAMILIES)
        if family in facts.GPU_FAMILIES:
            sizes = ", ".join(sorted(n for n in facts.GPU_INSTANCES if n.startswith(family + ".")))
            raise ValueError(f"unknown size '{instance_type}'; {family} sizes: {sizes}")
        raise ValueError(
            f"'{instance_type}' is not a supported NVIDIA GPU instance type "
            f"(supported families: {families})"
        )

    @property
    def instance(self) -> facts.GpuInstance:
        return facts.GPU_INSTANCES[self.instance_type]


class SystemNodeGroupSettings(NodeGroupSettings):
    """A small CPU node group for cluster add-ons, which cannot run on tainted GPU nodes."""

    instance_type: str = "m6i.large"
    min_size: int = Field(default=2, ge=0)
    desired_size: int = Field(default=2, ge=0)
    max_size: int = Field(default=3, ge=1)
    disk_size_gib: int = Field(default=50, ge=20, le=16384, alias="diskSizeGiB")

    @field_validator("instance_type")
    @classmethod
    def _cpu_instance(cls, instance_type: str) -> str:
        if not _EC2_INSTANCE_TYPE.match(instance_type):
            raise ValueError(f"'{instance_type}' is not an EC2 instance type")
        if instance_type in facts.GPU_INSTANCES:
            raise ValueError(
                f"'{instance_type}' is a GPU instance; the system group is for CPU add-ons"
            )
        return instance_type


# --- Network and cluster access ------------------------------------------------------------


class NetworkSettings(_Settings):
    """Create a VPC (the default) or use an existing one by giving `vpcId` and subnets."""

    vpc_id: str | None = None
    private_subnet_ids: list[str] = []
    public_subnet_ids: list[str] = []
    cidr_block: str = "10.0.0.0/16"
    availability_zone_count: int = Field(default=3, ge=2, le=6)
    nat_gateways: Literal["single", "onePerAz"] = "single"

    @field_validator("vpc_id")
    @classmethod
    def _vpc_id(cls, vpc_id: str | None) -> str | None:
        if vpc_id is not None and not _VPC_ID.match(vpc_id):
            raise ValueError(f"'{vpc_id}' is not a VPC ID (vpc-...)")
        return vpc_id

    @field_validator("private_subnet_ids", "public_subnet_ids")
    @classmethod
    def _subnet_ids(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not _SUBNET_ID.match(i)]
        if bad:
            raise ValueError(f"not subnet IDs (subnet-...): {', '.join(bad)}")
        if len(set(ids)) != len(ids):
            raise ValueError("lists a subnet more than once")
        return ids

    @field_validator("cidr_block")
    @classmethod
    def _cidr(cls, cidr: str) -> str:
        network = _ipv4_network(cidr)
        if not 16 <= network.prefixlen <= 20:
            raise ValueError(f"'{cidr}' should be a /16 to /20 so every AZ gets room for pods")
        return cidr

    @model_validator(mode="after")
    def _create_or_existing(self) -> NetworkSettings:
        create_only = {"cidr_block", "availability_zone_count", "nat_gateways"}
        if self.vpc_id is not None:
            given = sorted(to_camel(f) for f in create_only & self.model_fields_set)
            if given:
                raise ValueError(f"{', '.join(given)} only apply when the VPC is created here")
            if len(self.private_subnet_ids) < 2:
                raise ValueError("an existing VPC needs privateSubnetIds in at least 2 AZs")
        elif self.private_subnet_ids or self.public_subnet_ids:
            raise ValueError("subnet IDs need vpcId; leave all three out to create a VPC")
        return self

    @property
    def create_vpc(self) -> bool:
        return self.vpc_id is None


class ClusterEndpointSettings(_Settings):
    """Who can reach the Kubernetes API. Private access from the VPC is always on."""

    public_access: bool = True
    public_access_cidrs: list[str] = ["0.0.0.0/0"]

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        for cidr in cidrs:
            _ipv4_network(cidr)
        return cidrs

    @model_validator(mode="after")
    def _cidrs_need_public_access(self) -> ClusterEndpointSettings:
        if not self.public_access and "public_access_cidrs" in self.model_fields_set:
            raise ValueError("publicAccessCidrs only apply with publicAccess: true")
        if self.public_access and not self.public_access_cidrs:
            raise ValueError("publicAccess: true needs at least one CIDR in publicAccessCidrs")
        return self

    @property
    def open_to_world(self) -> bool:
        return self.public_access and "0.0.0.0/0" in self.public_access_cidrs


# --- Add-ons ----------------------------------------------------------------------------------


class DevicePluginSettings(_Settings):
    """The NVIDIA device plugin Helm release."""

    chart_version: str = facts.DEVICE_PLUGIN_CHART_VERSION
    namespace: str = facts.DEVICE_PLUGIN_DEFAULT_NAMESPACE
    # The config entry for GPU nodes without the config label (ours always carry it).
    default_profile: str = "default"

    @field_validator("chart_version")
    @classmethod
    def _semver(cls, version: str) -> str:
        if not _SEMVER.match(version):
            raise ValueError(
                f"'{version}' is not a chart version like {facts.DEVICE_PLUGIN_CHART_VERSION}"
            )
        return version

    @field_validator("namespace")
    @classmethod
    def _not_default(cls, namespace: str) -> str:
        if namespace == "default":
            # The chart refuses to render there (allowDefaultNamespace), and a node-critical
            # DaemonSet does not belong among workloads.
            raise ValueError("the device plugin must not run in the 'default' namespace")
        return _namespace_name(namespace)


class DemoWorkloadSettings(_Settings):
    """The source design's Deployment: N pods, each asking for one virtual GPU."""

    enabled: bool = False
    replicas: int = Field(default=5, ge=0)
    image: PinnedImage = facts.DEMO_IMAGE
    namespace: Namespace = "default"
    # Which sharing profile's nodes (and resource name) to use; the device plugin's default.
    profile: str | None = None


class BenchmarkSettings(_Settings):
    """The GPU sharing benchmark as a Kubernetes Job on each chosen GPU node group."""

    enabled: bool = False
    image: PinnedImage = facts.BENCHMARK_IMAGE
    # GPU node groups to measure; all of them when left out.
    node_groups: list[str] | None = None
    models: list[str] = ["mlp", "transformer"]
    modes: list[str] = ["exclusive", "time-slicing"]
    duration_seconds: float = Field(default=3.0, gt=0, le=60)
    repetitions: int = Field(default=3, ge=1, le=10)
    namespace: Namespace = "default"

    @field_validator("models")
    @classmethod
    def _models(cls, models: list[str]) -> list[str]:
        return _subset(models, bench.MODELS, "models")

    @field_validator("modes")
    @classmethod
    def _modes(cls, modes: list[str]) -> list[str]:
        return _subset(modes, bench.MODES, "modes")


# --- The whole stack -------------------------------------------------------------------------


class Settings(_Settings):
    """Everything one stack (environment) configures, validated."""

    cluster_name: str
    kubernetes_version: str = facts.DEFAULT_KUBERNETES_VERSION
    protect: bool = False
    admin_role_arns: list[str] = []
    tags: dict[str, str] = {}
    network: NetworkSettings = NetworkSettings()
    cluster_endpoint: ClusterEndpointSettings = ClusterEndpointSettings()
    system_node_group: SystemNodeGroupSettings = SystemNodeGroupSettings()
    gpu_node_groups: dict[str, GpuNodeGroupSettings]
    sharing: dict[str, SharingProfile] = DEFAULT_SHARING
    device_plugin: DevicePluginSettings = DevicePluginSettings()
    demo_workload: DemoWorkloadSettings = DemoWorkloadSettings()
    benchmark: BenchmarkSettings = BenchmarkSettings()

    @field_validator("cluster_name")
    @classmethod
    def _cluster_name(cls, name: str) -> str:
        if not _CLUSTER_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid EKS cluster name")
        return name

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_version(cls, version: str) -> str:
        supported = ", ".join(facts.KUBERNETES_RELEASES)
        if version not in facts.KUBERNETES_RELEASES:
            hint = ""
            if _KUBERNETES_VERSION.match(version) and version.endswith(".3"):
                hint = " (an unquoted 1.30 in YAML reads as 1.3: quote it)"
            raise ValueError(
                f"EKS does not offer Kubernetes {version}{hint}; supported: {supported}"
            )
        return version

    @field_validator("admin_role_arns")
    @classmethod
    def _arns(cls, arns: list[str]) -> list[str]:
        bad = [a for a in arns if not _IAM_PRINCIPAL_ARN.match(a)]
        if bad:
            raise ValueError(f"not IAM role or user ARNs: {', '.join(bad)}")
        return arns

    @field_validator("gpu_node_groups")
    @classmethod
    def _group_names(cls, groups: dict[str, GpuNodeGroupSettings]) -> dict:
        if not groups:
            raise ValueError("at least one GPU node group is required")
        _check_names(groups, "node group")
        return groups

    @field_validator("sharing")
    @classmethod
    def _profile_names(cls, profiles: dict[str, SharingProfile]) -> dict:
        _check_names(profiles, "profile")
        return profiles

    @property
    def default_profile(self) -> SharingProfile:
        return self.sharing[self.device_plugin.default_profile]

    @property
    def demo_profile_name(self) -> str:
        return self.demo_workload.profile or self.device_plugin.default_profile

    def profile_of(self, group: GpuNodeGroupSettings) -> SharingProfile:
        return self.sharing[group.sharing]

    @property
    def benchmark_groups(self) -> dict[str, tuple[GpuNodeGroupSettings, SharingProfile]]:
        """GPU node groups that get a benchmark Job (none unless enabled), with profiles."""
        if not self.benchmark.enabled:
            return {}
        names = self.benchmark.node_groups or list(self.gpu_node_groups)
        return {
            name: (self.gpu_node_groups[name], self.profile_of(self.gpu_node_groups[name]))
            for name in names
        }

    def warnings(self, today: dt.date) -> list[str]:
        """Things that deploy but that a reviewer should hear about."""
        out = []
        release = facts.KUBERNETES_RELEASES[self.kubernetes_version]
        if release.support == "extended":
            out.append(
                f"kubernetesVersion {release.version} is in EKS extended support, "
                "which is billed at a higher hourly rate"
            )
        elif release.standard_support_ends and (release.standard_support_ends - today).days < 60:
            out.append(
                f"kubernetesVersion {release.version}: standard support ends "
                f"{release.standard_support_ends.isoformat()}; plan the upgrade"
            )
        if self.protect and self.cluster_endpoint.open_to_world:
            out.append("clusterEndpoint: a protected stack's API endpoint is open to 0.0.0.0/0")
        if self.device_plugin.chart_version != facts.DEVICE_PLUGIN_CHART_VERSION:
            out.append(
                f"devicePlugin.chartVersion {self.device_plugin.chart_version}: the values "
                f"this program sets are checked against {facts.DEVICE_PLUGIN_CHART_VERSION}"
            )
        unused = sorted(
            set(self.sharing)
            - {g.sharing for g in self.gpu_node_groups.values()}
            - {self.device_plugin.default_profile}
        )
        if unused:
            out.append(f"sharing profiles not used by any GPU node group: {', '.join(unused)}")
        for name, group in self.gpu_node_groups.items():
            per_node = group.instance.gpus * self.profile_of(group).virtual_gpus_per_gpu
            room = group.instance.max_pods - facts.GPU_NODE_DAEMONSET_PODS
            if per_node > room:
                out.append(
                    f"gpuNodeGroups.{name}: {per_node} virtual GPUs per node, but a "
                    f"{group.instance_type} runs at most {group.instance.max_pods} pods "
                    f"({room} after DaemonSets): the rest can never be used"
                )
        if self.demo_workload.enabled:
            capacity = sum(
                g.max_size * g.instance.gpus * self.profile_of(g).virtual_gpus_per_gpu
                for g in self.gpu_node_groups.values()
                if g.sharing == self.demo_profile_name
            )
            if self.demo_workload.replicas > capacity:
                out.append(
                    f"demoWorkload.replicas ({self.demo_workload.replicas}) exceeds the "
                    f"{capacity} virtual GPUs of profile '{self.demo_profile_name}' at maxSize; "
                    "the rest stay Pending"
                )
        for name, (group, _) in self.benchmark_groups.items():
            if group.desired_size == 0:
                out.append(
                    f"benchmark: gpuNodeGroups.{name} has desiredSize 0; "
                    "its benchmark Job stays Pending until a node runs"
                )
        return out


# --- Loading ----------------------------------------------------------------------------------


def load_settings(raw: Mapping[str, Any], *, stack: str) -> Settings:
    """Validate a stack's raw configuration (config keys without the namespace prefix).

    Raises ConfigError listing every problem; structural problems (types, unknown keys,
    ranges) and references between sections (a group naming a missing profile) are
    reported together.
    """
    data = dict(raw)
    data.setdefault("clusterName", f"{facts.PROJECT}-{stack}")
    problems: list[str] = []
    settings = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(err) for err in exc.errors())
    problems.extend(_reference_problems(data))
    if problems:
        raise ConfigError(problems)
    assert settings is not None
    return settings


def decode_config_value(key: str, value: Any) -> Any:
    """Turn one Pulumi config value (always a string from the engine) into data.

    Pulumi hands structured values over as JSON text. String-typed keys stay as written:
    decoding `1.35` as JSON would make the Kubernetes version a float.
    """
    if not isinstance(value, str):
        return value
    field = _field_by_alias(Settings, key)
    if field is not None and _is_string_field(field.annotation):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _reference_problems(data: Mapping[str, Any]) -> list[str]:
    """Cross-section references, checked on the raw data so they are reported even when
    other parts of the configuration fail to parse."""
    profiles = data.get("sharing", DEFAULT_SHARING)
    if not isinstance(profiles, Mapping):
        return []
    names = set(profiles)
    known = ", ".join(sorted(names)) or "none"
    problems = []
    groups = data.get("gpuNodeGroups")
    default_group_profile = GpuNodeGroupSettings.model_fields["sharing"].default
    used = set()
    if isinstance(groups, Mapping):
        for group, spec in groups.items():
            if not isinstance(spec, Mapping):
                continue
            profile = spec.get("sharing", default_group_profile)
            used.add(profile)
            if isinstance(profile, str) and profile not in names:
                problems.append(
                    f"gpuNodeGroups.{group}.sharing: no sharing profile '{profile}' "
                    f"(profiles: {known})"
                )
    plugin = data.get("devicePlugin", {})
    plugin = plugin if isinstance(plugin, Mapping) else {}
    default_profile = plugin.get(
        "defaultProfile", DevicePluginSettings.model_fields["default_profile"].default
    )
    if isinstance(default_profile, str) and default_profile not in names:
        where = "devicePlugin.defaultProfile" if "defaultProfile" in plugin else "sharing"
        problems.append(
            f"{where}: the device plugin's default profile '{default_profile}' is not "
            f"defined (profiles: {known})"
        )
    demo = data.get("demoWorkload", {})
    demo = demo if isinstance(demo, Mapping) else {}
    if demo.get("enabled") is True:
        profile = demo.get("profile") or default_profile
        if isinstance(profile, str) and profile in names and profile not in used:
            problems.append(
                f"demoWorkload.profile: no GPU node group uses profile '{profile}', "
                "so its pods could never be scheduled"
            )
        elif isinstance(profile, str) and profile not in names:
            problems.append(f"demoWorkload.profile: no sharing profile '{profile}'")
    bench_settings = data.get("benchmark", {})
    bench_settings = bench_settings if isinstance(bench_settings, Mapping) else {}
    chosen = bench_settings.get("nodeGroups")
    if isinstance(chosen, list) and isinstance(groups, Mapping):
        for name in chosen:
            if name not in groups:
                problems.append(f"benchmark.nodeGroups: no GPU node group '{name}'")
    return problems


def _describe(err: Mapping[str, Any]) -> str:
    path = ".".join(str(part) for part in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, key = err["loc"][:-1], str(err["loc"][-1])
        known = _known_keys(parent)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
        return f"{path}: unknown key{hint}"
    message = err["msg"]
    message = message.removeprefix("Value error, ")
    if kind == "missing":
        message = "required"
    return f"{path or '(root)'}: {message}"


def _known_keys(loc: tuple) -> list[str]:
    """The config keys allowed under a location, for did-you-mean hints."""
    model: Any = Settings
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = _field_by_alias(model, str(part))
            model = field.annotation if field else None
        elif typing.get_origin(model) is dict:
            model = typing.get_args(model)[1]
        else:
            return []
    if typing.get_origin(model) is dict:  # loc names the map itself, its keys are free
        return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(f.alias or name for name, f in model.model_fields.items())
    return []


def _field_by_alias(model: type[BaseModel], alias: str):
    for name, field in model.model_fields.items():
        if (field.alias or name) == alias:
            return field
    return None


def _is_string_field(annotation: Any) -> bool:
    if annotation is str:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return str in typing.get_args(annotation)
    return False


def _check_names(mapping: Mapping[str, Any], what: str) -> None:
    bad = [name for name in mapping if not _NAME.match(name)]
    if bad:
        raise ValueError(
            f"{what} names must be 1-32 lowercase letters, digits or '-' (they become label "
            f"values and resource names): {', '.join(bad)}"
        )


def _subset(chosen: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        raise ValueError(f"{what} must be a non-empty subset of {', '.join(allowed)}")
    return chosen


def _ipv4_network(cidr: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        raise ValueError(f"'{cidr}' is not an IPv4 CIDR block ({exc})") from None
