"""Per-pod GPU metrics: the NVIDIA DCGM exporter on every GPU node."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import ChartVersion, _namespace_name, _Settings

# A Prometheus duration as the Prometheus Operator's ServiceMonitor accepts it (units from
# the largest down, each at most once): 15s, 1m, 1m30s, 500ms.
_DURATION = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
_DURATION_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def duration_seconds(duration: str) -> float:
    """Seconds in a Prometheus duration string (ValueError if it is not one)."""
    match = _DURATION.match(duration)
    if not duration or not match:
        raise ValueError(f"'{duration}' is not a Prometheus duration like 15s or 1m")
    parts = zip(match.groups(), _DURATION_SECONDS, strict=True)
    return sum(int(n) * unit for n, unit in parts if n)


class GpuMetricsSettings(_Settings):
    """The dcgm-exporter Helm release, with per-pod attribution on shared GPUs."""

    enabled: bool = Field(
        default=False,
        description="Deploy NVIDIA's DCGM exporter on every GPU node, with per-pod utilisation "
        "and memory on shared GPUs (docs/metrics.md).",
    )
    chart_version: ChartVersion = Field(
        default=facts.DCGM_EXPORTER_CHART_VERSION,
        description=f"`{facts.DCGM_EXPORTER_CHART}` chart version, exact (MAJOR.MINOR.PATCH). "
        f"The values are checked against the {facts.DCGM_EXPORTER_REFERENCE_CHART_VERSION} chart's "
        "value "
        f"paths (those of {facts.DCGM_EXPORTER_CHART_VERSION} were read by hand); per-pod "
        f"attribution on shared GPUs needs {facts.DCGM_EXPORTER_PER_POD_SINCE} or later "
        "(docs/metrics.md); other versions are warned about.",
    )
    namespace: str = Field(
        default=facts.DCGM_EXPORTER_DEFAULT_NAMESPACE,
        description="Namespace of the exporter, created by the stack. `default` is refused: the "
        "exporter runs with hostPID.",
    )
    service_monitor: bool = Field(
        default=False,
        description="Create a ServiceMonitor so a Prometheus Operator scrapes the exporter. Its "
        "CRDs (monitoring.coreos.com/v1) must be installed first, or the release fails.",
    )
    interval: str = Field(
        default="15s",
        description="Scrape interval of the ServiceMonitor, a Prometheus duration of at least 1s.",
    )

    @field_validator("namespace")
    @classmethod
    def _own_namespace(cls, namespace: str) -> str:
        if namespace == "default":
            # hostPID lets the exporter see every process on a GPU node: keep it out of the
            # namespace where workloads (and whoever may create pods there) live.
            raise ValueError("the exporter runs with hostPID and must not share 'default'")
        return _namespace_name(namespace)

    @field_validator("interval")
    @classmethod
    def _interval(cls, interval: str) -> str:
        if duration_seconds(interval) < 1:
            raise ValueError(f"'{interval}' is too short a scrape interval (at least 1s)")
        return interval

    @property
    def interval_seconds(self) -> float:
        return duration_seconds(self.interval)
