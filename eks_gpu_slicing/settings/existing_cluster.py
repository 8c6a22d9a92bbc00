"""Existing-cluster mode: GPU sharing added to an EKS cluster this stack does not create.

What can be known offline is checked when the settings load (`static_problems`, on the raw
config: a key the stack file sets is set, whatever its value); what needs the cluster is
checked once it has been read (`existing_cluster_problems`), before anything is registered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import _CLUSTER_NAME, _SUBNET_ID, _Settings, listing
from eks_gpu_slicing.settings.karpenter import KarpenterSettings
from eks_gpu_slicing.settings.network import security_group_ids

if TYPE_CHECKING:
    from eks_gpu_slicing.settings.stack import Settings

# Keys that configure a cluster this stack creates: with existingCluster they would be
# silently ignored, so they are refused instead.
CREATED_CLUSTER_KEYS = {
    "network": "the VPC belongs to the existing cluster",
    "clusterEndpoint": "the API endpoint is the existing cluster's own",
    "systemNodeGroup": "the existing cluster runs its own system nodes",
    "adminRoleArns": "grant access with the existing cluster's own access entries",
    "clusterLogRetentionDays": "the control-plane log group is the existing cluster's",
    "protect": "it guards the control plane and its secrets key, which this stack does not own",
}
# Keys that are not inputs of the component package (components/package.py), which is for an
# existing cluster only: those above, and the cluster's name, which is existingCluster.name.
NOT_PACKAGE_INPUTS = {**CREATED_CLUSTER_KEYS, "clusterName": "it is existingCluster.name"}

# A Kubernetes label key (an optional DNS subdomain prefix and `/`, then a name of at most 63
# characters) and value (at most 63, possibly empty): apimachinery's IsQualifiedName and
# IsValidLabelValue.
_LABEL_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?" + _LABEL_NAME + "$"
)
_LABEL_VALUE = re.compile(r"^" + _LABEL_NAME + "?$")
_MAX_LABEL_PREFIX = 253


class ExistingClusterSettings(_Settings):
    """An EKS cluster this stack adds GPU sharing to, and leaves alone otherwise."""

    name: str = Field(
        description="Name of the EKS cluster, read with eks:DescribeCluster when the program "
        "runs. clusterName is taken from it, and kubernetesVersion, when set, must equal its "
        "version. With a Karpenter installed here it must authenticate with "
        f"{listing(facts.ACCESS_ENTRY_AUTHENTICATION_MODES, last='or')} (access entries); "
        "managed node groups alone also work on a CONFIG_MAP cluster."
    )
    private_subnet_ids: list[str] = Field(
        description="Private subnets (`subnet-...`) of the cluster's VPC for the GPU node "
        "groups (and, with a Karpenter installed here, tagged for its discovery where "
        "untagged: docs/existing-cluster.md#karpenters-discovery-tags). Each must be in the "
        "cluster's VPC, which is checked when the program runs."
    )
    pod_identity_agent: Literal["installed", "create"] | None = Field(
        default=None,
        description="Required to install Karpenter, whose controller gets its AWS credentials "
        f"through EKS Pod Identity: `installed` when the cluster runs the "
        f"{facts.POD_IDENTITY_AGENT_ADDON} add-on already (creating it again fails), `create` "
        "to add it (and remove it on destroy); `create` is refused unless a Karpenter is "
        "installed here (karpenter.enabled, install not false), the only reason to add it.",
    )
    system_node_selector: dict[str, str] = Field(
        default={},
        description=(
            "Node labels of the cluster's own system nodes, where this stack places its "
            "cluster-wide controllers (Karpenter's controller, Node Feature Discovery's master "
            "and garbage collector with devicePlugin.gfd). Unset: no selector, so they run on "
            "any untainted node. Give labels every such node carries, e.g. "
            "{eks.amazonaws.com/nodegroup: core}, valid Kubernetes label keys and values; a "
            "selector no node matches leaves them Pending. See "
            "docs/existing-cluster.md#where-cluster-wide-controllers-run."
        ),
    )
    node_security_group_ids: list[str] = Field(
        default=[],
        description=(
            "Security groups the cluster's other nodes run in besides (or instead of) the EKS "
            "cluster security group, such as terraform-aws-eks's node security group (sg-...). "
            "GPU node groups' launch templates and Karpenter node classes get them beside the "
            "cluster security group (EKS adds the cluster security group only to a launch "
            "template that names none), so GPU pods reach CoreDNS and other pods where those "
            "groups' rules admit only their own members. At most 15; each must be in the "
            "cluster's VPC, checked when the program runs. See "
            "docs/existing-cluster.md#security-groups-of-gpu-nodes."
        ),
    )

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _CLUSTER_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid EKS cluster name")
        return name

    @field_validator("private_subnet_ids")
    @classmethod
    def _subnets(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not _SUBNET_ID.match(i)]
        if bad:
            raise ValueError(f"not subnet IDs (subnet-...): {', '.join(bad)}")
        if not ids:
            raise ValueError("at least one private subnet of the cluster's VPC is required")
        if len(set(ids)) != len(ids):
            raise ValueError("lists a subnet more than once")
        return ids

    @field_validator("system_node_selector")
    @classmethod
    def _selector(cls, labels: dict[str, str]) -> dict[str, str]:
        bad = [
            f"{key}={value}"
            for key, value in labels.items()
            if not _LABEL_KEY.match(key)
            or len(key.partition("/")[0]) > _MAX_LABEL_PREFIX
            or not _LABEL_VALUE.match(value)
        ]
        if bad:
            raise ValueError(f"not Kubernetes node labels (key=value): {', '.join(bad)}")
        return labels

    @field_validator("node_security_group_ids")
    @classmethod
    def _security_groups(cls, ids: list[str]) -> list[str]:
        security_group_ids(ids)
        most = facts.MAX_SECURITY_GROUPS_PER_INTERFACE - 1
        if len(ids) > most:
            raise ValueError(
                f"{len(ids)} security groups; a node's network interface takes at most "
                f"{facts.MAX_SECURITY_GROUPS_PER_INTERFACE}, the cluster security group and "
                f"{most} of these"
            )
        return ids


def static_problems(data: Mapping[str, Any]) -> list[str]:
    """Offline checks of an existing-cluster stack's raw config, each 'key.path: why'."""
    existing = data.get("existingCluster")
    karpenter = data.get("karpenter")
    karpenter = karpenter if isinstance(karpenter, Mapping) else {}
    installs_karpenter = karpenter.get("enabled") is True and karpenter.get(
        "install", KarpenterSettings.model_fields["install"].default
    )
    if not isinstance(existing, Mapping):
        if karpenter.get("install") is False:
            return [
                "karpenter.install: false adds pools to a Karpenter that already runs, which "
                "only a cluster given in existingCluster can have; remove it"
            ]
        return []
    problems = [
        f"{key}: only applies to a cluster this stack creates ({why}); remove it, or remove "
        "existingCluster"
        for key, why in CREATED_CLUSTER_KEYS.items()
        if key in data
    ]
    name = existing.get("name")
    if "clusterName" in data and isinstance(name, str) and data["clusterName"] != name:
        problems.append(
            f"clusterName: '{data['clusterName']}' is not existingCluster.name '{name}'; "
            "leave clusterName out (it is taken from existingCluster.name)"
        )
    # The hint's command names the cluster when the stack file does (existingCluster.name
    # missing or not a string is reported on its own).
    cluster = name if isinstance(name, str) and name else "<cluster>"
    if installs_karpenter and "podIdentityAgent" not in existing:
        problems.append(
            "existingCluster.podIdentityAgent: required to install Karpenter on an existing "
            "cluster: `installed` if it runs the eks-pod-identity-agent add-on (aws eks "
            f"describe-addon --cluster-name {cluster} --addon-name eks-pod-identity-agent), "
            "otherwise `create`"
        )
    if not installs_karpenter and existing.get("podIdentityAgent") == "create":
        # The add-on is created only for the Karpenter installed here: without one, `create`
        # would do nothing (and remove an add-on this stack created for it before).
        problems.append(
            "existingCluster.podIdentityAgent: `create` adds the eks-pod-identity-agent add-on "
            "only for the Karpenter this stack installs (karpenter.enabled: true, install not "
            "false), which this stack does not; remove it (an add-on the stack created for "
            "Karpenter before is then removed), or install the add-on yourself"
        )
    return problems


@dataclass(frozen=True)
class LookedUpCluster:
    """What `aws.eks.get_cluster` tells about the existing cluster."""

    name: str
    kubernetes_version: str
    authentication_mode: str
    vpc_id: str
    subnet_ids: tuple[str, ...]
    cluster_security_group_id: str


def existing_cluster_problems(settings: Settings, cluster: LookedUpCluster) -> list[str]:
    """Where the stack's settings and the cluster it was given disagree, each 'key: why'."""
    problems = []
    # Managed node groups join any cluster: on one that authenticates through aws-auth only,
    # EKS maps their node role there itself. The nodes of a Karpenter installed here join
    # through the EC2_LINUX access entry this stack creates, which only API modes have.
    if (
        settings.karpenter_installs_here
        and cluster.authentication_mode not in facts.ACCESS_ENTRY_AUTHENTICATION_MODES
    ):
        problems.append(
            f"karpenter.enabled: cluster '{cluster.name}' authenticates with "
            f"{cluster.authentication_mode} only, and the nodes of the Karpenter installed here "
            "join through an access entry, which needs API or API_AND_CONFIG_MAP. This stack "
            f"does not change the cluster: switch it (aws eks update-cluster-config --name "
            f"{cluster.name} --access-config authenticationMode=API_AND_CONFIG_MAP) and run "
            "again, or add pools to a Karpenter that runs there already (karpenter.install: "
            "false), or leave Karpenter off (GPU node groups need no access entry)"
        )
    if cluster.authentication_mode not in facts.ACCESS_ENTRY_AUTHENTICATION_MODES:
        # A tenant's principals get their namespace through access entries.
        problems.extend(
            f"tenants.{name}.principals: cluster '{cluster.name}' authenticates with "
            f"{cluster.authentication_mode} only, and a tenant's principals are given their "
            "namespace through EKS access entries, which need API or API_AND_CONFIG_MAP. This "
            "stack does not change the cluster: switch it (aws eks update-cluster-config --name "
            f"{cluster.name} --access-config authenticationMode=API_AND_CONFIG_MAP) and run "
            "again, or leave principals out and map the roles in aws-auth yourself"
            for name, tenant in settings.tenants.items()
            if tenant.principals
        )
    version = cluster.kubernetes_version
    if settings.kubernetes_version_given:
        if settings.kubernetes_version != version:
            problems.append(
                f"kubernetesVersion: the stack says {settings.kubernetes_version}, but cluster "
                f"'{cluster.name}' runs {version}; set it to \"{version}\" or leave it out "
                "(this stack never upgrades a cluster it did not create)"
            )
        return problems
    if version not in facts.KUBERNETES_RELEASES:
        supported = ", ".join(facts.KUBERNETES_RELEASES)
        problems.append(
            f"existingCluster.name: cluster '{cluster.name}' runs Kubernetes {version}, which "
            f"this program has no facts for (supported: {supported})"
        )
    elif settings.karpenter.enabled:
        ami_problem = settings.karpenter.ami_release_problem(version)
        if ami_problem:
            problems.append(f"{ami_problem} (the cluster runs {version})")
    return problems


@dataclass(frozen=True)
class Ec2Object:
    """A subnet or security group as EC2 describes it (`aws.ec2.get_subnet`,
    `aws.ec2.get_security_group`): where it is, and its tags."""

    id: str
    vpc_id: str
    tags: Mapping[str, str]


def subnet_problems(cluster: LookedUpCluster, subnets: Sequence[Ec2Object]) -> list[str]:
    """`existingCluster.privateSubnetIds` entries outside the cluster's VPC (a node group there
    would fail only at CreateNodegroup), each 'key: why'."""
    return [
        f"existingCluster.privateSubnetIds[{i}]: subnet {subnet.id} is in {subnet.vpc_id}, not "
        f"in the VPC of cluster '{cluster.name}' ({cluster.vpc_id}); list private subnets of "
        f"{cluster.vpc_id} (docs/existing-cluster.md shows how to find them)"
        for i, subnet in enumerate(subnets)
        if subnet.vpc_id != cluster.vpc_id
    ]


def security_group_problems(cluster: LookedUpCluster, groups: Sequence[Ec2Object]) -> list[str]:
    """`existingCluster.nodeSecurityGroupIds` entries outside the cluster's VPC (a launch
    template naming one fails only when its node group is created), each 'key: why'."""
    return [
        f"existingCluster.nodeSecurityGroupIds[{i}]: security group {group.id} is in "
        f"{group.vpc_id}, not in the VPC of cluster '{cluster.name}' ({cluster.vpc_id})"
        for i, group in enumerate(groups)
        if group.vpc_id != cluster.vpc_id
    ]


@dataclass(frozen=True)
class ExistingNodeGroup:
    """A managed node group the cluster runs, and the security groups its launch template
    names (None: none named, so EKS puts its nodes in the cluster security group)."""

    name: str
    security_group_ids: tuple[str, ...] | None


def node_group_security_warnings(
    cluster: LookedUpCluster,
    node_groups: Sequence[ExistingNodeGroup],
    node_security_group_ids: Sequence[str],
) -> list[str]:
    """The cluster's node groups whose nodes share no security group with our GPU nodes (the
    cluster security group and `existingCluster.nodeSecurityGroupIds`).

    EKS puts managed nodes in the cluster security group only when their launch template names
    no group; terraform-aws-eks names its node security group alone unless
    attach_cluster_primary_security_group is set, and that group admits DNS (53) and
    node-to-node traffic only from itself (node_groups.tf, v21.19.0). CoreDNS on such nodes
    then never answers GPU pods, and nothing fails: a warning, since the rules themselves
    (another group may admit ours) cannot be judged from here."""
    ours = {cluster.cluster_security_group_id, *node_security_group_ids}
    return [
        f"existingCluster.nodeSecurityGroupIds: node group '{group.name}' of cluster "
        f"'{cluster.name}' runs in {', '.join(group.security_group_ids)}, none of which GPU "
        f"nodes of this stack are in (the cluster security group "
        f"{cluster.cluster_security_group_id}"
        + (f" and {', '.join(node_security_group_ids)}" if node_security_group_ids else "")
        + "). If CoreDNS, or anything GPU pods call, runs there and those groups admit only "
        "their own members, GPU pods cannot reach it: add the node group's node security group "
        "to existingCluster.nodeSecurityGroupIds (docs/existing-cluster.md)"
        for group in node_groups
        if group.security_group_ids is not None and not set(group.security_group_ids) & ours
    ]


@dataclass(frozen=True)
class DiscoveryTagging:
    """Where a Karpenter installed on an existing cluster puts its discovery tag: on the
    resources that lack it, and on those a run of the same stack tagged before (they carry
    `facts.DISCOVERY_TAG_ADDED_BY: added_by`), never on one that carried it already."""

    # `karpenter.sh/discovery`'s value: the cluster's name.
    value: str
    # Which stack adds the tags (`<project>/<stack>`), written beside each.
    added_by: str
    # The cluster security group, or None when it carries the tag already.
    security_group_id: str | None
    subnet_ids: tuple[str, ...]


def discovery_tagging(
    cluster: LookedUpCluster,
    added_by: str,
    security_group: Ec2Object,
    subnets: Sequence[Ec2Object],
) -> tuple[DiscoveryTagging, list[str]]:
    """What to tag, and the resources whose discovery tag names another cluster or Karpenter
    (overwriting it would take them from whatever discovers them by it), each 'key: why'."""
    key = facts.KARPENTER_DISCOVERY_TAG
    problems = []

    def ours_to_tag(resource: Ec2Object, where: str) -> bool:
        value = resource.tags.get(key)
        if value == cluster.name or value is None:
            # Absent, or put there by this stack before: tag (again). Put there by anyone
            # else: leave it, and leave it on destroy.
            return value is None or resource.tags.get(facts.DISCOVERY_TAG_ADDED_BY) == added_by
        problems.append(
            f"{where} carries the tag {key}={value}, but the Karpenter installed here finds "
            f"its subnets and security group by {key}={cluster.name}, and this stack does not "
            f"overwrite a tag it did not add. If a Karpenter already discovers by '{value}', "
            f"add pools to it instead: karpenter.install: false with karpenter.discoveryTagValue:"
            f" {value} and karpenter.nodeRoleName; otherwise change the tag on {resource.id} to "
            f"{key}={cluster.name} (or remove it) and run again"
        )
        return False

    tag_security_group = ours_to_tag(
        security_group,
        f"karpenter.install: the security group of cluster '{cluster.name}' ({security_group.id})",
    )
    subnet_ids = tuple(
        subnet.id
        for i, subnet in enumerate(subnets)
        if ours_to_tag(subnet, f"existingCluster.privateSubnetIds[{i}]: subnet {subnet.id}")
    )
    return (
        DiscoveryTagging(
            value=cluster.name,
            added_by=added_by,
            security_group_id=security_group.id if tag_security_group else None,
            subnet_ids=subnet_ids,
        ),
        problems,
    )
