"""An EKS managed node group: the system group for add-ons, or a group of GPU nodes."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import NodeGroupSettings


@dataclass(frozen=True)
class NodeGroupArgs:
    cluster_name: str
    # pulumi-eks's cluster, for a cluster this stack creates; None for one it was given.
    eks_cluster: eks.Cluster | None
    node_role: aws.iam.Role
    # Nodes cannot join before their role has its policies.
    node_role_policies: Sequence[pulumi.Resource]
    subnet_ids: pulumi.Input[list[str]]
    group: NodeGroupSettings
    ami_type: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict[str, str]] = field(default_factory=list)
    # Bottlerocket settings (TOML) for the launch template's user data.
    bottlerocket_user_data: str | None = None
    # AL2023 user data (MIME multi-part): MIG groups' boot-time reset (mig.node_user_data).
    al2023_user_data: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    # The nodes' security groups, the cluster security group among them; empty: none named,
    # and EKS puts the nodes in the cluster security group.
    security_group_ids: Sequence[str] = ()
    # What the group waits for before its nodes are labelled: a group whose labels name a MIG
    # layout waits for the MIG manager's config that holds it (docs/mig.md).
    depends_on: Sequence[pulumi.Resource] = ()


def launch_template_args(
    *,
    disk_size_gib: int,
    tags: dict[str, str],
    bottlerocket_user_data: str | None = None,
    security_group_ids: Sequence[str] = (),
    al2023_user_data: str | None = None,
) -> dict:
    """The launch template a managed node group starts its instances from.

    No image: EKS keeps choosing the AMI from the group's amiType and bootstraps the node.
    User data only where a group needs it, which EKS merges with its own bootstrap: for
    Bottlerocket, the device-plugin settings (TOML); for an AL2023 MIG group, a MIME
    multi-part boothook (mig.node_user_data). What it adds over the template pulumi-eks
    generates:
    - tags on the instances, their volumes and network interfaces (EKS does not copy node
      group tags to instances, so the GPU instances, the costliest resources, had none);
    - IMDSv2 with hop limit 1, so pods cannot read the node role's credentials (aws-node
      and kube-proxy use the host network and still reach it);
    - an encrypted gp3 volume deleted with the instance: AL2023's root volume, or
      Bottlerocket's data volume (images and containers; its small OS volume stays as is).
    With `security_group_ids`, the instances' security groups: EKS then adds the cluster
    security group no more ("Customize managed nodes with launch templates", Amazon EKS User
    Guide), so the caller lists it among them.
    """
    args: dict = {
        "block_device_mappings": [
            {
                "device_name": (
                    facts.AL2023_ROOT_DEVICE
                    if bottlerocket_user_data is None
                    else facts.BOTTLEROCKET_DATA_DEVICE
                ),
                "ebs": {
                    "volume_size": disk_size_gib,
                    "volume_type": "gp3",
                    "encrypted": "true",
                    "delete_on_termination": "true",
                },
            }
        ],
        "metadata_options": {
            "http_endpoint": "enabled",
            "http_tokens": "required",
            "http_put_response_hop_limit": 1,
        },
        "tag_specifications": [
            {"resource_type": kind, "tags": tags}
            for kind in ("instance", "volume", "network-interface")
        ],
        "tags": tags,
    }
    if security_group_ids:
        args["vpc_security_group_ids"] = list(security_group_ids)
    if bottlerocket_user_data is not None and al2023_user_data is not None:
        raise ValueError("a launch template has Bottlerocket or AL2023 user data, not both")
    user_data = bottlerocket_user_data if bottlerocket_user_data is not None else al2023_user_data
    if user_data is not None:
        args["user_data"] = base64.b64encode(user_data.encode()).decode()
    return args


class NodeGroup(pulumi.ComponentResource):
    """One instance type, IMDSv2 only, in the private subnets, from our own launch template.

    Labels, taints and scaling change in place; instance type, AMI type and capacity type
    replace the group (EKS's rules), which is why sharing settings live in labels and the
    device plugin's ConfigMap rather than in anything here. The disk size lives in the launch
    template: changing it makes a new template version, which EKS rolls out node by node,
    instead of replacing the group.
    """

    def __init__(self, name: str, args: NodeGroupArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:nodes:NodeGroup", name, None, opts)
        group = args.group
        # Auto-named and updated in place: each change is a new version of one template.
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-launch-template",
            description=f"Nodes of the {name} node group",
            # Keep the default version the newest, so the console shows what nodes run; the
            # node group names its version explicitly either way.
            update_default_version=True,
            **launch_template_args(
                disk_size_gib=group.disk_size_gib,
                tags=args.tags,
                bottlerocket_user_data=args.bottlerocket_user_data,
                security_group_ids=args.security_group_ids,
                al2023_user_data=args.al2023_user_data,
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        group_args = dict(
            # Set explicitly: pulumi-eks leaves it unset for `gpu=True` alone.
            ami_type=args.ami_type,
            instance_types=[group.instance_type],
            capacity_type=group.capacity_type,
            # pulumi-eks forbids disk_size and enable_imd_sv2 beside a launch template: both
            # are in it.
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(
                id=self.launch_template.id,
                version=self.launch_template.latest_version.apply(str),
            ),
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=group.min_size,
                desired_size=group.desired_size,
                max_size=group.max_size,
            ),
            labels=args.labels,
            taints=[aws.eks.NodeGroupTaintArgs(**taint) for taint in args.taints],
            subnet_ids=args.subnet_ids,
            tags=args.tags,
        )
        joins = pulumi.ResourceOptions(
            parent=self, depends_on=[*args.node_role_policies, *args.depends_on]
        )
        if args.eks_cluster is not None:
            self.node_group = eks.ManagedNodeGroup(
                name,
                cluster=args.eks_cluster,
                node_role=args.node_role,
                **group_args,
                opts=joins,
            )
        else:
            # pulumi-eks's ManagedNodeGroup wants its Cluster (or the cluster's resources) even
            # though, given a launch template, all it makes is this one aws.eks.NodeGroup
            # (nodejs/eks/nodes/nodegroup.ts, createManagedNodeGroup): for a cluster read by
            # name, register that resource directly, with the same arguments.
            self.node_group = aws.eks.NodeGroup(
                name,
                cluster_name=args.cluster_name,
                node_role_arn=args.node_role.arn,
                **group_args,
                opts=joins,
            )
        self.register_outputs(
            {"instanceType": group.instance_type, "labels": args.labels, "taints": args.taints}
        )
