"""Karpenter: the controller and its GPU node pools (karpenter.sh/v1)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import (
    DEFAULT_PROFILE,
    ChartVersion,
    Namespace,
    RootVolumeGiB,
    _check_names,
    _Settings,
    shown_default,
)
from eks_gpu_slicing.settings.node_groups import known_gpu_instance
from eks_gpu_slicing.settings.sharing import FRACTIONAL_DEFAULT_PROFILE

# The NodePool CRD's own patterns (karpenter.sh_nodepools.yaml, v1.14.1): what the API server
# would accept, checked here so a typo is reported with its key path before anything runs.
_DURATION = re.compile(r"^(([0-9]+(s|m|h))+|Never)$")
_QUANTITY = re.compile(
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
# A resource name (`cpu`, `memory`, `nvidia.com/gpu`): an optional DNS prefix and a name.
_RESOURCE_NAME = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
# Kubelet's upper bound in practice: the most pods any instance's ENIs can address.
_MAX_PODS_LIMIT = 737


def parse_duration(value: str) -> str:
    """A Karpenter duration (`5m`, `1h30m`, `Never`), as the NodePool CRD accepts it."""
    if not _DURATION.match(value):
        raise ValueError(
            f"'{value}' is not a duration: use digits with s, m or h (e.g. 30s, 5m, 1440h, "
            "1h30m) or Never"
        )
    return value


def parse_quantity(value: int | str) -> int | str:
    """A non-negative Kubernetes quantity (`32`, `128Gi`, `500m`)."""
    text = str(value)
    if not _QUANTITY.match(text):
        raise ValueError(f"'{value}' is not a Kubernetes quantity (e.g. 32, 500m, 128Gi)")
    if text.startswith("-"):
        raise ValueError(f"'{value}' is negative")
    return value


# Multipliers of a quantity's suffix (k8s.io/apimachinery resource.Quantity).
_QUANTITY_SUFFIXES = {
    **{s: 1024**p for p, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
    **{s: 1000**p for p, s in enumerate(("k", "M", "G", "T", "P", "E"), start=1)},
    "n": 1e-9,
    "u": 1e-6,
    "m": 1e-3,
}


def quantity_value(value: int | str) -> float:
    """A well-formed quantity as a number (`128Gi` -> 137438953472, `500m` -> 0.5)."""
    text = str(value)
    for suffix in sorted(_QUANTITY_SUFFIXES, key=len, reverse=True):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * _QUANTITY_SUFFIXES[suffix]
    return float(text)  # plain or with an exponent (1e3)


# What one node counts against a NodePool limit on these resources (`nodes`: a node count,
# since Karpenter 1.14; docs concepts/nodepools.md "spec.limits").
_COUNTED_PER_NODE = {
    "nodes": lambda i: 1,
    "cpu": lambda i: i.vcpus,
    "memory": lambda i: i.memory_mib * (1 - facts.VM_MEMORY_OVERHEAD) * 2**20,
    facts.GPU_RESOURCE: lambda i: i.gpus,
}


class KarpenterNodePoolSettings(_Settings):
    """One NodePool and its EC2NodeClass: GPU instances of the listed types, shared per one
    profile. Defaults follow the source design, except where noted."""

    instance_types: list[str] = Field(
        description="NVIDIA GPU instance types the pool may launch (the node groups' table, no "
        "repeats); mixed GPU counts are fine. Each type's driver must be in karpenter.amiRelease "
        + "("
        + ", ".join(
            f"{family} from {need.first_al2023_release}"
            for family, need in facts.GPU_FAMILY_DRIVERS.items()
        )
        + "), else it is refused naming the type."
    )
    capacity_types: list[Literal["on-demand", "spot", "reserved"]] = Field(
        default=["on-demand"],
        description="Purchase options Karpenter may use, a non-empty list without repeats. "
        "Karpenter launches a type on-demand only if it has an on-demand price: an `on-demand` "
        "pool listing one without (p5e.48xlarge, Capacity Blocks only) is warned about.",
    )
    limits: dict[str, int | str] = Field(
        description="Upper bound of the pool's total capacity, per resource (e.g. `{cpu: 32, "
        "memory: 128Gi}`), each a Kubernetes quantity: at least one, since a pool without "
        "limits can launch GPU instances without bound."
    )
    expire_after: str = Field(
        default="720h",  # the CRD's default
        description="Nodes are replaced after this long: a duration of digits with s, m or h "
        "(e.g. 1440h), or Never.",
    )
    consolidate_after: str = Field(
        default="5m",
        description="How long a node must be empty (or underutilised) before Karpenter removes "
        "it: a duration, or Never.",
    )
    consolidation_policy: Literal["WhenEmpty", "WhenEmptyOrUnderutilized"] = Field(
        default="WhenEmpty",
        description="`WhenEmpty` never evicts running GPU pods just to pack nodes tighter; "
        "`WhenEmptyOrUnderutilized` does.",
    )
    max_pods: int | None = Field(
        default=None,
        ge=1,
        le=_MAX_PODS_LIMIT,
        description="Kubelet maxPods, in the EC2NodeClass. Unset: Karpenter derives it from "
        "the instance type's network interfaces.",
    )
    volume_size_gib: RootVolumeGiB = Field(
        default=100,
        alias="volumeSizeGiB",
        description="Root volume size in GiB (gp3, encrypted, deleted with the instance).",
    )
    sharing: str = Field(
        default=DEFAULT_PROFILE,
        description="Name of the sharing profile of the pool's GPUs (node label, device-plugin "
        "config, overlay capacity). A pool of only fractional types (g6f, gr6f) that names "
        f"none gets `{FRACTIONAL_DEFAULT_PROFILE}`; a pool mixing fractional and whole-GPU types "
        "must name it.",
        json_schema_extra=shown_default(
            f"`{DEFAULT_PROFILE}`; `{FRACTIONAL_DEFAULT_PROFILE}` when every type is g6f or gr6f"
        ),
    )
    weight: int | None = Field(
        default=None, ge=1, le=100, description="Priority over other NodePools."
    )

    @field_validator("instance_types")
    @classmethod
    def _gpu_instances(cls, types: list[str]) -> list[str]:
        if not types:
            raise ValueError("at least one GPU instance type is required")
        problems = []
        for name in types:
            try:
                known_gpu_instance(name)
            except ValueError as exc:
                problems.append(str(exc))
        if problems:
            raise ValueError("; ".join(problems))
        duplicates = sorted({t for t in types if types.count(t) > 1})
        if duplicates:
            raise ValueError(f"listed more than once: {', '.join(duplicates)}")
        return types

    @field_validator("capacity_types")
    @classmethod
    def _capacity_types(cls, types: list[str]) -> list[str]:
        if not types or len(set(types)) != len(types):
            allowed = ", ".join(facts.KARPENTER_CAPACITY_TYPES)
            raise ValueError(f"must be a non-empty list without repeats of {allowed}")
        return types

    @field_validator("limits")
    @classmethod
    def _limits(cls, limits: dict[str, int | str]) -> dict[str, int | str]:
        if not limits:
            raise ValueError(
                "set at least one limit (e.g. cpu: 32): without limits the pool can launch "
                "GPU instances without bound"
            )
        problems = []
        for resource, quantity in limits.items():
            if not _RESOURCE_NAME.match(resource):
                problems.append(f"'{resource}' is not a resource name")
                continue
            try:
                parse_quantity(quantity)
            except ValueError as exc:
                problems.append(f"{resource}: {exc}")
        if problems:
            raise ValueError("; ".join(problems))
        return limits

    @field_validator("expire_after", "consolidate_after")
    @classmethod
    def _duration(cls, value: str) -> str:
        return parse_duration(value)

    @property
    def instances(self) -> list[facts.GpuInstance]:
        return [facts.GPU_INSTANCES[t] for t in self.instance_types]

    def max_virtual_gpus(
        self, virtual_gpus_per_gpu: int | Callable[[facts.GpuInstance], int]
    ) -> int | None:
        """At most how many virtual GPUs the pool's limits let its nodes offer, or None when
        no limit is on a resource we can count per node (nodes, cpu, memory, nvidia.com/gpu).

        An upper bound, so a warning built on it is never false: Karpenter counts at least
        this much per node (memory less its VM overhead; GPUs before an overlay multiplies
        them), and with several instance types each limit is spent on the type that gives
        the most virtual GPUs per unit of it. `virtual_gpus_per_gpu` may depend on the
        instance type (MIG slices do)."""
        per_gpu = (
            virtual_gpus_per_gpu
            if callable(virtual_gpus_per_gpu)
            else lambda _instance: virtual_gpus_per_gpu
        )
        per_limit = []
        for resource, limit in self.limits.items():
            if resource not in _COUNTED_PER_NODE:
                continue
            amount = quantity_value(limit)
            offers = [(_COUNTED_PER_NODE[resource](i), i.gpus * per_gpu(i)) for i in self.instances]
            if len(offers) == 1:
                ((per_node, virtual),) = offers
                per_limit.append(int(amount // per_node) * virtual)
            else:
                per_limit.append(int(amount * max(v / n for n, v in offers)))
        return min(per_limit) if per_limit else None


class KarpenterSettings(_Settings):
    """The Karpenter controller (chart and CRDs of one pinned version) and its node pools."""

    enabled: bool = Field(
        default=False,
        description="Use Karpenter: install it (see install) and create nodePools "
        "(docs/karpenter.md).",
    )
    version: ChartVersion = Field(
        default=facts.KARPENTER_VERSION,
        description="Version of the karpenter and karpenter-crd charts and the controller, "
        f"exact, {'.'.join(str(p) for p in facts.KARPENTER_MIN_VERSION)} or later (the first "
        f"with NodeOverlay). What the stack emits is checked against {facts.KARPENTER_VERSION}; "
        "other versions are warned about.",
    )
    namespace: Namespace = Field(
        default="kube-system",
        description="Namespace of the controller; created unless built in.",
    )
    ami_release: str = Field(
        default=facts.KARPENTER_AL2023_AMI_RELEASE,
        description="EKS-optimized AMI release (v<YYYYMMDD>) every pool's EC2NodeClass pins "
        "(`al2023@<release>`). It must carry an AL2023 NVIDIA image for kubernetesVersion "
        "(the first release carrying each version is in facts.AL2023_NVIDIA_AMI_RELEASES), "
        "else validation refuses the stack. A release dated after today is refused (it cannot "
        "exist yet); one newer than the newest the table knows "
        f"({facts.NEWEST_KNOWN_AMI_RELEASE}) is warned about: check it exists in "
        "awslabs/amazon-eks-ami's CHANGELOG.md, or Karpenter reports AMINotFound and no pool "
        "node launches. Changing it replaces pool nodes (Karpenter drift).",
    )
    node_pools: dict[str, KarpenterNodePoolSettings] = Field(
        default={},
        description="GPU node pools, keyed by a stable name (1–32 of `a-z0-9-`): NodePool and "
        "EC2NodeClass `gpu-<name>`. Only with enabled: true.",
    )
    install: bool = Field(
        default=True,
        description="false: a Karpenter already runs on the existing cluster; only the pools "
        "(EC2NodeClass, NodePool, NodeOverlays) are added, for nodes with its role, in subnets "
        "and security groups carrying its discovery tag, and nothing of the controller is "
        "installed. Needs existingCluster and nodeRoleName; the NodeOverlays need that "
        "Karpenter's NodeOverlay feature gate (docs/existing-cluster.md).",
    )
    node_role_name: str | None = Field(
        default=None,
        description="With install: false, the IAM role (name) of the running Karpenter's nodes "
        "(its EC2NodeClass spec.role).",
    )
    discovery_tag_value: str | None = Field(
        default=None,
        description=f"With install: false, the value of its {facts.KARPENTER_DISCOVERY_TAG} tag "
        "on the subnets and security groups its nodes use. Unset: the cluster's name, as "
        "Karpenter's getting-started guide tags them.",
    )

    @model_validator(mode="after")
    def _install_or_running(self) -> KarpenterSettings:
        if self.install:
            given = sorted(
                {"node_role_name": "nodeRoleName", "discovery_tag_value": "discoveryTagValue"}[f]
                for f in {"node_role_name", "discovery_tag_value"} & self.model_fields_set
            )
            if given:
                raise ValueError(
                    f"{', '.join(given)} only apply with install: false (pools for a Karpenter "
                    "that already runs); this stack installs its own"
                )
        elif not self.node_role_name:
            raise ValueError(
                "install: false needs nodeRoleName, the IAM role of the running Karpenter's "
                "nodes (its EC2NodeClass spec.role)"
            )
        return self

    @field_validator("version")
    @classmethod
    def _version(cls, version: str) -> str:
        if tuple(int(p) for p in version.split(".")) < facts.KARPENTER_MIN_VERSION:
            minimum = ".".join(str(p) for p in facts.KARPENTER_MIN_VERSION)
            raise ValueError(
                f"Karpenter {version} has no NodeOverlay, which GPU sharing needs; "
                f"use {minimum} or later"
            )
        return version

    @field_validator("ami_release")
    @classmethod
    def _ami_release(cls, release: str) -> str:
        try:
            dated = bool(dt.datetime.strptime(release, "v%Y%m%d"))
        except ValueError:
            dated = False
        if not (dated and re.match(facts.AMI_RELEASE_PATTERN, release)):
            raise ValueError(
                f"'{release}' is not an EKS-optimized AMI release: use v<YYYYMMDD> as in "
                f"awslabs/amazon-eks-ami's CHANGELOG.md (e.g. {facts.KARPENTER_AL2023_AMI_RELEASE})"
            )
        # A release is named after the day it was built: one dated later than today (UTC)
        # cannot exist yet, and every pool would wait on AMINotFound.
        today = dt.datetime.now(dt.UTC).date()
        if dt.datetime.strptime(release, "v%Y%m%d").date() > today:
            raise ValueError(
                f"'{release}' is dated after today ({today.isoformat()}), so no such AMI "
                f"release exists yet; use a release from awslabs/amazon-eks-ami's "
                f"CHANGELOG.md (e.g. {facts.KARPENTER_AL2023_AMI_RELEASE})"
            )
        return release

    @property
    def ami_release_unknown(self) -> bool:
        """Whether the pinned release is newer than any this program's table knows."""
        return self.ami_release > facts.NEWEST_KNOWN_AMI_RELEASE

    def ami_release_problem(self, kubernetes_version: str) -> str | None:
        """Why the pinned AMI release cannot launch nodes of this Kubernetes version, if so."""
        span = facts.AL2023_NVIDIA_AMI_RELEASES.get(kubernetes_version)
        if span is None or span.carries(self.ami_release):
            return None
        carried = f"{span.first} or later" if span.last is None else f"{span.first} to {span.last}"
        return (
            f"karpenter.amiRelease: AMI release {self.ami_release} has no AL2023 NVIDIA image "
            f"for kubernetesVersion {kubernetes_version} (releases {carried} do), so no pool "
            "node could ever launch; set karpenter.amiRelease to one of those releases, or "
            "kubernetesVersion to a version it carries"
        )

    def driver_problem(self, instance: facts.GpuInstance) -> str | None:
        """Why the pinned AMI release cannot run this instance type's GPUs, if so (a family
        newer than the release: facts.GPU_FAMILY_DRIVERS)."""
        need = facts.GPU_FAMILY_DRIVERS.get(instance.family)
        if need is None or self.ami_release >= need.first_al2023_release:
            return None
        return (
            f"a {instance.name} needs the {need.driver}, which the AL2023 NVIDIA AMIs carry "
            f"from release {need.first_al2023_release}; karpenter.amiRelease "
            f"{self.ami_release} has none, so its GPUs would never work: pin "
            f"{need.first_al2023_release} or later, or leave {instance.name} out"
        )

    @field_validator("node_pools")
    @classmethod
    def _pool_names(cls, pools: dict[str, KarpenterNodePoolSettings]) -> dict:
        _check_names(pools, "node pool")
        return pools


def karpenter_reference_problems(data: Mapping[str, Any], profile_names: set[str]) -> list[str]:
    """Checks that span sections, on the raw data (like loading._reference_problems): pools
    naming a missing sharing profile, and pools configured while Karpenter is off."""
    karpenter = data.get("karpenter", {})
    if not isinstance(karpenter, Mapping):
        return []
    pools = karpenter.get("nodePools", {})
    if not isinstance(pools, Mapping):
        return []
    enabled = karpenter.get("enabled", KarpenterSettings.model_fields["enabled"].default)
    default_profile = KarpenterNodePoolSettings.model_fields["sharing"].default
    known = ", ".join(sorted(profile_names)) or "none"
    problems = []
    for name, pool in pools.items():
        if enabled is not True:
            problems.append(
                f"karpenter.nodePools.{name}: karpenter.enabled is not true, so this pool would "
                "never be created; enable Karpenter or remove the pool"
            )
        if not isinstance(pool, Mapping):
            continue
        profile = pool.get("sharing", default_profile)
        if isinstance(profile, str) and profile not in profile_names:
            problems.append(
                f"karpenter.nodePools.{name}.sharing: no sharing profile '{profile}' "
                f"(profiles: {known})"
            )
    return problems


def karpenter_pool_profiles(data: Mapping[str, Any]) -> set[str]:
    """Profiles the raw data's Karpenter pools use (for checks on who uses a profile)."""
    karpenter = data.get("karpenter", {})
    pools = karpenter.get("nodePools", {}) if isinstance(karpenter, Mapping) else {}
    if not isinstance(pools, Mapping) or karpenter.get("enabled") is not True:
        return set()
    default_profile = KarpenterNodePoolSettings.model_fields["sharing"].default
    return {p.get("sharing", default_profile) for p in pools.values() if isinstance(p, Mapping)}
