"""The Kubernetes namespaces the stack puts objects in, each created once and labelled with
the Pod Security Standards level its workloads meet."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.pod_security import namespace_labels


@dataclass(frozen=True)
class NamespacesArgs:
    provider: k8s.Provider
    # Every namespace some setting names; duplicates and built-in ones are fine here.
    names: Iterable[str]
    # {namespace: Pod Security Standards level it enforces} (pod_security.namespace_levels);
    # every namespace created must have one.
    levels: Mapping[str, str] = field(default_factory=dict)


class Namespaces(pulumi.ComponentResource):
    """One Namespace per distinct non-built-in name, so two settings naming the same
    namespace never create it twice; `depends_on(name)` is what objects in it wait for."""

    def __init__(self, name: str, args: NamespacesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:cluster:Namespaces", name, None, opts)
        created = sorted(set(args.names) - facts.BUILTIN_NAMESPACES)
        unlevelled = [namespace for namespace in created if namespace not in args.levels]
        if unlevelled:
            raise ValueError(f"no Pod Security Standards level for namespaces {unlevelled}")
        self.namespaces = {
            namespace: k8s.core.v1.Namespace(
                f"{name}-{namespace}",
                # Named exactly as configured (not auto-named): other objects refer to it.
                metadata={
                    "name": namespace,
                    "labels": {
                        "app.kubernetes.io/part-of": facts.PROJECT,
                        **namespace_labels(args.levels[namespace]),
                    },
                },
                opts=pulumi.ResourceOptions(parent=self, provider=args.provider),
            )
            for namespace in created
        }
        self.register_outputs({"created": sorted(self.namespaces)})

    def depends_on(self, namespace: str) -> list[pulumi.Resource]:
        """What an object in `namespace` must be created after (nothing for built-ins)."""
        created = self.namespaces.get(namespace)
        return [created] if created else []
