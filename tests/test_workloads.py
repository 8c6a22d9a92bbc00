"""Node labels, taints and the demo Deployment, as pure functions."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.sharing import bench
from components.benchmark import read_benchmark_package
from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.workloads import (
    BENCHMARK_CSV_MARKER,
    BENCHMARK_MEMORY_MARGIN_MIB,
    BENCHMARK_MOUNT,
    benchmark_clients,
    benchmark_deadline_s,
    benchmark_job,
    benchmark_package_data,
    benchmark_run_args,
    benchmark_sizing,
    benchmark_worker_rss_mib,
    demo_deployment,
    gpu_node_labels,
    gpu_node_taints,
    gpu_toleration,
    virtual_gpu_capacity,
)
from eks_gpu_slicing.planning.planner import DEFAULT_RESULTS
from eks_gpu_slicing.settings import GpuNodeGroupSettings, SharingProfile
from tests.k8s_semantics import selector_matches, tolerates

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_labels_are_strings_and_name_the_profile():
    labels = gpu_node_labels("default")
    assert labels == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/device-plugin.config": "default",
    }
    assert all(isinstance(v, str) for v in labels.values())


def test_eks_taint_uses_the_eks_spelling_and_the_toleration_matches_it():
    taints = gpu_node_taints()
    assert taints == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert tolerates([gpu_toleration()], taints)
    assert not tolerates([], taints)


def test_capacity_is_gpus_times_replicas():
    group = GpuNodeGroupSettings(
        instance_type="g5.12xlarge", min_size=0, desired_size=1, max_size=3, sharing="p"
    )
    capacity = virtual_gpu_capacity(group, SharingProfile(strategy="time-slicing", replicas=6))
    assert capacity["gpusPerNode"] == 4
    assert capacity["virtualGpusPerNode"] == 24
    assert capacity["virtualGpusAtMaxSize"] == 72
    unshared = virtual_gpu_capacity(group, SharingProfile(strategy="none"))
    assert unshared["virtualGpusPerNode"] == 4


def test_demo_deployment_matches_source_design_done_right():
    profile = SharingProfile(strategy="time-slicing", replicas=10)
    manifest = demo_deployment(
        replicas=5,
        image="nvcr.io/nvidia/cuda:12.9.1-base-ubuntu24.04",
        namespace="default",
        profile_name="default",
        profile=profile,
    )
    assert manifest["metadata"]["name"] == "gpu-deployment"
    spec = manifest["spec"]
    assert spec["replicas"] == 5
    pod = spec["template"]["spec"]
    assert spec["selector"]["matchLabels"] == spec["template"]["metadata"]["labels"]
    # Label values are strings: the source design's unquoted `true` is rejected by the API.
    assert pod["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert selector_matches(pod["nodeSelector"], gpu_node_labels("default"))
    assert not selector_matches(pod["nodeSelector"], gpu_node_labels("other"))
    assert tolerates(pod["tolerations"], gpu_node_taints())
    (container,) = pod["containers"]
    assert gpu_limits(container) == {"nvidia.com/gpu": 1}
    assert not container["image"].endswith(":latest")


def test_demo_requests_the_renamed_resource_when_the_profile_renames():
    profile = SharingProfile(strategy="time-slicing", replicas=4, rename_by_default=True)
    manifest = demo_deployment(
        replicas=1, image="x/y:1", namespace="ns", profile_name="p", profile=profile
    )
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    assert gpu_limits(container) == {"nvidia.com/gpu.shared": 1}


def gpu_limits(container: dict) -> dict:
    return {
        k: v for k, v in container["resources"]["limits"].items() if k.startswith("nvidia.com/")
    }


def test_benchmark_clients_follow_the_profile():
    assert benchmark_clients(SharingProfile(strategy="time-slicing", replicas=10)) == [
        1,
        2,
        4,
        8,
        10,
    ]
    assert benchmark_clients(SharingProfile(strategy="time-slicing", replicas=4)) == [1, 2, 4]
    assert benchmark_clients(SharingProfile(strategy="time-slicing", replicas=2)) == [1, 2]
    assert benchmark_clients(SharingProfile(strategy="none")) == [1, 2, 4, 8, 10]


def _package() -> dict[str, str]:
    return read_benchmark_package()


def _job(group, profile, sizing, run_args):
    return benchmark_job(
        group_name="g",
        group=group,
        profile=profile,
        image="pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime",
        namespace="default",
        package_config_map="bench-cm",
        modules=list(_package()),
        run_args=run_args,
        sizing=sizing,
    )


def test_the_config_map_holds_every_module_of_the_package():
    data = _package()
    modules = {p.name for p in (ROOT / "benchmarks" / "sharing" / "bench").glob("*.py")}
    assert set(data) == modules and {"__init__.py", "__main__.py", "cli.py"} <= modules
    for name, text in data.items():
        assert text == (ROOT / "benchmarks" / "sharing" / "bench" / name).read_text()
    with pytest.raises(ValueError, match=r"lacks __main__\.py"):
        benchmark_package_data({"__init__.py": ""})
    with pytest.raises(ValueError, match="not a flat package module name"):
        benchmark_package_data({"__init__.py": "", "__main__.py": "", "sub/x.py": ""})


def test_the_job_runs_the_package_entry_point_from_the_config_map(tmp_path):
    """Lay the ConfigMap out as the Job's volume does (its items), then run the Job's exact
    command with `run` swapped for `plan` (no GPU, no torch here): the package imports from
    the mount and its own parser accepts every argument the Job passes."""
    group = GpuNodeGroupSettings(
        instance_type="g4dn.xlarge", min_size=1, desired_size=1, max_size=1, sharing="ts"
    )
    profile = SharingProfile(strategy="time-slicing", replicas=4)
    models, modes = ["mlp", "transformer"], ["exclusive", "time-slicing", "mps"]
    sizing = benchmark_sizing(group.instance, profile, models, modes)
    run_args = benchmark_run_args(
        clients=sizing.clients, models=models, modes=modes, duration_s=3, repetitions=3
    )
    pod = _job(group, profile, sizing, run_args)["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if "configMap" in v]
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert volume["configMap"]["name"] == "bench-cm"
    root = tmp_path / mount["mountPath"].lstrip("/")
    data = _package()
    for item in volume["configMap"]["items"]:
        (root / item["path"]).parent.mkdir(parents=True, exist_ok=True)
        (root / item["path"]).write_text(data[item["key"]])
    assert {i["key"] for i in volume["configMap"]["items"]} == set(data)
    script = pod["containers"][0]["command"][2]
    entry = f"PYTHONPATH={BENCHMARK_MOUNT} python -m bench run "
    assert script.startswith("echo 'note: ") and f"; {entry}" in script  # 4 vCPUs: unpinned
    run = script[script.index(entry) :].split(";")[0].replace(BENCHMARK_MOUNT, str(root))
    run = run.replace("python -m bench run ", f"{sys.executable} -m bench plan ", 1)
    run = run.replace(" --out /tmp/results.csv", "")
    done = subprocess.run(
        ["/bin/sh", "-c", run], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "process groups plain, mps, 4 processes each" in done.stdout
    assert BENCHMARK_CSV_MARKER in script and script.endswith("exit $status")


def test_the_job_args_are_the_benchmarks_own():
    run_args = benchmark_run_args(
        clients=[1, 2],
        models=["mlp"],
        modes=["exclusive", "time-slicing", "mps", "mps-limited"],
        duration_s=2.5,
        repetitions=3,
    )
    args = bench.parse_args(run_args)  # the package's own parser: one method, no --method
    assert (args.clients, args.models) == ((1, 2), ("mlp",))
    assert args.modes == ("exclusive", "time-slicing", "mps")  # one MPS daemon per run
    # every case gets the timed seconds the settings ask for, in the published windows
    assert args.window_s == bench.DEFAULT_WINDOW_S
    assert args.rounds * args.window_s >= 2.5 * 3 > (args.rounds - 1) * args.window_s


def test_benchmark_deadline_follows_the_scripts_estimate():
    short = benchmark_run_args(
        clients=[1, 2], models=["mlp"], modes=["exclusive"], duration_s=1, repetitions=1
    )
    long = benchmark_run_args(
        clients=[1, 2, 4, 8, 10],
        models=["mlp", "transformer"],
        modes=["exclusive", "time-slicing"],
        duration_s=3,
        repetitions=3,
    )
    estimate = bench.estimate_seconds(bench.settings_from_args(bench.parse_args(long)))
    assert benchmark_deadline_s(long) >= 4 * estimate
    assert benchmark_deadline_s(short) < benchmark_deadline_s(long)


def test_benchmark_job_targets_one_group_and_requests_its_resource():
    group = GpuNodeGroupSettings(
        instance_type="g5.2xlarge", min_size=1, desired_size=1, max_size=1, sharing="renamed"
    )
    profile = SharingProfile(strategy="time-slicing", replicas=4, rename_by_default=True)
    sizing = benchmark_sizing(group.instance, profile, ["mlp"], ["exclusive"])
    job = _job(
        group,
        profile,
        sizing,
        benchmark_run_args(
            clients=sizing.clients, models=["mlp"], modes=["exclusive"], duration_s=1, repetitions=1
        ),
    )
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    node_labels = {**gpu_node_labels("renamed"), "node.kubernetes.io/instance-type": "g5.2xlarge"}
    assert selector_matches(pod["nodeSelector"], node_labels)
    assert not selector_matches(
        pod["nodeSelector"], {**node_labels, "node.kubernetes.io/instance-type": "g4dn.xlarge"}
    )
    assert tolerates(pod["tolerations"], gpu_node_taints())
    (container,) = pod["containers"]
    memory = f"{sizing.memory_mib}Mi"
    assert container["resources"]["limits"] == {
        "nvidia.com/gpu.shared": 1,
        "cpu": str(group.instance.vcpus),
        "memory": memory,
    }
    assert container["resources"]["requests"] == {"cpu": "5", "memory": memory}  # 4 ranks + 1
    assert not container["command"][2].startswith("echo")  # nothing capped, nothing to say


def test_allocatable_memory_follows_the_ami_reservations():
    # g4dn.xlarge: 16 GiB nominal, 29 pods: 16384 x 0.925 - (11 x 29 + 255) - 100 eviction
    assert facts.allocatable_memory_mib(facts.GPU_INSTANCES["g4dn.xlarge"]) == 15155 - 574 - 100
    # More possible pods reserve more: g5.xlarge has the same memory and 58 pods.
    assert facts.allocatable_memory_mib(facts.GPU_INSTANCES["g5.xlarge"]) == 15155 - 893 - 100


def test_worker_rss_comes_from_the_committed_results():
    rows = bench.load_results(DEFAULT_RESULTS)
    assert all(r.host_rss_mib for r in rows if r.status == "ok")  # measured for every row
    mlp_only = max(r.host_rss_mib for r in rows if r.model == "mlp")
    assert benchmark_worker_rss_mib(("mlp",)) == mlp_only
    # A worker that also builds the transformer holds more than one that runs only the MLP.
    assert benchmark_worker_rss_mib(("mlp", "transformer")) > mlp_only


@pytest.mark.parametrize("instance", facts.GPU_INSTANCES.values(), ids=lambda i: i.name)
@pytest.mark.parametrize("modes", [["exclusive", "time-slicing"], ["exclusive", "mps"]])
def test_benchmark_sizing_fits_every_instance_type(instance, modes):
    """Every process group the run keeps up, each of the largest N's size, fits in the
    node's allocatable memory, and the cores asked for leave the node one vCPU."""
    models = ["mlp", "transformer"]
    for replicas in (2, 4, 10, 13, 40):
        profile = SharingProfile(strategy="time-slicing", replicas=replicas)
        sizing = benchmark_sizing(instance, profile, models, modes)
        settings = bench.settings_from_args(
            bench.parse_args(
                benchmark_run_args(
                    clients=sizing.clients, models=models, modes=modes, duration_s=3, repetitions=3
                )
            )
        )
        processes = len(bench.worker_groups(settings)) * bench.group_size(settings)
        rss = benchmark_worker_rss_mib(tuple(models))
        assert sizing.groups == len(bench.worker_groups(settings))
        assert sizing.memory_mib >= processes * rss + BENCHMARK_MEMORY_MARGIN_MIB
        assert sizing.memory_mib <= facts.allocatable_memory_mib(instance)
        assert 1 <= sizing.cpu <= instance.vcpus - 1
        assert sizing.pinned == (instance.vcpus - 1 > max(sizing.clients))
        assert set(sizing.clients) <= set(benchmark_clients(profile)) | {max(sizing.clients)}


def test_benchmark_caps_n_where_the_groups_would_not_fit_and_says_so():
    t4 = facts.GPU_INSTANCES["g4dn.xlarge"]
    profile = SharingProfile(strategy="time-slicing", replicas=40)
    models, modes = ["mlp", "transformer"], ["exclusive", "time-slicing", "mps"]
    sizing = benchmark_sizing(t4, profile, models, modes)
    rss = benchmark_worker_rss_mib(tuple(models))
    room = facts.allocatable_memory_mib(t4) - BENCHMARK_MEMORY_MARGIN_MIB
    fit = math.floor(room / (2 * rss))  # two groups: plain and MPS
    assert 1 < fit < 40
    assert sizing.capped and max(sizing.clients) == fit
    assert sizing.clients == [*(n for n in benchmark_clients(profile) if n < fit), fit]
    assert 2 * (fit + 1) * rss > room
    described = sizing.describe("g4dn.xlarge")
    assert f"N capped at {fit} (the profile asks for up to 40)" in described
    assert "not pinned" in described  # 4 vCPUs cannot give each rank its own core
    group = GpuNodeGroupSettings(
        instance_type="g4dn.xlarge", min_size=1, desired_size=1, max_size=1, sharing="big"
    )
    run_args = benchmark_run_args(
        clients=sizing.clients, models=models, modes=modes, duration_s=1, repetitions=1
    )
    script = _job(group, profile, sizing, run_args)["spec"]["template"]["spec"]["containers"][0]
    note, _, run = script["command"][2].partition(
        f"; PYTHONPATH={BENCHMARK_MOUNT} python -m bench "
    )
    assert note.startswith("echo 'note: N = ") and f"N capped at {fit}" in note
    assert run.startswith("run --clients ")  # the note first, then the benchmark
