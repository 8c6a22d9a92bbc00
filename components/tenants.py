"""The teams that share the GPUs: per tenant a Namespace, its ResourceQuota of GPU slices and,
when given, a LimitRange of container defaults; per principal an EKS access entry and the
namespace-scoped AmazonEKSEditPolicy association."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import AwsContext, same_principal
from eks_gpu_slicing.builders import tenants as build
from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.settings.tenants import quota_counts, tenant_namespace

TENANTS_TYPE = f"{facts.COMPONENT_PACKAGE}:tenants:Tenants"


@dataclass(frozen=True)
class TenantsArgs:
    provider: k8s.Provider
    settings: Settings
    cluster_name: pulumi.Input[str]
    aws: AwsContext
    # What the access entries wait for: the cluster, when this program creates it.
    cluster_depends_on: Sequence[pulumi.Resource] = ()
    # Whether this program created the cluster: its creator then holds EKS's own admin
    # entry, and a second entry for the same principal would fail (409).
    created_cluster: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class Tenants(pulumi.ComponentResource):
    """Attributes: `namespaces`, `quotas`, `limit_ranges` (tenant -> resource),
    `access_entries` and `access_policies` (principal ARN -> resource)."""

    def __init__(self, name: str, args: TenantsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TENANTS_TYPE, name, None, opts)
        s = args.settings
        on_cluster = pulumi.ResourceOptions(parent=self, provider=args.provider)
        self.namespaces: dict[str, k8s.core.v1.Namespace] = {}
        self.quotas: dict[str, k8s.core.v1.ResourceQuota] = {}
        self.limit_ranges: dict[str, k8s.core.v1.LimitRange] = {}
        for tenant_name, tenant in s.tenants.items():
            namespace_name = tenant_namespace(tenant_name, tenant)
            namespace = k8s.core.v1.Namespace(
                f"{name}-{tenant_name}",
                # Named exactly as configured (not auto-named): the quota and pods refer to it.
                metadata=build.namespace_metadata(tenant_name, tenant),
                opts=on_cluster,
            )
            in_namespace = pulumi.ResourceOptions.merge(
                on_cluster, pulumi.ResourceOptions(depends_on=[namespace])
            )
            quota = build.resource_quota(tenant_name, namespace_name, quota_counts(s, tenant))
            self.namespaces[tenant_name] = namespace
            self.quotas[tenant_name] = k8s.core.v1.ResourceQuota(
                f"{name}-{tenant_name}-quota",
                metadata=quota["metadata"],
                spec=quota["spec"],
                opts=in_namespace,
            )
            if tenant.defaults is not None:
                defaults = build.limit_range(tenant_name, namespace_name, tenant.defaults)
                self.limit_ranges[tenant_name] = k8s.core.v1.LimitRange(
                    f"{name}-{tenant_name}-defaults",
                    metadata=defaults["metadata"],
                    spec=defaults["spec"],
                    opts=in_namespace,
                )
        self.access_entries, self.access_policies = self._access(name, args)
        self.register_outputs(
            {
                "namespaces": {t: tenant_namespace(t, x) for t, x in s.tenants.items()},
                "principals": sorted(self.access_entries),
            }
        )

    def _access(
        self, name: str, args: TenantsArgs
    ) -> tuple[dict[str, aws.eks.AccessEntry], dict[str, aws.eks.AccessPolicyAssociation]]:
        """An access entry per principal and one AmazonEKSEditPolicy association scoped to its
        tenants' namespaces, after the namespaces exist (an association may name a namespace
        that does not, but the principal's first request then finds nothing)."""
        after_cluster = pulumi.ResourceOptions(
            parent=self, depends_on=list(args.cluster_depends_on)
        )
        policy_arn = facts.access_policy_arn(args.aws.partition, facts.TENANT_ACCESS_POLICY)
        entries, policies = {}, {}
        for arn, namespaces in build.tenant_access(args.settings).items():
            if args.created_cluster and same_principal(arn, args.aws.caller_arn):
                pulumi.log.warn(
                    f"tenants: {arn} is who runs this update ({args.aws.caller_arn}); EKS "
                    "already gives the cluster's creator admin access, so no second entry is "
                    f"made and it keeps cluster-wide access, not only {', '.join(namespaces)}"
                )
                continue
            key = build.access_key(arn)
            entry = aws.eks.AccessEntry(
                f"{name}-access-{key}",
                cluster_name=args.cluster_name,
                principal_arn=arn,
                type=facts.ACCESS_ENTRY_STANDARD,
                tags=args.tags,
                opts=after_cluster,
            )
            entries[arn] = entry
            policies[arn] = aws.eks.AccessPolicyAssociation(
                f"{name}-edit-{key}",
                cluster_name=args.cluster_name,
                # The entry's output, so the association waits for the entry.
                principal_arn=entry.principal_arn,
                policy_arn=policy_arn,
                access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(
                    **build.access_scope(namespaces)
                ),
                opts=pulumi.ResourceOptions(
                    parent=self,
                    # A changed scope replaces the association (the AWS provider's access_scope
                    # is ForceNew). EKS keeps one association per principal and policy, so a
                    # new one made first would be the old one updated, and deleting the old one
                    # then would take the access away: remove it first, a moment without.
                    delete_before_replace=True,
                    depends_on=[
                        entry,
                        *(
                            self.namespaces[t]
                            for t, x in args.settings.tenants.items()
                            if arn in x.principals
                        ),
                    ],
                ),
            )
        return entries, policies

    def depends_on(self, tenant_name: str) -> list[pulumi.Resource]:
        """What a workload run as this tenant must be created after: its namespace and quota
        (a pod admitted before the quota exists is never refused by it)."""
        return [self.namespaces[tenant_name], self.quotas[tenant_name]]
