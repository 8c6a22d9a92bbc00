"""MIG from the sharing profile: validation, and every builder's output against the facts.

Expected counts come from facts.MIG_GPUS (profiles, max counts, all-balanced), never typed in.
"""

from __future__ import annotations

import ast
import copy
import datetime as dt
import email
import functools
import json
import shlex
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pytest
import yaml

from components.mig_manager import MigManager, MigManagerArgs
from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import (
    bottlerocket,
    device_plugin,
    gpu_metrics,
    karpenter,
    mig,
    mig_state_reset,
)
from eks_gpu_slicing.builders.workloads import gpu_node_group_labels, virtual_gpu_capacity
from eks_gpu_slicing.review.mocks import run_program
from eks_gpu_slicing.settings import ConfigError, GpuMetricsSettings, load_settings
from eks_gpu_slicing.settings.sharing import MigSettings
from tests.k8s_semantics import affinity_matches, selector_matches

A100_40 = facts.MIG_GPUS["A100-40GB"]
H100 = facts.MIG_GPUS["H100-80GB"]
H200 = facts.MIG_GPUS["H200-141GB"]
P4D = facts.GPU_INSTANCES["p4d.24xlarge"]
P5 = facts.GPU_INSTANCES["p5.48xlarge"]
CUSTOM = {"1g.10gb": 4, "3g.40gb": 1}

# The "done when" stack: a p4d group on all-1g.5gb/single, a p5 group on a custom
# mixed layout time-sliced twice, and a Karpenter pool of H200s on all-balanced.
MIG_STACK: dict[str, Any] = {
    "sharing": {
        "default": {"strategy": "time-slicing", "replicas": 4},
        "a100-small": {"strategy": "mig", "mig": {"layout": "all-1g.5gb", "strategy": "single"}},
        "h100-custom": {
            "strategy": "mig",
            "replicas": 2,
            "mig": {"layout": CUSTOM, "strategy": "mixed"},
        },
        "h200-balanced": {
            "strategy": "mig",
            "mig": {"layout": "all-balanced", "strategy": "mixed"},
        },
    },
    "gpuNodeGroups": {
        "a100": {
            "instanceType": "p4d.24xlarge",
            "minSize": 0,
            "desiredSize": 1,
            "maxSize": 2,
            "sharing": "a100-small",
        },
        "h100": {
            "instanceType": "p5.48xlarge",
            "minSize": 0,
            "desiredSize": 1,
            "maxSize": 1,
            "sharing": "h100-custom",
        },
    },
    "karpenter": {
        "enabled": True,
        "nodePools": {
            "h200": {
                "instanceTypes": ["p5e.48xlarge", "p5en.48xlarge"],
                "limits": {"nodes": 2},
                "sharing": "h200-balanced",
            }
        },
    },
}


def mig_stack(**changes: Any) -> dict[str, Any]:
    raw = copy.deepcopy(MIG_STACK)
    raw.update(copy.deepcopy(changes))
    return raw


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="test")
    return caught.value.problems


@pytest.fixture(scope="module")
def settings():
    return load_settings(mig_stack(), stack="test")


# --- Facts ----------------------------------------------------------------------------------


def test_every_mig_instance_type_is_in_the_instance_table_with_its_gpu():
    for instance_type, gpu_name in facts.MIG_GPU_OF_INSTANCE.items():
        instance = facts.GPU_INSTANCES[instance_type]
        gpu = facts.MIG_GPUS[gpu_name]
        assert gpu_name.startswith(instance.gpu_model)
        # The largest profile is the whole GPU: all its slices, (about) all its memory.
        largest = max(gpu.profiles.values(), key=lambda p: p.memory_slices)
        assert largest.compute_slices == gpu.compute_slices
        assert largest.memory_slices == gpu.memory_slices
        assert largest.memory_gib <= instance.gpu_memory_gib


@pytest.mark.parametrize("gpu", facts.MIG_GPUS.values(), ids=lambda g: g.name)
def test_profiles_fill_at_most_one_gpu_and_balanced_fits(gpu):
    for profile in gpu.profiles.values():
        assert profile.max_count * profile.compute_slices <= gpu.compute_slices
        assert profile.max_count * profile.memory_slices <= gpu.memory_slices
        # The name says the compute slices, and its memory is its share of the GPU's.
        assert profile.name.startswith(f"{profile.compute_slices}g.")
        largest = max(p.memory_gib for p in gpu.profiles.values())
        share = profile.memory_slices / gpu.memory_slices
        assert profile.memory_gib <= largest * share + 0.5, profile.name
    assert set(gpu.balanced) <= set(gpu.profiles)
    compute = sum(gpu.profiles[n].compute_slices * c for n, c in gpu.balanced.items())
    assert compute <= gpu.compute_slices


@pytest.mark.parametrize("gpu", facts.MIG_GPUS.values(), ids=lambda g: g.name)
def test_each_profile_name_says_its_share_of_its_gpus_memory(gpu):
    """mig-parted's Blackwell `all-<profile>` entries name no GPU: they are attributed to a
    GPU by its memory. A profile `Ng.Mgb` of that GPU holds M GB, its memory slices' share of
    the whole-GPU profile's (1g.23gb = 180 GB / 8 on a B200, 1g.24gb = 96 GB / 4 on an RTX PRO
    6000), as every older GPU's profiles do."""
    whole = max(gpu.profiles.values(), key=lambda p: p.memory_slices)
    whole_gb = int(whole.name.split(".")[1].removesuffix("gb"))
    for profile in gpu.profiles.values():
        gb = int(profile.name.split(".")[1].removesuffix("gb"))
        share = whole_gb * profile.memory_slices / gpu.memory_slices
        assert abs(gb - share) <= 1, (profile.name, share)


def test_the_rtx_pro_6000_has_four_compute_slices_not_seven():
    """MIG User Guide: at most 4 instances on the RTX PRO 6000 Blackwell (7 on the B200);
    mig-parted's all-1g.24gb is 4 of them, and a layout is checked against the GPU's own
    totals: 1g.24gb x4 fills it, and one 2g.48gb more is refused."""
    gpu = facts.mig_gpu("g7e.2xlarge")
    assert (gpu.compute_slices, gpu.profiles["1g.24gb"].max_count) == (4, 4)
    assert facts.mig_gpu("p6-b200.48xlarge").compute_slices == facts.MIG_COMPUTE_SLICES
    fits = MigSettings(layout={"1g.24gb": 2, "2g.48gb": 1}, strategy="mixed")
    assert fits.problems_on(gpu) == []
    over = MigSettings(layout={"1g.24gb": 3, "2g.48gb": 1}, strategy="mixed")
    assert "the layout takes 5 compute slices; a GPU has 4" in over.problems_on(gpu)


# mig-parted's catalogue at the pinned version, in the upstream reference folder beside the
# repository (as test_upstream_reference.py finds it).
MIG_PARTED_REFERENCE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "reference"
    / f"mig-parted-{facts.MIG_MANAGER_VERSION.removeprefix('v')}"
)


@functools.cache
def _catalogue() -> dict[str, Any]:
    """mig-parted's config-default.yaml, parsed once (read it, never change it)."""
    return yaml.safe_load((MIG_PARTED_REFERENCE / "config-default.yaml").read_text())


def _catalogue_entry(layout: str, gpu: facts.MigGpu) -> dict[str, int] | None:
    """The mig-devices config-default.yaml's `layout` gives this GPU: the entry whose
    device-filter names its PCI ID, else the one without a filter (any GPU)."""
    entries = _catalogue()["mig-configs"].get(layout, [])
    for entry in entries:
        if gpu.pci_device_id in entry.get("device-filter", []):
            return entry["mig-devices"]
    unfiltered = [e for e in entries if "device-filter" not in e]
    return unfiltered[0]["mig-devices"] if unfiltered else None


@pytest.mark.skipif(
    not MIG_PARTED_REFERENCE.is_dir(), reason=f"no upstream reference at {MIG_PARTED_REFERENCE}"
)
@pytest.mark.parametrize("gpu", facts.MIG_GPUS.values(), ids=lambda g: g.name)
def test_mig_facts_agree_with_mig_parted_catalogue(gpu):
    """PCI IDs, max counts (the all-<profile> layouts) and all-balanced per GPU, as
    mig-parted's config-default.yaml has them; and no all-<profile> filtered to this GPU is
    missing from the facts (media-extension and graphics profiles aside)."""
    balanced = _catalogue_entry(facts.MIG_BALANCED_LAYOUT, gpu)
    assert balanced == gpu.balanced, "its PCI ID matches no all-balanced entry, or the mix differs"
    for name, profile in gpu.profiles.items():
        assert _catalogue_entry(f"all-{name}", gpu) == {name: profile.max_count}, name
    for layout, entries in _catalogue()["mig-configs"].items():
        for entry in entries:
            if gpu.pci_device_id not in entry.get("device-filter", []):
                continue
            names = [n for n in entry["mig-devices"] if "+" not in n]
            if layout != facts.MIG_BALANCED_LAYOUT:
                assert set(names) <= set(gpu.profiles), (layout, names)


def test_h200_profiles_are_those_nvidia_smi_listed_without_media_extensions():
    # /work/notes/mig-lgip.txt, a read-only `nvidia-smi mig -lgip` on an H200.
    assert {n: p.max_count for n, p in H200.profiles.items()} == {
        "1g.18gb": 7,
        "1g.35gb": 4,
        "2g.35gb": 3,
        "3g.71gb": 2,
        "4g.71gb": 1,
        "7g.141gb": 1,
    }


def test_p5e_is_a_gpu_instance_without_an_on_demand_price():
    p5e = facts.GPU_INSTANCES["p5e.48xlarge"]
    assert (p5e.gpus, p5e.gpu_model, p5e.usd_per_hour) == (8, "H200", None)


# --- Validation -----------------------------------------------------------------------------


def test_the_mig_stack_validates(settings):
    assert settings.profile_of(settings.gpu_node_groups["a100"]).is_mig
    assert settings.mig_layouts.keys() == {
        "all-1g.5gb",
        "all-balanced",
        "custom-4x1g.10gb-1x3g.40gb",
    }


def mig_profile(layout: Any, strategy: str = "mixed", **fields: Any) -> dict[str, Any]:
    return {"strategy": "mig", "mig": {"layout": layout, "strategy": strategy}, **fields}


def with_profile(profile: dict[str, Any], group: str = "a100") -> dict[str, Any]:
    raw = mig_stack()
    raw["sharing"]["probe"] = profile
    raw["gpuNodeGroups"][group]["sharing"] = "probe"
    return raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # MIG on a GPU without MIG.
        (
            mig_stack(
                gpuNodeGroups={
                    "t4": {
                        "instanceType": "g4dn.xlarge",
                        "minSize": 0,
                        "desiredSize": 0,
                        "maxSize": 1,
                        "sharing": "a100-small",
                    }
                }
            ),
            "gpuNodeGroups.t4.sharing: profile 'a100-small' is MIG, but the T4",
        ),
        # A profile the GPU does not have (1g.10gb exists on the A100 40GB; 1g.20gb does not).
        (with_profile(mig_profile("all-1g.20gb", "single")), "has no MIG profile 1g.20gb"),
        # A profile no GPU has.
        (with_profile(mig_profile("all-1g.7gb", "single")), "sharing.probe.mig.layout"),
        # A media-extension profile.
        (with_profile(mig_profile({"1g.5gb+me": 1})), "media-extension"),
        # Over 7 compute slices (4 + 2 x 2 = 8).
        (with_profile(mig_profile({"4g.20gb": 1, "2g.10gb": 2})), "8 compute slices"),
        # Over 8 memory slices (3 x 2 + 4 = 10; compute 3 + 3 = 6).
        (with_profile(mig_profile({"1g.10gb": 3, "3g.20gb": 1})), "10 memory slices"),
        # Over a profile's max count.
        (with_profile(mig_profile({"1g.10gb": 5})), "exceeds the A100-40GB's maximum of 4"),
        # single with a mixed layout.
        (with_profile(mig_profile({"1g.5gb": 2, "3g.20gb": 1}, "single")), "needs one slice"),
        (with_profile(mig_profile("all-balanced", "single")), "sharing.probe.mig"),
        # MPS on MIG.
        (
            with_profile(
                {"strategy": "mps", "replicas": 2, "mig": MIG_STACK["sharing"]["a100-small"]["mig"]}
            ),
            "MPS on MIG",
        ),
        # strategy mig without a layout.
        (with_profile({"strategy": "mig"}), "needs mig"),
        # A Karpenter pool on a GPU without MIG.
        (
            mig_stack(
                karpenter={
                    "enabled": True,
                    "nodePools": {
                        "g5": {
                            "instanceTypes": ["g5.xlarge"],
                            "limits": {"nodes": 1},
                            "sharing": "h200-balanced",
                        }
                    },
                }
            ),
            "karpenter.nodePools.g5.sharing: profile 'h200-balanced' is MIG, but the A10G",
        ),
    ],
)
def test_bad_mig_profiles_are_refused_by_key_path(raw, expected):
    problems = problems_of(raw)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("count", [0, -2])
def test_custom_layout_counts_below_one_are_refused(count):
    problems = problems_of(with_profile(mig_profile({"1g.5gb": 2, "2g.10gb": count})))
    assert problems == [f"sharing.probe.mig.layout: counts must be at least 1: 2g.10gb: {count}"]
    # One of a profile is a layout (the boundary).
    fine = load_settings(with_profile(mig_profile({"1g.5gb": 2, "2g.10gb": 1})), stack="t")
    assert fine.sharing["probe"].mig.slices_on(A100_40) == {"1g.5gb": 2, "2g.10gb": 1}


def test_an_unknown_key_under_mig_lists_the_mig_keys():
    raw = with_profile(mig_profile("all-1g.5gb", "single"))
    raw["sharing"]["probe"]["mig"] |= {"lyout": "all-1g.5gb", "partition": True}
    problems = problems_of(raw)
    assert "sharing.probe.mig.lyout: unknown key; did you mean 'layout'?" in problems
    known = ", ".join(sorted(f.alias or n for n, f in MigSettings.model_fields.items()))
    assert f"sharing.probe.mig.partition: unknown key; known keys: {known}" in problems


def bottlerocket_a100(profile: dict[str, Any]) -> dict[str, Any]:
    raw = with_profile(profile)
    raw["gpuNodeGroups"]["a100"]["amiType"] = facts.BOTTLEROCKET_GPU_AMI_TYPE
    return raw


@pytest.mark.parametrize(
    "profile",
    [
        mig_profile("all-1g.5gb", "mixed"),
        mig_profile({"1g.5gb": 2, "3g.20gb": 1}),
        mig_profile("all-1g.5gb", "single", replicas=2),
    ],
)
def test_bottlerocket_takes_only_a_uniform_single_layout(profile):
    problems = problems_of(bottlerocket_a100(profile))
    assert any(p.startswith("gpuNodeGroups.a100: profile 'probe'") for p in problems), problems


def _bottlerocket_cases(supported: bool) -> list[tuple[str, str]]:
    """(instance type, profile) for each MIG GPU's profiles Bottlerocket does (not) know, on
    the GPUs it is known to partition at all."""
    instance_of = {gpu: instance for instance, gpu in facts.MIG_GPU_OF_INSTANCE.items()}
    return [
        (instance_of[gpu.name], name)
        for gpu in facts.MIG_GPUS.values()
        if gpu.bottlerocket_key is not None
        for name in gpu.profiles
        if (name in gpu.bottlerocket_profiles) == supported
    ]


UNPARTITIONED_ON_BOTTLEROCKET = [
    t
    for t, g in sorted(facts.MIG_GPU_OF_INSTANCE.items())
    if facts.MIG_GPUS[g].bottlerocket_key is None
]


@pytest.mark.parametrize("instance_type", UNPARTITIONED_ON_BOTTLEROCKET)
def test_bottlerocket_mig_is_refused_on_gpus_no_release_is_known_to_partition(instance_type):
    """The Blackwell GPUs: no Bottlerocket release is confirmed to partition them, so even a
    uniform single layout of one of their profiles is refused, naming the GPU."""
    gpu = facts.mig_gpu(instance_type)
    smallest = min(gpu.profiles.values(), key=lambda p: p.memory_gib)
    raw = bottlerocket_a100(mig_profile(f"all-{smallest.name}", "single"))
    raw["gpuNodeGroups"]["a100"]["instanceType"] = instance_type
    problems = problems_of(raw)
    assert any(
        p.startswith("gpuNodeGroups.a100: profile 'probe'")
        and f"no Bottlerocket release is known here to partition the {gpu.name}" in p
        for p in problems
    ), problems
    # The same layout on AL2023 is accepted.
    del raw["gpuNodeGroups"]["a100"]["amiType"]
    assert load_settings(raw, stack="t").sharing["probe"].is_mig


@pytest.mark.parametrize(("instance_type", "slice_name"), _bottlerocket_cases(supported=False))
def test_bottlerocket_refuses_a_profile_its_mig_manager_does_not_know(instance_type, slice_name):
    """nvidia-migmanager (mig_profile.rs) turns an unknown profile into one 7g slice per GPU:
    all-4g.* (and the 1g profiles it lacks on a GPU) would give the wrong slices silently."""
    raw = bottlerocket_a100(mig_profile(f"all-{slice_name}", "single"))
    raw["gpuNodeGroups"]["a100"]["instanceType"] = instance_type
    problems = problems_of(raw)
    assert any(
        p.startswith("gpuNodeGroups.a100: profile 'probe'") and f"no {slice_name} " in p
        for p in problems
    ), problems


@pytest.mark.parametrize(("instance_type", "slice_name"), _bottlerocket_cases(supported=True))
def test_bottlerocket_takes_each_profile_its_mig_manager_knows(instance_type, slice_name):
    raw = bottlerocket_a100(mig_profile(f"all-{slice_name}", "single"))
    raw["gpuNodeGroups"]["a100"]["instanceType"] = instance_type
    profile = load_settings(raw, stack="t").sharing["probe"]
    gpu = facts.mig_gpu(instance_type)
    table = bottlerocket.device_plugin_settings(profile)["mig"]["profile"]
    assert table[gpu.bottlerocket_key] == slice_name
    # Only GPUs whose Bottlerocket profiles include it get an entry.
    assert all(
        slice_name in g.bottlerocket_profiles
        for g in facts.MIG_GPUS.values()
        if g.bottlerocket_key in table
    )


def test_bottlerocket_profiles_are_profiles_of_their_gpu():
    for gpu in facts.MIG_GPUS.values():
        assert set(gpu.bottlerocket_profiles) <= set(gpu.profiles), gpu.name
        if gpu.bottlerocket_key is None:
            assert not gpu.bottlerocket_profiles, gpu.name  # not partitioned there at all
            continue
        # Its fallback, the whole GPU, is always among them.
        whole = [n for n, p in gpu.profiles.items() if p.compute_slices == gpu.compute_slices]
        assert set(whole) <= set(gpu.bottlerocket_profiles), gpu.name


def test_bottlerocket_uniform_single_is_accepted_and_written_to_its_settings():
    settings = load_settings(bottlerocket_a100(mig_profile("all-1g.5gb", "single")), stack="t")
    profile = settings.sharing["probe"]
    table = bottlerocket.device_plugin_settings(profile)
    assert table["device-partitioning-strategy"] == "mig"
    assert table["mig"]["profile"][A100_40.bottlerocket_key] == "1g.5gb"
    toml = bottlerocket.user_data(profile)
    assert '[settings.kubelet-device-plugins.nvidia.mig.profile]\n"a100.40gb" = "1g.5gb"' in toml
    # Bottlerocket partitions itself: no manager label, no layout to generate.
    labels = gpu_node_group_labels("probe", profile, bottlerocket=True)
    assert facts.MIG_CONFIG_LABEL not in labels
    assert "all-1g.5gb" not in settings.mig_layouts


# --- Builders against the facts -------------------------------------------------------------


def test_device_plugin_config_entries(settings):
    single = device_plugin.device_plugin_config(settings.sharing["a100-small"])
    assert single["flags"]["migStrategy"] == "single"
    assert "sharing" not in single  # no replicas: no time-slicing
    mixed = device_plugin.device_plugin_config(settings.sharing["h100-custom"])
    assert mixed["flags"]["migStrategy"] == "mixed"
    resources = mixed["sharing"]["timeSlicing"]["resources"]
    assert {r["name"] for r in resources} == {H100.profiles[n].resource_name for n in CUSTOM}
    assert {r["replicas"] for r in resources} == {2}
    for name in ("a100-small", "h100-custom", "h200-balanced", "default"):
        config = device_plugin.device_plugin_config(settings.sharing[name])
        assert (
            device_plugin.check_device_plugin_config(yaml.safe_load(yaml.safe_dump(config))) == []
        )


def test_single_time_slicing_shares_whole_gpu_resource():
    settings = load_settings(
        with_profile(mig_profile("all-1g.5gb", "single", replicas=3)), stack="t"
    )
    config = device_plugin.device_plugin_config(settings.sharing["probe"])
    assert config["sharing"]["timeSlicing"]["resources"] == [
        {"name": facts.GPU_RESOURCE, "replicas": 3}
    ]


def test_node_labels_name_the_layout(settings):
    for group_name, group in settings.gpu_node_groups.items():
        profile = settings.profile_of(group)
        labels = gpu_node_group_labels(group.sharing, profile)
        assert labels[facts.MIG_CONFIG_LABEL] == profile.mig.layout_name, group_name
        assert labels[facts.MIG_NODE_LABEL] == facts.MIG_NODE_VALUE
    assert facts.MIG_CONFIG_LABEL not in gpu_node_group_labels(
        "default", settings.sharing["default"]
    )


def test_custom_layout_name_is_stable_and_a_label_value(settings):
    name = settings.sharing["h100-custom"].mig.layout_name
    reordered = load_settings(
        with_profile(mig_profile(dict(reversed(CUSTOM.items()))), group="h100"), stack="t"
    )
    assert reordered.sharing["probe"].mig.layout_name == name
    assert len(name) <= 63 and name.replace("-", "").replace(".", "").isalnum()


def test_mig_parted_config_has_exactly_the_layouts_in_use(settings):
    config = mig.mig_parted_config(settings.mig_layouts)
    assert config["version"] == "v1"
    configs = config["mig-configs"]
    assert set(configs) == {"all-disabled", *settings.mig_layouts}
    (a100,) = configs["all-1g.5gb"]
    assert a100["mig-devices"] == {"1g.5gb": A100_40.profiles["1g.5gb"].max_count}
    (h100,) = configs[settings.sharing["h100-custom"].mig.layout_name]
    assert h100 == {"devices": "all", "mig-enabled": True, "mig-devices": CUSTOM}
    # One H200 model in the pool: its balanced mix, without a device filter.
    (h200,) = configs["all-balanced"]
    assert h200["mig-devices"] == H200.balanced


def test_all_disabled_turns_mig_off_on_every_gpu(settings):
    """The layout a node is relabelled with to leave MIG: every device, MIG mode off, no
    slices (mig-parted's own `all-disabled`, when the upstream reference is here)."""
    (entry,) = mig.mig_parted_config(settings.mig_layouts)["mig-configs"]["all-disabled"]
    assert entry == {"devices": "all", "mig-enabled": False}
    if MIG_PARTED_REFERENCE.is_dir():
        assert [entry] == _catalogue()["mig-configs"]["all-disabled"]


# Every API call k8s-mig-manager v0.15.0 makes when CONFIG_FILE is set, as (verb, resource):
# cmd/nvidia-mig-manager/main.go (the informer on its node) and pkg/mig/reconfigure/
# reconfigure.go (getCurrentNodeLabels, setNodeLabels on every run, waitForPodDeletion,
# waitForPodsWithNodeSelector, deletePod). Without CONFIG_FILE it would also get its own pod
# and create a ConfigMap (setupMigConfig), which this stack never needs.
MANAGER_API_CALLS = {
    ("list", "nodes"),
    ("watch", "nodes"),
    ("get", "nodes"),
    ("patch", "nodes"),
    ("list", "pods"),
    ("delete", "pods"),
}


def _granted(rules: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (verb, resource)
        for rule in rules
        if rule["apiGroups"] == [""]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_manager_role_grants_exactly_the_calls_it_makes():
    role = mig.cluster_role()
    assert all(rule["apiGroups"] == [""] for rule in role["rules"])
    assert _granted(role["rules"]) == MANAGER_API_CALLS
    env = {e["name"]: e.get("value") for e in _manager_env()}
    assert env["CONFIG_FILE"], "without CONFIG_FILE the manager makes calls the role lacks"


def _manager_env() -> list[dict[str, Any]]:
    ds = mig.daemon_set(
        namespace="n", config_map_name="cm", gpu_clients_namespace="n", config_checksum="c"
    )
    (container,) = ds["spec"]["template"]["spec"]["containers"]
    return container["env"]


def test_a_layout_that_differs_per_gpu_gets_a_device_filter_per_gpu():
    raw = mig_stack()
    raw["gpuNodeGroups"]["a100"]["sharing"] = "h200-balanced"
    settings = load_settings(raw, stack="t")
    entries = mig.mig_parted_config(settings.mig_layouts)["mig-configs"]["all-balanced"]
    assert {tuple(e["device-filter"]) for e in entries} == {
        (A100_40.pci_device_id,),
        (H200.pci_device_id,),
    }
    by_filter = {e["device-filter"][0]: e["mig-devices"] for e in entries}
    assert by_filter[A100_40.pci_device_id] == A100_40.balanced


def test_mig_manager_daemon_set_follows_the_upstream_example():
    ds = mig.daemon_set(
        namespace="kube-system",
        config_map_name="cm",
        gpu_clients_namespace="x",
        config_checksum="c",
    )
    pod = ds["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "nvcr.io/nvidia/cloud-native/k8s-mig-manager:v0.15.0"
    assert container["securityContext"] == {"privileged": True}
    assert pod["hostPID"] and pod["hostIPC"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CONFIG_FILE"] == f"{mig.CONFIG_MOUNT}/{mig.CONFIG_KEY}"
    assert env["WITH_REBOOT"] == "false"
    assert env["DEFAULT_GPU_CLIENTS_NAMESPACE"] == "x"
    assert {"NODE_NAME", "HOST_ROOT_MOUNT", "HOST_NVIDIA_DIR"} <= env.keys()
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[mounts[env["HOST_ROOT_MOUNT"]]]["hostPath"]["path"] == "/"
    assert volumes[mounts["/sys"]]["hostPath"]["path"] == "/sys"
    assert volumes[mounts[mig.CONFIG_MOUNT]]["configMap"]["name"] == "cm"
    assert pod["nodeSelector"] == {facts.MIG_NODE_LABEL: facts.MIG_NODE_VALUE}
    assert pod["tolerations"][0]["key"] == facts.GPU_TAINT_KEY


def test_clients_step_aside_only_with_mig():
    plain = device_plugin.helm_values(config_map_name="cm", default_profile="d", checksum="c")
    assert "affinity" not in plain
    assert facts.MIG_DEPLOY_CLIENT_LABEL not in plain["nodeSelector"]
    paused = device_plugin.helm_values(
        config_map_name="cm", default_profile="d", checksum="c", mig=True
    )
    terms = paused["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    for term in terms:
        keys = {e["key"]: e for e in term["matchExpressions"]}
        assert keys[facts.MIG_DEPLOY_DEVICE_PLUGIN_LABEL] == {
            "key": facts.MIG_DEPLOY_DEVICE_PLUGIN_LABEL,
            "operator": "NotIn",
            "values": [facts.MIG_PAUSED_VALUE],
        }
    metrics = gpu_metrics.helm_values(GpuMetricsSettings(), ["nvidia.com/gpu"])
    assert "affinity" not in metrics
    assert facts.MIG_DEPLOY_CLIENT_LABEL not in metrics["nodeSelector"]
    metrics = gpu_metrics.helm_values(GpuMetricsSettings(), ["nvidia.com/gpu"], mig=True)
    (term,) = metrics["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"][0]["key"] == facts.MIG_DEPLOY_DCGM_EXPORTER_LABEL


# What k8s-mig-manager v0.15.0 does to a node's labels (pkg/mig/reconfigure/reconfigure.go):
# state pending, every gpu.deploy.* label paused (gpu.deploy.client only where the node has
# it), then, after the GPU clients are gone and the layout is applied, back to true, success.
_MANAGER_PAUSES = (
    facts.MIG_DEPLOY_DEVICE_PLUGIN_LABEL,
    facts.MIG_DEPLOY_GFD_LABEL,
    facts.MIG_DEPLOY_DCGM_EXPORTER_LABEL,
)


def _manager_pauses(labels: dict[str, str]) -> dict[str, str]:
    paused = {**labels, facts.MIG_CONFIG_STATE_LABEL: "pending"}
    paused.update({label: facts.MIG_PAUSED_VALUE for label in _MANAGER_PAUSES})
    if facts.MIG_DEPLOY_CLIENT_LABEL in labels:
        paused[facts.MIG_DEPLOY_CLIENT_LABEL] = facts.MIG_PAUSED_VALUE
    return paused


def _manager_succeeds(labels: dict[str, str]) -> dict[str, str]:
    done = {**labels, facts.MIG_CONFIG_STATE_LABEL: facts.MIG_CONFIG_STATE_SUCCESS}
    done.update({label: "true" for label in _MANAGER_PAUSES})
    if facts.MIG_DEPLOY_CLIENT_LABEL in labels:
        done[facts.MIG_DEPLOY_CLIENT_LABEL] = facts.MIG_DEPLOY_CLIENT_VALUE
    return done


def _runs_on(values: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether the DaemonSet of these chart values places a pod on a node with `labels`."""
    if not selector_matches(values["nodeSelector"], labels):
        return False
    return "affinity" not in values or affinity_matches(values["affinity"], labels)


def _client_values() -> dict[str, dict[str, Any]]:
    return {
        "device plugin": device_plugin.helm_values(
            config_map_name="cm", default_profile="d", checksum="c", mig=True
        ),
        "dcgm-exporter": gpu_metrics.helm_values(
            GpuMetricsSettings(), ["nvidia.com/gpu"], mig=True
        ),
    }


def test_the_manager_waits_for_our_device_plugin_and_dcgm_exporter(settings):
    """v0.15.0 waits only for pods with the GPU Operator's `app=` labels in one namespace, and
    for DaemonSet pods in any namespace whose nodeSelector has nvidia.com/gpu.deploy.client:
    our plugin and exporter must be the latter, and leave the node once it is paused."""
    group = settings.gpu_node_groups["a100"]
    node = gpu_node_group_labels(group.sharing, settings.profile_of(group), mig_manager=True)
    partitioned = _manager_succeeds(node)
    for name, values in _client_values().items():
        assert facts.MIG_DEPLOY_CLIENT_LABEL in values["nodeSelector"], name
        assert _runs_on(values, partitioned), name
        assert not _runs_on(values, _manager_pauses(partitioned)), name
        assert _runs_on(values, _manager_succeeds(_manager_pauses(partitioned))), name


def test_every_gpu_node_of_a_mig_stack_carries_the_client_label(settings):
    """Groups and pools alike (one label function), MIG or not, AL2023 or Bottlerocket (the
    exporter runs on all of them); stacks without the manager keep their labels as they were."""
    pool = settings.karpenter_pools["h200"]
    pool_labels = karpenter.node_pool(
        pool_name="h200",
        pool=pool,
        profile=settings.sharing[pool.sharing],
        node_class_name="nc",
        mig_manager=True,
    )["spec"]["template"]["metadata"]["labels"]
    for labels in [
        pool_labels,
        gpu_node_group_labels("default", settings.sharing["default"], mig_manager=True),
        gpu_node_group_labels(
            "default", settings.sharing["default"], bottlerocket=True, mig_manager=True
        ),
    ]:
        assert labels[facts.MIG_DEPLOY_CLIENT_LABEL] == facts.MIG_DEPLOY_CLIENT_VALUE
    assert facts.MIG_DEPLOY_CLIENT_LABEL not in gpu_node_group_labels(
        "default", settings.sharing["default"]
    )
    assert (
        facts.MIG_DEPLOY_CLIENT_LABEL
        not in karpenter.node_pool(
            pool_name="h200",
            pool=pool,
            profile=settings.sharing[pool.sharing],
            node_class_name="nc",
        )["spec"]["template"]["metadata"]["labels"]
    )


def test_the_device_plugin_waits_for_the_layout_on_mig_nodes(settings):
    """A GPU whose MIG mode is still off is advertised whole (device_map.go, v0.20.0): on a MIG
    node the plugin starts only once the manager reports success, and never where it failed.
    Nodes without MIG keep their plugin from the start."""
    plugin = _client_values()["device plugin"]
    group = settings.gpu_node_groups["a100"]
    new_mig_node = gpu_node_group_labels(
        group.sharing, settings.profile_of(group), mig_manager=True
    )
    assert not _runs_on(plugin, new_mig_node)
    assert not _runs_on(plugin, _manager_pauses(new_mig_node))
    assert not _runs_on(plugin, {**new_mig_node, facts.MIG_CONFIG_STATE_LABEL: "failed"})
    assert _runs_on(plugin, _manager_succeeds(_manager_pauses(new_mig_node)))
    plain_node = gpu_node_group_labels("default", settings.sharing["default"], mig_manager=True)
    assert _runs_on(plugin, plain_node)
    # The manager itself does not wait for the plugin: it runs on the new node.
    manager = mig.daemon_set(
        namespace="n", config_map_name="cm", gpu_clients_namespace="n", config_checksum="c"
    )
    assert selector_matches(manager["spec"]["template"]["spec"]["nodeSelector"], new_mig_node)


def test_node_overlays_carry_slices_per_instance_type(settings):
    pool = settings.karpenter_pools["h200"]
    profile = settings.sharing[pool.sharing]
    overlays = karpenter.node_overlays(pool_name="h200", pool=pool, profile=profile)
    (overlay,) = overlays.values()  # p5e and p5en: same GPUs, one overlay
    expected = {
        H200.profiles[n].resource_name: str(c * facts.GPU_INSTANCES["p5en.48xlarge"].gpus)
        for n, c in H200.balanced.items()
    }
    assert overlay["spec"]["capacity"] == {**expected, facts.GPU_RESOURCE: "0"}
    values = overlay["spec"]["requirements"][1]["values"]
    assert values == ["p5e.48xlarge", "p5en.48xlarge"]


def test_report_agrees_with_the_facts(settings):
    a100 = virtual_gpu_capacity(settings.gpu_node_groups["a100"], settings.sharing["a100-small"])
    per_node = P4D.gpus * A100_40.profiles["1g.5gb"].max_count
    assert a100["virtualGpusPerNode"] == per_node
    assert a100["slicesPerNode"] == {facts.GPU_RESOURCE: per_node}
    assert a100["sliceMemoryGiB"] == {facts.GPU_RESOURCE: A100_40.profiles["1g.5gb"].memory_gib}
    assert a100["isolation"].startswith("hardware (MIG)")
    assert a100["usdPerVirtualGpuHour"] == round(P4D.usd_per_hour / per_node, 4)
    h100 = virtual_gpu_capacity(settings.gpu_node_groups["h100"], settings.sharing["h100-custom"])
    assert h100["slicesPerNode"] == {
        H100.profiles[n].resource_name: c * P5.gpus * 2 for n, c in CUSTOM.items()
    }
    assert h100["resourceName"] == H100.profiles["1g.10gb"].resource_name
    assert settings.virtual_gpu_capacity("h100-custom") == sum(CUSTOM.values()) * P5.gpus * 2


def test_the_report_shows_a_time_sliced_mig_profiles_replicas(settings):
    """Each slice time-sliced `replicas` ways: the report says how many, and each device's
    memory is its slice's share."""
    h100 = virtual_gpu_capacity(settings.gpu_node_groups["h100"], settings.sharing["h100-custom"])
    assert h100["replicas"] == settings.sharing["h100-custom"].replicas == 2
    smallest = min(H100.profiles[n].memory_gib for n in CUSTOM)
    assert h100["gpuMemoryPerVirtualGpuGiB"] == round(int(smallest * 1024) // 2 / 1024, 2)
    a100 = virtual_gpu_capacity(settings.gpu_node_groups["a100"], settings.sharing["a100-small"])
    assert a100["replicas"] == 1


def _memory_warnings(replicas: int | None) -> list[str]:
    profile = mig_profile("all-1g.5gb", "single", **({"replicas": replicas} if replicas else {}))
    settings = load_settings(with_profile(profile), stack="t")
    return [w for w in settings.warnings(dt.date(2026, 12, 1)) if "CUDA context" in w]


def test_a_mig_slice_time_sliced_below_a_gib_per_device_is_warned():
    """The warning on MIG counts the slice's own memory over its replicas, not the GPU's: a
    1g.5gb slice (4.75 GiB) time-sliced 5 ways leaves under 1 GiB per pod, 4 ways does not,
    and an unshared slice is never warned about."""
    slice_mib = int(A100_40.profiles["1g.5gb"].memory_gib * 1024)
    assert slice_mib // 5 < facts.MIN_COMFORTABLE_GPU_MIB_PER_VIRTUAL_GPU <= slice_mib // 4
    (warning,) = _memory_warnings(5)
    assert warning.startswith(f"gpuNodeGroups.a100: profile 'probe' leaves {slice_mib // 5} MiB")
    assert "its smallest MIG slice, time-sliced 5 ways" in warning
    assert _memory_warnings(4) == []
    assert _memory_warnings(None) == []


def test_the_benchmark_leaves_every_mig_group_out_by_default():
    """The benchmark's pod would hold one slice, not the whole GPU it measures sharing on."""
    raw = mig_stack(
        benchmark={"enabled": True},
        gpuNodeGroups={
            **MIG_STACK["gpuNodeGroups"],
            "g5": {
                "instanceType": "g5.xlarge",
                "minSize": 0,
                "desiredSize": 1,
                "maxSize": 1,
                "sharing": "default",
            },
        },
    )
    settings = load_settings(raw, stack="t")
    assert list(settings.benchmark_groups) == ["g5"]
    (warning,) = [w for w in settings.warnings(dt.date(2026, 12, 1)) if "benchmark" in w]
    assert "no Job on gpuNodeGroups a100, h100" in warning
    only_mig = load_settings(mig_stack(benchmark={"enabled": True}), stack="t")
    assert only_mig.benchmark_groups == {}
    (warning,) = [w for w in only_mig.warnings(dt.date(2026, 12, 1)) if "benchmark" in w]
    assert warning.endswith("no group is left to benchmark")


def test_slice_prices_are_weighted_by_compute_slices_and_add_up_to_the_node(settings):
    h100 = virtual_gpu_capacity(settings.gpu_node_groups["h100"], settings.sharing["h100-custom"])
    prices = h100["usdPerSliceHour"]
    small, large = (H100.profiles[n] for n in CUSTOM)
    ratio = prices[large.resource_name] / prices[small.resource_name]
    assert ratio == pytest.approx(large.compute_slices / small.compute_slices, rel=1e-3)
    node = sum(prices[r] * n for r, n in h100["slicesPerNode"].items())
    assert node == pytest.approx(P5.usd_per_hour, rel=1e-3)
    a100 = virtual_gpu_capacity(settings.gpu_node_groups["a100"], settings.sharing["a100-small"])
    assert a100["usdPerSliceHour"] == {facts.GPU_RESOURCE: a100["usdPerVirtualGpuHour"]}


def test_dcgm_resource_names_cover_every_slice(settings):
    names = settings.gpu_resource_names()
    assert {H100.profiles[n].resource_name for n in CUSTOM} <= names
    assert {H200.profiles[n].resource_name for n in H200.balanced} <= names


def test_demo_requests_the_smallest_slice_on_its_profiles_gpu():
    raw = mig_stack(demoWorkload={"profile": "h200-balanced"})
    settings = load_settings(raw, stack="t")
    smallest = min(H200.balanced, key=lambda n: H200.profiles[n].compute_slices)
    assert settings.demo_resource_name == H200.profiles[smallest].resource_name


# --- The component under mocks --------------------------------------------------------------


def _manager_under_mocks(settings) -> tuple[Any, dict[str, Any], str]:
    """The component alone under mocks, serving one stand-in GPU node group: (deployment, its
    children by type, the node group's URN)."""

    def program():
        provider = k8s.Provider("k8s", kubeconfig="{}")
        manager = MigManager(
            "mig", MigManagerArgs(provider=provider, namespace="kube-system", settings=settings)
        )
        group = aws.eks.NodeGroup(
            "gpu-a100",
            cluster_name="c",
            node_role_arn="arn:aws:iam::123456789012:role/n",
            subnet_ids=["subnet-1"],
            scaling_config={"min_size": 0, "desired_size": 1, "max_size": 1},
            opts=pulumi.ResourceOptions(depends_on=[manager.config_map]),
        )
        manager.serve([group])

    deployment = run_program({}, stack="test", program=program)
    component = deployment.one("eks-gpu-slicing:gpu:MigManager")
    children = {r.type: r for r in deployment.resources.values() if r.parent == component.urn}
    (group,) = deployment.of_type("aws:eks/nodeGroup:NodeGroup")
    return deployment, children, group.urn


def test_mig_manager_component_registers_config_rbac_and_daemon_set(settings):
    _, children, _ = _manager_under_mocks(settings)
    assert set(children) == {
        "kubernetes:core/v1:ConfigMap",
        "kubernetes:core/v1:ServiceAccount",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRole",
        "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding",
        "kubernetes:apps/v1:DaemonSet",
    }
    config = yaml.safe_load(children["kubernetes:core/v1:ConfigMap"].inputs["data"][mig.CONFIG_KEY])
    assert config == mig.mig_parted_config(settings.mig_layouts)
    ds = children["kubernetes:apps/v1:DaemonSet"]
    pod = ds.inputs["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {facts.MIG_NODE_LABEL: facts.MIG_NODE_VALUE}
    assert (
        pod["volumes"][2]["configMap"]["name"]
        == (children["kubernetes:core/v1:ConfigMap"].outputs["metadata"]["name"])
    )
    binding = children["kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding"].urn
    assert binding in ds.dependencies


def test_the_manager_waits_for_the_node_groups_it_serves_and_its_config_does_not(settings):
    """The config first (node groups that name its layouts wait for it), the DaemonSet after
    the node groups: no node is ever labelled with a layout the config lacks."""
    _, children, group = _manager_under_mocks(settings)
    assert group in children["kubernetes:apps/v1:DaemonSet"].dependencies
    for kind, child in children.items():
        if kind != "kubernetes:apps/v1:DaemonSet":
            assert group not in child.dependencies, kind


def _manager_annotations(settings) -> dict[str, str]:
    _, children, _ = _manager_under_mocks(settings)
    template = children["kubernetes:apps/v1:DaemonSet"].inputs["spec"]["template"]
    return template["metadata"]["annotations"]


def test_a_changed_layout_restarts_the_manager_and_an_unchanged_one_does_not(settings):
    """k8s-mig-manager v0.15.0 never rereads its config file: only a new pod sees a new layout
    (cmd/nvidia-mig-manager/main.go). The pod template changes exactly when the config does."""
    before = _manager_annotations(settings)
    assert _manager_annotations(load_settings(mig_stack(), stack="test")) == before
    changed = mig_stack()
    changed["sharing"]["a100-small"]["mig"]["layout"] = "all-2g.10gb"
    after = _manager_annotations(load_settings(changed, stack="test"))
    assert after.keys() == before.keys() and after != before
    # The same key and digest the device plugin's pods carry for their config.
    data = mig.config_map("kube-system", load_settings(changed, stack="test"))["data"]
    assert after == {device_plugin.CONFIG_CHECKSUM_ANNOTATION: device_plugin.config_checksum(data)}


# --- After a reboot: the state label is reset before the kubelet starts -----------------------


def _boothook() -> str:
    (part,) = email.message_from_string(mig.node_user_data()).get_payload()
    assert part.get_content_type() == "text/cloud-boothook"
    return part.get_payload()


def _embedded_script() -> str:
    """The Python the boothook feeds to python3 on stdin (between its heredoc markers)."""
    lines = _boothook().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("exec python3 - "))
    end = lines.index(lines[start].rsplit("<<", 1)[1].strip("'"))
    return "\n".join(lines[start + 1 : end]) + "\n"


def test_mig_nodes_reset_their_state_label_at_every_boot():
    """cloud-init runs a boothook at every boot (handlers/boot_hook.py, PER_ALWAYS), before
    nodeadm starts the kubelet (nodeadm-run.service is After=cloud-final.service)."""
    hook = _boothook()
    assert hook.startswith("#cloud-boothook\n#!/bin/sh\n")
    (command,) = [line for line in hook.splitlines() if line.startswith("exec ")]
    assert shlex.split(command.split("<<")[0]) == [
        "exec",
        "python3",
        "-",
        facts.MIG_CONFIG_STATE_LABEL,
        mig.BOOT_STATE,
    ]
    assert _embedded_script() == mig.STATE_RESET_SCRIPT.read_text()
    # AL2023's system Python, which runs it, is 3.9.
    ast.parse(_embedded_script(), feature_version=(3, 9))


def test_after_a_reboot_the_plugin_waits_for_the_manager_again(settings):
    """A rebooted node keeps its labels but not its slices: with the state reset the kubelet
    refuses the device plugin's pod (node affinity is checked again at admission), while the
    manager, which reapplies the layout when it starts, runs there."""
    group = settings.gpu_node_groups["a100"]
    node = gpu_node_group_labels(group.sharing, settings.profile_of(group), mig_manager=True)
    partitioned = _manager_succeeds(_manager_pauses(node))
    plugin = _client_values()["device plugin"]
    assert _runs_on(plugin, partitioned)
    rebooted = {**partitioned, facts.MIG_CONFIG_STATE_LABEL: mig.BOOT_STATE}
    assert not _runs_on(plugin, rebooted)
    manager = mig.daemon_set(
        namespace="n", config_map_name="cm", gpu_clients_namespace="n", config_checksum="c"
    )
    assert selector_matches(manager["spec"]["template"]["spec"]["nodeSelector"], rebooted)
    assert _runs_on(plugin, _manager_succeeds(_manager_pauses(rebooted)))


class _FakeNodesApi:
    """An API server that answers merge patches of nodes: 200 for `nodes`, else 404; or
    `status` for everything. Records (method, path, headers, body)."""

    def __init__(self, nodes: set[str], status: int | None = None):
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.requests.append(("PATCH", self.path, dict(self.headers), body))
                name = self.path.rsplit("/", 1)[1]
                code = status or (200 if name in nodes else 404)
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self):
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _node_files(tmp_path: Path, server: str, node: str = "ip-10-0-1-10.ec2.internal"):
    """What nodeadm leaves on a node: the kubelet's kubeconfig (its credential command here
    echoes a fixed ExecCredential) and environment, laid out as nodeadm writes them."""
    credential = {"kind": "ExecCredential", "status": {"token": "k8s-aws-v1.token"}}
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kubernetes", "cluster": {"server": server}}],
        "current-context": "kubelet",
        "contexts": [{"name": "kubelet", "context": {"cluster": "kubernetes", "user": "kubelet"}}],
        "users": [
            {
                "name": "kubelet",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": shutil.which("echo"),
                        "args": [json.dumps(credential)],
                    }
                },
            }
        ],
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    (tmp_path / "environment").write_text(
        f"NODEADM_KUBELET_ARGS=--node-ip=10.0.1.10 --hostname-override={node} --v=2\n"
    )
    return tmp_path / "kubeconfig", tmp_path / "environment"


def _boot(kubeconfig: Path, environment: Path, *extra: str) -> subprocess.CompletedProcess:
    """The boothook's command, on this machine's Python, pointed at the files above."""
    return subprocess.run(
        [
            sys.executable,
            "-",
            facts.MIG_CONFIG_STATE_LABEL,
            mig.BOOT_STATE,
            "--kubeconfig",
            str(kubeconfig),
            "--kubelet-environment",
            str(environment),
            *extra,
        ],
        input=_embedded_script(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_boot_script_patches_its_own_node_with_the_kubelets_credentials(tmp_path):
    node = "ip-10-0-1-10.ec2.internal"
    with _FakeNodesApi({node}) as api:
        done = _boot(*_node_files(tmp_path, api.url, node))
    assert done.returncode == 0, done.stderr
    ((method, path, headers, body),) = api.requests
    assert (method, path) == ("PATCH", f"/api/v1/nodes/{node}")
    assert headers["Authorization"] == "Bearer k8s-aws-v1.token"
    assert headers["Content-Type"] == "application/merge-patch+json"
    assert body == {"metadata": {"labels": {facts.MIG_CONFIG_STATE_LABEL: mig.BOOT_STATE}}}


def test_the_boot_script_leaves_a_new_node_alone_and_never_hangs_the_boot(tmp_path, capsys):
    def boot(kubeconfig: Path, environment: Path, *extra: str) -> int:
        return mig_state_reset.main(
            [
                facts.MIG_CONFIG_STATE_LABEL,
                mig.BOOT_STATE,
                "--kubeconfig",
                str(kubeconfig),
                "--kubelet-environment",
                str(environment),
                *extra,
            ]
        )

    # First boot: the Node does not exist yet (404), nothing to reset.
    with _FakeNodesApi(set()) as api:
        assert boot(*_node_files(tmp_path, api.url)) == 0
    assert "not registered yet" in capsys.readouterr().err
    # No kubelet files at all: nothing is asked.
    with _FakeNodesApi(set()) as api:
        assert boot(tmp_path / "none", tmp_path / "none-either") == 0
    assert api.requests == []
    # An API server that keeps failing: a bounded number of tries, then a line saying so.
    with _FakeNodesApi(set(), status=503) as api:
        files = _node_files(tmp_path, api.url)
        assert boot(*files, "--attempts", "2", "--retry-seconds", "0") == 1
    assert len(api.requests) == 2
    assert "gave up" in capsys.readouterr().err.splitlines()[-1]


def test_only_al2023_mig_groups_and_pools_get_the_boot_time_reset(settings):
    """Bottlerocket partitions at boot by itself (its TOML, no manager); profiles without MIG
    need nothing: EKS and Karpenter bootstrap those nodes from no user data of ours."""
    reset = mig.node_user_data()
    assert mig.al2023_user_data(settings.sharing["a100-small"]) == reset
    assert mig.al2023_user_data(settings.sharing["a100-small"], bottlerocket=True) is None
    assert mig.al2023_user_data(settings.sharing["default"]) is None
    pool = settings.karpenter_pools["h200"]
    node_class = karpenter.node_class(
        pool_name="h200",
        pool=pool,
        cluster_name="c",
        node_role_name="r",
        ami_release=facts.KARPENTER_AL2023_AMI_RELEASE,
        tags={},
        profile=settings.sharing[pool.sharing],
    )
    assert node_class["spec"]["userData"] == reset
    plain = karpenter.node_class(
        pool_name="h200",
        pool=pool,
        cluster_name="c",
        node_role_name="r",
        ami_release=facts.KARPENTER_AL2023_AMI_RELEASE,
        tags={},
        profile=settings.sharing["default"],
    )
    assert "userData" not in plain["spec"]
