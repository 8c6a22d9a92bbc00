"""Managed node groups: the system group for add-ons and the GPU groups."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import _EC2_INSTANCE_TYPE, _Settings


def known_gpu_instance(instance_type: str) -> str:
    """The instance type, if it is one of the NVIDIA GPU instances we know; else why not.
    Shared by managed node groups and Karpenter node pools."""
    if instance_type in facts.GPU_INSTANCES:
        return instance_type
    family = instance_type.split(".", 1)[0]
    families = ", ".join(facts.GPU_FAMILIES)
    if family in facts.UNSUPPORTED_GPU_FAMILIES:
        raise ValueError(
            f"'{instance_type}' is not supported: {facts.UNSUPPORTED_GPU_FAMILIES[family]}"
        )
    if family in facts.GPU_FAMILIES:
        sizes = ", ".join(sorted(n for n in facts.GPU_INSTANCES if n.startswith(family + ".")))
        raise ValueError(f"unknown size '{instance_type}'; {family} sizes: {sizes}")
    raise ValueError(
        f"'{instance_type}' is not a supported NVIDIA GPU instance type "
        f"(supported families: {families})"
    )


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
    # AL2023 runs the Helm device plugin; Bottlerocket's NVIDIA variant has its own, set up
    # from the profile through node settings. Changing it replaces the group.
    ami_type: Literal[facts.GPU_AMI_TYPE, facts.BOTTLEROCKET_GPU_AMI_TYPE] = facts.GPU_AMI_TYPE

    @property
    def bottlerocket(self) -> bool:
        return self.ami_type == facts.BOTTLEROCKET_GPU_AMI_TYPE

    @field_validator("instance_type")
    @classmethod
    def _known_gpu_instance(cls, instance_type: str) -> str:
        return known_gpu_instance(instance_type)

    @property
    def instance(self) -> facts.GpuInstance:
        return facts.GPU_INSTANCES[self.instance_type]


class SystemNodeGroupSettings(NodeGroupSettings):
    """A small CPU node group for cluster add-ons, which cannot run on tainted GPU nodes."""

    instance_type: str = "m6i.large"
    min_size: int = 2
    desired_size: int = 2
    max_size: int = Field(default=3, ge=1)
    disk_size_gib: int = Field(default=50, ge=20, le=16384, alias="diskSizeGiB")

    @field_validator("min_size", "desired_size")
    @classmethod
    def _never_empty(cls, size: int) -> int:
        if size < 1:
            # GPU nodes are tainted, so CoreDNS (and every other add-on) runs only here; with
            # no node its add-on never turns healthy and `pulumi up` times out after 20 min.
            raise ValueError(
                f"must be at least 1 (got {size}): CoreDNS and the other cluster add-ons "
                "run only on the system group"
            )
        return size

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
