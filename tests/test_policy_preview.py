"""The policy pack in a preview, where some inputs are not known yet.

The requests go through pulumi-policy's own analyzer servicer, as `pulumi preview --policy-pack`
sends them: properties in a protobuf Struct, an unknown value as the engine's sentinel string.
The servicer wraps the properties in its unknown-checking proxy and turns an UnknownValueError
into "can't run policy ... during preview". A rule must still run when an unknown value is one
it does not read (a role ARN, subnet IDs, a KMS key on a new stack), and be skipped, naming the
value, when it does read it.
"""

from __future__ import annotations

import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime import proto
from pulumi_policy import EnforcementLevel
from pulumi_policy.policy import _PolicyAnalyzerServicer
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, UnknownValueError, unknown_checking_proxy

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.device_plugin import config_map_data
from eks_gpu_slicing.builders.workloads import (
    gpu_node_group_labels,
    gpu_node_labels,
    gpu_node_taints,
)
from eks_gpu_slicing.review import policy_rules as pr
from eks_gpu_slicing.review.policy_pack import PACK_NAME, policies
from eks_gpu_slicing.settings import SharingProfile

UNKNOWN = UNKNOWN_STRING_VALUE  # what the engine sends for an Output of a Python program
CANT_RUN = "can't run policy"
MNG = "eks:index:ManagedNodeGroup"
HELM = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def _struct(props: dict) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(props)
    return s


def _urn(type_: str, name: str, stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::eks-gpu-slicing::{type_}::{name}"


def _servicer() -> _PolicyAnalyzerServicer:
    return _PolicyAnalyzerServicer(PACK_NAME, "1.0.0", policies(), EnforcementLevel.MANDATORY)


def _by_policy(response) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(violations, skipped): the diagnostics' messages by policy name."""
    violations: dict[str, list[str]] = {}
    skipped: dict[str, list[str]] = {}
    for d in response.diagnostics:
        target = skipped if d.message.startswith(CANT_RUN) else violations
        target.setdefault(d.policyName, []).append(d.message)
    return violations, skipped


def analyze(type_: str, props: dict, *, name: str = "r", protect: bool = False):
    request = proto.AnalyzeRequest(
        type=type_,
        properties=_struct(props),
        urn=_urn(type_, name),
        name=name,
        options=proto.AnalyzerResourceOptions(protect=protect),
    )
    return _by_policy(_servicer().Analyze(request, None))


def analyze_stack(resources: list[tuple[str, str, dict]]):
    request = proto.AnalyzeStackRequest(
        resources=[
            proto.AnalyzerResource(
                type=type_, properties=_struct(props), urn=_urn(type_, name), name=name
            )
            for type_, name, props in resources
        ]
    )
    return _by_policy(_servicer().AnalyzeStack(request, None))


def gpu_group(**override) -> dict:
    return {
        "clusterName": UNKNOWN,
        "nodeRoleArn": UNKNOWN,
        "amiType": "AL2023_x86_64_NVIDIA",
        "instanceTypes": ["g4dn.xlarge"],
        "labels": {**gpu_node_labels("default"), "topology.example.com/zone": UNKNOWN},
        "taints": gpu_node_taints(),
        "enableIMDSv2": True,
        "subnetIds": ["subnet-private"],
        **override,
    }


def plugin_data(**replicas: int) -> dict[str, str]:
    data = config_map_data(
        {name: SharingProfile(strategy="time-slicing", replicas=4) for name in replicas}
    )
    # Settings refuse what the rules catch; edit the rendered files to get past them.
    out = {}
    for name, n in replicas.items():
        config = yaml.safe_load(data[name])
        config["sharing"]["timeSlicing"]["resources"][0]["replicas"] = n
        out[name] = yaml.safe_dump(config)
    return out


def mig_labels() -> dict[str, str]:
    profile = SharingProfile(strategy="mig", mig={"layout": "all-1g.10gb", "strategy": "single"})
    return gpu_node_group_labels("h100", profile)


def mps_on_mig_data() -> dict[str, str]:
    """A MIG entry whose time-slicing was edited into MPS (settings refuse it)."""
    profile = SharingProfile(
        strategy="mig", replicas=2, mig={"layout": "all-1g.10gb", "strategy": "mixed"}
    )
    config = yaml.safe_load(config_map_data({"h100": profile})["h100"])
    config["sharing"] = {"mps": config["sharing"]["timeSlicing"]}
    return {"h100": yaml.safe_dump(config)}


def pod_spec(image: str, **env_value) -> dict:
    container = {"name": "c", "image": image, "env": [{"name": "ROLE", "value": UNKNOWN}]}
    return {
        "metadata": {"namespace": UNKNOWN},
        "spec": {"template": {"spec": {"containers": [container], **env_value}}},
    }


# (type, properties with unknowns the rule does not read, the policy, words in its violation)
STILL_REPORTED = [
    pytest.param(
        MNG,
        gpu_group(amiType="AL2023_x86_64_STANDARD", subnetIds=UNKNOWN),
        "gpu-node-group-setup",
        "NVIDIA AMI",
        id="node group: role ARN, cluster, subnets and a label unknown",
    ),
    pytest.param(
        "aws:eks/nodeGroup:NodeGroup",
        gpu_group(enableIMDSv2=None, launchTemplate={"id": UNKNOWN, "version": UNKNOWN}, taints=[]),
        "gpu-node-group-setup",
        "taint",
        id="aws node group: its launch template's id unknown",
    ),
    pytest.param(
        "eks:index:Cluster",
        {
            "encryptionConfigKeyArn": "arn:aws:kms:us-west-2:123456789012:key/k",
            "enabledClusterLogTypes": ["api"],
            "vpcId": UNKNOWN,
            "privateSubnetIds": UNKNOWN,
            "instanceRoles": UNKNOWN,
        },
        "cluster-logs",
        "audit",
        id="cluster: the VPC and roles unknown",
    ),
    pytest.param(
        "aws:eks/cluster:Cluster",
        {
            "roleArn": UNKNOWN,
            "encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "k"}},
            "vpcConfig": {"subnetIds": UNKNOWN, "securityGroupIds": UNKNOWN},
            "enabledClusterLogTypes": [],
        },
        "cluster-logs",
        "audit",
        id="aws cluster: role and subnets unknown",
    ),
    pytest.param(
        HELM,
        {
            "chart": facts.KARPENTER_CHART,
            "version": "^1.14",
            "namespace": "karpenter",
            "values": {
                "settings": {"clusterName": UNKNOWN, "interruptionQueue": UNKNOWN},
                "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": UNKNOWN}},
            },
        },
        "chart-pinned",
        "exact version",
        id="chart: its IRSA role and cluster name unknown",
    ),
    pytest.param(
        HELM,
        {
            "chart": facts.DCGM_EXPORTER_CHART,
            "version": "4.8.2",
            "namespace": "gpu-monitoring",
            "values": {
                "image": {"repository": "nvcr.io/nvidia/k8s/dcgm-exporter", "tag": "latest"},
                "serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": UNKNOWN}},
            },
        },
        "image-tagged",
        "latest",
        id="chart values: an image next to an unknown role",
    ),
    pytest.param(
        DEPLOYMENT,
        pod_spec("busybox", serviceAccountName=UNKNOWN),
        "image-tagged",
        "no tag",
        id="deployment: a container's env and the namespace unknown",
    ),
    pytest.param(
        pr.CONFIG_MAP,
        {"metadata": UNKNOWN, "data": plugin_data(default=1)},
        "sharing-replicas",
        "replicas 1",
        id="plugin config map: its metadata unknown",
    ),
    pytest.param(
        MNG,
        gpu_group(
            instanceTypes=["g6e.xlarge"],
            labels={**mig_labels(), "topology.example.com/zone": UNKNOWN},
            subnetIds=UNKNOWN,
        ),
        "mig-capable-instances",
        "instance types without MIG ['g6e.xlarge']",
        id="MIG node group: role ARN, cluster, subnets and a label unknown",
    ),
    pytest.param(
        pr.NODE_POOL,
        {
            "metadata": {"name": UNKNOWN},
            "spec": {
                "template": {
                    "metadata": {"labels": mig_labels()},
                    "spec": {
                        "nodeClassRef": {"name": UNKNOWN},
                        "requirements": [
                            {
                                "key": facts.INSTANCE_TYPE_LABEL,
                                "operator": "In",
                                "values": ["g5.xlarge"],
                            },
                            {"key": "topology.kubernetes.io/zone", "values": UNKNOWN},
                        ],
                    },
                }
            },
        },
        "mig-capable-instances",
        "without MIG ['g5.xlarge']",
        id="MIG node pool: its name, node class and a zone requirement unknown",
    ),
    pytest.param(
        pr.CONFIG_MAP,
        {"metadata": UNKNOWN, "data": mps_on_mig_data()},
        "no-mps-on-mig",
        "does not support MPS on MIG",
        id="MIG plugin config map: its metadata unknown",
    ),
    pytest.param(
        pr.NODE_CLASS,
        {
            "spec": {
                "role": UNKNOWN,
                "subnetSelectorTerms": [{"tags": {"karpenter.sh/discovery": UNKNOWN}}],
                "amiSelectorTerms": [{"id": "ami-0123"}],
            }
        },
        "node-class-nvidia-ami",
        "alias",
        id="node class: its role and discovery tag unknown",
    ),
    pytest.param(
        pr.LAUNCH_TEMPLATE,
        {
            "userData": UNKNOWN,
            "vpcSecurityGroupIds": UNKNOWN,
            "metadataOptions": {"httpTokens": "optional", "httpPutResponseHopLimit": UNKNOWN},
        },
        "imdsv2-required",
        "optional",
        id="launch template: user data and security groups unknown",
    ),
]


@pytest.mark.parametrize(("type_", "props", "policy", "words"), STILL_REPORTED)
def test_an_unknown_the_rule_does_not_read_leaves_every_rule_running(type_, props, policy, words):
    violations, skipped = analyze(type_, props)
    assert skipped == {}, skipped
    assert any(words in m for m in violations.get(policy, [])), violations


# (type, properties with an unknown that rules read, the policies skipped, the unknown's path)
SKIPPED = [
    pytest.param(MNG, gpu_group(amiType=UNKNOWN), {"gpu-node-group-setup"}, ".amiType", id="ami"),
    pytest.param(
        "eks:index:Cluster",
        {
            "encryptionConfigKeyArn": UNKNOWN,
            "enabledClusterLogTypes": list(facts.CLUSTER_LOG_TYPES),
        },
        # The stack's own KMS key, new on a first preview: only this rule needs it.
        {"cluster-secrets-encrypted"},
        ".encryptionConfigKeyArn",
        id="kms key",
    ),
    pytest.param(
        HELM,
        {"chart": "x", "version": UNKNOWN, "namespace": "x"},
        {"chart-pinned"},
        ".version",
        id="chart version",
    ),
    pytest.param(
        HELM,
        {
            "chart": "x",
            "version": "1.0.0",
            "namespace": "x",
            "values": {"image": {"repository": "nvcr.io/x", "tag": UNKNOWN}},
        },
        {"image-tagged"},
        ".values.image.tag",
        id="image tag",
    ),
    pytest.param(
        DEPLOYMENT, pod_spec(UNKNOWN), {"image-tagged"}, ".containers.0.image", id="image"
    ),
    pytest.param(
        MNG,
        gpu_group(instanceTypes=UNKNOWN, labels=mig_labels()),
        {"gpu-node-group-setup", "mig-capable-instances"},
        ".instanceTypes",
        id="MIG group's instance types",
    ),
    pytest.param(
        pr.CONFIG_MAP,
        {"data": {"default": UNKNOWN}},
        {"sharing-replicas", "time-slicing-fail-requests", "no-mps-on-mig"},
        ".data.default",
        id="config entry",
    ),
    pytest.param(
        pr.LAUNCH_TEMPLATE,
        {"metadataOptions": {"httpTokens": UNKNOWN}},
        {"imdsv2-required"},
        ".metadataOptions.httpTokens",
        id="http tokens",
    ),
]


@pytest.mark.parametrize(("type_", "props", "policies_", "path"), SKIPPED)
def test_an_unknown_a_rule_reads_skips_those_rules_only(type_, props, policies_, path):
    _, skipped = analyze(type_, props)
    assert set(skipped) == policies_, skipped
    for messages in skipped.values():
        assert path in messages[0] and "during preview" in messages[0], messages


def test_the_rule_sees_pulumi_policys_proxy_and_raises_its_error():
    """The adapter hands the rules the proxy itself, so the framework's own error is what a
    read of an unknown value raises, and nothing else is read."""
    props = unknown_checking_proxy(
        {"instanceTypes": ["g5.xlarge"], "amiType": UNKNOWN, "nodeRoleArn": UNKNOWN}
    )
    args = type("Args", (), {"resource_type": MNG, "props": props, "urn": "u", "name": "g"})
    by_name = {p.name: p for p in policies()}
    with pytest.raises(UnknownValueError) as raised:
        by_name["gpu-node-group-setup"].validate(args, lambda message, urn: None)
    assert raised.value.props == ["amiType"]
    reported = []
    by_name["imdsv2-required"].validate(args, lambda message, urn: reported.append(message))
    assert reported and "IMDSv2" in reported[0]


def test_every_resource_rule_runs_past_an_unknown_it_does_not_need():
    """Each rule's own failing cases, with an unknown top-level output added beside them."""
    from tests.test_policy_rules import CASES

    for rule, _, failing, words in CASES:
        props = unknown_checking_proxy({**failing.props, "someOutputArn": UNKNOWN})
        wrapped = pr.Resource(failing.type, failing.name, props, failing.urn, failing.protect)
        problems = rule(wrapped)
        assert any(words in p for p in problems), (rule.__name__, problems)


# --- Stack policies --------------------------------------------------------------------------


def vpc(public=("subnet-public",)) -> tuple[str, str, dict]:
    return (
        "awsx:ec2:Vpc",
        "vpc",
        {
            "publicSubnetIds": list(public) if isinstance(public, tuple) else public,
            "privateSubnetIds": UNKNOWN,
            "vpcId": UNKNOWN,
        },
    )


def test_stack_policy_still_finds_nodes_in_public_subnets_past_unrelated_unknowns():
    violations, skipped = analyze_stack(
        [vpc(), (MNG, "gpu", gpu_group(subnetIds=["subnet-public"]))]
    )
    assert "nodes-in-private-subnets" not in skipped, skipped
    assert any("subnet-public" in m for m in violations["nodes-in-private-subnets"])


def test_stack_policy_is_skipped_when_the_subnets_it_compares_are_unknown():
    _, skipped = analyze_stack([vpc(public=UNKNOWN), (MNG, "gpu", gpu_group())])
    assert ".publicSubnetIds" in skipped["nodes-in-private-subnets"][0]


def test_gpu_memory_rule_reads_only_the_profiles_the_node_groups_use():
    # aws-auth style: a ConfigMap whose data holds a role ARN, unknown on a new stack.
    other = (pr.CONFIG_MAP, "aws-auth", {"data": {"mapRoles": UNKNOWN}})
    plugin = (pr.CONFIG_MAP, "plugin", {"data": {**plugin_data(default=20), "unused": UNKNOWN}})
    group = (MNG, "t4", gpu_group())
    violations, skipped = analyze_stack([other, plugin, group])
    assert "gpu-memory-per-virtual-gpu" not in skipped, skipped
    per_virtual_gpu = facts.GPU_INSTANCES["g4dn.xlarge"].gpu_memory_mib / 20
    messages = violations["gpu-memory-per-virtual-gpu"]
    assert any(f"{per_virtual_gpu:.0f} MiB" in m for m in messages), violations

    _, skipped = analyze_stack([(pr.CONFIG_MAP, "plugin", {"data": {"default": UNKNOWN}}), group])
    assert ".data.default" in skipped["gpu-memory-per-virtual-gpu"][0]
