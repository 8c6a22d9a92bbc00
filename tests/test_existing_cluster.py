"""An existing cluster is not one this stack created: no system node group of ours, other node
security groups, maybe a GPU Operator and GPU nodes of someone else.

Two renders serve most tests (module-scoped): one existing-cluster stack with Karpenter
installed, GFD, GPU metrics and a MIG group, as the examples would grow into, and the same
with the cluster's system nodes and node security group named.
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.workloads import gpu_node_group_labels
from eks_gpu_slicing.review.mocks import Deployment, ProgramMocks
from eks_gpu_slicing.settings import ConfigError, load_settings
from tests.k8s_semantics import affinity_matches, selector_matches
from tests.test_gpu_sharing import (
    existing_config,
    installing_karpenter,
    refused_before_registering,
    run_existing,
)

RELEASE = "kubernetes:helm.sh/v3:Release"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
SYSTEM = {"eks.amazonaws.com/nodegroup": "core"}
NODE_SG = "sg-0123456789abcdef0"
# What terraform-aws-eks builds by default: the cluster's own node group in its node security
# group alone (attach_cluster_primary_security_group = false).
TERRAFORM_NODE_GROUPS = {"core": [NODE_SG]}


def cluster_security_group() -> str:
    return ProgramMocks().existing_cluster("team-cluster")["vpcConfig"]["clusterSecurityGroupId"]


def everything() -> dict[str, Any]:
    """Karpenter installed here, GFD (and with it NFD), GPU metrics, a MIG group."""
    raw = installing_karpenter()
    raw["devicePlugin"] = {"gfd": True}
    raw["gpuMetrics"] = {"enabled": True}
    raw["sharing"] = {
        "default": {"strategy": "time-slicing", "replicas": 4},
        "a100-small": {"strategy": "mig", "mig": {"layout": "all-1g.5gb", "strategy": "single"}},
    }
    raw["gpuNodeGroups"]["a100"] = {
        "instanceType": "p4d.24xlarge",
        "minSize": 0,
        "desiredSize": 1,
        "maxSize": 1,
        "sharing": "a100-small",
    }
    return raw


class _Warnings(logging.Handler):
    """The program's pulumi.log.warn lines (the mock engine logs them to the root logger)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_with_warnings(raw: dict, **mocks) -> tuple[Deployment, list[str]]:
    handler = _Warnings()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        return run_existing(raw, **mocks), handler.lines
    finally:
        root.removeHandler(handler)


@pytest.fixture(scope="module")
def plain() -> Deployment:
    return run_existing(everything())


@pytest.fixture(scope="module")
def named() -> tuple[Deployment, list[str]]:
    raw = everything()
    raw["existingCluster"] |= {"systemNodeSelector": SYSTEM, "nodeSecurityGroupIds": [NODE_SG]}
    return run_with_warnings(raw, node_groups=TERRAFORM_NODE_GROUPS)


def values(deployment: Deployment, release: str) -> dict[str, Any]:
    return deployment.one(RELEASE, release).inputs["values"]


def group_labels(deployment: Deployment, group: str) -> dict[str, str]:
    (registered,) = [g for g in deployment.of_type(NODE_GROUP) if g.name == f"gpu-{group}"]
    return registered.inputs["labels"]


# --- Where cluster-wide controllers run (issue 22, item 1) -------------------------------------


def test_nothing_selects_a_system_node_label_the_cluster_does_not_have(plain):
    """Only a cluster this stack creates has its node-role label: on any other, a selector on
    it keeps Karpenter's controller (and NFD's master and gc) Pending, and `pulumi up` fails
    waiting for the release."""
    rendered = json.dumps({urn: r.inputs for urn, r in plain.resources.items()})
    assert facts.NODE_ROLE_LABEL not in rendered
    # The controller may run on any Linux node Karpenter does not manage (the chart's own
    # affinity); GPU nodes are tainted and it does not tolerate the taint.
    assert values(plain, "karpenter")["nodeSelector"] == {"kubernetes.io/os": "linux"}
    nfd = values(plain, "nvidia-device-plugin")["nfd"]
    assert set(nfd) == {"worker"}  # master and gc: the chart's defaults, no selector


def test_the_system_nodes_the_stack_file_names_carry_the_controllers(named):
    deployment, _ = named
    assert values(deployment, "karpenter")["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        **SYSTEM,
    }
    nfd = values(deployment, "nvidia-device-plugin")["nfd"]
    assert nfd["master"]["nodeSelector"] == nfd["gc"]["nodeSelector"] == SYSTEM


def test_a_system_node_selector_must_be_node_labels():
    raw = existing_config()
    raw["existingCluster"]["systemNodeSelector"] = {"role/": "system", "tier": "a b"}
    with pytest.raises(ConfigError) as exc:
        load_settings(raw, stack="existing")
    (problem,) = exc.value.problems
    assert problem.startswith("existingCluster.systemNodeSelector: not Kubernetes node labels")
    assert "role/=system" in problem and "tier=a b" in problem


# --- Node security groups (item 3) --------------------------------------------------------------


def test_gpu_nodes_join_the_node_security_group_and_keep_the_cluster_one(named):
    """EKS adds the cluster security group only to a launch template that names none, so it is
    named beside the node security group; Karpenter's nodes get the same pair."""
    deployment, _ = named
    both = [cluster_security_group(), NODE_SG]
    for template in deployment.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert template.inputs["vpcSecurityGroupIds"] == both, template.name
    node_class = deployment.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert node_class.inputs["spec"]["securityGroupSelectorTerms"] == [
        {"tags": {facts.KARPENTER_DISCOVERY_TAG: "team-cluster"}},
        *({"id": group} for group in both),
    ]


def test_without_node_security_groups_eks_chooses_as_before(plain):
    for template in plain.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert "vpcSecurityGroupIds" not in template.inputs


def test_a_node_group_sharing_no_security_group_with_gpu_nodes_is_warned_about():
    # terraform-aws-eks's default: CoreDNS there admits DNS from its node security group only.
    _, warnings = run_with_warnings(existing_config(), node_groups=TERRAFORM_NODE_GROUPS)
    (warning,) = [w for w in warnings if "nodeSecurityGroupIds" in w]
    assert warning.startswith(
        f"existingCluster.nodeSecurityGroupIds: node group 'core' of cluster 'team-cluster' runs "
        f"in {NODE_SG}, none of which GPU nodes of this stack are in"
    )
    # Groups in the cluster security group (EKS's default, or named), and groups sharing one
    # with the GPU nodes, need no warning.
    _, warnings = run_with_warnings(
        existing_config(), node_groups={"eks-default": None, "both": [cluster_security_group()]}
    )
    assert not [w for w in warnings if "nodeSecurityGroupIds" in w]


def test_a_named_node_security_group_silences_the_warning(named):
    _, warnings = named
    assert not [w for w in warnings if "nodeSecurityGroupIds" in w]


def test_node_security_groups_are_checked_before_anything_is_registered():
    raw = existing_config()
    raw["existingCluster"]["nodeSecurityGroupIds"] = [NODE_SG, "sg-0fedcba9876543210"]
    message = refused_before_registering(
        raw,
        security_groups={NODE_SG: {"vpcId": "vpc-0ffffffffffffffff"}, "sg-0fedcba9876543210": None},
    )
    assert (
        f"existingCluster.nodeSecurityGroupIds[0]: security group {NODE_SG} is in "
        "vpc-0ffffffffffffffff, not in the VPC of cluster 'team-cluster'" in message
    )
    assert (
        "existingCluster.nodeSecurityGroupIds[1]: cannot read security group "
        "sg-0fedcba9876543210: " in message
    )


@pytest.mark.parametrize(
    ("ids", "why"),
    [
        (["sg-1"], "not security group IDs (sg-...): sg-1"),
        ([NODE_SG, NODE_SG], "lists a security group more than once"),
        ([f"sg-{i:017x}" for i in range(16)], "16 security groups; a node's network interface"),
    ],
)
def test_node_security_group_ids_are_validated(ids, why):
    raw = existing_config()
    raw["existingCluster"]["nodeSecurityGroupIds"] = ids
    with pytest.raises(ConfigError) as exc:
        load_settings(raw, stack="existing")
    (problem,) = exc.value.problems
    assert problem.startswith(f"existingCluster.nodeSecurityGroupIds: {why}")


# --- The GPU Operator's operands and the MIG manager (item 4) ------------------------------------

# k8s-mig-manager v0.15.0 (pkg/mig/reconfigure/reconfigure.go): the five labels it pauses and
# restores, and how: "false" stays "false"; anything else is paused, then set to "true" (absent
# included). nvidia.com/gpu.deploy.client likewise, but only where the node has it.
MANAGED = (
    "nvidia.com/gpu.deploy.device-plugin",
    "nvidia.com/gpu.deploy.gpu-feature-discovery",
    "nvidia.com/gpu.deploy.dcgm-exporter",
    "nvidia.com/gpu.deploy.dcgm",
    "nvidia.com/gpu.deploy.nvsm",
)


def _manager_sets(labels: dict[str, str], value: str) -> dict[str, str]:
    out = dict(labels)
    for label in MANAGED:
        out[label] = "false" if labels.get(label) == "false" else value
    client = facts.MIG_DEPLOY_CLIENT_LABEL
    if labels.get(client):
        out[client] = "false" if labels[client] == "false" else value
    return out


def manager_pauses(labels: dict[str, str]) -> dict[str, str]:
    return {
        **_manager_sets(labels, facts.MIG_PAUSED_VALUE),
        facts.MIG_CONFIG_STATE_LABEL: "pending",
    }


def manager_succeeds(labels: dict[str, str]) -> dict[str, str]:
    return {**_manager_sets(labels, "true"), facts.MIG_CONFIG_STATE_LABEL: "success"}


# gpu-operator v26.7.0 (controllers/state_manager.go, gpuStateLabels["container"] and
# addGPUStateLabels): on a GPU node it sets each of these that is missing to "true", keeps any
# value the node has, and adds nvidia.com/gpu.deploy.mig-manager=true on a MIG-capable GPU
# without that label. Each operand's DaemonSet selects its label = "true".
OPERATOR_OPERANDS = (
    "nvidia.com/gpu.deploy.driver",
    "nvidia.com/gpu.deploy.gpu-feature-discovery",
    "nvidia.com/gpu.deploy.container-toolkit",
    "nvidia.com/gpu.deploy.device-plugin",
    "nvidia.com/gpu.deploy.dcgm",
    "nvidia.com/gpu.deploy.dcgm-exporter",
    "nvidia.com/gpu.deploy.node-status-exporter",
    "nvidia.com/gpu.deploy.operator-validator",
    "nvidia.com/gpu.deploy.mig-manager",
)


def operator_labels(labels: dict[str, str]) -> dict[str, str]:
    if labels.get(facts.GPU_OPERATOR_OPERANDS_LABEL) == "false":
        # removeAllGPUStateLabels: every state label goes, gpu.deploy.client included.
        return {
            k: v
            for k, v in labels.items()
            if k not in (*OPERATOR_OPERANDS, facts.MIG_DEPLOY_CLIENT_LABEL)
        }
    return {**{label: "true" for label in OPERATOR_OPERANDS}, **labels}


def runs_on(values: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector_matches(values["nodeSelector"], labels) and (
        "affinity" not in values or affinity_matches(values["affinity"], labels)
    )


def test_no_operator_operand_is_ever_switched_on_for_our_mig_nodes(plain):
    """The MIG manager turns a missing operand label into "true" after every run, and the GPU
    Operator deploys that operand there; "false" survives both, on groups and pools alike."""
    pool = plain.one("kubernetes:karpenter.sh/v1:NodePool")
    for labels in [
        group_labels(plain, "a100"),
        pool.inputs["spec"]["template"]["metadata"]["labels"],
    ]:
        node = operator_labels(labels)
        for _ in range(2):  # a layout change, and another
            node = manager_succeeds(manager_pauses(node))
            # What the operator's DaemonSets select on until it next reconciles node labels
            # (a node's gpu.deploy.* changes do not make it reconcile).
            switched_on = sorted(k for k in {*OPERATOR_OPERANDS, *MANAGED} if node.get(k) == "true")
            assert switched_on == []
            node = operator_labels(node)


def test_our_device_plugin_and_exporter_still_step_aside_and_come_back(plain):
    """Our labels at "false" select none of our DaemonSets away: they step aside for a layout
    change through nvidia.com/gpu.deploy.client (which the operator keeps), and return."""
    node = operator_labels(group_labels(plain, "a100"))
    partitioned = manager_succeeds(manager_pauses(node))
    for release in ("nvidia-device-plugin", "gpu-metrics"):
        released = values(plain, release)
        assert runs_on(released, partitioned), release
        assert not runs_on(released, operator_labels(manager_pauses(partitioned))), release
        assert runs_on(released, operator_labels(manager_succeeds(manager_pauses(partitioned))))


# --- dcgm-exporter on our GPU nodes only (item 8) ------------------------------------------------


def test_the_exporter_runs_on_our_gpu_nodes_and_not_on_the_clusters_others(plain):
    exporter = values(plain, "gpu-metrics")
    # A GPU node of someone else: nodeadm labels AL2023 NVIDIA nodes gpu.present from 1.35.
    theirs = {
        facts.GPU_PRESENT_LABEL: facts.GPU_PRESENT_VALUE,
        facts.MIG_DEPLOY_CLIENT_LABEL: facts.MIG_DEPLOY_CLIENT_VALUE,
    }
    assert not runs_on(exporter, theirs)
    assert runs_on(exporter, operator_labels(group_labels(plain, "t4")))
    assert runs_on(exporter, manager_succeeds(operator_labels(group_labels(plain, "a100"))))
    pool = plain.one("kubernetes:karpenter.sh/v1:NodePool")
    assert runs_on(exporter, pool.inputs["spec"]["template"]["metadata"]["labels"])
    # Bottlerocket groups carry the same mark, with their own value.
    bottlerocket = gpu_node_group_labels(
        "default",
        load_settings(everything(), stack="existing").sharing["default"],
        bottlerocket=True,
        mig_manager=True,
    )
    assert runs_on(exporter, bottlerocket)


# --- Inputs that were silently ignored or misread (item 17) --------------------------------------


def refused(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_settings(raw, stack="existing")
    return exc.value.problems


def test_an_empty_existing_cluster_hint_names_no_cluster_called_none():
    raw = installing_karpenter()
    raw["existingCluster"] = {}
    problems = refused(raw)
    (hint,) = [p for p in problems if p.startswith("existingCluster.podIdentityAgent")]
    assert "None" not in hint
    assert "--cluster-name <cluster>" in hint


def test_creating_the_pod_identity_agent_without_karpenter_is_refused():
    raw = existing_config()
    raw["existingCluster"]["podIdentityAgent"] = "create"
    (problem,) = refused(raw)
    assert problem.startswith(
        "existingCluster.podIdentityAgent: `create` adds the eks-pod-identity-agent add-on only "
        "for the Karpenter this stack installs"
    )
    pools_only = copy.deepcopy(raw)
    pools_only["karpenter"] = {"enabled": True, "install": False, "nodeRoleName": "KarpenterNode"}
    assert any(
        p.startswith("existingCluster.podIdentityAgent: `create`") for p in refused(pools_only)
    )
    # `installed` states a fact and does nothing either way: accepted.
    raw["existingCluster"]["podIdentityAgent"] = "installed"
    assert load_settings(raw, stack="existing").existing_cluster is not None


@pytest.mark.parametrize("key", [facts.PROJECT_TAG, facts.STACK_TAG])
def test_tags_may_not_replace_the_tags_every_resource_carries(key):
    raw = existing_config(tags={key: "mine", "team": "ml"})
    (problem,) = refused(raw)
    assert problem.startswith(f"tags.{key}: set by the stack itself on every resource")
