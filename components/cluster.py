"""The EKS control plane, its secrets key, the node role and the Kubernetes provider."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import ClusterEndpointSettings

# IAM documents as data, serialised once.
NODE_ASSUME_ROLE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@dataclass(frozen=True)
class GpuClusterArgs:
    cluster_name: str
    kubernetes_version: str
    vpc_id: pulumi.Input[str]
    public_subnet_ids: pulumi.Input[list[str]]
    private_subnet_ids: pulumi.Input[list[str]]
    endpoint: ClusterEndpointSettings
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
                f"admin-{i}": eks.AccessEntryArgs(
                    principal_arn=arn,
                    access_policies={
                        "admin": eks.AccessPolicyAssociationArgs(
                            policy_arn=facts.CLUSTER_ADMIN_POLICY_ARN,
                            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(
                                type="cluster"
                            ),
                        )
                    },
                )
                for i, arn in enumerate(args.admin_role_arns)
            },
            skip_default_node_group=True,
            # CoreDNS needs nodes; ClusterAddons creates it after the system node group.
            coredns_addon_options=eks.CoreDnsAddonOptionsArgs(enabled=False),
            endpoint_private_access=True,
            endpoint_public_access=endpoint.public_access,
            public_access_cidrs=endpoint.public_access_cidrs if endpoint.public_access else None,
            encryption_config_key_arn=self.secrets_key.arn,
            enabled_cluster_log_types=list(facts.CLUSTER_LOG_TYPES),
            deletion_protection=args.protect,
            tags=args.tags,
            opts=guarded,
        )

        self.node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps(NODE_ASSUME_ROLE_POLICY),
            description=f"Managed nodes of {args.cluster_name}",
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.node_role_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{arn.rsplit('/', 1)[1]}",
                role=self.node_role.name,
                policy_arn=arn,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for arn in facts.NODE_ROLE_POLICY_ARNS
        ]

        self.kubeconfig = pulumi.Output.secret(self.cluster.kubeconfig_json)
        # pulumi-eks has no ready provider output; this one reads the cluster's kubeconfig
        # (which calls `aws eks get-token`) and is handed to every Kubernetes resource.
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
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
