"""`strategy: hami` (issue 23): the profile's settings and refusals, HAMi's chart values against
the pinned chart (shared/reference/hami-2.10.0), placement with scheduling semantics, and the
example stack (examples/Pulumi.hami.yaml) through the whole program under mocks, then `make
check`'s checks. Expected figures come from facts, never typed in."""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import device_plugin, hami, workloads
from eks_gpu_slicing.builders.bottlerocket import user_data
from eks_gpu_slicing.builders.pod_security import PRIVILEGED
from eks_gpu_slicing.review import check, render
from eks_gpu_slicing.review.helm import unknown_value_paths, value_paths
from eks_gpu_slicing.settings import ConfigError, HamiSettings, SharingProfile, load_settings
from eks_gpu_slicing.settings.stack_files import ROOT, settings_of_stack
from tests.k8s_semantics import selector_matches, tolerates

EXAMPLES = ROOT / "examples"
REFERENCE = ROOT.parent / "shared" / "reference" / f"hami-{facts.HAMI_CHART_VERSION}"
needs_reference = pytest.mark.skipif(
    not REFERENCE.is_dir(), reason=f"no upstream reference at {REFERENCE}"
)

# A stack with a g5 group on a hami profile beside a time-sliced g4dn group.
HAMI: dict[str, Any] = {
    "sharing": {
        "default": {"strategy": "time-slicing", "replicas": 4},
        "capped": {"strategy": "hami", "hami": {"splitCount": 4}},
    },
    "gpuNodeGroups": {
        "t4": {"instanceType": "g4dn.xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 2},
        "a10g": {
            "instanceType": "g5.xlarge",
            "minSize": 1,
            "desiredSize": 1,
            "maxSize": 2,
            "sharing": "capped",
        },
    },
}


@pytest.fixture
def raw() -> dict[str, Any]:
    return copy.deepcopy(HAMI)


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="t")
    return caught.value.problems


# --- The profile ------------------------------------------------------------------------------


def test_a_hami_profile_advertises_gpus_times_split_count_with_an_even_memory_share(raw):
    raw["sharing"]["capped"]["hami"]["memoryScaling"] = 0.5
    settings = load_settings(raw, stack="t")
    profile = settings.sharing["capped"]
    g5 = facts.GPU_INSTANCES["g5.xlarge"]
    assert profile.is_hami and profile.shared
    assert profile.resource_name == facts.GPU_RESOURCE
    assert profile.node_resources(g5) == {facts.GPU_RESOURCE: g5.gpus * 4}
    # The even share of what HAMi hands out: GPU memory x memoryScaling / splitCount.
    assert profile.memory_per_device_mib(g5) == int(g5.gpu_memory_mib * 0.5) // 4
    assert settings.hami == HamiSettings(split_count=4, memory_scaling=0.5)
    assert facts.HAMI_NAMESPACE in settings.namespaces


def test_hami_is_installed_only_where_a_group_uses_a_hami_profile(raw):
    raw["gpuNodeGroups"]["a10g"]["sharing"] = "default"
    settings = load_settings(raw, stack="t")
    assert settings.hami is None
    assert facts.HAMI_NAMESPACE not in settings.namespaces


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({"strategy": "hami"}, "sharing.capped: strategy 'hami' needs hami: {splitCount: N}"),
        (
            {"strategy": "hami", "hami": {"splitCount": 4}, "replicas": 4},
            "sharing.capped: replicas: not with strategy 'hami'",
        ),
        (
            {"strategy": "hami", "hami": {"splitCount": 4}, "renameByDefault": True},
            "sharing.capped: renameByDefault: not with strategy 'hami'",
        ),
        (
            {"strategy": "hami", "hami": {"splitCount": 4}, "failRequestsGreaterThanOne": True},
            "sharing.capped: failRequestsGreaterThanOne: not with strategy 'hami'",
        ),
        (
            {
                "strategy": "hami",
                "hami": {"splitCount": 4},
                "mig": {"layout": "all-1g.5gb", "strategy": "single"},
            },
            "sharing.capped: mig: not with strategy 'hami'",
        ),
        (
            {"strategy": "time-slicing", "replicas": 4, "hami": {"splitCount": 4}},
            "sharing.capped: hami only applies to strategy 'hami' (this profile's is "
            "'time-slicing')",
        ),
        ({"strategy": "hami", "hami": {}}, "sharing.capped.hami.splitCount: required"),
        (
            {"strategy": "hami", "hami": {"splitCount": 1}},
            "sharing.capped.hami.splitCount: Input should be greater than or equal to 2",
        ),
        (
            {"strategy": "hami", "hami": {"splitCount": 4, "memoryScaling": 0}},
            "sharing.capped.hami.memoryScaling: Input should be greater than 0",
        ),
        (
            {"strategy": "hami", "hami": {"splitCount": 4, "memoryScaling": 2.5}},
            "sharing.capped.hami.memoryScaling: Input should be less than or equal to 2",
        ),
        (
            {"strategy": "hami", "hami": {"splitCount": 4, "corePolicy": "strict"}},
            "sharing.capped.hami.corePolicy: Input should be 'default', 'force' or 'disable'",
        ),
        (
            {"strategy": "hami", "hami": {"splitCount": 4, "splitcount": 4}},
            "sharing.capped.hami.splitcount: unknown key; did you mean 'splitCount'?",
        ),
    ],
)
def test_what_hami_cannot_do_is_refused_by_key(raw, profile, expected):
    raw["sharing"]["capped"] = profile
    found = problems(raw)
    assert any(p.startswith(expected) for p in found), found


def test_split_count_is_bounded_by_the_most_pods_any_gpu_node_runs(raw):
    most = max(i.max_pods for i in facts.GPU_INSTANCES.values())
    raw["sharing"]["capped"]["hami"]["splitCount"] = most
    load_settings(raw, stack="t")
    raw["sharing"]["capped"]["hami"]["splitCount"] = most + 1
    assert problems(raw) == [
        f"sharing.capped.hami.splitCount: Input should be less than or equal to {most}"
    ]


def test_hami_profiles_of_one_stack_must_agree_on_every_value(raw):
    raw["sharing"]["other"] = {
        "strategy": "hami",
        "hami": {"splitCount": 8, "memoryScaling": 1, "corePolicy": "force"},
    }
    raw["gpuNodeGroups"]["t4"]["sharing"] = "other"
    found = problems(raw)
    assert [p.split(":")[0] for p in found] == [
        "sharing.other.hami.splitCount",
        "sharing.other.hami.corePolicy",
    ]
    assert "differs from sharing.capped.hami.splitCount (4)" in found[0]
    assert "one HAMi installation serves every hami node" in found[0]
    raw["sharing"]["other"]["hami"] = {"splitCount": 4, "memoryScaling": 1.0}
    load_settings(raw, stack="t")  # the same values under another name are fine


def test_a_karpenter_pool_on_a_hami_profile_is_refused_citing_karpenter(raw):
    raw["karpenter"] = {
        "enabled": True,
        "nodePools": {"g5": {"instanceTypes": ["g5.xlarge"], "limits": {"nodes": 1}}},
    }
    load_settings(raw, stack="t")  # on another profile, the pool is fine
    raw["karpenter"]["nodePools"]["g5"]["sharing"] = "capped"
    (problem,) = problems(raw)
    assert problem.startswith("karpenter.nodePools.g5.sharing: profile 'capped' is hami")
    assert "pkg/utils/resources" in problem and "RequestedResourcesRegistered" in problem


def test_al2023_and_bottlerocket_hami_groups_cannot_share_one_installation(raw):
    raw["gpuNodeGroups"]["br"] = {
        **raw["gpuNodeGroups"]["a10g"],
        "amiType": facts.BOTTLEROCKET_GPU_AMI_TYPE,
    }
    (problem,) = problems(raw)
    assert problem.startswith("gpuNodeGroups.br.amiType: hami groups br (Bottlerocket) and a10g")
    del raw["gpuNodeGroups"]["a10g"]
    raw["gpuNodeGroups"]["br"]["sharing"] = "capped"
    assert load_settings(raw, stack="t").hami_on_bottlerocket


def test_the_benchmark_leaves_hami_groups_out_and_refuses_them_by_name(raw):
    raw["benchmark"] = {"enabled": True}
    settings = load_settings(raw, stack="t")
    assert set(settings.benchmark_groups) == {"t4"}
    assert any("a10g" in w and "MPS, MIG or hami" in w for w in settings.warnings(dt.date.today()))
    raw["benchmark"]["nodeGroups"] = ["a10g"]
    (problem,) = problems(raw)
    assert problem.startswith("benchmark.nodeGroups: a10g: profile 'capped' is hami")


def test_the_nvidia_config_entry_of_a_hami_profile_shares_nothing():
    """The NVIDIA plugin never runs on hami nodes; the entry it has for them (so that the
    node's config label and devicePlugin.defaultProfile keep meaning something) would
    advertise whole GPUs, and passes the plugin's own rules."""
    profile = SharingProfile(strategy="hami", hami=HamiSettings(split_count=4))
    config = device_plugin.device_plugin_config(profile)
    assert "sharing" not in config
    assert device_plugin.check_device_plugin_config(config) == []


# --- Chart values -----------------------------------------------------------------------------


def values_for(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "hami": HamiSettings(split_count=4, memory_scaling=1.5, core_policy="force"),
        "kubernetes_version": facts.DEFAULT_KUBERNETES_VERSION,
        "system_node_selector": workloads.system_node_labels(),
    }
    return hami.helm_values(**{**arguments, **overrides})


def test_values_carry_the_profiles_split_scaling_and_core_policy():
    values = values_for()
    assert values["devicePlugin"]["deviceSplitCount"] == 4
    assert values["devicePlugin"]["deviceMemoryScaling"] == 1.5
    assert values["devices"]["nvidia"]["gpuCorePolicy"] == "force"


@pytest.mark.parametrize("version", list(facts.KUBERNETES_RELEASES))
def test_the_kube_scheduler_image_follows_the_clusters_kubernetes_version(version):
    image = values_for(kubernetes_version=version)["scheduler"]["kubeScheduler"]["image"]
    assert image == {
        "registry": facts.KUBE_SCHEDULER_REGISTRY,
        "repository": facts.KUBE_SCHEDULER_REPOSITORY,
        "tag": f"v{version}.0",
    }


def test_other_gpu_pods_keep_their_scheduler_and_services_open_no_node_port():
    values = values_for()
    assert values["scheduler"]["forceOverwriteDefaultScheduler"] is False
    assert values["scheduler"]["nodeLabelSelector"] == {
        facts.DEVICE_PLUGIN_SOURCE_LABEL: facts.DEVICE_PLUGIN_FROM_HAMI
    }
    assert values["scheduler"]["service"]["type"] == "ClusterIP"
    assert values["devicePlugin"]["service"]["type"] == "ClusterIP"


def test_the_scheduler_and_its_hook_jobs_run_on_the_system_nodes_when_the_cluster_has_them():
    system = workloads.system_node_labels()
    values = values_for()
    assert values["scheduler"]["nodeSelector"] == system
    assert values["scheduler"]["patch"]["nodeSelector"] == system
    bare = values_for(system_node_selector={})
    assert "nodeSelector" not in bare["scheduler"] and "patch" not in bare["scheduler"]


def test_bottlerocket_sets_the_three_host_paths_together_under_a_writable_root():
    assert "global" not in values_for()  # AL2023: the chart's own /usr/local
    values = values_for(bottlerocket=True)
    hook = values["global"]["gpuHookPath"]
    assert hook == facts.HAMI_HOOK_PATH["bottlerocket"] and not hook.startswith("/usr")
    # The plugin returns host paths under <hook>/vgpu and mounts libPath there; the monitor
    # reads <hook>/vgpu/containers from ctrPath.
    assert values["devicePlugin"]["libPath"] == f"{hook}/vgpu"
    assert values["devicePlugin"]["monitor"]["ctrPath"] == f"{hook}/vgpu/containers"


@pytest.mark.parametrize("bottlerocket", [False, True])
def test_every_value_we_set_is_one_the_chart_reads(bottlerocket):
    values = values_for(bottlerocket=bottlerocket)
    assert unknown_value_paths(facts.HAMI_CHART, values) == []
    # Each path is set by some configuration (the lists hold nothing we never send).
    every = set(value_paths(values_for(bottlerocket=True), facts.HAMI_VALUE_PATHS))
    assert every == set(facts.HAMI_VALUE_PATHS)


@needs_reference
def test_listed_value_paths_are_in_the_charts_value_paths_and_helper_paths_are_read_by_helpers():
    listed = set((REFERENCE / "values-paths.txt").read_text().split())
    assert facts.HAMI_LISTED_VALUE_PATHS - listed == set()
    # Read through helpers only, so the grep behind values-paths.txt cannot see them: the
    # kube-scheduler image map goes whole to common.images.image, which reads its registry
    # and repository (and the tag the chart resolves first).
    assert not facts.HAMI_HELPER_VALUE_PATHS & listed
    helpers = (REFERENCE / "templates" / "_helpers.tpl").read_text()
    commons = (REFERENCE / "templates" / "_commons.tpl").read_text()
    assert re.search(
        r'common\.images\.image" \(dict "imageRoot" \.Values\.scheduler\.kubeScheduler\.image',
        helpers,
    )
    for key in ("registry", "repository"):
        assert f".imageRoot.{key}" in commons
    assert {p.rsplit(".", 1)[0] for p in facts.HAMI_HELPER_VALUE_PATHS} == {
        "scheduler.kubeScheduler.image"
    }
    # The tag's value path is `.image.tag`; the pre-2.x `imageTag` is read nowhere.
    assert "scheduler.kubeScheduler.image.tag" in listed
    templates = "".join(p.read_text() for p in (REFERENCE / "templates").rglob("*") if p.is_file())
    assert "kubeScheduler.imageTag" not in templates


@needs_reference
def test_the_chart_renders_no_device_plugin_toleration_of_its_own():
    """Why the values set devicePlugin.tolerations: the default is empty and the template
    renders tolerations only when the list is not."""
    chart_values = yaml.safe_load((REFERENCE / "values.yaml").read_text())
    assert chart_values["devicePlugin"]["tolerations"] == []
    assert chart_values["scheduler"]["forceOverwriteDefaultScheduler"] is True
    daemonset = (REFERENCE / "templates" / "device-plugin" / "daemonsetnvidia.yaml").read_text()
    assert "{{- if .Values.devicePlugin.tolerations }}" in daemonset
    assert "nodeSelector: {{ toYaml .Values.devicePlugin.nvidiaNodeSelector" in daemonset


# --- Placement --------------------------------------------------------------------------------


def test_each_device_plugin_runs_only_on_its_own_nodes(raw):
    settings = load_settings(raw, stack="t")
    labels = {
        name: workloads.gpu_node_group_labels(
            group.sharing, settings.profile_of(group), bottlerocket=group.bottlerocket
        )
        for name, group in settings.gpu_node_groups.items()
    }
    taints = workloads.gpu_node_taints()
    ours = values_for()["devicePlugin"]
    nvidia = device_plugin.helm_values(
        config_map_name="c", default_profile="default", checksum="x", gfd=True
    )
    assert selector_matches(ours["nvidiaNodeSelector"], labels["a10g"])
    assert tolerates(ours["tolerations"], taints)
    assert not selector_matches(ours["nvidiaNodeSelector"], labels["t4"])
    # NVIDIA's plugin and GFD (one nodeSelector for both) stay off the hami nodes.
    assert selector_matches(nvidia["nodeSelector"], labels["t4"])
    assert not selector_matches(nvidia["nodeSelector"], labels["a10g"])
    # The MIG manager's DaemonSet selects eks-gpu-slicing/mig, which no hami node carries.
    assert facts.MIG_NODE_LABEL not in labels["a10g"]


def test_a_bottlerocket_hami_node_turns_its_built_in_plugin_off():
    profile = SharingProfile(strategy="hami", hami=HamiSettings(split_count=4))
    text = user_data(profile)
    assert "[settings.kubelet-device-plugins.nvidia]\nenabled = false" in text
    labels = workloads.gpu_node_group_labels("capped", profile, bottlerocket=True)
    assert labels[facts.DEVICE_PLUGIN_SOURCE_LABEL] == facts.DEVICE_PLUGIN_FROM_HAMI


# --- The example stack through the program ---------------------------------------------------


@pytest.fixture(scope="module")
def rendered() -> render.Rendered:
    return render.render("hami", EXAMPLES)


def objects(rendered: render.Rendered, kind: str) -> list[dict[str, Any]]:
    return [m for m in rendered.manifests.values() if m["kind"] == kind]


def release(rendered: render.Rendered, name: str):
    (registration,) = [
        r
        for r in rendered.deployment.resources.values()
        if r.type == "kubernetes:helm.sh/v3:Release" and r.inputs.get("name") == name
    ]
    return registration


def test_the_hami_example_passes_every_check_and_warns_of_nothing(rendered):
    assert check.check_rendered(rendered).violations == []
    assert rendered.settings.warnings(dt.date(2026, 12, 1)) == []


def test_hami_is_one_pinned_release_in_a_privileged_namespace_of_its_own(rendered):
    registration = release(rendered, facts.HAMI_RELEASE_NAME)
    inputs = registration.inputs
    assert (inputs["chart"], inputs["version"]) == (facts.HAMI_CHART, facts.HAMI_CHART_VERSION)
    assert inputs["repositoryOpts"]["repo"] == facts.HAMI_CHART_REPO
    assert inputs["namespace"] == facts.HAMI_NAMESPACE
    (namespace,) = [
        n for n in objects(rendered, "Namespace") if n["metadata"]["name"] == facts.HAMI_NAMESPACE
    ]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == PRIVILEGED
    deps = set(registration.dependencies)
    (namespace_urn,) = [urn for urn, m in rendered.manifests.items() if m is namespace]
    assert namespace_urn in deps
    # And for the system nodes and CoreDNS: its scheduler and certificate Jobs run there.
    assert any(d.endswith("ManagedNodeGroup::system") for d in deps)
    assert any(d.endswith("Addon::addons-coredns") for d in deps)


def test_the_hami_release_selects_the_hami_group_and_follows_the_profile(rendered):
    values = release(rendered, facts.HAMI_RELEASE_NAME).inputs["values"]
    settings = rendered.settings
    profile = settings.sharing["capped"]
    assert profile.hami is not None
    assert values["devicePlugin"]["deviceSplitCount"] == profile.hami.split_count
    image = values["scheduler"]["kubeScheduler"]["image"]
    assert image["tag"] == facts.kube_scheduler_tag(settings.kubernetes_version)
    group = [
        r
        for r in rendered.deployment.resources.values()
        if r.type == "eks:index:ManagedNodeGroup" and r.name.startswith("gpu-a10g")
    ]
    labels = group[0].inputs["labels"]
    assert selector_matches(values["devicePlugin"]["nvidiaNodeSelector"], labels)
    nvidia = release(rendered, facts.DEVICE_PLUGIN_RELEASE_NAME).inputs["values"]
    assert not selector_matches(nvidia["nodeSelector"], labels)


def test_the_demo_asks_hamis_scheduler_for_one_slice_and_its_even_memory_share(rendered):
    (deployment,) = objects(rendered, "Deployment")
    spec = deployment["spec"]["template"]["spec"]
    assert spec["schedulerName"] == facts.HAMI_SCHEDULER_NAME
    limits = spec["containers"][0]["resources"]["limits"]
    g5 = facts.GPU_INSTANCES["g5.xlarge"]
    assert limits[facts.GPU_RESOURCE] == 1
    assert limits[facts.HAMI_MEMORY_RESOURCE] == g5.gpu_memory_mib // 4
    # Neither privileged (HAMi's webhook refuses such a pod) nor above `restricted`.
    assert not spec["containers"][0]["securityContext"].get("privileged")
    # It waits for HAMi's release: its pods need the scheduler and the webhook.
    (registration,) = [
        r
        for r in rendered.deployment.resources.values()
        if r.type == "kubernetes:apps/v1:Deployment"
    ]
    assert release(rendered, facts.HAMI_RELEASE_NAME).urn in registration.dependencies


def test_the_report_gives_slices_the_even_share_and_the_enforced_cap(rendered):
    report = rendered.deployment.outputs["gpuNodeGroups"]["a10g"]
    g5 = facts.GPU_INSTANCES["g5.xlarge"]
    assert report["strategy"] == "hami"
    assert report["virtualGpusPerNode"] == g5.gpus * 4
    assert report["gpuMemoryPerVirtualGpuGiB"] == round(g5.gpu_memory_mib // 4 / 1024, 2)
    assert report["usdPerVirtualGpuHour"] == round(g5.usd_per_hour / (g5.gpus * 4), 4)
    assert report["isolation"].startswith("memory-capped (software)")
    assert report["hami"]["evenShareMiB"] == g5.gpu_memory_mib // 4
    assert facts.HAMI_MEMORY_RESOURCE in report["hami"]["memoryPerSlice"]


def test_non_hami_stacks_install_no_hami():
    """(The dev, prod, existing and MIG stacks render byte-identically to before hami.)"""
    for stack, root in (("dev", ROOT), ("prod", ROOT), ("mig", EXAMPLES), ("existing", EXAMPLES)):
        settings = settings_of_stack(stack, root)
        assert settings.hami is None, stack
        assert facts.HAMI_NAMESPACE not in settings.namespaces, stack


def test_the_example_has_a_hami_group_and_a_karpenter_pool_on_another_profile(rendered):
    settings = rendered.settings
    assert [g.instance.family for g in settings.hami_groups.values()] == ["g5"]
    assert settings.karpenter_pools
    assert not any(settings.sharing[p.sharing].is_hami for p in settings.karpenter_pools.values())


def test_make_validate_prints_slices_the_even_share_and_what_caps_a_pod(capsys):
    from eks_gpu_slicing.review import validate

    assert validate.main(["hami", "--dir", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    g5 = facts.GPU_INSTANCES["g5.xlarge"]
    (row,) = [line for line in out.splitlines() if line.startswith("a10g ")]
    cells = row.split()
    assert cells[cells.index("nvidia.com/gpu") + 1] == str(g5.gpus * 4)
    assert f"{round(g5.gpu_memory_mib // 4 / 1024, 2):g}" in cells
    assert "isolation, a10g: memory-capped (software)" in out
    assert (
        f"memory per slice, a10g: each pod's device memory is capped at what it requests in "
        f"{facts.HAMI_MEMORY_RESOURCE}" in out
    )


def test_dcgm_exporter_is_told_no_resource_besides_nvidia_com_gpu_for_hami(rendered):
    """Pods of hami profiles request nvidia.com/gpu, which the exporter attributes by default
    (it cannot map HAMi's device IDs to a GPU all the same: builders/gpu_metrics.py)."""
    assert rendered.settings.gpu_resource_names() == {facts.GPU_RESOURCE}
    values = release(rendered, facts.DCGM_EXPORTER_RELEASE_NAME).inputs["values"]
    assert facts.DCGM_RESOURCE_NAMES_ENV not in {e["name"] for e in values["extraEnv"]}


def test_on_an_existing_cluster_the_kube_scheduler_follows_the_clusters_own_version(raw):
    """Its version is read from EKS when the program runs (kubernetesVersion left out)."""
    from eks_gpu_slicing.review.mocks import ProgramMocks, RecordingMonitor, run_program
    from tests.conftest import engine_config
    from tests.test_gpu_sharing import EXISTING

    raw["existingCluster"] = copy.deepcopy(EXISTING)
    raw["existingCluster"]["systemNodeSelector"] = {"eks.amazonaws.com/nodegroup": "core"}
    monitor = RecordingMonitor(ProgramMocks(cluster_version="1.33"))
    deployment = run_program(engine_config(raw), stack="existing", monitor=monitor)
    (hami_release,) = [
        r for r in deployment.resources.values() if r.inputs.get("chart") == facts.HAMI_CHART
    ]
    values = hami_release.inputs["values"]
    assert values["scheduler"]["kubeScheduler"]["image"]["tag"] == "v1.33.0"
    # The scheduler goes where the stack file says the cluster's system nodes are.
    assert values["scheduler"]["nodeSelector"] == {"eks.amazonaws.com/nodegroup": "core"}
