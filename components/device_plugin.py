"""The NVIDIA device plugin: the sharing ConfigMap and the Helm release that reads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.device_plugin import (
    CONFIG_MAP_LABELS,
    config_checksum,
    config_map_data,
    helm_values,
)
from eks_gpu_slicing.settings import DevicePluginSettings, SharingProfile


@dataclass(frozen=True)
class DevicePluginArgs:
    provider: k8s.Provider
    settings: DevicePluginSettings
    profiles: Mapping[str, SharingProfile]
    # Its namespace, when the stack creates it.
    depends_on: Sequence[pulumi.Resource] = ()
    # Some node is partitioned by the MIG manager: step aside while it repartitions.
    mig: bool = False
    # Where cluster-wide controllers run (ClusterHandle's): NFD's master and gc, with GFD.
    system_node_selector: Mapping[str, str] = field(default_factory=dict)


class DevicePlugin(pulumi.ComponentResource):
    """One ConfigMap entry per sharing profile; GPU nodes pick theirs by label.

    The release takes the ConfigMap's name from the ConfigMap resource (so Pulumi creates
    them in order) and carries a checksum of its data as a pod annotation, so a changed
    profile rolls the DaemonSet on `pulumi up` instead of waiting for a node restart.
    """

    def __init__(
        self, name: str, args: DevicePluginArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:gpu:DevicePlugin", name, None, opts)
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=args.provider)
        namespace = args.settings.namespace
        in_namespace = pulumi.ResourceOptions.merge(
            k8s_opts, pulumi.ResourceOptions(depends_on=list(args.depends_on))
        )

        data = config_map_data(args.profiles)
        # Auto-named: a changed profile makes a new ConfigMap, the release switches to it,
        # and only then is the old one deleted, so the plugin never reads a missing map.
        self.config_map = k8s.core.v1.ConfigMap(
            f"{name}-config",
            metadata={"namespace": namespace, "labels": dict(CONFIG_MAP_LABELS)},
            data=data,
            opts=in_namespace,
        )
        self.config_map_name = self.config_map.metadata.apply(lambda m: m["name"])
        self.checksum = config_checksum(data)

        self.release = k8s.helm.v3.Release(
            name,
            name=facts.DEVICE_PLUGIN_RELEASE_NAME,
            chart=facts.DEVICE_PLUGIN_CHART,
            version=args.settings.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=facts.DEVICE_PLUGIN_CHART_REPO),
            namespace=namespace,
            values=helm_values(
                config_map_name=self.config_map_name,
                default_profile=args.settings.default_profile,
                checksum=self.checksum,
                gfd=args.settings.gfd,
                mig=args.mig,
                system_node_selector=args.system_node_selector,
            ),
            max_history=10,
            opts=in_namespace,
        )
        self.register_outputs(
            {
                "configMapName": self.config_map_name,
                "configChecksum": self.checksum,
                "releaseStatus": self.release.status,
            }
        )
