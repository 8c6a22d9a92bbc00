"""The EKS control plane, its secrets key, the node role and the Kubernetes provider."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import AwsContext, same_principal
from eks_gpu_slicing.settings import ClusterEndpointSettings


def admin_access_entries(admin_arns: list[str], caller_arn: str) -> tuple[dict[str, str], list]:
    """(access entry key -> principal ARN, skipped ARNs).

    pulumi-eks always creates the cluster with bootstrapClusterCreatorAdminPermissions, so
    the caller already has an admin entry; a second one for the same principal fails with
    409 ResourceInUseException (pulumi/pulumi-eks#2373). Keys keep the position in the
    configured list, so skipping one never renames (and replaces) another.
    """
    entries, skipped = {}, []
    for i, arn in enumerate(admin_arns):
        if same_principal(arn, caller_arn):
            skipped.append(arn)
        else:
            entries[f"admin-{i}"] = arn
    return entries, skipped


@dataclass(frozen=True)
class GpuClusterArgs:
    cluster_name: str
    kubernetes_version: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    private_subnet_ids: pulumi.Input[list[str]]
    endpoint: ClusterEndpointSettings
    aws: AwsContext
    log_retention_days: int
    admin_role_arns: list[str] = field(default_factory=list)
    protect: bool = False
    tags: dict[str, str] = field(default_factory=dict)


class GpuCluster(pulumi.ComponentResource):
    """EKS with access entries, envelope-encrypted secrets and full control-plane logs.

    Exposes `cluster` (for node groups), `node_role`, `provider` (pass it to every
    Kubernetes resource) and `kubeconfig` (a secret).
    """

    def __init__(self, name: str, args: GpuClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:cluster:GpuCluster", name, None, opts)
        # `protect` guards what cannot be recreated without losing data: the control plane
        # (and every workload's state in etcd) and the key its secrets are encrypted with.
        guarded = pulumi.ResourceOptions(parent=self, protect=args.protect)

        # Default key policy (the account administers the key through IAM). EKS creates
        # its own grant on the key when the cluster is created.
        self.secrets_key = aws.kms.Key(
            f"{name}-secrets",
            description=f"Envelope encryption of Kubernetes secrets in {args.cluster_name}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=guarded,
        )
        aws.kms.Alias(
            f"{name}-secrets-alias",
            name=f"alias/{args.cluster_name}-secrets",
            target_key_id=self.secrets_key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )

        # EKS writes to this group if it exists, and otherwise creates it itself without
        # retention, where it outlives `pulumi destroy`.
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=facts.CLUSTER_LOG_GROUP.format(cluster_name=args.cluster_name),
            retention_in_days=args.log_retention_days,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

        entries, skipped = admin_access_entries(args.admin_role_arns, args.aws.caller_arn)
        for arn in skipped:
            pulumi.log.warn(
                f"adminRoleArns: {arn} is who runs this update ({args.aws.caller_arn}); EKS "
                "already gives the cluster's creator admin access, so no second entry is made"
            )
        admin_policy = facts.access_policy_arn(
            args.aws.partition, facts.CLUSTER_ADMIN_ACCESS_POLICY
        )

        endpoint = args.endpoint
        self.cluster = eks.Cluster(
            name,
            name=args.cluster_name,
            version=args.kubernetes_version,
            vpc_id=args.vpc_id,
            public_subnet_ids=args.public_subnet_ids,
            private_subnet_ids=args.private_subnet_ids,
            node_associate_public_ip_address=False,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={
                key: eks.AccessEntryArgs(
                    principal_arn=arn,
                    access_policies={
                        "admin": eks.AccessPolicyAssociationArgs(
                            policy_arn=admin_policy,
                            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(
                                type="cluster"
                            ),
                        )
                    },
                )
                for key, arn in entries.items()
            },
            skip_default_node_group=True,
            # Managed node groups use the cluster security group EKS creates; pulumi-eks's
            # own node security group and its rules would be created and never used.
            skip_default_security_groups=True,
            # Without a default node group pulumi-eks creates no CoreDNS add-on anyway (only
            # kube-proxy and the VPC CNI); ClusterAddons adds it once the system nodes exist.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            endpoint_private_access=True,
            endpoint_public_access=endpoint.public_access,
            public_access_cidrs=endpoint.public_access_cidrs if endpoint.public_access else None,
            encryption_config_key_arn=self.secrets_key.arn,
            enabled_cluster_log_types=list(facts.CLUSTER_LOG_TYPES),
            deletion_protection=args.protect,
            tags=args.tags,
            opts=pulumi.ResourceOptions.merge(
                guarded, pulumi.ResourceOptions(depends_on=[self.log_group])
            ),
        )

        self.node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps(args.aws.service_trust_policy("ec2")),
            description=f"Managed nodes of {args.cluster_name}",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_role_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=self.node_role.name,
                policy_arn=facts.managed_policy_arn(args.aws.partition, policy),
                opts=pulumi.ResourceOptions(parent=self),
            )
            for policy in facts.NODE_ROLE_POLICIES
        ]

        # pulumi-eks's kubeconfig_json carries no AWS profile (it applies `aws:profile` only
        # to its own provider), so `aws eks get-token` would run with whatever credentials
        # are ambient: ask for one that names the stack's profile.
        kubeconfig = (
            self.cluster.get_kubeconfig(profile_name=args.aws.profile)
            if args.aws.profile
            else self.cluster.kubeconfig_json
        )
        self.kubeconfig = pulumi.Output.secret(kubeconfig)
        self.api_access_rules = self._api_access_rules(name, args)
        # pulumi-eks has no ready provider output; this one reads the cluster's kubeconfig
        # (which calls `aws eks get-token`) and is handed to every Kubernetes resource. It
        # waits for the API access rules: from outside the cluster security group, the first
        # Kubernetes object would otherwise race the rule that lets Pulumi reach the API.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.api_access_rules),
        )
        self.cluster_name = pulumi.Output.from_input(args.cluster_name)
        self.register_outputs(
            {
                "clusterName": self.cluster_name,
                "kubeconfig": self.kubeconfig,
                "nodeRoleArn": self.node_role.arn,
                "secretsKeyArn": self.secrets_key.arn,
            }
        )

    def _api_access_rules(
        self, name: str, args: GpuClusterArgs
    ) -> list[aws.vpc.SecurityGroupIngressRule]:
        """Port 443 on the cluster security group from each configured network and group.

        The private endpoint's network interfaces are in the security group EKS creates for
        the cluster, which admits only its members: a runner in a peered network (or in the
        VPC, outside that group) reaches the API only through one of these rules.
        """
        endpoint = args.endpoint
        if not (endpoint.private_access_cidrs or endpoint.private_access_security_group_ids):
            return []
        # Read after the cluster exists: pulumi-eks's `eks_cluster` output is a resource
        # reference, which Pulumi's mocks cannot resolve.
        security_group_id = aws.eks.get_cluster_output(
            name=args.cluster_name,
            opts=pulumi.InvokeOutputOptions(parent=self, depends_on=[self.cluster]),
        ).vpc_config.cluster_security_group_id
        sources = [
            (cidr.replace("/", "-"), {"cidr_ipv4": cidr}) for cidr in endpoint.private_access_cidrs
        ] + [
            (group, {"referenced_security_group_id": group})
            for group in endpoint.private_access_security_group_ids
        ]
        # Named after the source, not its position: removing one never replaces another.
        return [
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-from-{key}",
                security_group_id=security_group_id,
                ip_protocol="tcp",
                from_port=facts.KUBERNETES_API_PORT,
                to_port=facts.KUBERNETES_API_PORT,
                description=f"Kubernetes API of {args.cluster_name} (clusterEndpoint)",
                tags=args.tags,
                opts=pulumi.ResourceOptions(parent=self),
                **source,
            )
            for key, source in sources
        ]
