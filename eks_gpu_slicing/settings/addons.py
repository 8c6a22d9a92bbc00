"""In-cluster software: the device plugin, the demo workload and the sharing benchmark."""

from __future__ import annotations

from pydantic import Field, field_validator

from benchmarks.sharing import bench
from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import (
    ChartVersion,
    Namespace,
    PinnedImage,
    _namespace_name,
    _Settings,
    _subset,
)

# --- Add-ons ----------------------------------------------------------------------------------


class DevicePluginSettings(_Settings):
    """The NVIDIA device plugin Helm release."""

    chart_version: ChartVersion = facts.DEVICE_PLUGIN_CHART_VERSION
    namespace: str = facts.DEVICE_PLUGIN_DEFAULT_NAMESPACE
    # The config entry for GPU nodes without the config label (ours always carry it).
    default_profile: str = "default"
    # GPU Feature Discovery (and its Node Feature Discovery sub-chart): GPU model, memory,
    # replicas and sharing strategy as node labels.
    gfd: bool = False

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

    enabled: bool = False
    replicas: int = Field(default=5, ge=0)
    image: PinnedImage = facts.DEMO_IMAGE
    # Its own namespace, which enforces the `restricted` Pod Security Standard: copies of
    # this template then land where a pod that drops the hardening is refused.
    namespace: Namespace = "gpu-demo"
    # Which sharing profile's nodes (and resource name) to use; the device plugin's default.
    profile: str | None = None
    tenant: str | None = Field(
        default=None,
        description=(
            "Run the demo as this tenant: in its namespace and within its quota (then leave "
            "namespace out). Unset: in demoWorkload.namespace, outside any tenant."
        ),
    )


class BenchmarkSettings(_Settings):
    """The GPU sharing benchmark as a Kubernetes Job on each chosen GPU node group."""

    enabled: bool = False
    image: PinnedImage = facts.BENCHMARK_IMAGE
    # GPU node groups to measure; all of them when left out.
    node_groups: list[str] | None = None
    models: list[str] = ["mlp", "transformer"]
    modes: list[str] = ["exclusive", "time-slicing"]
    duration_seconds: float = Field(default=3.0, gt=0, le=60)
    repetitions: int = Field(default=3, ge=1, le=10)
    namespace: Namespace = "gpu-benchmark"  # enforces `restricted`, like the demo's

    @field_validator("models")
    @classmethod
    def _models(cls, models: list[str]) -> list[str]:
        return _subset(models, bench.MODELS, "models")

    @field_validator("modes")
    @classmethod
    def _modes(cls, modes: list[str]) -> list[str]:
        return _subset(modes, bench.MODES, "modes")
