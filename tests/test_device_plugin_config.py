"""The device plugin's config files and Helm values, as pure functions."""

from __future__ import annotations

import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.device_plugin import (
    CONFIG_CHECKSUM_ANNOTATION,
    check_device_plugin_config,
    config_checksum,
    config_map_data,
    device_plugin_config,
    helm_values,
)
from eks_gpu_slicing.builders.workloads import system_node_labels
from eks_gpu_slicing.review.helm import value_paths
from eks_gpu_slicing.settings import SharingProfile

TIME_SLICED = SharingProfile(strategy="time-slicing", replicas=10)
RENAMED = SharingProfile(
    strategy="time-slicing", replicas=4, rename_by_default=True, fail_requests_greater_than_one=True
)
WHOLE = SharingProfile(strategy="none")


def test_time_slicing_config_is_the_source_design_plus_flags():
    config = device_plugin_config(TIME_SLICED)
    assert config["version"] == "v1"
    assert config["sharing"] == {
        "timeSlicing": {
            "renameByDefault": False,
            "failRequestsGreaterThanOne": False,
            "resources": [{"name": "nvidia.com/gpu", "replicas": 10}],
        }
    }
    assert config["flags"]["migStrategy"] == "none"
    # Renaming switches live in the sharing block; under flags the plugin ignores them.
    assert "renameByDefault" not in config["flags"]


def test_profile_switches_reach_the_config():
    block = device_plugin_config(RENAMED)["sharing"]["timeSlicing"]
    assert block["renameByDefault"] is True
    assert block["failRequestsGreaterThanOne"] is True
    assert block["resources"][0]["replicas"] == 4


def test_unshared_profile_has_no_sharing_block():
    config = device_plugin_config(WHOLE)
    assert "sharing" not in config
    assert check_device_plugin_config(config) == []


def test_config_map_has_one_parseable_valid_entry_per_profile():
    data = config_map_data({"default": TIME_SLICED, "renamed": RENAMED, "whole": WHOLE})
    assert sorted(data) == ["default", "renamed", "whole"]
    for text in data.values():
        parsed = yaml.safe_load(text)
        assert check_device_plugin_config(parsed) == []
    assert yaml.safe_load(data["default"])["sharing"]["timeSlicing"]["resources"][0] == {
        "name": "nvidia.com/gpu",
        "replicas": 10,
    }


def test_config_map_yaml_keeps_booleans_and_integers_typed():
    text = config_map_data({"default": TIME_SLICED})["default"]
    # A quoted "10" or "false" would be a string to the plugin's JSON decoder.
    assert "replicas: 10\n" in text
    assert "renameByDefault: false\n" in text


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"version": "v2"}, "version"),
        ({"version": "v1", "flags": {"renameByDefault": True}}, "flags.renameByDefault: unknown"),
        ({"version": "v1", "sharing": {"timeSlicing": {"resources": []}}}, "no resources"),
        (
            {"version": "v1", "sharing": {"timeSlicing": {"resources": [{"replicas": 4}]}}},
            "name",
        ),
        (
            {
                "version": "v1",
                "sharing": {
                    "timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": 1}]}
                },
            },
            ">= 2",
        ),
        (
            {
                "version": "v1",
                "sharing": {
                    "timeSlicing": {"resources": [{"name": "nvidia.com/gpu", "replicas": "4"}]}
                },
            },
            "integer",
        ),
        (
            {
                "version": "v1",
                "sharing": {
                    "timeSlicing": {"resources": [{"name": "example.com/foo", "replicas": 4}]}
                },
            },
            "only GPUs",
        ),
        ({"version": "v1", "sharing": {"timeSlice": {}}}, "sharing.timeSlice: unknown"),
        ({"version": "v1", "flags": {"migStrategy": "all"}}, "migStrategy"),
        # Not a v0.20.0 flag (a later release's), so v0.20.0 ignores it.
        (
            {"version": "v1", "flags": {"restartOnDeviceUnhealthy": True}},
            "flags.restartOnDeviceUnhealthy: unknown",
        ),
        ({"version": "v1", "flags": {"gfd": {"oneShot": True}}}, "flags.gfd.oneShot: unknown"),
    ],
)
def test_checker_catches_what_the_plugin_rejects_or_ignores(config, problem):
    problems = check_device_plugin_config(config)
    assert any(problem in p for p in problems), problems


def test_checker_accepts_every_v0_20_flag():
    config = {
        "version": "v1",
        "flags": {
            "migStrategy": "none",
            "nvidiaDevRoot": "/",
            "gdrcopyEnabled": False,
            "useNodeFeatureAPI": False,
            "deviceDiscoveryStrategy": "auto",
            "plugin": {"sharedDevicesAllocationPolicy": "packed"},
            "gfd": {"oneshot": False, "sleepInterval": "60s"},
        },
    }
    assert check_device_plugin_config(config) == []


def test_checksum_is_stable_and_tracks_content():
    one = config_map_data({"default": TIME_SLICED})
    same = config_map_data({"default": SharingProfile(strategy="time-slicing", replicas=10)})
    other = config_map_data({"default": SharingProfile(strategy="time-slicing", replicas=8)})
    assert config_checksum(one) == config_checksum(same)
    assert config_checksum(one) != config_checksum(other)
    assert len(config_checksum(one)) == 64


def test_helm_values_point_at_the_configmap_and_never_embed_a_map():
    values = helm_values(config_map_name="cm-abc", default_profile="default", checksum="x" * 64)
    assert values["config"] == {"name": "cm-abc", "default": "default"}
    assert "map" not in values["config"]  # the chart refuses name and map together
    assert values["podAnnotations"] == {CONFIG_CHECKSUM_ANNOTATION: "x" * 64}
    assert values["nodeSelector"] == {
        "nvidia.com/gpu.present": "true",
        "eks-gpu-slicing/device-plugin": "helm",
    }
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in values[
        "tolerations"
    ]


def emitted_paths(**options: bool) -> set[str]:
    values = helm_values(
        config_map_name="cm",
        default_profile="default",
        checksum="0",
        system_node_selector=system_node_labels(),
        **options,
    )
    return set(value_paths(values, facts.DEVICE_PLUGIN_VALUE_PATHS))


def test_the_value_paths_are_exactly_the_ones_the_stack_emits():
    """One list: every path emitted with some option is listed, and every listed path is
    emitted with some option (a listed path nothing sets, such as priorityClassName was, would
    let a misspelt value of that name through `make check`)."""
    emitted = set().union(
        *(emitted_paths(gfd=gfd, mig=mig) for gfd in (False, True) for mig in (False, True))
    )
    assert emitted == facts.DEVICE_PLUGIN_VALUE_PATHS


def test_gfd_adds_the_nfd_values_and_mig_the_affinity():
    plain = emitted_paths()
    assert emitted_paths(gfd=True) - plain == {
        p for p in facts.DEVICE_PLUGIN_VALUE_PATHS if p.startswith("nfd.")
    }
    assert emitted_paths(mig=True) - plain == {"affinity"}
    assert not {p for p in plain if p.startswith("nfd.")} and "affinity" not in plain


def test_value_paths_reveal_a_misspelt_value():
    paths = set(
        value_paths(
            {"config": {"nmae": "x"}, "nodeselector": {"a": "b"}}, facts.DEVICE_PLUGIN_VALUE_PATHS
        )
    )
    assert not paths <= facts.DEVICE_PLUGIN_VALUE_PATHS
    assert {"config.nmae", "nodeselector.a"} <= paths
