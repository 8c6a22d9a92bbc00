"""An EKS managed node group: the system group for add-ons, or a group of GPU nodes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from eks_gpu_slicing import facts


@dataclass(frozen=True)
class NodeGroupArgs:
    cluster: eks.Cluster
    node_role: aws.iam.Role
    subnet_ids: pulumi.Input[list[str]]
    instance_type: str
    ami_type: str
    min_size: int
    desired_size: int
    max_size: int
    disk_size_gib: int
    capacity_type: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    # Resources the nodes need before they can join (the node role's policy attachments).
    depends_on: Sequence[pulumi.Resource] = ()


class NodeGroup(pulumi.ComponentResource):
    """One instance type, IMDSv2 only, in the private subnets.

    Labels, taints and scaling change in place; instance type, AMI type, disk size and
    capacity type replace the group (EKS's rules), which is why sharing settings live in
    labels and the device plugin's ConfigMap rather than in anything here.
    """

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:nodes:NodeGroup", name, None, opts)
        self.node_group = eks.ManagedNodeGroup(
            name,
            cluster=args.cluster,
            # Set explicitly: pulumi-eks leaves it unset for `gpu=True` alone.
            ami_type=args.ami_type,
            instance_types=[args.instance_type],
            capacity_type=args.capacity_type,
            disk_size=args.disk_size_gib,
            # Requires IMDSv2 tokens (hop limit 2 so pods on the node can still reach it).
            enable_imd_sv2=True,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.min_size,
                desired_size=args.desired_size,
                max_size=args.max_size,
            ),
            labels=args.labels,
            taints=[aws.eks.NodeGroupTaintArgs(**taint) for taint in args.taints],
            node_role=args.node_role,
            subnet_ids=args.subnet_ids,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.instance_type = args.instance_type
        self.register_outputs(
            {"instanceType": args.instance_type, "labels": args.labels, "taints": args.taints}
        )
