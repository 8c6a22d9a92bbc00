"""Managed node groups: the system group for add-ons and the GPU groups."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import (
    _EC2_INSTANCE_TYPE,
    DEFAULT_PROFILE,
    RootVolumeGiB,
    _Settings,
    listing,
    shown_default,
)
from eks_gpu_slicing.settings.sharing import FRACTIONAL_DEFAULT_PROFILE

# Families sold as one vGPU, a hardware slice of one GPU (g6f, gr6f).
_FRACTIONAL_FAMILIES = sorted({i.family for i in facts.GPU_INSTANCES.values() if i.fractional})


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

    instance_type: str = Field(description="EC2 instance type.")
    min_size: int = Field(ge=0, description="Fewest nodes; minSize ≤ desiredSize ≤ maxSize.")
    desired_size: int = Field(ge=0, description="Nodes to start with, from minSize to maxSize.")
    max_size: int = Field(ge=1, description="Most nodes.")
    disk_size_gib: RootVolumeGiB = Field(
        default=100,
        alias="diskSizeGiB",
        description="Root volume size in GiB, set in the group's launch template (container "
        "images with CUDA are large). Changing it rolls the group's nodes.",
    )
    capacity_type: Literal["ON_DEMAND", "SPOT"] = Field(
        default="ON_DEMAND", description="Purchase option. Changing it replaces the group."
    )

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

    instance_type: str = Field(
        description="An NVIDIA GPU instance type of the families "
        f"{listing(facts.GPU_FAMILIES)} (sizes, GPU memory and prices in "
        "eks_gpu_slicing/facts.py), e.g. g4dn.xlarge. "
        f"{listing(_FRACTIONAL_FAMILIES)} are "
        "fractional: one vGPU of 1/8 to 1/2 of an L4 "
        "(docs/strategies.md#hardware-slices-you-can-buy). "
        + " ".join(
            f"{family} is refused: {why}." for family, why in facts.UNSUPPORTED_GPU_FAMILIES.items()
        )
    )
    sharing: str = Field(
        default=DEFAULT_PROFILE,
        description="Name of the sharing profile of this group's GPUs. A fractional type "
        f"(g6f, gr6f) that names none gets `{FRACTIONAL_DEFAULT_PROFILE}` (strategy none), "
        "added to sharing if the stack does not define it (if it does, it must be none); it may "
        "be time-sliced by naming such a profile; MPS, MIG and hami are refused on it.",
        json_schema_extra=shown_default(
            f"`{DEFAULT_PROFILE}`; `{FRACTIONAL_DEFAULT_PROFILE}` on g6f and gr6f"
        ),
    )
    ami_type: Literal[facts.GPU_AMI_TYPE, facts.BOTTLEROCKET_GPU_AMI_TYPE] = Field(
        default=facts.GPU_AMI_TYPE,
        description=f"`{facts.GPU_AMI_TYPE}` runs the device plugin as a Helm release; "
        f"`{facts.BOTTLEROCKET_GPU_AMI_TYPE}` runs Bottlerocket's built-in plugin, set up from "
        "the same profile through node settings (docs/bottlerocket.md). Changing it replaces "
        "the group.",
    )

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

    instance_type: str = Field(
        default="m6i.large",
        description="CPU instance type for the add-ons (CoreDNS cannot run on the tainted GPU "
        "nodes). GPU types are refused.",
    )
    min_size: int = Field(
        default=2,
        description="Fewest system nodes, at least 1 (minSize ≤ desiredSize ≤ maxSize): GPU "
        "nodes are tainted, so CoreDNS runs only here, and with no node its add-on never turns "
        "healthy.",
    )
    desired_size: int = Field(
        default=2, description="System nodes to start with, from minSize to maxSize (at least 1)."
    )
    max_size: int = Field(default=3, ge=1, description="Most system nodes.")
    disk_size_gib: RootVolumeGiB = Field(
        default=50,
        alias="diskSizeGiB",
        description="Root volume size in GiB, set in the group's launch template.",
    )

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
