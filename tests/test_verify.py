"""`make verify` end to end: the real Kubernetes client reads a recorded cluster from a fake
API server (tests/fake_kube_api.py). A healthy cluster passes with no Pulumi CLI on PATH;
each fault is reported on the right check and object, and makes the command exit non-zero.

The recorded cluster (fixtures/verify/cluster.json) belongs to the stack in
fixtures/verify/Pulumi.verify.yaml: time-sliced groups t4 and a10g, an MPS group, a MIG group
a100 (p4d, all-balanced, mixed, time-sliced x2, with its k8s-mig-manager pod), a shared
Karpenter pool g6 and an unshared pool `whole`; only the t4 node runs GPU pods (the demo).
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import karpenter
from eks_gpu_slicing.builders.device_plugin import CONFIG_MAP_LABELS
from eks_gpu_slicing.builders.workloads import virtual_gpu_capacity
from eks_gpu_slicing.review import verify
from eks_gpu_slicing.review.mocks import _mock_kubeconfig, run_program
from eks_gpu_slicing.settings import stack_files
from tests.fake_kube_api import FakeKubeApi

FIXTURES = Path(__file__).parent / "fixtures" / "verify"
STACK = "verify"
RECORDED = json.loads((FIXTURES / "cluster.json").read_text())
T4, A10G, MPS, POOL, WHOLE, MIG = (
    f"ip-10-0-{i}-{i}0.us-west-2.compute.internal" for i in range(1, 7)
)
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


@pytest.fixture(autouse=True)
def stack_file(monkeypatch):
    """Verify reads the fixture's stack file, as it reads Pulumi.<stack>.yaml at the root."""
    monkeypatch.setattr(
        verify, "settings_of_stack", functools.partial(stack_files.settings_of_stack, root=FIXTURES)
    )


@pytest.fixture
def no_pulumi(monkeypatch, tmp_path):
    """A PATH on which there is no Pulumi CLI."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert shutil.which("pulumi") is None


@pytest.fixture
def cluster() -> dict:
    """The recorded cluster, for one test to break."""
    return copy.deepcopy(RECORDED)


def obj(cluster: dict, kind: str, name: str) -> dict:
    (found,) = [
        o for o in cluster["objects"] if o["kind"] == kind and o["metadata"]["name"] == name
    ]
    return found


def pods_on(cluster: dict, node: str) -> list[dict]:
    return [o for o in cluster["objects"] if o["kind"] == "Pod" and o["spec"]["nodeName"] == node]


def remove(cluster: dict, target: dict) -> None:
    cluster["objects"] = [o for o in cluster["objects"] if o is not target]


def crash_loop(pod: dict, container: str) -> None:
    """What the API server shows for a container restarting over and over."""
    for condition in pod["status"]["conditions"]:
        if condition["type"] in ("Ready", "ContainersReady"):
            condition.update(status="False", reason="ContainersNotReady")
    for status in pod["status"]["containerStatuses"]:
        if status["name"] == container:
            status.update(
                ready=False,
                started=False,
                restartCount=7,
                state={"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 5m0s"}},
            )


def run(cluster: dict, tmp_path: Path, capsys, *, resources=()) -> tuple[int, str, FakeKubeApi]:
    """`make verify STACK=verify KUBECONFIG_FILE=...` against the cluster: (exit code,
    printed table, the fake server with the paths the client asked for)."""
    with FakeKubeApi(
        cluster["objects"], logs=cluster["logs"], proxy=cluster["proxy"], resources=resources
    ) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
        code = verify.main([STACK, "--kubeconfig", str(kubeconfig)])
    return code, capsys.readouterr().out, api


def failures(table: str) -> list[tuple[str, str, str]]:
    """(check, subject, detail) of each FAIL row of the printed table."""
    rows = [re.split(r"\s{2,}", line, maxsplit=3) for line in table.splitlines()]
    return [tuple(row[1:]) for row in rows if row[0] == "FAIL"]


def failed(table: str) -> list[tuple[str, str]]:
    return [(check, subject) for check, subject, _ in failures(table)]


# --- A healthy cluster -----------------------------------------------------------------------


def test_a_healthy_cluster_passes_with_only_a_kubeconfig(cluster, tmp_path, capsys, no_pulumi):
    code, table, api = run(cluster, tmp_path, capsys)
    assert failures(table) == []
    assert code == 0 and "0 failed" in table
    for node in (T4, A10G, MPS, POOL, WHOLE, MIG):
        assert re.search(rf"^ok\s+device plugin\s+{re.escape(node)}", table, re.MULTILINE)
    # Idle GPUs: their exporters serve device-level series only, and pass.
    assert table.count("device-level series (no pod on this node uses a GPU)") == 4
    assert re.search(r"^ok\s+mps daemon\s+" + re.escape(MPS), table, re.MULTILINE)
    # The sharing ConfigMap was found by its labels, not named by a stack output.
    assert f"/api/v1/namespaces/{facts.DEVICE_PLUGIN_DEFAULT_NAMESPACE}/configmaps" in api.requests


def test_overlays_are_expected_only_for_shared_pools(cluster, tmp_path, capsys):
    settings = verify.settings_of_stack(STACK)
    expected = verify.expectations(settings)
    # The same function the program registers overlays with: `whole` is unshared, so none.
    assert expected["expectedOverlays"] == sorted(
        o["metadata"]["name"]
        for name, pool in settings.karpenter_pools.items()
        for o in karpenter.node_overlays(
            pool_name=name, pool=pool, profile=settings.sharing[pool.sharing]
        ).values()
    )
    assert "gpu-whole" in expected["expectedNodePools"]
    assert not any(o.startswith("gpu-whole") for o in expected["expectedOverlays"])
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 0
    assert re.findall(r"^ok\s+node overlay\s+(\S+)", table, re.MULTILINE) == ["gpu-g6-1gpu"]


def test_the_programs_own_configmap_is_found_by_its_labels(cluster, tmp_path, capsys):
    """The ConfigMap the program registers (under mocks) replaces the recorded one."""
    deployment = run_program(stack_files.engine_config_of_stack(STACK, FIXTURES), stack=STACK)
    registered = deployment.one(CONFIG_MAP, "nvidia-device-plugin-config").inputs
    assert registered["metadata"]["labels"] == CONFIG_MAP_LABELS
    recorded = next(
        o
        for o in cluster["objects"]
        if o["kind"] == "ConfigMap" and o["metadata"].get("labels") == CONFIG_MAP_LABELS
    )
    recorded["data"] = registered["data"]
    recorded["metadata"]["labels"] = registered["metadata"]["labels"]
    code, table, _ = run(cluster, tmp_path, capsys)
    assert (code, failures(table)) == (0, [])


# --- Faults ---------------------------------------------------------------------------------


def test_a_crash_looping_plugin_beside_a_ready_mps_daemon_fails(cluster, tmp_path, capsys):
    """The chart gives the plugin, MPS daemon and GFD pods one `app.kubernetes.io/name`."""
    on_mps = pods_on(cluster, MPS)
    names = {p["metadata"]["labels"]["app.kubernetes.io/name"] for p in on_mps[:3]}
    assert names == {facts.DEVICE_PLUGIN_CHART}  # plugin, MPS daemon, GFD: one label
    plugin = next(p for p in on_mps if verify.is_device_plugin(p))
    crash_loop(plugin, verify.DEVICE_PLUGIN_CONTAINER)
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    ((check, subject, detail),) = failures(table)
    assert (check, subject) == ("device plugin", MPS)
    assert detail == "nvidia-device-plugin-ctr not ready (CrashLoopBackOff, 7 restarts)"


def test_plugin_pods_are_told_apart_by_daemonset_or_container():
    pods = [p for p in RECORDED["objects"] if p["kind"] == "Pod"]
    plugin = [p["metadata"]["name"] for p in pods if verify.is_device_plugin(p)]
    daemon = [p["metadata"]["name"] for p in pods if verify.is_mps_daemon(p)]
    assert len(plugin) == 6 and all("mps" not in n and "discovery" not in n for n in plugin)
    assert daemon == ["nvidia-device-plugin-mps-control-daemon-m5n6b"]
    # Without an owner reference (a plugin run outside the chart), the container decides.
    bare = copy.deepcopy(next(p for p in pods if verify.is_device_plugin(p)))
    del bare["metadata"]["ownerReferences"]
    assert verify.is_device_plugin(bare) and not verify.is_mps_daemon(bare)
    # The chart's naming rule for the DaemonSets (templates/_helpers.tpl `fullname`).
    release, chart = facts.DEVICE_PLUGIN_RELEASE_NAME, facts.DEVICE_PLUGIN_CHART
    assert verify.chart_fullname(release, chart) == verify.DEVICE_PLUGIN_DAEMONSET
    assert verify.chart_fullname("gpu", "nvidia-device-plugin") == "gpu-nvidia-device-plugin"


def test_a_node_class_that_cannot_resolve_its_ami_fails_with_it_pool(cluster, tmp_path, capsys):
    node_class = obj(cluster, "EC2NodeClass", "gpu-g6")
    for condition in node_class["status"]["conditions"]:
        if condition["type"] in ("AMIsReady", "Ready"):
            condition.update(
                status="False",
                reason="AMINotFound" if condition["type"] == "AMIsReady" else "UnhealthyDependents",
                message="AMISelector did not match any AMIs",
            )
    pool = obj(cluster, "NodePool", "gpu-g6")
    for condition in pool["status"]["conditions"]:
        if condition["type"] in ("NodeClassReady", "Ready"):
            condition.update(status="False", reason="NodeClassNotReady")
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    assert failures(table) == [
        ("node class", "gpu-g6", "AMIsReady: AMINotFound (AMISelector did not match any AMIs)"),
        ("node pool", "gpu-g6", "NodeClassReady: NodeClassNotReady"),
    ]


def test_karpenter_objects_missing_or_not_installed_fail(cluster, tmp_path, capsys):
    remove(cluster, obj(cluster, "NodeOverlay", "gpu-g6-1gpu"))
    code, table, _ = run(
        cluster, tmp_path, capsys, resources=["apis/karpenter.sh/v1alpha1/nodeoverlays"]
    )
    assert (code, failures(table)) == (1, [("node overlay", "gpu-g6-1gpu", "not found")])

    karpenter_kinds = {"EC2NodeClass", "NodePool", "NodeOverlay", "Deployment"}
    cluster["objects"] = [o for o in cluster["objects"] if o["kind"] not in karpenter_kinds]
    code, table, _ = run(cluster, tmp_path, capsys)  # no CRDs: their paths are 404
    assert code == 1
    assert failed(table) == [
        ("karpenter", "controller"),
        ("node class", "gpu-g6"),
        ("node class", "gpu-whole"),
        ("node pool", "gpu-g6"),
        ("node pool", "gpu-whole"),
        ("node overlay", "gpu-g6-1gpu"),
    ]


def test_an_exporter_without_series_for_the_pods_using_its_gpu_fails(cluster, tmp_path, capsys):
    exporter = next(p for p in pods_on(cluster, T4) if "dcgm" in p["metadata"]["name"])
    name = exporter["metadata"]["name"]
    key = f"gpu-monitoring/{name}:9400/metrics"
    # What the exporter serves when it does not attribute (e.g. the pods' resource is not in
    # NVIDIA_RESOURCE_NAMES): device-level series only.
    cluster["proxy"][key] = (
        "\n".join(line for line in cluster["proxy"][key].splitlines() if "pod=" not in line)
        + '\nDCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-5c1d8a2e-3b7f-4e59-9a1c-0d2e4f6a8b01"} 37\n'
    )
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    ((check, subject, detail),) = failures(table)
    assert (check, subject) == ("gpu metrics", name)
    demo = sorted(
        p["metadata"]["name"]
        for p in pods_on(cluster, T4)
        if "gpu-deployment" in p["metadata"]["name"]
    )
    assert detail == f"no series with pod label for {', '.join(demo)}"


def test_an_exporter_that_is_not_ready_fails(cluster, tmp_path, capsys):
    exporter = next(p for p in pods_on(cluster, A10G) if "dcgm" in p["metadata"]["name"])
    crash_loop(exporter, "exporter")
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    assert failed(table) == [("gpu metrics", exporter["metadata"]["name"])]


def _no_plugin_on_t4(cluster):
    remove(cluster, next(p for p in pods_on(cluster, T4) if verify.is_device_plugin(p)))


def _replicas_not_applied(cluster):
    obj(cluster, "Node", T4)["status"]["allocatable"]["nvidia.com/gpu"] = "1"


def _a10g_on_the_default_profile(cluster):
    node = obj(cluster, "Node", A10G)
    node["metadata"]["labels"][facts.DEVICE_PLUGIN_CONFIG_LABEL] = "default"
    node["status"]["allocatable"]["nvidia.com/gpu"] = "10"


def _pool_node_on_another_profile(cluster):
    node = obj(cluster, "Node", POOL)
    node["metadata"]["labels"][facts.DEVICE_PLUGIN_CONFIG_LABEL] = "small-slices"
    node["status"]["allocatable"]["nvidia.com/gpu"] = "4"


def _no_mps_daemon(cluster):
    remove(cluster, next(p for p in pods_on(cluster, MPS) if verify.is_mps_daemon(p)))


@pytest.mark.parametrize(
    ("fault", "expected", "words"),
    [
        (_no_plugin_on_t4, ("device plugin", T4), "no device plugin pod"),
        (_replicas_not_applied, ("allocatable", T4), "replicas not applied"),
        (_a10g_on_the_default_profile, ("config label", A10G), "expected 'small-slices'"),
        (_pool_node_on_another_profile, ("config label", POOL), "expected 'default'"),
        (_no_mps_daemon, ("mps daemon", MPS), "no MPS control daemon"),
    ],
)
def test_each_node_fault_is_named(cluster, tmp_path, capsys, fault, expected, words):
    fault(cluster)
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    ((check, subject, detail),) = failures(table)
    assert (check, subject) == expected and words in detail


def test_bottlerocket_nodes_use_the_built_in_plugin(cluster, tmp_path, capsys):
    _no_plugin_on_t4(cluster)
    node = obj(cluster, "Node", T4)
    node["status"]["nodeInfo"]["osImage"] = "Bottlerocket OS 1.50.0 (aws-k8s-1.35-nvidia)"
    code, table, _ = run(cluster, tmp_path, capsys)
    assert (code, failures(table)) == (0, [])
    assert re.search(rf"^ok\s+device plugin\s+{re.escape(T4)}\s+Bottlerocket", table, re.M)


# --- MIG nodes ---------------------------------------------------------------------------------


def test_a_healthy_mig_node_passes_with_the_reports_slice_counts(cluster, tmp_path, capsys):
    settings = verify.settings_of_stack(STACK)
    group = settings.gpu_node_groups["a100"]
    profile = settings.profile_of(group)
    # verify expects what the sharing report says a node advertises (GPUs x slices x replicas)
    slices = virtual_gpu_capacity(group, profile)["slicesPerNode"]
    expected = verify.expectations(settings)["expectedMig"]["a100-mixed"]
    assert expected["resources"][group.instance_type] == slices
    assert expected["layout"] == profile.mig.layout_name
    gpu = facts.mig_gpu(group.instance_type)
    assert slices == {
        gpu.profiles[name].resource_name: group.instance.gpus * count * profile.replicas
        for name, count in gpu.balanced.items()
    }
    code, table, _ = run(cluster, tmp_path, capsys)
    assert (code, failures(table)) == (0, [])
    node = re.escape(MIG)
    assert re.search(rf"^ok\s+mig config\s+{node}\s+all-balanced: success$", table, re.M)
    assert re.search(rf"^ok\s+mig manager\s+{node}\s+nvidia-mig-manager-\S+ Ready", table, re.M)
    allocatable = re.search(rf"^ok\s+allocatable\s+{node}\s+(.*)$", table, re.M).group(1)
    assert allocatable == ", ".join(f"{r}={n}" for r, n in sorted(slices.items()))


def _mig_state(value):
    def fault(cluster):
        labels = obj(cluster, "Node", MIG)["metadata"]["labels"]
        if value is None:
            del labels[facts.MIG_CONFIG_STATE_LABEL]
        else:
            labels[facts.MIG_CONFIG_STATE_LABEL] = value

    return fault


def _mig_layout_not_relabelled(cluster):
    obj(cluster, "Node", MIG)["metadata"]["labels"][facts.MIG_CONFIG_LABEL] = "all-1g.5gb"


def _mig_slices_not_time_sliced(cluster):
    allocatable = obj(cluster, "Node", MIG)["status"]["allocatable"]
    allocatable["nvidia.com/mig-1g.5gb"] = str(int(allocatable["nvidia.com/mig-1g.5gb"]) // 2)


def _mig_slices_missing(cluster):
    # MIG mode not enabled: the plugin advertises whole GPUs, no slice resources
    allocatable = obj(cluster, "Node", MIG)["status"]["allocatable"]
    for resource in [r for r in allocatable if r.startswith(facts.MIG_RESOURCE_PREFIX)]:
        del allocatable[resource]
    allocatable[facts.GPU_RESOURCE] = "8"


def _mig_manager(cluster):
    return next(p for p in pods_on(cluster, MIG) if verify.is_mig_manager(p))


def _no_mig_manager(cluster):
    remove(cluster, _mig_manager(cluster))


def _mig_manager_crash_looping(cluster):
    crash_loop(_mig_manager(cluster), "nvidia-mig-manager")


@pytest.mark.parametrize(
    ("fault", "check", "words"),
    [
        (_mig_state("pending"), "mig config", "mig.config.state=pending (the manager is"),
        (_mig_state("rebooting"), "mig config", "mig.config.state=rebooting"),
        (_mig_state("failed"), "mig config", "mig.config.state=failed (mig-parted could not"),
        (_mig_state(None), "mig config", "no nvidia.com/mig.config.state label"),
        (_mig_layout_not_relabelled, "mig config", "'all-1g.5gb', expected 'all-balanced'"),
        (_mig_slices_not_time_sliced, "allocatable", "nvidia.com/mig-1g.5gb=16, expected 32"),
        (_mig_slices_missing, "allocatable", "nvidia.com/mig-1g.5gb=0, expected 32"),
        (_no_mig_manager, "mig manager", "no nvidia-mig-manager pod"),
        (_mig_manager_crash_looping, "mig manager", "not ready (CrashLoopBackOff, 7 restarts)"),
    ],
    ids=[
        "pending",
        "rebooting",
        "failed",
        "no-state",
        "old-layout",
        "not-time-sliced",
        "no-slices",
        "no-manager",
        "manager-crash-looping",
    ],
)
def test_each_mig_node_fault_is_named(cluster, tmp_path, capsys, fault, check, words):
    fault(cluster)
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    ((got_check, subject, detail),) = failures(table)
    assert (got_check, subject) == (check, MIG) and words in detail


def test_bottlerocket_mig_nodes_run_no_manager(cluster, tmp_path, capsys):
    """Bottlerocket partitions at boot: no manager pod, no state label; slices still count."""
    _no_mig_manager(cluster)
    remove(cluster, next(p for p in pods_on(cluster, MIG) if verify.is_device_plugin(p)))
    node = obj(cluster, "Node", MIG)
    del node["metadata"]["labels"][facts.MIG_CONFIG_STATE_LABEL]
    node["status"]["nodeInfo"]["osImage"] = "Bottlerocket OS 1.50.0 (aws-k8s-1.35-nvidia)"
    code, table, _ = run(cluster, tmp_path, capsys)
    assert (code, failures(table)) == (0, [])
    assert not re.search(rf"mig (config|manager)\s+{re.escape(MIG)}", table)
    _mig_slices_not_time_sliced(cluster)
    code, table, _ = run(cluster, tmp_path, capsys)
    assert failed(table) == [("allocatable", MIG)]


def _mig_slices_more_than_expected(cluster):
    # A stale or wrong layout can advertise more than the profile's: not what the stack set.
    allocatable = obj(cluster, "Node", MIG)["status"]["allocatable"]
    allocatable["nvidia.com/mig-1g.5gb"] = str(int(allocatable["nvidia.com/mig-1g.5gb"]) * 2)


def _mig_node_of_a_type_the_layout_does_not_fit(cluster):
    labels = obj(cluster, "Node", MIG)["metadata"]["labels"]
    labels[verify.INSTANCE_TYPE_LABEL] = "g5.xlarge"


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (_mig_slices_more_than_expected, "nvidia.com/mig-1g.5gb=64, expected 32"),
        (
            _mig_node_of_a_type_the_layout_does_not_fit,
            "the profile's layout 'all-balanced' does not apply to g5.xlarge",
        ),
    ],
    ids=["more-slices", "layout-does-not-fit"],
)
def test_mig_allocatable_is_exactly_what_the_layout_gives_its_instance_type(
    cluster, tmp_path, capsys, fault, words
):
    fault(cluster)
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    ((check, subject, detail),) = failures(table)
    assert (check, subject) == ("allocatable", MIG) and words in detail


def test_a_mixed_layout_is_expected_per_gpu_of_the_nodes_instance_type(cluster, tmp_path, capsys):
    """all-balanced differs per GPU model: the same profile on a p5 advertises the H100's
    slices, not the p4d's A100 ones."""
    settings = verify.settings_of_stack(STACK)
    profile = settings.sharing["a100-mixed"]
    p5 = facts.GPU_INSTANCES["p5.48xlarge"]
    h100 = profile.node_resources(p5)
    assert set(h100).isdisjoint(profile.node_resources(facts.GPU_INSTANCES["p4d.24xlarge"]))
    node = obj(cluster, "Node", MIG)
    node["metadata"]["labels"][verify.INSTANCE_TYPE_LABEL] = p5.name
    code, table, _ = run(cluster, tmp_path, capsys)
    assert failed(table) == [("allocatable", MIG)]
    smallest = next(iter(h100))
    assert f"{smallest}=0, expected {h100[smallest]}" in failures(table)[0][2]
    allocatable = node["status"]["allocatable"]
    for resource in [r for r in allocatable if r.startswith(facts.MIG_RESOURCE_PREFIX)]:
        del allocatable[resource]
    allocatable.update({r: str(n) for r, n in h100.items()})
    code, table, _ = run(cluster, tmp_path, capsys)
    assert (code, failures(table)) == (0, [])


def test_mig_expectations_cover_exactly_the_types_each_layout_fits(tmp_path, capsys, monkeypatch):
    """The MIG example's custom H100 layout has no A100 40GB form (no 3g.40gb there): verify
    expects it only where it fits, and reads that stack's cluster without failing to start."""
    examples = stack_files.ROOT / "examples"
    settings = stack_files.settings_of_stack("mig", examples)
    expected = verify.expectations(settings)["expectedMig"]
    for name, profile in settings.sharing.items():
        if not profile.is_mig:
            continue
        fits = {
            instance
            for instance, gpu in facts.MIG_GPU_OF_INSTANCE.items()
            if not profile.mig.problems_on(facts.MIG_GPUS[gpu])
        }
        assert set(expected[name]["resources"]) == fits, name
    assert "p4d.24xlarge" not in expected["h100-custom"]["resources"]
    monkeypatch.setattr(
        verify, "settings_of_stack", functools.partial(stack_files.settings_of_stack, root=examples)
    )
    with FakeKubeApi(RECORDED["objects"], logs=RECORDED["logs"], proxy=RECORDED["proxy"]) as api:
        code = verify.main(["mig", "--kubeconfig", str(api.kubeconfig(tmp_path / "kubeconfig"))])
    # Another stack's cluster: its nodes' profiles are not the example's; reported, not a crash.
    assert code == 1 and "failed" in capsys.readouterr().out


def _slice_user_on_the_mig_node(cluster) -> None:
    """A workload pod holding one MIG slice on the MIG node, and an exporter there."""
    demo = next(p for p in pods_on(cluster, T4) if "gpu-deployment" in p["metadata"]["name"])
    user = copy.deepcopy(demo)
    user["metadata"].update(name="slice-user", labels={"app": "slice-user"}, uid="slice-user-uid")
    user["spec"]["nodeName"] = MIG
    (container,) = user["spec"]["containers"]
    # Not the first slice resource of its profile's plugin config (which names the config's
    # resource): only the stack's per-type slice expectations know it is a GPU.
    container["resources"] = {"limits": {"nvidia.com/mig-3g.20gb": "1"}}
    exporter = copy.deepcopy(obj(cluster, "Pod", "dcgm-exporter-b4c6d"))
    exporter["metadata"].update(name="dcgm-exporter-m6i6g", uid="dcgm-exporter-m6i6g-uid")
    exporter["spec"]["nodeName"] = MIG
    cluster["objects"] += [user, exporter]
    cluster["proxy"]["gpu-monitoring/dcgm-exporter-m6i6g:9400/metrics"] = (
        "# TYPE DCGM_FI_DEV_GPU_UTIL gauge\n"
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",GPU_I_ID="7",GPU_I_PROFILE="1g.5gb",'
        f'Hostname="{MIG}"}} 0\n'
    )


def test_a_pod_on_a_mig_slice_needs_its_own_metrics(cluster, tmp_path, capsys):
    """Slice resources count as GPUs in the metrics check: a pod holding a slice with no
    series of its own fails the exporter on its node; with one, it passes."""
    _slice_user_on_the_mig_node(cluster)
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    assert failures(table) == [
        ("gpu metrics", "dcgm-exporter-m6i6g", "no series with pod label for slice-user")
    ]
    cluster["proxy"]["gpu-monitoring/dcgm-exporter-m6i6g:9400/metrics"] += (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",GPU_I_ID="1",GPU_I_PROFILE="3g.20gb",'
        f'Hostname="{MIG}",container="cuda",namespace="default",pod="slice-user"}} 41\n'
    )
    code, table, _ = run(cluster, tmp_path, capsys)
    assert (code, failures(table)) == (0, [])
    assert re.search(
        r"^ok\s+gpu metrics\s+dcgm-exporter-m6i6g\s+per-pod series for 1 pods", table, re.M
    )


def test_demo_pods_on_different_gpus_or_not_ready_fail(cluster, tmp_path, capsys):
    for i, key in enumerate(sorted(cluster["logs"])):
        cluster["logs"][key] = (
            f"GPU 0: Tesla T4 (UUID: GPU-0000000{i}-0000-0000-0000-000000000000)\n"
        )
    demo = [p for p in pods_on(cluster, T4) if "gpu-deployment" in p["metadata"]["name"]]
    crash_loop(demo[-1], "cuda")
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    assert failed(table) == [("demo pods", "3 pods"), ("demo sharing", "3 pods")]


def test_the_configmap_is_found_by_label_and_the_mounted_one_wins(cluster, tmp_path, capsys):
    current = next(
        o
        for o in cluster["objects"]
        if o["kind"] == "ConfigMap" and o["metadata"].get("labels") == CONFIG_MAP_LABELS
    )
    # An old one, still there for a moment after a profile change (create-before-delete).
    old = copy.deepcopy(current)
    old["metadata"]["name"] = "nvidia-device-plugin-config-0ld0ne00"
    old["data"] = {"default": current["data"]["small-slices"]}
    cluster["objects"].insert(0, old)
    code, table, api = run(cluster, tmp_path, capsys)
    assert (code, failures(table)) == (0, [])
    assert "/apis/apps/v1/namespaces/kube-system/daemonsets/nvidia-device-plugin" in api.requests

    cluster["objects"] = [
        o
        for o in cluster["objects"]
        if o["kind"] != "ConfigMap" or o["metadata"]["name"] == "coredns"
    ]
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    assert ("sharing config", "kube-system") in failed(table)


# --- Without a cluster or the Pulumi CLI: one line, no traceback ------------------------------


def test_without_kubeconfig_or_pulumi_cli_one_line_says_what_to_do(capsys, no_pulumi):
    assert verify.main([STACK]) == 2
    out = capsys.readouterr()
    assert out.out == "" and len(out.err.strip().splitlines()) == 1
    assert "Pulumi CLI is not installed" in out.err and "KUBECONFIG_FILE=" in out.err


def test_a_failing_pulumi_cli_is_one_line(capsys, tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pulumi = bin_dir / "pulumi"
    pulumi.write_text(
        "#!/bin/sh\necho 'error: no stack named '\\''verify'\\'' found' >&2\nexit 255\n"
    )
    pulumi.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    assert verify.main([STACK]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no stack named 'verify' found" in err


def test_an_unreachable_cluster_or_missing_kubeconfig_is_one_line(capsys, tmp_path):
    with FakeKubeApi([]) as api:
        kubeconfig = api.kubeconfig(tmp_path / "kubeconfig")
    # The server is gone: its port refuses connections.
    assert verify.main([STACK, "--kubeconfig", str(kubeconfig)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("verify: cannot reach the cluster at http://127.0.0.1:")
    assert err.count("\n") == 1
    assert verify.main([STACK, "--kubeconfig", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err.startswith("verify: cannot use the kubeconfig")


# --- The collected state, and small pieces -----------------------------------------------------


def test_a_collected_state_replays_with_state(cluster, tmp_path, capsys):
    from kubernetes import config as kube_config

    with FakeKubeApi(cluster["objects"], logs=cluster["logs"], proxy=cluster["proxy"]) as api:
        client = kube_config.new_client_from_config(str(api.kubeconfig(tmp_path / "kc")))
        state = verify.collect(
            client,
            namespace=facts.DEVICE_PLUGIN_DEFAULT_NAMESPACE,
            expected=verify.expectations(verify.settings_of_stack(STACK)),
        )
    (tmp_path / "state.json").write_text(json.dumps(state))
    assert verify.main([STACK, "--state", str(tmp_path / "state.json")]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_the_fake_server_answers_only_what_it_holds():
    with FakeKubeApi(RECORDED["objects"]) as api:
        assert api.answer("/api/v1/secrets", {})[0] == 404
        assert api.answer("/apis/karpenter.sh/v1/nodeclaims", {})[0] == 404
        assert api.answer("/api/v1/namespaces/kube-system/configmaps/nope", {})[0] == 404
        status, body = api.answer(
            "/api/v1/namespaces/kube-system/configmaps",
            {"labelSelector": [verify._selector()]},
        )
        assert status == 200 and len(body["items"]) == 1


def test_renamed_and_mps_profiles_advertise_their_resource():
    config = {
        "sharing": {
            "timeSlicing": {
                "renameByDefault": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
            }
        }
    }
    assert verify.profile_capacity(config) == ("nvidia.com/gpu.shared", 4, "time-slicing")
    both = {
        "sharing": {
            **config["sharing"],
            "mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 2}]},
        }
    }
    assert verify.profile_capacity(both) == ("nvidia.com/gpu", 2, "mps")
    assert verify.profile_capacity({"version": "v1"}) == ("nvidia.com/gpu", 1, "none")


def test_the_kubeconfig_output_is_read_as_json_text_or_a_mapping():
    config = _mock_kubeconfig("gpu")  # pulumi-eks's kubeconfig, as the mocks give it
    assert verify.kubeconfig_dict(json.dumps(config)) == config
    assert verify.kubeconfig_dict(config) == config
    for bad, why in (("not json", "not JSON"), ('{"kind": "Config"}', "no `clusters` list")):
        with pytest.raises(verify.VerifyError, match=why):
            verify.kubeconfig_dict(bad)


GOOD_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1"}}],
    "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    "current-context": "x",
    "users": [{"name": "u", "user": {"token": "t"}}],
}


def _changed(**changes: Any) -> str:
    config = {**copy.deepcopy(GOOD_KUBECONFIG), **changes}
    return yaml.safe_dump({k: v for k, v in config.items() if v is not None})


# (case, what the file holds, None for a folder; a part of the one line verify prints)
BAD_KUBECONFIGS = [
    ("not YAML", "clusters: [1\n", "line 2, column 1: not valid YAML"),
    ("a YAML string", "hello\n", "not a kubeconfig: a YAML string"),
    ("a YAML list", "[1, 2]\n", "not a kubeconfig: a YAML list"),
    ("another kind of YAML", "apiVersion: v1\nkind: Pod\n", "no `clusters` list"),
    ("empty", "", "the file is empty"),
    ("a folder", None, "it is a folder, not a kubeconfig file"),
    ("not text", b"\xff\xfe\x00", "not a text file"),
    ("no current context", _changed(**{"current-context": None}), "no `current-context`"),
    ("a context it lacks", _changed(**{"current-context": "y"}), "'y' is not in `contexts`"),
    ("an entry that is not one", _changed(users=["u"]), "users[0] is not a"),
    (
        "a user it lacks",
        _changed(contexts=[{"name": "x", "context": {"cluster": "c", "user": "v"}}]),
        "names user 'v', which is not in `users`",
    ),
    (
        "no server",
        _changed(clusters=[{"name": "c", "cluster": {"server": 5}}]),
        "cluster 'c' has no `server` address",
    ),
    (
        "exec without a command",
        _changed(users=[{"name": "u", "user": {"exec": 5}}]),
        "`exec` needs a `command`",
    ),
    (
        "a field of a type the client cannot read",
        _changed(
            clusters=[
                {
                    "name": "c",
                    "cluster": {"server": "https://127.0.0.1:1", "certificate-authority-data": 5},
                }
            ]
        ),
        "a field of the wrong type",
    ),
]


@pytest.mark.parametrize(
    ("content", "expected"),
    [(content, expected) for _, content, expected in BAD_KUBECONFIGS],
    ids=[case for case, _, _ in BAD_KUBECONFIGS],
)
def test_a_kubeconfig_verify_cannot_use_is_one_line_naming_it(content, expected, capsys, tmp_path):
    """`make verify KUBECONFIG_FILE=...` with a file that is not YAML, not a kubeconfig, or a
    folder: one line naming the file and why, exit 2, before any request."""
    path = tmp_path / "kubeconfig"
    if content is None:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert verify.main([STACK, "--kubeconfig", str(path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.count("\n") == 1
    assert out.err.startswith(f"verify: cannot use the kubeconfig {path}")
    assert expected in out.err


def test_a_stack_file_from_another_folder_and_a_broken_one_are_one_line(capsys, tmp_path):
    """`make verify STACK=... STACK_DIR=examples` reads the stack file from that folder; a
    stack file Pulumi could not read is one line too."""
    (tmp_path / "Pulumi.broken.yaml").write_text("config:\n  eks-gpu-slicing:sharing: {a: 1\n")
    assert verify.main(["broken", "--dir", str(tmp_path), "--kubeconfig", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Pulumi.broken.yaml, line" in err
    # The example stack is found in examples/ and read; only the missing kubeconfig stops it.
    examples = Path(__file__).resolve().parents[1] / "examples"
    assert verify.main(["mig", "--dir", str(examples), "--kubeconfig", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("verify: cannot use the kubeconfig")


# --- HAMi ---------------------------------------------------------------------------------------

HAMI_NODE = "ip-10-0-7-70.us-west-2.compute.internal"
HAMI_SPLIT = 4


@pytest.fixture
def hami_cluster(cluster, tmp_path, monkeypatch) -> dict:
    """The recorded stack plus a g5 group `capped` on a hami profile (split 4), and its cluster:
    a node HAMi registered, HAMi's plugin on it, its scheduler on the system node, a pod holding
    a slice and an exporter there whose series carry no pod (as dcgm-exporter's are on HAMi's
    device IDs)."""
    stack = yaml.safe_load((FIXTURES / "Pulumi.verify.yaml").read_text())
    config = stack["config"]
    config["eks-gpu-slicing:sharing"]["capped"] = {
        "strategy": "hami",
        "hami": {"splitCount": HAMI_SPLIT},
    }
    config["eks-gpu-slicing:gpuNodeGroups"]["capped"] = {
        "instanceType": "g5.xlarge",
        "minSize": 1,
        "desiredSize": 1,
        "maxSize": 1,
        "sharing": "capped",
    }
    folder = tmp_path / "stack"
    folder.mkdir()
    (folder / "Pulumi.verify.yaml").write_text(yaml.safe_dump(stack))
    monkeypatch.setattr(
        verify, "settings_of_stack", functools.partial(stack_files.settings_of_stack, root=folder)
    )
    node = copy.deepcopy(obj(cluster, "Node", A10G))
    node["metadata"].update(name=HAMI_NODE, uid="hami-node-uid")
    node["metadata"]["labels"].update(
        {
            "kubernetes.io/hostname": HAMI_NODE,
            "eks.amazonaws.com/nodegroup": "gpu-capped-1a2b3c4d",
            facts.DEVICE_PLUGIN_CONFIG_LABEL: "capped",
            facts.DEVICE_PLUGIN_SOURCE_LABEL: facts.DEVICE_PLUGIN_FROM_HAMI,
        }
    )
    # One A10G, as the plugin registers it (pkg/device/devices.go MarshalNodeDevices: index
    # 0 is omitted, like every zero field).
    node["metadata"]["annotations"] = {
        facts.HAMI_NODE_REGISTER_ANNOTATION: json.dumps(
            [
                {
                    "id": "GPU-7e2f9a1b-4c3d-4e5f-8a9b-0c1d2e3f4a5b",
                    "count": HAMI_SPLIT,
                    "devmem": 22888,
                    "devcore": 100,
                    "type": "NVIDIA-NVIDIA A10G",
                    "mode": "hami-core",
                    "health": True,
                }
            ]
        )
    }
    for key in ("allocatable", "capacity"):
        node["status"][key][facts.GPU_RESOURCE] = str(HAMI_SPLIT)

    def hami_pod(name: str, component: str, on: str) -> dict:
        pod = copy.deepcopy(obj(cluster, "Pod", "nvidia-device-plugin-q9w3e"))
        pod["metadata"].update(name=name, uid=f"{name}-uid", namespace=facts.HAMI_NAMESPACE)
        pod["metadata"]["labels"] = {
            "app.kubernetes.io/name": facts.HAMI_CHART,
            "app.kubernetes.io/instance": facts.HAMI_RELEASE_NAME,
            facts.HAMI_COMPONENT_LABEL: component,
        }
        pod["metadata"].pop("ownerReferences")
        pod["spec"]["nodeName"] = on
        return pod

    system = next(
        o["metadata"]["name"]
        for o in cluster["objects"]
        if o["kind"] == "Node" and facts.GPU_PRESENT_LABEL not in o["metadata"]["labels"]
    )
    plugin = hami_pod("hami-device-plugin-x1y2z", facts.HAMI_DEVICE_PLUGIN_COMPONENT, HAMI_NODE)
    scheduler = hami_pod("hami-scheduler-5f6d7c8b9-q2w3e", facts.HAMI_SCHEDULER_COMPONENT, system)
    user = copy.deepcopy(
        next(p for p in pods_on(cluster, T4) if "gpu-deployment" in p["metadata"]["name"])
    )
    user["metadata"].update(name="capped-app-0", uid="capped-app-0-uid", labels={"app": "capped"})
    user["spec"]["nodeName"] = HAMI_NODE
    user["spec"]["containers"][0].setdefault("resources", {})["limits"] = {
        facts.GPU_RESOURCE: "1",
        facts.HAMI_MEMORY_RESOURCE: "5722",
    }
    exporter = copy.deepcopy(obj(cluster, "Pod", "dcgm-exporter-p3l5m"))
    exporter["metadata"].update(name="dcgm-exporter-h7m8n", uid="dcgm-exporter-h7m8n-uid")
    exporter["spec"]["nodeName"] = HAMI_NODE
    cluster["objects"] += [node, plugin, scheduler, user, exporter]
    cluster["proxy"]["gpu-monitoring/dcgm-exporter-h7m8n:9400/metrics"] = (
        'DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-7e2f9a1b-4c3d-4e5f-8a9b-0c1d2e3f4a5b"} 41\n'
        'DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-7e2f9a1b-4c3d-4e5f-8a9b-0c1d2e3f4a5b"} 5300\n'
    )
    return cluster


def rows(table: str, check_name: str) -> list[tuple[str, str, str]]:
    """(ok|FAIL, subject, detail) of each row of one check."""
    parsed = [re.split(r"\s{2,}", line, maxsplit=3) for line in table.splitlines()]
    return [(r[0], r[2], r[3]) for r in parsed if len(r) == 4 and r[1] == check_name]


def test_a_healthy_hami_node_passes(hami_cluster, tmp_path, capsys):
    code, table, _ = run(hami_cluster, tmp_path, capsys)
    assert (code, failures(table)) == (0, [])
    assert ("ok", HAMI_NODE, "hami-device-plugin-x1y2z Ready (HAMi)") in rows(
        table, "device plugin"
    )
    assert ("ok", HAMI_NODE, f"1 GPU x {HAMI_SPLIT} slices") in rows(table, "hami registered")
    assert (
        "ok",
        HAMI_NODE,
        f"{facts.GPU_RESOURCE}={HAMI_SPLIT}, expected 1 GPU x {HAMI_SPLIT} = {HAMI_SPLIT}",
    ) in rows(table, "allocatable")
    assert rows(table, "hami scheduler") == [
        ("ok", facts.HAMI_NAMESPACE, "hami-scheduler-5f6d7c8b9-q2w3e Ready")
    ]
    # DCGM cannot name the pod on a HAMi slice: device-level series pass there, and say why.
    (metrics,) = [r for r in rows(table, "gpu metrics") if r[1] == "dcgm-exporter-h7m8n"]
    assert metrics[0] == "ok" and "not attributed by dcgm-exporter" in metrics[2]


def test_a_hami_node_hami_has_not_registered_fails(hami_cluster, tmp_path, capsys):
    node = obj(hami_cluster, "Node", HAMI_NODE)
    del node["metadata"]["annotations"][facts.HAMI_NODE_REGISTER_ANNOTATION]
    code, table, _ = run(hami_cluster, tmp_path, capsys)
    assert code == 1
    assert failures(table) == [
        (
            "hami registered",
            HAMI_NODE,
            f"no {facts.HAMI_NODE_REGISTER_ANNOTATION} annotation: "
            "HAMi's plugin has not registered",
        )
    ]


# --- Tenants' quotas ---------------------------------------------------------------------------


def _quota(cluster: dict, namespace: str) -> dict:
    (found,) = [
        o
        for o in cluster["objects"]
        if o["kind"] == "ResourceQuota" and o["metadata"]["namespace"] == namespace
    ]
    return found


def test_each_tenants_quota_is_read_and_reported_used_over_hard(cluster, tmp_path, capsys):
    code, table, api = run(cluster, tmp_path, capsys)
    assert code == 0
    assert re.search(
        r"^ok\s+tenant quota\s+research \(research\)\s+nvidia\.com/gpu 3/8$", table, re.M
    )
    assert re.search(
        r"^ok\s+tenant quota\s+vision \(vision-team\)\s+nvidia\.com/mig-1g\.5gb 1/4$", table, re.M
    )
    # Read by name in each tenant's namespace, through the client.
    assert (
        f"/api/v1/namespaces/vision-team/resourcequotas/{facts.TENANT_QUOTA_NAME}" in api.requests
    )


def test_a_missing_tenant_quota_fails(cluster, tmp_path, capsys):
    remove(cluster, _quota(cluster, "vision-team"))
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    assert failures(table) == [
        (
            "tenant quota",
            "vision (vision-team)",
            f"no ResourceQuota {facts.TENANT_QUOTA_NAME} in namespace vision-team",
        )
    ]


def test_a_hami_node_with_the_wrong_split_or_allocatable_fails(hami_cluster, tmp_path, capsys):
    node = obj(hami_cluster, "Node", HAMI_NODE)
    annotation = facts.HAMI_NODE_REGISTER_ANNOTATION
    devices = json.loads(node["metadata"]["annotations"][annotation])
    devices[0]["count"] = 10  # the chart's default split: the profile's never reached HAMi
    node["metadata"]["annotations"][annotation] = json.dumps(devices)
    node["status"]["allocatable"][facts.GPU_RESOURCE] = "10"
    code, table, _ = run(hami_cluster, tmp_path, capsys)
    assert code == 1
    assert failures(table) == [
        ("hami registered", HAMI_NODE, f"slices per GPU [10], expected {HAMI_SPLIT}"),
        (
            "allocatable",
            HAMI_NODE,
            f"{facts.GPU_RESOURCE}=10, expected 1 GPU x {HAMI_SPLIT} = {HAMI_SPLIT}",
        ),
    ]


def test_hamis_pods_not_ready_fail(hami_cluster, tmp_path, capsys):
    crash_loop(obj(hami_cluster, "Pod", "hami-device-plugin-x1y2z"), "nvidia-device-plugin-ctr")
    remove(hami_cluster, obj(hami_cluster, "Pod", "hami-scheduler-5f6d7c8b9-q2w3e"))
    code, table, _ = run(hami_cluster, tmp_path, capsys)
    assert code == 1
    assert failed(table) == [
        ("device plugin", HAMI_NODE),
        ("hami scheduler", facts.HAMI_NAMESPACE),
    ]
    assert rows(table, "hami scheduler")[0][2] == "no hami-scheduler pod"


def test_nvidias_plugin_on_a_hami_node_is_not_hamis(hami_cluster, tmp_path, capsys):
    """A node of a hami profile served by the NVIDIA plugin instead (its label lost): the
    stack's expectation still makes it a hami node, and it fails."""
    remove(hami_cluster, obj(hami_cluster, "Pod", "hami-device-plugin-x1y2z"))
    node = obj(hami_cluster, "Node", HAMI_NODE)
    node["metadata"]["labels"][facts.DEVICE_PLUGIN_SOURCE_LABEL] = facts.DEVICE_PLUGIN_FROM_HELM
    nvidia = copy.deepcopy(obj(hami_cluster, "Pod", "nvidia-device-plugin-q9w3e"))
    nvidia["metadata"].update(name="nvidia-device-plugin-h9h9h", uid="nvidia-h9h9h-uid")
    nvidia["spec"]["nodeName"] = HAMI_NODE
    hami_cluster["objects"].append(nvidia)
    code, table, _ = run(hami_cluster, tmp_path, capsys)
    assert code == 1
    assert failures(table) == [("device plugin", HAMI_NODE, "no HAMi device plugin pod scheduled")]


def test_a_tenant_quota_that_differs_from_the_stacks_fails_naming_each_key(
    cluster, tmp_path, capsys
):
    quota = _quota(cluster, "research")
    hard = quota["spec"]["hard"]
    hard["requests.nvidia.com/gpu"] = "12"  # raised by hand
    del hard["requests.nvidia.com/mig-3g.20gb"]  # a resource left open
    hard["limits.nvidia.com/gpu"] = "8"  # a key the quota controller never counts
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 1
    ((check, subject, detail),) = failures(table)
    assert (check, subject) == ("tenant quota", "research (research)")
    assert "requests.nvidia.com/gpu: 12, the stack's 8" in detail
    assert "requests.nvidia.com/mig-3g.20gb: missing, the stack's 0" in detail
    assert "limits.nvidia.com/gpu: 8, not the stack's" in detail


def test_the_same_quantity_written_otherwise_is_the_same_quota(cluster, tmp_path, capsys):
    _quota(cluster, "research")["spec"]["hard"]["requests.nvidia.com/gpu"] = "8000m"
    code, table, _ = run(cluster, tmp_path, capsys)
    assert code == 0, failures(table)


def test_gpu_nodes_the_stack_does_not_own_are_not_judged(cluster, tmp_path, capsys):
    """On an existing cluster, another team's GPU node carries nvidia.com/gpu.present (nodeadm
    sets it from Kubernetes 1.35) but no label of this stack's plugins: verify leaves it alone,
    where it would have reported its missing plugin, profile and capacity as failures."""
    foreign = copy.deepcopy(obj(cluster, "Node", T4))
    foreign["metadata"]["name"] = "ip-10-9-9-9.us-west-2.compute.internal"
    foreign["metadata"]["uid"] = "foreign-node-uid"
    labels = foreign["metadata"]["labels"]
    for key in list(labels):
        if key.startswith(("eks-gpu-slicing/", "nvidia.com/device-plugin", "nvidia.com/mps")):
            del labels[key]
    labels["kubernetes.io/hostname"] = foreign["metadata"]["name"]
    foreign["status"]["allocatable"][facts.GPU_RESOURCE] = "1"
    cluster["objects"].append(foreign)
    code, table, _ = run(cluster, tmp_path, capsys)
    assert failures(table) == [] and code == 0
    assert foreign["metadata"]["name"] not in table
