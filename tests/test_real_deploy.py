"""What a real `pulumi up` needs that mocks would otherwise accept (issue 6): who runs it,
the account's zones, the partition, the AWS profile, launch templates, the log group."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import subprocess

import pulumi
import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import choose_zones, same_principal
from eks_gpu_slicing.review.mocks import (
    MOCK_ACCOUNT,
    MOCK_CALLER_ROLE,
    Deployment,
    ProgramMocks,
    RecordingMonitor,
    run_program,
)
from eks_gpu_slicing.settings import ConfigError, load_settings
from eks_gpu_slicing.settings.stack_files import ROOT
from tests.conftest import MINIMAL, engine_config

CLUSTER = "eks:index:Cluster"
NODE_GROUP = "eks:index:ManagedNodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
K8S_PROVIDER = "pulumi:providers:kubernetes"


def deploy(raw: dict, *, region: str = "us-west-2", mocks: ProgramMocks | None = None, **config):
    """Run the program for raw settings plus `aws:*` config, in `region`."""
    engine = engine_config(raw) | {"aws:region": region} | config
    monitor = RecordingMonitor(mocks or ProgramMocks(region=region))
    return run_program(engine, stack="dev", monitor=monitor)


def run_until_error(raw: dict, *, region: str) -> tuple[pulumi.RunError, RecordingMonitor]:
    monitor = RecordingMonitor(ProgramMocks(region=region))
    with pytest.raises(pulumi.RunError) as raised:
        run_program(engine_config(raw) | {"aws:region": region}, stack="dev", monitor=monitor)
    return raised.value, monitor


def minimal(**changes) -> dict:
    raw = copy.deepcopy(MINIMAL)
    raw.update(changes)
    return raw


# --- 1. The caller's own admin access entry ---------------------------------------------------

CALLER_ROLE_ARN = f"arn:aws:iam::{MOCK_ACCOUNT}:role/{MOCK_CALLER_ROLE}"
OTHER_ROLE_ARN = f"arn:aws:iam::{MOCK_ACCOUNT}:role/ci-deployer"


def test_callers_role_gets_no_second_admin_entry_and_a_warning(caplog):
    raw = minimal(adminRoleArns=[CALLER_ROLE_ARN, OTHER_ROLE_ARN])
    with caplog.at_level(logging.WARNING):
        deployment = deploy(raw)
    entries = deployment.one(CLUSTER).inputs["accessEntries"]
    # Only the other role; its key keeps its position in the list, so it is never renamed.
    assert {key: e["principalArn"] for key, e in entries.items()} == {"admin-1": OTHER_ROLE_ARN}
    # The assumed-role session was resolved to its role through IAM.
    (session,) = deployment.calls_of("aws:iam/getSessionContext:getSessionContext")
    assert ":assumed-role/" in session["arn"]
    assert any(CALLER_ROLE_ARN in r.getMessage() for r in caplog.records)


def test_caller_matched_with_a_role_path_and_as_an_iam_user():
    # SSO roles live under a path; the session ARN never shows it.
    with_path = (
        f"arn:aws:iam::{MOCK_ACCOUNT}:role/aws-reserved/sso.amazonaws.com/{MOCK_CALLER_ROLE}"
    )
    entries = deploy(minimal(adminRoleArns=[with_path])).one(CLUSTER).inputs.get("accessEntries")
    assert not entries

    user = f"arn:aws:iam::{MOCK_ACCOUNT}:user/alice"
    mocks = ProgramMocks(caller_arn=user)
    deployment = deploy(minimal(adminRoleArns=[user, OTHER_ROLE_ARN]), mocks=mocks)
    assert list(deployment.one(CLUSTER).inputs["accessEntries"]) == ["admin-1"]
    # A user is no session: nothing to resolve.
    assert not deployment.calls_of("aws:iam/getSessionContext:getSessionContext")


def test_same_principal_compares_account_kind_and_name():
    assert same_principal(
        CALLER_ROLE_ARN, f"arn:aws:iam::{MOCK_ACCOUNT}:role/x/y/{MOCK_CALLER_ROLE}"
    )
    assert not same_principal(CALLER_ROLE_ARN, f"arn:aws:iam::210987654321:role/{MOCK_CALLER_ROLE}")
    assert not same_principal(
        CALLER_ROLE_ARN, f"arn:aws:iam::{MOCK_ACCOUNT}:user/{MOCK_CALLER_ROLE}"
    )


# --- 3. The system group is never empty --------------------------------------------------------


@pytest.mark.parametrize("key", ["minSize", "desiredSize"])
def test_system_group_needs_a_node_for_coredns(key):
    raw = minimal(systemNodeGroup={"minSize": 1, "desiredSize": 1, "maxSize": 2} | {key: 0})
    with pytest.raises(ConfigError, match=rf"systemNodeGroup\.{key}: must be at least 1"):
        load_settings(raw, stack="dev")


# --- 4. The stack's AWS profile reaches the kubeconfig -----------------------------------------


def test_aws_profile_is_in_the_providers_kubeconfig_and_the_output():
    deployment = deploy(copy.deepcopy(MINIMAL), **{"aws:profile": "gpu-admin"})
    (call,) = deployment.calls_of("eks:index:Cluster/getKubeconfig")
    assert call["profileName"] == "gpu-admin"
    for kubeconfig in (
        deployment.one(K8S_PROVIDER).inputs["kubeconfig"],
        deployment.outputs["kubeconfig"],
    ):
        env = json.loads(kubeconfig)["users"][0]["user"]["exec"]["env"]
        assert {"name": "AWS_PROFILE", "value": "gpu-admin"} in env
    assert "kubeconfig" in deployment.secret_outputs


def test_without_a_profile_the_plain_kubeconfig_is_used():
    deployment = deploy(copy.deepcopy(MINIMAL))
    assert not deployment.calls_of("eks:index:Cluster/getKubeconfig")
    env = json.loads(deployment.one(K8S_PROVIDER).inputs["kubeconfig"])["users"][0]["user"]
    assert "AWS_PROFILE" not in json.dumps(env)


# --- 5. Availability zones EKS accepts ---------------------------------------------------------


def test_zones_skip_the_one_eks_refuses():
    # us-east-1e is use1-az3 in this account: the fifth zone comes after it.
    deployment = deploy(minimal(network={"availabilityZoneCount": 5}), region="us-east-1")
    names = deployment.one("awsx:ec2:Vpc").inputs["availabilityZoneNames"]
    assert names == ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1f"]
    (lookup,) = deployment.calls_of("aws:index/getAvailabilityZones:getAvailabilityZones")
    assert set(lookup["excludeZoneIds"]) == {"use1-az3", "usw1-az2", "cac1-az3"}
    assert lookup["state"] == "available"


@pytest.mark.parametrize(("region", "count", "usable"), [("us-west-2", 5, 4), ("us-west-1", 3, 2)])
def test_too_few_zones_fail_before_anything_is_registered(region, count, usable):
    error, monitor = run_until_error(
        minimal(network={"availabilityZoneCount": count}), region=region
    )
    assert "network.availabilityZoneCount" in str(error)
    assert f"only {usable}" in str(error)
    assert monitor.registrations == {}


def test_existing_vpc_needs_no_zone_lookup():
    network = {
        "vpcId": "vpc-0abc12345",
        "privateSubnetIds": ["subnet-0abc1234", "subnet-0abc1235"],
    }
    deployment = deploy(minimal(network=network), region="us-west-1")
    assert not deployment.calls_of("aws:index/getAvailabilityZones:getAvailabilityZones")


def test_choose_zones_keeps_the_regions_order():
    assert choose_zones(["b", "a", "c"], 2, "r") == ("a", "b")


def test_too_few_zones_name_the_region_and_a_count_that_works():
    minimum = facts.EKS_MIN_AVAILABILITY_ZONES
    with pytest.raises(ValueError) as caught:
        choose_zones(["us-west-1b", "us-west-1a"], minimum + 1, "us-west-1")
    message = str(caught.value)
    assert message.startswith("network.availabilityZoneCount:")
    assert "us-west-1 has only 2" in message and message.endswith(f"set it to {minimum}")
    # The zone EKS refuses there is named; those of other regions are not.
    assert "usw1-az2" in message and "use1-az3" not in message
    four = [f"us-west-2{c}" for c in "abcd"]
    with pytest.raises(ValueError) as caught:
        choose_zones(four, 5, "us-west-2")
    message = str(caught.value)
    assert message.endswith(f"set it to a value from {minimum} to 4")
    assert "or less" not in message and "refuses" not in message


@pytest.mark.parametrize("usable", [[], ["eu-west-1a"]])
def test_a_region_with_fewer_zones_than_eks_needs_cannot_host_the_stack(usable):
    with pytest.raises(ValueError) as caught:
        choose_zones(usable, facts.EKS_MIN_AVAILABILITY_ZONES, "eu-west-1")
    message = str(caught.value)
    assert message.startswith("aws:region: eu-west-1 has only")
    assert "eu-west-1 cannot host this stack" in message and "set it to" not in message


# --- 6. Profile names the chart can render -----------------------------------------------------


@pytest.mark.parametrize("name", ["10", "true", "on", "no", "null", "y", "1gpu"])
def test_profile_names_yaml_would_not_read_as_a_string_are_refused(name):
    raw = minimal(sharing={name: {"strategy": "time-slicing", "replicas": 4}})
    raw["gpuNodeGroups"]["t4"]["sharing"] = name
    raw["devicePlugin"] = {"defaultProfile": name}
    with pytest.raises(ConfigError, match=rf"sharing: profile names must start .*{name}"):
        load_settings(raw, stack="dev")


def test_ordinary_profile_names_are_kept_as_strings_by_yaml():
    for name in ("default", "a10", "small-slices", "only"):
        assert yaml.safe_load(f"default: {name}")["default"] == name


# --- 7. Our own launch template per managed node group -----------------------------------------


def templates_by_group(deployment: Deployment) -> dict:
    templates = {
        lt.name.removesuffix("-launch-template"): lt for lt in deployment.of_type(LAUNCH_TEMPLATE)
    }
    return {group.name: (group, templates[group.name]) for group in deployment.of_type(NODE_GROUP)}


def test_every_node_group_runs_its_own_tagged_imdsv2_launch_template():
    deployment = deploy(minimal(tags={"team": "ml"}))
    pairs = templates_by_group(deployment)
    assert set(pairs) == {"system", "gpu-t4"}
    for group, template in pairs.values():
        lt = template.inputs
        # The template's ID and the version it is at now (a string, as EKS takes it).
        assert group.inputs["launchTemplate"] == {
            "id": f"{template.name}-id",
            "version": str(template.outputs["latestVersion"]),
        }
        assert template.urn in group.dependencies
        assert lt["metadataOptions"] == {
            "httpEndpoint": "enabled",
            "httpTokens": "required",
            "httpPutResponseHopLimit": 1,
        }
        tagged = {spec["resourceType"]: spec["tags"] for spec in lt["tagSpecifications"]}
        assert set(tagged) == {"instance", "volume", "network-interface"}
        for tags in tagged.values():
            assert tags == {"project": facts.PROJECT, "stack": "dev", "team": "ml"}
        (disk,) = lt["blockDeviceMappings"]
        assert disk["deviceName"] == "/dev/xvda"
        assert disk["ebs"]["volumeType"] == "gp3"
        assert disk["ebs"]["encrypted"] == "true"
        assert disk["ebs"]["deleteOnTermination"] == "true"
        # EKS picks the AMI from amiType and bootstraps the node itself.
        assert "imageId" not in lt and "userData" not in lt
        for forbidden in ("diskSize", "enableIMDSv2"):
            assert forbidden not in group.inputs
    assert pairs["gpu-t4"][1].inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 100
    assert pairs["system"][1].inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 50


def test_a_disk_change_only_changes_the_launch_template():
    before = deploy(copy.deepcopy(MINIMAL))
    raw = copy.deepcopy(MINIMAL)
    raw["gpuNodeGroups"]["t4"]["diskSizeGiB"] = 200
    after = deploy(raw)
    group_before, lt_before = templates_by_group(before)["gpu-t4"]
    group_after, lt_after = templates_by_group(after)["gpu-t4"]
    # Same group inputs (no replacement trigger), same template resource, new contents:
    # the provider writes a new template version, which EKS rolls out node by node.
    assert group_before.inputs == group_after.inputs
    assert lt_before.name == lt_after.name and "name" not in lt_after.inputs
    assert lt_after.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 200
    assert lt_after.inputs["updateDefaultVersion"] is True


# --- 8, 9. Security groups and the control-plane log group -------------------------------------


def test_cluster_skips_unused_security_groups_and_logs_to_its_own_group():
    deployment = deploy(minimal(clusterLogRetentionDays=30))
    cluster = deployment.one(CLUSTER)
    assert cluster.inputs["skipDefaultSecurityGroups"] is True
    log_group = deployment.one(LOG_GROUP)
    assert log_group.inputs["name"] == "/aws/eks/eks-gpu-slicing-dev/cluster"
    assert log_group.inputs["retentionInDays"] == 30
    assert log_group.urn in cluster.dependencies


def test_log_retention_defaults_to_90_days_and_must_be_a_cloudwatch_value():
    assert deploy(copy.deepcopy(MINIMAL)).one(LOG_GROUP).inputs["retentionInDays"] == 90
    with pytest.raises(ConfigError, match="clusterLogRetentionDays: 45 is not"):
        load_settings(minimal(clusterLogRetentionDays=45), stack="dev")


# --- 10. The partition -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "partition", "ec2"),
    [
        ("us-west-2", "aws", "ec2.amazonaws.com"),
        ("cn-north-1", "aws-cn", "ec2.amazonaws.com.cn"),
        ("us-gov-west-1", "aws-us-gov", "ec2.amazonaws.com"),
    ],
)
def test_arns_and_principals_follow_the_partition(region, partition, ec2):
    raw = minimal(network={"availabilityZoneCount": 2}, adminRoleArns=[OTHER_ROLE_ARN])
    deployment = deploy(raw, region=region)
    arns = [
        a.inputs["policyArn"]
        for a in deployment.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    ]
    (entry,) = deployment.one(CLUSTER).inputs["accessEntries"].values()
    arns += [p["policyArn"] for p in entry["accessPolicies"].values()]
    assert arns and all(arn.startswith(f"arn:{partition}:") for arn in arns)
    trust = json.loads(deployment.one("aws:iam/role:Role").inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": ec2}


def test_no_source_file_spells_the_commercial_partition_into_an_arn():
    sources = [
        *ROOT.glob("components/*.py"),
        *ROOT.glob("eks_gpu_slicing/*.py"),
        ROOT / "__main__.py",
    ]
    offenders = [p.name for p in sources if p.name != "mocks.py" and '"arn:aws:' in p.read_text()]
    assert offenders == []


# --- 11. Documentation CIDRs ---------------------------------------------------------------------


@pytest.mark.parametrize("cidr", ["203.0.113.0/24", "198.51.100.0/25", "192.0.2.10/32"])
def test_documentation_ranges_are_refused(cidr):
    raw = minimal(
        clusterEndpoint={"publicAccess": True, "publicAccessCidrs": ["10.1.0.0/16", cidr]}
    )
    with pytest.raises(ConfigError, match=r"clusterEndpoint\.publicAccessCidrs: .*RFC 5737"):
        load_settings(raw, stack="dev")


# --- 12. `make up` without the CLIs --------------------------------------------------------------


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_up_without_the_pulumi_cli_says_how_to_install_it(tmp_path):
    # A PATH with make and a shell but no pulumi (CI and this machine have none anyway).
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("make", "sh"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    result = subprocess.run(
        ["make", "-s", "up"],
        cwd=ROOT,
        env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "Pulumi CLI is not installed" in result.stdout
    assert "pulumi.com/docs/install" in result.stdout


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"clusterEndpoint": {"publicAccessCidrs": ["203.0.113.0/24"]}}, "clusterEndpoint."),
        ({"systemNodeGroup": {"minSize": 0, "desiredSize": 0}}, "systemNodeGroup.minSize"),
        ({"clusterLogRetentionDays": 0}, "clusterLogRetentionDays"),
        ({"sharing": {"on": {"replicas": 4}}}, "sharing: profile names"),
    ],
)
def test_new_bad_config_stops_the_program_before_any_resource(change, key):
    monitor = RecordingMonitor(ProgramMocks())
    with pytest.raises(pulumi.RunError, match=key.replace(".", r"\.")):
        run_program(engine_config(minimal(**change)), stack="dev", monitor=monitor)
    assert monitor.registrations == {}
