"""Per-pod GPU metrics: the NVIDIA DCGM exporter as a DaemonSet on every GPU node."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.gpu_metrics import helm_values
from eks_gpu_slicing.settings import GpuMetricsSettings


@dataclass(frozen=True)
class GpuMetricsArgs:
    provider: k8s.Provider
    settings: GpuMetricsSettings
    # Extended resources pods request on GPU nodes (one per sharing profile in use).
    resource_names: Iterable[str]
    # The GPU node groups (its pods have somewhere to run before Helm waits for them) and
    # its namespace, when the stack creates it.
    depends_on: Sequence[pulumi.Resource] = ()
    # Some node is partitioned by the MIG manager: step aside while it repartitions.
    mig: bool = False
    # The cluster may run GPU nodes this stack does not own: run on ours only.
    our_nodes_only: bool = False


class GpuMetrics(pulumi.ComponentResource):
    """The dcgm-exporter chart, pinned, with per-pod attribution on shared GPUs.

    It runs with hostPID in a namespace of its own: it can see every process on a GPU node,
    which is what lets it tell the pods sharing a GPU apart.
    """

    def __init__(self, name: str, args: GpuMetricsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:observability:GpuMetrics", name, None, opts)
        self.release = k8s.helm.v3.Release(
            name,
            name=facts.DCGM_EXPORTER_RELEASE_NAME,
            chart=facts.DCGM_EXPORTER_CHART,
            version=args.settings.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=facts.DCGM_EXPORTER_CHART_REPO),
            namespace=args.settings.namespace,
            values=helm_values(
                args.settings,
                args.resource_names,
                mig=args.mig,
                our_nodes_only=args.our_nodes_only,
            ),
            max_history=10,
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=list(args.depends_on)
            ),
        )
        self.namespace = args.settings.namespace
        self.register_outputs({"namespace": self.namespace, "releaseStatus": self.release.status})
