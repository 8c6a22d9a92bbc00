"""The VPC the cluster lives in: created here (public + private subnets per AZ) or given."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pulumi
import pulumi_awsx as awsx

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import NetworkSettings


@dataclass(frozen=True)
class NetworkArgs:
    settings: NetworkSettings
    # Zone names EKS accepts, looked up in the account (aws_context.choose_zones).
    availability_zones: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)
    # Extra tags of created private subnets (Karpenter's discovery tag).
    private_subnet_tags: dict[str, str] = field(default_factory=dict)


def subnet_masks(cidr_block: str, availability_zones: int) -> tuple[int, int]:
    """(private, public) subnet prefix lengths for a VPC split evenly across AZs.

    Each AZ gets an equal power-of-two share of the VPC; its private subnet takes half of
    that share (pods take VPC IPs with the VPC CNI, so private space is what runs out) and
    its public subnet an eighth (load balancers and NAT gateways only).
    """
    vpc_prefix = int(cidr_block.rsplit("/", 1)[1])
    per_az_prefix = vpc_prefix + math.ceil(math.log2(availability_zones))
    return per_az_prefix + 1, per_az_prefix + 3


class Network(pulumi.ComponentResource):
    vpc_id: pulumi.Output[str]
    public_subnet_ids: pulumi.Output[list[str]]
    private_subnet_ids: pulumi.Output[list[str]]

    def __init__(self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:network:Network", name, None, opts)
        s = args.settings
        if s.create_vpc:
            private_mask, public_mask = subnet_masks(s.cidr_block, s.availability_zone_count)
            nat = (
                awsx.ec2.NatGatewayStrategy.ONE_PER_AZ
                if s.nat_gateways == "onePerAz"
                else awsx.ec2.NatGatewayStrategy.SINGLE
            )
            vpc = awsx.ec2.Vpc(
                f"{name}-vpc",
                cidr_block=s.cidr_block,
                # Named, not counted: awsx would take the region's first N zone names,
                # including ones EKS refuses (use1-az3) and more than the region has.
                availability_zone_names=list(args.availability_zones),
                subnet_strategy=awsx.ec2.SubnetAllocationStrategy.AUTO,
                subnet_specs=[
                    awsx.ec2.SubnetSpecArgs(
                        type=awsx.ec2.SubnetType.PRIVATE,
                        cidr_mask=private_mask,
                        tags={**facts.PRIVATE_SUBNET_TAGS, **args.private_subnet_tags},
                    ),
                    awsx.ec2.SubnetSpecArgs(
                        type=awsx.ec2.SubnetType.PUBLIC,
                        cidr_mask=public_mask,
                        tags=facts.PUBLIC_SUBNET_TAGS,
                    ),
                ],
                nat_gateways=awsx.ec2.NatGatewayConfigurationArgs(strategy=nat),
                enable_dns_hostnames=True,
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.vpc_id = vpc.vpc_id
            self.public_subnet_ids = vpc.public_subnet_ids
            self.private_subnet_ids = vpc.private_subnet_ids
        else:
            self.vpc_id = pulumi.Output.from_input(s.vpc_id)
            self.public_subnet_ids = pulumi.Output.from_input(list(s.public_subnet_ids))
            self.private_subnet_ids = pulumi.Output.from_input(list(s.private_subnet_ids))
        self.register_outputs(
            {
                "vpcId": self.vpc_id,
                "publicSubnetIds": self.public_subnet_ids,
                "privateSubnetIds": self.private_subnet_ids,
            }
        )
