"""Pure functions for per-pod GPU metrics: the DCGM exporter chart's Helm values.

No Pulumi here: the GpuMetrics component turns these into a release, and tests call them
directly. Placement comes from the same facts and functions as the GPU nodes themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.workloads import (
    gpu_toleration,
    mig_client_node_selector,
    mig_paused_affinity,
    our_gpu_nodes_affinity,
)
from eks_gpu_slicing.settings import GpuMetricsSettings

# The exporter embeds DCGM's host engine; the chart's own default limit is 512Mi for one
# GPU. Nodes with 8 GPUs and many pods to attribute need more headroom than that.
EXPORTER_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "256Mi"},
    "limits": {"cpu": "500m", "memory": "1Gi"},
}
# The chart's default scrape timeout; Prometheus refuses a timeout longer than the interval.
SCRAPE_TIMEOUT_S = 10


def helm_values(
    settings: GpuMetricsSettings,
    resource_names: Iterable[str],
    *,
    mig: bool = False,
    our_nodes_only: bool = False,
) -> dict[str, Any]:
    """Values for the dcgm-exporter chart.

    `resource_names` are the extended resources pods request on our GPU nodes (one per
    sharing profile in use, every slice resource for MIG); the exporter attributes only
    `nvidia.com/gpu` unless told. On MIG nodes DCGM reports each GPU instance as its own
    device (GPU_I_PROFILE / GPU_I_ID labels), and pods are matched to their slice. Pods of
    hami profiles ask for nvidia.com/gpu too, but HAMi's device IDs (`GPU-<uuid>-<n>`) are
    neither NVIDIA's `::<n>` nor GKE's `/vgpu<n>` form, the only ones exporter 4.5.3-4.8.2
    maps back to a GPU (internal/pkg/transformation/kubernetes.go, toDeviceToSharingPods), so
    a hami node shows device-level series only; HAMi's own monitor has per-container memory
    (dashboards/gpu-sharing.json, "Per HAMi slice").

    `mig`: some node is partitioned by the MIG manager, which pauses the exporter while it
    repartitions (nvidia.com/gpu.deploy.dcgm-exporter=paused-for-mig-change): the exporter
    then runs only where that label is not paused, and selects on nvidia.com/gpu.deploy.client
    (every GPU node of such a stack has it), the one key the manager waits on for pods outside
    the GPU Operator's namespace and labels.

    `our_nodes_only`: the cluster may run GPU nodes this stack does not own (one it was
    given), which carry nvidia.com/gpu.present too and may run an exporter of their own: the
    exporter then runs only on our groups' and pools' nodes.
    """
    extra = sorted(set(resource_names) - {facts.GPU_RESOURCE})
    env = [{"name": facts.DCGM_VIRTUAL_GPUS_ENV, "value": "true"}]
    if extra:
        env.append({"name": facts.DCGM_RESOURCE_NAMES_ENV, "value": ",".join(extra)})
    values = {
        # Only our GPU nodes (node groups, and Karpenter nodes carrying the same labels);
        # the selector keeps it off system nodes, where it would find no GPU and crash-loop.
        "nodeSelector": {facts.GPU_PRESENT_LABEL: facts.GPU_PRESENT_VALUE},
        # Replaces the chart's default (a control-plane toleration EKS has no use for).
        "tolerations": [gpu_toleration()],
        # Per-pod attribution reads /proc/<pid>/cgroup of the GPU's processes.
        "hostPID": True,
        "extraEnv": env,
        "kubernetes": {
            # With it the chart mounts a service account token and grants read access to
            # pods: the exporter needs pod UIDs from the API to match processes to pods.
            # Without them every process is unattributed and each pod shows 0.
            "enablePodLabels": True,
            "rbac": {"create": True},
        },
        "resources": EXPORTER_RESOURCES,
        "serviceMonitor": service_monitor_values(settings),
    }
    if mig:
        values["nodeSelector"].update(mig_client_node_selector())
        values["affinity"] = mig_paused_affinity(facts.MIG_DEPLOY_DCGM_EXPORTER_LABEL)
    if our_nodes_only:
        values["affinity"] = our_gpu_nodes_affinity(values.get("affinity"))
    return values


def service_monitor_values(settings: GpuMetricsSettings) -> dict[str, Any]:
    """The chart's ServiceMonitor: off unless asked for (the chart's default is on, and a
    ServiceMonitor without the Prometheus Operator's CRDs fails the whole release)."""
    if not settings.service_monitor:
        return {"enabled": False}
    short = settings.interval_seconds < SCRAPE_TIMEOUT_S
    return {
        "enabled": True,
        "interval": settings.interval,
        "scrapeTimeout": settings.interval if short else f"{SCRAPE_TIMEOUT_S}s",
        # The Prometheus Operator labels every target with the exporter pod's own pod,
        # namespace and container; with honorLabels off the exporter's labels would become
        # exported_pod etc., with it on the device series (no pod) would get the exporter's
        # pod name. Dropping the target's labels keeps the exporter's as they are.
        "relabelings": [{"action": "labeldrop", "regex": "pod|namespace|container"}],
    }
