"""Node labels, taints and the demo Deployment, as pure functions."""

from __future__ import annotations

import math

from benchmarks.sharing import bench
from eks_gpu_slicing import facts
from eks_gpu_slicing.planner import DEFAULT_RESULTS
from eks_gpu_slicing.settings import GpuNodeGroupSettings, SharingProfile
from eks_gpu_slicing.workloads import (
    BENCHMARK_CSV_MARKER,
    BENCHMARK_MEMORY_MARGIN_MIB,
    BENCHMARK_MOUNT,
    benchmark_clients,
    benchmark_command,
    benchmark_deadline_s,
    benchmark_job,
    benchmark_run_args,
    benchmark_sizing,
    benchmark_worker_rss_mib,
    demo_deployment,
    gpu_node_labels,
    gpu_node_taints,
    gpu_toleration,
    virtual_gpu_capacity,
)
from tests.k8s_semantics import selector_matches, tolerates


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


def test_benchmark_command_uses_the_scripts_own_options():
    run_args = benchmark_run_args(
        clients=[1, 2],
        models=["mlp"],
        modes=["exclusive", "time-slicing"],
        duration_s=2.5,
        repetitions=3,
    )
    command = benchmark_command(run_args)
    assert command[:2] == ["/bin/sh", "-c"]
    run = command[2].split(";")[0].split()
    assert run[1] == f"{BENCHMARK_MOUNT}/bench.py" and run[2:] == run_args
    # Every option the Job passes is one the benchmark's own parser accepts.
    args = bench.parse_args(run_args)
    assert args.method == "sweep"  # one process group at a time, as benchmark_sizing assumes
    assert (args.clients, args.models, args.duration_s, args.repetitions) == (
        (1, 2),
        ("mlp",),
        2.5,
        3,
    )
    assert BENCHMARK_CSV_MARKER in command[2] and command[2].endswith("exit $status")


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
        instance_type="g5.xlarge", min_size=1, desired_size=1, max_size=1, sharing="renamed"
    )
    profile = SharingProfile(strategy="time-slicing", replicas=4, rename_by_default=True)
    sizing = benchmark_sizing(group.instance, profile, ["mlp"])
    job = benchmark_job(
        group_name="a10g",
        group=group,
        profile=profile,
        image="pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime",
        namespace="default",
        script_config_map="script-cm",
        run_args=benchmark_run_args(
            clients=sizing.clients, models=["mlp"], modes=["exclusive"], duration_s=1, repetitions=1
        ),
        sizing=sizing,
    )
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert job["spec"]["activeDeadlineSeconds"] > 0
    assert job["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    node_labels = {**gpu_node_labels("renamed"), "node.kubernetes.io/instance-type": "g5.xlarge"}
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
    assert container["resources"]["requests"]["memory"] == memory
    assert not container["command"][2].startswith("echo")  # nothing capped, nothing to say
    assert pod["volumes"][0]["configMap"]["name"] == "script-cm"
    assert container["volumeMounts"][0]["mountPath"] == BENCHMARK_MOUNT


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


def test_benchmark_memory_covers_every_worker_and_fits_the_node():
    t4 = facts.GPU_INSTANCES["g4dn.xlarge"]
    sizing = benchmark_sizing(
        t4, SharingProfile(strategy="time-slicing", replicas=10), ["mlp", "transformer"]
    )
    rss = benchmark_worker_rss_mib(("mlp", "transformer"))
    assert sizing.clients == [1, 2, 4, 8, 10] and not sizing.capped
    assert sizing.memory_mib == math.ceil(10 * rss + BENCHMARK_MEMORY_MARGIN_MIB)
    assert sizing.memory_mib <= facts.allocatable_memory_mib(t4)
    assert "N = 1, 2, 4, 8, 10; memory" in sizing.describe("g4dn.xlarge")


def test_benchmark_caps_n_where_the_workers_would_not_fit_and_says_so():
    t4 = facts.GPU_INSTANCES["g4dn.xlarge"]
    profile = SharingProfile(strategy="time-slicing", replicas=40)
    models = ["mlp", "transformer"]
    sizing = benchmark_sizing(t4, profile, models)
    rss = benchmark_worker_rss_mib(tuple(models))
    fit = math.floor((facts.allocatable_memory_mib(t4) - BENCHMARK_MEMORY_MARGIN_MIB) / rss)
    assert 1 < fit < 40
    assert sizing.capped and max(sizing.clients) == fit
    assert sizing.clients == [*(n for n in benchmark_clients(profile) if n < fit), fit]
    assert sizing.memory_mib <= facts.allocatable_memory_mib(t4)
    assert (fit + 1) * rss + BENCHMARK_MEMORY_MARGIN_MIB > facts.allocatable_memory_mib(t4)
    described = sizing.describe("g4dn.xlarge")
    assert f"N capped at {fit} (the profile asks for up to 40)" in described
    group = GpuNodeGroupSettings(
        instance_type="g4dn.xlarge", min_size=1, desired_size=1, max_size=1, sharing="big"
    )
    job = benchmark_job(
        group_name="t4",
        group=group,
        profile=profile,
        image="x/y:1",
        namespace="default",
        script_config_map="cm",
        run_args=benchmark_run_args(
            clients=sizing.clients, models=models, modes=["exclusive"], duration_s=1, repetitions=1
        ),
        sizing=sizing,
    )
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    note, _, run = script.partition(f"; python {BENCHMARK_MOUNT}/bench.py ")
    assert note.startswith("echo 'note: N = ") and f"N capped at {fit}" in note
    # the note comes first, then the benchmark, with the method that fits in one pod
    assert run.startswith("run --method sweep --clients ")
