"""Pure functions for Karpenter: its IAM documents, interruption queue, Helm values and the
node classes, pools and overlays of each GPU node pool.

Everything is data (dicts) so tests can check it against the upstream CRDs, the chart's
value paths and the getting-started CloudFormation (v1.14) without AWS or a cluster. The
component (components/karpenter.py) only turns these into resources.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import mig
from eks_gpu_slicing.builders.workloads import (
    gpu_node_group_labels,
    gpu_node_taints,
    kubernetes_taints,
)
from eks_gpu_slicing.settings import KarpenterNodePoolSettings, SharingProfile

# --- IAM ---------------------------------------------------------------------------------------

_VERSION = "2012-10-17"
# The controller's managed policies, named as in the getting-started CloudFormation.
CONTROLLER_POLICIES = (
    "NodeLifecycle",
    "IAMIntegration",
    "EKSIntegration",
    "Interruption",
    "ZonalShift",
    "ResourceDiscovery",
)


def controller_assume_role_policy() -> dict[str, Any]:
    """Trust for EKS Pod Identity: the agent assumes the role for the controller's pods and
    tags the session with the pod's cluster, namespace and service account."""
    return {
        "Version": _VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": facts.POD_IDENTITY_PRINCIPAL},
                "Action": ["sts:AssumeRole", "sts:TagSession"],
            }
        ],
    }


def controller_policies(
    *,
    cluster_name: str,
    partition: str,
    region: str,
    account_id: str,
    node_role_arn: str,
    queue_arn: str,
) -> dict[str, dict[str, Any]]:
    """The controller's six policies, as Karpenter's getting-started CloudFormation (v1.14)
    defines them, scoped to this cluster, region and account.

    Instances, fleets and launch templates can only be created when tagged for this cluster
    and a node pool, and only deleted or re-tagged when they carry those tags; `iam:PassRole`
    is limited to the Karpenter node role; instance profiles to ones tagged for this cluster.
    """

    def ec2(resource: str, account: str = "*") -> str:
        return f"arn:{partition}:ec2:{region}:{account}:{resource}"

    owned = f"kubernetes.io/cluster/{cluster_name}"
    instance_profiles = f"arn:{partition}:iam::{account_id}:instance-profile/*"
    cluster_arn = f"arn:{partition}:eks:{region}:{account_id}:cluster/{cluster_name}"
    created = [
        ec2("fleet/*"),
        ec2("instance/*"),
        ec2("volume/*"),
        ec2("network-interface/*"),
        ec2("launch-template/*"),
        ec2("spot-instances-request/*"),
    ]
    request_tags_for_cluster = {
        f"aws:RequestTag/{owned}": "owned",
        "aws:RequestTag/eks:eks-cluster-name": cluster_name,
    }
    node_pool_request_tag = {"aws:RequestTag/karpenter.sh/nodepool": "*"}
    node_pool_resource_tag = {"aws:ResourceTag/karpenter.sh/nodepool": "*"}
    owned_resource = {f"aws:ResourceTag/{owned}": "owned"}
    node_class_request_tag = {"aws:RequestTag/karpenter.k8s.aws/ec2nodeclass": "*"}
    node_class_resource_tag = {"aws:ResourceTag/karpenter.k8s.aws/ec2nodeclass": "*"}
    region_resource_tag = {"aws:ResourceTag/topology.kubernetes.io/region": region}
    region_request_tag = {"aws:RequestTag/topology.kubernetes.io/region": region}

    def document(*statements: dict[str, Any]) -> dict[str, Any]:
        return {"Version": _VERSION, "Statement": list(statements)}

    return {
        "NodeLifecycle": document(
            {
                "Sid": "AllowScopedEC2InstanceAccessActions",
                "Effect": "Allow",
                "Resource": [
                    ec2("image/*", account=""),
                    ec2("snapshot/*", account=""),
                    ec2("security-group/*"),
                    ec2("subnet/*"),
                    ec2("capacity-reservation/*"),
                    ec2("placement-group/*"),
                ],
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
            },
            {
                "Sid": "AllowScopedEC2LaunchTemplateAccessActions",
                "Effect": "Allow",
                "Resource": ec2("launch-template/*"),
                "Action": ["ec2:RunInstances", "ec2:CreateFleet"],
                "Condition": {
                    "StringEquals": owned_resource,
                    "StringLike": node_pool_resource_tag,
                },
            },
            {
                "Sid": "AllowScopedEC2InstanceActionsWithTags",
                "Effect": "Allow",
                "Resource": created,
                "Action": ["ec2:RunInstances", "ec2:CreateFleet", "ec2:CreateLaunchTemplate"],
                "Condition": {
                    "StringEquals": request_tags_for_cluster,
                    "StringLike": node_pool_request_tag,
                },
            },
            {
                "Sid": "AllowScopedResourceCreationTagging",
                "Effect": "Allow",
                "Resource": created,
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": {
                        **request_tags_for_cluster,
                        "ec2:CreateAction": ["RunInstances", "CreateFleet", "CreateLaunchTemplate"],
                    },
                    "StringLike": node_pool_request_tag,
                },
            },
            {
                "Sid": "AllowScopedResourceTagging",
                "Effect": "Allow",
                "Resource": ec2("instance/*"),
                "Action": "ec2:CreateTags",
                "Condition": {
                    "StringEquals": owned_resource,
                    "StringLike": node_pool_resource_tag,
                    "StringEqualsIfExists": {"aws:RequestTag/eks:eks-cluster-name": cluster_name},
                    "ForAllValues:StringEquals": {
                        "aws:TagKeys": ["eks:eks-cluster-name", "karpenter.sh/nodeclaim", "Name"]
                    },
                },
            },
            {
                "Sid": "AllowScopedDeletion",
                "Effect": "Allow",
                "Resource": [ec2("instance/*"), ec2("launch-template/*")],
                "Action": ["ec2:TerminateInstances", "ec2:DeleteLaunchTemplate"],
                "Condition": {
                    "StringEquals": owned_resource,
                    "StringLike": node_pool_resource_tag,
                },
            },
        ),
        "IAMIntegration": document(
            {
                "Sid": "AllowPassingInstanceRole",
                "Effect": "Allow",
                "Resource": node_role_arn,
                "Action": "iam:PassRole",
                "Condition": {
                    "StringEquals": {
                        "iam:PassedToService": ["ec2.amazonaws.com", "ec2.amazonaws.com.cn"]
                    }
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileCreationActions",
                "Effect": "Allow",
                "Resource": instance_profiles,
                "Action": ["iam:CreateInstanceProfile"],
                "Condition": {
                    "StringEquals": {**request_tags_for_cluster, **region_request_tag},
                    "StringLike": node_class_request_tag,
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileTagActions",
                "Effect": "Allow",
                "Resource": instance_profiles,
                "Action": ["iam:TagInstanceProfile"],
                "Condition": {
                    "StringEquals": {
                        **owned_resource,
                        **region_resource_tag,
                        **request_tags_for_cluster,
                        **region_request_tag,
                    },
                    "StringLike": {**node_class_resource_tag, **node_class_request_tag},
                },
            },
            {
                "Sid": "AllowScopedInstanceProfileActions",
                "Effect": "Allow",
                "Resource": instance_profiles,
                "Action": [
                    "iam:AddRoleToInstanceProfile",
                    "iam:RemoveRoleFromInstanceProfile",
                    "iam:DeleteInstanceProfile",
                ],
                "Condition": {
                    "StringEquals": {**owned_resource, **region_resource_tag},
                    "StringLike": node_class_resource_tag,
                },
            },
        ),
        "EKSIntegration": document(
            {
                "Sid": "AllowAPIServerEndpointDiscovery",
                "Effect": "Allow",
                "Resource": cluster_arn,
                "Action": "eks:DescribeCluster",
            }
        ),
        "Interruption": document(
            {
                "Sid": "AllowInterruptionQueueActions",
                "Effect": "Allow",
                "Resource": queue_arn,
                "Action": ["sqs:DeleteMessage", "sqs:GetQueueUrl", "sqs:ReceiveMessage"],
            }
        ),
        "ZonalShift": document(
            {
                "Sid": "AllowZonalShiftStatusReadOnly",
                "Effect": "Allow",
                "Resource": "*",
                "Action": ["arc-zonal-shift:GetManagedResource"],
                "Condition": {"StringEquals": {"arc-zonal-shift:ResourceIdentifier": cluster_arn}},
            }
        ),
        "ResourceDiscovery": document(
            {
                "Sid": "AllowRegionalReadActions",
                "Effect": "Allow",
                "Resource": "*",
                "Action": [
                    "ec2:DescribeCapacityReservations",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstances",
                    "ec2:DescribeInstanceStatus",
                    "ec2:DescribeInstanceTypeOfferings",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplates",
                    "ec2:DescribePlacementGroups",
                    "ec2:DescribeSecurityGroups",
                    "ec2:DescribeSpotPriceHistory",
                    "ec2:DescribeSubnets",
                ],
                "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
            },
            {
                "Sid": "AllowSSMReadActions",
                "Effect": "Allow",
                "Resource": f"arn:{partition}:ssm:{region}::parameter/aws/service/*",
                "Action": "ssm:GetParameter",
            },
            {
                "Sid": "AllowPricingReadActions",
                "Effect": "Allow",
                "Resource": "*",
                "Action": "pricing:GetProducts",
            },
            {
                "Sid": "AllowUnscopedInstanceProfileListAction",
                "Effect": "Allow",
                "Resource": "*",
                "Action": "iam:ListInstanceProfiles",
            },
            {
                "Sid": "AllowInstanceProfileReadActions",
                "Effect": "Allow",
                "Resource": instance_profiles,
                "Action": "iam:GetInstanceProfile",
            },
        ),
    }


# --- The interruption queue ----------------------------------------------------------------


def queue_policy(queue_arn: str) -> dict[str, Any]:
    """EventBridge (and SQS itself) may send; nobody may use the queue without TLS."""
    return {
        "Version": _VERSION,
        "Id": "EC2InterruptionPolicy",
        "Statement": [
            {
                "Sid": "AllowEventsToSend",
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "sqs.amazonaws.com"]},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
            },
            {
                "Sid": "DenyHTTP",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


# The events Karpenter acts on (drain before the instance goes), one EventBridge rule each.
INTERRUPTION_EVENTS: dict[str, dict[str, list[str]]] = {
    "health": {"source": ["aws.health"], "detail-type": ["AWS Health Event"]},
    "spot-interruption": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Spot Instance Interruption Warning"],
    },
    "rebalance": {"source": ["aws.ec2"], "detail-type": ["EC2 Instance Rebalance Recommendation"]},
    "instance-state-change": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
    },
    "capacity-reservation-interruption": {
        "source": ["aws.ec2"],
        "detail-type": ["EC2 Capacity Reservation Instance Interruption Warning"],
    },
}


# --- The controller's Helm values ----------------------------------------------------------


def helm_values(
    *, cluster_name: str, queue_name: Any, system_node_selector: Mapping[str, str]
) -> dict[str, Any]:
    """Values of the `karpenter` chart. The chart's default affinity (no node with a
    `karpenter.sh/nodepool` label) stays; `system_node_selector` (the cluster handle's: the
    system node group of a cluster this stack creates, whatever the stack file names on one
    it was given, or nothing) puts the controller on nodes Karpenter does not manage and so
    can never remove. The GPU taint keeps it off GPU nodes either way."""
    return {
        "settings": {
            "clusterName": cluster_name,
            "interruptionQueue": queue_name,
            # NodeOverlay is alpha and off by default; without it the overlays do nothing.
            "featureGates": {"nodeOverlay": True},
        },
        # Named, so the Pod Identity association can refer to it.
        "serviceAccount": {"name": facts.KARPENTER_SERVICE_ACCOUNT},
        "replicas": facts.KARPENTER_REPLICAS,
        "nodeSelector": {"kubernetes.io/os": "linux", **system_node_selector},
    }


# --- Node classes, pools and overlays ----------------------------------------------------


def discovery_tags(cluster_name: str) -> dict[str, str]:
    """What the node classes select subnets and security groups by."""
    return {facts.KARPENTER_DISCOVERY_TAG: cluster_name}


def node_pool_name(pool_name: str) -> str:
    """The NodePool's (and its EC2NodeClass's) name in the cluster, as for node groups."""
    return f"gpu-{pool_name}"


def ami_alias(release: str) -> str:
    """The node class's AMI: AL2023 of one EKS-optimized AMI release, for the cluster's
    Kubernetes version (settings check the release carries it)."""
    return f"al2023@{release}"


def node_class(
    *,
    pool_name: str,
    pool: KarpenterNodePoolSettings,
    cluster_name: str,
    node_role_name: Any,
    ami_release: str,
    tags: Mapping[str, str],
    security_group_ids: Sequence[Any] = (),
    profile: SharingProfile | None = None,
) -> dict[str, Any]:
    """The EC2NodeClass (karpenter.k8s.aws/v1) of one pool, as {metadata, spec}.

    `security_group_ids`: groups the pool's nodes must be in beside those the discovery tag
    finds (the cluster handle's GPU node groups: an existing cluster's node security groups
    and its cluster security group), each a term of its own (terms are OR'd; an `id` term
    takes no other field). A pool whose `profile` is MIG gets user data: the boot-time reset
    of the MIG manager's state (mig.node_user_data), MIME parts Karpenter adds to the
    NodeConfig it generates."""
    selector = [{"tags": discovery_tags(cluster_name)}]
    spec: dict[str, Any] = {
        # Alone, as the CRD requires of an alias; the NVIDIA variant is chosen per instance.
        "amiSelectorTerms": [{"alias": ami_alias(ami_release)}],
        # Karpenter creates the instance profile for this role (IAMIntegration policy).
        "role": node_role_name,
        "subnetSelectorTerms": selector,
        "securityGroupSelectorTerms": [*selector, *({"id": i} for i in security_group_ids)],
        "blockDeviceMappings": [
            {
                "deviceName": facts.AL2023_ROOT_DEVICE,
                "rootVolume": True,
                "ebs": {
                    "volumeSize": f"{pool.volume_size_gib}Gi",
                    "volumeType": "gp3",
                    "encrypted": True,
                    "deleteOnTermination": True,
                },
            }
        ],
        # IMDSv2 only; hop limit 1 keeps pods (one hop further) away from the node's role.
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpProtocolIPv6": "disabled",
            "httpPutResponseHopLimit": 1,
            "httpTokens": "required",
        },
        "tags": dict(tags),
    }
    if pool.max_pods is not None:
        spec["kubelet"] = {"maxPods": pool.max_pods}
    user_data = mig.al2023_user_data(profile) if profile is not None else None
    if user_data is not None:
        spec["userData"] = user_data
    return {"metadata": {"name": node_pool_name(pool_name)}, "spec": spec}


def node_pool(
    *,
    pool_name: str,
    pool: KarpenterNodePoolSettings,
    profile: SharingProfile,
    node_class_name: Any,
    mig_manager: bool = False,
) -> dict[str, Any]:
    """The NodePool (karpenter.sh/v1) of one pool, as {metadata, spec}.

    Labels and taint come from the functions node groups use, so the device plugin runs on
    these nodes and loads the pool's profile. `mig_manager`: the stack runs the MIG manager
    (gpu_node_group_labels)."""
    template_spec: dict[str, Any] = {
        "nodeClassRef": {
            "group": facts.NODE_CLASS_GROUP,
            "kind": facts.NODE_CLASS_KIND,
            "name": node_class_name,
        },
        "requirements": [
            {
                "key": facts.INSTANCE_TYPE_LABEL,
                "operator": "In",
                "values": list(pool.instance_types),
            },
            {
                "key": facts.CAPACITY_TYPE_LABEL,
                "operator": "In",
                "values": list(pool.capacity_types),
            },
        ],
        "taints": kubernetes_taints(gpu_node_taints()),
        "expireAfter": pool.expire_after,
    }
    spec: dict[str, Any] = {
        "template": {
            # AL2023 nodes: the Helm plugin serves them (and its MPS daemon, on MPS pools).
            "metadata": {
                "labels": gpu_node_group_labels(pool.sharing, profile, mig_manager=mig_manager)
            },
            "spec": template_spec,
        },
        "disruption": {
            "consolidationPolicy": pool.consolidation_policy,
            "consolidateAfter": pool.consolidate_after,
            # One GPU node at a time: each carries many pods of a shared GPU.
            "budgets": [{"nodes": "1"}],
        },
        "limits": dict(pool.limits),
    }
    if pool.weight is not None:
        spec["weight"] = pool.weight
    return {"metadata": {"name": node_pool_name(pool_name)}, "spec": spec}


def instance_types_by_gpu_count(
    pool: KarpenterNodePoolSettings, *, fractional_only: bool = False
) -> dict[int, list[str]]:
    """The pool's instance types by the GPUs their nodes show (a fractional type's one vGPU
    included), or only its fractional types."""
    by_count: dict[int, list[str]] = defaultdict(list)
    for instance in pool.instances:
        if instance.fractional or not fractional_only:
            by_count[instance.gpus].append(instance.name)
    return {count: sorted(names) for count, names in sorted(by_count.items())}


def node_overlays(
    *, pool_name: str, pool: KarpenterNodePoolSettings, profile: SharingProfile
) -> dict[int, dict[str, Any]]:
    """NodeOverlays (karpenter.sh/v1alpha1) that tell Karpenter what a node of this pool
    will advertise, keyed by physical GPU count, as {metadata, spec}.

    Karpenter plans with physical GPUs (kubernetes-sigs/karpenter#729) and would launch up
    to `replicas` times too many nodes for pods asking for time-sliced GPUs. An overlay's
    capacity replaces (lo.Assign in ApplyCapacityOverlay) the resource of that name for the
    instance types it matches, and capacities are absolute, so there is one overlay per GPU
    count. Unshared profiles need none: the instance's own count is already right.

    Fractional types (g6f, gr6f) need one unshared too: Karpenter gives them no
    nvidia.com/gpu at all (facts.GpuInstance.karpenter_gpus; aws/karpenter-provider-aws#8368,
    whose NodeOverlay docs on main show this overlay), so it would never launch one for a pod
    asking for a GPU. Their one vGPU counts as 1 GPU here, time-sliced or not.

    MIG profiles always need them (slices are not GPUs), one per GPU count and MIG GPU model,
    keyed `<gpus>x<model>`: every slice resource the node will advertise, and with `mixed`
    nvidia.com/gpu set to 0, since the plugin then advertises no whole GPU.
    """
    if profile.is_mig:
        return _mig_node_overlays(pool_name, pool, profile)
    name = node_pool_name(pool_name)
    return {
        gpus: {
            "metadata": {"name": f"{name}-{gpus}gpu"},
            "spec": {
                "requirements": [
                    {"key": facts.NODE_POOL_LABEL, "operator": "In", "values": [name]},
                    {"key": facts.INSTANCE_TYPE_LABEL, "operator": "In", "values": types},
                ],
                "capacity": {profile.resource_name: str(gpus * profile.virtual_gpus_per_gpu)},
            },
        }
        for gpus, types in instance_types_by_gpu_count(
            pool, fractional_only=not profile.shared
        ).items()
    }


def _mig_node_overlays(
    pool_name: str, pool: KarpenterNodePoolSettings, profile: SharingProfile
) -> dict[str, dict[str, Any]]:
    name = node_pool_name(pool_name)
    groups: dict[str, list[facts.GpuInstance]] = defaultdict(list)
    for instance in pool.instances:
        gpu = facts.mig_gpu(instance.name)
        if gpu is not None:
            groups[f"{instance.gpus}x{gpu.name.lower()}"].append(instance)
    overlays = {}
    for key, instances in sorted(groups.items()):
        capacity = {r: str(n) for r, n in profile.node_resources(instances[0]).items()}
        capacity.setdefault(facts.GPU_RESOURCE, "0")
        overlays[key] = {
            "metadata": {"name": f"{name}-{key}"},
            "spec": {
                "requirements": [
                    {"key": facts.NODE_POOL_LABEL, "operator": "In", "values": [name]},
                    {
                        "key": facts.INSTANCE_TYPE_LABEL,
                        "operator": "In",
                        "values": sorted(i.name for i in instances),
                    },
                ],
                "capacity": capacity,
            },
        }
    return overlays


def node_pool_capacity(
    pool_name: str, pool: KarpenterNodePoolSettings, profile: SharingProfile
) -> dict[str, Any]:
    """What a pool's nodes advertise to the scheduler (stack output, `make validate`)."""
    return {
        "nodePool": node_pool_name(pool_name),
        "profile": pool.sharing,
        "strategy": profile.strategy,
        "resourceName": profile.resource_name_on(pool.instances[0]),
        "virtualGpusPerInstanceType": {
            i.name: i.gpus * profile.devices_per_gpu(i) for i in pool.instances
        },
        **(
            {
                "resourcesPerInstanceType": {
                    i.name: profile.node_resources(i) for i in pool.instances
                }
            }
            if profile.is_mig
            else {}
        ),
    }
