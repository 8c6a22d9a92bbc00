"""Each policy rule with a resource that passes and one that fails; the CrossGuard adapters
report what the rules find."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.device_plugin import device_plugin_config
from eks_gpu_slicing.builders.workloads import (
    gpu_node_group_labels,
    gpu_node_labels,
    gpu_node_taints,
    gpu_toleration,
)
from eks_gpu_slicing.review import policy_rules as pr
from eks_gpu_slicing.review.policy_pack import policies
from eks_gpu_slicing.settings import SharingProfile

URN = "urn:pulumi:{stack}::eks-gpu-slicing::{type}::{name}"


def res(type_: str, props: dict, *, name: str = "r", stack: str = "dev", protect=False):
    return pr.Resource(type_, name, props, URN.format(stack=stack, type=type_, name=name), protect)


def gpu_group(**override) -> dict:
    return {
        "amiType": "AL2023_x86_64_NVIDIA",
        "instanceTypes": ["g5.xlarge"],
        "labels": gpu_node_labels("default"),
        "taints": gpu_node_taints(),
        "enableIMDSv2": True,
        "subnetIds": ["subnet-private"],
        **override,
    }


def gpu_pool(labels=None, taints=None) -> dict:
    toleration = gpu_toleration()
    taint = {k: toleration[k] for k in ("key", "value", "effect")}
    return {
        "spec": {
            "template": {
                "metadata": {"labels": gpu_node_labels("default") if labels is None else labels},
                "spec": {
                    "requirements": [
                        {
                            "key": "karpenter.k8s.aws/instance-family",
                            "operator": "In",
                            "values": ["g6"],
                        }
                    ],
                    "taints": [taint] if taints is None else taints,
                },
            }
        }
    }


def mig_labels(profile_name="a100", layout="all-1g.5gb") -> dict:
    profile = SharingProfile(strategy="mig", mig={"layout": layout, "strategy": "single"})
    return gpu_node_group_labels(profile_name, profile)


def mig_pool(requirements) -> dict:
    pool = gpu_pool(labels=mig_labels())
    pool["spec"]["template"]["spec"]["requirements"] = requirements
    return pool


def instance_types(*types, key=facts.INSTANCE_TYPE_LABEL) -> list[dict]:
    return [{"key": key, "operator": "In", "values": list(types)}]


def mig_config_map(mig_strategy="single", sharing="timeSlicing") -> dict:
    """A MIG profile's plugin config, with its time-slicing block renamed to `sharing`:
    settings refuse MPS on MIG before any rule could see it."""
    profile = SharingProfile(
        strategy="mig", replicas=2, mig={"layout": "all-1g.10gb", "strategy": "single"}
    )
    config = device_plugin_config(profile)
    config["flags"]["migStrategy"] = mig_strategy
    config["sharing"] = {sharing: config["sharing"]["timeSlicing"]}
    return {"data": {"a100": yaml.safe_dump(config)}}


def plugin_config_map(replicas=4, fail_requests=True) -> dict:
    # Built valid, then edited: settings refuse replicas < 2 before any rule could see them.
    profile = SharingProfile(
        strategy="time-slicing", replicas=4, failRequestsGreaterThanOne=fail_requests
    )
    config = device_plugin_config(profile)
    config["sharing"]["timeSlicing"]["resources"][0]["replicas"] = replicas
    return {"data": {"default": yaml.safe_dump(config)}}


def cluster(**override) -> dict:
    return {
        "encryptionConfigKeyArn": "arn:aws:kms:us-west-2:123456789012:key/x",
        "enabledClusterLogTypes": [
            "api",
            "audit",
            "authenticator",
            "controllerManager",
            "scheduler",
        ],
        "endpointPublicAccess": True,
        "publicAccessCidrs": ["203.0.113.0/24"],
        **override,
    }


MNG = "eks:index:ManagedNodeGroup"
HELM = "kubernetes:helm.sh/v3:Release"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def pod(image: str) -> dict:
    return {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}}


def hami_release(**values) -> dict:
    """A hami release with the stack's values, some replaced."""
    from eks_gpu_slicing.builders import hami
    from eks_gpu_slicing.settings import HamiSettings

    built = hami.helm_values(hami=HamiSettings(split_count=4), kubernetes_version="1.35")
    for path, value in values.items():
        *parents, last = path.split("__")
        node = built
        for key in parents:
            node = node[key]
        node[last] = value
    return {"chart": facts.HAMI_CHART, "version": facts.HAMI_CHART_VERSION, "values": built}


# (rule, passing resource, failing resource, words in the failure)
CASES = [
    (
        pr.gpu_node_group_setup,
        res(MNG, gpu_group()),
        res(MNG, gpu_group(amiType="AL2023_x86_64_STANDARD")),
        "NVIDIA AMI",
    ),
    (
        # A launch template without an image leaves the AMI to amiType: still checked.
        pr.gpu_node_group_setup,
        res(MNG, gpu_group(amiType="CUSTOM", launchTemplate={"id": "lt"})),
        res(MNG, gpu_group(amiType="AL2023_x86_64_STANDARD", launchTemplate={"id": "lt"})),
        "NVIDIA AMI",
    ),
    (
        pr.gpu_node_group_setup,
        res("aws:eks/nodeGroup:NodeGroup", gpu_group()),
        res(MNG, gpu_group(labels={})),
        "gpu.present",
    ),
    (
        pr.gpu_node_group_setup,
        res(MNG, gpu_group(instanceTypes=["t3.large"], labels={}, taints=[])),
        res(MNG, gpu_group(taints=[])),
        "taint",
    ),
    (
        pr.gpu_node_pool_setup,
        res(pr.NODE_POOL, gpu_pool()),
        res(pr.NODE_POOL, gpu_pool(taints=[])),
        "taints",
    ),
    (
        pr.gpu_node_pool_setup,
        res(pr.NODE_POOL, gpu_pool()),
        res(pr.NODE_POOL, gpu_pool(labels={"a": "b"})),
        "gpu.present",
    ),
    (
        pr.node_class_ami,
        res(pr.NODE_CLASS, {"spec": {"amiSelectorTerms": [{"alias": "al2023@v20261101"}]}}),
        res(pr.NODE_CLASS, {"spec": {"amiSelectorTerms": [{"id": "ami-0123"}]}}),
        "alias",
    ),
    (
        pr.sharing_replicas,
        res(pr.CONFIG_MAP, plugin_config_map(4)),
        res(pr.CONFIG_MAP, plugin_config_map(1)),
        "replicas 1 < 2",
    ),
    (
        pr.no_mps_on_mig,
        res(pr.CONFIG_MAP, mig_config_map("single", "timeSlicing")),
        res(pr.CONFIG_MAP, mig_config_map("single", "mps")),
        "sharing.mps with flags.migStrategy single",
    ),
    (
        # MPS without MIG is fine; MPS with `mixed` is not
        pr.no_mps_on_mig,
        res(pr.CONFIG_MAP, mig_config_map("none", "mps")),
        res(pr.CONFIG_MAP, mig_config_map("mixed", "mps")),
        "does not support MPS on MIG",
    ),
    (
        pr.mig_capable_instances,
        res(MNG, gpu_group(instanceTypes=["p4d.24xlarge"], labels=mig_labels())),
        res(MNG, gpu_group(instanceTypes=["g5.xlarge"], labels=mig_labels())),
        "instance types without MIG ['g5.xlarge']",
    ),
    (
        # a group without the layout label is not this rule's; one without types is
        pr.mig_capable_instances,
        res("aws:eks/nodeGroup:NodeGroup", gpu_group(instanceTypes=["g5.xlarge"])),
        res("aws:eks/nodeGroup:NodeGroup", gpu_group(instanceTypes=[], labels=mig_labels())),
        "without instanceTypes",
    ),
    (
        pr.mig_capable_instances,
        res(pr.NODE_POOL, mig_pool(instance_types("p5.48xlarge", "p5en.48xlarge"))),
        res(pr.NODE_POOL, mig_pool(instance_types("p5.48xlarge", "g6e.xlarge"))),
        "without MIG ['g6e.xlarge']",
    ),
    (
        pr.mig_capable_instances,
        res(pr.NODE_POOL, mig_pool(instance_types("p4d", "p5", key=pr.INSTANCE_FAMILY_LABEL))),
        res(pr.NODE_POOL, mig_pool(instance_types("g6", key=pr.INSTANCE_FAMILY_LABEL))),
        "instance families without MIG ['g6']",
    ),
    (
        # only an `In` on type or family keeps a pool to MIG-capable types
        pr.mig_capable_instances,
        res(pr.NODE_POOL, gpu_pool()),
        res(pr.NODE_POOL, mig_pool([{"key": "karpenter.sh/capacity-type", "operator": "In"}])),
        "no node.kubernetes.io/instance-type or karpenter.k8s.aws/instance-family In",
    ),
    (
        pr.hami_leaves_other_pods_alone,
        res(HELM, hami_release()),
        res(HELM, hami_release(scheduler__forceOverwriteDefaultScheduler=True)),
        "would move every pod that asks for nvidia.com/gpu",
    ),
    (
        pr.hami_leaves_other_pods_alone,
        res(HELM, {"chart": facts.DEVICE_PLUGIN_CHART, "values": {}}),  # not HAMi's
        res(HELM, hami_release(devicePlugin__nvidiaNodeSelector={"gpu": "on"})),
        "does not require eks-gpu-slicing/device-plugin: hami",
    ),
    (
        pr.hami_leaves_other_pods_alone,
        res(HELM, hami_release()),
        res(HELM, hami_release(devicePlugin__service={"type": "NodePort"})),
        "values.devicePlugin.service.type is 'NodePort'",
    ),
    (
        pr.chart_pinned,
        res(HELM, {"chart": "karpenter", "version": "1.14.1"}),
        res(HELM, {"chart": "karpenter", "version": "^1.14"}),
        "exact version",
    ),
    (
        pr.chart_pinned,
        res("kubernetes:helm.sh/v4:Chart", {"chart": "x", "version": "4.8.2"}),
        res(HELM, {"chart": "x"}),
        "None",
    ),
    (
        pr.images_tagged,
        res(DEPLOYMENT, pod("nvcr.io/nvidia/cuda:12.9.1-base")),
        res(DEPLOYMENT, pod("busybox")),
        "no tag",
    ),
    (
        pr.images_tagged,
        res(DEPLOYMENT, pod("busybox@sha256:abc")),
        res(DEPLOYMENT, pod("localhost:5000/busybox:latest")),
        "latest",
    ),
    (
        pr.images_tagged,
        res(HELM, {"values": {"image": {"repository": "nvcr.io/x", "tag": "4.5.3"}}}),
        res(HELM, {"values": {"image": {"repository": "nvcr.io/x", "tag": "latest"}}}),
        "latest",
    ),
    (
        pr.cluster_secrets_encrypted,
        res("eks:index:Cluster", cluster()),
        res("eks:index:Cluster", cluster(encryptionConfigKeyArn=None)),
        "KMS",
    ),
    (
        pr.cluster_secrets_encrypted,
        res(
            "aws:eks/cluster:Cluster",
            {"encryptionConfig": {"resources": ["secrets"], "provider": {"keyArn": "k"}}},
        ),
        res("aws:eks/cluster:Cluster", {}),
        "KMS",
    ),
    (
        pr.cluster_logs,
        res("eks:index:Cluster", cluster()),
        res("eks:index:Cluster", cluster(enabledClusterLogTypes=["api"])),
        "audit",
    ),
    (
        pr.protected_endpoint,
        res("eks:index:Cluster", cluster(publicAccessCidrs=["0.0.0.0/0"])),  # unprotected: fine
        res("eks:index:Cluster", cluster(publicAccessCidrs=None), protect=True),  # default: world
        "0.0.0.0/0",
    ),
    (
        pr.imdsv2_required,
        res(
            pr.LAUNCH_TEMPLATE,
            {"metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 1}},
        ),
        res(pr.LAUNCH_TEMPLATE, {"metadataOptions": {"httpTokens": "optional"}}),
        "optional",
    ),
    (
        pr.imdsv2_required,
        res(pr.NODE_CLASS, {"spec": {}}),
        res(pr.NODE_CLASS, {"spec": {"metadataOptions": {"httpTokens": "optional"}}}),
        "optional",
    ),
    (
        pr.imdsv2_required,
        res(MNG, gpu_group(enableIMDSv2=False, launchTemplate={"id": "lt"})),
        res(MNG, gpu_group(enableIMDSv2=False)),
        "IMDSv2",
    ),
    (
        pr.system_namespace,
        res(HELM, {"chart": "dcgm-exporter", "version": "4.8.2", "namespace": "gpu-monitoring"}),
        res(HELM, {"chart": facts.KARPENTER_CHART, "version": "1.14.1"}),
        "namespace default",
    ),
    (
        pr.time_slicing_fail_requests,
        res(pr.CONFIG_MAP, plugin_config_map(4, True)),
        res(pr.CONFIG_MAP, plugin_config_map(4, False)),
        "off",
    ),
    (
        pr.production_protected,
        res("eks:index:Cluster", cluster(), stack="prod", protect=True),
        res("eks:index:Cluster", cluster(), stack="eu-prod"),
        "production",
    ),
]


@pytest.mark.parametrize(
    ("rule", "passing", "failing", "words"), CASES, ids=lambda c: getattr(c, "__name__", None)
)
def test_rule_passes_and_fails(rule, passing, failing, words):
    assert rule(passing) == []
    problems = rule(failing)
    assert problems and any(words in p for p in problems), problems


def test_every_rule_has_a_case():
    tested = {case[0] for case in CASES}
    assert {r.check for r in pr.RULES} <= tested


def test_mig_capable_families_are_those_whose_every_type_has_mig():
    assert {t.split(".")[0] for t in facts.MIG_GPU_OF_INSTANCE} == pr.MIG_CAPABLE_FAMILIES
    assert not pr.MIG_CAPABLE_FAMILIES & {
        i.family for n, i in facts.GPU_INSTANCES.items() if facts.mig_gpu(n) is None
    }


def test_nodes_in_private_subnets():
    vpc = res(
        "awsx:ec2:Vpc",
        {"publicSubnetIds": ["subnet-public"], "privateSubnetIds": ["subnet-private"]},
    )
    assert pr.nodes_in_private_subnets([vpc, res(MNG, gpu_group())]) == []
    found = pr.nodes_in_private_subnets([vpc, res(MNG, gpu_group(subnetIds=["subnet-public"]))])
    assert len(found) == 1 and "subnet-public" in found[0][1]


def test_gpu_memory_per_virtual_gpu():
    # A T4 has 16 GiB: 16 replicas leave 1 GiB each, 20 leave 819 MiB.
    group = res(MNG, gpu_group(instanceTypes=["g4dn.xlarge"]))
    assert pr.gpu_memory_per_virtual_gpu([group, res(pr.CONFIG_MAP, plugin_config_map(16))]) == []
    found = pr.gpu_memory_per_virtual_gpu([group, res(pr.CONFIG_MAP, plugin_config_map(20))])
    assert len(found) == 1 and "819 MiB" in found[0][1]


def test_evaluate_tags_enforcement():
    violations = pr.evaluate(
        [res(MNG, gpu_group(taints=[])), res(pr.CONFIG_MAP, plugin_config_map(4, False))]
    )
    assert {(v.rule, v.enforcement) for v in violations} == {
        ("gpu-node-group-setup", "mandatory"),
        ("time-slicing-fail-requests", "advisory"),
    }


def test_crossguard_policies_report_what_the_rules_find():
    by_name = {p.name: p for p in policies()}
    assert set(by_name) == {r.name for r in pr.RULES} | {r.name for r in pr.GRAPH_RULES}
    reported = []
    args = SimpleNamespace(
        resource_type=MNG,
        props=gpu_group(taints=[]),
        urn="urn:x",
        name="g",
        opts=SimpleNamespace(protect=False),
    )
    by_name["gpu-node-group-setup"].validate(args, lambda message, urn: reported.append(message))
    assert reported and "taint" in reported[0]
    stack = SimpleNamespace(
        resources=[
            SimpleNamespace(
                resource_type="awsx:ec2:Vpc",
                props={"publicSubnetIds": ["s"]},
                urn="v",
                name="v",
                opts=None,
            ),
            SimpleNamespace(
                resource_type=MNG,
                props=gpu_group(subnetIds=["s"]),
                urn="urn:g",
                name="g",
                opts=None,
            ),
        ]
    )
    reported.clear()
    by_name["nodes-in-private-subnets"].validate(stack, lambda message, urn: reported.append(urn))
    assert reported == ["urn:g"]


def test_one_device_plugin_per_node():
    from eks_gpu_slicing.builders import device_plugin

    nvidia = {
        "chart": facts.DEVICE_PLUGIN_CHART,
        "values": device_plugin.helm_values(
            config_map_name="c", default_profile="default", checksum="x"
        ),
    }
    hami = hami_release()
    assert pr.one_device_plugin_per_node([res(HELM, nvidia, name="n"), res(HELM, hami)]) == []
    assert pr.one_device_plugin_per_node([res(HELM, nvidia)]) == []  # one plugin: nothing to clash
    clash = hami_release(devicePlugin__nvidiaNodeSelector=dict(nvidia["values"]["nodeSelector"]))
    found = pr.one_device_plugin_per_node([res(HELM, nvidia, name="n"), res(HELM, clash)])
    assert len(found) == 2 and all("of its own" in message for _, message in found)
    unlabelled = hami_release(devicePlugin__nvidiaNodeSelector={"gpu": "on"})
    found = pr.one_device_plugin_per_node([res(HELM, nvidia, name="n"), res(HELM, unlabelled)])
    assert [message.split(":")[0] for _, message in found] == [f"chart {facts.HAMI_CHART}"]


def test_hami_kube_scheduler_version():
    eks = res("eks:index:Cluster", cluster(version="1.35"))
    assert pr.hami_kube_scheduler_version([eks, res(HELM, hami_release())]) == []
    older = hami_release()
    older["values"]["scheduler"]["kubeScheduler"]["image"]["tag"] = "v1.34.0"
    found = pr.hami_kube_scheduler_version([eks, res(HELM, older)])
    assert (
        len(found) == 1
        and "'v1.34.0' is not of the cluster's Kubernetes version 1.35" in (found[0][1])
    )
    # A cluster this stack did not create has no version in the graph: nothing to compare.
    assert pr.hami_kube_scheduler_version([res(HELM, older)]) == []
