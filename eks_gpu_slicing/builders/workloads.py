"""Pure functions for GPU nodes and the workloads placed on them.

Labels, taints and resource requests all come from the sharing profile, so a node group,
the device plugin and a pod can never disagree on what a node offers.
"""

from __future__ import annotations

import functools
import math
import shlex
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from benchmarks.sharing import bench
from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import hami, pod_security
from eks_gpu_slicing.planning import isolation
from eks_gpu_slicing.planning.planner import DEFAULT_RESULTS as COMMITTED_BENCHMARK_RESULTS
from eks_gpu_slicing.settings import GpuNodeGroupSettings, SharingProfile

DEMO_APP_LABEL = "gpu-deployment"
# What `nvidia-smi -L` and `sleep` need, with room; size these for the app that replaces them.
DEMO_CPU_REQUEST, DEMO_CPU_LIMIT = "50m", "500m"
DEMO_MEMORY = "128Mi"  # request and limit
DEMO_SCRATCH_SIZE = "64Mi"


def gpu_node_labels(profile_name: str) -> dict[str, str]:
    """What every GPU node with this profile carries, whatever its AMI: how the device plugin
    finds the node and its config, and what workloads select."""
    return {
        facts.GPU_PRESENT_LABEL: facts.GPU_PRESENT_VALUE,
        facts.DEVICE_PLUGIN_CONFIG_LABEL: profile_name,
    }


def gpu_node_group_labels(
    profile_name: str,
    profile: SharingProfile,
    *,
    bottlerocket: bool = False,
    mig_manager: bool = False,
) -> dict[str, str]:
    """All labels of a GPU node group or Karpenter pool.

    Beyond gpu_node_labels(): which device plugin serves the node (the Helm release selects
    its own, so Bottlerocket's built-in plugin never has a rival on the same GPU), and, for
    MPS profiles, the label the chart's MPS control daemon selects on.

    `mig_manager`: the stack runs the MIG manager (Settings.mig_layouts is not empty). Every
    GPU node then carries nvidia.com/gpu.deploy.client=true, which the device plugin and
    dcgm-exporter select on (mig_client_node_selector()), on MIG nodes or not, so that one
    label set serves groups and pools alike.
    """
    labels = {
        **gpu_node_labels(profile_name),
        facts.DEVICE_PLUGIN_SOURCE_LABEL: device_plugin_source(profile, bottlerocket=bottlerocket),
    }
    if profile.strategy == "mps":
        labels[facts.MPS_CAPABLE_LABEL] = "true"
    if profile.is_mig and profile.mig is not None and not bottlerocket:
        # The layout the MIG manager applies, and the label its DaemonSet selects on.
        # Bottlerocket partitions at boot from its own settings and runs no manager.
        labels[facts.MIG_CONFIG_LABEL] = profile.mig.layout_name
        labels[facts.MIG_NODE_LABEL] = facts.MIG_NODE_VALUE
    if mig_manager:
        labels.update(mig_client_node_selector())
    return labels


def device_plugin_source(profile: SharingProfile, *, bottlerocket: bool = False) -> str:
    """Which device plugin serves a GPU node of this profile (the value of
    facts.DEVICE_PLUGIN_SOURCE_LABEL): HAMi's for a hami profile, whatever the AMI (on
    Bottlerocket the built-in one is then turned off), else Bottlerocket's built-in one or the
    NVIDIA Helm release. Each plugin's DaemonSet selects its own value, so no two share a GPU."""
    if profile.is_hami:
        return facts.DEVICE_PLUGIN_FROM_HAMI
    return facts.DEVICE_PLUGIN_BUILT_IN if bottlerocket else facts.DEVICE_PLUGIN_FROM_HELM


def mig_client_node_selector() -> dict[str, str]:
    """The nodeSelector entry that makes a DaemonSet a GPU client the MIG manager waits for.

    k8s-mig-manager v0.15.0 (pkg/mig/reconfigure) waits for GPU clients by the GPU Operator's
    `app=` pod labels in one namespace, which our Helm releases' pods do not carry; it also
    sets nvidia.com/gpu.deploy.client to paused-for-mig-change (when the node has the label)
    and then waits, in every namespace, for the node's DaemonSet pods whose nodeSelector has
    that key. A DaemonSet selecting on it =true leaves the node when it is paused and comes
    back when the manager sets it to true again; the manager repartitions in between.
    """
    return {facts.MIG_DEPLOY_CLIENT_LABEL: facts.MIG_DEPLOY_CLIENT_VALUE}


def mig_paused_affinity(*labels: str, partitioned_only: bool = False) -> dict[str, Any]:
    """Node affinity that keeps a DaemonSet off nodes where the MIG manager has paused it
    (any of `labels` set to paused-for-mig-change).

    `partitioned_only` also keeps it off MIG nodes until their layout is applied: the node is
    not a MIG node (no eks-gpu-slicing/mig label) OR nvidia.com/mig.config.state is success,
    each term with the paused checks (terms are OR'd, expressions within one AND'd). The
    device plugin needs this: it advertises a GPU whose MIG mode is off as a whole
    nvidia.com/gpu even with migStrategy single or mixed (k8s-device-plugin v0.20.0,
    internal/rm/device_map.go), so on a new node pods could bind whole GPUs before the
    manager runs, and the mode change would then fail on GPUs in use. No deadlock: the
    manager needs no device plugin to reach success; it only waits for the GPU clients to be
    gone (and a node in `failed` keeps no plugin, so it advertises nothing it cannot give).
    """
    paused = [
        {"key": label, "operator": "NotIn", "values": [facts.MIG_PAUSED_VALUE]} for label in labels
    ]
    gates: list[list[dict[str, Any]]] = [[]]
    if partitioned_only:
        gates = [
            [{"key": facts.MIG_NODE_LABEL, "operator": "DoesNotExist"}],
            [
                {
                    "key": facts.MIG_CONFIG_STATE_LABEL,
                    "operator": "In",
                    "values": [facts.MIG_CONFIG_STATE_SUCCESS],
                }
            ],
        ]
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [*paused, *gate]} for gate in gates]
            }
        }
    }


def system_node_labels() -> dict[str, str]:
    """Labels of the system node group of a cluster this stack creates, where cluster-wide
    controllers are placed (a cluster it was given has no such group: ClusterHandle says)."""
    return {facts.NODE_ROLE_LABEL: facts.SYSTEM_NODE_ROLE}


def gpu_operator_opt_out_labels() -> dict[str, str]:
    """Labels of our GPU nodes on a cluster we were given: they keep the NVIDIA GPU Operator's
    operands off, and survive both the operator and the MIG manager (see
    facts.GPU_OPERATOR_OPERAND_LABELS). None of our DaemonSets requires them absent or true:
    the device plugin and dcgm-exporter step aside for the MIG manager by
    nvidia.com/gpu.deploy.client, and only refuse the paused value of the others."""
    return {label: facts.GPU_OPERATOR_OPERAND_OFF for label in facts.GPU_OPERATOR_OPERAND_LABELS}


def our_gpu_nodes_affinity(affinity: dict[str, Any] | None = None) -> dict[str, Any]:
    """`affinity` (or none) narrowed to the GPU nodes of this stack's groups and pools: every
    one carries eks-gpu-slicing/device-plugin (helm, bottlerocket or hami), which a map-only
    nodeSelector cannot match whatever its value. For DaemonSets meant for every GPU node of
    ours on a cluster that may run other GPU nodes (nvidia.com/gpu.present alone matches
    those too: nodeadm sets it on AL2023 NVIDIA nodes from Kubernetes 1.35)."""
    ours = {"key": facts.DEVICE_PLUGIN_SOURCE_LABEL, "operator": "Exists"}
    required = ((affinity or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {"nodeSelectorTerms": [{"matchExpressions": []}]}
    # Terms are OR'd: the expression goes into each, so none admits another's node.
    terms = [
        {**term, "matchExpressions": [*term.get("matchExpressions", []), ours]}
        for term in required["nodeSelectorTerms"]
    ]
    node_affinity = {
        **(affinity or {}).get("nodeAffinity", {}),
        "requiredDuringSchedulingIgnoredDuringExecution": {**required, "nodeSelectorTerms": terms},
    }
    return {**(affinity or {}), "nodeAffinity": node_affinity}


def gpu_node_taints() -> list[dict[str, str]]:
    """EKS managed node group taints (EKS spells the effect NO_SCHEDULE)."""
    return [
        {
            "key": facts.GPU_TAINT_KEY,
            "value": facts.GPU_TAINT_VALUE,
            "effect": facts.EKS_NO_SCHEDULE,
        }
    ]


def gpu_toleration() -> dict[str, str]:
    """The Kubernetes toleration matching gpu_node_taints()."""
    return {
        "key": facts.GPU_TAINT_KEY,
        "operator": "Equal",
        "value": facts.GPU_TAINT_VALUE,
        "effect": facts.K8S_NO_SCHEDULE,
    }


# EKS's node group API spells taint effects in upper case; Kubernetes objects (a Karpenter
# NodePool, a node) use the Kubernetes form.
_KUBERNETES_EFFECTS = {facts.EKS_NO_SCHEDULE: facts.K8S_NO_SCHEDULE}


def kubernetes_taints(eks_taints: list[dict[str, str]]) -> list[dict[str, str]]:
    """Taints in EKS spelling (gpu_node_taints()) as Kubernetes spells them."""
    return [{**taint, "effect": _KUBERNETES_EFFECTS[taint["effect"]]} for taint in eks_taints]


ISOLATION_OF_STRATEGY = {
    "time-slicing": isolation.TIME_SLICED,
    "mps": isolation.MPS,
    "none": isolation.WHOLE_GPU,
    "mig": isolation.MIG,
    "hami": isolation.HAMI,
}


def isolation_of(profile: SharingProfile, instance: facts.GpuInstance) -> isolation.Isolation:
    """What the profile isolates between pods on this instance type: its strategy's, except
    on a fractional vGPU, which is a hardware slice of its own (time-sliced or not)."""
    if instance.fractional:
        if profile.shared:
            return isolation.time_sliced_within(isolation.FRACTIONAL_VGPU)
        return isolation.FRACTIONAL_VGPU
    return ISOLATION_OF_STRATEGY[profile.strategy]


def virtual_gpu_capacity(
    group: GpuNodeGroupSettings, profile: SharingProfile, region: str | None = None
) -> dict[str, Any]:
    """What a GPU node group advertises to the scheduler, and what each virtual GPU is.

    The price is the on-demand price in the instance table (us-east-1, facts.PRICES_AS_OF):
    other regions differ, and the report says which region the figure is for.
    """
    instance = group.instance
    per_node = instance.gpus * profile.devices_per_gpu(instance)
    memory_per_virtual = profile.memory_per_device_mib(instance)
    report = {
        "instanceType": group.instance_type,
        "amiType": group.ami_type,
        "profile": group.sharing,
        "strategy": profile.strategy,
        "replicas": profile.virtual_gpus_per_gpu,
        "resourceName": profile.resource_name_on(instance),
        "gpuModel": instance.gpu_model,
        "gpuMemoryGiB": round(instance.gpu_memory_mib / 1024, 1),
        "gpusPerNode": instance.gpus,
        "virtualGpusPerNode": per_node,
        "virtualGpusAtMaxSize": per_node * group.max_size,
        "gpuMemoryPerVirtualGpuGiB": round(memory_per_virtual / 1024, 2),
        "priceSource": f"on-demand, {facts.PRICE_REGION}, {facts.PRICES_AS_OF}"
        + ("" if region in (None, facts.PRICE_REGION) else f" (not {region})"),
        "isolation": isolation_of(profile, instance).description,
    }
    # An instance type without an on-demand price (p5e) has no price key: absent, not null,
    # so the component package's report declares it as it can really be (optional, a number).
    if instance.usd_per_hour is not None and per_node:
        report["usdPerVirtualGpuHour"] = round(instance.usd_per_hour / per_node, 4)
    if instance.gpu_fraction is not None:
        # The node's one vGPU is the slice: its memory, and its price per device.
        report["gpuFraction"] = str(instance.gpu_fraction)
        report["sliceMemoryGiB"] = {report["resourceName"]: round(instance.gpu_memory_gib, 2)}
        if "usdPerVirtualGpuHour" in report:
            report["usdPerSliceHour"] = {report["resourceName"]: report["usdPerVirtualGpuHour"]}
    if profile.is_mig and profile.mig is not None:
        # Per slice type: how many a node advertises and each one's device memory.
        report["migLayout"] = profile.mig.layout_name
        report["migStrategy"] = profile.mig.strategy
        report["slicesPerNode"] = profile.node_resources(instance)
        report["sliceMemoryGiB"] = profile.slice_memory_gib(instance)
        prices = mig_slice_prices(profile, instance)
        if prices:
            report["usdPerSliceHour"] = prices
    if profile.is_hami:
        # Slices are GPUs x splitCount (virtualGpusPerNode, priced per slice as above);
        # gpuMemoryPerVirtualGpuGiB is the even share, while each pod's cap is its request.
        report["hami"] = hami.report(profile, instance)
    return report


def mig_slice_prices(profile: SharingProfile, instance: facts.GpuInstance) -> dict[str, float]:
    """MIG: resource -> on-demand USD per hour of one of its devices (empty when the instance
    type has no on-demand price).

    Each GPU's share of the node price is split between the layout's slices by compute slices
    (a 3g slice costs three times a 1g one; slices the layout leaves unused cost nothing
    extra, the used ones carry them), then between a slice's time-sliced replicas. The devices
    of a node add up to its price. usdPerVirtualGpuHour averages over unlike slices instead.
    """
    gpu = facts.mig_gpu(instance.name)
    if profile.mig is None or gpu is None or instance.usd_per_hour is None:
        return {}
    slices = profile.mig.slices_on(gpu)
    used = sum(gpu.profiles[n].compute_slices * c for n, c in slices.items())
    if not used:
        return {}
    per_gpu = instance.usd_per_hour / instance.gpus
    replicas = profile.replicas or 1

    def price(name: str) -> float:
        return round(per_gpu * gpu.profiles[name].compute_slices / used / replicas, 4)

    if profile.mig.strategy == "single":
        return {facts.GPU_RESOURCE: price(next(iter(slices)))}
    return {gpu.profiles[n].resource_name: price(n) for n in slices}


@dataclass(frozen=True)
class SliceFigures:
    """One device of a resource on one instance type: its on-demand price (None where the
    table has no price) and the GPU memory it can count on."""

    usd_per_hour: float | None
    gpu_memory_gib: float


def slice_figures(profile: SharingProfile, instance: facts.GpuInstance) -> dict[str, SliceFigures]:
    """Resource -> the price and memory of one of its devices on this instance type, as the
    sharing report states them (virtual_gpu_capacity): for MIG each slice type's
    usdPerSliceHour and its memory over its time-sliced replicas; otherwise the profile's
    resource at usdPerVirtualGpuHour and gpuMemoryPerVirtualGpuGiB. Resources a profile
    advertises beside its slices (a strategy's memory or core units) are not priced here."""
    if profile.is_mig:
        prices = mig_slice_prices(profile, instance)
        memory = profile.slice_memory_gib(instance)
        replicas = profile.replicas or 1
        return {r: SliceFigures(prices[r], round(memory[r] / replicas, 2)) for r in prices}
    resource = profile.resource_name_on(instance)
    per_node = profile.node_resources(instance).get(resource, 0)
    price = (
        round(instance.usd_per_hour / per_node, 4)
        if instance.usd_per_hour is not None and per_node
        else None
    )
    memory = round(profile.memory_per_device_mib(instance) / 1024, 2)
    return {resource: SliceFigures(price, memory)}


def report_resources(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Resource -> (per node, at maxSize) from a group's sharing report (virtual_gpu_capacity):
    each slice resource of a MIG profile (a `mixed` layout advertises several, e.g. 64
    nvidia.com/mig-1g.10gb and 16 nvidia.com/mig-3g.40gb on a p5), otherwise its one resource.
    What `make validate`, render and check print."""
    per_node = report["virtualGpusPerNode"]
    slices = report.get("slicesPerNode") or {report["resourceName"]: per_node}
    nodes = report["virtualGpusAtMaxSize"] // per_node if per_node else 0
    return {resource: (count, count * nodes) for resource, count in slices.items()}


def demo_deployment(
    *,
    replicas: int,
    image: str,
    namespace: str,
    profile_name: str,
    profile: SharingProfile,
    resource_name: str | None = None,
    instance: facts.GpuInstance | None = None,
) -> dict[str, Any]:
    """The source design's `gpu-deployment`: N pods, each limited to one virtual GPU.

    Returned as {metadata, spec} ready for a Deployment resource.

    `resource_name` overrides the profile's (Settings.demo_resource_name: a MIG `mixed`
    profile's slice resource depends on the GPU of the nodes the profile is on).

    A hami profile's pods name HAMi's scheduler (its webhook changes no other pod) and ask for
    one slice with the even share of `instance`'s GPU memory in nvidia.com/gpumem, which
    HAMi-core then caps each container at (hami.slice_limits).
    """
    labels = {"app": DEMO_APP_LABEL}
    gpu_limits: dict[str, int] = {(resource_name or profile.resource_name): 1}
    scheduler: dict[str, str] = {}
    if profile.is_hami:
        if instance is None:
            raise ValueError("a hami demo needs the instance type its pods are sized for")
        gpu_limits = hami.slice_limits(profile, instance)
        scheduler = {"schedulerName": facts.HAMI_SCHEDULER_NAME}
    return {
        "metadata": {"name": DEMO_APP_LABEL, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    **scheduler,
                    "nodeSelector": gpu_node_labels(profile_name),
                    "tolerations": [gpu_toleration()],
                    # The Pod Security Standards' `restricted` profile (pod_security.py).
                    "securityContext": pod_security.pod_security_context(),
                    # It calls no Kubernetes API.
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "cuda",
                            "image": image,
                            # Show which GPU the pod got, then hold the virtual GPU.
                            "command": ["/bin/sh", "-c", "nvidia-smi -L && sleep infinity"],
                            "securityContext": pod_security.container_security_context(),
                            "resources": {
                                "requests": {"cpu": DEMO_CPU_REQUEST, "memory": DEMO_MEMORY},
                                "limits": {
                                    **gpu_limits,
                                    "cpu": DEMO_CPU_LIMIT,
                                    "memory": DEMO_MEMORY,
                                },
                            },
                            # Ready once the pod sees its GPU; nvidia-smi takes no GPU time.
                            "readinessProbe": {
                                "exec": {"command": ["nvidia-smi", "-L"]},
                                "periodSeconds": 30,
                                "timeoutSeconds": 10,
                            },
                            "env": [{"name": "HOME", "value": pod_security.SCRATCH_DIR}],
                            "volumeMounts": [pod_security.scratch_mount()],
                        }
                    ],
                    "volumes": [pod_security.scratch_volume(DEMO_SCRATCH_SIZE)],
                },
            },
        },
    }


# --- The sharing benchmark as a Job -----------------------------------------------------------

BENCHMARK_APP_LABEL = "gpu-sharing-benchmark"
# The benchmark package (benchmarks/sharing/bench) is mounted as the directory
# BENCHMARK_MOUNT/BENCHMARK_PACKAGE, one ConfigMap key per module, and run the way a user runs
# it: `python -m bench` with PYTHONPATH at the mount (`python -m benchmarks.sharing.bench`
# from the repository root is the same module).
BENCHMARK_PACKAGE = "bench"
BENCHMARK_MOUNT = "/opt/gpu-sharing-benchmark"
# Printed before the CSV in the Job's log, so the rows can be cut out of it.
BENCHMARK_CSV_MARKER = "--- gpu-sharing-benchmark results.csv ---"
IMAGE_PULL_ALLOWANCE_S = 1200
# Beside its workers the Job runs the benchmark's parent process (no torch), a shell and the
# MPS control daemon; this covers them with room to spare.
BENCHMARK_MEMORY_MARGIN_MIB = 1024
# vCPUs of a node left to the kubelet, the system reservation and the node's DaemonSets.
BENCHMARK_NODE_VCPUS_LEFT = 1


def benchmark_package_data(files: dict[str, str]) -> dict[str, str]:
    """ConfigMap data of the benchmark package: one key per module (file name -> source).
    Only Python modules belong to it; a package without its entry point is refused."""
    data = {name: text for name, text in sorted(files.items()) if name.endswith(".py")}
    missing = {"__init__.py", "__main__.py"} - set(data)
    if missing:
        raise ValueError(f"the benchmark package lacks {', '.join(sorted(missing))}")
    bad = [name for name in data if "/" in name or not name.replace("_", "a")[:-3].isalnum()]
    if bad:
        raise ValueError(f"not a flat package module name: {', '.join(bad)}")
    return data


def benchmark_volume(config_map: Any, modules: list[str]) -> dict[str, Any]:
    """The volume that lays the ConfigMap's keys out as the package directory."""
    return {
        "name": "bench",
        "configMap": {
            "name": config_map,
            "items": [{"key": m, "path": f"{BENCHMARK_PACKAGE}/{m}"} for m in sorted(modules)],
        },
    }


# /tmp holds results.csv, the MPS daemon's pipe and log directories and CUDA's compute cache.
BENCHMARK_SCRATCH_SIZE = "1Gi"


@functools.cache
def benchmark_worker_rss_mib(models: tuple[str, ...]) -> float:
    """The largest peak resident set of one benchmark worker running `models`, as measured
    in the committed results (the `host_rss_mib` column): the one source of this figure.

    A worker builds its models in turn, so its peak grows with each; the committed rows of
    the last model give the figure for the whole list. Counting it once per worker is
    conservative: the shared PyTorch and CUDA libraries are counted in every worker's RSS but
    take memory once (ten workers measured about 7 GiB together against 10 x 1 GiB).
    """
    rows = [
        r.host_rss_mib
        for r in bench.load_results(COMMITTED_BENCHMARK_RESULTS)
        if r.model in models and r.host_rss_mib is not None
    ]
    if not rows:
        raise ValueError(f"the committed benchmark results have no host RSS for {models}")
    return max(rows)


@functools.cache
def benchmark_worker_gpu_mib(models: tuple[str, ...]) -> float:
    """The most GPU memory one benchmark worker running `models` takes: the largest
    `mem_per_process_mib` of the committed results (what PyTorch's allocator took, without
    the CUDA context) plus a CUDA context (facts.CUDA_CONTEXT_MIB)."""
    rows = [
        r.mem_per_process_mib
        for r in bench.load_results(COMMITTED_BENCHMARK_RESULTS)
        if r.model in models and r.mem_per_process_mib is not None
    ]
    if not rows:
        raise ValueError(f"the committed benchmark results have no GPU memory for {models}")
    return max(rows) + facts.CUDA_CONTEXT_MIB


@dataclass(frozen=True)
class BenchmarkSizing:
    """How many processes a benchmark Job runs on a node, and what it asks for."""

    clients: list[int]
    wanted: list[int]  # what the profile asks for (benchmark_clients)
    worker_rss_mib: float
    groups: int  # process groups the run keeps up at once (plain, and one MPS group)
    memory_mib: int  # request and limit
    allocatable_mib: int
    cpu: int  # whole cores requested: one per rank (pinned) and one for the parent
    vcpus: int
    # True when the GPU's memory, not the node's, holds N down: every worker of every group
    # holds a CUDA context and its model on the one GPU (a fractional vGPU has 2.8 GiB).
    gpu_bound: bool = False

    @property
    def capped(self) -> bool:
        return max(self.clients) < max(self.wanted)

    @property
    def pinned(self) -> bool:
        """Whether every rank gets a core of its own (the benchmark pins them then)."""
        return self.cpu > max(self.clients)

    def describe(self, instance_type: str) -> str:
        clients = ", ".join(str(n) for n in self.clients)
        text = (
            f"N = {clients}; memory {self.memory_mib} MiB = {self.groups} group(s) x "
            f"{max(self.clients)} x {self.worker_rss_mib:.0f} MiB peak RSS per worker + "
            f"{BENCHMARK_MEMORY_MARGIN_MIB} MiB, of about {self.allocatable_mib} MiB allocatable "
            f"on a {instance_type}; {self.cpu} of its {self.vcpus} vCPUs"
        )
        if self.capped:
            text += (
                f"; N capped at {max(self.clients)} (the profile asks for up to "
                f"{max(self.wanted)}): more workers would not fit in the "
                + ("GPU's memory" if self.gpu_bound else "node's memory")
            )
        if not self.pinned:
            text += (
                f"; the node has too few cores to give each of {max(self.clients)} ranks its "
                "own, so they are not pinned and the launch-bound ratios include the host's "
                "contention"
            )
        return text


def benchmark_modes(modes: list[str]) -> list[str]:
    """The modes one Job measures: one run keeps one MPS daemon, so of mps and mps-limited
    only mps is measured when both are asked for."""
    if {"mps", "mps-limited"} <= set(modes):
        return [m for m in modes if m != "mps-limited"]
    return list(modes)


@functools.cache
def _benchmark_worker_groups(modes: tuple[str, ...]) -> int:
    """How many process groups a run of `modes` keeps up, as the benchmark's own CLI plans
    it. Parsing builds the CLI's whole argparse parser (a few ms), and a render or the
    planner sizes many groups with the same modes."""
    probe = ["run", "--modes", ",".join(modes)]
    return len(bench.worker_groups(bench.settings_from_args(bench.parse_args(probe))))


def benchmark_sizing(
    instance: facts.GpuInstance,
    profile: SharingProfile,
    models: list[str],
    modes: list[str],
) -> BenchmarkSizing:
    """The process counts a node of `instance` can hold. The benchmark keeps every process
    group up for the whole run (bench.worker_groups), each of the largest N's size, so
    groups x N x RSS + margin <= allocatable, and groups x N x a worker's GPU memory <= the
    GPU's (per GPU: a fractional type's vGPU); it pins rank i of every group to one core, so
    it asks for N + 1 cores where the node has them."""
    wanted = benchmark_clients(profile)
    worker = benchmark_worker_rss_mib(tuple(models))
    groups = _benchmark_worker_groups(tuple(benchmark_modes(modes)))
    allocatable = facts.allocatable_memory_mib(instance)
    # The measured figure as the decimal it was written as, in exact arithmetic: in floats,
    # (allocatable - margin) / worker can land just under the whole number it is, and a node
    # that holds exactly the profile's replicas would measure one fewer and report a cap.
    exact_worker = Fraction(repr(worker))
    fit = max(1, math.floor((allocatable - BENCHMARK_MEMORY_MARGIN_MIB) / (groups * exact_worker)))
    gpu_fit = max(
        1, math.floor(instance.gpu_memory_mib / (groups * benchmark_worker_gpu_mib(tuple(models))))
    )
    gpu_bound = gpu_fit < fit
    fit = min(fit, gpu_fit)
    clients = [n for n in wanted if n <= fit]
    if max(wanted) > fit and fit not in clients:
        clients.append(fit)  # what a full node can still run is the most useful point
    top = max(clients)
    return BenchmarkSizing(
        clients=clients,
        wanted=wanted,
        worker_rss_mib=worker,
        groups=groups,
        memory_mib=math.ceil(groups * top * exact_worker + BENCHMARK_MEMORY_MARGIN_MIB),
        allocatable_mib=allocatable,
        cpu=max(1, min(top + 1, instance.vcpus - BENCHMARK_NODE_VCPUS_LEFT)),
        vcpus=instance.vcpus,
        gpu_bound=gpu_bound,
    )


def benchmark_clients(profile: SharingProfile) -> list[int]:
    """Process counts to measure: powers of two up to the profile's replicas, and the
    replicas themselves (what a fully used node runs). Unshared profiles get 1..10."""
    top = profile.replicas if profile.shared and profile.replicas else 10
    counts = {1, top}
    n = 2
    while n < top:
        counts.add(n)
        n *= 2
    return sorted(counts)


def benchmark_run_args(
    *, clients: list[int], models: list[str], modes: list[str], duration_s: float, repetitions: int
) -> list[str]:
    """Arguments of the benchmark's `run` for one Job: the published method, its windows of
    the published length, and as many rounds as give every case the timed seconds the
    settings ask for (duration_s x repetitions, at least two rounds)."""
    rounds = max(2, math.ceil(duration_s * repetitions / bench.DEFAULT_WINDOW_S))
    return [
        "run",
        "--clients",
        ",".join(str(c) for c in clients),
        "--models",
        ",".join(models),
        "--modes",
        ",".join(benchmark_modes(modes)),
        "--rounds",
        str(rounds),
        "--window",
        f"{bench.DEFAULT_WINDOW_S:g}",
        "--out",
        "/tmp/results.csv",
    ]


def benchmark_command(run_args: list[str], note: str = "") -> list[str]:
    """Run the benchmark, then print its CSV to the log (exit status kept: 3 means OOM, 4
    ratios that the two halves of the run do not reproduce). A note (the sizing) comes first."""
    run = " ".join(
        [f"PYTHONPATH={BENCHMARK_MOUNT} python -m {BENCHMARK_PACKAGE}", *map(shlex.quote, run_args)]
    )
    script = (
        f"{run}; status=$?; echo '{BENCHMARK_CSV_MARKER}'; "
        "cat /tmp/results.csv 2>/dev/null; exit $status"
    )
    if note:
        script = f"echo {shlex.quote(note)}; {script}"
    return ["/bin/sh", "-c", script]


def benchmark_deadline_s(run_args: list[str]) -> int:
    """How long the Job may run before Kubernetes stops it and frees the GPU: the script's
    own estimate, four times over, plus time to pull a multi-GB PyTorch image."""
    settings = bench.settings_from_args(bench.parse_args(run_args))
    return math.ceil(4 * bench.estimate_seconds(settings) + IMAGE_PULL_ALLOWANCE_S)


def benchmark_job(
    *,
    group_name: str,
    group: GpuNodeGroupSettings,
    profile: SharingProfile,
    image: str,
    namespace: str,
    package_config_map: Any,
    modules: list[str],
    run_args: list[str],
    sizing: BenchmarkSizing,
) -> dict[str, Any]:
    """A Job that measures sharing on one node of `group`, returned as {metadata, spec}.

    It asks for one virtual GPU of the group's profile: the node's GPU is then visible to
    the pod, and the benchmark's own processes share it the way pods would. Run it on an
    otherwise idle node, or other pods' work is measured too. Its memory request and limit
    are equal (`sizing`): the workers' memory is known, and a node that cannot give it
    should not take the Job.
    """
    memory = f"{sizing.memory_mib}Mi"
    telling = sizing.capped or not sizing.pinned
    note = f"note: {sizing.describe(group.instance_type)}" if telling else ""
    labels = {"app": BENCHMARK_APP_LABEL, "eks-gpu-slicing/node-group": group_name}
    return {
        "metadata": {
            "namespace": namespace,
            "labels": labels,
            # `pulumi up` should not wait the several minutes the benchmark runs.
            "annotations": {"pulumi.com/skipAwait": "true"},
        },
        "spec": {
            "backoffLimit": 0,
            # A hung run must not hold a virtual GPU for ever.
            "activeDeadlineSeconds": benchmark_deadline_s(run_args),
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "nodeSelector": {
                        **gpu_node_labels(group.sharing),
                        "node.kubernetes.io/instance-type": group.instance_type,
                    },
                    "tolerations": [gpu_toleration()],
                    # `restricted`, MPS included: the script's own MPS daemon runs as this uid.
                    "securityContext": pod_security.pod_security_context(),
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": "benchmark",
                            "image": image,
                            "command": benchmark_command(run_args, note),
                            "env": [
                                {"name": "PYTHONUNBUFFERED", "value": "1"},
                                {"name": "HOME", "value": pod_security.SCRATCH_DIR},
                            ],
                            "securityContext": pod_security.container_security_context(),
                            "resources": {
                                "requests": {"cpu": str(sizing.cpu), "memory": memory},
                                "limits": {
                                    profile.resource_name_on(group.instance): 1,
                                    # The whole node: a lower CFS quota would throttle the
                                    # workers' kernel launches and skew what is measured.
                                    "cpu": str(group.instance.vcpus),
                                    "memory": memory,
                                },
                            },
                            "volumeMounts": [
                                {
                                    "name": "bench",
                                    "mountPath": BENCHMARK_MOUNT,
                                    "readOnly": True,
                                },
                                pod_security.scratch_mount(),
                            ],
                        }
                    ],
                    "volumes": [
                        benchmark_volume(package_config_map, modules),
                        pod_security.scratch_volume(BENCHMARK_SCRATCH_SIZE),
                    ],
                },
            },
        },
    }
