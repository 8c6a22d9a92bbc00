"""The MIG example stack (examples/Pulumi.mig.yaml) through the whole program under mocks, then
`make check`'s checks: what GpuSharing registers for MIG agrees with the facts table.

The stack is the issue's "done when": a p4d group on all-1g.5gb/single, a p5 group on a
custom mixed layout time-sliced twice, and a Karpenter pool of H200s on all-balanced. Expected
counts come from facts.MIG_GPUS and facts.GPU_INSTANCES, never typed in.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from typing import Any

import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import device_plugin, mig
from eks_gpu_slicing.review import check, render, validate
from eks_gpu_slicing.settings.stack_files import ROOT

EXAMPLES = ROOT / "examples"
PAUSED = "paused-for-mig-change"


@pytest.fixture(scope="module")
def rendered(renders) -> render.Rendered:
    return renders("mig", EXAMPLES)  # shared by the session: read only


def objects(rendered: render.Rendered, kind: str) -> list[dict[str, Any]]:
    return [m for m in rendered.manifests.values() if m["kind"] == kind]


def helm_values(rendered: render.Rendered, release: str) -> dict[str, Any]:
    (path,) = [
        p for p in rendered.files if p.startswith("helm/") and p.endswith(f"-{release}.yaml")
    ]
    return yaml.safe_load(rendered.files[path])["values"]


def gpu_of(instance_type: str) -> facts.MigGpu:
    return facts.MIG_GPUS[facts.MIG_GPU_OF_INSTANCE[instance_type]]


def test_the_mig_stack_passes_every_check(rendered):
    report = check.check_rendered(rendered)
    assert report.violations == []


def test_the_mig_example_deploys_without_warnings(rendered):
    """Nothing in it a reviewer must be told about: no pool lists a type Karpenter can never
    launch (p5e.48xlarge on-demand), no profile is unused."""
    assert rendered.settings.warnings(dt.date(2026, 12, 1)) == []


def test_the_device_plugin_config_has_each_profiles_mig_strategy_and_slices(rendered):
    (config_map,) = [
        c
        for c in objects(rendered, "ConfigMap")
        if c["metadata"]["name"].startswith("nvidia-device")
    ]
    entries = {name: yaml.safe_load(text) for name, text in config_map["data"].items()}
    assert entries["a100-small"]["flags"]["migStrategy"] == "single"
    assert "sharing" not in entries["a100-small"]  # no replicas: one pod per slice
    h100 = entries["h100-custom"]
    assert h100["flags"]["migStrategy"] == "mixed"
    shared = {r["name"]: r["replicas"] for r in h100["sharing"]["timeSlicing"]["resources"]}
    h100_gpu = gpu_of("p5.48xlarge")
    assert shared == {h100_gpu.profiles[p].resource_name: 2 for p in ("1g.10gb", "3g.40gb")}
    assert entries["default"]["flags"]["migStrategy"] == "none"


def test_the_mig_manager_partitions_exactly_the_layouts_in_use(rendered):
    settings = rendered.settings
    (config,) = [
        c
        for c in objects(rendered, "ConfigMap")
        if c["metadata"]["name"] == "nvidia-mig-manager-config"
    ]
    (text,) = config["data"].values()
    layouts = yaml.safe_load(text)["mig-configs"]
    assert set(layouts) - {"all-disabled"} == set(settings.mig_layouts)
    # The p4d's layout: every A100 40GB split into the most 1g.5gb slices it holds.
    a100 = gpu_of("p4d.24xlarge")
    (entry,) = layouts["all-1g.5gb"]
    assert entry["mig-enabled"] is True
    assert entry["mig-devices"] == {"1g.5gb": a100.profiles["1g.5gb"].max_count}
    (daemon_set,) = objects(rendered, "DaemonSet")
    pod = daemon_set["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {facts.MIG_NODE_LABEL: "true"}
    assert daemon_set["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v0.15.0")


def test_the_plugin_and_the_exporter_step_aside_while_gpus_are_repartitioned(rendered):
    for release, label in (
        ("nvidia-device-plugin", "nvidia.com/gpu.deploy.device-plugin"),
        ("dcgm-exporter", "nvidia.com/gpu.deploy.dcgm-exporter"),
    ):
        affinity = helm_values(rendered, release)["affinity"]
        terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        expressions = [e for t in terms["nodeSelectorTerms"] for e in t["matchExpressions"]]
        assert {"key": label, "operator": "NotIn", "values": [PAUSED]} in expressions, release


def test_the_manager_waits_for_the_plugin_and_the_exporter_on_every_gpu_node(rendered):
    """k8s-mig-manager v0.15.0 waits for DaemonSet pods whose nodeSelector has
    nvidia.com/gpu.deploy.client (its `app=` label waits never match our Helm pods): both
    releases select on it, and every GPU node group and pool carries it."""
    for release in ("nvidia-device-plugin", "dcgm-exporter"):
        selector = helm_values(rendered, release)["nodeSelector"]
        assert selector[facts.MIG_DEPLOY_CLIENT_LABEL] == facts.MIG_DEPLOY_CLIENT_VALUE, release
    groups = [
        r.inputs["labels"]
        for r in rendered.deployment.resources.values()
        if r.type == "eks:index:ManagedNodeGroup" and r.name.startswith("gpu-")
    ]
    pools = [p["spec"]["template"]["metadata"]["labels"] for p in objects(rendered, "NodePool")]
    assert groups and pools
    for labels in groups + pools:
        assert labels[facts.MIG_DEPLOY_CLIENT_LABEL] == facts.MIG_DEPLOY_CLIENT_VALUE


def test_node_groups_carry_their_layout_and_the_report_counts_slices(rendered):
    outputs = json.loads(rendered.files["outputs.json"])["gpuNodeGroups"]
    settings = rendered.settings
    p4d = facts.GPU_INSTANCES["p4d.24xlarge"]
    a100 = gpu_of("p4d.24xlarge")
    assert outputs["a100"]["slicesPerNode"] == {
        facts.GPU_RESOURCE: p4d.gpus * a100.profiles["1g.5gb"].max_count
    }
    p5 = facts.GPU_INSTANCES["p5.48xlarge"]
    h100 = gpu_of("p5.48xlarge")
    custom = settings.sharing["h100-custom"].mig.layout
    assert outputs["h100"]["slicesPerNode"] == {
        h100.profiles[p].resource_name: p5.gpus * count * 2 for p, count in custom.items()
    }
    groups = {
        r.name: r
        for r in rendered.deployment.resources.values()
        if r.type == "eks:index:ManagedNodeGroup" and r.name.startswith("gpu-")
    }
    labels = {name: r.inputs["labels"] for name, r in groups.items()}
    assert labels["gpu-a100"][facts.MIG_CONFIG_LABEL] == "all-1g.5gb"
    assert labels["gpu-h100"][facts.MIG_CONFIG_LABEL] == outputs["h100"]["migLayout"]
    assert all(label[facts.MIG_NODE_LABEL] == facts.MIG_NODE_VALUE for label in labels.values())
    # The pool's nodes get the same labels from the same functions.
    (pool,) = objects(rendered, "NodePool")
    pool_labels = pool["spec"]["template"]["metadata"]["labels"]
    assert pool_labels[facts.MIG_NODE_LABEL] == facts.MIG_NODE_VALUE
    assert pool_labels[facts.MIG_CONFIG_LABEL] == "all-balanced"


def test_the_pool_overlay_advertises_every_balanced_slice_and_no_whole_gpu(rendered):
    (overlay,) = objects(rendered, "NodeOverlay")
    h200 = gpu_of("p5en.48xlarge")
    gpus = facts.GPU_INSTANCES["p5en.48xlarge"].gpus
    expected = {
        h200.profiles[p].resource_name: str(gpus * count) for p, count in h200.balanced.items()
    }
    assert overlay["spec"]["capacity"] == {**expected, facts.GPU_RESOURCE: "0"}


def test_the_demo_requests_a_whole_slice_on_the_single_profile(rendered):
    (deployment,) = objects(rendered, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"][facts.GPU_RESOURCE] == 1
    selector = deployment["spec"]["template"]["spec"]["nodeSelector"]
    assert selector[facts.DEVICE_PLUGIN_CONFIG_LABEL] == "a100-small"


def test_the_plugin_release_waits_for_the_node_groups_that_bring_the_client_label(rendered):
    """Turning MIG on relabels the groups' nodes in place; the release that then selects the
    label must come after, or the plugin leaves every GPU node in between."""
    resources = rendered.deployment.resources
    (release,) = [
        r
        for r in resources.values()
        if r.type == "kubernetes:helm.sh/v3:Release" and r.name == "nvidia-device-plugin"
    ]
    groups = {
        urn
        for urn, r in resources.items()
        if r.type == "eks:index:ManagedNodeGroup" and r.name.startswith("gpu-")
    }
    component_of = {urn: r.parent for urn, r in resources.items()}
    waited = set(release.dependencies)
    # Depending on a component waits for its children: count a node group's component too.
    assert all(g in waited or component_of.get(g) in waited for g in groups), waited


def test_a_layout_change_converges(rendered):
    """A changed layout relabels a managed node group's nodes in place (and a pool's template).
    k8s-mig-manager v0.15.0 checks the new name against the file it mounted and, if missing,
    sets `failed` and waits for the next label change (cmd/nvidia-mig-manager/main.go,
    pkg/mig/reconfigure/reconfigure.go). So: every group and pool that names a layout waits
    for the config that holds it, the config waits for no node group, and the manager's pods
    carry the config's checksum (a changed config is a new pod, which applies the label)."""
    resources = rendered.deployment.resources
    (config,) = [
        urn
        for urn, r in resources.items()
        if r.type == "kubernetes:core/v1:ConfigMap" and r.name == "mig-manager-config"
    ]
    labelled = [
        r
        for r in resources.values()
        if (r.type == "eks:index:ManagedNodeGroup" and facts.MIG_CONFIG_LABEL in r.inputs["labels"])
        or (
            r.type == "kubernetes:karpenter.sh/v1:NodePool"
            and facts.MIG_CONFIG_LABEL in r.inputs["spec"]["template"]["metadata"]["labels"]
        )
    ]
    assert {r.name for r in labelled} == {"gpu-a100", "gpu-h100", "karpenter-h200-nodepool"}
    for r in labelled:
        assert config in r.dependencies, r.name
    node_groups = {urn for urn, r in resources.items() if r.type == "eks:index:ManagedNodeGroup"}
    assert not node_groups & _waits_for(resources, config)
    # The manager itself comes after every GPU node group it serves.
    (manager,) = [r for r in resources.values() if r.type == "kubernetes:apps/v1:DaemonSet"]
    gpu_groups = {urn for urn in node_groups if resources[urn].name.startswith("gpu-")}
    assert gpu_groups and gpu_groups <= set(manager.dependencies)
    (daemon_set,) = objects(rendered, "DaemonSet")
    annotations = daemon_set["spec"]["template"]["metadata"]["annotations"]
    config_data = resources[config].inputs["data"]
    assert annotations == {
        device_plugin.CONFIG_CHECKSUM_ANNOTATION: device_plugin.config_checksum(config_data)
    }


def _waits_for(resources: dict[str, Any], urn: str) -> set[str]:
    """Everything a resource waits for, directly or through what it waits for (a dependency
    on a component counts its parent chain too)."""
    seen: set[str] = set()
    todo = [urn]
    while todo:
        current = resources.get(todo.pop())
        if current is None:
            continue
        for dep in [*current.dependencies, *([current.parent] if current.parent else [])]:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_mig_nodes_get_the_boot_time_reset_and_no_other_node_does(rendered):
    """After an EC2 reboot the node keeps mig.config.state=success but not its slices: MIG
    groups' launch templates and MIG pools' node classes reset it at boot (mig.node_user_data);
    the system group's template stays without user data, as EKS bootstraps it."""
    resources = rendered.deployment.resources
    templates = {
        r.name.removesuffix("-launch-template"): r.inputs.get("userData")
        for r in resources.values()
        if r.type == "aws:ec2/launchTemplate:LaunchTemplate"
    }
    reset = mig.node_user_data()
    assert templates.keys() == {"system", "gpu-a100", "gpu-h100"}
    assert templates["system"] is None
    for name in ("gpu-a100", "gpu-h100"):
        assert base64.b64decode(templates[name]).decode() == reset, name
    (node_class,) = objects(rendered, "EC2NodeClass")
    assert node_class["spec"]["userData"] == reset


def test_summaries_count_each_slice_resource(rendered, capsys):
    """A `mixed` layout advertises several slice resources: render's and check's summary, and
    `make validate`'s tables, give each its own count (as outputs.json does), never the
    total under the smallest slice's name."""
    outputs = json.loads(rendered.files["outputs.json"])["gpuNodeGroups"]
    h100 = outputs["h100"]["slicesPerNode"]
    assert len(h100) == 2
    per_node = " + ".join(f"{n} {r}" for r, n in h100.items())
    (line,) = [x for x in render.summary(rendered, dt.date(2026, 12, 1)) if x.startswith("  h100:")]
    assert f", {per_node} per node, " in line
    assert validate.main(["mig", "--dir", str(EXAMPLES)]) == 0
    rows = [re.split(r"\s{2,}", x.strip()) for x in capsys.readouterr().out.splitlines()]
    for resource, count in h100.items():
        assert [resource, str(count), str(count)] in [r[-5:-2] for r in rows], resource
    pool = rendered.settings.karpenter_pools["h200"]
    profile = rendered.settings.sharing[pool.sharing]
    for instance in pool.instances:
        for resource, count in profile.node_resources(instance).items():
            assert [resource, f"{instance.name}: {count}"] in [r[-2:] for r in rows], resource
