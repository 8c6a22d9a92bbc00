"""The source design's demo: a Deployment whose pods each hold one virtual GPU."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.workloads import demo_deployment
from eks_gpu_slicing.settings import DemoWorkloadSettings, SharingProfile


@dataclass(frozen=True)
class DemoWorkloadArgs:
    provider: k8s.Provider
    settings: DemoWorkloadSettings
    profile_name: str
    profile: SharingProfile
    # What each pod requests: the profile's resource, or with MIG `mixed` a slice type of
    # the GPU the demo's nodes have (Settings.demo_resource_name).
    resource_name: str | None = None
    # The GPU the demo is sized for (Settings.demo_instance): a hami pod asks for the even
    # share of its memory.
    instance: facts.GpuInstance | None = None
    # Where it runs: its tenant's namespace when it runs as one (Settings.demo_namespace);
    # unset, settings.namespace.
    namespace: str | None = None
    # The GPU nodes and the device plugin: without them the pods can never become ready,
    # and Pulumi waits for a Deployment's pods.
    depends_on: Sequence[pulumi.Resource] = ()


class DemoWorkload(pulumi.ComponentResource):
    def __init__(
        self, name: str, args: DemoWorkloadArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:workloads:DemoWorkload", name, None, opts)
        manifest = demo_deployment(
            replicas=args.settings.replicas,
            image=args.settings.image,
            namespace=args.namespace or args.settings.namespace,
            profile_name=args.profile_name,
            profile=args.profile,
            resource_name=args.resource_name,
            instance=args.instance,
        )
        self.deployment = k8s.apps.v1.Deployment(
            name,
            metadata=manifest["metadata"],
            spec=manifest["spec"],
            opts=pulumi.ResourceOptions(
                parent=self, provider=args.provider, depends_on=list(args.depends_on)
            ),
        )
        self.register_outputs({"deploymentName": manifest["metadata"]["name"]})
