"""What the program learns from the AWS account before it registers anything.

A few facts cannot come from the stack file: the partition ARNs are built in (aws, aws-cn,
aws-us-gov), who is running `pulumi up`, and which zones of the region EKS accepts. They are
looked up once, at the start, so a problem ends the program before any resource exists.
The rules are pure functions below the lookup, tested on their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.settings.pulumi_config import aws_profile


@dataclass(frozen=True)
class AwsContext:
    partition: str
    dns_suffix: str  # amazonaws.com, or amazonaws.com.cn in China: service principals use it
    region: str
    account_id: str
    # The IAM role (assumed-role sessions resolved) or user that runs `pulumi up`.
    caller_arn: str
    # Zone names for the VPC's subnets; empty for an existing VPC.
    availability_zones: tuple[str, ...]
    # The stack's `aws:profile`, for the kubeconfig the Kubernetes provider runs.
    profile: str | None

    def service_principal(self, service: str) -> str:
        return f"{service}.{self.dns_suffix}"

    def service_trust_policy(self, service: str) -> dict:
        """A role trust policy letting one AWS service (ec2: nodes) assume the role."""
        return {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": self.service_principal(service)},
                    "Action": "sts:AssumeRole",
                }
            ],
        }


def look_up_aws_context(settings: Settings) -> AwsContext:
    """Ask AWS (data sources only, nothing created); a RunError when the region cannot host
    the configured network."""
    partition = aws.get_partition()
    region = aws.get_region().region
    caller = aws.get_caller_identity()
    caller_arn = caller.arn
    if is_assumed_role_session(caller_arn):
        # sts:...:assumed-role/NAME/SESSION -> the role's own ARN (with its path).
        caller_arn = aws.iam.get_session_context(arn=caller_arn).issuer_arn
    zones: tuple[str, ...] = ()
    if settings.existing_cluster is None and settings.network.create_vpc:
        usable = aws.get_availability_zones(
            state="available",
            exclude_zone_ids=list(facts.EKS_UNSUPPORTED_ZONE_IDS),
            # Local and Wavelength Zones cannot hold EKS control-plane subnets either.
            filters=[
                aws.GetAvailabilityZonesFilterArgs(
                    name="opt-in-status", values=["opt-in-not-required"]
                )
            ],
        ).names
        try:
            zones = choose_zones(usable, settings.network.availability_zone_count, region)
        except ValueError as exc:
            raise pulumi.RunError(str(exc)) from None
    return AwsContext(
        partition=partition.partition,
        dns_suffix=partition.dns_suffix,
        region=region,
        account_id=caller.account_id,
        caller_arn=caller_arn,
        availability_zones=zones,
        profile=aws_profile(),
    )


def is_assumed_role_session(arn: str) -> bool:
    return arn.split(":", 5)[-1].startswith("assumed-role/") and ":sts:" in arn


def choose_zones(usable: Sequence[str], count: int, region: str) -> tuple[str, ...]:
    """The first `count` usable zones, in the region's order (as awsx would pick them, minus
    the ones EKS refuses); a ValueError naming the region and a value that works when there
    are too few, or saying that the region cannot host the stack at all."""
    if len(usable) >= count:
        return tuple(sorted(usable)[:count])
    prefix = f"{facts.zone_id_prefix(region)}-"
    refused = [z for z in facts.EKS_UNSUPPORTED_ZONE_IDS if z.startswith(prefix)]
    found = (
        f"{region} has only {len(usable)} available zone(s) EKS accepts "
        f"({', '.join(sorted(usable)) or 'none'}"
        + (f"; EKS refuses zone ID {', '.join(refused)} there" if refused else "")
        + ")"
    )
    minimum = facts.EKS_MIN_AVAILABILITY_ZONES
    if len(usable) < minimum:
        raise ValueError(
            f"aws:region: {found}, and an EKS cluster needs subnets in at least {minimum}: "
            f"{region} cannot host this stack; choose another region"
        )
    valid = str(minimum) if len(usable) == minimum else f"a value from {minimum} to {len(usable)}"
    raise ValueError(
        f"network.availabilityZoneCount: {count} zones asked for, but {found}: set it to {valid}"
    )


def same_principal(a: str, b: str) -> bool:
    """Whether two IAM ARNs name the same role or user. Paths are ignored: an access entry
    may be given a role ARN with or without its path (SSO roles have one)."""

    def identity(arn: str) -> tuple[str, str, str]:
        parts = arn.split(":", 5)
        if len(parts) < 6:
            return (arn, "", "")
        kind, _, rest = parts[5].partition("/")
        return (parts[4], kind, rest.rsplit("/", 1)[-1])

    return identity(a) == identity(b)
