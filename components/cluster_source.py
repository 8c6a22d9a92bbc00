"""Where the cluster comes from: created here (VPC, control plane, system nodes, CoreDNS) or
looked up by name (existing-cluster mode). Both end in the ClusterHandle GpuSharing takes."""

from __future__ import annotations

import json

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
from eks_gpu_slicing.builders.workloads import system_node_labels
from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.settings.existing_cluster import LookedUpCluster, existing_cluster_problems


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


def read_existing_cluster(settings: Settings, aws_context: AwsContext) -> aws.eks.GetClusterResult:
    """The existing cluster as EKS describes it; a RunError when it cannot be read or when it
    and the settings disagree. Registers nothing."""
    existing = settings.existing_cluster
    assert existing is not None
    try:
        found = aws.eks.get_cluster(name=existing.name)
    except Exception as exc:  # the provider's error names the cluster and the cause
        raise pulumi.RunError(
            f"existingCluster.name: cannot read EKS cluster '{existing.name}' in "
            f"{aws_context.region}: {exc}"
        ) from None
    problems = existing_cluster_problems(settings, _looked_up(found))
    if problems:
        raise pulumi.RunError(
            f"existingCluster '{existing.name}' and this stack's configuration disagree:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )
    return found


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
    found: aws.eks.GetClusterResult,
    settings: Settings,
    aws_context: AwsContext,
    parent: pulumi.Resource | None = None,
) -> ClusterHandle:
    """The handle of a cluster read by read_existing_cluster, with its Kubernetes provider."""
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
        untagged_private_subnet_ids=existing.private_subnet_ids,
        extra_gpu_node_labels={facts.GPU_OPERATOR_OPERANDS_LABEL: "false"},
        pod_identity_agent_installed=existing.pod_identity_agent == "installed",
        kubeconfig=kubeconfig,
    )
