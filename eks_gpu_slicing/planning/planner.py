"""Capacity planner: how many virtual GPUs per physical GPU, and with which strategy.

    python -m eks_gpu_slicing.planning.planner --memory-gib 1.5 --gpu-ms 2 --busy 0.3
    make plan-capacity MEMORY_GIB=1.5 GPU_MS=2 BUSY=0.3

It combines the instance facts (GPU memory, price) with the committed sharing benchmark
(benchmarks/sharing/results-*.csv): throughput of N processes sharing one GPU relative to one
process alone, per sharing mode, for three kinds of workload.

The rule, per instance type and strategy:
  1. Memory: every replica's pod holds its own memory, so at most
     floor((GPU memory - reserve) / workload memory) replicas fit.
  2. Throughput: R pods that each keep the GPU busy `busy` of the time when alone demand
     R x busy GPUs of work; the GPU delivers ratio(R) (measured, in units of one exclusive
     process, interpolated between measured N). R is feasible while R x busy <= ratio(R).
     ratio(R) is the low end of what was measured (`ratio_low`: in an interleaved run the
     10th percentile over its rounds of the case against that round's exclusive windows, in
     a sweep the slowest repetition over the fastest exclusive one), so a noisy baseline
     makes the plan smaller, never larger. For the launch-bound models of the committed
     interleaved runs it is stated at the benchmark's reference host speed (a fast core;
     `reference_launch_ms`): a slower host would only raise the GPU-bound ratios.
  3. Take the largest R that satisfies both (R = 1 means: do not share).
MIG (instance types whose GPUs have it: p4d, p4de, p5, p5e, p5en, g7e, p6-b200, p6-b300) is a
third strategy, and a model rather than a measurement (the benchmark measured no MIG slice):
  - the slice is the smallest profile (least memory, then fewest compute slices) that splits
    the GPU (`max_count` >= 2), holds the pod's memory (a slice's memory, as nvidia-smi
    reports it, is the pod's whole device memory: no reserve is taken off) and can serve one
    pod;
  - a slice of c of the GPU's C compute slices (7, or 4 on the RTX PRO 6000) is taken to run
    a pod's request in C/c times its whole-GPU time (an assumption: small, launch-bound
    kernels lose less), so one pod keeps its slice busy `busy` x C/c of the time, and a slice
    delivers c/C of what the whole GPU does;
  - `replicas` time-slices each slice when memory and the time-slicing curve allow it
    (R x busy x C/c <= ratio(R), the measured whole-GPU time-slicing ratio applied to a slice);
  - pods per GPU = the profile's max_count (uniform layout `all-<profile>`, `single`) x R.
Fractional instance types (g6f, gr6f: a vGPU of 1/8 to 1/2 of an L4) are modelled the same
way: the vGPU is a slice of f of the GPU, in memory (minus f of the reserve below) and in
compute (a pod takes 1/f times its whole-GPU time), unshared or time-sliced on top; no MPS
(refused on a vGPU) and no MIG.
HAMi (`--hami`, strategy hami) is planned like time-slicing with each pod's device memory
capped at what it needs: the slices per GPU are the largest R that memory and the throughput
curve allow, from the benchmark's `hami` rows where the results have them, else from
time-slicing's (HAMi-core without a core limit leaves the GPU time-sliced), which its note
says.
The recommendation is the plan with the most pods per GPU; on a tie MIG first (the same
density with memory and fault isolation), then the one that caps a pod least (time-slicing
before hami, which needs HAMi installed for the same density, before MPS).
Last comes every option compared for the workload, cheapest per workload-hour first (on a
tie, the one that isolates pods more), with its isolation (planning/isolation.py) and whether
it was measured or modelled; the options that do not serve the workload follow, with why.
The workload is matched to the benchmark model whose exclusive per-iteration latency is
closest to its per-request GPU time (short requests = small kernels that leave the GPU idle;
long ones saturate it). This is a heuristic measured on one GPU type: re-measure on yours
with the in-cluster benchmark (`benchmark.enabled`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.sharing import bench
from eks_gpu_slicing import facts
from eks_gpu_slicing.planning import isolation
from eks_gpu_slicing.planning.isolation import Isolation
from eks_gpu_slicing.settings.stack_files import ROOT

DEFAULT_RESULTS = ROOT / "benchmarks" / "sharing" / "results-h200.csv"
# Usable memory is below the nominal size (ECC, driver): a T4 reports about 15 of its 16 GiB.
GPU_MEMORY_RESERVE_GIB = 1.0
# Strategies the planner compares, and the benchmark mode that measures each.
STRATEGY_MODES = {"time-slicing": "time-slicing", "mps": "mps"}
# MPS as the device plugin runs it caps each pod at 1/replicas of the SMs and memory, even
# alone; the plans' throughput comes from uncapped MPS, so say so next to every MPS plan.
MPS_CAP_NOTE = "each pod capped at 1/{r} of the GPU"
# MIG is planned from time-slicing's curve on a slice of the GPU (a model: no MIG measured).
MIG_STRATEGY = "mig"
MIG_CURVE_STRATEGY = "time-slicing"
MIG_MODEL_NOTE = "modelled, not measured"
# HAMi (optional rows): the benchmark mode that measures it, and what a plan says when the
# results have none and time-slicing's curve stands in.
HAMI_STRATEGY = "hami"
HAMI_MODE = "hami"
HAMI_BORROWED_NOTE = "throughput from time-slicing's curve (no hami rows in the results)"
# What the `basis` column says of a row.
MEASURED, MODELLED = "measured", "modelled"
# The isolation of a strategy's rows on whole GPUs (MIG and fractional rows set their own).
STRATEGY_ISOLATION = {
    "none": isolation.WHOLE_GPU,
    "time-slicing": isolation.TIME_SLICED,
    "mps": isolation.MPS,
    HAMI_STRATEGY: isolation.HAMI,
}


@dataclass(frozen=True)
class Workload:
    gpu_memory_gib: float  # per pod, including its CUDA context (~0.5-0.7 GiB)
    gpu_ms_per_request: float  # GPU time of one request when the pod runs alone
    busy: float = 1.0  # share of time one pod alone keeps the GPU busy (1 = saturating)


@dataclass(frozen=True)
class Curve:
    """Measured aggregate throughput (x exclusive) and p99 latency (x exclusive) vs N."""

    model: str
    mode: str
    ratio_at: dict[int, float]
    p99_factor_at: dict[int, float]

    @property
    def max_clients(self) -> int:
        return max(self.ratio_at)

    def ratio(self, n: int) -> float:
        return _interpolate(self.ratio_at, n)

    def p99_factor(self, n: int) -> float:
        return _interpolate(self.p99_factor_at, n)


@dataclass(frozen=True)
class Plan:
    instance_type: str
    strategy: str  # "none", "time-slicing", "mps", "mig" or "hami"
    replicas: int  # pods per GPU (MIG: slices x slice_replicas)
    model: str  # the benchmark model the workload was matched to
    throughput_ratio: float  # GPU's delivered work at R busy pods, x one exclusive pod
    demand: float  # R x busy
    p99_factor: float  # p99 latency with all R pods busy, x exclusive
    memory_headroom_gib: float  # per GPU, after R pods
    usd_per_workload_hour: float  # the instance's price over the pods it holds
    fits: bool  # the workload fits and is served (MIG: see recommendable)
    note: str = ""
    # MIG only: the slice profile of the uniform layout (empty on a row that only says why
    # MIG does not serve the workload) and how many pods time-share each slice.
    mig_profile: str = ""
    slice_replicas: int = 1
    # What keeps the pods apart, and whether the row's throughput was measured or modelled.
    isolation: Isolation = isolation.WHOLE_GPU
    basis: str = MEASURED

    @property
    def recommendable(self) -> bool:
        return self.fits and (self.strategy != MIG_STRATEGY or bool(self.mig_profile))

    @property
    def an_option(self) -> bool:
        """Whether the row is an option of its own in the comparison: not a sharing strategy
        that ends at one pod per device, which is the `none` row again."""
        return self.strategy in ("none", MIG_STRATEGY) or self.replicas > 1


def planning_ratio(r: bench.Result) -> float:
    """The throughput ratio a plan may count on: the low end of the measured spread, or the
    plain ratio for a file from before the baseline was measured more than once."""
    return r.ratio_low if r.ratio_low is not None else r.ratio_vs_exclusive


def load_curves(results: Sequence[bench.Result]) -> dict[tuple[str, str], Curve]:
    """(model, strategy) -> curve, with the exclusive run as N = 1 of every mode."""
    by_key = bench.results_by_key([r for r in results if r.status == bench.STATUS_OK])
    curves = {}
    for model in {r.model for r in results}:
        exclusive = by_key.get((model, "exclusive", 1))
        if exclusive is None:
            continue
        for strategy, mode in {**STRATEGY_MODES, HAMI_STRATEGY: HAMI_MODE}.items():
            ratio = {1: 1.0}
            p99 = {1: 1.0}
            for (m, md, n), r in by_key.items():
                if m == model and md == mode and n > 1:
                    ratio[n] = planning_ratio(r)
                    p99[n] = r.p99_ms / exclusive.p99_ms
            if len(ratio) > 1:
                curves[(model, strategy)] = Curve(model, strategy, ratio, p99)
    return curves


def matching_model(results: Sequence[bench.Result], gpu_ms: float) -> str:
    """The benchmark model whose exclusive p50 latency is closest to gpu_ms (log scale)."""
    exclusive = [r for r in results if r.mode == "exclusive" and r.status == bench.STATUS_OK]
    if not exclusive:
        raise ValueError("the benchmark results have no exclusive baseline")
    return min(exclusive, key=lambda r: abs(math.log(r.p50_ms / gpu_ms))).model


def plan_instance(
    workload: Workload,
    instance: facts.GpuInstance,
    curves: dict[tuple[str, str], Curve],
    model: str,
    hami: bool = False,
) -> list[Plan]:
    """One plan per strategy (none, time-slicing, mps, and mig where the GPU has it; hami when
    asked for) for one instance type; for a fractional type, its vGPU unshared and
    time-sliced."""
    if instance.gpu_fraction is not None:
        return plan_fractional(workload, instance, curves[(model, MIG_CURVE_STRATEGY)])
    usable = instance.gpu_memory_gib - GPU_MEMORY_RESERVE_GIB
    by_memory = math.floor(usable / workload.gpu_memory_gib)

    def plan(strategy: str, replicas: int, curve: Curve | None, note: str = "") -> Plan:
        return Plan(
            instance_type=instance.name,
            strategy=strategy,
            replicas=replicas,
            model=model,
            throughput_ratio=curve.ratio(replicas) if curve else 1.0,
            demand=replicas * workload.busy,
            p99_factor=curve.p99_factor(replicas) if curve else 1.0,
            memory_headroom_gib=usable - replicas * workload.gpu_memory_gib,
            usd_per_workload_hour=_usd_per_pod_hour(instance, replicas),
            fits=by_memory >= 1,
            note=note,
            isolation=STRATEGY_ISOLATION[strategy if replicas > 1 else "none"],
        )

    if by_memory < 1:
        note = f"does not fit: {workload.gpu_memory_gib:g} GiB > {usable:.1f} GiB usable"
        return [plan("none", 1, None, note)]
    plans = [plan("none", 1, None)]
    for strategy in STRATEGY_MODES:
        curve = curves[(model, strategy)]
        limit = min(by_memory, curve.max_clients)
        feasible = [r for r in range(2, limit + 1) if r * workload.busy <= curve.ratio(r) + 1e-9]
        if not feasible:
            why = "memory" if by_memory < 2 else "the GPU would be oversubscribed"
            plans.append(plan(strategy, 1, curve, f"no sharing: {why}"))
            continue
        replicas = max(feasible)
        bound = []
        if replicas == by_memory:
            bound.append("memory-bound")
        if replicas == curve.max_clients:
            bound.append(f"measured up to N={curve.max_clients}")
        if strategy == "mps":
            bound.append(MPS_CAP_NOTE.format(r=replicas))
        plans.append(plan(strategy, replicas, curve, "; ".join(bound)))
    gpu = facts.mig_gpu(instance.name)
    if gpu is not None:
        plans.append(plan_mig(workload, instance, gpu, curves[(model, MIG_CURVE_STRATEGY)]))
    if hami:
        plans.append(plan_hami(workload, instance, curves, model, plan))
    return plans


def plan_hami(
    workload: Workload,
    instance: facts.GpuInstance,
    curves: dict[tuple[str, str], Curve],
    model: str,
    plan,
) -> Plan:
    """HAMi: R slices per GPU, sized by memory as time-slicing is (each pod's nvidia.com/gpumem
    is the workload's memory, so R of them fit the GPU's usable memory), and served as the
    hami curve (else time-slicing's) allows. `plan` builds the row (plan_instance's)."""
    curve = curves.get((model, HAMI_STRATEGY))
    note = []
    if curve is None:
        curve = curves[(model, MIG_CURVE_STRATEGY)]
        note.append(HAMI_BORROWED_NOTE)
    usable = instance.gpu_memory_gib - GPU_MEMORY_RESERVE_GIB
    by_memory = math.floor(usable / workload.gpu_memory_gib)
    limit = min(by_memory, curve.max_clients)
    feasible = [r for r in range(2, limit + 1) if r * workload.busy <= curve.ratio(r) + 1e-9]
    mib = math.ceil(workload.gpu_memory_gib * 1024)
    if not feasible:
        why = "memory" if by_memory < 2 else "the GPU would be oversubscribed"
        row = plan(HAMI_STRATEGY, 1, curve, "; ".join([f"no sharing: {why}", *note]))
        return row if not note else dataclasses.replace(row, basis=MODELLED)
    replicas = max(feasible)
    if replicas == by_memory:
        note.insert(0, "memory-bound")
    note.insert(0, f"each pod capped at {facts.HAMI_MEMORY_RESOURCE}: {mib} (software)")
    row = plan(HAMI_STRATEGY, replicas, curve, "; ".join(note))
    # Without hami rows in the results, time-slicing's curve stands in: modelled, not measured.
    return row if HAMI_BORROWED_NOTE not in note else dataclasses.replace(row, basis=MODELLED)


def plan_mig(
    workload: Workload, instance: facts.GpuInstance, gpu: facts.MigGpu, curve: Curve
) -> Plan:
    """MIG with a uniform layout of the smallest slice that holds and serves one pod, each
    slice time-sliced by the largest R that its memory and the time-slicing curve allow."""
    splits = sorted(
        (p for p in gpu.profiles.values() if p.max_count >= 2),
        key=lambda p: (p.memory_gib, p.compute_slices),
    )
    held = [p for p in splits if p.memory_gib >= workload.gpu_memory_gib]
    for profile in held:
        # A pod's GPU time on a slice of c compute slices, x its whole-GPU time.
        slowdown = gpu.compute_slices / profile.compute_slices
        if workload.busy * slowdown > 1 + 1e-9:
            continue  # one pod alone would oversubscribe this slice
        by_memory = math.floor(profile.memory_gib / workload.gpu_memory_gib)
        limit = min(by_memory, curve.max_clients)
        per_slice = max(
            r for r in range(1, limit + 1) if r * workload.busy * slowdown <= curve.ratio(r) + 1e-9
        )
        pods = profile.max_count * per_slice
        note = [f"{profile.max_count} x {profile.name} per GPU"]
        if per_slice > 1:
            note[0] += f", each time-sliced x{per_slice}"
            if per_slice == by_memory:
                note.append("memory-bound")
            if per_slice == curve.max_clients:
                note.append(f"measured up to N={curve.max_clients}")
        note.append(f"each pod capped at {profile.compute_slices}/{gpu.compute_slices}")
        if profile.memory_estimated:
            note.append("slice memory estimated, not read from nvidia-smi")
        note.append(MIG_MODEL_NOTE)
        return Plan(
            instance_type=instance.name,
            strategy=MIG_STRATEGY,
            replicas=pods,
            model=curve.model,
            throughput_ratio=profile.max_count * curve.ratio(per_slice) / slowdown,
            demand=pods * workload.busy,
            p99_factor=slowdown * curve.p99_factor(per_slice),
            memory_headroom_gib=profile.max_count
            * (profile.memory_gib - per_slice * workload.gpu_memory_gib),
            usd_per_workload_hour=_usd_per_pod_hour(instance, pods),
            fits=True,
            note="; ".join(note),
            mig_profile=profile.name,
            slice_replicas=per_slice,
            isolation=(
                isolation.MIG if per_slice == 1 else isolation.time_sliced_within(isolation.MIG)
            ),
            basis=MODELLED,
        )
    if held:
        why = f"one pod would oversubscribe even a {held[-1].name} slice"
    else:
        largest = max(splits, key=lambda p: p.memory_gib)
        why = f"{workload.gpu_memory_gib:g} GiB > a {largest.name} slice's {largest.memory_gib:g}"
    return Plan(
        instance_type=instance.name,
        strategy=MIG_STRATEGY,
        replicas=1,
        model=curve.model,
        throughput_ratio=1.0,
        demand=workload.busy,
        p99_factor=1.0,
        memory_headroom_gib=instance.gpu_memory_gib
        - GPU_MEMORY_RESERVE_GIB
        - workload.gpu_memory_gib,
        usd_per_workload_hour=_usd_per_pod_hour(instance, 1),
        fits=False,
        note=f"no MIG: {why}",
        isolation=isolation.MIG,
        basis=MODELLED,
    )


def plan_fractional(workload: Workload, instance: facts.GpuInstance, curve: Curve) -> list[Plan]:
    """A fractional type's vGPU, a slice of f of one GPU: unshared, and time-sliced by the
    largest R its memory and the time-slicing curve allow (R x busy / f <= ratio(R)). Its
    usable memory is its own less f of the whole GPU's reserve; one pod takes 1/f times its
    whole-GPU time. A model, as MIG's is."""
    assert instance.gpu_fraction is not None
    share = float(instance.gpu_fraction)
    usable = instance.gpu_memory_gib - GPU_MEMORY_RESERVE_GIB * share
    by_memory = math.floor(usable / workload.gpu_memory_gib)
    slowdown = 1 / share
    vgpu = f"{instance.gpu_fraction} {instance.gpu_model} vGPU"
    cap = f"each pod capped at {instance.gpu_fraction} of the GPU"

    def plan(strategy: str, replicas: int, fits: bool, note: list[str]) -> Plan:
        return Plan(
            instance_type=instance.name,
            strategy=strategy,
            replicas=replicas,
            model=curve.model,
            throughput_ratio=share * curve.ratio(replicas),
            demand=replicas * workload.busy,
            p99_factor=slowdown * curve.p99_factor(replicas),
            memory_headroom_gib=usable - replicas * workload.gpu_memory_gib,
            usd_per_workload_hour=_usd_per_pod_hour(instance, replicas),
            fits=fits,
            note="; ".join([*note, MIG_MODEL_NOTE]),
            isolation=(
                isolation.FRACTIONAL_VGPU
                if replicas == 1
                else isolation.time_sliced_within(isolation.FRACTIONAL_VGPU)
            ),
            basis=MODELLED,
        )

    if by_memory < 1:
        why = f"does not fit: {workload.gpu_memory_gib:g} GiB > {usable:.1f} GiB usable"
        return [plan("none", 1, False, [why])]
    if workload.busy * slowdown > 1 + 1e-9:
        why = f"one pod would need {workload.busy * slowdown:.2f} of its {vgpu}"
        return [plan("none", 1, False, [why])]
    plans = [plan("none", 1, True, [f"one {vgpu}", cap])]
    limit = min(by_memory, curve.max_clients)
    feasible = [
        r for r in range(2, limit + 1) if r * workload.busy * slowdown <= curve.ratio(r) + 1e-9
    ]
    if not feasible:
        why = "memory" if by_memory < 2 else "the vGPU would be oversubscribed"
        plans.append(plan("time-slicing", 1, True, [f"no sharing: {why}"]))
        return plans
    replicas = max(feasible)
    note = [f"one {vgpu}, time-sliced x{replicas}"]
    if replicas == by_memory:
        note.append("memory-bound")
    if replicas == curve.max_clients:
        note.append(f"measured up to N={curve.max_clients}")
    plans.append(plan("time-slicing", replicas, True, [*note, cap]))
    return plans


def _usd_per_pod_hour(instance: facts.GpuInstance, pods_per_gpu: int) -> float:
    """The on-demand price of the instance over the pods it holds (NaN without a price)."""
    if instance.usd_per_hour is None:
        return math.nan
    return instance.usd_per_hour / (instance.gpus * pods_per_gpu)


def recommend(plans: Sequence[Plan]) -> Plan:
    """The plan with the most pods per GPU (cheapest per virtual GPU); on a tie MIG (the same
    density with its own memory and fault domain per slice), then the one that caps a pod
    least (none, then time-slicing, then MPS). A MIG row that only says why MIG does not
    serve the workload is never recommended."""
    preference = {"mps": 0, HAMI_STRATEGY: 1, "time-slicing": 2, "none": 3, MIG_STRATEGY: 4}
    candidates = [p for p in plans if p.recommendable] or list(plans)
    return max(candidates, key=lambda p: (p.replicas, preference[p.strategy]))


def profile_name(plan: Plan) -> str:
    """A sharing profile name for a plan (a valid one: a lowercase letter first, then
    lowercase letters, digits and dashes)."""
    if plan.strategy == "none":
        return "unshared"
    if plan.strategy == HAMI_STRATEGY:
        return f"hami-{plan.replicas}"
    if plan.strategy == MIG_STRATEGY:
        name = f"mig-{plan.mig_profile.replace('.', '-').replace('+', '-')}"
        return name + (f"-x{plan.slice_replicas}" if plan.slice_replicas > 1 else "")
    return f"{plan.strategy}-{plan.replicas}"


def sharing_profile(plan: Plan) -> dict:
    """The stack config of the profile a plan needs."""
    if plan.strategy == "none":
        return {"strategy": "none"}
    if plan.strategy == HAMI_STRATEGY:
        return {"strategy": HAMI_STRATEGY, "hami": {"splitCount": plan.replicas}}
    if plan.strategy == MIG_STRATEGY:
        profile: dict = {"strategy": MIG_STRATEGY}
        if plan.slice_replicas > 1:
            profile["replicas"] = plan.slice_replicas
        # A uniform layout: `single` advertises each slice as nvidia.com/gpu, so pods (and
        # Bottlerocket's built-in MIG) need nothing else.
        profile["mig"] = {"layout": f"all-{plan.mig_profile}", "strategy": "single"}
        return profile
    return {"strategy": plan.strategy, "replicas": plan.replicas}


def sharing_profiles(plans_by_type: dict[str, list[Plan]]) -> dict[str, dict]:
    """The `sharing` profiles the recommended plans need, as stack config (one per distinct
    strategy and replicas), and which instance types use each."""
    profiles: dict[str, dict] = {}
    best_of = {t: recommend(plans) for t, plans in plans_by_type.items()}
    # One HAMi installation serves every hami node of a stack, so all hami profiles must agree:
    # the fewest slices any type was planned with (fewer slices is always feasible).
    hami = [b for b in best_of.values() if b.recommendable and b.strategy == HAMI_STRATEGY]
    fewest = min(hami, key=lambda b: b.replicas) if hami else None
    for instance_type, best in best_of.items():
        if not best.recommendable:
            continue
        if best.strategy == HAMI_STRATEGY and fewest is not None:
            best = fewest
        entry = profiles.setdefault(profile_name(best), {"plan": best, "instance_types": []})
        entry["instance_types"].append(instance_type)
    return {
        name: {"profile": sharing_profile(e["plan"]), "instance_types": e["instance_types"]}
        for name, e in profiles.items()
    }


def format_profiles(plans_by_type: dict[str, list[Plan]]) -> str:
    """The recommended profiles as they go into Pulumi.<stack>.yaml."""
    profiles = sharing_profiles(plans_by_type)
    if not profiles:
        return ""
    lines = ["Profiles to write in Pulumi.<stack>.yaml (then set each GPU group's `sharing`):", ""]
    lines.append(f"  {facts.CONFIG_NAMESPACE}:sharing:")
    for name, entry in profiles.items():
        lines.append(f"    {name}:  # {', '.join(entry['instance_types'])}")
        lines += [f"      {key}: {_flow(value)}" for key, value in entry["profile"].items()]
    return "\n".join(lines)


def _flow(value: object) -> str:
    """A YAML scalar, or a one-line flow mapping (`{layout: all-1g.5gb, strategy: single}`)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    return str(value)


def default_instance_types() -> list[str]:
    """The smallest size of every GPU family with an on-demand price (p5e has none), and of a
    fractional family every GPU fraction it sells (g6f: 1/8, 1/4 and 1/2 of an L4 are as
    different as GPUs of different sizes)."""
    smallest: dict[tuple[str, object], facts.GpuInstance] = {}
    for instance in facts.GPU_INSTANCES.values():
        if instance.usd_per_hour is None:
            continue
        key = (instance.family, instance.gpu_fraction)
        current = smallest.get(key)
        if current is None or (instance.gpus, instance.vcpus) < (current.gpus, current.vcpus):
            smallest[key] = instance
    return [i.name for i in sorted(smallest.values(), key=lambda i: i.usd_per_hour)]


def reference_launch_ms(results: Sequence[bench.Result], model: str) -> float | None:
    """The host speed the model's ratios are stated at (launch ms per iteration), if any."""
    row = bench.results_by_key(results).get((model, "exclusive", 1))
    return row.reference_launch_ms if row is not None else None


def format_plans(
    workload: Workload,
    plans_by_type: dict[str, list[Plan]],
    model: str,
    reference_ms: float | None = None,
) -> str:
    lines = [
        f"workload: {workload.gpu_memory_gib:g} GiB GPU memory per pod, "
        f"{workload.gpu_ms_per_request:g} ms GPU time per request, busy {workload.busy:g} "
        f"-> behaves like the benchmark's '{model}' model",
        "",
        "| instance | GPU | strategy | replicas | demand / GPU delivers | p99 x | "
        "headroom GiB | $/workload h | note | isolation | basis |",
        "|---|---|---|---:|---:|---:|---:|---:|---|---|---|",
    ]
    for instance_type, plans in plans_by_type.items():
        instance = facts.GPU_INSTANCES[instance_type]
        best = recommend(plans)
        for p in plans:
            mark = " **(recommended)**" if p is best and p.recommendable else ""
            lines.append(
                f"| {instance_type} | {instance.gpu_description} | {p.strategy}{mark} | "
                f"{p.replicas} | {p.demand:.2f} / {p.throughput_ratio:.2f} | "
                f"{p.p99_factor:.1f} | {p.memory_headroom_gib:.1f} | "
                f"{p.usd_per_workload_hour:.3f} | {p.note} | {p.isolation.label} | {p.basis} |"
            )
    every = [p for plans in plans_by_type.values() for p in plans]
    lines += [
        "",
        f"Prices: on-demand us-east-1 as of {facts.PRICES_AS_OF}. 'GPU delivers' is the low end "
        "of the measured throughput (`ratio_low`, see benchmarks/sharing/README.md); throughput "
        "and latency were measured on the GPU named in the results file; re-measure on your "
        "instance type."
        + (
            f" The '{model}' ratios are stated for a host that launches one of its iterations "
            f"in {reference_ms:g} ms; on slower cores a lone pod is slower and sharing gains "
            "more (benchmarks/sharing/README.md, 'Ratios at a reference host speed')."
            if reference_ms is not None
            else ""
        )
        + (
            " MIG rows are a model, not a measurement: the benchmark measured no MIG slice; a "
            "pod on a slice of c of the GPU's C compute slices is taken to need C/c times its "
            "whole-GPU time per request, and a slice's time-slicing to follow the whole GPU's "
            "curve."
            if any(p.strategy == MIG_STRATEGY for p in every)
            else ""
        )
        + (
            " Fractional vGPU rows (g6f, gr6f) are a model too: a vGPU of f of a GPU is taken "
            "to need 1/f times a pod's whole-GPU time and to hold its own memory less f of the "
            f"{GPU_MEMORY_RESERVE_GIB:g} GiB reserve; no vGPU was measured."
            if any(isolation.FRACTIONAL_VGPU.key in p.isolation.key for p in every)
            else ""
        ),
    ]
    return "\n".join(lines)


def compared(plans_by_type: dict[str, list[Plan]]) -> tuple[list[Plan], list[Plan]]:
    """Every option for the workload, as (those that serve it, cheapest per workload-hour
    first and on a tie the one that isolates pods more; those that do not, in the same
    order). A row of a sharing strategy that ends at one pod per device is the `none` row
    again and is left out."""
    order = {t: i for i, t in enumerate(plans_by_type)}

    def key(p: Plan) -> tuple[float, int, int]:
        price = p.usd_per_workload_hour
        return (math.inf if math.isnan(price) else price, -p.isolation.rank, order[p.instance_type])

    options = [p for plans in plans_by_type.values() for p in plans if p.an_option]
    served = sorted((p for p in options if p.recommendable), key=key)
    unserved = sorted((p for p in options if not p.recommendable), key=key)
    return served, unserved


def format_comparison(plans_by_type: dict[str, list[Plan]]) -> str:
    """The options compared: what each costs per workload-hour, what it isolates, and
    whether its figures were measured or modelled."""
    served, unserved = compared(plans_by_type)
    lines = [
        "Compared for this workload, cheapest per workload-hour first (on a tie, the more "
        "isolated first):",
        "",
        "| # | instance | GPU | strategy | pods / instance | $/workload h | isolation | basis | "
        "note |",
        "|---:|---|---|---|---:|---:|---|---|---|",
    ]
    for rank, p in [*((str(i), p) for i, p in enumerate(served, 1)), *(("-", p) for p in unserved)]:
        instance = facts.GPU_INSTANCES[p.instance_type]
        note = p.note if rank != "-" else f"does not serve it: {p.note}"
        lines.append(
            f"| {rank} | {p.instance_type} | {instance.gpu_description} | {p.strategy} | "
            f"{instance.gpus * p.replicas} | {p.usd_per_workload_hour:.3f} | "
            f"{p.isolation.label} | {p.basis} | {note} |"
        )
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line, as the planner's other errors (the usage is at --help): under
        # `make plan-capacity` a usage block only hides what was wrong.
        self.exit(2, f"planner: {message} (see --help)\n")


def _finite(text: str) -> float:
    """A number argument: 'nan', 'inf' or 1e400 would pass every comparison below or none,
    and plan from NaN (or fail later blaming the results file)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--memory-gib", type=_finite, required=True, help="GPU memory per pod")
    parser.add_argument("--gpu-ms", type=_finite, required=True, help="GPU ms per request alone")
    parser.add_argument("--busy", type=_finite, default=1.0, help="GPU busy share of one pod")
    parser.add_argument("--instance-types", help="comma-separated (default: smallest per family)")
    parser.add_argument("--results", type=Path, default=DEFAULT_RESULTS)
    parser.add_argument(
        "--hami",
        action="store_true",
        help="also plan strategy hami: slices with each pod's GPU memory capped (needs HAMi)",
    )
    args = parser.parse_args(argv)
    if args.memory_gib <= 0 or args.gpu_ms <= 0 or not 0 < args.busy <= 1:
        parser.error("--memory-gib and --gpu-ms must be > 0, --busy in (0, 1]")
    types = args.instance_types.split(",") if args.instance_types else default_instance_types()
    unknown = [t for t in types if t not in facts.GPU_INSTANCES]
    if unknown:
        parser.error(f"unknown GPU instance types: {', '.join(unknown)}")
    workload = Workload(args.memory_gib, args.gpu_ms, args.busy)
    try:
        results = bench.load_results(args.results)
        model = matching_model(results, workload.gpu_ms_per_request)
    # A file that is not a results CSV (missing, a folder, undecodable, bad columns or rows,
    # no rows: load_results names the file), or one with no exclusive baseline to match a
    # workload against.
    except ValueError as exc:
        where = "" if str(exc).startswith(str(args.results)) else f"{args.results}: "
        print(f"planner: {where}{exc}", file=sys.stderr)
        return 2
    curves = load_curves(results)
    plans = {
        t: plan_instance(workload, facts.GPU_INSTANCES[t], curves, model, hami=args.hami)
        for t in types
    }
    print(format_plans(workload, plans, model, reference_launch_ms(results, model)))
    print()
    print(format_comparison(plans))
    profiles = format_profiles(plans)
    if profiles:
        print()
        print(profiles)
    return 0


def _interpolate(points: dict[int, float], n: int) -> float:
    """Linear between measured N; N beyond the last measurement is not extrapolated."""
    if n in points:
        return points[n]
    xs = sorted(points)
    if n < xs[0] or n > xs[-1]:
        raise ValueError(f"N={n} outside the measured range {xs[0]}..{xs[-1]}")
    hi = next(x for x in xs if x > n)
    lo = max(x for x in xs if x < n)
    return points[lo] + (points[hi] - points[lo]) * (n - lo) / (hi - lo)


if __name__ == "__main__":
    sys.exit(main())
