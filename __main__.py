"""eks-gpu-slicing: an EKS cluster whose NVIDIA GPUs are shared between pods.

Settings (validated stack config) -> a cluster (created here, or an existing one looked up)
-> GpuSharing -> stack outputs. Nothing else lives here.
"""

import pulumi

from components.cluster_source import create_cluster, look_up_cluster
from components.gpu_sharing import GpuSharing, GpuSharingArgs
from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import look_up_aws_context
from eks_gpu_slicing.settings.pulumi_config import read_settings

settings = read_settings()
aws_context = look_up_aws_context(settings)
tags = {facts.PROJECT_TAG: facts.PROJECT, facts.STACK_TAG: pulumi.get_stack(), **settings.tags}

if settings.existing_cluster is None:
    cluster = create_cluster(settings, aws_context, tags)
else:
    cluster = look_up_cluster(settings, aws_context)

sharing = GpuSharing(
    "gpu-sharing", GpuSharingArgs(cluster=cluster, settings=settings, aws=aws_context, tags=tags)
)

if sharing.karpenter_node_pools is not None:
    pulumi.export("karpenterNodePools", sharing.karpenter_node_pools)
if sharing.benchmark_jobs is not None:
    pulumi.export("benchmarkJobs", sharing.benchmark_jobs)
pulumi.export("clusterName", cluster.name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("devicePluginConfigMap", sharing.device_plugin_config_map)
pulumi.export("gpuNodeGroups", sharing.gpu_node_groups)
if sharing.tenants is not None:
    pulumi.export("tenants", sharing.tenants)
    pulumi.export("tenantQuotaTotals", sharing.tenant_quota_totals)
