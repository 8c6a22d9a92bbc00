"""GpuSharing: one implementation of everything after the cluster, whichever way it came.

A created-cluster stack keeps every resource it had before GpuSharing (adopted through
aliases, so no replacement); an existing-cluster stack registers GPU sharing against the
looked-up cluster and nothing that stands for the cluster itself.
"""

from __future__ import annotations

import copy
import json

import pulumi
import pytest

from components.gpu_sharing import GPU_SHARING_TYPE
from eks_gpu_slicing import facts
from eks_gpu_slicing.review.mocks import Deployment, ProgramMocks, RecordingMonitor, run_program
from eks_gpu_slicing.review.urns import adopted, engine_urns
from eks_gpu_slicing.settings import ConfigError, load_settings
from eks_gpu_slicing.settings.stack_files import ROOT, engine_config_of_stack, settings_of_stack
from tests.conftest import MINIMAL, engine_config

URNS_BEFORE = ROOT / "tests" / "fixtures" / "urns_before_gpu_sharing"

# What stands for a cluster and its surroundings: none of it may be in an existing-cluster
# stack's state, or `pulumi destroy` would delete it.
CLUSTER_LEVEL_TYPES = {
    "awsx:ec2:Vpc",
    "eks:index:Cluster",
    "aws:eks/cluster:Cluster",
    "aws:kms/key:Key",
    "aws:kms/alias:Alias",
    "aws:cloudwatch/logGroup:LogGroup",
    "eks-gpu-slicing:network:Network",
    "eks-gpu-slicing:cluster:GpuCluster",
    "eks-gpu-slicing:cluster:ClusterAddons",
}
EXISTING = {
    "name": "team-cluster",
    "privateSubnetIds": ["subnet-0aaaaaaaaaaaaaaa1", "subnet-0aaaaaaaaaaaaaaa2"],
}


def existing_config(**overrides) -> dict:
    raw = copy.deepcopy(MINIMAL)
    raw["existingCluster"] = copy.deepcopy(EXISTING)
    raw.update(overrides)
    return raw


def assert_keeps_gpu_operator_off(labels: dict[str, str]) -> None:
    """Every operand of the GPU Operator off by its own label, and not by the one label on
    which the operator deletes every nvidia.com/gpu.deploy.* label of the node."""
    for label in facts.GPU_OPERATOR_OPERAND_LABELS:
        assert labels[label] == "false", label
    assert facts.GPU_OPERATOR_OPERANDS_LABEL not in labels


def run_existing(raw: dict, **mocks) -> Deployment:
    monitor = RecordingMonitor(ProgramMocks(**mocks))
    return run_program(engine_config(raw), stack="existing", monitor=monitor)


# --- A created cluster: the same resources, adopted -------------------------------------------


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_every_resource_of_before_is_adopted_not_replaced(stack, request):
    deployment: Deployment = request.getfixturevalue(stack)
    before = (URNS_BEFORE / f"{stack}.txt").read_text().split()
    taken = adopted(deployment, before, stack, facts.PROJECT)
    lost = sorted(set(before) - set(taken.values()))
    assert not lost, f"these would be deleted and created again: {lost}"
    # ...and nothing but GpuSharing itself is new, besides the API access rules added since
    # (clusterEndpoint.privateAccess*: one per network or group).
    new = set(engine_urns(deployment, stack, facts.PROJECT).values()) - set(taken)
    endpoint = settings_of_stack(stack).cluster_endpoint
    rules = len(endpoint.private_access_cidrs) + len(endpoint.private_access_security_group_ids)
    assert sorted(urn.rsplit("::", 2)[1].rsplit("$", 1)[-1] for urn in new) == sorted(
        [GPU_SHARING_TYPE] + ["aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"] * rules
    )


def test_without_the_aliases_the_moved_parts_would_be_replaced(dev):
    for registration in dev.resources.values():
        registration.aliases = []
    before = (URNS_BEFORE / "dev.txt").read_text().split()
    taken = adopted(dev, before, "dev", facts.PROJECT)
    lost = set(before) - set(taken.values())
    assert any("DevicePlugin" in urn for urn in lost)
    assert not any("GpuCluster" in urn for urn in lost)  # the cluster never moved


@pytest.fixture
def dev(dev_deployment) -> Deployment:
    # A copy: one test above empties the aliases of its copy.
    return copy.deepcopy(dev_deployment)


@pytest.fixture(scope="module")
def prod(prod_deployment) -> Deployment:
    return prod_deployment  # shared by the session: read only


def test_gpu_sharing_holds_every_part_after_the_cluster(dev):
    (sharing,) = dev.of_type(GPU_SHARING_TYPE)
    top = {r.type for r in dev.resources.values() if r.parent == sharing.urn}
    assert top == {
        "eks-gpu-slicing:nodes:NodeGroup",
        "eks-gpu-slicing:cluster:Namespaces",
        "eks-gpu-slicing:gpu:DevicePlugin",
        "eks-gpu-slicing:observability:GpuMetrics",
        "eks-gpu-slicing:karpenter:Karpenter",
        "eks-gpu-slicing:workloads:DemoWorkload",
    }
    # The system node group and CoreDNS belong to the created cluster, not to GPU sharing.
    system = dev.one("eks-gpu-slicing:nodes:NodeGroup", "system")
    assert sharing not in dev.ancestors(system)


# --- An existing cluster ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def existing() -> Deployment:
    return run_existing(existing_config())


def test_existing_cluster_registers_gpu_sharing_and_nothing_of_the_cluster(existing):
    types = {r.type for r in existing.resources.values()}
    assert not types & CLUSTER_LEVEL_TYPES
    assert not existing.of_type("aws:eks/addon:Addon")  # no CoreDNS, no Pod Identity Agent
    assert "system" not in {r.name for r in existing.of_type("eks-gpu-slicing:nodes:NodeGroup")}
    (group,) = existing.of_type("aws:eks/nodeGroup:NodeGroup")
    assert group.inputs["clusterName"] == "team-cluster"
    assert group.inputs["subnetIds"] == EXISTING["privateSubnetIds"]
    assert existing.one("kubernetes:core/v1:ConfigMap")
    assert existing.one("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin")


def test_existing_cluster_gpu_nodes_get_their_own_role_and_keep_gpu_operator_off(existing):
    (group,) = existing.of_type("aws:eks/nodeGroup:NodeGroup")
    role = existing.one("aws:iam/role:Role", "gpu-sharing-node-role")
    assert group.inputs["nodeRoleArn"] == role.outputs["arn"]
    attachments = existing.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert {a.urn for a in attachments} <= set(group.dependencies)
    assert_keeps_gpu_operator_off(group.inputs["labels"])
    # Managed node groups get their access entry from EKS itself.
    assert not existing.of_type("aws:eks/accessEntry:AccessEntry")


def test_every_kubernetes_resource_uses_the_provider_built_from_the_lookup(existing):
    provider = existing.one("pulumi:providers:kubernetes", "existing-cluster-k8s")
    kubernetes = [r for r in existing.resources.values() if r.type.startswith("kubernetes:")]
    assert kubernetes
    assert {r.provider_urn for r in kubernetes} == {provider.urn}
    (lookup,) = existing.calls_of("aws:eks/getCluster:getCluster")
    assert lookup["name"] == "team-cluster"
    assert "kubeconfig" in existing.secret_outputs
    assert existing.outputs["clusterName"] == "team-cluster"


def test_existing_cluster_kubeconfig_runs_get_token_with_the_stacks_profile():
    config = engine_config(existing_config())
    config["aws:profile"] = "gpu-admins"
    deployment = run_program(config, stack="existing")
    kubeconfig = json.loads(deployment.outputs["kubeconfig"])
    exec_ = kubeconfig["users"][0]["user"]["exec"]
    assert exec_["args"][-2:] == ["--profile", "gpu-admins"]
    assert exec_["args"][exec_["args"].index("--cluster-name") + 1] == "team-cluster"
    cluster = ProgramMocks().existing_cluster("team-cluster")
    assert kubeconfig["clusters"][0]["cluster"]["server"] == cluster["endpoint"]


def test_destroy_leaves_the_cluster_untouched(existing):
    """Pulumi deletes what is in the stack's state, dependents first: nothing there stands
    for the cluster, and every resource hangs off GpuSharing or the lookup's provider."""
    (sharing,) = existing.of_type(GPU_SHARING_TYPE)
    provider = existing.one("pulumi:providers:kubernetes", "existing-cluster-k8s")
    for registration in existing.resources.values():
        if registration in (sharing, provider):
            continue
        assert sharing in existing.ancestors(registration), registration.urn
    assert not {r.type for r in existing.resources.values()} & CLUSTER_LEVEL_TYPES


def test_existing_cluster_with_karpenter_installed_and_agent_present():
    raw = existing_config(
        karpenter={
            "enabled": True,
            "nodePools": {"g5": {"instanceTypes": ["g5.xlarge"], "limits": {"cpu": 32}}},
        }
    )
    raw["existingCluster"]["podIdentityAgent"] = "installed"
    deployment = run_existing(raw)
    assert not deployment.of_type("aws:eks/addon:Addon")
    release = deployment.one("kubernetes:helm.sh/v3:Release", "karpenter")
    assert not any("pod-identity-agent" in d for d in release.dependencies)
    tagged = {t.inputs["resourceId"] for t in deployment.of_type("aws:ec2/tag:Tag")}
    sg = ProgramMocks().existing_cluster("team-cluster")["vpcConfig"]["clusterSecurityGroupId"]
    assert tagged == {sg, *EXISTING["privateSubnetIds"]}

    raw["existingCluster"]["podIdentityAgent"] = "create"
    (addon,) = run_existing(raw).of_type("aws:eks/addon:Addon")
    assert addon.inputs["addonName"] == facts.POD_IDENTITY_AGENT_ADDON


# --- Karpenter's discovery tags on an existing cluster's subnets and security group ------------

DISCOVERY = facts.KARPENTER_DISCOVERY_TAG
ADDED_BY = facts.DISCOVERY_TAG_ADDED_BY
# Who adds the tags in these runs: run_program's project and the stack `existing`.
THIS_STACK = f"{facts.PROJECT}/existing"
SUBNET_1, SUBNET_2 = EXISTING["privateSubnetIds"]


def installing_karpenter() -> dict:
    raw = existing_config(
        karpenter={
            "enabled": True,
            "nodePools": {"g5": {"instanceTypes": ["g5.xlarge"], "limits": {"cpu": 32}}},
        }
    )
    raw["existingCluster"]["podIdentityAgent"] = "installed"
    return raw


def cluster_security_group() -> str:
    return ProgramMocks().existing_cluster("team-cluster")["vpcConfig"]["clusterSecurityGroupId"]


def tags_put(deployment: Deployment) -> dict[str, dict[str, str]]:
    """Per resource ID, the tags the stack puts on it (and removes on destroy)."""
    put: dict[str, dict[str, str]] = {}
    for tag in deployment.of_type("aws:ec2/tag:Tag"):
        put.setdefault(tag.inputs["resourceId"], {})[tag.inputs["key"]] = tag.inputs["value"]
    return put


def test_untagged_resources_get_the_discovery_tag_after_a_tag_naming_this_stack():
    deployment = run_existing(installing_karpenter())
    ours = {DISCOVERY: "team-cluster", ADDED_BY: THIS_STACK}
    assert tags_put(deployment) == {
        cluster_security_group(): ours,
        SUBNET_1: ours,
        SUBNET_2: ours,
    }
    # Destroy removes the discovery tag before the mark saying it is ours.
    by_urn = {t.urn: t for t in deployment.of_type("aws:ec2/tag:Tag")}
    for tag in by_urn.values():
        if tag.inputs["key"] == DISCOVERY:
            (mark,) = (by_urn[d] for d in tag.dependencies if d in by_urn)
            assert mark.inputs == {**tag.inputs, "key": ADDED_BY, "value": THIS_STACK}
    # Named by what they tag: reordering privateSubnetIds replaces nothing.
    assert {t.name for t in by_urn.values() if t.inputs["resourceId"] == SUBNET_1} == {
        f"karpenter-discovery-{SUBNET_1}",
        f"karpenter-discovery-added-by-{SUBNET_1}",
    }


def test_a_discovery_tag_that_was_there_is_left_alone_and_never_removed():
    # Put there by terraform-aws-eks or eksctl: the same value, no mark of this stack.
    deployment = run_existing(
        installing_karpenter(),
        subnets={SUBNET_1: {"tags": {DISCOVERY: "team-cluster", "Name": "private-a"}}},
        cluster_security_group_tags={DISCOVERY: "team-cluster"},
    )
    # Only SUBNET_2 is tagged: nothing in the state points at the others, so destroy cannot
    # touch their tags.
    assert set(tags_put(deployment)) == {SUBNET_2}
    # ...and Karpenter still finds all of them by the one value.
    node_class = deployment.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    for terms in ("subnetSelectorTerms", "securityGroupSelectorTerms"):
        assert node_class.inputs["spec"][terms] == [{"tags": {DISCOVERY: "team-cluster"}}]


def test_tags_this_stack_added_on_an_earlier_run_stay_in_its_state():
    # What AWS shows after the first `pulumi up`: without the mark, the second run would
    # take its own tags for someone else's and destroy them by dropping them from the state.
    ours = {DISCOVERY: "team-cluster", ADDED_BY: THIS_STACK}
    again = run_existing(
        installing_karpenter(),
        subnets={SUBNET_1: {"tags": ours}, SUBNET_2: {"tags": ours}},
        cluster_security_group_tags=ours,
    )
    first = run_existing(installing_karpenter())
    assert sorted(t.urn for t in again.of_type("aws:ec2/tag:Tag")) == sorted(
        t.urn for t in first.of_type("aws:ec2/tag:Tag")
    )
    assert tags_put(again) == tags_put(first)
    # Another stack's mark on a subnet tagged for the same cluster: that stack's tag, left alone.
    other = {DISCOVERY: "team-cluster", ADDED_BY: f"{facts.PROJECT}/other"}
    deployment = run_existing(installing_karpenter(), subnets={SUBNET_2: {"tags": other}})
    assert SUBNET_2 not in tags_put(deployment)


def refused_before_registering(raw: dict, **mocks) -> str:
    monitor = RecordingMonitor(ProgramMocks(**mocks))
    with pytest.raises(pulumi.RunError) as exc:
        run_program(engine_config(raw), stack="existing", monitor=monitor)
    assert not monitor.registrations, "registered before refusing"
    return str(exc.value)


def test_a_discovery_tag_naming_another_cluster_is_refused_not_overwritten():
    message = refused_before_registering(
        installing_karpenter(),
        subnets={SUBNET_2: {"tags": {DISCOVERY: "blue"}}},
        cluster_security_group_tags={DISCOVERY: "blue"},
    )
    assert (
        f"existingCluster.privateSubnetIds[1]: subnet {SUBNET_2} carries the tag "
        f"{DISCOVERY}=blue, but the Karpenter installed here finds its subnets and security "
        f"group by {DISCOVERY}=team-cluster" in message
    )
    assert (
        f"karpenter.install: the security group of cluster 'team-cluster' "
        f"({cluster_security_group()}) carries the tag {DISCOVERY}=blue" in message
    )
    assert "karpenter.install: false with karpenter.discoveryTagValue: blue" in message
    assert f"change the tag on {SUBNET_2} to {DISCOVERY}=team-cluster" in message
    assert SUBNET_1 not in message
    # Pools for the Karpenter that uses it are what that message offers: nothing is tagged.
    raw = installing_karpenter()
    raw["karpenter"] |= {
        "install": False,
        "nodeRoleName": "KarpenterNode",
        "discoveryTagValue": "blue",
    }
    deployment = run_existing(raw, subnets={SUBNET_2: {"tags": {DISCOVERY: "blue"}}})
    assert not deployment.of_type("aws:ec2/tag:Tag")


@pytest.mark.parametrize("karpenter", [False, True])
def test_a_subnet_outside_the_clusters_vpc_is_refused_by_its_index(karpenter):
    raw = installing_karpenter() if karpenter else existing_config()
    vpc = ProgramMocks().existing_cluster("team-cluster")["vpcConfig"]["vpcId"]
    message = refused_before_registering(
        raw, subnets={SUBNET_2: {"vpcId": "vpc-0ffffffffffffffff"}}
    )
    assert (
        f"existingCluster.privateSubnetIds[1]: subnet {SUBNET_2} is in vpc-0ffffffffffffffff, "
        f"not in the VPC of cluster 'team-cluster' ({vpc})" in message
    )
    assert "privateSubnetIds[0]" not in message


def test_a_subnet_that_cannot_be_read_is_refused_by_its_index():
    message = refused_before_registering(installing_karpenter(), subnets={SUBNET_1: None})
    # The provider's own reason follows.
    assert f"existingCluster.privateSubnetIds[0]: cannot read subnet {SUBNET_1}: " in message
    assert "no matching EC2 Subnet found" in message


def test_pools_for_a_running_karpenter_install_nothing_of_it():
    raw = existing_config(
        karpenter={
            "enabled": True,
            "install": False,
            "nodeRoleName": "KarpenterNodeRole-team",
            "discoveryTagValue": "team",
            "nodePools": {"g5": {"instanceTypes": ["g5.xlarge"], "limits": {"cpu": 32}}},
        }
    )
    deployment = run_existing(raw)
    types = {r.type for r in deployment.resources.values()}
    assert "kubernetes:helm.sh/v3:Release" in types  # the device plugin's
    assert {r.name for r in deployment.of_type("kubernetes:helm.sh/v3:Release")} == {
        "nvidia-device-plugin"
    }
    assert not types & {"aws:sqs/queue:Queue", "aws:ec2/tag:Tag", "aws:eks/accessEntry:AccessEntry"}
    node_class = deployment.one("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
    assert node_class.inputs["spec"]["role"] == "KarpenterNodeRole-team"
    assert node_class.inputs["spec"]["subnetSelectorTerms"] == [
        {"tags": {facts.KARPENTER_DISCOVERY_TAG: "team"}}
    ]
    pool = deployment.one("kubernetes:karpenter.sh/v1:NodePool")
    assert_keeps_gpu_operator_off(pool.inputs["spec"]["template"]["metadata"]["labels"])


# --- Refusals ---------------------------------------------------------------------------------


def refused(raw: dict) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load_settings(raw, stack="existing")
    return exc.value.problems


def test_settings_for_a_created_cluster_are_refused_by_key():
    raw = existing_config(
        clusterEndpoint={"publicAccess": False},
        systemNodeGroup={"instanceType": "t3.large"},
        adminRoleArns=["arn:aws:iam::123456789012:role/admin"],
        network={"natGateways": "onePerAz"},
        clusterLogRetentionDays=30,
        protect=True,
    )
    problems = refused(raw)
    for key in (
        "clusterEndpoint",
        "systemNodeGroup",
        "adminRoleArns",
        "network",
        "clusterLogRetentionDays",
        "protect",
    ):
        assert any(
            p.startswith(f"{key}: only applies to a cluster this stack creates") for p in problems
        )


def test_cluster_name_comes_from_existing_cluster_and_may_not_differ():
    assert load_settings(existing_config(), stack="existing").cluster_name == "team-cluster"
    (problem,) = refused(existing_config(clusterName="other"))
    assert problem.startswith("clusterName: 'other' is not existingCluster.name")


def test_installing_karpenter_needs_a_decision_on_the_pod_identity_agent():
    raw = existing_config(
        karpenter={"enabled": True, "nodePools": {"g5": {"instanceTypes": ["g5.xlarge"]}}}
    )
    assert any(p.startswith("existingCluster.podIdentityAgent: required") for p in refused(raw))


def test_karpenter_install_false_needs_an_existing_cluster_and_its_node_role():
    raw = copy.deepcopy(MINIMAL)
    raw["karpenter"] = {"enabled": True, "install": False, "nodeRoleName": "r"}
    assert any(p.startswith("karpenter.install: false") for p in refused(raw))
    raw = existing_config(karpenter={"enabled": True, "install": False})
    assert any("install: false needs nodeRoleName" in p for p in refused(raw))


def run_refused(raw: dict, **mocks) -> str:
    with pytest.raises(pulumi.RunError) as exc:
        run_existing(raw, **mocks)
    return str(exc.value)


def test_a_config_map_only_cluster_takes_node_groups_but_not_an_installed_karpenter():
    """EKS maps a managed node group's role into aws-auth itself; the nodes of a Karpenter
    installed here join only through the access entry the stack creates, which CONFIG_MAP
    clusters do not have."""
    deployment = run_existing(existing_config(), cluster_authentication_mode="CONFIG_MAP")
    assert deployment.of_type("aws:eks/nodeGroup:NodeGroup")
    assert not deployment.of_type("aws:eks/accessEntry:AccessEntry")
    message = refused_before_registering(
        installing_karpenter(), cluster_authentication_mode="CONFIG_MAP"
    )
    assert (
        "karpenter.enabled: cluster 'team-cluster' authenticates with CONFIG_MAP only, and the "
        "nodes of the Karpenter installed here join through an access entry" in message
    )
    assert "authenticationMode=API_AND_CONFIG_MAP" in message
    assert "karpenter.install: false" in message
    # Pools for a Karpenter that runs there already create no access entry: accepted.
    raw = installing_karpenter()
    raw["karpenter"] |= {"install": False, "nodeRoleName": "KarpenterNode"}
    deployment = run_existing(raw, cluster_authentication_mode="CONFIG_MAP")
    assert deployment.one("kubernetes:karpenter.sh/v1:NodePool")


def test_a_kubernetes_version_that_differs_from_the_clusters_is_refused():
    message = run_refused(existing_config(kubernetesVersion="1.34"), cluster_version="1.35")
    assert (
        "kubernetesVersion: the stack says 1.34, but cluster 'team-cluster' runs 1.35; "
        'set it to "1.35"' in message
    )


def test_without_kubernetes_version_the_clusters_own_is_taken():
    deployment = run_existing(existing_config(), cluster_version="1.34")
    assert deployment.of_type("aws:eks/nodeGroup:NodeGroup")
    message = run_refused(existing_config(), cluster_version="1.19")
    assert "runs Kubernetes 1.19, which this program has no facts for" in message


def _existing_with_karpenter(ami_release: str) -> dict:
    raw = existing_config(
        karpenter={
            "enabled": True,
            "amiRelease": ami_release,
            "nodePools": {"g5": {"instanceTypes": ["g5.xlarge"], "limits": {"cpu": 32}}},
        }
    )
    raw["existingCluster"]["podIdentityAgent"] = "installed"
    return raw


def _release_carrying(version: str, not_version: str) -> str | None:
    """An AMI release (the first of a version's span) that carries `version` but not
    `not_version`, or None."""
    spans = facts.AL2023_NVIDIA_AMI_RELEASES
    firsts = sorted({span.first for span in spans.values()}, reverse=True)
    return next(
        (r for r in firsts if spans[version].carries(r) and not spans[not_version].carries(r)),
        None,
    )


def test_without_kubernetes_version_the_ami_release_is_checked_against_the_clusters():
    """Not against the default version: a release that carries the default but not the
    cluster's version is refused, one that carries the cluster's but not the default is
    taken. The versions and releases are found in facts, so a new default changes nothing."""
    default = facts.DEFAULT_KUBERNETES_VERSION
    others = sorted(
        (v for v in facts.KUBERNETES_RELEASES if v != default),
        key=lambda v: tuple(map(int, v.split("."))),
        reverse=True,
    )
    refused = [(v, r) for v in others if (r := _release_carrying(default, v))]
    taken = [(v, r) for v in others if (r := _release_carrying(v, default))]
    assert refused or taken, "every release carries every version: nothing to tell apart"
    if refused:
        version, release = refused[0]
        message = run_refused(_existing_with_karpenter(release), cluster_version=version)
        assert f"karpenter.amiRelease: AMI release {release}" in message
        assert f"(the cluster runs {version})" in message
    if taken:
        version, release = taken[0]
        deployment = run_existing(_existing_with_karpenter(release), cluster_version=version)
        (node_class,) = deployment.of_type("kubernetes:karpenter.k8s.aws/v1:EC2NodeClass")
        (term,) = node_class.inputs["spec"]["amiSelectorTerms"]
        assert term["alias"].endswith(f"@{release}")


def test_the_example_existing_cluster_stack_renders_offline():
    examples = ROOT / "examples"
    settings = settings_of_stack("existing", examples)
    assert settings.existing_cluster is not None
    deployment = run_program(engine_config_of_stack("existing", examples), stack="existing")
    assert not {r.type for r in deployment.resources.values()} & CLUSTER_LEVEL_TYPES
    karpenter = deployment.one("kubernetes:helm.sh/v3:Release", "karpenter")
    assert not deployment.of_type("aws:eks/addon:Addon")  # podIdentityAgent: installed
    # Nothing selects the system label of a cluster this stack creates: the example's cluster
    # has none, and its Karpenter controller would stay Pending.
    assert facts.NODE_ROLE_LABEL not in json.dumps(karpenter.inputs)
