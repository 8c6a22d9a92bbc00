"""Where the cluster comes from: created here (VPC, control plane, system nodes, CoreDNS) or
looked up by name (existing-cluster mode). Both end in the ClusterHandle GpuSharing takes."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.cluster import GpuCluster, GpuClusterArgs
from components.gpu_sharing import ClusterHandle
from components.network import Network, NetworkArgs
from components.node_group import NodeGroup, NodeGroupArgs
from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import AwsContext
from eks_gpu_slicing.builders.karpenter import discovery_tags
from eks_gpu_slicing.builders.kubeconfig import exec_kubeconfig
from eks_gpu_slicing.builders.workloads import gpu_operator_opt_out_labels, system_node_labels
from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.settings.existing_cluster import (
    DiscoveryTagging,
    Ec2Object,
    ExistingNodeGroup,
    LookedUpCluster,
    discovery_tagging,
    existing_cluster_problems,
    node_group_security_warnings,
    security_group_problems,
    subnet_problems,
)


def create_cluster(
    settings: Settings, aws_context: AwsContext, tags: dict[str, str]
) -> ClusterHandle:
    """A VPC (or the given one), the EKS control plane, the system node group and CoreDNS.

    These stay children of the stack, as they always were: their URNs do not change."""
    network = Network(
        "network",
        NetworkArgs(
            settings=settings.network,
            availability_zones=aws_context.availability_zones,
            tags=tags,
            # Karpenter finds the subnets for its nodes by this tag.
            private_subnet_tags=discovery_tags(settings.cluster_name)
            if settings.karpenter.enabled
            else {},
        ),
    )
    cluster = GpuCluster(
        "cluster",
        GpuClusterArgs(
            cluster_name=settings.cluster_name,
            kubernetes_version=settings.kubernetes_version,
            vpc_id=network.vpc_id,
            public_subnet_ids=network.public_subnet_ids,
            private_subnet_ids=network.private_subnet_ids,
            endpoint=settings.cluster_endpoint,
            aws=aws_context,
            log_retention_days=settings.cluster_log_retention_days,
            admin_role_arns=settings.admin_role_arns,
            protect=settings.protect,
            tags=tags,
        ),
    )
    system_nodes = NodeGroup(
        "system",
        NodeGroupArgs(
            cluster_name=settings.cluster_name,
            eks_cluster=cluster.cluster,
            node_role=cluster.node_role,
            node_role_policies=cluster.node_role_policies,
            subnet_ids=network.private_subnet_ids,
            group=settings.system_node_group,
            ami_type=facts.CPU_AMI_TYPE,
            labels=system_node_labels(),
            tags=tags,
        ),
    )
    addons = ClusterAddons(
        "addons",
        ClusterAddonsArgs(cluster_name=cluster.cluster_name, depends_on=[system_nodes], tags=tags),
    )
    security_group_id = None
    if settings.karpenter.enabled:
        # Read after the cluster exists: pulumi-eks's `eks_cluster` output is a resource
        # reference, which Pulumi's mocks cannot resolve.
        security_group_id = aws.eks.get_cluster_output(
            name=settings.cluster_name,
            opts=pulumi.InvokeOutputOptions(depends_on=[cluster.cluster]),
        ).vpc_config.cluster_security_group_id
    return ClusterHandle(
        name=settings.cluster_name,
        kubernetes_version=settings.kubernetes_version,
        provider=cluster.provider,
        private_subnet_ids=network.private_subnet_ids,
        cluster_security_group_id=security_group_id,
        eks_cluster=cluster.cluster,
        node_role=cluster.node_role,
        node_role_policies=cluster.node_role_policies,
        cluster_resources=[cluster.cluster],
        system_ready=[system_nodes, addons],
        untagged_private_subnet_ids=settings.network.private_subnet_ids,
        system_node_selector=system_node_labels(),
        kubeconfig=cluster.kubeconfig,
    )


def look_up_cluster(
    settings: Settings, aws_context: AwsContext, parent: pulumi.Resource | None = None
) -> ClusterHandle:
    """The cluster `existingCluster.name` names, read now (a data source: nothing of it enters
    the stack's state), with a Kubernetes provider for it; a RunError naming the keys to
    change when the cluster and the settings disagree. `parent`: whose child the provider is
    (the stack's own when None)."""
    return existing_cluster_handle(
        read_existing_cluster(settings, aws_context), settings, aws_context, parent
    )


@dataclass(frozen=True)
class ReadCluster:
    """An existing cluster as read and checked by read_existing_cluster."""

    described: aws.eks.GetClusterResult
    # Where a Karpenter installed here tags for discovery; None when none is installed here.
    discovery_tagging: DiscoveryTagging | None


def read_existing_cluster(settings: Settings, aws_context: AwsContext) -> ReadCluster:
    """The existing cluster as EKS describes it, with its private subnets and (for a Karpenter
    installed here) its security group as EC2 does; a RunError when one cannot be read or
    when they and the settings disagree. Registers nothing."""
    existing = settings.existing_cluster
    assert existing is not None
    try:
        found = aws.eks.get_cluster(name=existing.name)
    except Exception as exc:  # the provider's error names the cluster and the cause
        raise pulumi.RunError(
            f"existingCluster.name: cannot read EKS cluster '{existing.name}' in "
            f"{aws_context.region}: {exc}"
        ) from None
    cluster = _looked_up(found)
    problems = existing_cluster_problems(settings, cluster)
    subnets, unread = _read_subnets(existing.private_subnet_ids)
    problems += unread + subnet_problems(cluster, subnets)
    groups, unread_groups = _read_node_security_groups(existing.node_security_group_ids)
    problems += unread_groups + security_group_problems(cluster, groups)
    tagging = None
    if settings.karpenter.enabled and settings.karpenter.install and not unread:
        try:
            security_group = _security_group(cluster.cluster_security_group_id)
        except Exception as exc:
            problems.append(
                f"karpenter.install: cannot read the security group of cluster "
                f"'{cluster.name}' ({cluster.cluster_security_group_id}): {exc}"
            )
        else:
            tagging, tag_problems = discovery_tagging(
                cluster,
                added_by=f"{pulumi.get_project()}/{pulumi.get_stack()}",
                security_group=security_group,
                subnets=subnets,
            )
            problems += tag_problems
    if problems:
        raise pulumi.RunError(
            f"existingCluster '{existing.name}' and this stack's configuration disagree:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    for warning in node_group_security_warnings(
        cluster, _read_node_groups(cluster), existing.node_security_group_ids
    ):
        pulumi.log.warn(warning)
    return ReadCluster(described=found, discovery_tagging=tagging)


def _read_subnets(subnet_ids: list[str]) -> tuple[list[Ec2Object], list[str]]:
    """The subnets as EC2 describes them, and a problem for each that cannot be read."""
    subnets, problems = [], []
    for i, subnet_id in enumerate(subnet_ids):
        try:
            subnet = aws.ec2.get_subnet(id=subnet_id)
        except Exception as exc:  # the provider's error says why (no such subnet, access)
            problems.append(
                f"existingCluster.privateSubnetIds[{i}]: cannot read subnet {subnet_id}: {exc}"
            )
            continue
        subnets.append(Ec2Object(id=subnet.id, vpc_id=subnet.vpc_id, tags=subnet.tags or {}))
    return subnets, problems


def _read_node_security_groups(group_ids: list[str]) -> tuple[list[Ec2Object], list[str]]:
    """`existingCluster.nodeSecurityGroupIds` as EC2 describes them, and a problem for each
    that cannot be read."""
    groups, problems = [], []
    for i, group_id in enumerate(group_ids):
        try:
            groups.append(_security_group(group_id))
        except Exception as exc:  # the provider's error says why (no such group, access)
            problems.append(
                f"existingCluster.nodeSecurityGroupIds[{i}]: cannot read security group "
                f"{group_id}: {exc}"
            )
    return groups, problems


def _read_node_groups(cluster: LookedUpCluster) -> list[ExistingNodeGroup]:
    """The cluster's managed node groups and the security groups their launch templates name
    (the latest version: what the data source reads), for a warning only: a group that cannot
    be read is left out, and a warning says so."""
    try:
        names = aws.eks.get_node_groups(cluster_name=cluster.name).names or []
    except Exception as exc:
        pulumi.log.warn(
            f"existingCluster: cannot list the node groups of cluster '{cluster.name}' to check "
            f"they share a security group with GPU nodes: {exc}"
        )
        return []
    groups = []
    for name in sorted(names):
        try:
            described = aws.eks.get_node_group(cluster_name=cluster.name, node_group_name=name)
            template_ids = [t.id for t in described.launch_templates or [] if t.id]
            named: tuple[str, ...] | None = None
            if template_ids:
                template = aws.ec2.get_launch_template(id=template_ids[0])
                named = tuple(template.vpc_security_group_ids or ()) + tuple(
                    group
                    for interface in template.network_interfaces or []
                    for group in interface.security_groups or []
                )
        except Exception as exc:
            pulumi.log.warn(
                f"existingCluster: cannot read node group '{name}' of cluster "
                f"'{cluster.name}' or its launch template: {exc}"
            )
            continue
        groups.append(ExistingNodeGroup(name=name, security_group_ids=named or None))
    return groups


def _security_group(group_id: str) -> Ec2Object:
    group = aws.ec2.get_security_group(id=group_id)
    return Ec2Object(id=group.id, vpc_id=group.vpc_id, tags=group.tags or {})


def _looked_up(found: aws.eks.GetClusterResult) -> LookedUpCluster:
    return LookedUpCluster(
        name=found.name,
        kubernetes_version=found.version,
        authentication_mode=found.access_configs[0].authentication_mode
        if found.access_configs
        else "CONFIG_MAP",
        vpc_id=found.vpc_config.vpc_id,
        subnet_ids=tuple(found.vpc_config.subnet_ids or ()),
        cluster_security_group_id=found.vpc_config.cluster_security_group_id,
    )


def existing_cluster_handle(
    read: ReadCluster,
    settings: Settings,
    aws_context: AwsContext,
    parent: pulumi.Resource | None = None,
) -> ClusterHandle:
    """The handle of a cluster read by read_existing_cluster, with its Kubernetes provider."""
    found = read.described
    existing = settings.existing_cluster
    assert existing is not None
    kubeconfig = pulumi.Output.secret(
        json.dumps(
            exec_kubeconfig(
                cluster_name=found.name,
                endpoint=found.endpoint,
                certificate_authority=found.certificate_authorities[0].data,
                region=aws_context.region,
                profile=aws_context.profile,
            )
        )
    )
    provider = k8s.Provider(
        "existing-cluster-k8s",
        kubeconfig=kubeconfig,
        opts=pulumi.ResourceOptions(parent=parent) if parent is not None else None,
    )
    return ClusterHandle(
        name=found.name,
        kubernetes_version=found.version,
        provider=provider,
        private_subnet_ids=list(existing.private_subnet_ids),
        cluster_security_group_id=found.vpc_config.cluster_security_group_id,
        discovery_tagging=read.discovery_tagging,
        extra_gpu_node_labels=gpu_operator_opt_out_labels(),
        system_node_selector=dict(existing.system_node_selector),
        gpu_node_security_group_ids=_gpu_node_security_groups(
            found.vpc_config.cluster_security_group_id, existing.node_security_group_ids
        ),
        other_gpu_nodes=True,
        pod_identity_agent_installed=existing.pod_identity_agent == "installed",
        kubeconfig=kubeconfig,
    )


def _gpu_node_security_groups(cluster_group: str, node_groups: list[str]) -> tuple[str, ...]:
    """GPU nodes' security groups on an existing cluster: none named (EKS's default, the
    cluster security group) unless nodeSecurityGroupIds is set, then the cluster security
    group and those, once each."""
    if not node_groups:
        return ()
    return tuple(dict.fromkeys([cluster_group, *node_groups]))
