"""The Kubernetes namespaces the stack puts objects in, each created once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts


@dataclass(frozen=True)
class NamespacesArgs:
    provider: k8s.Provider
    # Every namespace some setting names; duplicates and built-in ones are fine here.
    names: Iterable[str]


class Namespaces(pulumi.ComponentResource):
    """One Namespace per distinct non-built-in name, so two settings naming the same
    namespace never create it twice; `depends_on(name)` is what objects in it wait for."""

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:cluster:Namespaces", name, None, opts)
        self.namespaces = {
            namespace: k8s.core.v1.Namespace(
                f"{name}-{namespace}",
                # Named exactly as configured (not auto-named): other objects refer to it.
                metadata={
                    "name": namespace,
                    "labels": {"app.kubernetes.io/part-of": facts.PROJECT},
                },
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )
            for namespace in sorted(set(args.names) - facts.BUILTIN_NAMESPACES)
        }
        self.register_outputs({"created": sorted(self.namespaces)})

    def depends_on(self, namespace: str) -> list[pulumi.Resource]:
        """What an object in `namespace` must be created after (nothing for built-ins)."""
        created = self.namespaces.get(namespace)
        return [created] if created else []
