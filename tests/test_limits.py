"""Every limit tested at the limit and one past it.

Tests just outside a limit (replicas 1, MPS 49) stay green when `<` becomes `<=` and valid
stacks start being refused; these pin the boundary itself, on each side, wherever the limit
is enforced: settings, the device-plugin config checker, the policy rules and the benchmark
sizing. Limits come from facts or from the settings models' own field constraints.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import annotated_types
import pytest
import yaml
from pydantic import ValidationError

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import workloads
from eks_gpu_slicing.builders.device_plugin import (
    check_device_plugin_config,
    config_map_data,
    device_plugin_config,
)
from eks_gpu_slicing.builders.workloads import BENCHMARK_MEMORY_MARGIN_MIB, benchmark_sizing
from eks_gpu_slicing.review import policy_rules as pr
from eks_gpu_slicing.settings import ConfigError, SharingProfile, load_settings
from eks_gpu_slicing.settings.addons import BenchmarkSettings, DemoWorkloadSettings
from eks_gpu_slicing.settings.karpenter import KarpenterNodePoolSettings
from eks_gpu_slicing.settings.network import NetworkSettings
from eks_gpu_slicing.settings.node_groups import GpuNodeGroupSettings, SystemNodeGroupSettings
from tests.conftest import MINIMAL

MIN = facts.MIN_SHARING_REPLICAS
MPS_MAX = facts.MPS_MAX_CLIENTS_PER_GPU
TODAY = dt.date(2026, 11, 28)


def raw_with(*changes: tuple[tuple[str, ...], Any], base: dict | None = None) -> dict:
    raw = copy.deepcopy(MINIMAL if base is None else base)
    for path, value in changes:
        node = raw
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return raw


def refused(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="t")
    return caught.value.problems


def profile_config(strategy: str, replicas: int) -> dict:
    """The config file the program writes for a profile, with replicas edited past what the
    settings would let through."""
    config = device_plugin_config(SharingProfile(strategy=strategy, replicas=MIN))
    block = "mps" if strategy == "mps" else "timeSlicing"
    config["sharing"][block]["resources"][0]["replicas"] = replicas
    return config


def config_map(config: dict) -> pr.Resource:
    return pr.Resource(pr.CONFIG_MAP, "plugin", {"data": {"p": yaml.safe_dump(config)}})


def mps_capable_instance() -> str:
    """The GPU with least memory on which MPS_MAX clients each still get a CUDA context."""
    fits = [
        i
        for i in facts.GPU_INSTANCES.values()
        if i.gpu_memory_mib // MPS_MAX >= facts.CUDA_CONTEXT_MIB
    ]
    return min(fits, key=lambda i: (i.gpu_memory_mib, i.gpus)).name


# --- Sharing replicas: at least 2 ------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["time-slicing", "mps"])
def test_settings_take_the_fewest_replicas_and_refuse_one_fewer(strategy):
    assert SharingProfile(strategy=strategy, replicas=MIN).replicas == MIN
    with pytest.raises(ValidationError, match=f">= {MIN}"):
        SharingProfile(strategy=strategy, replicas=MIN - 1)
    at = raw_with((("sharing",), {"default": {"strategy": strategy, "replicas": MIN}}))
    assert load_settings(at, stack="t").sharing["default"].replicas == MIN
    past = raw_with((("sharing",), {"default": {"strategy": strategy, "replicas": MIN - 1}}))
    assert any("sharing.default.replicas" in p for p in refused(past))


@pytest.mark.parametrize("strategy", ["time-slicing", "mps"])
def test_plugin_config_checker_takes_the_fewest_replicas_and_refuses_one_fewer(strategy):
    assert check_device_plugin_config(profile_config(strategy, MIN)) == []
    problems = check_device_plugin_config(profile_config(strategy, MIN - 1))
    assert len(problems) == 1 and f"must be >= {MIN}" in problems[0], problems


@pytest.mark.parametrize("strategy", ["time-slicing", "mps"])
def test_sharing_replicas_rule_takes_the_fewest_replicas_and_refuses_one_fewer(strategy):
    assert pr.sharing_replicas(config_map(profile_config(strategy, MIN))) == []
    problems = pr.sharing_replicas(config_map(profile_config(strategy, MIN - 1)))
    assert len(problems) == 1 and f"replicas {MIN - 1} < {MIN}" in problems[0], problems


# --- MPS: at most 48 clients per GPU -------------------------------------------------------------


def test_settings_take_the_most_mps_clients_and_refuse_one_more():
    assert SharingProfile(strategy="mps", replicas=MPS_MAX).replicas == MPS_MAX
    with pytest.raises(ValidationError, match=f"at most {MPS_MAX} clients"):
        SharingProfile(strategy="mps", replicas=MPS_MAX + 1)
    # The cap is the MPS server's: time-slicing goes past it.
    assert SharingProfile(strategy="time-slicing", replicas=MPS_MAX + 1).replicas == MPS_MAX + 1

    # A whole stack, on a GPU with room for a CUDA context per client.
    group = {"instanceType": mps_capable_instance(), "minSize": 1, "desiredSize": 1, "maxSize": 1}
    at = raw_with(
        (("gpuNodeGroups",), {"big": group}),
        (("sharing",), {"default": {"strategy": "mps", "replicas": MPS_MAX}}),
    )
    assert load_settings(at, stack="t").sharing["default"].replicas == MPS_MAX
    past = raw_with(
        (("gpuNodeGroups",), {"big": group}),
        (("sharing",), {"default": {"strategy": "mps", "replicas": MPS_MAX + 1}}),
    )
    assert any("sharing.default" in p and str(MPS_MAX) in p for p in refused(past))


def test_plugin_config_checker_takes_the_most_mps_clients_and_refuses_one_more():
    assert check_device_plugin_config(profile_config("mps", MPS_MAX)) == []
    problems = check_device_plugin_config(profile_config("mps", MPS_MAX + 1))
    assert len(problems) == 1, problems
    assert "sharing.mps.resources[0].replicas" in problems[0]
    assert f"{MPS_MAX + 1} > {MPS_MAX}" in problems[0]
    assert check_device_plugin_config(profile_config("time-slicing", MPS_MAX + 1)) == []


def test_sharing_replicas_rule_takes_the_most_mps_clients_and_refuses_one_more():
    assert pr.sharing_replicas(config_map(profile_config("mps", MPS_MAX))) == []
    problems = pr.sharing_replicas(config_map(profile_config("mps", MPS_MAX + 1)))
    assert len(problems) == 1 and f"{MPS_MAX + 1} > {MPS_MAX}" in problems[0], problems
    assert pr.sharing_replicas(config_map(profile_config("time-slicing", MPS_MAX + 1))) == []


# --- What the generated plugin config promises ---------------------------------------------------


@pytest.mark.parametrize(
    "profile",
    [
        SharingProfile(strategy="none"),
        SharingProfile(strategy="time-slicing", replicas=MIN),
        SharingProfile(strategy="mps", replicas=MIN),
    ],
    ids=lambda p: p.strategy,
)
def test_plugin_fails_on_init_error_in_every_generated_config(profile):
    # A GPU the plugin cannot initialise shows as a failing pod, not a node advertising nothing.
    assert device_plugin_config(profile)["flags"]["failOnInitError"] is True
    written = yaml.safe_load(config_map_data({"p": profile})["p"])
    assert written["flags"]["failOnInitError"] is True
    assert "failOnInitError" in facts.DEVICE_PLUGIN_CONFIG_KEYS["flags"]
    assert check_device_plugin_config(written) == []


# --- Benchmark sizing: as many workers as fit, exactly -----------------------------------------


def _exact_fit(allocatable: int, worker: float) -> int:
    """The most workers whose memory request (n x RSS + margin, rounded up) fits."""
    n = 1
    while math.ceil((n + 1) * Fraction(repr(worker)) + BENCHMARK_MEMORY_MARGIN_MIB) <= allocatable:
        n += 1
    return n


# One process group (plain processes: exclusive and time-slicing share it).
TIME_SLICED = ["exclusive", "time-slicing"]


def test_a_node_that_fits_the_profiles_replicas_exactly_measures_them_all():
    t4 = facts.GPU_INSTANCES["g4dn.xlarge"]
    models = ["mlp", "transformer"]
    fit = _exact_fit(
        facts.allocatable_memory_mib(t4), workloads.benchmark_worker_rss_mib(("mlp", "transformer"))
    )
    assert fit > 2
    at = benchmark_sizing(
        t4, SharingProfile(strategy="time-slicing", replicas=fit), models, TIME_SLICED
    )
    assert max(at.clients) == fit and not at.capped, at
    assert at.memory_mib <= at.allocatable_mib
    past = benchmark_sizing(
        t4, SharingProfile(strategy="time-slicing", replicas=fit + 1), models, TIME_SLICED
    )
    assert past.capped and max(past.clients) == fit, past


def test_sizing_at_the_exact_memory_limit_is_not_lost_to_rounding(monkeypatch):
    """Nodes whose allocatable memory is exactly n workers + margin, for measured figures with
    one decimal (as the results file has them): n is measured, and one MiB less caps at n-1.
    In floats, (allocatable - margin) / RSS lands just under n for some of these."""
    t4 = facts.GPU_INSTANCES["g4dn.xlarge"]
    rss = {"value": 0.0}
    allocatable = {"value": 0}
    monkeypatch.setattr(workloads, "benchmark_worker_rss_mib", lambda models: rss["value"])
    monkeypatch.setattr(facts, "allocatable_memory_mib", lambda instance: allocatable["value"])
    # The node's memory is under test here, not the GPU's (which would cap a T4 at ~17).
    monkeypatch.setattr(workloads, "benchmark_worker_gpu_mib", lambda models: 1.0)
    float_traps = 0
    for tenths in range(5001, 20000, 331):
        rss["value"] = tenths / 10
        for n in range(5, MPS_MAX + 1, 5):
            exact = n * tenths // 10 + BENCHMARK_MEMORY_MARGIN_MIB
            if n * tenths % 10:
                continue
            profile = SharingProfile(strategy="time-slicing", replicas=n)
            float_traps += math.floor((exact - BENCHMARK_MEMORY_MARGIN_MIB) / rss["value"]) < n
            allocatable["value"] = exact
            at = benchmark_sizing(t4, profile, ["mlp"], TIME_SLICED)
            assert max(at.clients) == n and not at.capped, (rss, n, at)
            assert at.memory_mib == exact
            allocatable["value"] = exact - 1
            past = benchmark_sizing(t4, profile, ["mlp"], TIME_SLICED)
            assert past.capped and max(past.clients) == n - 1, (rss, n, past)
    assert float_traps  # the grid holds cases that floats get wrong


# --- Settings fields with bounds -----------------------------------------------------------------

POOL = {"instanceTypes": ["g5.xlarge"], "limits": {"cpu": 32}}
WITH_POOL = raw_with((("karpenter",), {"enabled": True, "nodePools": {"p": POOL}}))

# (config key path, model, field, raw settings to change)
BOUNDED = [
    (("network", "availabilityZoneCount"), NetworkSettings, "availability_zone_count", MINIMAL),
    (("gpuNodeGroups", "t4", "diskSizeGiB"), GpuNodeGroupSettings, "disk_size_gib", MINIMAL),
    (("gpuNodeGroups", "t4", "minSize"), GpuNodeGroupSettings, "min_size", MINIMAL),
    (("systemNodeGroup", "diskSizeGiB"), SystemNodeGroupSettings, "disk_size_gib", MINIMAL),
    (("demoWorkload", "replicas"), DemoWorkloadSettings, "replicas", MINIMAL),
    (("benchmark", "durationSeconds"), BenchmarkSettings, "duration_seconds", MINIMAL),
    (("benchmark", "repetitions"), BenchmarkSettings, "repetitions", MINIMAL),
    (
        ("karpenter", "nodePools", "p", "volumeSizeGiB"),
        KarpenterNodePoolSettings,
        "volume_size_gib",
        WITH_POOL,
    ),
    (("karpenter", "nodePools", "p", "weight"), KarpenterNodePoolSettings, "weight", WITH_POOL),
    (("karpenter", "nodePools", "p", "maxPods"), KarpenterNodePoolSettings, "max_pods", WITH_POOL),
]


def _edges(model, field: str) -> list[tuple[Any, Any]]:
    """(at the limit, one past it) for each bound the field declares."""
    is_int = model.model_fields[field].annotation in (int, int | None)
    step = 1 if is_int else None
    edges = []
    for bound in model.model_fields[field].metadata:
        if isinstance(bound, annotated_types.Ge):
            edges.append((bound.ge, bound.ge - 1 if step else math.nextafter(bound.ge, -math.inf)))
        elif isinstance(bound, annotated_types.Le):
            edges.append((bound.le, bound.le + 1 if step else math.nextafter(bound.le, math.inf)))
        elif isinstance(bound, annotated_types.Gt):
            edges.append((bound.gt + 1 if step else math.nextafter(bound.gt, math.inf), bound.gt))
        elif isinstance(bound, annotated_types.Lt):
            edges.append((bound.lt - 1 if step else math.nextafter(bound.lt, -math.inf), bound.lt))
    return edges


@pytest.mark.parametrize(
    ("path", "model", "field", "base"), BOUNDED, ids=[".".join(b[0]) for b in BOUNDED]
)
def test_bounded_setting_at_its_limit_and_one_past(path, model, field, base):
    edges = _edges(model, field)
    assert edges, f"{model.__name__}.{field} declares no bound"
    for at, past in edges:
        loaded = load_settings(raw_with((path, at), base=base), stack="t")
        assert loaded is not None
        problems = refused(raw_with((path, past), base=base))
        assert any(".".join(path) in p for p in problems), (at, past, problems)


def test_node_group_sizes_may_be_equal_but_not_out_of_order():
    equal = raw_with((("gpuNodeGroups", "t4"), {**MINIMAL["gpuNodeGroups"]["t4"], "maxSize": 1}))
    assert load_settings(equal, stack="t").gpu_node_groups["t4"].max_size == 1
    past = raw_with((("gpuNodeGroups", "t4", "desiredSize"), 2), base=equal)
    assert any("desiredSize (2) > maxSize (1)" in p for p in refused(past))


def test_gpu_metrics_scrape_interval_of_one_second_and_under():
    at = raw_with((("gpuMetrics",), {"enabled": True, "interval": "1s"}))
    assert load_settings(at, stack="t").gpu_metrics.interval_seconds == 1
    past = raw_with((("gpuMetrics",), {"enabled": True, "interval": "0s"}))
    assert any("gpuMetrics.interval" in p for p in refused(past))


# --- Warnings and combination checks with a limit ------------------------------------------------


def _exact_memory_split(per_virtual_gpu_mib: int) -> tuple[str, int]:
    """An instance and replicas that leave exactly `per_virtual_gpu_mib` per virtual GPU."""
    for name, instance in sorted(facts.GPU_INSTANCES.items()):
        replicas, rest = divmod(instance.gpu_memory_mib, per_virtual_gpu_mib)
        if not rest and replicas >= MIN:
            return name, replicas
    raise AssertionError(f"no GPU splits into {per_virtual_gpu_mib} MiB slices")


def test_memory_per_virtual_gpu_warning_at_its_limit_and_one_replica_past():
    limit = facts.MIN_COMFORTABLE_GPU_MIB_PER_VIRTUAL_GPU
    instance, replicas = _exact_memory_split(limit)
    group = {"instanceType": instance, "minSize": 1, "desiredSize": 1, "maxSize": 1}

    def warned(n: int) -> bool:
        raw = raw_with(
            (("gpuNodeGroups",), {"g": group}), (("sharing",), {"default": {"replicas": n}})
        )
        warnings = load_settings(raw, stack="t").warnings(TODAY)
        return any("MiB of GPU memory per virtual GPU" in w for w in warnings)

    assert not warned(replicas) and warned(replicas + 1)

    def advised(n: int) -> list:
        node_group = pr.Resource(
            "eks:index:ManagedNodeGroup",
            "g",
            {
                "instanceTypes": [instance],
                "labels": {facts.DEVICE_PLUGIN_CONFIG_LABEL: "p"},
            },
        )
        return pr.gpu_memory_per_virtual_gpu(
            [node_group, config_map(profile_config("time-slicing", n))]
        )

    assert advised(replicas) == [] and len(advised(replicas + 1)) == 1


def test_virtual_gpus_per_node_warning_at_the_pod_limit_and_one_past():
    settings = load_settings(MINIMAL, stack="t")
    group = settings.gpu_node_groups["t4"]
    room = group.instance.max_pods - settings.gpu_node_daemonsets
    per_gpu = room // group.instance.gpus
    assert per_gpu * group.instance.gpus == room and per_gpu > MIN

    def warned(n: int) -> bool:
        raw = raw_with((("sharing",), {"default": {"replicas": n}}))
        return any(
            "virtual GPUs per node" in w for w in load_settings(raw, stack="t").warnings(TODAY)
        )

    assert not warned(per_gpu) and warned(per_gpu + 1)


def test_mps_client_memory_at_a_cuda_context_and_one_mib_short(monkeypatch):
    """The combination check refuses an MPS client with less than a CUDA context; exactly one
    context is enough. The fact is moved onto what a profile gives, to hit it exactly."""
    replicas = 4
    raw = raw_with((("sharing",), {"default": {"strategy": "mps", "replicas": replicas}}))
    per_client = facts.GPU_INSTANCES["g4dn.xlarge"].gpu_memory_mib // replicas
    monkeypatch.setattr(facts, "CUDA_CONTEXT_MIB", per_client)
    assert load_settings(raw, stack="t").sharing["default"].replicas == replicas
    monkeypatch.setattr(facts, "CUDA_CONTEXT_MIB", per_client + 1)
    assert any("gpuNodeGroups.t4.sharing" in p for p in refused(raw))


def test_pool_virtual_gpus_warning_at_its_pod_limit_and_one_past():
    settings = load_settings(WITH_POOL, stack="t")
    pool = settings.karpenter_pools["p"]
    per_node = max(i.gpus for i in pool.instances) * settings.sharing["default"].replicas
    limit = per_node + settings.gpu_node_daemonsets  # maxPods that leaves room for exactly that

    def warned(max_pods: int) -> bool:
        raw = raw_with((("karpenter", "nodePools", "p", "maxPods"), max_pods), base=WITH_POOL)
        warnings = load_settings(raw, stack="t").warnings(TODAY)
        return any("karpenter.nodePools.p:" in w and "virtual GPUs" in w for w in warnings)

    assert not warned(limit) and warned(limit - 1)


def test_pool_weight_bounds_are_the_node_pool_crds():
    crd_file = Path(__file__).resolve().parents[2] / "shared" / "reference"
    crd_file = crd_file / f"karpenter-{facts.KARPENTER_VERSION}" / "karpenter.sh_nodepools.yaml"
    if not crd_file.exists():
        pytest.skip(f"no Karpenter CRDs at {crd_file}")
    crd = yaml.safe_load(crd_file.read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    weight = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["weight"]
    at_limits = [at for at, _ in _edges(KarpenterNodePoolSettings, "weight")]
    assert at_limits == [weight["minimum"], weight["maximum"]]
