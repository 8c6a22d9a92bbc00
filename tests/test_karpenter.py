"""Karpenter under mocks: the controller's IAM, queue, Pod Identity and releases; each pool's
EC2NodeClass, NodePool and NodeOverlays, checked strictly against the v1 CRDs of the pinned
karpenter-crd chart (unknown fields are errors); and the bad-config cases."""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import re
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import karpenter as build
from eks_gpu_slicing.builders.workloads import (
    gpu_node_group_labels,
    gpu_node_taints,
    kubernetes_taints,
)
from eks_gpu_slicing.review.helm import value_paths
from eks_gpu_slicing.review.manifests import custom_resource_problems, manifest_of
from eks_gpu_slicing.review.mocks import (
    MOCK_ACCOUNT,
    Deployment,
    ProgramMocks,
    RecordingMonitor,
    run_program,
)
from eks_gpu_slicing.review.validate import main as validate_main
from eks_gpu_slicing.settings import ConfigError, KarpenterNodePoolSettings, load_settings
from eks_gpu_slicing.settings.karpenter import quantity_value
from eks_gpu_slicing.settings.sharing import SharingProfile
from eks_gpu_slicing.settings.stack_files import settings_of_stack
from tests.conftest import MINIMAL, engine_config
from tests.k8s_semantics import selector_matches, tolerates
from tests.test_program import dev_settings

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
KARPENTER_REF = REFERENCE / f"karpenter-{facts.KARPENTER_VERSION}"
needs_reference = pytest.mark.skipif(
    not KARPENTER_REF.is_dir(), reason=f"no upstream Karpenter reference at {KARPENTER_REF}"
)

RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_OVERLAY = "kubernetes:karpenter.sh/v1alpha1:NodeOverlay"
POLICY = "aws:iam/policy:Policy"
ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
CRD_FILES = {
    NODE_CLASS: "karpenter.k8s.aws_ec2nodeclasses.yaml",
    NODE_POOL: "karpenter.sh_nodepools.yaml",
    NODE_OVERLAY: "karpenter.sh_nodeoverlays.yaml",
}


@pytest.fixture(scope="module")
def dev(dev_deployment) -> Deployment:
    return dev_deployment  # shared by the session: read only


def with_karpenter(pools: dict[str, Any], **extra: Any) -> dict[str, Any]:
    raw = copy.deepcopy(MINIMAL)
    raw["karpenter"] = {"enabled": True, "nodePools": pools}
    raw.update(extra)
    return raw


def pool(**overrides: Any) -> dict[str, Any]:
    return {"instanceTypes": ["g5.xlarge"], "limits": {"cpu": 32}, **overrides}


def problems_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="dev")
    return caught.value.problems


# --- Strict CRD schema validation --------------------------------------------------------------


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    """Strict validation against the CRD (the same function `make check` uses): unknown
    fields are errors. (CEL rules: tests/test_render_check.py.)"""
    problems = custom_resource_problems(manifest)
    assert problems is not None, f"no CRD for {manifest['apiVersion']} {manifest['kind']}"
    return problems


@pytest.mark.parametrize("token", [NODE_CLASS, NODE_POOL, NODE_OVERLAY])
def test_every_custom_resource_validates_strictly_against_its_crd(dev, token):
    registrations = dev.of_type(token)
    assert registrations, f"the dev stack registers no {token}"
    for registration in registrations:
        manifest = manifest_of(registration)
        assert manifest["apiVersion"] == token.split(":")[1]
        assert schema_errors(manifest) == []


def test_v1beta1_fields_are_rejected(dev):
    nodepool = manifest_of(dev.one(NODE_POOL))
    moved = copy.deepcopy(nodepool)
    moved["spec"]["disruption"]["expireAfter"] = "720h"  # v1beta1: now template.spec
    assert any("expireAfter" in e for e in schema_errors(moved))
    kubelet = copy.deepcopy(nodepool)
    kubelet["spec"]["template"]["spec"]["kubelet"] = {"maxPods": 58}  # now in EC2NodeClass
    assert any("kubelet" in e for e in schema_errors(kubelet))
    old_ref = copy.deepcopy(nodepool)
    old_ref["spec"]["template"]["spec"]["nodeClassRef"] = {"name": "gpu-g5"}  # v1beta1 shape
    assert any("group" in e for e in schema_errors(old_ref))
    nodeclass = manifest_of(dev.one(NODE_CLASS))
    del nodeclass["spec"]["amiSelectorTerms"]  # optional in v1beta1 (amiFamily was enough)
    assert any("amiSelectorTerms" in e for e in schema_errors(nodeclass))


def test_the_strict_check_catches_misspelt_and_mistyped_fields(dev):
    overlay = manifest_of(dev.one(NODE_OVERLAY))
    overlay["spec"]["capacities"] = overlay["spec"].pop("capacity")
    assert schema_errors(overlay)
    nodeclass = manifest_of(dev.one(NODE_CLASS))
    nodeclass["spec"]["blockDeviceMappings"][0]["ebs"]["volumeSize"] = "100GiB"
    assert schema_errors(nodeclass)
    nodepool = manifest_of(dev.one(NODE_POOL))
    nodepool["spec"]["template"]["spec"]["taints"][0]["effect"] = facts.EKS_NO_SCHEDULE
    assert schema_errors(nodepool)


def test_cel_rules_our_output_could_break(dev):
    """The CRDs' x-kubernetes-validations that apply to what we emit, written out."""
    spec = dev.one(NODE_CLASS).inputs["spec"]
    terms = spec["amiSelectorTerms"]
    assert len(terms) == 1 and set(terms[0]) == {"alias"}  # an alias stands alone
    family, version = terms[0]["alias"].split("@")
    assert family == "al2023" and re.fullmatch(r"v\d{8}", version)  # pinned, never latest
    assert ("role" in spec) != ("instanceProfile" in spec)
    restricted = ("eks:eks-cluster-name", "karpenter.sh/nodepool", "karpenter.sh/nodeclaim")
    assert not any(k in restricted or k.startswith("kubernetes.io/cluster") for k in spec["tags"])
    template = dev.one(NODE_POOL).inputs["spec"]["template"]
    for requirement in template["spec"]["requirements"]:
        assert requirement["operator"] != "In" or requirement["values"]
        assert not requirement["key"].startswith("karpenter.k8s.aws/")
    assert not any("karpenter.sh" in key for key in template["metadata"]["labels"])
    ref = template["spec"]["nodeClassRef"]
    assert all(ref[k] for k in ("group", "kind", "name"))
    for overlay in dev.of_type(NODE_OVERLAY):
        assert not set(overlay.inputs["spec"]["capacity"]) & {"cpu", "memory", "pods"}


# --- Pools as the dev stack has them -------------------------------------------------------


def test_dev_pool_is_the_source_design_on_the_v1_api(dev):
    nodeclass = dev.one(NODE_CLASS).inputs
    assert nodeclass["metadata"]["name"] == "gpu-g5"
    spec = nodeclass["spec"]
    assert spec["amiSelectorTerms"] == [{"alias": f"al2023@{facts.KARPENTER_AL2023_AMI_RELEASE}"}]
    assert spec["role"] == dev.one("aws:iam/role:Role", "karpenter-node-role").outputs["name"]
    discovery = [{"tags": {"karpenter.sh/discovery": "eks-gpu-slicing-dev"}}]
    assert spec["subnetSelectorTerms"] == discovery
    assert spec["securityGroupSelectorTerms"] == discovery
    assert spec["blockDeviceMappings"] == [
        {
            "deviceName": "/dev/xvda",
            "rootVolume": True,
            "ebs": {
                "volumeSize": "100Gi",
                "volumeType": "gp3",
                "encrypted": True,
                "deleteOnTermination": True,
            },
        }
    ]
    assert spec["kubelet"] == {"maxPods": 58}
    assert spec["metadataOptions"]["httpTokens"] == "required"
    assert spec["metadataOptions"]["httpPutResponseHopLimit"] == 1
    assert spec["tags"] == {"project": "eks-gpu-slicing", "stack": "dev"}

    nodepool = dev.one(NODE_POOL).inputs["spec"]
    template = nodepool["template"]
    # The same labels a managed AL2023 node group of the profile gets.
    assert template["metadata"]["labels"] == gpu_node_group_labels(
        "default", SharingProfile(replicas=10)
    )
    assert template["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    ]
    assert template["spec"]["nodeClassRef"] == {
        "group": "karpenter.k8s.aws",
        "kind": "EC2NodeClass",
        "name": "gpu-g5",
    }
    requirements = {r["key"]: r for r in template["spec"]["requirements"]}
    assert requirements["node.kubernetes.io/instance-type"]["values"] == [
        "g5.xlarge",
        "g5.2xlarge",
    ]
    assert requirements["karpenter.sh/capacity-type"]["values"] == ["on-demand"]
    assert template["spec"]["expireAfter"] == "1440h"
    assert nodepool["disruption"] == {
        "consolidationPolicy": "WhenEmpty",
        "consolidateAfter": "5m",
        "budgets": [{"nodes": "1"}],
    }
    assert nodepool["limits"] == {"cpu": 32, "memory": "128Gi"}
    assert nodepool["weight"] == 10


def test_device_plugin_runs_on_pool_nodes_and_loads_their_profile(dev):
    template = dev.one(NODE_POOL).inputs["spec"]["template"]
    labels, taints = template["metadata"]["labels"], template["spec"]["taints"]
    plugin = dev.one(RELEASE, "nvidia-device-plugin").inputs["values"]
    assert selector_matches(plugin["nodeSelector"], labels)
    assert tolerates(plugin["tolerations"], taints)
    assert labels[facts.DEVICE_PLUGIN_CONFIG_LABEL] == "default"
    assert taints == kubernetes_taints(gpu_node_taints())


# --- Capacity that knows about slicing ----------------------------------------------------


def test_overlays_per_gpu_count_for_a_mixed_pool():
    mixed = pool(instanceTypes=["g5.xlarge", "g5.12xlarge", "g5.48xlarge", "g4dn.xlarge"])
    raw = with_karpenter({"mix": mixed}, sharing={"default": {"replicas": 10}})
    deployment = run_program(engine_config(raw), stack="dev")
    overlays = {
        o.inputs["metadata"]["name"]: o.inputs["spec"] for o in deployment.of_type(NODE_OVERLAY)
    }
    assert set(overlays) == {"gpu-mix-1gpu", "gpu-mix-4gpu", "gpu-mix-8gpu"}
    expected = {
        "gpu-mix-1gpu": (["g4dn.xlarge", "g5.xlarge"], "10"),
        "gpu-mix-4gpu": (["g5.12xlarge"], "40"),
        "gpu-mix-8gpu": (["g5.48xlarge"], "80"),
    }
    for name, (types, capacity) in expected.items():
        spec = overlays[name]
        assert spec["capacity"] == {"nvidia.com/gpu": capacity}
        assert spec["requirements"] == [
            {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["gpu-mix"]},
            {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": types},
        ]
        # Every type the overlay matches really has that many GPUs.
        gpus = int(capacity) // 10
        assert all(facts.GPU_INSTANCES[t].gpus == gpus for t in types)
    output = deployment.outputs["karpenterNodePools"]["mix"]
    assert output["virtualGpusPerInstanceType"] == {
        "g5.xlarge": 10,
        "g5.12xlarge": 40,
        "g5.48xlarge": 80,
        "g4dn.xlarge": 10,
    }


def test_renamed_profile_overlays_the_shared_resource_and_unshared_gets_none():
    renamed = SharingProfile(replicas=4, rename_by_default=True)
    settings = KarpenterNodePoolSettings(instance_types=["g5.12xlarge"], limits={"cpu": 48})
    (overlay,) = build.node_overlays(pool_name="p", pool=settings, profile=renamed).values()
    assert overlay["spec"]["capacity"] == {"nvidia.com/gpu.shared": "16"}
    whole = SharingProfile(strategy="none")
    assert build.node_overlays(pool_name="p", pool=settings, profile=whole) == {}


# --- Controller: chart, CRDs, placement, graph -------------------------------------------


def test_controller_and_crd_releases_are_pinned_and_configured(dev):
    crds = dev.one(RELEASE, "karpenter-crd").inputs
    controller = dev.one(RELEASE, "karpenter").inputs
    assert crds["chart"] == "oci://public.ecr.aws/karpenter/karpenter-crd"
    assert controller["chart"] == "oci://public.ecr.aws/karpenter/karpenter"
    assert crds["version"] == controller["version"] == settings_of_stack("dev").karpenter.version
    assert crds["namespace"] == controller["namespace"] == "kube-system"
    assert controller["skipCrds"] is True
    values = controller["values"]
    queue = dev.one("aws:sqs/queue:Queue")
    assert values["settings"] == {
        "clusterName": "eks-gpu-slicing-dev",
        "interruptionQueue": queue.outputs["name"],
        "featureGates": {"nodeOverlay": True},
    }
    assert values["replicas"] == 2


def test_controller_runs_on_system_nodes_only(dev):
    selector = dev.one(RELEASE, "karpenter").inputs["values"]["nodeSelector"]
    system = dev.one("eks:index:ManagedNodeGroup", "system").inputs["labels"]
    assert selector_matches(selector, {**system, "kubernetes.io/os": "linux"})
    for group in dev.of_type("eks:index:ManagedNodeGroup"):
        if group.name != "system":
            assert not selector_matches(
                selector, {**group.inputs["labels"], "kubernetes.io/os": "linux"}
            )
    pool_labels = dev.one(NODE_POOL).inputs["spec"]["template"]["metadata"]["labels"]
    assert not selector_matches(selector, {**pool_labels, "kubernetes.io/os": "linux"})


@needs_reference
def test_every_chart_value_is_read_by_the_chart_templates(dev):
    paths = {
        line.strip()
        for line in (KARPENTER_REF / "values-paths.txt").read_text().splitlines()
        if line.strip()
    }
    assert paths >= facts.KARPENTER_VALUE_PATHS
    values = dev.one(RELEASE, "karpenter").inputs["values"]
    assert set(value_paths(values, facts.KARPENTER_VALUE_PATHS)) <= paths


def test_pool_objects_wait_for_the_controller_which_waits_for_nodes_and_identity(dev):
    release = dev.one(RELEASE, "karpenter")
    for token in (NODE_CLASS, NODE_POOL, NODE_OVERLAY):
        for registration in dev.of_type(token):
            assert release.urn in registration.dependencies, registration.name
    needed = [
        dev.one(RELEASE, "karpenter-crd"),
        dev.one("aws:eks/podIdentityAssociation:PodIdentityAssociation"),
        dev.one("aws:eks/addon:Addon", "karpenter-pod-identity-agent"),
        dev.one("aws:sqs/queuePolicy:QueuePolicy"),
        *(dev.one(ATTACHMENT, f"karpenter-{policy}") for policy in build.CONTROLLER_POLICIES),
    ]
    deps = set(release.dependencies)
    for registration in needed:
        assert registration.urn in deps, registration.name
    # The system nodes and CoreDNS (a dependency on a component is one on its children).
    assert dev.one("eks:index:ManagedNodeGroup", "system").urn in deps
    assert dev.one("aws:eks/addon:Addon", "addons-coredns").urn in deps
    nodeclass = dev.one(NODE_CLASS)
    assert dev.one("aws:eks/accessEntry:AccessEntry").urn in nodeclass.dependencies


def test_the_crd_release_waits_for_the_cluster_alone(dev):
    # CRDs need an API server, not nodes: nothing of the system node group or its add-ons.
    crds = dev.one(RELEASE, "karpenter-crd")
    assert set(crds.dependencies) == {dev.one("eks:index:Cluster").urn}
    controller = dev.one(RELEASE, "karpenter")
    assert dev.one("eks:index:ManagedNodeGroup", "system").urn in controller.dependencies
    assert dev.one("aws:eks/addon:Addon", "addons-coredns").urn in controller.dependencies


def test_both_releases_wait_for_a_namespace_the_stack_creates():
    raw = dev_settings()
    raw["karpenter"]["namespace"] = "karpenter"
    deployment = run_program(engine_config(raw), stack="dev")
    (namespace,) = [
        n
        for n in deployment.of_type("kubernetes:core/v1:Namespace")
        if n.inputs["metadata"]["name"] == "karpenter"
    ]
    crds = deployment.one(RELEASE, "karpenter-crd")
    assert set(crds.dependencies) == {deployment.one("eks:index:Cluster").urn, namespace.urn}
    assert namespace.urn in deployment.one(RELEASE, "karpenter").dependencies


# --- IAM ----------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Sub, !GetAtt, !Ref) as plain values."""


for _tag in ("!Sub", "!GetAtt", "!Ref"):
    _CfnLoader.add_constructor(_tag, lambda loader, node: loader.construct_scalar(node))


def cloudformation() -> dict[str, Any]:
    text = (KARPENTER_REF / "getting-started-cloudformation.yaml").read_text()
    return yaml.load(text, Loader=_CfnLoader)  # a SafeLoader with three tags added


def upstream_controller_policies(substitutions: dict[str, str]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, resource in cloudformation()["Resources"].items():
        if resource["Type"] == "AWS::IAM::ManagedPolicy":
            text = resource["Properties"]["PolicyDocument"]
            for placeholder, value in substitutions.items():
                text = text.replace("${" + placeholder + "}", value)
            assert "${" not in text, text
            out[name.removesuffix("Policy")] = json.loads(text)
    return out


def _actions(document: dict[str, Any]) -> set[str]:
    actions = set()
    for statement in document["Statement"]:
        action = statement["Action"]
        actions |= {action} if isinstance(action, str) else set(action)
    return actions


@needs_reference
def test_controller_policies_match_the_getting_started_cloudformation():
    ours = build.controller_policies(
        cluster_name="c1",
        partition="aws-us-gov",
        region="us-gov-west-1",
        account_id="111122223333",
        node_role_arn="arn:aws-us-gov:iam::111122223333:role/node",
        queue_arn="arn:aws-us-gov:sqs:us-gov-west-1:111122223333:q",
    )
    upstream = upstream_controller_policies(
        {
            "ClusterName": "c1",
            "AWS::Partition": "aws-us-gov",
            "AWS::Region": "us-gov-west-1",
            "AWS::AccountId": "111122223333",
            "KarpenterNodeRole.Arn": "arn:aws-us-gov:iam::111122223333:role/node",
            "KarpenterInterruptionQueue.Arn": "arn:aws-us-gov:sqs:us-gov-west-1:111122223333:q",
        }
    )
    assert set(ours) == set(upstream)  # the six policies
    assert sum(len(_actions(d)) for d in ours.values()) == 32
    for name, document in upstream.items():
        assert ours[name] == document, name


def test_controller_policies_as_registered_are_scoped_to_this_cluster(dev):
    role = dev.one("aws:iam/role:Role", "karpenter-controller-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"Service": "pods.eks.amazonaws.com"},
            "Action": ["sts:AssumeRole", "sts:TagSession"],
        }
    ]
    policies = {
        p.name.removeprefix("karpenter-"): json.loads(p.inputs["policy"])
        for p in dev.of_type(POLICY)
    }
    assert len(policies) == 6
    attached = {
        a.inputs["policyArn"]
        for a in dev.of_type(ATTACHMENT)
        if a.inputs["role"] == role.outputs["name"]
    }
    assert attached == {p.outputs["arn"] for p in dev.of_type(POLICY)}
    node_role = dev.one("aws:iam/role:Role", "karpenter-node-role")
    (pass_role,) = [
        s for s in policies["IAMIntegration"]["Statement"] if s["Action"] == "iam:PassRole"
    ]
    assert pass_role["Resource"] == node_role.outputs["arn"]
    (describe,) = policies["EKSIntegration"]["Statement"]
    assert describe["Resource"] == (
        f"arn:aws:eks:us-west-2:{MOCK_ACCOUNT}:cluster/eks-gpu-slicing-dev"
    )
    (queue_access,) = policies["Interruption"]["Statement"]
    assert queue_access["Resource"] == dev.one("aws:sqs/queue:Queue").outputs["arn"]
    lifecycle = {s["Sid"]: s for s in policies["NodeLifecycle"]["Statement"]}
    terminate = lifecycle["AllowScopedDeletion"]
    assert "ec2:TerminateInstances" in terminate["Action"]
    assert terminate["Condition"]["StringEquals"] == {
        "aws:ResourceTag/kubernetes.io/cluster/eks-gpu-slicing-dev": "owned"
    }


def test_policies_follow_the_partition():
    raw = with_karpenter({"g5": pool()})
    raw["network"] = {"availabilityZoneCount": 2}  # the mocked cn-north-1 has two zones
    deployment = run_program({**engine_config(raw), "aws:region": "cn-north-1"}, stack="dev")
    for policy in deployment.of_type(POLICY):
        text = policy.inputs["policy"]
        assert "arn:aws:" not in text and "arn:aws-cn:" in text, policy.name
    attachments = deployment.of_type(ATTACHMENT)
    assert attachments
    for attachment in attachments:
        assert attachment.inputs["policyArn"].startswith("arn:aws-cn:"), attachment.name


def test_node_role_policies_and_access_entry(dev):
    node_role = dev.one("aws:iam/role:Role", "karpenter-node-role")
    trust = json.loads(node_role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attached = {
        a.inputs["policyArn"]
        for a in dev.of_type(ATTACHMENT)
        if a.inputs["role"] == node_role.outputs["name"]
    }
    assert attached == {
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
        "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore",
    }
    entry = dev.one("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["type"] == "EC2_LINUX"
    assert entry.inputs["principalArn"] == node_role.outputs["arn"]
    assert entry.inputs["clusterName"] == "eks-gpu-slicing-dev"


def test_pod_identity_for_the_controllers_service_account(dev):
    agent = dev.one("aws:eks/addon:Addon", "karpenter-pod-identity-agent").inputs
    assert agent["addonName"] == "eks-pod-identity-agent"
    association = dev.one("aws:eks/podIdentityAssociation:PodIdentityAssociation").inputs
    values = dev.one(RELEASE, "karpenter").inputs["values"]
    assert association["serviceAccount"] == values["serviceAccount"]["name"] == "karpenter"
    assert association["namespace"] == "kube-system"
    assert association["clusterName"] == "eks-gpu-slicing-dev"
    controller_role = dev.one("aws:iam/role:Role", "karpenter-controller-role")
    assert association["roleArn"] == controller_role.outputs["arn"]


# --- Interruption queue ---------------------------------------------------------------------


def test_interruption_queue_policy_and_rules(dev):
    queue = dev.one("aws:sqs/queue:Queue")
    assert queue.inputs["messageRetentionSeconds"] == 300
    assert queue.inputs["sqsManagedSseEnabled"] is True
    policy = json.loads(dev.one("aws:sqs/queuePolicy:QueuePolicy").inputs["policy"])
    allow, deny = policy["Statement"]
    assert allow["Principal"]["Service"] == ["events.amazonaws.com", "sqs.amazonaws.com"]
    assert allow["Action"] == "sqs:SendMessage" and allow["Resource"] == queue.outputs["arn"]
    assert deny["Effect"] == "Deny" and deny["Action"] == "sqs:*"
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    rules = {
        r.outputs["name"]: json.loads(r.inputs["eventPattern"])
        for r in dev.of_type("aws:cloudwatch/eventRule:EventRule")
    }
    targets = dev.of_type("aws:cloudwatch/eventTarget:EventTarget")
    assert {t.inputs["rule"] for t in targets} == set(rules)
    assert {t.inputs["arn"] for t in targets} == {queue.outputs["arn"]}
    detail_types = {d for pattern in rules.values() for d in pattern["detail-type"]}
    assert detail_types == {
        "AWS Health Event",
        "EC2 Spot Instance Interruption Warning",
        "EC2 Instance Rebalance Recommendation",
        "EC2 Instance State-change Notification",
        "EC2 Capacity Reservation Instance Interruption Warning",
    }


@needs_reference
def test_rules_and_queue_match_the_getting_started_cloudformation():
    resources = cloudformation()["Resources"]
    upstream = [
        r["Properties"]["EventPattern"]
        for r in resources.values()
        if r["Type"] == "AWS::Events::Rule"
    ]
    assert sorted(map(json.dumps, upstream)) == sorted(
        json.dumps(p) for p in build.INTERRUPTION_EVENTS.values()
    )
    (queue,) = [r for r in resources.values() if r["Type"] == "AWS::SQS::Queue"]
    assert queue["Properties"]["MessageRetentionPeriod"] == facts.KARPENTER_QUEUE_RETENTION_S
    (node_role,) = [r for r in resources.values() if r["Type"] == "AWS::IAM::Role"]
    upstream_node_policies = {
        arn.rsplit("/", 1)[1] for arn in node_role["Properties"]["ManagedPolicyArns"]
    }
    assert upstream_node_policies == set(facts.KARPENTER_NODE_POLICIES)


# --- Discovery tags -------------------------------------------------------------------------


def test_discovery_tags_on_created_subnets_and_the_cluster_security_group(dev):
    vpc = dev.one("awsx:ec2:Vpc").inputs
    specs = {spec["type"]: spec for spec in vpc["subnetSpecs"]}
    assert specs["Private"]["tags"]["karpenter.sh/discovery"] == "eks-gpu-slicing-dev"
    assert "karpenter.sh/discovery" not in specs["Public"]["tags"]
    (tag,) = dev.of_type("aws:ec2/tag:Tag")
    assert tag.inputs["key"] == "karpenter.sh/discovery"
    assert tag.inputs["value"] == "eks-gpu-slicing-dev"
    (lookup,) = dev.calls_of("aws:eks/getCluster:getCluster")
    assert lookup["name"] == "eks-gpu-slicing-dev"
    assert tag.inputs["resourceId"].startswith("sg-")


def test_existing_subnets_are_tagged_with_tag_resources():
    network = {
        "vpcId": "vpc-0abc12345",
        "privateSubnetIds": ["subnet-0abc1234", "subnet-0abc1235"],
        "publicSubnetIds": ["subnet-0abc1236"],
    }
    raw = with_karpenter({"g5": pool()}, network=network)
    deployment = run_program(engine_config(raw), stack="dev")
    tagged = {t.inputs["resourceId"] for t in deployment.of_type("aws:ec2/tag:Tag")}
    assert {"subnet-0abc1234", "subnet-0abc1235"} <= tagged
    assert "subnet-0abc1236" not in tagged


def test_karpenter_off_registers_nothing_of_it():
    deployment = run_program(engine_config(copy.deepcopy(MINIMAL)), stack="dev")
    assert not any(
        "karpenter" in r.type or r.name.startswith("karpenter")
        for r in deployment.resources.values()
    )
    assert "karpenterNodePools" not in deployment.outputs
    specs = {spec["type"]: spec for spec in deployment.one("awsx:ec2:Vpc").inputs["subnetSpecs"]}
    assert "karpenter.sh/discovery" not in specs["Private"]["tags"]


# --- Outputs and make validate --------------------------------------------------------------


def test_outputs_per_pool(dev):
    assert dev.outputs["karpenterNodePools"] == {
        "g5": {
            "nodePool": "gpu-g5",
            "profile": "default",
            "strategy": "time-slicing",
            "resourceName": "nvidia.com/gpu",
            "virtualGpusPerInstanceType": {"g5.xlarge": 10, "g5.2xlarge": 10},
        }
    }


def test_validate_prints_the_pools(capsys):
    assert validate_main(["dev"]) == 0
    out = capsys.readouterr().out
    assert "Karpenter node pools:" in out
    assert "g5.xlarge: 10, g5.2xlarge: 10" in out


# --- The AMI release the node classes pin ---------------------------------------------------


def pinned_release(deployment: Deployment) -> str:
    (term,) = deployment.one(NODE_CLASS).inputs["spec"]["amiSelectorTerms"]
    family, _, release = term["alias"].partition("@")
    assert family == "al2023"
    return release


def test_every_offered_kubernetes_version_has_its_ami_releases():
    assert set(facts.AL2023_NVIDIA_AMI_RELEASES) == set(facts.KUBERNETES_RELEASES)
    # The default pin keeps pools launching across every control-plane version offered.
    for version, span in facts.AL2023_NVIDIA_AMI_RELEASES.items():
        assert span.carries(facts.KARPENTER_AL2023_AMI_RELEASE), version


def test_the_dev_pool_pins_a_release_that_carries_the_clusters_version(dev):
    version = load_settings(dev_settings(), stack="dev").kubernetes_version
    assert facts.AL2023_NVIDIA_AMI_RELEASES[version].carries(pinned_release(dev))


def test_an_ami_release_span_ends_where_eks_stopped_publishing_a_version():
    span = facts.AmiReleaseSpan("v20241024", "v20260318")
    assert [span.carries(r) for r in ("v20241016", "v20241024", "v20260318", "v20260403")] == [
        False,
        True,
        True,
        False,
    ]


def test_the_configured_ami_release_flows_into_every_node_class():
    raw = dev_settings()
    raw["karpenter"]["amiRelease"] = "v20260714"
    assert pinned_release(run_program(engine_config(raw), stack="dev")) == "v20260714"


@pytest.mark.parametrize(
    ("kubernetes_version", "release"),
    [
        ("1.35", "v20251103"),  # the old pin: Kubernetes 1.29-1.34 only
        ("1.35", "v20260107"),
        ("1.36", "v20260114"),
    ],
)
def test_a_release_without_the_clusters_version_is_refused(kubernetes_version, release):
    raw = dev_settings()
    raw["kubernetesVersion"] = kubernetes_version
    raw["karpenter"]["amiRelease"] = release
    (problem,) = problems_of(raw)
    first = facts.AL2023_NVIDIA_AMI_RELEASES[kubernetes_version].first
    assert problem.startswith("karpenter.amiRelease:")
    assert f"kubernetesVersion {kubernetes_version}" in problem
    assert release in problem and f"{first} or later" in problem


def test_a_control_plane_upgrade_keeps_the_default_pin_or_is_refused():
    raw = dev_settings()
    raw["kubernetesVersion"] = "1.36"
    assert load_settings(raw, stack="dev").kubernetes_version == "1.36"
    raw["karpenter"]["amiRelease"] = "v20260505"  # carries 1.30-1.35
    assert any(p.startswith("karpenter.amiRelease:") for p in problems_of(raw))
    # Without Karpenter, managed node groups take EKS's AMI for the version: nothing to pin.
    raw["karpenter"] = {"enabled": False, "amiRelease": "v20260505"}
    assert load_settings(raw, stack="dev").kubernetes_version == "1.36"


def test_a_release_no_longer_carrying_a_version_names_the_last_one(monkeypatch):
    monkeypatch.setitem(
        facts.AL2023_NVIDIA_AMI_RELEASES, "1.31", facts.AmiReleaseSpan("v20241024", "v20260318")
    )
    raw = with_karpenter({"g5": pool()}, kubernetesVersion="1.31")
    raw["karpenter"]["amiRelease"] = "v20260610"
    (problem,) = problems_of(raw)
    assert "v20241024 to v20260318" in problem


def as_release(day: dt.date) -> str:
    return day.strftime("v%Y%m%d")


def ami_warnings(release: str) -> list[str]:
    raw = with_karpenter({"g5": pool()})
    raw["karpenter"]["amiRelease"] = release
    settings = load_settings(raw, stack="dev")
    return [w for w in settings.warnings(dt.date.today()) if w.startswith("karpenter.amiRelease")]


def test_an_ami_release_newer_than_the_table_knows_is_warned():
    newest = dt.datetime.strptime(facts.NEWEST_KNOWN_AMI_RELEASE, "v%Y%m%d").date()
    assert not ami_warnings(facts.NEWEST_KNOWN_AMI_RELEASE)
    later = as_release(newest + dt.timedelta(days=1))
    (warning,) = ami_warnings(later)
    assert later in warning and facts.NEWEST_KNOWN_AMI_RELEASE in warning
    assert "check that it exists" in warning


def test_an_ami_release_dated_after_today_is_refused():
    today = dt.datetime.now(dt.UTC).date()
    # Today's release may exist: accepted (at most warned as newer than the table).
    assert all(as_release(today) in w for w in ami_warnings(as_release(today)))
    for release in (as_release(today + dt.timedelta(days=1)), "v20300101"):
        raw = with_karpenter({"g5": pool()})
        raw["karpenter"]["amiRelease"] = release
        (problem,) = problems_of(raw)
        assert problem.startswith("karpenter.amiRelease:") and "dated after today" in problem


@pytest.mark.parametrize("release", ["20260610", "latest", "v2026061", "v20261399", "V20260610"])
def test_a_malformed_ami_release_names_its_key(release):
    raw = with_karpenter({"g5": pool()})
    raw["karpenter"]["amiRelease"] = release
    problems = problems_of(raw)
    assert any(p.startswith("karpenter.amiRelease:") and "v<YYYYMMDD>" in p for p in problems), (
        problems
    )


# --- Bad configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "path", "message"),
    [
        ({"instanceTypes": ["m5.large"]}, "instanceTypes", "not a supported NVIDIA GPU"),
        ({"instanceTypes": ["g5.huge"]}, "instanceTypes", "unknown size 'g5.huge'"),
        ({"instanceTypes": []}, "instanceTypes", "at least one"),
        ({"capacityTypes": ["preemptible"]}, "capacityTypes.0", "'on-demand', 'spot' or"),
        ({"limits": {"cpu": "lots"}}, "limits", "'lots' is not a Kubernetes quantity"),
        ({"limits": {"memory": "128GB"}}, "limits", "'128GB' is not a Kubernetes quantity"),
        ({"limits": {}}, "limits", "without bound"),
        ({"expireAfter": "60d"}, "expireAfter", "'60d' is not a duration"),
        ({"expireAfter": "never"}, "expireAfter", "is not a duration"),
        ({"consolidateAfter": "5 minutes"}, "consolidateAfter", "is not a duration"),
        ({"maxPods": 0}, "maxPods", "greater than or equal to 1"),
        ({"maxPods": 5000}, "maxPods", "less than or equal to 737"),
        ({"volumeSizeGiB": 5}, "volumeSizeGiB", "greater than or equal to 20"),
        ({"weight": 101}, "weight", "less than or equal to 100"),
        ({"consolidationPolicy": "Always"}, "consolidationPolicy", "WhenEmpty"),
        ({"sharing": "missing"}, "sharing", "no sharing profile 'missing'"),
        ({"amiFamily": "AL2"}, "amiFamily", "unknown key"),
    ],
)
def test_bad_pool_settings_name_their_key(overrides, path, message):
    problems = problems_of(with_karpenter({"g5": pool(**overrides)}))
    matching = [p for p in problems if p.startswith(f"karpenter.nodePools.g5.{path}:")]
    assert matching and message in matching[0], problems


def test_good_durations_and_quantities_pass():
    settings = load_settings(
        with_karpenter(
            {
                "g5": pool(
                    expireAfter="Never",
                    consolidateAfter="1h30m",
                    limits={"cpu": "500m", "memory": "1.5Ti", "nvidia.com/gpu": 8},
                )
            }
        ),
        stack="dev",
    )
    assert settings.karpenter.node_pools["g5"].expire_after == "Never"


def test_pools_while_karpenter_is_off_and_every_problem_at_once():
    raw = with_karpenter({"g5": pool(sharing="nope"), "p5": pool(expireAfter="1y")})
    raw["karpenter"]["enabled"] = False
    problems = problems_of(raw)
    assert any(
        p.startswith("karpenter.nodePools.g5: karpenter.enabled is not true") for p in problems
    )
    assert any(p.startswith("karpenter.nodePools.p5: karpenter.enabled") for p in problems)
    assert any(
        p.startswith("karpenter.nodePools.g5.sharing: no sharing profile 'nope'") for p in problems
    )
    assert any(p.startswith("karpenter.nodePools.p5.expireAfter:") for p in problems)


def test_old_versions_and_bad_names_are_refused():
    raw = with_karpenter({"G5_pool": pool()})
    raw["karpenter"]["version"] = "1.6.0"
    problems = problems_of(raw)
    assert any(p.startswith("karpenter.version:") and "NodeOverlay" in p for p in problems)
    assert any(p.startswith("karpenter.nodePools:") and "G5_pool" in p for p in problems)


def test_bad_config_registers_nothing():
    monitor = RecordingMonitor(ProgramMocks())
    with pytest.raises(pulumi.RunError, match=r"karpenter\.nodePools\.g5\.expireAfter"):
        run_program(
            engine_config(with_karpenter({"g5": pool(expireAfter="soon")})),
            stack="dev",
            monitor=monitor,
        )
    assert monitor.registrations == {}


def test_demo_may_use_a_profile_only_a_pool_uses():
    raw = dev_settings()
    raw["sharing"]["pool-only"] = {"replicas": 2}
    raw["karpenter"]["nodePools"]["g5"]["sharing"] = "pool-only"
    raw["demoWorkload"] = {"enabled": True, "profile": "pool-only"}
    settings = load_settings(raw, stack="dev")
    assert settings.demo_profile_name == "pool-only"
    warnings = settings.warnings(dt.date(2026, 1, 1))
    assert not any("not used" in w and "pool-only" in w for w in warnings)


def pool_only_demo(replicas: int, limits: dict[str, Any]) -> dict[str, Any]:
    """The dev stack with a demo whose profile only one pool (of g5.xlarge) serves."""
    raw = dev_settings()
    raw["sharing"]["pool-only"] = {"replicas": 2}
    raw["karpenter"]["nodePools"]["g5"].update(
        sharing="pool-only", instanceTypes=["g5.xlarge"], limits=limits
    )
    raw["demoWorkload"] = {"enabled": True, "profile": "pool-only", "replicas": replicas}
    return raw


def demo_warnings(raw: dict[str, Any]) -> list[str]:
    warnings = load_settings(raw, stack="dev").warnings(dt.date(2026, 1, 1))
    return [w for w in warnings if w.startswith("demoWorkload.replicas")]


def test_a_demo_served_only_by_a_pool_is_not_told_it_stays_pending():
    assert demo_warnings(pool_only_demo(5, {"cpu": 32, "memory": "128Gi"})) == []
    # A limit on nothing countable per node leaves the pool unbounded as far as we know.
    assert demo_warnings(pool_only_demo(500, {"ephemeral-storage": "10Ti"})) == []


def _unpriced_warnings(capacity_types: list[str]) -> list[str]:
    raw = with_karpenter(
        {
            "h200": pool(
                instanceTypes=["p5e.48xlarge", "p5en.48xlarge"],
                capacityTypes=capacity_types,
                limits={"nodes": 1},
            )
        }
    )
    warnings = load_settings(raw, stack="dev").warnings(dt.date(2026, 1, 1))
    return [w for w in warnings if "no on-demand price" in w]


def test_an_on_demand_pool_listing_a_type_without_an_on_demand_price_is_warned():
    """Karpenter v1.14.1 makes an on-demand offering available only with a price
    (offering/base_resolver.go): p5e.48xlarge (Capacity Blocks only) never launches there."""
    unpriced = [i.name for i in facts.GPU_INSTANCES.values() if i.usd_per_hour is None]
    assert unpriced == ["p5e.48xlarge"]
    (warning,) = _unpriced_warnings(["on-demand"])
    assert warning.startswith("karpenter.nodePools.h200: p5e.48xlarge has no on-demand price")
    assert "never launches it; take it out of instanceTypes" in warning
    (warning,) = _unpriced_warnings(["on-demand", "reserved"])
    assert warning.endswith("this pool launches it only as reserved, if EC2 offers it so")
    assert _unpriced_warnings(["spot"]) == []


def test_a_demo_beyond_what_its_pool_may_launch_is_warned():
    gpus_limit = 2
    g5 = facts.GPU_INSTANCES["g5.xlarge"]
    most = gpus_limit // g5.gpus * g5.gpus * 2  # nodes the limit allows x virtual GPUs each
    (warning,) = demo_warnings(pool_only_demo(most + 1, {facts.GPU_RESOURCE: gpus_limit}))
    assert f"({most + 1})" in warning and f"the {most} virtual GPUs" in warning
    assert "stay Pending" in warning
    assert demo_warnings(pool_only_demo(most, {facts.GPU_RESOURCE: gpus_limit})) == []


def test_a_demo_short_on_node_groups_is_still_warned_when_pools_serve_other_profiles():
    raw = dev_settings()
    raw["sharing"]["other"] = {"replicas": 2}
    raw["karpenter"]["nodePools"]["g5"]["sharing"] = "other"
    settings = load_settings(raw, stack="dev")
    groups = sum(
        g.max_size * g.instance.gpus * settings.profile_of(g).virtual_gpus_per_gpu
        for g in settings.gpu_node_groups.values()
        if g.sharing == settings.demo_profile_name
    )
    raw["demoWorkload"]["replicas"] = groups + 1
    (warning,) = demo_warnings(raw)
    assert f"the {groups} virtual GPUs" in warning


@pytest.mark.parametrize(
    ("quantity", "value"),
    [
        (32, 32),
        ("500m", 0.5),
        ("128Gi", 128 * 2**30),
        ("1.5Ti", 1.5 * 2**40),
        ("2k", 2000),
        ("1e3", 1000),
        ("4M", 4e6),
    ],
)
def test_quantities_are_read_as_kubernetes_reads_them(quantity, value):
    assert quantity_value(quantity) == value


@pytest.mark.parametrize(
    ("types", "limits"),
    [
        (["g5.xlarge"], {"cpu": 30}),
        (["g5.xlarge", "g5.2xlarge"], {"cpu": 32, "memory": "128Gi"}),
        (["g4dn.xlarge", "g4dn.12xlarge"], {"cpu": 100, "memory": "300Gi"}),
        (["g5.2xlarge", "g5.12xlarge"], {"cpu": 60, "nvidia.com/gpu": 5}),
        (["g4dn.xlarge", "g5.12xlarge"], {"cpu": 64, "nodes": 3}),
    ],
)
def test_a_pools_virtual_gpu_bound_is_never_below_any_mix_it_may_launch(types, limits):
    settings = KarpenterNodePoolSettings(instanceTypes=types, limits=limits)
    bound = settings.max_virtual_gpus(10)
    per_node = {
        "nodes": lambda i: 1,
        "cpu": lambda i: i.vcpus,
        "memory": lambda i: i.memory_mib * (1 - facts.VM_MEMORY_OVERHEAD) * 2**20,
        "nvidia.com/gpu": lambda i: i.gpus,
    }

    def fits(counts: tuple[int, ...]) -> bool:
        return all(
            sum(n * per_node[r](i) for n, i in zip(counts, settings.instances, strict=True))
            <= quantity_value(limit)
            for r, limit in limits.items()
        )

    ranges = [range(int(quantity_value(limits["cpu"]) // i.vcpus) + 1) for i in settings.instances]
    best = max(
        sum(n * i.gpus * 10 for n, i in zip(counts, settings.instances, strict=True))
        for counts in itertools.product(*ranges)
        if fits(counts)
    )
    assert best <= bound
    if len(types) == 1:
        assert best == bound  # exact for one instance type


def test_a_stack_may_take_all_its_gpu_nodes_from_karpenter():
    raw = with_karpenter({"g5": pool()})
    del raw["gpuNodeGroups"]
    deployment = run_program(engine_config(raw), stack="dev")
    assert [g.name for g in deployment.of_type("eks:index:ManagedNodeGroup")] == ["system"]
    assert deployment.one(NODE_POOL)
    assert deployment.one(RELEASE, facts.DEVICE_PLUGIN_RELEASE_NAME)
    # Without either, there would be no GPU to share.
    raw["karpenter"]["enabled"] = False
    del raw["karpenter"]["nodePools"]
    assert any(p.startswith("gpuNodeGroups: at least one") for p in problems_of(raw))
