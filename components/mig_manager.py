"""MIG partitioning on AL2023 GPU nodes: the standalone k8s-mig-manager and its config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import mig
from eks_gpu_slicing.builders.device_plugin import config_checksum
from eks_gpu_slicing.settings import Settings


@dataclass(frozen=True)
class MigManagerArgs:
    provider: k8s.Provider
    # Where the manager runs (the device plugin's namespace: it waits there for GPU clients).
    namespace: str
    settings: Settings
    # The namespace, when the stack creates it.
    depends_on: Sequence[pulumi.Resource] = ()


class MigManager(pulumi.ComponentResource):
    """The mig-parted config for the layouts the stack uses, the manager's RBAC and its
    DaemonSet on nodes labelled with a MIG profile. Instantiate only when
    `settings.mig_layouts` is not empty.

    In two steps, because a layout change must converge (docs/mig.md, "Changing a layout"):
    the constructor registers the config (and RBAC), which the node groups and pools that
    label nodes with a layout name wait for, so no node is labelled with a name the config
    lacks; `serve(node_groups)` then registers the DaemonSet after those node groups. Its pod
    template carries the config's checksum, so a changed config restarts the manager, which
    applies each node's label with the new file (the manager never rereads its file)."""

    def __init__(self, name: str, args: MigManagerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:gpu:MigManager", name, None, opts)
        self._name = name
        self._args = args
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=list(args.depends_on)
        )
        config = mig.config_map(args.namespace, args.settings)
        self.checksum = config_checksum(config["data"])
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config", metadata=config["metadata"], data=config["data"], opts=k8s_opts
        )
        self.service_account = k8s.core.v1.ServiceAccount(
            name, metadata=mig.service_account(args.namespace)["metadata"], opts=k8s_opts
        )
        role = mig.cluster_role()
        self.cluster_role = k8s.rbac.v1.ClusterRole(
            name, metadata=role["metadata"], rules=role["rules"], opts=k8s_opts
        )
        binding = mig.cluster_role_binding(args.namespace)
        self.cluster_role_binding = k8s.rbac.v1.ClusterRoleBinding(
            name,
            metadata=binding["metadata"],
            role_ref=binding["roleRef"],
            subjects=binding["subjects"],
            opts=k8s_opts,
        )
        self.daemon_set: k8s.apps.v1.DaemonSet | None = None

    def serve(self, node_groups: Sequence[pulumi.Resource]) -> None:
        """Register the DaemonSet, after the GPU node groups it runs on, and finish."""
        args = self._args
        manifest = mig.daemon_set(
            namespace=args.namespace,
            config_map_name=self.config_map.metadata.apply(lambda m: m["name"]),
            gpu_clients_namespace=args.namespace,
            config_checksum=self.checksum,
        )
        self.daemon_set = k8s.apps.v1.DaemonSet(
            self._name,
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(
                parent=self,
                provider=args.provider,
                depends_on=[
                    *args.depends_on,
                    *node_groups,
                    self.cluster_role_binding,
                    self.service_account,
                ],
            ),
        )
        self.register_outputs(
            {
                "namespace": args.namespace,
                "layouts": sorted(args.settings.mig_layouts),
                "configChecksum": self.checksum,
            }
        )
