"""eks-gpu-slicing: an EKS cluster whose NVIDIA GPUs are shared between pods.

Settings (validated stack config) -> components -> stack outputs. Nothing else lives here.
"""

import pulumi
import pulumi_aws as aws

from components import (
    ClusterAddons,
    ClusterAddonsArgs,
    DemoWorkload,
    DemoWorkloadArgs,
    DevicePlugin,
    DevicePluginArgs,
    GpuCluster,
    GpuClusterArgs,
    GpuMetrics,
    GpuMetricsArgs,
    Karpenter,
    KarpenterArgs,
    Namespaces,
    NamespacesArgs,
    Network,
    NetworkArgs,
    NodeGroup,
    NodeGroupArgs,
    SharingBenchmark,
    SharingBenchmarkArgs,
)
from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import look_up_aws_context
from eks_gpu_slicing.builders.bottlerocket import user_data as bottlerocket_user_data
from eks_gpu_slicing.builders.karpenter import discovery_tags, node_pool_capacity
from eks_gpu_slicing.builders.pod_security import namespace_levels, workload_placements
from eks_gpu_slicing.builders.workloads import (
    gpu_node_group_labels,
    gpu_node_taints,
    system_node_labels,
    virtual_gpu_capacity,
)
from eks_gpu_slicing.settings.pulumi_config import read_settings

settings = read_settings()
aws_context = look_up_aws_context(settings)
tags = {"project": facts.PROJECT, "stack": pulumi.get_stack(), **settings.tags}

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
        cluster=cluster,
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
gpu_nodes = {
    name: NodeGroup(
        f"gpu-{name}",
        NodeGroupArgs(
            cluster=cluster,
            subnet_ids=network.private_subnet_ids,
            group=group,
            ami_type=group.ami_type,
            labels=gpu_node_group_labels(
                group.sharing, settings.profile_of(group), bottlerocket=group.bottlerocket
            ),
            taints=gpu_node_taints(),
            bottlerocket_user_data=(
                bottlerocket_user_data(settings.profile_of(group)) if group.bottlerocket else None
            ),
            tags=tags,
        ),
    )
    for name, group in settings.gpu_node_groups.items()
}

namespaces = Namespaces(
    "namespaces",
    NamespacesArgs(
        provider=cluster.provider,
        names=settings.namespaces,
        levels=namespace_levels(workload_placements(settings)),
    ),
)

device_plugin = DevicePlugin(
    "nvidia-device-plugin",
    DevicePluginArgs(
        provider=cluster.provider,
        settings=settings.device_plugin,
        profiles=settings.sharing,
        depends_on=namespaces.depends_on(settings.device_plugin.namespace),
    ),
)

if settings.gpu_metrics.enabled:
    GpuMetrics(
        "gpu-metrics",
        GpuMetricsArgs(
            provider=cluster.provider,
            settings=settings.gpu_metrics,
            resource_names=settings.gpu_resource_names(),
            depends_on=[
                *gpu_nodes.values(),
                *namespaces.depends_on(settings.gpu_metrics.namespace),
            ],
        ),
    )

if settings.karpenter.enabled:
    karpenter = Karpenter(
        "karpenter",
        KarpenterArgs(
            settings=settings.karpenter,
            profiles=settings.sharing,
            cluster_name=settings.cluster_name,
            aws=aws_context,
            provider=cluster.provider,
            cluster=cluster.cluster,
            # Read after the cluster exists: pulumi-eks's `eks_cluster` output is a resource
            # reference, which Pulumi's mocks cannot resolve.
            cluster_security_group_id=aws.eks.get_cluster_output(
                name=settings.cluster_name,
                opts=pulumi.InvokeOutputOptions(depends_on=[cluster.cluster]),
            ).vpc_config.cluster_security_group_id,
            existing_private_subnet_ids=settings.network.private_subnet_ids,
            controller_depends_on=[system_nodes, addons],
            namespace_depends_on=namespaces.depends_on(settings.karpenter.namespace),
            tags=tags,
        ),
    )
    pulumi.export(
        "karpenterNodePools",
        {
            name: node_pool_capacity(name, pool, settings.sharing[pool.sharing])
            for name, pool in settings.karpenter.node_pools.items()
        },
    )

if settings.demo_workload.enabled:
    DemoWorkload(
        "demo",
        DemoWorkloadArgs(
            provider=cluster.provider,
            settings=settings.demo_workload,
            profile_name=settings.demo_profile_name,
            profile=settings.sharing[settings.demo_profile_name],
            depends_on=[
                device_plugin,
                *gpu_nodes.values(),
                *namespaces.depends_on(settings.demo_workload.namespace),
            ],
        ),
    )

if settings.benchmark_groups:
    benchmark = SharingBenchmark(
        "sharing-benchmark",
        SharingBenchmarkArgs(
            provider=cluster.provider,
            settings=settings.benchmark,
            groups=settings.benchmark_groups,
            depends_on=[
                device_plugin,
                *(gpu_nodes[name] for name in settings.benchmark_groups),
                *namespaces.depends_on(settings.benchmark.namespace),
            ],
        ),
    )
    pulumi.export("benchmarkJobs", benchmark.job_names)

pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("devicePluginConfigMap", device_plugin.config_map_name)
pulumi.export(
    "gpuNodeGroups",
    {
        name: virtual_gpu_capacity(group, settings.profile_of(group), aws_context.region)
        for name, group in settings.gpu_node_groups.items()
    },
)
