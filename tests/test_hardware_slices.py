"""GPUs sold already sliced, and MIG on Blackwell: fractional L4 vGPUs (g6f, gr6f) and MIG on
g7e (RTX PRO 6000), p6-b200 and p6-b300 (issue 25).

The program part renders examples/Pulumi.slices.yaml once under mocks and runs `make check`'s
checks on it (CRD schemas and CEL rules included). Expected values come from facts.py, never
typed in.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import bottlerocket, device_plugin
from eks_gpu_slicing.builders import karpenter as build
from eks_gpu_slicing.builders.workloads import (
    benchmark_sizing,
    benchmark_worker_gpu_mib,
    virtual_gpu_capacity,
)
from eks_gpu_slicing.planning import isolation
from eks_gpu_slicing.review import check, render, verify
from eks_gpu_slicing.settings import ConfigError, load_settings
from eks_gpu_slicing.settings.sharing import FRACTIONAL_DEFAULT_PROFILE
from eks_gpu_slicing.settings.stack_files import ROOT

FRACTIONAL = sorted(n for n, i in facts.GPU_INSTANCES.items() if i.fractional)
WHOLE_L4 = facts.GPU_INSTANCES["g6.xlarge"]


def group(instance_type: str, **fields: Any) -> dict[str, Any]:
    return {"instanceType": instance_type, "minSize": 0, "desiredSize": 1, "maxSize": 2, **fields}


def stack(**sections: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"gpuNodeGroups": {"small": group("g6f.large")}}
    raw.update(copy.deepcopy(sections))
    return raw


def pools(**pools_: Any) -> dict[str, Any]:
    return {"enabled": True, "nodePools": pools_}


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="t")
    return caught.value.problems


# --- Facts -------------------------------------------------------------------------------------


def test_fractional_types_are_one_vgpu_of_their_fraction_of_an_l4():
    """EC2 (and Karpenter) count no GPU on them; the node shows one vGPU whose memory is the
    fraction of the whole L4's (Karpenter's instance-gpu-memory: 2861 = 22888 / 8)."""
    assert FRACTIONAL == ["g6f.2xlarge", "g6f.4xlarge", "g6f.large", "g6f.xlarge", "gr6f.4xlarge"]
    for name in FRACTIONAL:
        instance = facts.GPU_INSTANCES[name]
        assert (instance.gpus, instance.karpenter_gpus) == (1, 0)
        assert instance.gpu_model == WHOLE_L4.gpu_model
        assert instance.gpu_memory_mib == WHOLE_L4.gpu_memory_mib * instance.gpu_fraction
        assert facts.mig_gpu(name) is None
    assert all(i.karpenter_gpus == i.gpus for i in facts.GPU_INSTANCES.values() if not i.fractional)


def test_every_new_family_runs_on_the_pinned_ami_release():
    """The driver each needs is in the AL2023 NVIDIA AMI at the release pools pin by default,
    and every family in the table is one the program accepts."""
    for family, need in facts.GPU_FAMILY_DRIVERS.items():
        assert family in facts.GPU_FAMILIES
        assert need.first_al2023_release <= facts.KARPENTER_AL2023_AMI_RELEASE, family
    assert not set(facts.UNSUPPORTED_GPU_FAMILIES) & set(facts.GPU_FAMILIES)


def test_g7_is_refused_for_its_driver_not_as_an_unknown_type():
    """g7's RTX PRO 4500 needs driver 595 (not g7e's RTX PRO 6000, which the 580 AMIs run)."""
    (problem,) = problems_of(stack(gpuNodeGroups={"g7": group("g7.2xlarge")}))
    assert problem.startswith("gpuNodeGroups.g7.instanceType: 'g7.2xlarge' is not supported")
    assert "595" in problem and "580" in problem
    assert load_settings(stack(gpuNodeGroups={"g7e": group("g7e.2xlarge")}), stack="t")


@pytest.mark.parametrize("family", sorted(facts.GPU_FAMILY_DRIVERS))
def test_a_pool_pinned_to_a_release_without_the_driver_is_refused_naming_the_type(family):
    need = facts.GPU_FAMILY_DRIVERS[family]
    (instance_type,) = sorted(n for n, i in facts.GPU_INSTANCES.items() if i.family == family)[:1]
    # The oldest release that carries a Kubernetes version EKS offers: older than the driver.
    version, span = min(
        (
            (v, s)
            for v, s in facts.AL2023_NVIDIA_AMI_RELEASES.items()
            if v in facts.KUBERNETES_RELEASES
        ),
        key=lambda item: item[1].first,
    )
    before = span.first
    assert before < need.first_al2023_release
    raw = stack(
        kubernetesVersion=version,
        karpenter={
            **pools(p={"instanceTypes": [instance_type], "limits": {"nodes": 1}}),
            "amiRelease": before,
        },
    )
    problems = problems_of(raw)
    assert any(
        p.startswith("karpenter.nodePools.p.instanceTypes: ")
        and instance_type in p
        and need.first_al2023_release in p
        for p in problems
    ), problems
    raw["karpenter"]["amiRelease"] = need.first_al2023_release
    assert load_settings(raw, stack="t").karpenter_pools["p"].instances


# --- Fractional types: unshared by default, time-sliced on request -------------------------------


def test_a_fractional_group_that_names_no_profile_is_unshared():
    settings = load_settings(stack(), stack="t")
    small = settings.gpu_node_groups["small"]
    assert small.sharing == FRACTIONAL_DEFAULT_PROFILE
    profile = settings.profile_of(small)
    assert profile.strategy == "none"
    # The stack's own default profile is untouched, and the plugin gets both entries.
    assert settings.sharing["default"].strategy == "time-slicing"
    entry = yaml.safe_load(device_plugin.config_map_data(settings.sharing)[small.sharing])
    assert "sharing" not in entry
    # A whole-GPU group still gets the default profile.
    whole = load_settings(
        stack(gpuNodeGroups={"small": group("g6f.large"), "l4": group("g6.xlarge")}), stack="t"
    )
    assert whole.gpu_node_groups["l4"].sharing == "default"


@pytest.mark.parametrize("instance_type", FRACTIONAL)
def test_the_report_shows_the_slice_its_memory_price_and_isolation(instance_type):
    settings = load_settings(stack(gpuNodeGroups={"g": group(instance_type)}), stack="t")
    g = settings.gpu_node_groups["g"]
    instance = facts.GPU_INSTANCES[instance_type]
    report = virtual_gpu_capacity(g, settings.profile_of(g))
    assert report["gpuFraction"] == str(instance.gpu_fraction)
    assert report["virtualGpusPerNode"] == 1
    assert report["sliceMemoryGiB"] == {facts.GPU_RESOURCE: round(instance.gpu_memory_gib, 2)}
    assert report["usdPerSliceHour"] == {facts.GPU_RESOURCE: instance.usd_per_hour}
    assert report["isolation"] == isolation.FRACTIONAL_VGPU.description
    assert report["isolation"].startswith("hardware (fractional vGPU)")


def test_time_slicing_on_top_of_a_fractional_vgpu():
    raw = stack(
        sharing={"default": {"strategy": "time-slicing", "replicas": 4}},
        gpuNodeGroups={"half": group("g6f.4xlarge", sharing="default")},
    )
    settings = load_settings(raw, stack="t")
    g = settings.gpu_node_groups["half"]
    instance = g.instance
    report = virtual_gpu_capacity(g, settings.profile_of(g))
    assert report["virtualGpusPerNode"] == 4
    assert report["gpuMemoryPerVirtualGpuGiB"] == round(instance.gpu_memory_mib // 4 / 1024, 2)
    assert report["usdPerSliceHour"] == {facts.GPU_RESOURCE: round(instance.usd_per_hour / 4, 4)}
    within = isolation.time_sliced_within(isolation.FRACTIONAL_VGPU)
    assert report["isolation"] == within.description
    assert within.rank == isolation.TIME_SLICED.rank


@pytest.mark.parametrize(
    ("profile", "why"),
    [
        ({"strategy": "mps", "replicas": 2}, "MPS is not confirmed"),
        (
            {"strategy": "mig", "mig": {"layout": "all-1g.10gb", "strategy": "single"}},
            "already partitioned by the hypervisor",
        ),
    ],
    ids=["mps", "mig"],
)
@pytest.mark.parametrize("where", ["group", "pool"])
def test_mps_and_mig_on_a_fractional_vgpu_are_refused_naming_the_type(profile, why, where):
    raw = stack(sharing={"default": {"strategy": "none"}, "probe": profile})
    if where == "group":
        raw["gpuNodeGroups"]["small"]["sharing"] = "probe"
        path = "gpuNodeGroups.small.sharing: "
    else:
        raw["karpenter"] = pools(
            p={"instanceTypes": ["g6f.xlarge"], "limits": {"nodes": 1}, "sharing": "probe"}
        )
        path = "karpenter.nodePools.p.sharing: "
    instance_type = "g6f.large" if where == "group" else "g6f.xlarge"
    problems = problems_of(raw)
    assert any(
        p.startswith(path) and instance_type in p and why.split()[0] in p for p in problems
    ), problems


def test_mps_message_says_why():
    raw = stack(sharing={"default": {"strategy": "mps", "replicas": 2}})
    raw["gpuNodeGroups"]["small"]["sharing"] = "default"
    (problem,) = problems_of(raw)
    assert "1/8 L4 vGPU" in problem and "not confirmed" in problem


def test_a_profile_named_unshared_must_be_unshared_when_fractional_groups_use_it():
    raw = stack(sharing={"default": {"replicas": 2}, "unshared": {"replicas": 2}})
    (problem,) = problems_of(raw)
    assert problem.startswith(f"sharing.{FRACTIONAL_DEFAULT_PROFILE}: ")
    assert "gpuNodeGroups.small" in problem
    raw["sharing"]["unshared"] = {"strategy": "none"}
    assert load_settings(raw, stack="t").gpu_node_groups["small"].sharing == "unshared"


def test_a_pool_mixing_fractional_and_whole_gpus_must_name_its_profile():
    raw = stack(karpenter=pools(p={"instanceTypes": ["g6f.large", "g6.xlarge"], "limits": {}}))
    raw["karpenter"]["nodePools"]["p"]["limits"] = {"nodes": 1}
    problems = problems_of(raw)
    assert any(p.startswith("karpenter.nodePools.p.sharing: the pool mixes") for p in problems)
    raw["karpenter"]["nodePools"]["p"]["sharing"] = "default"
    assert load_settings(raw, stack="t").karpenter_pools["p"].sharing == "default"


def test_bottlerocket_serves_a_fractional_group_unshared():
    raw = stack()
    raw["gpuNodeGroups"]["small"]["amiType"] = facts.BOTTLEROCKET_GPU_AMI_TYPE
    settings = load_settings(raw, stack="t")
    profile = settings.profile_of(settings.gpu_node_groups["small"])
    assert bottlerocket.device_plugin_settings(profile) == {"device-sharing-strategy": "none"}


def test_every_fractional_group_and_pool_is_warned_about_grid_licensing():
    raw = stack(karpenter=pools(p={"instanceTypes": ["g6f.xlarge"], "limits": {"nodes": 1}}))
    raw["gpuNodeGroups"]["l4"] = group("g6.xlarge")
    warnings = load_settings(raw, stack="t").warnings(dt.date(2026, 12, 10))
    licensing = [w for w in warnings if "license daemon" in w]
    assert [w.split(":", 1)[0] for w in licensing] == [
        "gpuNodeGroups.small",
        "karpenter.nodePools.p",
    ]


# --- Karpenter: the overlay EC2's count of zero needs ----------------------------------------


def _pool(raw_pool: dict[str, Any], sharing: dict[str, Any] | None = None):
    raw = stack(karpenter=pools(p=raw_pool))
    if sharing is not None:
        raw["sharing"] = sharing
    settings = load_settings(raw, stack="t")
    pool = settings.karpenter_pools["p"]
    return pool, settings.sharing[pool.sharing]


def test_an_unshared_fractional_pool_gets_an_overlay_of_its_one_gpu():
    pool, profile = _pool({"instanceTypes": ["g6f.large", "g6f.2xlarge"], "limits": {"nodes": 2}})
    assert not profile.shared
    (overlay,) = build.node_overlays(pool_name="p", pool=pool, profile=profile).values()
    assert overlay["spec"]["capacity"] == {facts.GPU_RESOURCE: "1"}
    requirements = {r["key"]: r["values"] for r in overlay["spec"]["requirements"]}
    assert requirements[facts.INSTANCE_TYPE_LABEL] == ["g6f.2xlarge", "g6f.large"]
    assert requirements[facts.NODE_POOL_LABEL] == [build.node_pool_name("p")]


def test_an_unshared_pool_overlays_only_its_fractional_types():
    """Karpenter already counts a g6's GPU: only the g6f needs an overlay."""
    pool, profile = _pool(
        {"instanceTypes": ["g6f.large", "g6.xlarge"], "limits": {"nodes": 2}, "sharing": "whole"},
        {"default": {"replicas": 2}, "whole": {"strategy": "none"}},
    )
    (overlay,) = build.node_overlays(pool_name="p", pool=pool, profile=profile).values()
    types = next(
        r["values"]
        for r in overlay["spec"]["requirements"]
        if r["key"] == facts.INSTANCE_TYPE_LABEL
    )
    assert types == ["g6f.large"]


def test_a_time_sliced_fractional_pool_overlays_its_replicas():
    pool, profile = _pool(
        {"instanceTypes": ["g6f.4xlarge", "g6.xlarge"], "limits": {"nodes": 2}, "sharing": "ts"},
        {"default": {"replicas": 2}, "ts": {"replicas": 3}},
    )
    (overlay,) = build.node_overlays(pool_name="p", pool=pool, profile=profile).values()
    assert overlay["spec"]["capacity"] == {facts.GPU_RESOURCE: "3"}
    capacity = build.node_pool_capacity("p", pool, profile)
    assert capacity["virtualGpusPerInstanceType"] == {"g6f.4xlarge": 3, "g6.xlarge": 3}


def test_a_gpu_limit_counts_a_fractional_node_as_one_gpu():
    """With the overlay, Karpenter counts each node's vGPU against nvidia.com/gpu limits (the
    NodeOverlay docs' g6f pool is limited so), so the bound is one vGPU per node."""
    pool, profile = _pool({"instanceTypes": ["g6f.large"], "limits": {facts.GPU_RESOURCE: 3}})
    assert pool.max_virtual_gpus(profile.devices_per_gpu) == 3


# --- make verify ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("replicas", "allocatable", "ok"), [(None, "1", True), (3, "3", True), (3, "1", False)]
)
def test_verify_expects_one_vgpu_times_replicas_on_a_fractional_node(replicas, allocatable, ok):
    """The node advertises its one vGPU (x replicas when time-sliced): what the stack's
    report says, not the 0 GPUs EC2 counts."""
    profile = {"strategy": "none"} if replicas is None else {"replicas": replicas}
    raw = stack(sharing={"default": {"replicas": 2}, "p": profile})
    raw["gpuNodeGroups"]["small"]["sharing"] = "p"
    settings = load_settings(raw, stack="t")
    configs = {
        n: yaml.safe_load(t) for n, t in device_plugin.config_map_data(settings.sharing).items()
    }
    node = {
        "metadata": {
            "name": "n1",
            "labels": {
                facts.INSTANCE_TYPE_LABEL: "g6f.large",
                facts.DEVICE_PLUGIN_CONFIG_LABEL: "p",
            },
        },
        "status": {"allocatable": {facts.GPU_RESOURCE: allocatable}},
    }
    (result,) = [
        r
        for r in verify.check_gpu_node(node, [], configs, expected_profile="p")
        if r.check == "allocatable"
    ]
    assert result.ok == ok, result
    per_node = virtual_gpu_capacity(settings.gpu_node_groups["small"], settings.sharing["p"])[
        "virtualGpusPerNode"
    ]
    assert (str(per_node) == allocatable) == ok


# --- Benchmark sizing ------------------------------------------------------------------------


def test_the_benchmark_runs_no_more_workers_than_a_vgpus_memory_holds():
    settings = load_settings(stack(), stack="t")
    g = settings.gpu_node_groups["small"]
    models, modes = ["mlp", "transformer"], ["exclusive", "time-slicing"]
    sizing = benchmark_sizing(g.instance, settings.profile_of(g), models, modes)
    per_worker = benchmark_worker_gpu_mib(tuple(models))
    assert max(sizing.clients) == g.instance.gpu_memory_mib // per_worker
    assert (max(sizing.clients) + 1) * per_worker > g.instance.gpu_memory_mib
    assert sizing.capped and sizing.gpu_bound
    assert "would not fit in the GPU's memory" in sizing.describe(g.instance_type)


# --- The example stack through the program --------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> render.Rendered:
    return render.render("slices", ROOT / "examples")


def objects(rendered: render.Rendered, kind: str) -> list[dict[str, Any]]:
    return [m for m in rendered.manifests.values() if m["kind"] == kind]


def test_the_slices_stack_passes_every_check(rendered):
    """Schemas, the NodeOverlay/NodePool/EC2NodeClass CEL rules, plugin config, value paths,
    policies: what `make check STACK=slices` runs."""
    report = check.check_rendered(rendered)
    assert report.violations == []


def test_each_fractional_pool_has_the_overlay_karpenter_needs(rendered):
    settings = rendered.settings
    overlays = {o["metadata"]["name"]: o["spec"] for o in objects(rendered, "NodeOverlay")}
    expected = {}
    for name, pool in settings.karpenter_pools.items():
        profile = settings.sharing[pool.sharing]
        for o in build.node_overlays(pool_name=name, pool=pool, profile=profile).values():
            expected[o["metadata"]["name"]] = o["spec"]
        if not all(i.fractional for i in pool.instances):
            continue  # the MIG pool: tests/test_mig.py checks its overlays
        capacity = {i.gpus * profile.virtual_gpus_per_gpu for i in pool.instances}
        (count,) = capacity
        assert overlays[f"{build.node_pool_name(name)}-1gpu"]["capacity"] == {
            facts.GPU_RESOURCE: str(count)
        }
    assert overlays == expected
    # `make verify` expects the same overlays in the cluster.
    assert verify.expectations(settings)["expectedOverlays"] == sorted(overlays)


def test_the_fractional_node_group_renders_unshared(rendered):
    groups = [
        r.inputs
        for r in rendered.deployment.resources.values()
        if r.type == "eks:index:ManagedNodeGroup" and "small" in r.name
    ]
    (small,) = groups
    assert small["instanceTypes"] == ["g6f.large"]
    assert small["labels"][facts.DEVICE_PLUGIN_CONFIG_LABEL] == FRACTIONAL_DEFAULT_PROFILE
    report = rendered.deployment.outputs["gpuNodeGroups"]["small"]
    assert report["gpuFraction"] == "1/8"
    assert report["isolation"].startswith("hardware (fractional vGPU)")


def test_mig_on_g7e_and_b200_is_partitioned_and_reported_from_the_facts(rendered):
    settings = rendered.settings
    layouts = settings.mig_layouts
    assert layouts["all-1g.24gb"][1] == {"RTX-PRO-6000-96GB"}
    assert layouts["all-balanced"][1] == {"B200-180GB"}
    reports = rendered.deployment.outputs["gpuNodeGroups"]
    for name, gpu_name in (("rtx", "RTX-PRO-6000-96GB"), ("b200", "B200-180GB")):
        g = settings.gpu_node_groups[name]
        gpu = facts.MIG_GPUS[gpu_name]
        profile = settings.profile_of(g)
        assert not profile.mig.problems_on(gpu)
        slices = profile.mig.slices_on(gpu)
        per_node = reports[name]["slicesPerNode"]
        assert sum(per_node.values()) == g.instance.gpus * sum(slices.values())
        assert reports[name]["isolation"] == isolation.MIG.description
    (config_map,) = [
        c
        for c in objects(rendered, "ConfigMap")
        if c["metadata"]["name"] == "nvidia-mig-manager-config"
    ]
    configs = yaml.safe_load(config_map["data"]["config.yaml"])["mig-configs"]
    rtx = facts.MIG_GPUS["RTX-PRO-6000-96GB"]
    assert configs["all-1g.24gb"][0]["mig-devices"] == {
        "1g.24gb": rtx.profiles["1g.24gb"].max_count
    }
    assert configs["all-balanced"][0]["mig-devices"] == facts.MIG_GPUS["B200-180GB"].balanced


def test_a_mig_pool_of_g7e_gets_one_overlay_per_gpu_count_with_its_slices(rendered):
    settings = rendered.settings
    pool = settings.karpenter_pools["rtx"]
    profile = settings.sharing[pool.sharing]
    overlays = {o["metadata"]["name"]: o["spec"] for o in objects(rendered, "NodeOverlay")}
    for instance in pool.instances:
        gpu = facts.mig_gpu(instance.name)
        key = f"{build.node_pool_name('rtx')}-{instance.gpus}x{gpu.name.lower()}"
        slices = profile.mig.slices_on(gpu)
        assert overlays[key]["capacity"] == {
            facts.GPU_RESOURCE: str(instance.gpus * sum(slices.values()))
        }


def test_the_summary_names_the_vgpu(rendered):
    lines = render.summary(rendered, dt.date(2026, 12, 10))
    assert any(
        line.startswith("  small: g6f.large a 1/8 L4 vGPU, profile unshared") for line in lines
    )
