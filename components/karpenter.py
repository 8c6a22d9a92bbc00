"""Karpenter: the controller (IAM, Pod Identity, interruption queue, CRDs and chart) and,
per GPU node pool, its EC2NodeClass, NodePool and NodeOverlays."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.aws_context import AwsContext
from eks_gpu_slicing.builders import karpenter as build
from eks_gpu_slicing.settings import KarpenterSettings, SharingProfile
from eks_gpu_slicing.settings.existing_cluster import DiscoveryTagging

QUEUE_TARGET_ID = "KarpenterInterruptionQueueTarget"


@dataclass(frozen=True)
class KarpenterArgs:
    settings: KarpenterSettings
    profiles: Mapping[str, SharingProfile]
    cluster_name: str
    # Partition, region and account the policies' ARNs point at, looked up once.
    aws: AwsContext
    provider: k8s.Provider
    # The EKS cluster, when this stack creates it: access entries, add-ons and tags wait for it.
    cluster_depends_on: Sequence[pulumi.Resource]
    # EKS's own cluster security group, which managed nodes use too (tagged for discovery when
    # the controller is installed here).
    cluster_security_group_id: pulumi.Input[str] | None
    # Subnets this stack did not create, tagged here for discovery (created ones are tagged
    # in their subnet spec, so a refresh never sees the tag as drift).
    existing_private_subnet_ids: Sequence[str] = ()
    # On an existing cluster: the resources to tag, read at run time (tags it carried already
    # are left alone); replaces the two above.
    existing_cluster_tagging: DiscoveryTagging | None = None
    # What the controller needs running first: system nodes and CoreDNS.
    controller_depends_on: Sequence[pulumi.Resource] = ()
    # What objects in its namespace wait for: the Namespace, when the stack creates it. Both
    # releases keep their Helm record there.
    namespace_depends_on: Sequence[pulumi.Resource] = ()
    # Whether the cluster runs the EKS Pod Identity Agent add-on already (creating it twice
    # fails); otherwise it is created here, after the system nodes.
    pod_identity_agent_installed: bool = False
    # Labels every pool's nodes carry beyond the sharing ones (see GpuSharing).
    extra_node_labels: Mapping[str, str] = field(default_factory=dict)
    # The stack runs the MIG manager: pool nodes carry its GPU-client label (docs/mig.md).
    mig_manager: bool = False
    # Where the controller runs: the cluster's system nodes (ClusterHandle's), or anywhere.
    system_node_selector: Mapping[str, str] = field(default_factory=dict)
    # Security groups every pool's nodes are in beside what the discovery tag finds (see
    # ClusterHandle.gpu_node_security_group_ids).
    node_security_group_ids: Sequence[str] = ()
    # The MIG manager's config: a pool whose nodes are labelled with a layout waits for it, so
    # no node joins with a layout name the config lacks.
    mig_config: pulumi.Resource | None = None
    tags: dict[str, str] = field(default_factory=dict)


class Karpenter(pulumi.ComponentResource):
    """The controller (on the system nodes, where the cluster has them), and GPU node pools
    that know about sharing.

    Every pool object depends on the controller's release, so `pulumi destroy` deletes the
    pools first while the controller still runs and terminates the instances it launched
    (they are not in Pulumi's state).
    """

    def __init__(self, name: str, args: KarpenterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:karpenter:Karpenter", name, None, opts)
        s = args.settings
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        if s.install:
            self._install(name, args)
            node_role_name = self.node_role.name
            # Nodes can only join once their role may (access entry, policies).
            node_class_depends_on = [self.node_access_entry, *self.node_role_policies]
            after_controller = pulumi.ResourceOptions.merge(
                k8s_opts, pulumi.ResourceOptions(depends_on=[self.release])
            )
            discovery_value = args.cluster_name
        else:
            # A Karpenter already runs (existing cluster): its nodes' role and discovery tag
            # come from the settings, and there is no controller here to wait for.
            self.node_role = self.release = None
            node_role_name = s.node_role_name
            node_class_depends_on = []
            after_controller = k8s_opts
            discovery_value = s.discovery_tag_value or args.cluster_name

        # --- Per pool: node class, pool, overlays -----------------------------------------
        self.node_classes: dict[str, k8s.apiextensions.CustomResource] = {}
        self.node_pools: dict[str, k8s.apiextensions.CustomResource] = {}
        self.node_overlays: dict[str, list[k8s.apiextensions.CustomResource]] = {}
        for pool_name, pool in s.node_pools.items():
            profile = args.profiles[pool.sharing]
            manifest = build.node_class(
                pool_name=pool_name,
                pool=pool,
                cluster_name=discovery_value,
                node_role_name=node_role_name,
                ami_release=s.ami_release,
                tags=args.tags,
                security_group_ids=args.node_security_group_ids,
                profile=profile,
            )
            node_class = k8s.apiextensions.CustomResource(
                f"{name}-{pool_name}-nodeclass",
                api_version=facts.NODE_CLASS_API_VERSION,
                kind=facts.NODE_CLASS_KIND,
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=pulumi.ResourceOptions.merge(
                    after_controller, pulumi.ResourceOptions(depends_on=node_class_depends_on)
                ),
            )
            manifest = build.node_pool(
                pool_name=pool_name,
                pool=pool,
                profile=args.profiles[pool.sharing],
                node_class_name=node_class.metadata.apply(lambda m: m["name"]),
                mig_manager=args.mig_manager,
            )
            if args.extra_node_labels:
                template = manifest["spec"]["template"]["metadata"]
                template["labels"] = {**template["labels"], **args.extra_node_labels}
            self.node_classes[pool_name] = node_class
            self.node_pools[pool_name] = k8s.apiextensions.CustomResource(
                f"{name}-{pool_name}-nodepool",
                api_version=facts.NODE_POOL_API_VERSION,
                kind="NodePool",
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=(
                    pulumi.ResourceOptions.merge(
                        after_controller, pulumi.ResourceOptions(depends_on=[args.mig_config])
                    )
                    if profile.is_mig and args.mig_config is not None
                    else after_controller
                ),
            )
            self.node_overlays[pool_name] = [
                k8s.apiextensions.CustomResource(
                    # GPU counts keep their `<n>gpu` names (and URNs); MIG overlays, one per GPU
                    # count and model, are keyed by a string.
                    f"{name}-{pool_name}-overlay-"
                    + (f"{gpus}gpu" if isinstance(gpus, int) else gpus),
                    api_version=facts.NODE_OVERLAY_API_VERSION,
                    kind="NodeOverlay",
                    metadata=overlay["metadata"],
                    spec=overlay["spec"],
                    opts=after_controller,
                )
                for gpus, overlay in build.node_overlays(
                    pool_name=pool_name, pool=pool, profile=profile
                ).items()
            ]

        outputs: dict = {"nodePools": sorted(s.node_pools)}
        if s.install:
            outputs |= {
                "nodeRoleArn": self.node_role.arn,
                "controllerRoleArn": self.controller_role.arn,
                "interruptionQueue": self.queue.name,
                "releaseStatus": self.release.status,
            }
        self.register_outputs(outputs)

    @staticmethod
    def _tag_existing(
        name: str, tagging: DiscoveryTagging, child: pulumi.ResourceOptions
    ) -> list[aws.ec2.Tag]:
        """The discovery tag on an existing cluster's resources that lacked it, each after a
        tag saying which stack added it: a later run keeps its own tags (and destroy removes
        them, the discovery tag first), and leaves one it finds without that mark alone.
        Named by the resource they tag, so reordering privateSubnetIds moves nothing."""
        targets = {"cluster-sg": tagging.security_group_id} if tagging.security_group_id else {}
        targets |= {subnet_id: subnet_id for subnet_id in tagging.subnet_ids}
        tags = []
        for target, resource_id in targets.items():
            added_by = aws.ec2.Tag(
                f"{name}-discovery-added-by-{target}",
                resource_id=resource_id,
                key=facts.DISCOVERY_TAG_ADDED_BY,
                value=tagging.added_by,
                opts=child,
            )
            tags += [
                added_by,
                aws.ec2.Tag(
                    f"{name}-discovery-{target}",
                    resource_id=resource_id,
                    key=facts.KARPENTER_DISCOVERY_TAG,
                    value=tagging.value,
                    opts=pulumi.ResourceOptions.merge(
                        child, pulumi.ResourceOptions(depends_on=[added_by])
                    ),
                ),
            ]
        return tags

    def _install(self, name: str, args: KarpenterArgs) -> None:
        """The controller: its nodes' role and access, discovery tags, interruption queue,
        IAM through Pod Identity, CRDs and chart."""
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        after_cluster = pulumi.ResourceOptions(
            parent=self, depends_on=list(args.cluster_depends_on)
        )
        discovery = build.discovery_tags(args.cluster_name)

        # --- Nodes' IAM role and its access to the cluster ------------------------------
        self.node_role = aws.iam.Role(
            f"{name}-node-role",
            assume_role_policy=json.dumps(args.aws.service_trust_policy("ec2")),
            description=f"Nodes Karpenter launches for {args.cluster_name}",
            tags=args.tags,
            opts=child,
        )
        self.node_role_policies = [
            aws.iam.RolePolicyAttachment(
                f"{name}-node-{policy}",
                role=self.node_role.name,
                policy_arn=facts.managed_policy_arn(args.aws.partition, policy),
                opts=child,
            )
            for policy in facts.KARPENTER_NODE_POLICIES
        ]
        # With API authentication, nodes join through an access entry, not aws-auth.
        self.node_access_entry = aws.eks.AccessEntry(
            f"{name}-node-access",
            cluster_name=args.cluster_name,
            principal_arn=self.node_role.arn,
            type="EC2_LINUX",
            tags=args.tags,
            opts=after_cluster,
        )

        # --- Discovery tags ---------------------------------------------------------------
        if args.existing_cluster_tagging is not None:
            self.discovery_tags = self._tag_existing(name, args.existing_cluster_tagging, child)
        elif args.cluster_security_group_id is None:
            raise ValueError("installing Karpenter needs the cluster security group's ID")
        else:
            tag_targets = {"cluster-sg": args.cluster_security_group_id} | {
                f"subnet-{i}": subnet for i, subnet in enumerate(args.existing_private_subnet_ids)
            }
            self.discovery_tags = [
                aws.ec2.Tag(
                    f"{name}-discovery-{target}",
                    resource_id=resource_id,
                    key=key,
                    value=value,
                    opts=after_cluster,
                )
                for target, resource_id in tag_targets.items()
                for key, value in discovery.items()
            ]

        # --- Interruption queue -----------------------------------------------------------
        self.queue = aws.sqs.Queue(
            f"{name}-interruption",
            message_retention_seconds=facts.KARPENTER_QUEUE_RETENTION_S,
            sqs_managed_sse_enabled=True,
            tags=args.tags,
            opts=child,
        )
        self.queue_policy = aws.sqs.QueuePolicy(
            f"{name}-interruption",
            queue_url=self.queue.url,
            policy=self.queue.arn.apply(lambda arn: json.dumps(build.queue_policy(arn))),
            opts=child,
        )
        self.event_targets = []
        for event, pattern in build.INTERRUPTION_EVENTS.items():
            rule = aws.cloudwatch.EventRule(
                f"{name}-{event}",
                description=f"Karpenter interruption events for {args.cluster_name}",
                event_pattern=json.dumps(pattern),
                tags=args.tags,
                opts=child,
            )
            self.event_targets.append(
                aws.cloudwatch.EventTarget(
                    f"{name}-{event}",
                    rule=rule.name,
                    arn=self.queue.arn,
                    target_id=QUEUE_TARGET_ID,
                    opts=child,
                )
            )

        # --- Controller IAM, through EKS Pod Identity ------------------------------------
        self.controller_role = aws.iam.Role(
            f"{name}-controller-role",
            assume_role_policy=json.dumps(build.controller_assume_role_policy()),
            description=f"Karpenter controller of {args.cluster_name}",
            tags=args.tags,
            opts=child,
        )
        documents = pulumi.Output.all(self.node_role.arn, self.queue.arn).apply(
            lambda arns: build.controller_policies(
                cluster_name=args.cluster_name,
                partition=args.aws.partition,
                region=args.aws.region,
                account_id=args.aws.account_id,
                node_role_arn=arns[0],
                queue_arn=arns[1],
            )
        )
        self.controller_policies = {}
        self.controller_policy_attachments = []
        for policy in build.CONTROLLER_POLICIES:
            self.controller_policies[policy] = aws.iam.Policy(
                f"{name}-{policy}",
                description=f"Karpenter controller {policy} for {args.cluster_name}",
                policy=documents.apply(lambda d, p=policy: json.dumps(d[p])),
                tags=args.tags,
                opts=child,
            )
            self.controller_policy_attachments.append(
                aws.iam.RolePolicyAttachment(
                    f"{name}-{policy}",
                    role=self.controller_role.name,
                    policy_arn=self.controller_policies[policy].arn,
                    opts=child,
                )
            )
        # The agent is a DaemonSet: it needs nodes, like CoreDNS.
        self.pod_identity_agent = None
        if not args.pod_identity_agent_installed:
            self.pod_identity_agent = aws.eks.Addon(
                f"{name}-pod-identity-agent",
                cluster_name=args.cluster_name,
                addon_name=facts.POD_IDENTITY_AGENT_ADDON,
                resolve_conflicts_on_create="OVERWRITE",
                resolve_conflicts_on_update="OVERWRITE",
                tags=args.tags,
                opts=pulumi.ResourceOptions(
                    parent=self, depends_on=[*args.cluster_depends_on, *args.controller_depends_on]
                ),
            )
        self.pod_identity = aws.eks.PodIdentityAssociation(
            f"{name}-controller",
            cluster_name=args.cluster_name,
            namespace=s.namespace,
            service_account=facts.KARPENTER_SERVICE_ACCOUNT,
            role_arn=self.controller_role.arn,
            tags=args.tags,
            opts=after_cluster,
        )

        # --- CRDs and controller ----------------------------------------------------------
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        # Only CRDs: the API server installs them without a node, so they go in while the
        # system nodes and CoreDNS are still coming up (minutes off a first deploy).
        self.crds = k8s.helm.v3.Release(
            f"{name}-crd",
            name=facts.KARPENTER_CRD_RELEASE_NAME,
            chart=facts.KARPENTER_CRD_CHART,
            version=s.version,
            namespace=s.namespace,
            max_history=10,
            opts=pulumi.ResourceOptions.merge(
                k8s_opts,
                pulumi.ResourceOptions(
                    depends_on=[*args.cluster_depends_on, *args.namespace_depends_on]
                ),
            ),
        )
        # Pods get Pod Identity credentials only if the association and agent exist when
        # they start; the policies must be attached before the first launch.
        self.release = k8s.helm.v3.Release(
            name,
            name=facts.KARPENTER_RELEASE_NAME,
            chart=facts.KARPENTER_CHART,
            version=s.version,
            namespace=s.namespace,
            # The CRDs belong to the karpenter-crd release, which upgrades them.
            skip_crds=True,
            values=build.helm_values(
                cluster_name=args.cluster_name,
                queue_name=self.queue.name,
                system_node_selector=args.system_node_selector,
            ),
            max_history=10,
            opts=pulumi.ResourceOptions.merge(
                k8s_opts,
                pulumi.ResourceOptions(
                    depends_on=[
                        self.crds,
                        self.pod_identity,
                        *([self.pod_identity_agent] if self.pod_identity_agent else []),
                        *self.controller_policy_attachments,
                        self.queue_policy,
                        *self.event_targets,
                        *args.controller_depends_on,
                        *args.namespace_depends_on,
                    ]
                ),
            ),
        )
