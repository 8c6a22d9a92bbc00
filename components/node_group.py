"""An EKS managed node group: the system group for add-ons, or a group of GPU nodes."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from components.cluster import GpuCluster
from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import NodeGroupSettings


@dataclass(frozen=True)
class NodeGroupArgs:
    cluster: GpuCluster
    subnet_ids: pulumi.Input[list[str]]
    group: NodeGroupSettings
    ami_type: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)


class NodeGroup(pulumi.ComponentResource):
    """One instance type, IMDSv2 only, in the private subnets.

    Labels, taints and scaling change in place; instance type, AMI type and capacity type
    replace the group (EKS's rules), which is why sharing settings live in labels and the
    device plugin's ConfigMap rather than in anything here. Requiring IMDSv2 makes pulumi-eks
    build a launch template holding the disk size, so a disk change rolls the nodes instead.
    """

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:nodes:NodeGroup", name, None, opts)
        group = args.group
        self.node_group = eks.ManagedNodeGroup(
            name,
            cluster=args.cluster.cluster,
            # Set explicitly: pulumi-eks leaves it unset for `gpu=True` alone.
            ami_type=args.ami_type,
            instance_types=[group.instance_type],
            capacity_type=group.capacity_type,
            disk_size=group.disk_size_gib,
            # Requires IMDSv2 tokens (hop limit 2 so pods on the node can still reach it).
            enable_imd_sv2=True,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=group.min_size,
                desired_size=group.desired_size,
                max_size=group.max_size,
            ),
            labels=args.labels,
            taints=[aws.eks.NodeGroupTaintArgs(**taint) for taint in args.taints],
            node_role=args.cluster.node_role,
            subnet_ids=args.subnet_ids,
            tags=args.tags,
            # Nodes cannot join before their role has its policies.
            opts=pulumi.ResourceOptions(parent=self, depends_on=args.cluster.node_role_policies),
        )
        self.register_outputs(
            {"instanceType": group.instance_type, "labels": args.labels, "taints": args.taints}
        )
