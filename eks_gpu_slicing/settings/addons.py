"""In-cluster software: the device plugin, the demo workload and the sharing benchmark."""

from __future__ import annotations

from pydantic import Field, field_validator

from benchmarks.sharing import bench
from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import (
    DEFAULT_PROFILE,
    ChartVersion,
    Namespace,
    PinnedImage,
    _namespace_name,
    _Settings,
    _subset,
    listing,
)

# --- Add-ons ----------------------------------------------------------------------------------


class DevicePluginSettings(_Settings):
    """The NVIDIA device plugin Helm release."""

    chart_version: ChartVersion = Field(
        default=facts.DEVICE_PLUGIN_CHART_VERSION,
        description=f"`{facts.DEVICE_PLUGIN_CHART}` chart version, exact (MAJOR.MINOR.PATCH). "
        f"The values are checked against {facts.DEVICE_PLUGIN_CHART_VERSION}; other versions are "
        "warned about.",
    )
    namespace: str = Field(
        default=facts.DEVICE_PLUGIN_DEFAULT_NAMESPACE,
        description="Namespace of the release and its ConfigMap; created by the stack unless "
        "built in. `default` is refused.",
    )
    default_profile: str = Field(
        default=DEFAULT_PROFILE,
        description="The sharing profile for GPU nodes without a profile label (the chart's "
        "config.default); the stack's own GPU nodes always carry one.",
    )
    gfd: bool = Field(
        default=False,
        description="Deploy GPU Feature Discovery and its Node Feature Discovery sub-chart: GPU "
        "model, memory, replicas and sharing strategy as node labels "
        "(docs/gpu-feature-discovery.md).",
    )

    @field_validator("namespace")
    @classmethod
    def _not_default(cls, namespace: str) -> str:
        if namespace == "default":
            # The chart refuses to render there (allowDefaultNamespace), and a node-critical
            # DaemonSet does not belong among workloads.
            raise ValueError("the device plugin must not run in the 'default' namespace")
        return _namespace_name(namespace)


class DemoWorkloadSettings(_Settings):
    """The source design's Deployment: N pods, each asking for one virtual GPU."""

    enabled: bool = Field(default=False, description="Deploy the demo Deployment `gpu-deployment`.")
    replicas: int = Field(default=5, ge=0, description="Pods, each limited to one virtual GPU.")
    image: PinnedImage = Field(
        default=facts.DEMO_IMAGE,
        description="Container image, pinned (a tag other than `latest`, or a digest). It runs "
        "`nvidia-smi -L`, then sleeps.",
    )
    namespace: Namespace = Field(
        default="gpu-demo",
        description="Namespace of the demo; created by the stack unless built in, and then "
        "enforcing the `restricted` Pod Security Standard (the demo runs as uid 65532, "
        "read-only root, no capabilities, no token): copies of its template land where a pod "
        "that drops the hardening is refused. Was `default` before: an existing demo is "
        "replaced in the new namespace.",
    )
    profile: str | None = Field(
        default=None,
        description="Which sharing profile's nodes (and resource name) the demo uses; some GPU "
        "group must use it. Unset: devicePlugin.defaultProfile.",
    )
    tenant: str | None = Field(
        default=None,
        description=(
            "Run the demo as this tenant: in its namespace and within its quota (then leave "
            "namespace out). Unset: in demoWorkload.namespace, outside any tenant. replicas "
            "above the tenant's quota of the demo's resource is refused: the API server would "
            "refuse those pods and `pulumi up` would wait for them."
        ),
    )


class BenchmarkSettings(_Settings):
    """The GPU sharing benchmark as a Kubernetes Job on each chosen GPU node group."""

    enabled: bool = Field(
        default=False,
        description="Run the GPU sharing benchmark as a Job on one node of each chosen GPU group "
        "(docs/strategies.md#measure-your-own-instance-types).",
    )
    image: PinnedImage = Field(
        default=facts.BENCHMARK_IMAGE,
        description="PyTorch container image the benchmark script is mounted into, pinned (a "
        "tag other than `latest`, or a digest).",
    )
    node_groups: list[str] | None = Field(
        default=None,
        description="GPU node groups to measure. Unset: every group whose profile is "
        "time-slicing or unshared. Groups with an MPS or MIG profile are left out of that "
        "default (with a warning naming them) and refused here: on MPS the pod is one MPS "
        "client with 1/replicas of a GPU in exclusive-process mode, on MIG it gets one slice, "
        "so neither can measure whole-GPU sharing.",
    )
    models: list[str] = Field(
        default=["mlp", "transformer"],
        description=f"Workloads to run, a non-empty subset of {listing(bench.MODELS)} "
        "(`memory` holds 4 GiB of weights per process, 4.75 GiB with its CUDA context: three "
        "fit a T4, four an A10G).",
    )
    modes: list[str] = Field(
        default=["exclusive", "time-slicing"],
        description=f"Sharing modes to measure, a non-empty subset of {listing(bench.MODES)}; "
        "the MPS modes need `nvidia-cuda-mps-control` inside the container.",
    )
    duration_seconds: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="With repetitions: each case gets durationSeconds × repetitions timed "
        "seconds, in 0.4 s windows (at least two rounds).",
    )
    repetitions: int = Field(
        default=3, ge=1, le=10, description="Measurements per case; see durationSeconds."
    )
    namespace: Namespace = Field(
        default="gpu-benchmark",
        description="Namespace of the Jobs and the script's ConfigMap; created by the stack "
        "unless built in, and then enforcing `restricted` (the Job, its own MPS daemon "
        "included, runs as uid 65532). Was `default` before.",
    )

    @field_validator("models")
    @classmethod
    def _models(cls, models: list[str]) -> list[str]:
        return _subset(models, bench.MODELS, "models")

    @field_validator("modes")
    @classmethod
    def _modes(cls, modes: list[str]) -> list[str]:
        return _subset(modes, bench.MODES, "modes")
