"""EKS add-ons that need nodes to run on, created once the system node group exists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from eks_gpu_slicing import facts


@dataclass(frozen=True)
class ClusterAddonsArgs:
    cluster_name: pulumi.Input[str]
    # The nodes the add-ons' pods run on.
    depends_on: Sequence[pulumi.Resource]
    tags: dict[str, str] | None = None


class ClusterAddons(pulumi.ComponentResource):
    """CoreDNS as a managed add-on, after the system nodes.

    With no default node group pulumi-eks creates no CoreDNS add-on at all (it does create
    kube-proxy and the VPC CNI, which nodes need to become Ready). EKS installs a
    self-managed CoreDNS that this add-on adopts. Created before any node, its pods could
    not schedule (GPU nodes are tainted), the add-on would stay DEGRADED and `pulumi up`
    would time out after 20 minutes: so it waits for the system group.
    """

    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:cluster:ClusterAddons", name, None, opts)
        self.coredns = aws.eks.Addon(
            f"{name}-coredns",
            cluster_name=args.cluster_name,
            addon_name="coredns",
            # Take over the configuration if a CoreDNS is already there.
            resolve_conflicts_on_create="OVERWRITE",
            resolve_conflicts_on_update="OVERWRITE",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on)),
        )
        self.register_outputs({"coreDnsVersion": self.coredns.addon_version})
