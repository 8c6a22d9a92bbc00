"""The VPC and who can reach the Kubernetes API."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import (
    _SUBNET_ID,
    _VPC_ID,
    _ipv4_network,
    _Settings,
    listing,
)

_SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-f]{8,17}$")


def security_group_ids(ids: list[str]) -> list[str]:
    """A list of security group IDs as a stack file gives them: each `sg-...`, none twice."""
    bad = [i for i in ids if not _SECURITY_GROUP_ID.match(i)]
    if bad:
        raise ValueError(f"not security group IDs (sg-...): {', '.join(bad)}")
    if len(set(ids)) != len(ids):
        raise ValueError("lists a security group more than once")
    return ids


# --- Network and cluster access ------------------------------------------------------------


class NetworkSettings(_Settings):
    """Create a VPC (the default) or use an existing one by giving `vpcId` and subnets."""

    vpc_id: str | None = Field(
        default=None,
        description="Use this existing VPC (`vpc-...`) instead of creating one; privateSubnetIds "
        "is then required.",
    )
    private_subnet_ids: list[str] = Field(
        default=[],
        description="With vpcId: its private subnets (`subnet-...`, in at least 2 AZs) for the "
        "nodes and the control plane's network interfaces.",
    )
    public_subnet_ids: list[str] = Field(
        default=[],
        description="With vpcId: its public subnets (`subnet-...`), for internet-facing load "
        "balancers.",
    )
    cidr_block: str = Field(
        default="10.0.0.0/16",
        description="IPv4 CIDR of the created VPC, a /16 to /20. Each AZ gets an equal share: "
        "half of it private, an eighth public. Every CIDR key needs its prefix length: an "
        "address without one (`10.20.0.0`) is refused.",
    )
    availability_zone_count: int = Field(
        default=3,
        ge=facts.EKS_MIN_AVAILABILITY_ZONES,
        le=6,
        description="AZs of the created VPC: the first N of the region's available zones, by "
        "name, leaving out Local Zones and the zone IDs EKS refuses "
        f"({listing(facts.EKS_UNSUPPORTED_ZONE_IDS)}). Fewer usable zones than N stops the "
        "program before anything is created.",
    )
    nat_gateways: Literal["single", "onePerAz"] = Field(
        default="single",
        description="NAT gateways of the created VPC: `single` (cheap) or `onePerAz` (no "
        "cross-AZ dependency).",
    )

    @field_validator("vpc_id")
    @classmethod
    def _vpc_id(cls, vpc_id: str | None) -> str | None:
        if vpc_id is not None and not _VPC_ID.match(vpc_id):
            raise ValueError(f"'{vpc_id}' is not a VPC ID (vpc-...)")
        return vpc_id

    @field_validator("private_subnet_ids", "public_subnet_ids")
    @classmethod
    def _subnet_ids(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not _SUBNET_ID.match(i)]
        if bad:
            raise ValueError(f"not subnet IDs (subnet-...): {', '.join(bad)}")
        if len(set(ids)) != len(ids):
            raise ValueError("lists a subnet more than once")
        return ids

    @field_validator("cidr_block")
    @classmethod
    def _cidr(cls, cidr: str) -> str:
        network = _ipv4_network(cidr)
        if not 16 <= network.prefixlen <= 20:
            raise ValueError(f"'{cidr}' should be a /16 to /20 so every AZ gets room for pods")
        return cidr

    @model_validator(mode="after")
    def _create_or_existing(self) -> NetworkSettings:
        create_only = {"cidr_block", "availability_zone_count", "nat_gateways"}
        if self.vpc_id is not None:
            given = sorted(to_camel(f) for f in create_only & self.model_fields_set)
            if given:
                raise ValueError(f"{', '.join(given)} only apply when the VPC is created here")
            if len(self.private_subnet_ids) < 2:
                raise ValueError("an existing VPC needs privateSubnetIds in at least 2 AZs")
        elif self.private_subnet_ids or self.public_subnet_ids:
            raise ValueError("subnet IDs need vpcId; leave all three out to create a VPC")
        return self

    @property
    def create_vpc(self) -> bool:
        return self.vpc_id is None


class ClusterEndpointSettings(_Settings):
    """Who can reach the Kubernetes API. Private access from the VPC is always on."""

    public_access: bool = Field(
        default=True,
        description="A public Kubernetes API endpoint. Private access from the VPC is always "
        "on: with false, run Pulumi from inside the VPC or a connected network that "
        "privateAccessCidrs or privateAccessSecurityGroupIds admits; false with neither is "
        "refused, since the cluster security group admits only its own members and `pulumi up` "
        "would stop at the first Kubernetes object.",
    )
    public_access_cidrs: list[str] = Field(
        default=["0.0.0.0/0"],
        description="Who may reach the public endpoint; only with publicAccess: true. Each "
        "with its prefix length (`/32` for one address). Documentation ranges (RFC 5737: "
        f"{', '.join(str(n) for n in facts.DOCUMENTATION_NETWORKS)}) are refused: nobody's "
        "traffic comes from them, so the cluster would be created and every Kubernetes "
        "resource would then fail.",
    )
    private_access_cidrs: list[str] = Field(
        default=[],
        description="Networks allowed to reach the API server on port 443 through the private "
        "endpoint: one ingress rule each on the cluster security group EKS creates (which "
        "otherwise admits only its own members), created before any Kubernetes object. With "
        "or without publicAccess. The network must also route to the VPC (peering, Transit "
        "Gateway, VPN); see docs/operations.md#ci. Documentation ranges (RFC 5737) are "
        "refused.",
    )
    private_access_security_group_ids: list[str] = Field(
        default=[],
        description="Security groups (`sg-...`) allowed to reach the API server on port 443, as "
        "for privateAccessCidrs: in the cluster's VPC, or in a VPC reached by same-region "
        "peering or a Transit Gateway with security-group referencing on (AWS refuses other "
        "references at create time).",
    )

    @field_validator("public_access_cidrs")
    @classmethod
    def _cidrs(cls, cidrs: list[str]) -> list[str]:
        return _real_networks(
            cidrs, "put your VPN or CI egress ranges here, or set publicAccess: false"
        )

    @field_validator("private_access_cidrs")
    @classmethod
    def _private_cidrs(cls, cidrs: list[str]) -> list[str]:
        _real_networks(cidrs, "put the network your runner or VPN clients are in here")
        if len(set(cidrs)) != len(cidrs):
            raise ValueError("lists a CIDR more than once")
        return cidrs

    @field_validator("private_access_security_group_ids")
    @classmethod
    def _security_groups(cls, ids: list[str]) -> list[str]:
        return security_group_ids(ids)

    @model_validator(mode="after")
    def _cidrs_need_public_access(self) -> ClusterEndpointSettings:
        if not self.public_access and "public_access_cidrs" in self.model_fields_set:
            raise ValueError("publicAccessCidrs only apply with publicAccess: true")
        if self.public_access and not self.public_access_cidrs:
            raise ValueError("publicAccess: true needs at least one CIDR in publicAccessCidrs")
        if not (
            self.public_access
            or self.private_access_cidrs
            or self.private_access_security_group_ids
        ):
            # The private endpoint's interfaces admit only the cluster security group's own
            # members, and nothing that deploys is one: `pulumi up` would create the cluster
            # and then fail on its first Kubernetes object, every time.
            raise ValueError(
                "publicAccess: false with neither privateAccessCidrs nor "
                "privateAccessSecurityGroupIds leaves the API reachable by nothing that could "
                "deploy to it (the cluster security group admits only its own members): set "
                "privateAccessCidrs to the network you run Pulumi from (or "
                "privateAccessSecurityGroupIds to its security group), or publicAccess: true"
            )
        return self

    @property
    def open_to_world(self) -> bool:
        return self.public_access and "0.0.0.0/0" in self.public_access_cidrs


def _real_networks(cidrs: list[str], instead: str) -> list[str]:
    documentation = []
    for cidr in cidrs:
        network = _ipv4_network(cidr)
        if any(network.subnet_of(doc) for doc in facts.DOCUMENTATION_NETWORKS):
            documentation.append(cidr)
    if documentation:
        # Nobody's traffic comes from these (RFC 5737): the cluster would be created and
        # then every Kubernetes resource would fail, unreachable, after 15-20 minutes.
        raise ValueError(
            f"{', '.join(documentation)}: documentation-only ranges (RFC 5737) that no "
            f"real client uses; {instead}"
        )
    return cidrs
