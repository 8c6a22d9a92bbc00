"""Sharing profiles: how each physical GPU is advertised, the single source of truth."""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import (
    DEFAULT_PROFILE,
    _Settings,
    listing,
    package_map_alternative,
)

SharingStrategy = Literal["time-slicing", "mps", "none", "mig", "hami"]
MigStrategy = Literal["single", "mixed"]

# Every MIG profile name some GPU in the table has, and how each sorts (fewest slices first).
_KNOWN_MIG_PROFILES = {
    name: (p.compute_slices, p.memory_slices)
    for gpu in facts.MIG_GPUS.values()
    for name, p in gpu.profiles.items()
}
_UNIFORM_PREFIX = "all-"
# Instance families whose GPUs have MIG (p4d, p5, ...).
_MIG_FAMILIES = sorted({name.split(".")[0] for name in facts.MIG_GPU_OF_INSTANCE})
# A Kubernetes label value's limit: a custom layout's generated name longer than this is hashed.
_LABEL_VALUE_MAX = 63


def _profile_order(name: str) -> tuple[int, int, str]:
    return (*_KNOWN_MIG_PROFILES.get(name, (99, 99)), name)


class MigSettings(_Settings):
    """How each GPU is partitioned: a catalogue layout name or a custom map, and how the
    device plugin advertises the slices."""

    # The component package's name for this section (a Pulumi package type name).
    model_config = ConfigDict(title="MigPartitioning")

    layout: str | dict[str, int] = Field(
        description="How each GPU is partitioned: every slice one profile, as many as the GPU "
        f"takes (`{_UNIFORM_PREFIX}<profile>`, e.g. `{_UNIFORM_PREFIX}1g.10gb`); mig-parted's "
        f"per-GPU mix (`{facts.MIG_BALANCED_LAYOUT}`); or a custom map of profile to count per "
        "GPU (`{1g.10gb: 4, 3g.40gb: 1}`). Checked per node group and pool against the GPU's "
        f"profiles and maximum counts, its compute and memory slices ("
        f"{facts.MIG_COMPUTE_SLICES} and {facts.MIG_MEMORY_SLICES}; "
        + "; ".join(
            f"{g.compute_slices} and {g.memory_slices} on the {g.name}"
            for g in facts.MIG_GPUS.values()
            if (g.compute_slices, g.memory_slices)
            != (facts.MIG_COMPUTE_SLICES, facts.MIG_MEMORY_SLICES)
        )
        + "); media-extension (`+me`) profiles are "
        f"refused. Becomes the node label {facts.MIG_CONFIG_LABEL} (a custom map gets a stable "
        "generated name).",
        json_schema_extra=package_map_alternative(
            "customLayout",
            "A custom layout: a map of MIG profile to count per GPU (e.g. "
            "`{1g.10gb: 4, 3g.40gb: 1}`), the map form of `layout`; give one of the two.",
        ),
    )
    strategy: MigStrategy = Field(
        description="The device plugin's flags.migStrategy. `single`: every slice is "
        f"{facts.GPU_RESOURCE} (uniform layouts only). `mixed`: one resource per slice type, "
        f"{facts.MIG_RESOURCE_PREFIX}<profile>. Bottlerocket groups take only a uniform "
        "layout with `single` and no replicas."
    )

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


# --- HAMi ----------------------------------------------------------------------------------

# The most pods any GPU node here runs (ENI-limited max pods): a larger split would advertise
# slices no pod could ever use.
_MAX_PODS_OF_ANY_NODE = max(i.max_pods for i in facts.GPU_INSTANCES.values())


class HamiSettings(_Settings):
    """A `hami` profile's slices: how many containers share a GPU, how much memory HAMi may
    hand out, and how its core limit behaves. One HAMi installation serves every hami node of
    a stack (its device plugin's per-node configuration matches exact node names only), so
    every hami profile of a stack must agree on all of these."""

    model_config = ConfigDict(title="HamiSlices")

    split_count: int = Field(
        ge=facts.MIN_SHARING_REPLICAS,
        le=_MAX_PODS_OF_ANY_NODE,
        description="Containers that may share one GPU: HAMi's device plugin advertises "
        f"`{facts.GPU_RESOURCE}` = GPUs x splitCount (chart value "
        "devicePlugin.deviceSplitCount). Each container's device memory is capped at what it "
        f"requests in `{facts.HAMI_MEMORY_RESOURCE}` (MiB); the scheduler places it on a GPU "
        "with that much left.",
    )
    memory_scaling: float = Field(
        default=1.0,
        gt=0,
        le=facts.HAMI_MAX_MEMORY_SCALING,
        description="Device memory HAMi hands out per GPU, as a multiple of the GPU's own "
        "(devicePlugin.deviceMemoryScaling): below 1 keeps the rest unassigned; above 1 "
        "oversubscribes (HAMi-core's CUDA_OVERSUBSCRIBE, experimental upstream), so pods may "
        "together declare more memory than the GPU has.",
    )
    core_policy: Literal["default", "force", "disable"] = Field(
        default="default",
        description=f"How HAMi-core applies a container's `{facts.HAMI_CORES_RESOURCE}` "
        "(percent of the GPU's SMs; devices.nvidia.gpuCorePolicy): `default` only while "
        "another container uses the same GPU, `force` always, `disable` never (it then only "
        "places pods). The limit is soft (it throttles kernel launches) and a pod that "
        "requests no gpucores is not limited.",
    )

    def per_node_values(self) -> dict[str, object]:
        """The values one HAMi installation takes from the profile (all of them), by key."""
        return {
            "splitCount": self.split_count,
            "memoryScaling": self.memory_scaling,
            "corePolicy": self.core_policy,
        }


# --- Sharing profiles ---------------------------------------------------------------------


class SharingProfile(_Settings):
    """How each physical GPU on a node is advertised: one device, or `replicas` virtual ones."""

    strategy: SharingStrategy = Field(
        default="time-slicing",
        description="`time-slicing`: replicas take turns on the whole GPU. `mps`: replicas run "
        "at once as clients of one MPS server, each capped at 1/replicas of the memory and SMs "
        "(docs/strategies.md#mps). `none`: whole GPUs, unshared. `mig`: hardware partitions on "
        f"the A100, H100, H200 and Blackwell instance types ({listing(_MIG_FAMILIES)}); needs "
        "mig (docs/mig.md). `hami`: HAMi's memory-capped software slices, each pod capped at "
        "the GPU memory it requests; needs hami (docs/strategies.md#hami). On a fractional "
        "type (g6f, gr6f) only `none` and `time-slicing`.",
    )
    replicas: int | None = Field(
        default=None,
        description=f"Virtual GPUs per physical GPU, at least {facts.MIN_SHARING_REPLICAS} (the "
        "plugin crashes on fewer). Required unless the strategy is `none` (leave it out) or "
        "`mig` (optional: it time-slices every slice). With `mps`: at most "
        f"{facts.MPS_MAX_CLIENTS_PER_GPU} (an MPS server's client limit), and each client's "
        f"share of the GPU's memory must hold a CUDA context (~{facts.CUDA_CONTEXT_MIB} MiB), "
        "checked per node group.",
    )
    rename_by_default: bool = Field(
        default=False,
        description=f"Advertise `{facts.GPU_RESOURCE}{facts.SHARED_RESOURCE_SUFFIX}` instead of "
        f"`{facts.GPU_RESOURCE}`, so pods opt in to a shared GPU explicitly.",
    )
    fail_requests_greater_than_one: bool | None = Field(
        default=None,
        description="Refuse pods asking for more than 1 replica (more replicas never meant "
        "more GPU). Unset: the plugin's default for the strategy, false for time-slicing and "
        "true for MPS; written into the config entry either way.",
    )
    mig: MigSettings | None = Field(
        default=None,
        description="With strategy `mig` only (MPS on MIG slices is not supported by the "
        "device plugin): how each GPU is partitioned. replicas is then optional and "
        "time-slices every slice; renameByDefault is refused. See docs/mig.md.",
    )
    hami: HamiSettings | None = Field(
        default=None,
        description="With strategy `hami` only, and required there: HAMi's slices of each GPU, "
        "each container's device memory capped by HAMi-core at its "
        f"`{facts.HAMI_MEMORY_RESOURCE}` request. replicas, renameByDefault, "
        "failRequestsGreaterThanOne and mig are refused beside it. One HAMi installation "
        "serves every hami node of a stack (its device plugin's per-node settings match exact "
        "node names only), so every hami profile of a stack must set the same values (each "
        "difference is refused by key). Its nodes carry "
        f"`{facts.DEVICE_PLUGIN_SOURCE_LABEL}: {facts.DEVICE_PLUGIN_FROM_HAMI}`: HAMi's device "
        "plugin runs there, NVIDIA's plugin, GFD and the MIG manager do not; on Bottlerocket "
        "the built-in plugin is turned off (Bottlerocket 1.63.0+), and AL2023 and Bottlerocket "
        "hami groups cannot be mixed in one stack. Managed node groups only: a Karpenter pool "
        "of a hami profile is refused. Pods name `schedulerName: "
        f"{facts.HAMI_SCHEDULER_NAME}` and ask for `{facts.GPU_RESOURCE}: 1` plus "
        f"`{facts.HAMI_MEMORY_RESOURCE}: <MiB>`. See docs/strategies.md#hami.",
    )

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
        if self.strategy == "hami":
            return self._hami_checks()
        if self.hami is not None:
            raise ValueError(
                f"hami only applies to strategy 'hami' (this profile's is '{self.strategy}')"
            )
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

    def _hami_checks(self) -> SharingProfile:
        if self.hami is None:
            raise ValueError("strategy 'hami' needs hami: {splitCount: N}")
        # HAMi's own device plugin serves these nodes: none of the NVIDIA plugin's keys
        # reaches it, and a profile that set one would not get what it says.
        refused = [
            key
            for key, given in (
                ("replicas", self.replicas is not None),
                ("renameByDefault", self.rename_by_default),
                ("failRequestsGreaterThanOne", self.fail_requests_greater_than_one is not None),
                ("mig", self.mig is not None),
            )
            if given
        ]
        if refused:
            raise ValueError(
                f"{', '.join(refused)}: not with strategy 'hami', whose GPUs HAMi's own device "
                "plugin advertises (slices per GPU: hami.splitCount; HAMi does not rename its "
                "resource; MIG is a strategy of its own)"
            )
        return self

    @property
    def is_mig(self) -> bool:
        return self.strategy == "mig"

    @property
    def is_hami(self) -> bool:
        return self.strategy == "hami"

    def slice_resources_per_gpu(self, instance: facts.GpuInstance) -> dict[str, int]:
        """Extended resource -> devices one GPU of this instance type advertises.

        Unshared and time-sliced/MPS GPUs: the profile's resource, replicas of it; HAMi:
        nvidia.com/gpu, splitCount of it (its memory and cores are never advertised, HAMi's
        scheduler places them). MIG: every
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
        the plugin's per-client limit, total / replicas (MPS). HAMi: the even share of what
        HAMi hands out, GPU memory x memoryScaling / splitCount (each pod's cap is what it
        requests in nvidia.com/gpumem, which may be more or less)."""
        if self.is_hami and self.hami is not None:
            return int(gpu_memory_mib * self.hami.memory_scaling) // self.hami.split_count
        return gpu_memory_mib // self.virtual_gpus_per_gpu

    @property
    def shared(self) -> bool:
        """More than one pod per physical device: time-slicing, MPS, HAMi's slices, or
        time-sliced MIG."""
        if self.is_mig:
            return self.replicas is not None
        return self.strategy != "none"

    @property
    def virtual_gpus_per_gpu(self) -> int:
        if self.is_hami and self.hami is not None:
            return self.hami.split_count
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


DEFAULT_SHARING = {DEFAULT_PROFILE: SharingProfile(strategy="time-slicing", replicas=10)}
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
