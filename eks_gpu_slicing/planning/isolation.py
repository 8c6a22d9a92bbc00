"""What each way of sharing a GPU isolates between the pods on it: one list, used by the
stack's sharing report (builders/workloads.py) and the capacity planner.

A new way of sharing is a new `Isolation` here with its rank (as HAMi's memory-capped slices
are); the planner's rows and the report take it as they take these.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Isolation:
    """How far the pods sharing one GPU are kept apart."""

    key: str
    # Higher isolates more: the planner's tie-break between equally cheap rows.
    rank: int
    label: str  # short, for tables
    description: str  # one sentence: what is isolated, and what is not


WHOLE_GPU = Isolation("whole-gpu", 4, "whole GPU", "whole GPU per pod")
MIG = Isolation(
    "mig",
    3,
    "hardware (MIG)",
    "hardware (MIG): each slice has its own memory, cache and SMs; "
    "time-sliced replicas of one slice share it",
)
FRACTIONAL_VGPU = Isolation(
    "fractional-vgpu",
    3,
    "hardware (fractional vGPU)",
    "hardware (fractional vGPU): the instance's GPU is a slice of one physical GPU, its memory "
    "partitioned and its compute scheduled by the hypervisor; one pod per slice",
)
HAMI = Isolation(
    "hami",
    2,
    "memory-capped (software)",
    "memory-capped (software): HAMi-core caps each container's device memory at its "
    "nvidia.com/gpumem request; SMs are shared (a soft cap only with nvidia.com/gpucores), "
    "one fault domain, and a process that does not load the library is not capped",
)
MPS = Isolation(
    "mps",
    1,
    "memory-capped (MPS)",
    "memory capped per client (total / replicas) and a share of the SMs; "
    "one MPS server, so a fatal GPU fault still reaches every client",
)
TIME_SLICED = Isolation(
    "time-sliced",
    0,
    "none (time-sliced)",
    "none: all replicas share the GPU's memory and one fault domain",
)


def time_sliced_within(slice_kind: Isolation) -> Isolation:
    """Pods time-sharing one hardware slice (a MIG slice or a fractional vGPU): the slice is
    isolated from the rest of the GPU, the pods on it are not isolated from each other."""
    return Isolation(
        f"{slice_kind.key}+time-sliced",
        TIME_SLICED.rank,
        f"none within a {slice_kind.label.removeprefix('hardware ').strip('()')} slice",
        f"{slice_kind.label} between slices; none within one: its time-sliced replicas share "
        "its memory and one fault domain",
    )
