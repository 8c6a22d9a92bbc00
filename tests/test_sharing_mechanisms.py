"""One sharing profile, every mechanism (issue 8): MPS, GPU Feature Discovery, Bottlerocket's
built-in plugin, and what each virtual GPU really has."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import tomllib

import pytest
import yaml

from eks_gpu_slicing.builders.bottlerocket import device_plugin_settings, to_toml, user_data
from eks_gpu_slicing.builders.device_plugin import check_device_plugin_config, device_plugin_config
from eks_gpu_slicing.builders.workloads import demo_deployment, virtual_gpu_capacity
from eks_gpu_slicing.review.mocks import Deployment, run_program
from eks_gpu_slicing.settings import (
    ConfigError,
    GpuNodeGroupSettings,
    SharingProfile,
    load_settings,
)
from eks_gpu_slicing.settings.stack_files import ROOT
from tests.conftest import MINIMAL, engine_config
from tests.k8s_semantics import affinity_matches, selector_matches, tolerates

NODE_GROUP = "eks:index:ManagedNodeGroup"
RELEASE = "kubernetes:helm.sh/v3:Release"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
CHART = ROOT.parent / "shared" / "reference" / "nvidia-device-plugin-0.20.0"

MPS = SharingProfile(strategy="mps", replicas=4)


def mixed_cluster(*, gfd: bool = False) -> dict:
    """AL2023 time-sliced and MPS groups, a Bottlerocket group, and the system group."""
    raw = copy.deepcopy(MINIMAL)
    raw["gpuNodeGroups"] = {
        "sliced": {"instanceType": "g4dn.xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 2},
        "mps": {
            "instanceType": "g5.xlarge",
            "minSize": 1,
            "desiredSize": 1,
            "maxSize": 2,
            "sharing": "mps",
        },
        "rocket": {
            "instanceType": "g5.xlarge",
            "minSize": 1,
            "desiredSize": 1,
            "maxSize": 2,
            "amiType": "BOTTLEROCKET_x86_64_NVIDIA",
            "sharing": "mps",
        },
    }
    raw["sharing"] = {
        "default": {"strategy": "time-slicing", "replicas": 10},
        "mps": {"strategy": "mps", "replicas": 4},
    }
    raw["devicePlugin"] = {"gfd": gfd}
    return raw


@pytest.fixture(scope="module")
def mixed() -> Deployment:
    return run_program(engine_config(mixed_cluster(gfd=True)), stack="dev")


def nodes(deployment: Deployment) -> dict[str, dict]:
    """Per node group: the labels and taints its nodes carry."""
    return {
        g.name: {"labels": g.inputs.get("labels", {}), "taints": g.inputs.get("taints", [])}
        for g in deployment.of_type(NODE_GROUP)
    }


def lands_on(deployment: Deployment, selector: dict, tolerations: list, affinity=None) -> set:
    """The node groups a DaemonSet with this placement runs on (scheduler semantics)."""
    return {
        name
        for name, node in nodes(deployment).items()
        if selector_matches(selector, node["labels"])
        and tolerates(tolerations, node["taints"])
        and (affinity is None or affinity_matches(affinity, node["labels"]))
    }


def chart_affinity() -> dict:
    if not CHART.is_dir():
        pytest.skip(f"no upstream reference at {CHART}")
    return yaml.safe_load((CHART / "values.yaml").read_text())["affinity"]


# --- MPS -------------------------------------------------------------------------------------


def test_mps_profile_becomes_a_sharing_mps_entry():
    config = device_plugin_config(MPS)
    assert config["sharing"] == {
        "mps": {
            "renameByDefault": False,
            "failRequestsGreaterThanOne": True,
            "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
        }
    }
    assert config["flags"]["migStrategy"] == "none"
    assert check_device_plugin_config(config) == []


def test_checker_refuses_mps_with_mig():
    config = device_plugin_config(MPS)
    config["flags"]["migStrategy"] = "single"
    assert any("not supported with MIG" in p for p in check_device_plugin_config(config))


def test_plugin_lands_on_every_al2023_gpu_group_and_never_on_bottlerocket(mixed):
    values = mixed.one(RELEASE).inputs["values"]
    placed = lands_on(mixed, values["nodeSelector"], values["tolerations"], chart_affinity())
    assert placed == {"gpu-sliced", "gpu-mps"}


def test_chart_mps_daemon_lands_exactly_on_al2023_mps_groups(mixed):
    values = mixed.one(RELEASE).inputs["values"]
    # The chart's MPS control daemon DaemonSet: our selector plus its own mps.capable.
    selector = {**values["nodeSelector"], "nvidia.com/mps.capable": "true"}
    assert lands_on(mixed, selector, values["tolerations"], chart_affinity()) == {"gpu-mps"}
    assert values["mps"]["root"] == "/run/nvidia/mps"
    # The Bottlerocket MPS group is labelled too, and still gets no second daemon.
    assert nodes(mixed)["gpu-rocket"]["labels"]["nvidia.com/mps.capable"] == "true"


def test_mps_replicas_are_checked_against_the_gpus_memory_and_the_client_limit():
    def problems(instance: str, replicas: int) -> list[str]:
        raw = mixed_cluster()
        raw["gpuNodeGroups"]["mps"]["instanceType"] = instance
        raw["sharing"]["mps"]["replicas"] = replicas
        with pytest.raises(ConfigError) as caught:
            load_settings(raw, stack="dev")
        return caught.value.problems

    # A T4's 16384 MiB over 24 clients is 682 MiB each: less than a CUDA context.
    (problem,) = problems("g4dn.xlarge", 24)
    assert problem.startswith("gpuNodeGroups.mps.sharing:") and "682 MiB" in problem
    assert any("at most 48 clients" in p for p in problems("g5.xlarge", 49))
    assert any(">= 2" in p for p in problems("g5.xlarge", 1))


# --- GPU Feature Discovery and NFD -----------------------------------------------------------


def test_gfd_brings_nfd_workers_to_gpu_nodes_and_its_controllers_to_system_nodes(mixed):
    values = mixed.one(RELEASE).inputs["values"]
    assert values["gfd"] == {"enabled": True}
    nfd = values["nfd"]
    worker = lands_on(mixed, nfd["worker"].get("nodeSelector", {}), nfd["worker"]["tolerations"])
    assert {"gpu-sliced", "gpu-mps", "gpu-rocket", "system"} <= worker
    for controller in ("master", "gc"):
        placed = lands_on(mixed, nfd[controller]["nodeSelector"], [])
        assert placed == {"system"}, controller


def test_without_gfd_no_nfd_values_are_sent():
    values = run_program(engine_config(mixed_cluster()), stack="dev").one(RELEASE).inputs["values"]
    assert values["gfd"] == {"enabled": False} and "nfd" not in values


def test_gfd_must_be_a_boolean():
    raw = mixed_cluster()
    raw["devicePlugin"] = {"gfd": "yes"}
    with pytest.raises(ConfigError, match=r"devicePlugin\.gfd: Input should be a valid boolean"):
        load_settings(raw, stack="dev")


# --- Bottlerocket ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        (
            SharingProfile(strategy="time-slicing", replicas=10, rename_by_default=True),
            {
                "device-sharing-strategy": "time-slicing",
                "time-slicing": {
                    "replicas": 10,
                    "rename-by-default": True,
                    "fail-requests-greater-than-one": False,
                },
            },
        ),
        (
            MPS,
            {"device-sharing-strategy": "mps", "mps": {"replicas": 4, "rename-by-default": False}},
        ),
        (SharingProfile(strategy="none"), {"device-sharing-strategy": "none"}),
    ],
)
def test_bottlerocket_user_data_parses_back_to_the_profile(profile, expected):
    parsed = tomllib.loads(user_data(profile))
    assert parsed["settings"]["kubelet-device-plugins"]["nvidia"] == expected


def test_bottlerocket_group_gets_settings_in_its_launch_template_and_keeps_labels(mixed):
    templates = {lt.name: lt.inputs for lt in mixed.of_type(LAUNCH_TEMPLATE)}
    rocket = templates["gpu-rocket-launch-template"]
    settings = tomllib.loads(base64.b64decode(rocket["userData"]).decode())
    assert settings["settings"]["kubelet-device-plugins"]["nvidia"]["mps"]["replicas"] == 4
    # Containers live on Bottlerocket's data volume.
    assert rocket["blockDeviceMappings"][0]["deviceName"] == "/dev/xvdb"
    assert "userData" not in templates["gpu-mps-launch-template"]
    group = mixed.one(NODE_GROUP, "gpu-rocket").inputs
    assert group["amiType"] == "BOTTLEROCKET_x86_64_NVIDIA"
    assert group["labels"]["eks-gpu-slicing/device-plugin"] == "bottlerocket"
    assert group["labels"]["nvidia.com/device-plugin.config"] == "mps"
    assert group["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]


def test_a_profile_bottlerocket_cannot_express_names_the_group():
    raw = mixed_cluster()
    raw["sharing"]["mps"]["failRequestsGreaterThanOne"] = False
    with pytest.raises(ConfigError, match=r"gpuNodeGroups\.rocket: profile 'mps' sets"):
        load_settings(raw, stack="dev")
    # The same profile is fine on AL2023, where the plugin takes the flag.
    del raw["gpuNodeGroups"]["rocket"]
    assert load_settings(raw, stack="dev")


def test_toml_writer_quotes_what_it_must():
    text = to_toml({"a.b": {"plain-key": 'x"y', "n": 1, "t": {"ok": True}}})
    assert tomllib.loads(text) == {"a": {"b": {"plain-key": 'x"y', "n": 1, "t": {"ok": True}}}}
    with pytest.raises(TypeError):
        to_toml({"a": {"f": 1.5}})
    assert device_plugin_settings(SharingProfile(strategy="none")) == {
        "device-sharing-strategy": "none"
    }


# --- Workloads ask for what the node advertises -------------------------------------------------


def test_workloads_request_the_renamed_resource():
    renamed = SharingProfile(strategy="mps", replicas=4, rename_by_default=True)
    pod = demo_deployment(
        replicas=1, image="img:1", namespace="default", profile_name="mps", profile=renamed
    )["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu.shared"] == 1 and "nvidia.com/gpu" not in limits


# --- What each virtual GPU really has -----------------------------------------------------------


@pytest.mark.parametrize(
    ("instance", "profile", "gpus", "per_node", "gib_each", "usd_each"),
    [
        # T4: 16 GiB shared by 10 time-sliced replicas; $0.526/h over 10.
        ("g4dn.xlarge", SharingProfile(replicas=10), 1, 10, 1.6, 0.0526),
        # 4 T4s x 10: $3.912/h over 40.
        ("g4dn.12xlarge", SharingProfile(replicas=10), 4, 40, 1.6, 0.0978),
        # 8 A10Gs (22888 MiB each) x 4 MPS clients: 5722 MiB each; $16.288/h over 32.
        ("g5.48xlarge", MPS, 8, 32, 5.59, 0.509),
    ],
)
def test_sharing_report_per_instance(instance, profile, gpus, per_node, gib_each, usd_each):
    group = GpuNodeGroupSettings(instance_type=instance, min_size=0, desired_size=0, max_size=3)
    report = virtual_gpu_capacity(group, profile, "us-east-1")
    assert report["gpusPerNode"] == gpus
    assert report["virtualGpusPerNode"] == per_node
    assert report["virtualGpusAtMaxSize"] == 3 * per_node
    assert report["gpuMemoryPerVirtualGpuGiB"] == gib_each
    assert report["usdPerVirtualGpuHour"] == usd_each
    assert report["priceSource"] == "on-demand, us-east-1, 2026-07-20"
    assert ("capped per client" in report["isolation"]) == (profile.strategy == "mps")


def test_under_a_gib_per_virtual_gpu_is_warned():
    raw = copy.deepcopy(MINIMAL)
    raw["sharing"] = {"default": {"replicas": 20}}  # a T4's 16 GiB over 20
    warnings = load_settings(raw, stack="dev").warnings(dt.date(2026, 11, 1))
    assert any("819 MiB of GPU memory per virtual GPU" in w for w in warnings)
