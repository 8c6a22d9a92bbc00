"""HAMi: memory-capped software slices of the GPUs of `hami` profiles (one Helm release)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.hami import helm_values
from eks_gpu_slicing.settings import HamiSettings


@dataclass(frozen=True)
class HamiArgs:
    provider: k8s.Provider
    # The one set of values every hami profile of the stack agrees on (Settings.hami).
    settings: HamiSettings
    # The control plane's minor version (ClusterHandle's): the kube-scheduler image's tag.
    kubernetes_version: str
    # Where cluster-wide controllers run (ClusterHandle's): the scheduler and the hook Jobs.
    system_node_selector: Mapping[str, str] = field(default_factory=dict)
    # HAMi's nodes run Bottlerocket (all of them: the settings refuse a mix).
    bottlerocket: bool = False
    # Its namespace, and on a cluster this stack creates the system nodes: the install's
    # certificate Jobs and the scheduler must have somewhere to run.
    depends_on: Sequence[pulumi.Resource] = ()


class Hami(pulumi.ComponentResource):
    """The `hami` chart, pinned, in a namespace of its own: a scheduler (kube-scheduler with
    HAMi's extender, and a mutating webhook for pods that name it) on the system nodes, and a
    device plugin on the nodes of hami profiles."""

    def __init__(self, name: str, args: HamiArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:gpu:Hami", name, None, opts)
        self.release = k8s.helm.v3.Release(
            name,
            name=facts.HAMI_RELEASE_NAME,
            chart=facts.HAMI_CHART,
            version=facts.HAMI_CHART_VERSION,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=facts.HAMI_CHART_REPO),
            namespace=facts.HAMI_NAMESPACE,
            values=helm_values(
                hami=args.settings,
                kubernetes_version=args.kubernetes_version,
                system_node_selector=args.system_node_selector,
                bottlerocket=args.bottlerocket,
            ),
            max_history=10,
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=list(args.depends_on)
            ),
        )
        self.register_outputs(
            {"namespace": facts.HAMI_NAMESPACE, "releaseStatus": self.release.status}
        )
