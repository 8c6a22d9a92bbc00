"""Validation of stack settings: defaults, and every kind of bad input named by key path."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import pytest

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import ConfigError, decode_config_value, load_settings
from tests.conftest import MINIMAL


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="test")
    return caught.value.problems


def with_changes(**sections: Any) -> dict[str, Any]:
    raw = copy.deepcopy(MINIMAL)
    raw.update(copy.deepcopy(sections))
    return raw


def t4(**fields: Any) -> dict[str, Any]:
    group = {"instanceType": "g4dn.xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 2}
    group.update(fields)
    return group


def test_minimal_config_gets_documented_defaults(minimal):
    settings = load_settings(minimal, stack="dev")
    assert settings.cluster_name == "eks-gpu-slicing-dev"
    assert settings.kubernetes_version == facts.DEFAULT_KUBERNETES_VERSION
    assert settings.protect is False
    assert settings.network.create_vpc
    assert settings.network.availability_zone_count >= 2
    assert settings.cluster_endpoint.public_access is True
    assert settings.device_plugin.chart_version == facts.DEVICE_PLUGIN_CHART_VERSION
    assert settings.device_plugin.namespace == "kube-system"
    default = settings.sharing["default"]
    assert (default.strategy, default.replicas) == ("time-slicing", 10)
    group = settings.gpu_node_groups["t4"]
    assert (group.disk_size_gib, group.capacity_type, group.sharing) == (
        100,
        "ON_DEMAND",
        "default",
    )
    assert settings.demo_workload.enabled is False
    assert settings.demo_workload.replicas == 5
    assert settings.system_node_group.min_size >= 2  # CoreDNS runs two replicas


def test_profile_derived_values():
    settings = load_settings(
        with_changes(
            sharing={
                "default": {"replicas": 4, "renameByDefault": True},
                "whole": {"strategy": "none"},
            },
        ),
        stack="t",
    )
    assert settings.sharing["default"].resource_name == "nvidia.com/gpu.shared"
    assert settings.sharing["default"].virtual_gpus_per_gpu == 4
    assert settings.sharing["whole"].resource_name == "nvidia.com/gpu"
    assert settings.sharing["whole"].virtual_gpus_per_gpu == 1


# (case, raw settings, substrings that must all appear in one reported problem)
BAD_CONFIGS = [
    (
        "replicas 1",
        with_changes(sharing={"default": {"replicas": 1}}),
        ["sharing.default.replicas", ">= 2"],
    ),
    (
        "replicas 0",
        with_changes(sharing={"default": {"replicas": 0}}),
        ["sharing.default.replicas", ">= 2"],
    ),
    (
        "replicas a float",
        with_changes(sharing={"default": {"replicas": 2.5}}),
        ["sharing.default.replicas", "integer"],
    ),
    (
        "replicas a string",
        with_changes(sharing={"default": {"replicas": "10"}}),
        ["sharing.default.replicas", "integer"],
    ),
    (
        "time-slicing without replicas",
        with_changes(sharing={"default": {"strategy": "time-slicing"}}),
        ["sharing.default", "replicas is required"],
    ),
    (
        "none with replicas",
        with_changes(sharing={"default": {"strategy": "none", "replicas": 4}}),
        ["sharing.default", "left out"],
    ),
    (
        "unknown strategy",
        with_changes(sharing={"default": {"strategy": "vgpu", "replicas": 4}}),
        ["sharing.default.strategy", "time-slicing"],
    ),
    (
        "renameByDefault misspelt",
        with_changes(sharing={"default": {"replicas": 4, "renameBydefault": True}}),
        ["sharing.default.renameBydefault", "unknown key", "renameByDefault"],
    ),
    (
        "non-GPU instance type",
        with_changes(gpuNodeGroups={"t4": t4(instanceType="m5.large")}),
        ["gpuNodeGroups.t4.instanceType", "not a supported NVIDIA GPU", "g4dn"],
    ),
    (
        "unknown size of a GPU family",
        with_changes(gpuNodeGroups={"t4": t4(instanceType="g4dn.huge")}),
        ["gpuNodeGroups.t4.instanceType", "g4dn.xlarge"],
    ),
    (
        "garbage instance type",
        with_changes(gpuNodeGroups={"t4": t4(instanceType="ten")}),
        ["gpuNodeGroups.t4.instanceType"],
    ),
    (
        "min > max",
        with_changes(gpuNodeGroups={"t4": t4(minSize=3, desiredSize=3, maxSize=2)}),
        ["gpuNodeGroups.t4", "minSize (3) > maxSize (2)"],
    ),
    (
        "min > desired",
        with_changes(gpuNodeGroups={"t4": t4(minSize=2, desiredSize=1, maxSize=3)}),
        ["gpuNodeGroups.t4", "minSize (2) > desiredSize (1)"],
    ),
    (
        "desired > max",
        with_changes(gpuNodeGroups={"t4": t4(minSize=1, desiredSize=5, maxSize=3)}),
        ["gpuNodeGroups.t4", "desiredSize (5) > maxSize (3)"],
    ),
    (
        "negative size",
        with_changes(gpuNodeGroups={"t4": t4(minSize=-1)}),
        ["gpuNodeGroups.t4.minSize", "greater than or equal to 0"],
    ),
    (
        "missing size",
        with_changes(gpuNodeGroups={"t4": {"instanceType": "g4dn.xlarge", "maxSize": 1}}),
        ["gpuNodeGroups.t4.minSize", "required"],
    ),
    (
        "capacity type",
        with_changes(gpuNodeGroups={"t4": t4(capacityType="spot")}),
        ["gpuNodeGroups.t4.capacityType", "SPOT"],
    ),
    (
        "disk too small",
        with_changes(gpuNodeGroups={"t4": t4(diskSizeGiB=5)}),
        ["gpuNodeGroups.t4.diskSizeGiB"],
    ),
    (
        "group names a missing profile",
        with_changes(gpuNodeGroups={"t4": t4(sharing="tiny")}),
        ["gpuNodeGroups.t4.sharing", "no sharing profile 'tiny'"],
    ),
    (
        "typo in a node group key",
        with_changes(gpuNodeGroups={"t4": t4(instanceTyp="g4dn.xlarge")}),
        ["gpuNodeGroups.t4.instanceTyp", "unknown key", "instanceType"],
    ),
    (
        "typo in a top-level key",
        with_changes(kubernetesVerison="1.35"),
        ["kubernetesVerison", "unknown key", "kubernetesVersion"],
    ),
    (
        "no GPU node groups",
        with_changes(gpuNodeGroups={}),
        ["gpuNodeGroups", "at least one"],
    ),
    (
        "node group name not a label value",
        with_changes(gpuNodeGroups={"T4_Group": t4()}),
        ["gpuNodeGroups", "T4_Group"],
    ),
    (
        "Kubernetes version EKS does not offer",
        with_changes(kubernetesVersion="1.29"),
        ["kubernetesVersion", "1.29", "1.35"],
    ),
    (
        "unquoted 1.30 read as 1.3",
        with_changes(kubernetesVersion="1.3"),
        ["kubernetesVersion", "quote it"],
    ),
    (
        "plugin in the default namespace",
        with_changes(devicePlugin={"namespace": "default"}),
        ["devicePlugin.namespace", "'default'"],
    ),
    (
        "chart version not semver",
        with_changes(devicePlugin={"chartVersion": "latest"}),
        ["devicePlugin.chartVersion"],
    ),
    (
        "default profile missing",
        with_changes(sharing={"big": {"replicas": 4}}, gpuNodeGroups={"t4": t4(sharing="big")}),
        ["sharing", "default profile 'default'"],
    ),
    (
        "demo image latest",
        with_changes(demoWorkload={"enabled": True, "image": "nvidia/cuda:latest"}),
        ["demoWorkload.image", "pinned"],
    ),
    (
        "demo image untagged",
        with_changes(demoWorkload={"enabled": True, "image": "nvidia/cuda"}),
        ["demoWorkload.image", "pinned"],
    ),
    (
        "demo profile unused by any group",
        with_changes(
            sharing={"default": {"replicas": 10}, "other": {"replicas": 2}},
            demoWorkload={"enabled": True, "profile": "other"},
        ),
        ["demoWorkload.profile", "no GPU node group uses profile 'other'"],
    ),
    (
        "public CIDR malformed",
        with_changes(clusterEndpoint={"publicAccessCidrs": ["10.0.0.0/33"]}),
        ["clusterEndpoint.publicAccessCidrs", "10.0.0.0/33"],
    ),
    (
        "CIDRs with private-only endpoint",
        with_changes(clusterEndpoint={"publicAccess": False, "publicAccessCidrs": ["10.0.0.0/8"]}),
        ["clusterEndpoint", "publicAccessCidrs only apply"],
    ),
    (
        "private access from a documentation range",
        with_changes(
            clusterEndpoint={"publicAccess": False, "privateAccessCidrs": ["198.51.100.0/24"]}
        ),
        ["clusterEndpoint.privateAccessCidrs", "RFC 5737"],
    ),
    (
        "private-only endpoint that nothing may reach",
        with_changes(clusterEndpoint={"publicAccess": False}),
        ["clusterEndpoint", "neither privateAccessCidrs nor privateAccessSecurityGroupIds"],
    ),
    (
        "private access CIDR malformed",
        with_changes(clusterEndpoint={"privateAccessCidrs": ["10.100.0.1/16"]}),
        ["clusterEndpoint.privateAccessCidrs", "10.100.0.1/16"],
    ),
    (
        "private access from something that is not a security group",
        with_changes(clusterEndpoint={"privateAccessSecurityGroupIds": ["vpc-0abc12345"]}),
        ["clusterEndpoint.privateAccessSecurityGroupIds", "vpc-0abc12345"],
    ),
    (
        "existing VPC with one private subnet",
        with_changes(network={"vpcId": "vpc-0abc12345", "privateSubnetIds": ["subnet-0abc1234"]}),
        ["network", "at least 2"],
    ),
    (
        "existing VPC and create-only keys",
        with_changes(
            network={
                "vpcId": "vpc-0abc12345",
                "privateSubnetIds": ["subnet-0abc1234", "subnet-0abc1235"],
                "natGateways": "onePerAz",
            }
        ),
        ["network", "natGateways only apply"],
    ),
    (
        "subnets without a VPC",
        with_changes(network={"privateSubnetIds": ["subnet-0abc1234", "subnet-0abc1235"]}),
        ["network", "need vpcId"],
    ),
    (
        "one availability zone",
        with_changes(network={"availabilityZoneCount": 1}),
        ["network.availabilityZoneCount"],
    ),
    (
        "system group on a GPU instance",
        with_changes(systemNodeGroup={"instanceType": "g5.xlarge"}),
        ["systemNodeGroup.instanceType", "GPU instance"],
    ),
    (
        "admin ARN malformed",
        with_changes(adminRoleArns=["arn:aws:iam::123:role/x"]),
        ["adminRoleArns"],
    ),
    (
        "benchmark on a missing group",
        with_changes(benchmark={"enabled": True, "nodeGroups": ["h100"]}),
        ["benchmark.nodeGroups", "h100"],
    ),
    (
        "benchmark model unknown",
        with_changes(benchmark={"enabled": True, "models": ["resnet"]}),
        ["benchmark.models", "mlp"],
    ),
    (
        "benchmark image unpinned",
        with_changes(benchmark={"enabled": True, "image": "pytorch/pytorch"}),
        ["benchmark.image", "pinned"],
    ),
    (
        "protect not a boolean",
        with_changes(protect="yes"),
        ["protect", "boolean"],
    ),
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(raw, expected) for _, raw, expected in BAD_CONFIGS],
    ids=[case for case, _, _ in BAD_CONFIGS],
)
def test_bad_configuration_is_named_by_key_path(raw, expected):
    problems = problems_of(raw)
    assert any(all(part in p for part in expected) for p in problems), problems


def test_every_problem_is_reported_at_once():
    raw = with_changes(
        kubernetesVersion="1.20",
        gpuNodeGroups={
            "t4": t4(minSize=3, desiredSize=3, maxSize=2, sharing="missing"),
            "big": t4(instanceType="x1.large"),
        },
        sharing={"default": {"replicas": 1}},
        devicePlugin={"namespace": "default"},
        typo=True,
    )
    problems = problems_of(raw)
    text = "\n".join(problems)
    for path in (
        "kubernetesVersion",
        "gpuNodeGroups.t4: minSize (3) > maxSize (2)",
        "gpuNodeGroups.t4.sharing",
        "gpuNodeGroups.big.instanceType",
        "sharing.default.replicas",
        "devicePlugin.namespace",
        "typo: unknown key",
    ):
        assert path in text, text
    assert len(problems) == 7, text


def test_config_error_message_lists_problems_with_namespace():
    with pytest.raises(ConfigError) as caught:
        load_settings(with_changes(sharing={"default": {"replicas": 1}}), stack="t")
    message = str(caught.value)
    assert "eks-gpu-slicing" in message
    assert "  - sharing.default.replicas" in message


def test_every_gpu_family_required_by_the_product_is_allowed():
    for family in ("g4dn", "g5", "g6", "g6e", "p4d", "p5"):
        assert family in facts.GPU_FAMILIES


@pytest.mark.parametrize("instance_type", sorted(facts.GPU_INSTANCES))
def test_every_known_gpu_instance_type_is_accepted(instance_type):
    settings = load_settings(
        with_changes(gpuNodeGroups={"g": t4(instanceType=instance_type)}), stack="t"
    )
    assert settings.gpu_node_groups["g"].instance.gpus >= 1


def test_existing_vpc_is_accepted():
    settings = load_settings(
        with_changes(
            network={
                "vpcId": "vpc-0abc12345",
                "privateSubnetIds": ["subnet-0abc1234", "subnet-0abc1235"],
                "publicSubnetIds": ["subnet-0abc1236"],
            }
        ),
        stack="t",
    )
    assert not settings.network.create_vpc


def test_decode_config_value_keeps_strings_and_parses_objects():
    # The engine passes every value as text; a version must not become the float 1.35.
    assert decode_config_value("kubernetesVersion", "1.35") == "1.35"
    assert decode_config_value("clusterName", "123") == "123"
    assert decode_config_value("protect", "true") is True
    assert decode_config_value("sharing", '{"default": {"replicas": 4}}') == {
        "default": {"replicas": 4}
    }
    assert decode_config_value("protect", "not json") == "not json"


def test_warnings_name_costly_or_risky_choices():
    settings = load_settings(
        with_changes(
            kubernetesVersion="1.33",
            protect=True,
            sharing={"default": {"replicas": 2}, "unused": {"replicas": 3}},
            devicePlugin={"chartVersion": "0.19.0"},
            demoWorkload={"enabled": True, "replicas": 50},
        ),
        stack="t",
    )
    warnings = "\n".join(settings.warnings(dt.date(2026, 11, 28)))
    assert "extended support" in warnings
    assert "0.0.0.0/0" in warnings
    assert "0.19.0" in warnings
    assert "unused" in warnings
    assert "demoWorkload.replicas (50)" in warnings and "4 virtual GPUs" in warnings


def test_standard_support_ending_soon_is_warned():
    settings = load_settings(with_changes(kubernetesVersion="1.34"), stack="t")
    assert any("2026-12-02" in w for w in settings.warnings(dt.date(2026, 11, 28)))
    assert not settings.warnings(dt.date(2026, 1, 1))


def test_a_private_only_endpoint_is_accepted_with_either_kind_of_private_access():
    for access in (
        {"privateAccessCidrs": ["10.100.0.0/16"]},
        {"privateAccessSecurityGroupIds": ["sg-0123456789abcdef0"]},
    ):
        settings = load_settings(
            with_changes(clusterEndpoint={"publicAccess": False, **access}), stack="t"
        )
        assert settings.cluster_endpoint.public_access is False


def cidr_keys() -> list[str]:
    """Every key of the settings models that takes a CIDR or a list of them (by name: the
    reference's type column, generated from the models, says only "string")."""
    from eks_gpu_slicing.review.generate import config_keys

    return [k.path for k in config_keys() if k.name.endswith(("Cidrs", "cidrBlock"))]


@pytest.mark.parametrize("key", cidr_keys())
def test_a_cidr_without_prefix_length_is_refused_by_key(key):
    """`10.100.0.0` would reach AWS as written (ipaddress alone reads it as a /32)."""
    section, name = key.split(".")
    value = "10.100.0.0" if name == "cidrBlock" else ["10.100.0.0"]
    (problem,) = problems_of(with_changes(**{section: {name: value}}))
    assert problem.startswith(f"{key}: '10.100.0.0' is not a CIDR block")
    assert "no prefix length" in problem


def test_cidr_keys_are_found_in_the_docs():
    assert cidr_keys() == [
        "network.cidrBlock",
        "clusterEndpoint.publicAccessCidrs",
        "clusterEndpoint.privateAccessCidrs",
    ]


def support_warnings(version: str, today: dt.date) -> list[str]:
    settings = load_settings(with_changes(kubernetesVersion=version), stack="t")
    return [w for w in settings.warnings(today) if w.startswith("kubernetesVersion")]


def test_support_warnings_follow_the_day_they_are_given():
    """EKS's calendar moves a version from standard to extended support (billed higher) on its
    end-of-standard-support day, and stops supporting it a year later: the warning is the one
    for the day it is given, never one that day has made false."""
    # 1.34: standard support ends 2026-12-02, extended support 2027-12-02.
    assert support_warnings("1.34", dt.date(2026, 9, 1)) == []
    (soon,) = support_warnings("1.34", dt.date(2026, 12, 1))
    assert "standard support ends 2026-12-02; plan the upgrade" in soon
    for day in (dt.date(2026, 12, 2), dt.date(2026, 12, 6), dt.date(2027, 12, 1)):
        (extended,) = support_warnings("1.34", day)
        assert "is in EKS extended support since 2026-12-02 until 2027-12-02" in extended
        assert "higher hourly rate" in extended and "ends 2026-12-02" not in extended
    (ended,) = support_warnings("1.34", dt.date(2027, 12, 2))
    assert "support ended 2027-12-02" in ended and "creates no cluster" in ended
    # 1.33 was in standard support before 2026-07-29, 1.31 left extended support 2026-11-26.
    assert support_warnings("1.33", dt.date(2026, 1, 1)) == []
    assert "extended support since 2026-07-29" in support_warnings("1.33", dt.date(2026, 12, 6))[0]
    assert "support ended 2026-11-26" in support_warnings("1.31", dt.date(2026, 12, 6))[0]
    # A version whose end of standard support is not announced yet is never warned about.
    assert support_warnings("1.36", dt.date(2030, 1, 1)) == []


def test_benchmark_defaults_and_warning_for_an_empty_group():
    settings = load_settings(
        with_changes(
            gpuNodeGroups={"t4": t4(), "idle": t4(minSize=0, desiredSize=0)},
            benchmark={"enabled": True},
        ),
        stack="t",
    )
    assert list(settings.benchmark_groups) == ["t4", "idle"]
    group, profile = settings.benchmark_groups["idle"]
    assert group.desired_size == 0 and profile == settings.sharing["default"]
    assert any(
        "gpuNodeGroups.idle has desiredSize 0" in w
        for w in settings.warnings(dt.date(2026, 11, 28))
    )
    off = load_settings(with_changes(), stack="t")
    assert off.benchmark_groups == {}


SHARED_WHOLE_GPU_AND_NOT = {
    "default": {"strategy": "time-slicing", "replicas": 4},
    "mps": {"strategy": "mps", "replicas": 4},
    "slices": {"strategy": "mig", "mig": {"layout": "all-1g.10gb", "strategy": "single"}},
}


def benchmark_stack(**benchmark: Any) -> dict[str, Any]:
    """Three GPU groups: time-sliced, MPS and MIG."""
    return with_changes(
        sharing=SHARED_WHOLE_GPU_AND_NOT,
        gpuNodeGroups={
            "t4": t4(),
            "t4-mps": t4(sharing="mps"),
            "a100-mig": t4(instanceType="p4d.24xlarge", sharing="slices"),
        },
        benchmark={"enabled": True, **benchmark},
    )


def test_benchmark_leaves_mps_and_mig_groups_out_of_its_default_and_says_so():
    settings = load_settings(benchmark_stack(), stack="t")
    assert list(settings.benchmark_groups) == ["t4"]
    (warning,) = [w for w in settings.warnings(dt.date(2026, 11, 28)) if "benchmark" in w]
    assert "a100-mig, t4-mps" in warning


@pytest.mark.parametrize(("group", "why"), [("t4-mps", "is MPS"), ("a100-mig", "is MIG")])
def test_benchmark_refuses_a_chosen_mps_or_mig_group(group, why):
    with pytest.raises(ConfigError) as err:
        load_settings(benchmark_stack(nodeGroups=["t4", group]), stack="t")
    (problem,) = err.value.problems
    assert problem.startswith(f"benchmark.nodeGroups: {group}: ")
    assert why in problem


def test_more_virtual_gpus_than_the_node_can_run_pods_is_warned():
    # A g4dn.xlarge runs at most 29 pods with the VPC CNI.
    settings = load_settings(with_changes(sharing={"default": {"replicas": 40}}), stack="t")
    warnings = settings.warnings(dt.date(2026, 11, 28))
    assert any(
        "gpuNodeGroups.t4: 40 virtual GPUs per node" in w and "29 pods" in w for w in warnings
    )
    fine = load_settings(with_changes(sharing={"default": {"replicas": 26}}), stack="t")
    assert not any("virtual GPUs per node" in w for w in fine.warnings(dt.date(2026, 11, 28)))
