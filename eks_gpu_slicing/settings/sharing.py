"""Sharing profiles: how each physical GPU is advertised, the single source of truth."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import field_validator, model_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import _Settings

SharingStrategy = Literal["time-slicing", "mps", "none", "mig"]
MigStrategy = Literal["single", "mixed"]

# Every MIG profile name some GPU in the table has, and how each sorts (fewest slices first).
_KNOWN_MIG_PROFILES = {
    name: (p.compute_slices, p.memory_slices)
    for gpu in facts.MIG_GPUS.values()
    for name, p in gpu.profiles.items()
}
_UNIFORM_PREFIX = "all-"
# A Kubernetes label value's limit: a custom layout's generated name longer than this is hashed.
_LABEL_VALUE_MAX = 63


def _profile_order(name: str) -> tuple[int, int, str]:
    return (*_KNOWN_MIG_PROFILES.get(name, (99, 99)), name)


class MigSettings(_Settings):
    """How each GPU is partitioned: a catalogue layout name or a custom map, and how the
    device plugin advertises the slices."""

    # `all-<profile>` (every slice that profile, as many as fit), `all-balanced` (mig-parted's
    # per-GPU mix), or {profile: count} per GPU.
    layout: str | dict[str, int]
    # The device plugin's flags.migStrategy: `single` advertises every slice as nvidia.com/gpu
    # (uniform layouts only); `mixed` one resource per slice type (nvidia.com/mig-<profile>).
    strategy: MigStrategy

    @field_validator("layout")
    @classmethod
    def _known_layout(cls, layout: str | dict[str, int]) -> str | dict[str, int]:
        names = list(layout) if isinstance(layout, dict) else []
        if isinstance(layout, str):
            if layout == facts.MIG_BALANCED_LAYOUT:
                return layout
            if not layout.startswith(_UNIFORM_PREFIX):
                raise ValueError(
                    f"'{layout}' is not a layout: use all-<profile> (e.g. all-1g.10gb), "
                    f"{facts.MIG_BALANCED_LAYOUT}, or a map of profile to count per GPU"
                )
            names = [layout.removeprefix(_UNIFORM_PREFIX)]
        elif not layout:
            raise ValueError("a custom layout needs at least one profile")
        unknown = [n for n in names if n not in _KNOWN_MIG_PROFILES]
        if unknown:
            media = [n for n in unknown if "+me" in n or n.endswith(".me")]
            raise ValueError(
                f"unknown MIG profile(s) {', '.join(unknown)}; known: "
                f"{', '.join(sorted(_KNOWN_MIG_PROFILES, key=_profile_order))}"
                + (" (media-extension profiles are not supported by this project)" if media else "")
            )
        if isinstance(layout, dict):
            bad = [f"{n}: {c}" for n, c in layout.items() if c < 1]
            if bad:
                raise ValueError(f"counts must be at least 1: {', '.join(bad)}")
        return layout

    @model_validator(mode="after")
    def _single_is_uniform(self) -> MigSettings:
        if self.strategy == "single" and not self.uniform:
            raise ValueError(
                f"strategy 'single' advertises every slice as {facts.GPU_RESOURCE}, so it needs "
                f"one slice type per GPU; layout {self.layout_name} mixes several: "
                "use strategy 'mixed' or a uniform layout"
            )
        return self

    @property
    def uniform(self) -> bool:
        """One slice type on every GPU, whatever the GPU."""
        if isinstance(self.layout, dict):
            return len(self.layout) == 1
        return self.layout != facts.MIG_BALANCED_LAYOUT

    @property
    def layout_name(self) -> str:
        """The mig-parted config name, the value of the node's nvidia.com/mig.config label:
        the catalogue name, or for a custom map a stable name built from it."""
        if isinstance(self.layout, str):
            return self.layout
        items = sorted(self.layout.items(), key=lambda item: _profile_order(item[0]))
        name = "custom-" + "-".join(f"{count}x{profile}" for profile, count in items)
        if len(name) > _LABEL_VALUE_MAX:
            digest = hashlib.sha256(name.encode()).hexdigest()[:12]
            name = f"custom-{digest}"
        return name.replace("+", ".")

    def slices_on(self, gpu: facts.MigGpu) -> dict[str, int]:
        """Slice profile -> count on one GPU of this model (before any validation)."""
        if isinstance(self.layout, dict):
            return dict(sorted(self.layout.items(), key=lambda item: _profile_order(item[0])))
        if self.layout == facts.MIG_BALANCED_LAYOUT:
            return dict(gpu.balanced)
        name = self.layout.removeprefix(_UNIFORM_PREFIX)
        profile = gpu.profiles.get(name)
        return {name: profile.max_count if profile else 0}

    def problems_on(self, gpu: facts.MigGpu) -> list[str]:
        """Why this layout cannot be applied to a GPU of this model (empty when it can)."""
        slices = self.slices_on(gpu)
        missing = [name for name in slices if name not in gpu.profiles]
        if missing:
            return [
                f"the {gpu.name} has no MIG profile {', '.join(missing)}; its profiles: "
                f"{', '.join(gpu.profiles)}"
            ]
        problems = [
            f"{count} x {name} exceeds the {gpu.name}'s maximum of "
            f"{gpu.profiles[name].max_count} per GPU"
            for name, count in slices.items()
            if count > gpu.profiles[name].max_count
        ]
        compute = sum(gpu.profiles[n].compute_slices * c for n, c in slices.items())
        memory = sum(gpu.profiles[n].memory_slices * c for n, c in slices.items())
        if compute > gpu.compute_slices:
            problems.append(
                f"the layout takes {compute} compute slices; a GPU has {gpu.compute_slices}"
            )
        if memory > gpu.memory_slices:
            problems.append(
                f"the layout takes {memory} memory slices; a GPU has {gpu.memory_slices}"
            )
        return problems


# --- Sharing profiles ---------------------------------------------------------------------


class SharingProfile(_Settings):
    """How each physical GPU on a node is advertised: one device, or `replicas` virtual ones."""

    strategy: SharingStrategy = "time-slicing"
    replicas: int | None = None
    rename_by_default: bool = False
    # Unset: the plugin's own default for the strategy (false for time-slicing, true for MPS).
    fail_requests_greater_than_one: bool | None = None
    # Only with strategy `mig`: how each GPU is partitioned. `replicas` then time-slices
    # every slice (optional).
    mig: MigSettings | None = None

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
        if self.strategy == "mig":
            return self._mig_checks()
        if self.mig is not None:
            raise ValueError(
                f"mig only applies to strategy 'mig' (this profile's is '{self.strategy}'); "
                "MPS on MIG slices is not supported by the device plugin"
            )
        if self.strategy == "none" and self.replicas is not None:
            raise ValueError("replicas must be left out when strategy is 'none'")
        if self.strategy != "none" and self.replicas is None:
            raise ValueError(f"replicas is required when strategy is '{self.strategy}'")
        if self.strategy == "none" and (
            self.rename_by_default or self.fail_requests_greater_than_one is not None
        ):
            raise ValueError(
                "renameByDefault and failRequestsGreaterThanOne only apply to shared GPUs"
            )
        if (
            self.strategy == "mps"
            and self.replicas is not None
            and self.replicas > facts.MPS_MAX_CLIENTS_PER_GPU
        ):
            raise ValueError(
                f"replicas ({self.replicas}): an MPS server takes at most "
                f"{facts.MPS_MAX_CLIENTS_PER_GPU} clients per GPU"
            )
        return self

    def _mig_checks(self) -> SharingProfile:
        if self.mig is None:
            raise ValueError("strategy 'mig' needs mig: {layout: ..., strategy: single|mixed}")
        if self.rename_by_default:
            raise ValueError(
                "renameByDefault is not supported with MIG here: pods request the slice "
                "resources by their own names"
            )
        if self.replicas is None and self.fail_requests_greater_than_one is not None:
            raise ValueError("failRequestsGreaterThanOne only applies when replicas time-slices")
        return self

    @property
    def is_mig(self) -> bool:
        return self.strategy == "mig"

    def slice_resources_per_gpu(self, instance: facts.GpuInstance) -> dict[str, int]:
        """Extended resource -> devices one GPU of this instance type advertises.

        Unshared and time-sliced/MPS GPUs: the profile's resource, replicas of it. MIG: every
        slice (as nvidia.com/gpu with `single`, as nvidia.com/mig-<profile> with `mixed`),
        times replicas when time-sliced. Empty for MIG on a GPU without MIG.
        """
        if not self.is_mig or self.mig is None:
            return {self.resource_name: self.virtual_gpus_per_gpu}
        gpu = facts.mig_gpu(instance.name)
        if gpu is None:
            return {}
        per_slice = self.replicas or 1
        slices = self.mig.slices_on(gpu)
        if self.mig.strategy == "single":
            return {facts.GPU_RESOURCE: sum(slices.values()) * per_slice}
        return {gpu.profiles[n].resource_name: c * per_slice for n, c in slices.items()}

    def devices_per_gpu(self, instance: facts.GpuInstance) -> int:
        """All devices (virtual GPUs or slices, time-sliced or not) one GPU advertises."""
        return sum(self.slice_resources_per_gpu(instance).values())

    def node_resources(self, instance: facts.GpuInstance) -> dict[str, int]:
        """Extended resource -> what one node of this instance type advertises."""
        return {r: n * instance.gpus for r, n in self.slice_resources_per_gpu(instance).items()}

    def resource_name_on(self, instance: facts.GpuInstance) -> str:
        """The resource one pod requests on this instance type: the profile's resource, or
        for MIG `mixed` the smallest slice type of the layout on that GPU (the most plentiful:
        a demo or benchmark pod then takes the least of the GPU)."""
        if not self.is_mig:
            return self.resource_name
        resources = self.slice_resources_per_gpu(instance)
        return next(iter(resources), facts.GPU_RESOURCE)

    def slice_memory_gib(self, instance: facts.GpuInstance) -> dict[str, float]:
        """MIG: resource -> device memory of each of its slices (GiB, as nvidia-smi reports)."""
        gpu = facts.mig_gpu(instance.name)
        if not self.is_mig or self.mig is None or gpu is None:
            return {}
        slices = self.mig.slices_on(gpu)
        if self.mig.strategy == "single":
            return {facts.GPU_RESOURCE: gpu.profiles[next(iter(slices))].memory_gib}
        return {gpu.profiles[n].resource_name: gpu.profiles[n].memory_gib for n in slices}

    def memory_per_device_mib(self, instance: facts.GpuInstance) -> int:
        """Device memory each advertised device can count on: the GPU's share
        (gpu_memory_per_virtual_gpu_mib) or, for MIG, the smallest slice's own memory over
        its time-sliced replicas."""
        if not self.is_mig:
            return self.gpu_memory_per_virtual_gpu_mib(instance.gpu_memory_mib)
        smallest = min(self.slice_memory_gib(instance).values(), default=0)
        return int(smallest * 1024) // (self.replicas or 1)

    @property
    def fail_requests_over_one(self) -> bool:
        """What the plugin will do with a request for more than one replica."""
        if self.fail_requests_greater_than_one is not None:
            return self.fail_requests_greater_than_one
        return self.strategy == "mps"

    def gpu_memory_per_virtual_gpu_mib(self, gpu_memory_mib: int) -> int:
        """Device memory each virtual GPU can count on: all of it shared (time-slicing), or
        the plugin's per-client limit, total / replicas (MPS)."""
        return gpu_memory_mib // self.virtual_gpus_per_gpu

    @property
    def shared(self) -> bool:
        """More than one pod per physical device: time-slicing, MPS, or time-sliced MIG."""
        if self.is_mig:
            return self.replicas is not None
        return self.strategy != "none"

    @property
    def virtual_gpus_per_gpu(self) -> int:
        return self.replicas if self.shared and self.replicas else 1

    @property
    def resource_name(self) -> str:
        """The extended resource name pods must request on nodes with this profile. For MIG
        `mixed`, the smallest slice type of a layout that is the same on every GPU (uniform or
        custom); `all-balanced` differs per GPU: use resource_name_on."""
        if self.is_mig and self.mig is not None and self.mig.strategy == "mixed":
            if self.mig.layout == facts.MIG_BALANCED_LAYOUT:
                raise ValueError(
                    "all-balanced advertises different slice types per GPU: "
                    "use resource_name_on(instance)"
                )
            first = next(iter(self.mig.slices_on(next(iter(facts.MIG_GPUS.values())))))
            return facts.MIG_RESOURCE_PREFIX + first.replace("+", ".")
        if self.shared and self.rename_by_default:
            return facts.GPU_RESOURCE + facts.SHARED_RESOURCE_SUFFIX
        return facts.GPU_RESOURCE


DEFAULT_SHARING = {"default": SharingProfile(strategy="time-slicing", replicas=10)}
# The profile of a node group or Karpenter pool of fractional GPUs (g6f, gr6f) that names none:
# the instance's vGPU is already a hardware slice of a GPU, so it is not shared further unless
# the stack says so. Added to `sharing` when used and not defined; a profile of this name the
# stack defines must then have strategy none.
FRACTIONAL_DEFAULT_PROFILE = "unshared"


def bottlerocket_problems(
    profile_name: str, profile: SharingProfile, gpu: facts.MigGpu | None = None
) -> list[str]:
    """What a profile asks for that Bottlerocket's built-in plugin cannot be told.

    Its settings have replicas and rename-by-default for both strategies, but
    fail-requests-greater-than-one only for time-slicing (its MPS always fails them). Its MIG
    takes one profile per GPU model, only those it knows for that GPU (`gpu`, the node's MIG
    GPU: facts.MigGpu.bottlerocket_profiles), and the `single` strategy only.
    """
    if profile.is_mig and profile.mig is not None:
        problems = []
        if not (profile.mig.uniform and profile.mig.strategy == "single"):
            problems.append(
                f"profile '{profile_name}' (mig layout {profile.mig.layout_name}, strategy "
                f"{profile.mig.strategy}): Bottlerocket's built-in MIG takes one uniform layout "
                "and the 'single' strategy only: use a uniform layout with strategy single, or "
                "the AL2023 NVIDIA AMI"
            )
        elif gpu is not None and gpu.bottlerocket_key is None:
            problems.append(
                f"profile '{profile_name}' (mig layout {profile.mig.layout_name}): no "
                f"Bottlerocket release is known here to partition the {gpu.name} (its MIG "
                "manager's support for it is not confirmed), so the GPUs would stay whole; "
                "use the AL2023 NVIDIA AMI"
            )
        elif gpu is not None:
            (slice_name,) = profile.mig.slices_on(gpu)
            if slice_name not in gpu.bottlerocket_profiles:
                layouts = ", ".join(f"all-{p}" for p in gpu.bottlerocket_profiles)
                problems.append(
                    f"profile '{profile_name}' (mig layout {profile.mig.layout_name}): "
                    f"Bottlerocket's MIG manager has no {slice_name} on the {gpu.name} (it would "
                    f"apply one whole-GPU slice instead); on Bottlerocket: {layouts}, or use "
                    "the AL2023 NVIDIA AMI"
                )
        if profile.replicas is not None:
            problems.append(
                f"profile '{profile_name}': time-slicing MIG slices (replicas) on Bottlerocket "
                "is not checked against its settings here: leave replicas out or use AL2023"
            )
        return problems
    if profile.strategy == "mps" and profile.fail_requests_greater_than_one is False:
        return [
            f"profile '{profile_name}' sets failRequestsGreaterThanOne: false with MPS, which "
            "Bottlerocket's settings cannot express (its MPS always refuses requests for more "
            "than one replica): leave it unset or use the AL2023 NVIDIA AMI"
        ]
    return []
