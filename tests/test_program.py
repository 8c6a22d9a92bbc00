"""The whole program under Pulumi mocks: what it registers, how it is wired, what it exports."""

from __future__ import annotations

import copy
import json
import math

import pulumi
import pytest
import yaml

from benchmarks.sharing import bench
from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.device_plugin import (
    CONFIG_CHECKSUM_ANNOTATION,
    check_device_plugin_config,
)
from eks_gpu_slicing.builders.workloads import BENCHMARK_MOUNT, benchmark_worker_rss_mib
from eks_gpu_slicing.review.mocks import Deployment, ProgramMocks, RecordingMonitor, run_program
from eks_gpu_slicing.settings.stack_files import (
    ROOT,
    engine_config_of_stack,
    raw_settings,
    settings_of_stack,
)
from tests.conftest import MINIMAL, engine_config
from tests.k8s_semantics import EKS_EFFECTS, selector_matches, tolerates

CLUSTER = "eks:index:Cluster"
NODE_GROUP = "eks:index:ManagedNodeGroup"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
RELEASE = "kubernetes:helm.sh/v3:Release"
PLUGIN_RELEASE = "nvidia-device-plugin"  # the device plugin's, among other releases
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
K8S_PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE = "kubernetes:core/v1:Namespace"


@pytest.fixture(scope="module")
def dev(dev_deployment) -> Deployment:
    return dev_deployment  # shared by the session: read only


@pytest.fixture(scope="module")
def prod(prod_deployment) -> Deployment:
    return prod_deployment  # shared by the session: read only


def dev_settings() -> dict:
    """The dev stack's settings as a raw dict, for variations."""
    return raw_settings(engine_config_of_stack("dev"))


def plugin_release(deployment: Deployment):
    """The device plugin's release (the dev stack has Karpenter's releases too)."""
    return deployment.one(RELEASE, "nvidia-device-plugin")


def node_group_nodes(deployment: Deployment) -> dict[str, dict]:
    """Per managed node group: the labels and taints its nodes will carry."""
    return {
        group.name: {
            "labels": group.inputs.get("labels", {}),
            "taints": group.inputs.get("taints", []),
        }
        for group in deployment.of_type(NODE_GROUP)
    }


# --- The cluster ----------------------------------------------------------------------------


def test_cluster_is_hardened_as_specified(dev):
    cluster = dev.one(CLUSTER).inputs
    assert cluster["name"] == "eks-gpu-slicing-dev"
    # dev follows the program's default version (Pulumi.dev.yaml sets none).
    assert cluster["version"] == settings_of_stack("dev").kubernetes_version
    assert cluster["authenticationMode"] == "API"
    assert cluster["skipDefaultNodeGroup"] is True
    assert cluster["endpointPrivateAccess"] is True
    assert cluster["nodeAssociatePublicIpAddress"] is False
    assert set(cluster["enabledClusterLogTypes"]) == {
        "api",
        "audit",
        "authenticator",
        "controllerManager",
        "scheduler",
    }
    key = dev.one("aws:kms/key:Key")
    assert key.inputs["enableKeyRotation"] is True
    assert cluster["encryptionConfigKeyArn"] == key.outputs["arn"]
    assert key.urn in dev.one(CLUSTER).dependencies


def test_cluster_uses_the_created_vpc_and_private_subnets_for_nodes(dev):
    cluster = dev.one(CLUSTER).inputs
    assert cluster["vpcId"] == "vpc-0123456789abcdef0"
    assert len(cluster["privateSubnetIds"]) == 3
    vpc = dev.one("awsx:ec2:Vpc").inputs
    # Zones are named from the account's lookup, never left for awsx to count.
    assert vpc["availabilityZoneNames"] == ["us-west-2a", "us-west-2b", "us-west-2c"]
    assert "numberOfAvailabilityZones" not in vpc
    specs = {spec["type"]: spec for spec in vpc["subnetSpecs"]}
    assert specs["Private"]["tags"] == {
        "kubernetes.io/role/internal-elb": "1",
        "karpenter.sh/discovery": "eks-gpu-slicing-dev",  # the dev stack runs Karpenter
    }
    assert specs["Public"]["tags"] == {"kubernetes.io/role/elb": "1"}
    for group in dev.of_type(NODE_GROUP):
        assert group.inputs["subnetIds"] == cluster["privateSubnetIds"]


def test_existing_vpc_is_used_as_given():
    raw = copy.deepcopy(MINIMAL)
    raw["network"] = {
        "vpcId": "vpc-0abc12345",
        "privateSubnetIds": ["subnet-0abc1234", "subnet-0abc1235"],
        "publicSubnetIds": ["subnet-0abc1236"],
    }
    deployment = run_program(engine_config(raw), stack="dev")
    assert not deployment.of_type("awsx:ec2:Vpc")
    cluster = deployment.one(CLUSTER).inputs
    assert cluster["vpcId"] == "vpc-0abc12345"
    assert cluster["privateSubnetIds"] == ["subnet-0abc1234", "subnet-0abc1235"]
    assert deployment.one(NODE_GROUP, "gpu-t4").inputs["subnetIds"] == [
        "subnet-0abc1234",
        "subnet-0abc1235",
    ]


def test_prod_is_protected_and_not_open_to_the_world(prod, dev):
    cluster = prod.one(CLUSTER)
    assert cluster.protect is True
    assert cluster.inputs["deletionProtection"] is True
    assert prod.one("aws:kms/key:Key").protect is True
    # As shipped, prod's API is private (no example CIDRs that would lock everyone out).
    assert cluster.inputs["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in cluster.inputs
    assert prod.one("awsx:ec2:Vpc").inputs["natGateways"] == {"strategy": "OnePerAz"}
    assert dev.one(CLUSTER).protect is False
    assert not prod.of_type(DEPLOYMENT)  # no demo in production


def test_private_only_endpoint_sends_no_public_cidrs():
    raw = copy.deepcopy(MINIMAL)
    raw["clusterEndpoint"] = {"publicAccess": False, "privateAccessCidrs": ["10.100.0.0/16"]}
    cluster = run_program(engine_config(raw), stack="dev").one(CLUSTER).inputs
    assert cluster["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in cluster


RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"


def test_private_access_opens_443_on_the_cluster_security_group_before_any_kubernetes_object():
    raw = copy.deepcopy(MINIMAL)
    raw["clusterEndpoint"] = {
        "publicAccess": False,
        "privateAccessCidrs": ["10.100.0.0/16", "172.16.8.0/24"],
        "privateAccessSecurityGroupIds": ["sg-0123456789abcdef0"],
    }
    deployment = run_program(engine_config(raw), stack="dev")
    cluster_name = deployment.one(CLUSTER).inputs["name"]
    # The group EKS created for the cluster: the one its private endpoint's interfaces are in.
    cluster_group = ProgramMocks().existing_cluster(cluster_name)["vpcConfig"][
        "clusterSecurityGroupId"
    ]
    rules = deployment.of_type(RULE)
    sources = sorted(
        r.inputs.get("cidrIpv4") or r.inputs["referencedSecurityGroupId"] for r in rules
    )
    assert sources == ["10.100.0.0/16", "172.16.8.0/24", "sg-0123456789abcdef0"]
    for rule in rules:
        assert rule.inputs["securityGroupId"] == cluster_group
        assert (rule.inputs["ipProtocol"], rule.inputs["fromPort"], rule.inputs["toPort"]) == (
            "tcp",
            facts.KUBERNETES_API_PORT,
            facts.KUBERNETES_API_PORT,
        )
    # Every Kubernetes object goes through the provider, which waits for every rule.
    provider = deployment.one(K8S_PROVIDER, "cluster-k8s")
    assert {r.urn for r in rules} <= set(provider.dependencies)


def test_prod_admits_its_runner_network_to_the_api(prod):
    wanted = raw_settings(engine_config_of_stack("prod"))["clusterEndpoint"]["privateAccessCidrs"]
    assert wanted
    assert sorted(r.inputs["cidrIpv4"] for r in prod.of_type(RULE)) == sorted(wanted)


def test_no_private_access_settings_no_rules(dev):
    assert not dev.of_type(RULE)


def test_admin_roles_get_cluster_admin_access_entries():
    raw = copy.deepcopy(MINIMAL)
    raw["adminRoleArns"] = ["arn:aws:iam::123456789012:role/platform-admins"]
    cluster = run_program(engine_config(raw), stack="dev").one(CLUSTER).inputs
    (entry,) = cluster["accessEntries"].values()
    assert entry["principalArn"] == "arn:aws:iam::123456789012:role/platform-admins"
    (policy,) = entry["accessPolicies"].values()
    assert (
        policy["policyArn"] == "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"
    )
    assert policy["accessScope"] == {"type": "cluster"}


# --- Node groups ----------------------------------------------------------------------------


def test_gpu_node_groups_labels_taints_ami_and_sizes(dev):
    t4 = dev.one(NODE_GROUP, "gpu-t4").inputs
    assert t4["amiType"] == "AL2023_x86_64_NVIDIA"
    assert t4["instanceTypes"] == ["g4dn.xlarge"]
    assert t4["labels"] == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/device-plugin.config": "default",
        "eks-gpu-slicing/device-plugin": "helm",
    }
    assert t4["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    # Disk and IMDS live in the group's own launch template (pulumi-eks forbids both beside
    # one).
    assert "enableIMDSv2" not in t4 and "diskSize" not in t4
    assert t4["capacityType"] == "ON_DEMAND"
    assert t4["scalingConfig"] == {"minSize": 1, "desiredSize": 1, "maxSize": 2}

    g5 = dev.one(NODE_GROUP, "gpu-a10g").inputs
    assert g5["instanceTypes"] == ["g5.xlarge"]
    assert g5["capacityType"] == "SPOT"
    assert g5["labels"] == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/device-plugin.config": "mps-slices",
        "eks-gpu-slicing/device-plugin": "helm",
        # The chart's MPS control daemon runs only where this is set.
        "nvidia.com/mps.capable": "true",
    }


def test_system_group_is_cpu_and_untainted(dev):
    system = dev.one(NODE_GROUP, "system").inputs
    assert system["amiType"] == "AL2023_x86_64_STANDARD"
    assert system["instanceTypes"] == ["t3.large"]
    assert not system.get("taints")
    assert facts.GPU_PRESENT_LABEL not in system.get("labels", {})
    assert system["scalingConfig"]["minSize"] >= 2


def test_node_role_has_only_the_node_policies_and_groups_wait_for_them(dev):
    role = dev.one("aws:iam/role:Role", "cluster-node-role")
    assume = json.loads(role.inputs["assumeRolePolicy"])
    assert assume["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    attachments = [
        a
        for a in dev.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == role.outputs["name"]
    ]
    assert {a.inputs["policyArn"] for a in attachments} == {
        "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
        "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
        "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryPullOnly",
    }
    for group in dev.of_type(NODE_GROUP):
        assert group.inputs["nodeRole"] == f"{role.name}-id"
        assert group.inputs["cluster"] == dev.one(CLUSTER).urn
        assert {a.urn for a in attachments} <= set(group.dependencies)


# --- Device plugin --------------------------------------------------------------------------


def test_release_uses_the_configmaps_name_and_depends_on_it(dev):
    config_map = dev.one(CONFIG_MAP)
    release = plugin_release(dev)
    # The ConfigMap is auto-named; the release reads the name Kubernetes ended up with.
    assert "name" not in config_map.inputs["metadata"]
    # Replaced create-before-delete: the plugin never points at a missing ConfigMap.
    assert not config_map.delete_before_replace
    assert release.inputs["values"]["config"]["name"] == config_map.outputs["metadata"]["name"]
    assert config_map.urn in release.dependencies
    assert config_map.urn in release.property_dependencies["values"]
    assert "map" not in release.inputs["values"]["config"]


def test_release_pins_the_chart(dev):
    release = plugin_release(dev).inputs
    assert release["chart"] == "nvidia-device-plugin"
    assert release["version"] == settings_of_stack("dev").device_plugin.chart_version
    assert release["repositoryOpts"] == {"repo": "https://nvidia.github.io/k8s-device-plugin"}
    assert release["namespace"] == "kube-system"
    assert release["values"]["config"]["default"] == "default"


def test_configmap_holds_a_valid_config_per_profile(dev):
    config_map = dev.one(CONFIG_MAP).inputs
    assert config_map["metadata"]["namespace"] == "kube-system"
    data = config_map["data"]
    assert sorted(data) == ["default", "mps-slices"]
    for text in data.values():
        assert check_device_plugin_config(yaml.safe_load(text)) == []
    mps = yaml.safe_load(data["mps-slices"])["sharing"]
    assert list(mps) == ["mps"]
    assert mps["mps"] == {
        "renameByDefault": True,
        # Unset in the profile: the plugin's own MPS default, written out.
        "failRequestsGreaterThanOne": True,
        "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
    }
    shared = yaml.safe_load(data["default"])["sharing"]["timeSlicing"]
    assert shared["failRequestsGreaterThanOne"] is True


def test_every_gpu_node_names_a_config_that_exists(dev):
    data = dev.one(CONFIG_MAP).inputs["data"]
    for name, node in node_group_nodes(dev).items():
        profile = node["labels"].get(facts.DEVICE_PLUGIN_CONFIG_LABEL)
        if name.startswith("gpu-"):
            assert profile in data


def test_plugin_schedules_on_every_gpu_group_and_nowhere_else(dev):
    values = plugin_release(dev).inputs["values"]
    for name, node in node_group_nodes(dev).items():
        fits = selector_matches(values["nodeSelector"], node["labels"]) and tolerates(
            values["tolerations"], node["taints"]
        )
        assert fits == name.startswith("gpu-"), name


def test_release_rolls_when_config_changes(dev):
    annotation = plugin_release(dev).inputs["values"]["podAnnotations"][CONFIG_CHECKSUM_ANNOTATION]
    raw = dev_settings()
    raw["sharing"]["default"]["replicas"] = 8
    changed = run_program(engine_config(raw), stack="dev")
    assert (
        plugin_release(changed).inputs["values"]["podAnnotations"][CONFIG_CHECKSUM_ANNOTATION]
        != annotation
    )


def test_every_namespace_used_is_created_once_and_waited_for():
    raw = copy.deepcopy(MINIMAL)
    raw["devicePlugin"] = {"namespace": "gpu-system"}
    # Two settings naming one namespace: created once.
    raw["demoWorkload"] = {"enabled": True, "namespace": "ml"}
    raw["benchmark"] = {"enabled": True, "namespace": "ml"}
    deployment = run_program(engine_config(raw), stack="dev")
    created = {ns.inputs["metadata"]["name"]: ns for ns in deployment.of_type(NAMESPACE)}
    assert sorted(created) == ["gpu-system", "ml"]
    in_namespaces = []
    for resource in deployment.resources.values():
        if not resource.type.startswith("kubernetes:") or resource.type == NAMESPACE:
            continue
        namespace = resource.inputs.get("namespace") or resource.inputs.get("metadata", {}).get(
            "namespace"
        )
        if namespace:
            assert created[namespace].urn in resource.dependencies, resource.name
            in_namespaces.append(resource.type)
    # The plugin's ConfigMap and release, the demo, the benchmark's script and Job.
    assert sorted(in_namespaces) == sorted(
        [CONFIG_MAP, RELEASE, DEPLOYMENT, CONFIG_MAP, "kubernetes:batch/v1:Job"]
    )


def test_built_in_namespaces_are_never_created(dev, prod):
    # dev's own namespaces are the demo's and the GPU metrics one; prod uses only built-in ones.
    assert sorted(n.inputs["metadata"]["name"] for n in dev.of_type(NAMESPACE)) == [
        "gpu-demo",
        "gpu-monitoring",
    ]
    assert prod.of_type(NAMESPACE) == []
    assert {"default", "kube-system"} <= facts.BUILTIN_NAMESPACES


def test_every_kubernetes_resource_uses_the_clusters_provider(dev, prod):
    for deployment in (dev, prod):
        provider = deployment.one(K8S_PROVIDER)
        kube = [r for r in deployment.resources.values() if r.type.startswith("kubernetes:")]
        assert kube
        for resource in kube:
            assert resource.provider_urn == provider.urn, resource.name
        # The provider is built from the cluster's kubeconfig, kept secret.
        assert "kubeconfig" in provider.secret_inputs
        assert (
            json.loads(provider.inputs["kubeconfig"])["clusters"][0]["name"]
            == (deployment.one(CLUSTER).inputs["name"])
        )
        assert deployment.one(CLUSTER).urn in provider.dependencies


# --- Demo workload --------------------------------------------------------------------------


def test_demo_deployment(dev):
    demo = dev.one(DEPLOYMENT)
    spec = demo.inputs["spec"]
    assert demo.inputs["metadata"]["name"] == "gpu-deployment"
    assert spec["replicas"] == 5
    pod = spec["template"]["spec"]
    assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert ":" in pod["containers"][0]["image"] and not pod["containers"][0]["image"].endswith(
        ":latest"
    )
    # It lands on the t4 group (profile "default") and nowhere else.
    for name, node in node_group_nodes(dev).items():
        fits = selector_matches(pod["nodeSelector"], node["labels"]) and tolerates(
            pod["tolerations"], node["taints"]
        )
        assert fits == (name == "gpu-t4"), name
    # Waits for the plugin and the GPU nodes it needs (Pulumi waits for a Deployment's
    # pods to become ready). Depending on a component means depending on its children.
    assert plugin_release(dev).urn in demo.dependencies
    for group in dev.of_type(NODE_GROUP):
        assert (group.urn in demo.dependencies) == group.name.startswith("gpu-"), group.name


# --- Structure and outputs ------------------------------------------------------------------


def test_every_resource_lives_in_one_of_our_components(dev):
    for resource in dev.resources.values():
        if resource.type.startswith(f"{facts.COMPONENT_PACKAGE}:"):
            continue
        owners = [a.type for a in dev.ancestors(resource)]
        assert owners and owners[0].startswith(f"{facts.COMPONENT_PACKAGE}:"), resource.name


def test_outputs(dev):
    assert dev.outputs["clusterName"] == "eks-gpu-slicing-dev"
    assert "kubeconfig" in dev.secret_outputs
    assert json.loads(dev.outputs["kubeconfig"])["kind"] == "Config"
    assert dev.outputs["gpuNodeGroups"]["t4"] == {
        "instanceType": "g4dn.xlarge",
        "amiType": "AL2023_x86_64_NVIDIA",
        "profile": "default",
        "strategy": "time-slicing",
        "replicas": 10,
        "resourceName": "nvidia.com/gpu",
        "gpuModel": "T4",
        "gpuMemoryGiB": 16,
        "gpusPerNode": 1,
        "virtualGpusPerNode": 10,
        "virtualGpusAtMaxSize": 20,
        "gpuMemoryPerVirtualGpuGiB": 1.6,
        "usdPerVirtualGpuHour": 0.0526,
        # Dev deploys to us-west-2; the table has us-east-1 prices.
        "priceSource": "on-demand, us-east-1, 2026-07-20 (not us-west-2)",
        "isolation": "none: all replicas share the GPU's memory and one fault domain",
    }
    assert dev.outputs["gpuNodeGroups"]["a10g"]["virtualGpusAtMaxSize"] == 4
    config_map = plugin_release(dev).inputs["values"]["config"]["name"]
    assert dev.outputs["devicePluginConfigMap"] == config_map


# --- Day 2 ----------------------------------------------------------------------------------


def test_same_config_registers_identical_inputs(dev, dev_config):
    again = run_program(dev_config, stack="dev")
    assert again.inputs_by_urn() == dev.inputs_by_urn()


def test_replicas_change_touches_only_the_configmap_and_the_release(dev):
    raw = dev_settings()
    raw["sharing"]["default"]["replicas"] = 4
    changed = run_program(engine_config(raw), stack="dev")
    before, after = dev.inputs_by_urn(), changed.inputs_by_urn()
    assert before.keys() == after.keys()
    differing = {
        before_urn.rsplit("::", 1)[1]
        for before_urn in before
        if before[before_urn] != after[before_urn]
    }
    # The dev stack's Karpenter pool uses the profile: its overlay's capacity follows.
    assert differing == {
        "nvidia-device-plugin-config",
        "nvidia-device-plugin",
        "karpenter-g5-overlay-1gpu",
    }


def test_adding_a_profile_and_group_never_touches_existing_groups(dev):
    raw = dev_settings()
    raw["sharing"]["pairs"] = {"replicas": 2}
    raw["gpuNodeGroups"]["l4"] = {
        "instanceType": "g6.xlarge",
        "minSize": 0,
        "desiredSize": 0,
        "maxSize": 1,
        "sharing": "pairs",
    }
    changed = run_program(engine_config(raw), stack="dev")
    for urn, registration in dev.resources.items():
        if registration.type in (NODE_GROUP, CLUSTER):
            assert changed.resources[urn].inputs == registration.inputs


# --- Bad configuration ----------------------------------------------------------------------


def test_bad_configuration_stops_before_any_resource_is_registered():
    raw = copy.deepcopy(MINIMAL)
    raw["gpuNodeGroups"]["t4"]["minSize"] = 3
    raw["sharing"] = {"default": {"replicas": 1}}
    raw["gpuNodeGroup"] = {}
    monitor = RecordingMonitor(ProgramMocks())
    with pytest.raises(pulumi.RunError) as caught:
        run_program(engine_config(raw), stack="dev", monitor=monitor)
    message = str(caught.value)
    assert "gpuNodeGroups.t4: minSize (3) > maxSize (2)" in message
    assert "sharing.default.replicas" in message
    assert "gpuNodeGroup: unknown key; did you mean 'gpuNodeGroups'?" in message
    assert monitor.registrations == {}


def test_renamed_profile_flows_into_demo_requests_and_outputs():
    raw = copy.deepcopy(MINIMAL)
    raw["sharing"] = {"default": {"replicas": 3, "renameByDefault": True}}
    raw["demoWorkload"] = {"enabled": True, "replicas": 2}
    deployment = run_program(engine_config(raw), stack="dev")
    pod = deployment.one(DEPLOYMENT).inputs["spec"]["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu.shared"] == 1 and "nvidia.com/gpu" not in limits
    assert deployment.outputs["gpuNodeGroups"]["t4"]["resourceName"] == "nvidia.com/gpu.shared"
    text = deployment.one(CONFIG_MAP).inputs["data"]["default"]
    assert yaml.safe_load(text)["sharing"]["timeSlicing"]["renameByDefault"] is True


def test_effects_table_covers_our_taint():
    assert EKS_EFFECTS[facts.EKS_NO_SCHEDULE] == facts.K8S_NO_SCHEDULE


# --- In-cluster benchmark -------------------------------------------------------------------


def test_benchmark_is_off_by_default(dev):
    assert not dev.of_type("kubernetes:batch/v1:Job")
    assert "benchmarkJobs" not in dev.outputs


def test_benchmark_runs_the_committed_package_on_each_chosen_group():
    raw = dev_settings()
    # A whole, time-sliced GPU (the Job refuses MPS groups) under a renamed resource.
    raw["sharing"]["quarters"] = {
        "strategy": "time-slicing",
        "replicas": 4,
        "renameByDefault": True,
    }
    raw["gpuNodeGroups"]["a10g"]["sharing"] = "quarters"
    raw["benchmark"] = {"enabled": True, "nodeGroups": ["a10g"], "durationSeconds": 2}
    deployment = run_program(engine_config(raw), stack="dev")
    script = deployment.one(CONFIG_MAP, "sharing-benchmark-script")
    package = ROOT / "benchmarks/sharing/bench"
    assert script.inputs["data"] == {p.name: p.read_text() for p in package.glob("*.py")}
    job = deployment.one("kubernetes:batch/v1:Job")
    assert job.name == "sharing-benchmark-a10g"
    pod = job.inputs["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == script.outputs["metadata"]["name"]
    assert script.urn in job.dependencies
    assert pod["nodeSelector"]["node.kubernetes.io/instance-type"] == "g5.xlarge"
    assert pod["nodeSelector"]["nvidia.com/device-plugin.config"] == "quarters"
    command = pod["containers"][0]["command"][2]
    assert "--clients 1,2,4 " in command  # the quarters profile has 4 replicas
    # durationSeconds x repetitions (default 3) of timed windows per case
    assert f"--rounds {math.ceil(2 * 3 / bench.DEFAULT_WINDOW_S)} " in command
    assert f"PYTHONPATH={BENCHMARK_MOUNT} python -m bench run " in command
    resources = pod["containers"][0]["resources"]
    # The renamed resource the group advertises.
    assert resources["limits"]["nvidia.com/gpu.shared"] == 1
    # Memory from the committed per-worker RSS: one group (no MPS mode asked for) of 4
    # workers (the profile's replicas) + margin.
    rss = benchmark_worker_rss_mib(("mlp", "transformer"))
    assert resources["limits"]["memory"] == f"{math.ceil(4 * rss + 1024)}Mi"
    assert resources["requests"]["memory"] == resources["limits"]["memory"]
    assert plugin_release(deployment).urn in job.dependencies
    assert deployment.one(NODE_GROUP, "gpu-a10g").urn in job.dependencies
    assert deployment.outputs["benchmarkJobs"] == {"a10g": job.outputs["metadata"]["name"]}
    assert job.provider_urn == deployment.one(K8S_PROVIDER).urn


def test_coredns_is_created_after_the_system_nodes_not_with_the_cluster(dev):
    cluster = dev.one(CLUSTER).inputs
    assert cluster["corednsAddonOptions"]["enabled"] is False
    coredns = dev.one("aws:eks/addon:Addon", "addons-coredns")
    assert coredns.inputs["addonName"] == "coredns"
    assert coredns.inputs["clusterName"] == cluster["name"]
    assert dev.one(NODE_GROUP, "system").urn in coredns.dependencies
