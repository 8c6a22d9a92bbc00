"""Existing-cluster mode: GPU sharing added to an EKS cluster this stack does not create.

What can be known offline is checked when the settings load (`static_problems`, on the raw
config: a key the stack file sets is set, whatever its value); what needs the cluster is
checked once it has been read (`existing_cluster_problems`), before anything is registered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import _CLUSTER_NAME, _SUBNET_ID, _Settings, listing
from eks_gpu_slicing.settings.karpenter import KarpenterSettings

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


class ExistingClusterSettings(_Settings):
    """An EKS cluster this stack adds GPU sharing to, and leaves alone otherwise."""

    name: str = Field(
        description="Name of the EKS cluster, read with eks:DescribeCluster when the program "
        "runs. clusterName is taken from it, and kubernetesVersion, when set, must equal its "
        "version. It must authenticate with "
        f"{listing(facts.ACCESS_ENTRY_AUTHENTICATION_MODES, last='or')} (access entries)."
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
        "to add it (and remove it on destroy).",
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
    if installs_karpenter and "podIdentityAgent" not in existing:
        problems.append(
            "existingCluster.podIdentityAgent: required to install Karpenter on an existing "
            "cluster: `installed` if it runs the eks-pod-identity-agent add-on (aws eks "
            f"describe-addon --cluster-name {name} --addon-name eks-pod-identity-agent), "
            "otherwise `create`"
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
    if cluster.authentication_mode not in facts.ACCESS_ENTRY_AUTHENTICATION_MODES:
        problems.append(
            f"existingCluster.name: cluster '{cluster.name}' authenticates with "
            f"{cluster.authentication_mode} only; GPU nodes and Karpenter join through access "
            "entries, which need API or API_AND_CONFIG_MAP. This stack does not change the "
            f"cluster: switch it (aws eks update-cluster-config --name {cluster.name} "
            "--access-config authenticationMode=API_AND_CONFIG_MAP) and run again"
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
