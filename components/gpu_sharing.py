"""GPU sharing on a cluster it is given: everything after the cluster, in one component.

The stack hands it a cluster it created (Network + GpuCluster) or one it looked up by name
(existing-cluster mode); other Pulumi programs can hand it theirs. Either way the same code
registers the GPU node groups, the namespaces, the device plugin and its sharing ConfigMap,
Karpenter, GPU metrics, the demo and the benchmark.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.benchmark import SharingBenchmark, SharingBenchmarkArgs
from components.demo_workload import DemoWorkload, DemoWorkloadArgs
from components.device_plugin import DevicePlugin, DevicePluginArgs
from components.gpu_metrics import GpuMetrics, GpuMetricsArgs
from components.hami import Hami, HamiArgs
from components.karpenter import Karpenter, KarpenterArgs
from components.mig_manager import MigManager, MigManagerArgs
from components.namespaces import Namespaces, NamespacesArgs
from components.node_group import NodeGroup, NodeGroupArgs
from components.tenants import Tenants, TenantsArgs
from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import AwsContext
from eks_gpu_slicing.builders import mig
from eks_gpu_slicing.builders.bottlerocket import user_data as bottlerocket_user_data
from eks_gpu_slicing.builders.karpenter import node_pool_capacity
from eks_gpu_slicing.builders.pod_security import namespace_levels, workload_placements
from eks_gpu_slicing.builders.tenants import quota_totals, tenant_report
from eks_gpu_slicing.builders.workloads import (
    gpu_node_group_labels,
    gpu_node_taints,
    virtual_gpu_capacity,
)
from eks_gpu_slicing.settings import Settings, SharingProfile
from eks_gpu_slicing.settings.existing_cluster import DiscoveryTagging

GPU_SHARING_TYPE = f"{facts.COMPONENT_PACKAGE}:index:GpuSharing"


@dataclass(frozen=True)
class ClusterHandle:
    """What GPU sharing needs of a cluster, however it came to be."""

    name: str
    # The control plane's minor version (`1.35`): the cluster's own for one looked up.
    kubernetes_version: str
    # Every Kubernetes object is created through it.
    provider: k8s.Provider
    # Where GPU node groups run (and, for a Karpenter installed here, the subnets it tags).
    private_subnet_ids: pulumi.Input[Sequence[str]]
    # EKS's cluster security group, which managed nodes use; Karpenter's node classes find it
    # by the discovery tag put on it. None only when no Karpenter is installed here.
    cluster_security_group_id: pulumi.Input[str] | None = None
    # pulumi-eks's Cluster, for a cluster this stack creates: node groups join through it.
    eks_cluster: eks.Cluster | None = None
    # The role managed nodes run with, when the cluster brings one (with its policy
    # attachments); otherwise GpuSharing creates one for its GPU node groups.
    node_role: aws.iam.Role | None = None
    node_role_policies: Sequence[pulumi.Resource] = ()
    # What Karpenter's cluster-scoped AWS objects (access entry, add-on, tags) wait for: the
    # cluster, when it is created in the same program.
    cluster_resources: Sequence[pulumi.Resource] = ()
    # What a controller must find running first: system nodes and CoreDNS of a new cluster.
    system_ready: Sequence[pulumi.Resource] = ()
    # Private subnets this program did not create, tagged for Karpenter's discovery when it
    # installs Karpenter (subnets it creates carry the tag from the start).
    untagged_private_subnet_ids: Sequence[str] = ()
    # On a cluster we were given, what that Karpenter tags instead (the cluster security group
    # and subnets that lack the tag, read at run time); None: the above and the security group.
    discovery_tagging: DiscoveryTagging | None = None
    # Labels our GPU nodes carry beyond the sharing ones: on a cluster we were given, those
    # that keep a GPU Operator's device plugin and other operands off them.
    extra_gpu_node_labels: Mapping[str, str] = field(default_factory=dict)
    # Labels of the nodes where cluster-wide controllers run (Karpenter's controller, NFD's
    # master and gc): a created cluster's system node group; on one we were given, what the
    # stack file names (existingCluster.systemNodeSelector), else none.
    system_node_selector: Mapping[str, str] = field(default_factory=dict)
    # The security groups of our GPU nodes (launch templates and Karpenter node classes), the
    # cluster security group first; empty: EKS's default, the cluster security group alone
    # (and, for node classes, what the discovery tag finds). EKS adds the cluster security
    # group only to a launch template that names no group, so it is listed when others are.
    gpu_node_security_group_ids: Sequence[str] = ()
    # Whether the cluster may run GPU nodes this stack does not own (one we were given):
    # DaemonSets meant for our GPU nodes then select ours, not every nvidia.com/gpu.present.
    other_gpu_nodes: bool = False
    # Whether the EKS Pod Identity Agent add-on runs already (Karpenter's controller needs it;
    # it is created when not).
    pod_identity_agent_installed: bool = False
    # A kubeconfig for the cluster (secret), exported by the stack.
    kubeconfig: pulumi.Input[str] | None = None


@dataclass(frozen=True)
class GpuSharingArgs:
    cluster: ClusterHandle
    # Validated settings; GpuSharing reads the GPU sections (node groups, sharing, device
    # plugin, Karpenter, metrics, demo, benchmark) and ignores the cluster-creation ones.
    settings: Settings
    # Partition, region and account (IAM policies and ARNs), looked up once.
    aws: AwsContext
    tags: dict[str, str] = field(default_factory=dict)


class GpuSharing(pulumi.ComponentResource):
    """Shared NVIDIA GPUs on one EKS cluster.

    Attributes: `node_groups` (name -> NodeGroup), `namespaces`, `device_plugin`, `hami`,
    `gpu_metrics`, `karpenter`, `tenancy` (the Tenants part), `demo`, `benchmark` (None when
    off), and the reports the stack exports (named as its outputs, which the component package
    serves too):
    `device_plugin_config_map`, `gpu_node_groups` (name -> capacity report),
    `karpenter_node_pools`, `benchmark_jobs`, `tenants` (per tenant) and `tenant_quota_totals`.

    Its parts were top-level components of the stack before it existed; each carries an alias
    to the root stack, so a stack deployed then adopts them (and, through the engine's
    inheritance of parent aliases, their children) instead of replacing them.
    """

    # Whether its parts carry the alias to the root stack (see above). The component package's
    # GpuSharing (components/package.py) has no deployed past to adopt, so it sets False.
    _adopts_stack_parts = True

    def __init__(self, name: str, args: GpuSharingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(GPU_SHARING_TYPE, name, None, opts)
        self._share(name, args)

    def _share(self, name: str, args: GpuSharingArgs) -> None:
        """Everything after the cluster, registered as this component's children: the one
        implementation, whether the stack or the component package built the arguments."""
        self._name = name
        self._args = args
        self._settings = args.settings
        self._cluster = args.cluster
        node_role, node_role_policies = self._node_role()
        self.namespaces = self._namespaces()
        # The MIG config before the node groups whose labels name its layouts, the manager's
        # DaemonSet after them (MigManager says why).
        self.mig_manager = self._mig_manager()
        self.node_groups = self._node_groups(node_role, node_role_policies)
        if self.mig_manager is not None:
            self.mig_manager.serve(list(self.node_groups.values()))
        self.device_plugin = self._device_plugin()
        self.hami = self._hami()
        self.gpu_metrics = self._gpu_metrics()
        self.karpenter = self._karpenter()
        self.tenancy = self._tenants()
        self.demo = self._demo()
        self.benchmark = self._benchmark()

        s = self._settings
        self.device_plugin_config_map = self.device_plugin.config_map_name
        self.gpu_node_groups = {
            group_name: virtual_gpu_capacity(group, s.profile_of(group), args.aws.region)
            for group_name, group in s.gpu_node_groups.items()
        }
        self.karpenter_node_pools = (
            {
                pool_name: node_pool_capacity(pool_name, pool, s.sharing[pool.sharing])
                for pool_name, pool in s.karpenter.node_pools.items()
            }
            if self.karpenter is not None
            else None
        )
        self.benchmark_jobs = self.benchmark.job_names if self.benchmark is not None else None
        # The sharing report's per-tenant section and the quotas' sum against the capacity
        # (None without tenants, so a stack without them exports what it did before).
        self.tenants = tenant_report(s) if s.tenants else None
        self.tenant_quota_totals = quota_totals(s) if s.tenants else None
        outputs: dict = {
            "devicePluginConfigMap": self.device_plugin_config_map,
            "gpuNodeGroups": self.gpu_node_groups,
        }
        if self.karpenter_node_pools is not None:
            outputs["karpenterNodePools"] = self.karpenter_node_pools
        if self.benchmark_jobs is not None:
            outputs["benchmarkJobs"] = self.benchmark_jobs
        if self.tenants is not None:
            outputs["tenants"] = self.tenants
            outputs["tenantQuotaTotals"] = self.tenant_quota_totals
        self.register_outputs(outputs)

    def _part(self) -> pulumi.ResourceOptions:
        """Options of a part: a child of this component that was once a child of the stack."""
        if not self._adopts_stack_parts:
            return pulumi.ResourceOptions(parent=self)
        return pulumi.ResourceOptions(
            parent=self, aliases=[pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
        )

    def _node_role(self) -> tuple[aws.iam.Role, Sequence[pulumi.Resource]]:
        """The cluster's node role, or one of our own for a cluster that brings none.

        No access entry for it: EKS creates the EC2_LINUX entry of a managed node group's
        role itself, on a cluster with API authentication."""
        cluster = self._cluster
        if cluster.node_role is not None:
            return cluster.node_role, cluster.node_role_policies
        aws_context = self._args.aws
        role = aws.iam.Role(
            f"{self._name}-node-role",
            assume_role_policy=json.dumps(aws_context.service_trust_policy("ec2")),
            description=f"GPU managed nodes of {cluster.name}",
            tags=self._args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        policies = [
            aws.iam.RolePolicyAttachment(
                f"{self._name}-node-{policy}",
                role=role.name,
                policy_arn=facts.managed_policy_arn(aws_context.partition, policy),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for policy in facts.NODE_ROLE_POLICIES
        ]
        return role, policies

    def _node_groups(
        self, node_role: aws.iam.Role, node_role_policies: Sequence[pulumi.Resource]
    ) -> dict[str, NodeGroup]:
        s, cluster = self._settings, self._cluster
        return {
            group_name: NodeGroup(
                f"gpu-{group_name}",
                NodeGroupArgs(
                    cluster_name=cluster.name,
                    eks_cluster=cluster.eks_cluster,
                    node_role=node_role,
                    node_role_policies=node_role_policies,
                    subnet_ids=cluster.private_subnet_ids,
                    group=group,
                    ami_type=group.ami_type,
                    labels={
                        **gpu_node_group_labels(
                            group.sharing,
                            s.profile_of(group),
                            bottlerocket=group.bottlerocket,
                            mig_manager=bool(s.mig_layouts),
                        ),
                        **cluster.extra_gpu_node_labels,
                    },
                    taints=gpu_node_taints(),
                    security_group_ids=cluster.gpu_node_security_group_ids,
                    bottlerocket_user_data=(
                        bottlerocket_user_data(s.profile_of(group)) if group.bottlerocket else None
                    ),
                    # MIG on AL2023: the manager's layout is reapplied after a reboot before
                    # the device plugin may start (mig.node_user_data).
                    al2023_user_data=mig.al2023_user_data(
                        s.profile_of(group), bottlerocket=group.bottlerocket
                    ),
                    tags=self._args.tags,
                    depends_on=self._mig_config_for(s.profile_of(group), group.bottlerocket),
                ),
                opts=self._part(),
            )
            for group_name, group in s.gpu_node_groups.items()
        }

    def _mig_config_for(
        self, profile: SharingProfile, bottlerocket: bool = False
    ) -> list[pulumi.Resource]:
        """What a node group of this profile waits for: the MIG manager's config, when its
        nodes are labelled with a layout the manager applies (AL2023 MIG)."""
        if self.mig_manager is None or not profile.is_mig or bottlerocket:
            return []
        return [self.mig_manager.config_map]

    def _namespaces(self) -> Namespaces:
        s = self._settings
        return Namespaces(
            "namespaces",
            NamespacesArgs(
                provider=self._cluster.provider,
                names=s.namespaces,
                levels=namespace_levels(workload_placements(s)),
            ),
            opts=self._part(),
        )

    def _device_plugin(self) -> DevicePlugin:
        s = self._settings
        return DevicePlugin(
            "nvidia-device-plugin",
            DevicePluginArgs(
                provider=self._cluster.provider,
                settings=s.device_plugin,
                profiles=s.sharing,
                # MIG nodes: the plugin steps aside while the manager repartitions the GPUs.
                mig=bool(s.mig_layouts),
                system_node_selector=self._cluster.system_node_selector,
                depends_on=[
                    *self.namespaces.depends_on(s.device_plugin.namespace),
                    # With MIG the release selects nvidia.com/gpu.deploy.client=true, which the
                    # node groups' labels bring: label the nodes first, so turning MIG on in a
                    # running stack does not take the plugin off every GPU node meanwhile.
                    *(self.node_groups.values() if s.mig_layouts else ()),
                ],
            ),
            opts=self._part(),
        )

    def _hami(self) -> Hami | None:
        """HAMi, only where some node group has a hami profile (new with hami, so no alias:
        nothing of an older stack to adopt)."""
        s = self._settings
        if s.hami is None:
            return None
        return Hami(
            "hami",
            HamiArgs(
                provider=self._cluster.provider,
                settings=s.hami,
                kubernetes_version=self._cluster.kubernetes_version,
                system_node_selector=self._cluster.system_node_selector,
                bottlerocket=s.hami_on_bottlerocket,
                depends_on=[
                    *self.namespaces.depends_on(facts.HAMI_NAMESPACE),
                    *self._cluster.system_ready,
                ],
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _mig_manager(self) -> MigManager | None:
        """k8s-mig-manager and its config, only where some AL2023 group or pool has a MIG
        profile (new with MIG, so no alias: nothing of an older stack to adopt). Its DaemonSet
        is registered once the node groups are (MigManager.serve)."""
        s = self._settings
        if not s.mig_layouts:
            return None
        namespace = s.device_plugin.namespace
        return MigManager(
            "mig-manager",
            MigManagerArgs(
                provider=self._cluster.provider,
                namespace=namespace,
                settings=s,
                depends_on=self.namespaces.depends_on(namespace),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _gpu_metrics(self) -> GpuMetrics | None:
        s = self._settings
        if not s.gpu_metrics.enabled:
            return None
        return GpuMetrics(
            "gpu-metrics",
            GpuMetricsArgs(
                provider=self._cluster.provider,
                settings=s.gpu_metrics,
                resource_names=s.gpu_resource_names(),
                mig=bool(s.mig_layouts),
                our_nodes_only=self._cluster.other_gpu_nodes,
                depends_on=[
                    *self.node_groups.values(),
                    *self.namespaces.depends_on(s.gpu_metrics.namespace),
                ],
            ),
            opts=self._part(),
        )

    def _karpenter(self) -> Karpenter | None:
        s, cluster = self._settings, self._cluster
        if not s.karpenter.enabled:
            return None
        return Karpenter(
            "karpenter",
            KarpenterArgs(
                settings=s.karpenter,
                profiles=s.sharing,
                cluster_name=cluster.name,
                aws=self._args.aws,
                provider=cluster.provider,
                cluster_depends_on=cluster.cluster_resources,
                cluster_security_group_id=cluster.cluster_security_group_id,
                existing_private_subnet_ids=cluster.untagged_private_subnet_ids,
                existing_cluster_tagging=cluster.discovery_tagging,
                controller_depends_on=cluster.system_ready,
                namespace_depends_on=self.namespaces.depends_on(s.karpenter.namespace),
                extra_node_labels=cluster.extra_gpu_node_labels,
                system_node_selector=cluster.system_node_selector,
                node_security_group_ids=cluster.gpu_node_security_group_ids,
                mig_manager=bool(s.mig_layouts),
                mig_config=self.mig_manager.config_map if self.mig_manager else None,
                pod_identity_agent_installed=cluster.pod_identity_agent_installed,
                tags=self._args.tags,
            ),
            opts=self._part(),
        )

    def _tenants(self) -> Tenants | None:
        """The teams' namespaces, quotas, defaults and access (new with tenants: nothing of
        an older stack to adopt, so no alias)."""
        s, cluster = self._settings, self._cluster
        if not s.tenants:
            return None
        return Tenants(
            "tenants",
            TenantsArgs(
                provider=cluster.provider,
                settings=s,
                cluster_name=cluster.name,
                aws=self._args.aws,
                cluster_depends_on=cluster.cluster_resources,
                created_cluster=cluster.eks_cluster is not None,
                tags=self._args.tags,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _demo(self) -> DemoWorkload | None:
        s = self._settings
        if not s.demo_workload.enabled:
            return None
        demo_profile = s.sharing[s.demo_profile_name]
        # Run as a tenant: in its namespace, after its quota (which then counts the pods).
        tenant = s.demo_workload.tenant
        where = (
            self.tenancy.depends_on(tenant)
            if self.tenancy is not None and tenant is not None and s.demo_in_tenant
            else self.namespaces.depends_on(s.demo_workload.namespace)
        )
        return DemoWorkload(
            "demo",
            DemoWorkloadArgs(
                provider=self._cluster.provider,
                settings=s.demo_workload,
                profile_name=s.demo_profile_name,
                profile=demo_profile,
                resource_name=s.demo_resource_name,
                instance=s.demo_instance,
                namespace=s.demo_namespace,
                depends_on=[
                    self.device_plugin,
                    # A hami demo's pods need HAMi's scheduler and webhook.
                    *([self.hami] if self.hami is not None and demo_profile.is_hami else []),
                    *self.node_groups.values(),
                    *where,
                ],
            ),
            opts=self._part(),
        )

    def _benchmark(self) -> SharingBenchmark | None:
        s = self._settings
        if not s.benchmark_groups:
            return None
        return SharingBenchmark(
            "sharing-benchmark",
            SharingBenchmarkArgs(
                provider=self._cluster.provider,
                settings=s.benchmark,
                groups=s.benchmark_groups,
                depends_on=[
                    self.device_plugin,
                    *(self.node_groups[group] for group in s.benchmark_groups),
                    *self.namespaces.depends_on(s.benchmark.namespace),
                ],
            ),
            opts=self._part(),
        )
