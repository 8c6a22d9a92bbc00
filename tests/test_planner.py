"""The capacity planner, checked against the committed benchmark results."""

from __future__ import annotations

import pytest

from benchmarks.sharing import bench
from eks_gpu_slicing import facts
from eks_gpu_slicing.planner import (
    DEFAULT_RESULTS,
    GPU_MEMORY_RESERVE_GIB,
    Workload,
    default_instance_types,
    load_curves,
    main,
    matching_model,
    plan_instance,
    recommend,
)

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


def test_workloads_match_the_benchmark_model_with_the_nearest_latency(results):
    assert matching_model(results, 0.2) == "mlp"
    assert matching_model(results, 1.5) == "transformer"
    assert matching_model(results, 20) == "memory"


def test_curves_come_from_the_committed_rows(results, curves):
    curve = curves[("transformer", "time-slicing")]
    assert curve.ratio(1) == 1.0
    for n in (2, 4, 8, 10):
        assert curve.ratio(n) == measured_ratio(results, "transformer", "time-slicing", n)
    # Between measurements: linear, never outside the measured range.
    assert curve.ratio(6) == pytest.approx((curve.ratio(4) + curve.ratio(8)) / 2)
    with pytest.raises(ValueError):
        curve.ratio(11)


def test_saturating_small_kernels_gain_nothing_from_time_slicing_but_scale_with_mps(
    results, curves
):
    # Measured: time-slicing mlp stays at about 1x for every N, MPS reaches 10.6x at N=10.
    plans = by_strategy(plan_instance(Workload(1.0, 0.2, busy=1.0), T4, curves, "mlp"))
    assert plans["time-slicing"].replicas == 1
    assert plans["mps"].replicas == 10
    assert plans["mps"].throughput_ratio == measured_ratio(results, "mlp", "mps", 10)
    assert recommend(plans.values()).strategy == "none"  # MPS is not deployable here yet


def test_chosen_replicas_are_the_largest_the_gpu_can_serve(results, curves):
    workload = Workload(gpu_memory_gib=1.0, gpu_ms_per_request=1.5, busy=0.35)
    plans = by_strategy(plan_instance(workload, A10G, curves, "transformer"))
    curve = curves[("transformer", "time-slicing")]
    chosen = plans["time-slicing"].replicas
    assert chosen * workload.busy <= curve.ratio(chosen)
    assert all(r * workload.busy > curve.ratio(r) for r in range(chosen + 1, curve.max_clients + 1))
    assert chosen == 8  # 8 x 0.35 = 2.8 <= 2.85 measured; 9 x 0.35 = 3.15 > 2.86
    assert recommend(plans.values()).strategy == "time-slicing"


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


def test_cost_per_virtual_gpu_hour_divides_the_price():
    p5 = facts.GPU_INSTANCES["p4d.24xlarge"]
    curves_ = load_curves(bench.load_results(DEFAULT_RESULTS))
    plans = by_strategy(plan_instance(Workload(1.0, 1.5, 0.1), p5, curves_, "transformer"))
    shared = plans["time-slicing"]
    assert shared.usd_per_virtual_gpu_hour == pytest.approx(
        p5.usd_per_hour / (p5.gpus * shared.replicas)
    )
    assert plans["none"].usd_per_virtual_gpu_hour == pytest.approx(p5.usd_per_hour / p5.gpus)


def test_default_instance_types_are_one_per_family():
    types = default_instance_types()
    assert {facts.GPU_INSTANCES[t].family for t in types} == set(facts.GPU_FAMILIES)
    assert "g4dn.xlarge" in types and "g5.xlarge" in types


def test_cli_prints_a_recommendation(capsys):
    assert (
        main(
            [
                "--memory-gib",
                "2",
                "--gpu-ms",
                "1.5",
                "--busy",
                "0.25",
                "--instance-types",
                "g4dn.xlarge",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "time-slicing **(recommended)** | 7 |" in out
    assert "transformer" in out


def test_cli_rejects_bad_input():
    with pytest.raises(SystemExit):
        main(["--memory-gib", "0", "--gpu-ms", "1"])
    with pytest.raises(SystemExit):
        main(["--memory-gib", "1", "--gpu-ms", "1", "--instance-types", "m5.large"])
