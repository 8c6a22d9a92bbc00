"""The capacity planner, checked against the committed benchmark results."""

from __future__ import annotations

import dataclasses
import math
import shlex
import subprocess

import pytest
import yaml

from benchmarks.sharing import bench
from benchmarks.sharing.bench import results_csv
from eks_gpu_slicing import facts
from eks_gpu_slicing.planning import isolation
from eks_gpu_slicing.planning.planner import (
    DEFAULT_RESULTS,
    GPU_MEMORY_RESERVE_GIB,
    MIG_CURVE_STRATEGY,
    MODELLED,
    Workload,
    compared,
    default_instance_types,
    load_curves,
    main,
    matching_model,
    plan_instance,
    recommend,
)
from eks_gpu_slicing.settings import load_settings
from eks_gpu_slicing.settings.stack_files import ROOT

T4 = facts.GPU_INSTANCES["g4dn.xlarge"]
A10G = facts.GPU_INSTANCES["g5.xlarge"]


@pytest.fixture(scope="module")
def results() -> list[bench.Result]:
    return bench.load_results(DEFAULT_RESULTS)


@pytest.fixture(scope="module")
def curves(results):
    return load_curves(results)


def by_strategy(plans):
    return {p.strategy: p for p in plans}


def measured_ratio(results, model, mode, n) -> float:
    return bench.results_by_key(results)[(model, mode, n)].ratio_vs_exclusive


def low_ratio(results, model, mode, n) -> float:
    """The low end of the measured spread, which is what the planner counts on."""
    return bench.results_by_key(results)[(model, mode, n)].ratio_low


def test_workloads_match_the_benchmark_model_with_the_nearest_latency(results):
    for r in results:
        if r.mode == "exclusive":
            assert matching_model(results, r.p50_ms) == r.model
    assert matching_model(results, 0.2) == "mlp"
    # Measured exclusive p50: transformer 0.73 ms, memory 2.5 ms; the boundary lies at their
    # geometric mean, about 1.36 ms.
    assert matching_model(results, 1.0) == "transformer"
    assert matching_model(results, 20) == "memory"


def test_curves_come_from_the_committed_rows(results, curves):
    curve = curves[("transformer", "time-slicing")]
    assert curve.ratio(1) == 1.0
    for n in (2, 4, 8, 10):
        assert curve.ratio(n) == low_ratio(results, "transformer", "time-slicing", n)
        assert curve.ratio(n) < measured_ratio(results, "transformer", "time-slicing", n)
    # Between measurements: linear, never outside the measured range.
    assert curve.ratio(6) == pytest.approx((curve.ratio(4) + curve.ratio(8)) / 2)
    with pytest.raises(ValueError):
        curve.ratio(11)


def test_saturating_small_kernels_gain_nothing_from_time_slicing_but_scale_with_mps(
    results, curves
):
    # Measured low ends: time-slicing mlp below 1x at every N (0.69-0.73x), MPS 7.1x at N=10.
    workload = Workload(1.0, 0.2, busy=0.7)
    plans = by_strategy(plan_instance(workload, T4, curves, "mlp"))
    assert plans["time-slicing"].replicas == 1
    assert plans["mps"].replicas == 10  # 10 x 0.7 = 7.0 <= 9.99
    assert plans["mps"].throughput_ratio == low_ratio(results, "mlp", "mps", 10)
    # The stack deploys MPS: the most pods per GPU wins.
    assert recommend(plans.values()).strategy == "mps"
    assert "capped at 1/10" in plans["mps"].note
    # Pods that keep the GPU fully busy alone cannot share it even with MPS: the low end at
    # N=2 is 1.97, under the 2.0 they would demand.
    saturating = by_strategy(plan_instance(Workload(1.0, 0.2, busy=1.0), T4, curves, "mlp"))
    assert saturating["mps"].replicas == 1


def test_plans_count_on_the_low_end_of_the_spread():
    def row(mode, n, ratio, low):
        return bench.Result(
            *("2026-01-02", "GPU", "1", "9"),
            *("transformer", mode, n, 3, 2.0, 100.0 * ratio, 100.0 * ratio / n, ratio),
            *(1.0, 1.0, 100.0, "ok"),
            ratio_low=low,
        )

    results = [
        row("exclusive", 1, 1.0, 0.8),
        *(row(mode, n, 4.0, 2.0) for mode in ("time-slicing", "mps") for n in (2, 4)),
    ]
    plans = by_strategy(
        plan_instance(Workload(1.0, 1.0, busy=0.5), T4, load_curves(results), "transformer")
    )
    # 4 pods at 0.5 demand 2.0: within the low end 2.0 (the median 4.0 would allow 4 too)
    assert plans["time-slicing"].replicas == 4
    plans = by_strategy(
        plan_instance(Workload(1.0, 1.0, busy=0.6), T4, load_curves(results), "transformer")
    )
    assert plans["time-slicing"].replicas == 3  # 4 x 0.6 = 2.4 > 2.0, though < 4.0
    # A file without the low end (an older benchmark) falls back to the plain ratio.
    legacy = [dataclasses.replace(r, ratio_low=None) for r in results]
    plans = by_strategy(
        plan_instance(Workload(1.0, 1.0, busy=0.6), T4, load_curves(legacy), "transformer")
    )
    assert plans["time-slicing"].replicas == 4


def test_chosen_replicas_are_the_largest_the_gpu_can_serve(results, curves):
    workload = Workload(gpu_memory_gib=1.0, gpu_ms_per_request=1.0, busy=0.35)
    plans = by_strategy(plan_instance(workload, A10G, curves, "transformer"))
    curve = curves[("transformer", "time-slicing")]
    chosen = plans["time-slicing"].replicas
    assert chosen * workload.busy <= curve.ratio(chosen)
    assert all(r * workload.busy > curve.ratio(r) for r in range(chosen + 1, curve.max_clients + 1))
    # 5 x 0.35 = 1.75 <= 1.79, the low end from N=4 on; 6 x 0.35 = 2.1 > 1.79
    assert chosen == 5
    # MPS serves more of these pods (its low end at N=6 is 3.02, above 6 x 0.35 = 2.1).
    best = recommend(plans.values())
    assert best.strategy == "mps" and best.replicas > chosen
    assert best.replicas * workload.busy <= curves[("transformer", "mps")].ratio(best.replicas)


def test_memory_limits_replicas(curves):
    # 2 GiB per pod on a T4 (16 GiB, 1 GiB reserved): 7 pods fit, not 10.
    workload = Workload(gpu_memory_gib=2.0, gpu_ms_per_request=1.5, busy=0.1)
    plans = by_strategy(plan_instance(workload, T4, curves, "transformer"))
    assert plans["time-slicing"].replicas == 7
    assert plans["time-slicing"].memory_headroom_gib == pytest.approx(
        T4.gpu_memory_gib - GPU_MEMORY_RESERVE_GIB - 14
    )
    assert "memory-bound" in plans["time-slicing"].note


def test_a_workload_larger_than_the_gpu_does_not_fit(curves):
    (only,) = plan_instance(Workload(20.0, 10, 1.0), T4, curves, "memory")
    assert not only.fits and "does not fit" in only.note


def test_bandwidth_bound_work_is_not_shared(results, curves):
    # Measured: time-slicing the memory model costs throughput (0.88x) at every N.
    assert measured_ratio(results, "memory", "time-slicing", 2) < 1
    plans = by_strategy(plan_instance(Workload(4.0, 10, 1.0), A10G, curves, "memory"))
    assert plans["time-slicing"].replicas == 1
    assert recommend(plans.values()).strategy == "none"


MIG_TYPES = sorted(facts.MIG_GPU_OF_INSTANCE)


@pytest.mark.parametrize("instance_type", MIG_TYPES)
def test_mig_takes_the_smallest_slice_that_holds_and_serves_a_pod(curves, instance_type):
    instance = facts.GPU_INSTANCES[instance_type]
    gpu = facts.mig_gpu(instance_type)
    workload = Workload(2.0, 1.0, 0.1)
    plans = plan_instance(workload, instance, curves, "transformer")
    mig = by_strategy(plans)["mig"]
    # the smallest profile (1g, memory slice 1) holds 2 GiB, and one pod keeps it busy
    # 0.1 x 7 = 0.7 of the time
    smallest = min(gpu.profiles.values(), key=lambda p: (p.memory_gib, p.compute_slices))
    assert mig.mig_profile == smallest.name
    slowdown = gpu.compute_slices / smallest.compute_slices
    curve = curves[("transformer", MIG_CURVE_STRATEGY)]
    by_memory = int(smallest.memory_gib // workload.gpu_memory_gib)
    expected = max(
        r
        for r in range(1, min(by_memory, curve.max_clients) + 1)
        if r * workload.busy * slowdown <= curve.ratio(r) + 1e-9
    )
    assert mig.slice_replicas == expected
    assert mig.replicas == smallest.max_count * expected  # pods per GPU
    assert mig.throughput_ratio == pytest.approx(
        smallest.max_count * curve.ratio(expected) / slowdown
    )
    if instance.usd_per_hour is None:
        # MIG rows follow the others: no on-demand price (p5e), no cost per pod
        assert math.isnan(mig.usd_per_workload_hour)
    else:
        assert mig.usd_per_workload_hour == pytest.approx(
            instance.usd_per_hour / (instance.gpus * mig.replicas)
        )
    assert "modelled, not measured" in mig.note


def test_no_mig_row_on_gpus_without_mig(curves):
    for name, instance in facts.GPU_INSTANCES.items():
        plans = plan_instance(Workload(2.0, 1.0, 0.1), instance, curves, "transformer")
        assert ("mig" in by_strategy(plans)) == (facts.mig_gpu(name) is not None)


def test_mig_skips_slices_one_pod_would_oversubscribe(curves):
    p4d = facts.GPU_INSTANCES["p4d.24xlarge"]
    gpu = facts.mig_gpu("p4d.24xlarge")
    # 0.4 x 7/c <= 1 needs c >= 3: the 1g and 2g slices are too slow for one pod
    mig = by_strategy(plan_instance(Workload(2.0, 1.0, 0.4), p4d, curves, "transformer"))["mig"]
    chosen = gpu.profiles[mig.mig_profile]
    assert chosen.compute_slices == 3
    assert 0.4 * gpu.compute_slices / chosen.compute_slices <= 1
    # saturating work fits no slice that splits the GPU: an explanation, never recommended
    plans = plan_instance(Workload(2.0, 1.0, 1.0), p4d, curves, "transformer")
    mig = by_strategy(plans)["mig"]
    assert not mig.mig_profile and mig.note.startswith("no MIG: one pod would oversubscribe")
    assert recommend(plans).strategy != "mig"


def test_mig_needs_a_slice_that_holds_the_pod(curves):
    p4d = facts.GPU_INSTANCES["p4d.24xlarge"]
    splits = [p for p in facts.mig_gpu("p4d.24xlarge").profiles.values() if p.max_count >= 2]
    too_big = max(p.memory_gib for p in splits) + 1
    plans = plan_instance(Workload(too_big, 1.0, 0.1), p4d, curves, "transformer")
    mig = by_strategy(plans)["mig"]
    assert mig.note.startswith(f"no MIG: {too_big:g} GiB >")
    assert recommend(plans).strategy != "mig"


# One instance type per MIG GPU model, with every slice that splits it: the first (fewest
# compute slices) of each memory size, which is the one a pod of that size is put on.
EXACT_SLICES = [
    (instance_type, profile)
    for instance_type in {
        facts.mig_gpu(t).name: t for t in sorted(facts.MIG_GPU_OF_INSTANCE, reverse=True)
    }.values()
    for profile in {
        p.memory_gib: p
        for p in sorted(
            facts.mig_gpu(instance_type).profiles.values(),
            key=lambda p: -p.compute_slices,
        )
        if p.max_count >= 2
    }.values()
]


@pytest.mark.parametrize(
    ("instance_type", "profile"), EXACT_SLICES, ids=[f"{t}-{p.name}" for t, p in EXACT_SLICES]
)
def test_a_pod_whose_memory_equals_a_slices_fits_that_slice(capsys, instance_type, profile):
    """A slice's memory (as nvidia-smi reports it) is the pod's whole device memory: a pod of
    exactly that size fits it, with no headroom; a pod a little larger needs a larger slice."""

    def mig_row(memory_gib: float) -> list[str]:
        argv = ["--memory-gib", f"{memory_gib:g}", "--gpu-ms", "1", "--busy", "0.1"]
        assert main([*argv, "--instance-types", instance_type]) == 0
        out = capsys.readouterr().out
        (row,) = [
            line
            for line in out.splitlines()
            if line.startswith(f"| {instance_type} |") and "| mig" in line
        ]
        return [cell.strip() for cell in row.split("|")]

    row = mig_row(profile.memory_gib)
    assert row[4] == str(profile.max_count)  # replicas: one pod per slice
    assert row[7] == "0.0"  # headroom
    assert row[9].startswith(f"{profile.max_count} x {profile.name} per GPU;")
    assert f" x {profile.name} per GPU" not in mig_row(profile.memory_gib + 0.01)[9]


def test_mig_wins_a_tie_with_time_slicing(curves):
    """Same pods per GPU: MIG adds memory and fault isolation, so it is recommended."""
    p4d = facts.GPU_INSTANCES["p4d.24xlarge"]
    plans = by_strategy(plan_instance(Workload(15.0, 1.0, 0.4), p4d, curves, "transformer"))
    assert plans["mig"].replicas == plans["time-slicing"].replicas
    assert recommend(plans.values()).strategy == "mig"


def test_mig_output_says_it_is_a_model(capsys):
    argv = ["--memory-gib", "2", "--gpu-ms", "1", "--busy", "0.1"]
    assert main([*argv, "--instance-types", "p4d.24xlarge"]) == 0
    out = capsys.readouterr().out
    assert "| mig **(recommended)** |" in out
    assert "MIG rows are a model, not a measurement" in out
    assert "mig: {layout: all-1g.5gb, strategy: single}" in out
    # no MIG row, no MIG note
    assert main([*argv, "--instance-types", "g4dn.xlarge"]) == 0
    assert "MIG" not in capsys.readouterr().out


def test_cost_per_virtual_gpu_hour_divides_the_price():
    p5 = facts.GPU_INSTANCES["p4d.24xlarge"]
    curves_ = load_curves(bench.load_results(DEFAULT_RESULTS))
    plans = by_strategy(plan_instance(Workload(1.0, 1.5, 0.1), p5, curves_, "transformer"))
    shared = plans["time-slicing"]
    assert shared.usd_per_workload_hour == pytest.approx(
        p5.usd_per_hour / (p5.gpus * shared.replicas)
    )
    assert plans["none"].usd_per_workload_hour == pytest.approx(p5.usd_per_hour / p5.gpus)


def test_default_instance_types_are_one_per_family_and_gpu_fraction():
    types = default_instance_types()
    priced = {
        (i.family, i.gpu_fraction)
        for i in facts.GPU_INSTANCES.values()
        if i.usd_per_hour is not None
    }
    assert sorted(
        (facts.GPU_INSTANCES[t].family, str(facts.GPU_INSTANCES[t].gpu_fraction)) for t in types
    ) == sorted((f, str(fraction)) for f, fraction in priced)
    assert "g4dn.xlarge" in types and "g5.xlarge" in types
    # Each fraction of an L4 g6f sells, at its cheapest size.
    assert {"g6f.large", "g6f.2xlarge", "g6f.4xlarge", "gr6f.4xlarge"} <= set(types)
    assert "g6f.xlarge" not in types  # the same 1/8 as g6f.large, dearer


def test_cli_prints_a_recommendation(capsys):
    assert (
        main(
            [
                "--memory-gib",
                "2",
                "--gpu-ms",
                "1",
                "--busy",
                "0.25",
                "--instance-types",
                "g4dn.xlarge",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    # Memory allows 7 pods of 2 GiB on a T4. Both strategies serve them (7 x 0.25 = 1.75 <=
    # 1.79, time-slicing's low end at N=7; MPS 3.02), and on a tie the strategy that caps a
    # pod least is recommended.
    assert "| time-slicing **(recommended)** | 7 |" in out
    assert "| mps | 7 |" in out
    assert "transformer" in out
    # the committed ratios are stated at the benchmark's reference host speed, and say so
    assert "The 'transformer' ratios are stated for a host that launches one of its " in out
    assert "iterations in 0.8 ms" in out


def test_readme_example_output_is_what_the_planner_prints(capsys):
    """docs/strategies.md shows the planner's answer for one workload: it must be today's."""
    readme = (ROOT / "docs" / "strategies.md").read_text()
    command = "make plan-capacity MEMORY_GIB=2 GPU_MS=1 BUSY=0.25 TYPES=g4dn.xlarge,g5.xlarge"
    assert command in readme
    shown = readme.split(command, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    rows = [line for line in shown.splitlines() if line.startswith("| g")]
    assert len(rows) == 6  # none, time-slicing and MPS on each of the two instance types
    argv = ["--memory-gib", "2", "--gpu-ms", "1", "--busy", "0.25"]
    assert main([*argv, "--instance-types", "g4dn.xlarge,g5.xlarge"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert rows == [line for line in printed if line.startswith("| g")]


# --- Hardware slices you can buy: fractional vGPUs, and everything compared -------------------

FRACTIONAL = sorted(n for n, i in facts.GPU_INSTANCES.items() if i.fractional)


@pytest.mark.parametrize("instance_type", FRACTIONAL)
def test_a_fractional_vgpu_is_planned_as_a_slice_of_its_fraction(curves, instance_type):
    """Memory: its own, less its share of the reserve. Compute: a pod takes 1/f of its
    whole-GPU time, time-sliced on top while R x busy / f fits the measured curve. No MPS
    (refused on a vGPU), no MIG; every row modelled, with the vGPU's isolation."""
    instance = facts.GPU_INSTANCES[instance_type]
    f = float(instance.gpu_fraction)
    workload = Workload(0.5, 1.0, 0.02)
    plans = by_strategy(plan_instance(workload, instance, curves, "transformer"))
    assert set(plans) == {"none", "time-slicing"}
    usable = instance.gpu_memory_gib - GPU_MEMORY_RESERVE_GIB * f
    curve = curves[("transformer", MIG_CURVE_STRATEGY)]
    expected = max(
        r
        for r in range(2, min(int(usable // 0.5), curve.max_clients) + 1)
        if r * workload.busy / f <= curve.ratio(r) + 1e-9
    )
    shared = plans["time-slicing"]
    assert shared.replicas == expected
    assert shared.throughput_ratio == pytest.approx(f * curve.ratio(expected))
    assert shared.usd_per_workload_hour == pytest.approx(instance.usd_per_hour / expected)
    assert shared.isolation == isolation.time_sliced_within(isolation.FRACTIONAL_VGPU)
    assert plans["none"].isolation == isolation.FRACTIONAL_VGPU
    assert plans["none"].usd_per_workload_hour == pytest.approx(instance.usd_per_hour)
    assert all(p.basis == MODELLED for p in plans.values())


def test_a_vgpu_too_small_for_one_busy_pod_does_not_serve_it(curves):
    """A pod busy 25 % of a whole L4 needs twice what a 1/8 L4 delivers: the row says so and
    is never recommended; a 1/4 L4 serves it exactly."""
    workload = Workload(2.0, 1.0, 0.25)
    eighth = facts.GPU_INSTANCES["g6f.large"]
    (plan,) = plan_instance(workload, eighth, curves, "transformer")
    need = workload.busy / float(eighth.gpu_fraction)
    assert not plan.recommendable
    assert plan.note.startswith(f"one pod would need {need:.2f} of its 1/8 L4 vGPU")
    quarter = facts.GPU_INSTANCES["g6f.2xlarge"]
    assert recommend(plan_instance(workload, quarter, curves, "transformer")).recommendable


def test_a_pod_that_fills_a_vgpus_usable_memory_fits_and_one_larger_does_not(curves):
    half = facts.GPU_INSTANCES["g6f.4xlarge"]
    usable = half.gpu_memory_gib - GPU_MEMORY_RESERVE_GIB * float(half.gpu_fraction)
    fits = plan_instance(Workload(usable, 1.0, 0.1), half, curves, "transformer")[0]
    assert fits.recommendable and fits.memory_headroom_gib == pytest.approx(0)
    too_big = plan_instance(Workload(usable + 0.01, 1.0, 0.1), half, curves, "transformer")
    assert [p.note.split(":")[0] for p in too_big] == ["does not fit"]


def test_mig_on_the_rtx_pro_6000_counts_its_four_compute_slices(curves):
    """1g.24gb is a quarter of the GPU, not a seventh: a pod busy 1/4 of the whole GPU keeps
    it fully busy, and still fits; 0.3 does not."""
    g7e = facts.GPU_INSTANCES["g7e.2xlarge"]
    gpu = facts.mig_gpu("g7e.2xlarge")
    mig = by_strategy(plan_instance(Workload(2.0, 1.0, 0.25), g7e, curves, "transformer"))["mig"]
    assert mig.mig_profile == "1g.24gb" and mig.replicas == gpu.profiles["1g.24gb"].max_count
    assert f"each pod capped at 1/{gpu.compute_slices}" in mig.note
    mig = by_strategy(plan_instance(Workload(2.0, 1.0, 0.3), g7e, curves, "transformer"))["mig"]
    assert mig.mig_profile == "2g.48gb"


def test_estimated_slice_memory_is_said_so(curves):
    b300 = facts.GPU_INSTANCES["p6-b300.48xlarge"]
    mig = by_strategy(plan_instance(Workload(2.0, 1.0, 0.1), b300, curves, "transformer"))["mig"]
    assert facts.mig_gpu(b300.name).profiles[mig.mig_profile].memory_estimated
    assert "slice memory estimated" in mig.note


def _plan_capacity_argv(**values: str) -> list[str]:
    """The planner arguments `make plan-capacity` passes for these variables."""
    plan = subprocess.run(
        [
            *("make", "--dry-run", "--always-make", "--no-print-directory", "plan-capacity"),
            *(f"{k}={v}" for k, v in values.items()),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    (command,) = [line for line in plan if " -m eks_gpu_slicing.planning.planner " in line]
    return shlex.split(command)[3:]


def _comparison(out: str) -> list[dict[str, str]]:
    table = out.split("Compared for this workload", 1)[1].split("\n\n", 2)[1]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[1:]
    ]


def test_plan_capacity_compares_hardware_slices_with_software_sharing(capsys):
    """The issue's "done when": for a 2 GiB, 25 %-busy workload, `make plan-capacity` prints
    rows for g6f.large, g6.xlarge time-sliced, g7e with MIG and p5 with MIG, each with its
    $ per workload-hour, isolation and whether it was measured, cheapest first."""
    argv = _plan_capacity_argv(MEMORY_GIB="2", GPU_MS="2", BUSY="0.25")
    assert main(argv) == 0
    rows = _comparison(capsys.readouterr().out)
    at = {(r["instance"], r["strategy"]): i for i, r in enumerate(rows)}
    named = [
        ("g6.xlarge", "time-slicing"),
        ("g7e.2xlarge", "mig"),
        ("p5.4xlarge", "mig"),
        ("g6f.large", "none"),
    ]
    assert [at[k] for k in named] == sorted(at[k] for k in named)
    # Those that serve the workload are ranked by price, then by isolation.
    served = [r for r in rows if r["#"] != "-"]
    assert [r["#"] for r in served] == [str(i) for i in range(1, len(served) + 1)]
    keys = [(float(r["$/workload h"]), -_rank(r["isolation"])) for r in served]
    assert keys == sorted(keys)
    # The g6f.large's 1/8 of an L4 cannot serve a pod busy a quarter of a whole one: listed
    # after those that can, with its price, isolation and why.
    g6f = rows[at[("g6f.large", "none")]]
    assert g6f["#"] == "-" and rows.index(g6f) >= len(served)
    assert g6f["note"].startswith("does not serve it: one pod would need 2.00 of its 1/8 L4")
    expected = {
        ("g6f.large", "none"): ("hardware (fractional vGPU)", "modelled", 1),
        ("g6.xlarge", "time-slicing"): ("none (time-sliced)", "measured", None),
        ("g7e.2xlarge", "mig"): ("hardware (MIG)", "modelled", None),
        ("p5.4xlarge", "mig"): ("hardware (MIG)", "modelled", None),
    }
    for key, (label, basis, pods) in expected.items():
        row = rows[at[key]]
        instance = facts.GPU_INSTANCES[key[0]]
        assert (row["isolation"], row["basis"]) == (label, basis), row
        per_instance = int(row["pods / instance"])
        assert pods is None or per_instance == pods
        assert float(row["$/workload h"]) == pytest.approx(
            instance.usd_per_hour / per_instance, abs=5e-4
        )


def _rank(label: str) -> int:
    kinds = [
        isolation.WHOLE_GPU,
        isolation.MIG,
        isolation.FRACTIONAL_VGPU,
        isolation.MPS,
        isolation.TIME_SLICED,
        isolation.time_sliced_within(isolation.MIG),
        isolation.time_sliced_within(isolation.FRACTIONAL_VGPU),
    ]
    return next(k.rank for k in kinds if k.label == label)


def test_a_tie_in_price_goes_to_the_more_isolated_option(curves):
    """p4d: MIG's 3 x 2g.10gb and time-slicing's 3 pods cost the same per pod; MIG first."""
    p4d = facts.GPU_INSTANCES["p4d.24xlarge"]
    plans = plan_instance(Workload(2.0, 2.0, 0.25), p4d, curves, "memory")
    served, _ = compared({p4d.name: plans})
    order = [p.strategy for p in served]
    tied = by_strategy(plans)
    assert tied["mig"].usd_per_workload_hour == tied["time-slicing"].usd_per_workload_hour
    assert order.index("mig") < order.index("time-slicing")


def test_the_comparison_takes_a_new_kind_of_isolation(curves):
    """A sharing method added later (HAMi's memory caps, say) is a new Isolation with its own
    rank: the comparison orders its rows like any other."""
    capped = isolation.Isolation("hami", 2, "memory-capped (HAMi)", "memory capped per pod")
    g6 = facts.GPU_INSTANCES["g6.xlarge"]
    (shared,) = [
        p
        for p in plan_instance(Workload(2.0, 2.0, 0.25), g6, curves, "memory")
        if p.strategy == "time-slicing"
    ]
    hami = dataclasses.replace(shared, strategy="hami", isolation=capped)
    served, _ = compared({g6.name: [shared, hami]})
    assert [p.strategy for p in served] == ["hami", "time-slicing"]


def test_the_hardware_slices_example_is_what_the_planner_prints(capsys):
    """docs/strategies.md compares hardware slices with software sharing for one workload."""
    doc = (ROOT / "docs" / "strategies.md").read_text()
    types = "g6f.large,g6f.2xlarge,g6.xlarge,g7e.2xlarge,p5.4xlarge"
    command = f"make plan-capacity MEMORY_GIB=2 GPU_MS=2 BUSY=0.25 TYPES={types}"
    assert command in doc
    shown = doc.split(command, 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    argv = ["--memory-gib", "2", "--gpu-ms", "2", "--busy", "0.25", "--instance-types", types]
    assert main(argv) == 0
    printed = capsys.readouterr().out.split("Compared for this workload", 1)[1]
    table = [line for line in printed.split("\n\n")[1].splitlines() if line.startswith("|")]
    assert shown.splitlines() == table


def test_cli_rejects_bad_input():
    with pytest.raises(SystemExit):
        main(["--memory-gib", "0", "--gpu-ms", "1"])
    with pytest.raises(SystemExit):
        main(["--memory-gib", "1", "--gpu-ms", "1", "--instance-types", "m5.large"])


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e400"])
@pytest.mark.parametrize(
    ("variable", "argument"),
    [("MEMORY_GIB", "--memory-gib"), ("GPU_MS", "--gpu-ms"), ("BUSY", "--busy")],
)
def test_make_plan_capacity_refuses_a_number_that_is_not_finite(capsys, variable, argument, value):
    """NaN passes no comparison and inf every one: the planner refused neither, and planned
    from them (a table from GPU_MS=nan) or failed later (a traceback, or a message blaming
    the results file). The command is the one `make plan-capacity` runs."""
    values = {"MEMORY_GIB": "2", "GPU_MS": "1", "BUSY": "0.5", variable: value}
    argv = _plan_capacity_argv(**values)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err == (
        f"planner: argument {argument}: {value!r} is not a finite number (see --help)\n"
    )


@pytest.mark.parametrize(
    ("memory", "busy", "types"),
    [
        ("2", "0.25", "g4dn.xlarge,g5.xlarge,g6.xlarge"),
        # light work: MIG's smallest slice on every MIG-capable type, time-sliced on top
        ("2", "0.1", "g4dn.xlarge,p4d.24xlarge,p4de.24xlarge,p5.4xlarge,p5en.48xlarge"),
        # one pod per 3g slice, a tie with time-slicing that MIG wins
        ("15", "0.4", "p4d.24xlarge"),
        # fractional vGPUs, unshared and time-sliced, and MIG on Blackwell
        ("1", "0.02", "g6f.large,g6f.4xlarge,gr6f.4xlarge,g7e.2xlarge,p6-b200.48xlarge"),
    ],
    ids=["time-slicing-and-mps", "mig-time-sliced", "mig-one-pod-per-slice", "slices-you-buy"],
)
def test_printed_profiles_are_valid_stack_config(capsys, memory, busy, types):
    argv = ["--memory-gib", memory, "--gpu-ms", "1", "--busy", busy]
    assert main([*argv, "--instance-types", types]) == 0
    out = capsys.readouterr().out
    block = out.split("Profiles to write", 1)[1].split("\n", 2)[2]
    config = yaml.safe_load(block)
    profiles = config["eks-gpu-slicing:sharing"]
    assert profiles  # one per distinct recommended (strategy, replicas)
    if "p4d" in types:
        assert any(p["strategy"] == "mig" for p in profiles.values())
    # Each profile, put on the instance types it was recommended for, passes validation.
    for name, profile in profiles.items():
        types = [t.strip() for t in block.split(f"{name}:  # ", 1)[1].split("\n", 1)[0].split(",")]
        raw = {
            "sharing": {name: profile},
            "devicePlugin": {"defaultProfile": name},
            "gpuNodeGroups": {
                f"g{i}": {
                    "instanceType": t,
                    "minSize": 0,
                    "desiredSize": 0,
                    "maxSize": 1,
                    "sharing": name,
                }
                for i, t in enumerate(types)
            },
        }
        assert load_settings(raw, stack="dev").sharing[name].strategy == profile["strategy"]


def _header() -> str:
    return ",".join(results_csv.CSV_COLUMNS) + "\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file"),
        ("a,b\n1,2\n", "unexpected columns"),
        (b"\xd0\xcf\x11\xe0 not text", "can't decode"),
        ("HEADER", "only a header, no rows"),
        ("HEADER" + "x," * (len(results_csv.CSV_COLUMNS) - 1) + "x\n", ":2: "),
        (
            "".join(
                line
                for line in DEFAULT_RESULTS.read_text().splitlines(keepends=True)
                if ",exclusive," not in line
            ),
            "no exclusive baseline",
        ),
    ],
    ids=["missing", "columns", "binary", "no-rows", "bad-row", "no-baseline"],
)
def test_an_unusable_results_file_is_one_line_and_exit_2(tmp_path, capsys, content, expected):
    path = tmp_path / "results.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content.replace("HEADER", _header()))
    argv = ["--memory-gib", "1", "--gpu-ms", "1", "--results", str(path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("planner: ") and str(path) in err
    assert expected in err and "Traceback" not in err


# --- HAMi (asked for with --hami) ---------------------------------------------------------------


def test_hami_rows_only_when_asked_for(curves):
    workload = Workload(gpu_memory_gib=2, gpu_ms_per_request=1, busy=0.25)
    assert "hami" not in by_strategy(plan_instance(workload, T4, curves, "transformer"))
    plans = by_strategy(plan_instance(workload, T4, curves, "transformer", hami=True))
    hami, sliced = plans["hami"], plans["time-slicing"]
    # Without hami rows in the results, time-slicing's curve stands in: the same slices.
    assert (hami.replicas, hami.throughput_ratio) == (sliced.replicas, sliced.throughput_ratio)
    assert "no hami rows in the results" in hami.note
    assert f"{facts.HAMI_MEMORY_RESOURCE}: 2048" in hami.note
    # On the tie time-slicing is recommended: the same density without installing HAMi.
    assert recommend(list(plans.values())).strategy == "time-slicing"


def test_a_measured_hami_curve_plans_hamis_slices_and_its_profile_is_valid(curves, capsys):
    """With hami rows that serve more pods than time-slicing, hami is recommended, and the
    profile printed for several types is one (one HAMi installation per stack) that loads."""
    model = "transformer"
    sliced = curves[(model, "time-slicing")]
    better = {
        **curves,
        (model, "hami"): dataclasses.replace(
            sliced, mode="hami", ratio_at={n: r * 2 for n, r in sliced.ratio_at.items()}
        ),
    }
    workload = Workload(gpu_memory_gib=2, gpu_ms_per_request=1, busy=0.3)
    plans = {t.name: plan_instance(workload, t, better, model, hami=True) for t in (T4, A10G)}
    best = {t: recommend(p) for t, p in plans.items()}
    assert {b.strategy for b in best.values()} == {"hami"}
    assert "no hami rows" not in best["g4dn.xlarge"].note
    from eks_gpu_slicing.planning.planner import sharing_profiles

    profiles = sharing_profiles(plans)
    (name,) = [n for n, e in profiles.items() if e["profile"]["strategy"] == "hami"]
    fewest = min(b.replicas for b in best.values())
    assert profiles[name]["profile"] == {"strategy": "hami", "hami": {"splitCount": fewest}}
    assert sorted(profiles[name]["instance_types"]) == ["g4dn.xlarge", "g5.xlarge"]
    raw = {
        "sharing": {name: profiles[name]["profile"]},
        "devicePlugin": {"defaultProfile": name},
        "gpuNodeGroups": {
            f"g{i}": {
                "instanceType": t,
                "minSize": 0,
                "desiredSize": 0,
                "maxSize": 1,
                "sharing": name,
            }
            for i, t in enumerate(profiles[name]["instance_types"])
        },
    }
    assert load_settings(raw, stack="dev").sharing[name].is_hami


def test_make_plan_capacity_takes_hami(capsys):
    assert main(["--memory-gib", "2", "--gpu-ms", "1", "--busy", "0.25", "--hami"]) == 0
    plans = capsys.readouterr().out.split("\nPrices:")[0]  # the plans, before the comparison
    rows = [line for line in plans.splitlines() if "| hami |" in line]
    # One hami row per whole-GPU type; a fractional vGPU is never hami's (refused there).
    whole = [t for t in default_instance_types() if not facts.GPU_INSTANCES[t].fractional]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == whole
