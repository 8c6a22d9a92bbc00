"""Tenants: the teams that share the GPUs, each with its namespace, its quota of slices,
optional defaults for its containers and the IAM principals that may edit its workloads.

A quota is given per sharing profile or per slice resource and is resolved to the extended
resources the stack's GPU nodes advertise through the profiles' own functions
(SharingProfile.node_resources, Settings.profile_resource_names): renaming a profile's
resource, or a strategy that advertises others, moves the quota with it. What the API server
accepts and enforces is explained in docs/tenants.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field, field_validator, model_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import _IAM_PRINCIPAL_ARN, Namespace, _Settings
from eks_gpu_slicing.settings.karpenter import parse_quantity, quantity_value

if TYPE_CHECKING:
    from eks_gpu_slicing.settings.stack import Settings

PodSecurityLevel = Literal["privileged", "baseline", "restricted"]
# The most slices one quota entry may name: far above any cluster this stack builds (a
# p5.48xlarge group of 100 nodes with 56 slices per GPU is 44,800), low enough to catch a
# number pasted in MiB.
MAX_QUOTA = 100_000
# Principals per tenant: a team's roles; more than this belongs in a Kubernetes group bound
# to a Role (an access entry's kubernetesGroups), which this stack does not manage.
MAX_TENANT_PRINCIPALS = 20
Quantity = Annotated[int | str, Field(description="A Kubernetes quantity (e.g. 500m, 2, 1Gi).")]


class TenantDefaultsSettings(_Settings):
    """A LimitRange: what a container in the tenant's namespace gets when it sets no CPU or
    memory of its own. GPU slices are never defaulted: the API server's LimitRanger adds a
    default to every container and init container that lacks it, and a pod holding a slice
    must also tolerate the GPU taint and select its profile's nodes, which no default adds."""

    cpu_request: Quantity | None = Field(
        default=None, description="CPU request of a container that sets none (e.g. 100m)."
    )
    cpu_limit: Quantity | None = Field(
        default=None,
        description=(
            "CPU limit of a container that sets none (e.g. 1); without cpuRequest the API "
            "server makes the request equal to it."
        ),
    )
    memory_request: Quantity | None = Field(
        default=None, description="Memory request of a container that sets none (e.g. 256Mi)."
    )
    memory_limit: Quantity | None = Field(
        default=None,
        description=(
            "Memory limit of a container that sets none (e.g. 1Gi); without memoryRequest the "
            "API server makes the request equal to it."
        ),
    )

    @field_validator("cpu_request", "cpu_limit", "memory_request", "memory_limit")
    @classmethod
    def _quantity(cls, value: int | str | None) -> int | str | None:
        return None if value is None else parse_quantity(value)

    @model_validator(mode="after")
    def _request_within_limit(self) -> TenantDefaultsSettings:
        if not self.requests and not self.limits:
            raise ValueError(
                "give at least one of cpuRequest, cpuLimit, memoryRequest, memoryLimit, or "
                "leave defaults out"
            )
        # The API server refuses a LimitRange whose default request is above its default
        # limit (ValidateLimitRange: "must be less than or equal to default limit").
        for resource, request in self.requests.items():
            limit = self.limits.get(resource)
            if limit is not None and quantity_value(request) > quantity_value(limit):
                raise ValueError(
                    f"{resource}Request ({request}) is above {resource}Limit ({limit})"
                )
        return self

    @property
    def requests(self) -> dict[str, int | str]:
        """Resource -> default request, for those given."""
        given = {"cpu": self.cpu_request, "memory": self.memory_request}
        return {k: v for k, v in given.items() if v is not None}

    @property
    def limits(self) -> dict[str, int | str]:
        """Resource -> default limit, for those given."""
        given = {"cpu": self.cpu_limit, "memory": self.memory_limit}
        return {k: v for k, v in given.items() if v is not None}


class TenantSettings(_Settings):
    """A team on the shared GPUs: its namespace, the slices it may hold, defaults for its
    containers, and who may edit its workloads."""

    namespace: Namespace | None = Field(
        default=None,
        description=(
            "Namespace of the team's workloads, created by the stack (default: the tenant's "
            "name). Not a built-in namespace, one the stack's own releases use, or another "
            "tenant's."
        ),
    )
    pod_security: PodSecurityLevel = Field(
        default="restricted",
        description=(
            "Pod Security Standards level the namespace enforces (labels "
            "pod-security.kubernetes.io/enforce, warn and audit)."
        ),
    )
    quota: dict[str, Annotated[int, Field(ge=0, le=MAX_QUOTA)]] = Field(
        min_length=1,
        description=(
            "Slices the team may hold at once, keyed by sharing profile (its one slice "
            "resource) or by resource (nvidia.com/gpu, nvidia.com/gpu.shared, "
            "nvidia.com/mig-<profile>, ...), 0 to 100000 each. Becomes a ResourceQuota on "
            "requests.<resource>; every other GPU resource of the stack is in it at 0. "
            "Refused: an unknown profile or resource, a profile on no group or pool, a profile "
            "with several resources (MIG mixed: one entry per slice type), two keys for one "
            "resource, and more slices than the stack can ever offer (node groups at maxSize "
            "plus pools at their limits). Warned: a profile-keyed quota whose resource another "
            "profile advertises too (the quota counts both), and tenants' quotas adding up to "
            "more than the capacity."
        ),
    )
    defaults: TenantDefaultsSettings | None = Field(
        default=None,
        description="CPU and memory for containers that set none (a LimitRange); no GPU slices.",
    )
    principals: list[str] = Field(
        default=[],
        max_length=MAX_TENANT_PRINCIPALS,
        description=(
            "IAM role or user ARNs (at most 20) given AmazonEKSEditPolicy in the namespace "
            "only, through EKS access entries. Not one of adminRoleArns, and not on a cluster "
            "that authenticates with CONFIG_MAP only."
        ),
    )

    @field_validator("principals")
    @classmethod
    def _arns(cls, arns: list[str]) -> list[str]:
        bad = [a for a in arns if not _IAM_PRINCIPAL_ARN.match(a)]
        if bad:
            raise ValueError(f"not IAM role or user ARNs: {', '.join(bad)}")
        repeated = sorted({a for a in arns if arns.count(a) > 1})
        if repeated:
            raise ValueError(f"listed more than once: {', '.join(repeated)}")
        return arns


# --- Resolving quotas -------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """One quota entry resolved: `slices` of `resource`, as the stack file keyed it (`key`: a
    profile name or the resource itself)."""

    key: str
    resource: str
    slices: int

    @property
    def by_profile(self) -> bool:
        return self.key != self.resource


def is_resource_key(key: str) -> bool:
    """A quota key naming an extended resource (`nvidia.com/gpu`) rather than a profile (profile
    names have no `/`)."""
    return "/" in key


def tenant_namespace(name: str, tenant: TenantSettings) -> str:
    return tenant.namespace or name


def grants(settings: Settings, tenant: TenantSettings) -> list[Grant]:
    """The quota entries that resolve to exactly one resource of the stack (the others are
    tenant_problems)."""
    out = []
    for key, slices in tenant.quota.items():
        resources = [key] if is_resource_key(key) else settings.profile_resource_names(key)
        if len(resources) == 1 and resources[0] in settings.gpu_resource_names():
            out.append(Grant(key, resources[0], slices))
    return out


def quota_counts(settings: Settings, tenant: TenantSettings) -> dict[str, int]:
    """Resource -> slices the tenant may hold, for every GPU resource the stack's nodes
    advertise: those it is not given at 0, so a team given only time-sliced GPUs cannot take
    MIG slices either (a ResourceQuota limits only the resources it names)."""
    counts = dict.fromkeys(sorted(settings.gpu_resource_names()), 0)
    for grant in grants(settings, tenant):
        counts[grant.resource] = grant.slices
    return counts


# --- Checks that need the whole configuration ------------------------------------------------


def tenant_problems(settings: Settings) -> list[str]:
    """Errors in `tenants` and `demoWorkload.tenant`, each 'key.path: why'."""
    problems = []
    resources = settings.gpu_resource_names()
    own = settings.own_namespaces
    owners: dict[str, str] = {}
    for name, tenant in settings.tenants.items():
        where = f"tenants.{name}"
        problems.extend(_quota_problems(settings, name, tenant, resources))
        namespace = tenant_namespace(name, tenant)
        key = f"{where}.namespace"
        if namespace in facts.BUILTIN_NAMESPACES:
            problems.append(
                f"{key}: '{namespace}' is built into every cluster; a tenant gets a namespace "
                "the stack creates and labels: name another"
            )
        elif namespace in own:
            problems.append(
                f"{key}: '{namespace}' holds the stack's own {', '.join(own[namespace])}; a "
                "tenant's pods and principals must not share it: name another"
            )
        elif namespace in owners:
            problems.append(
                f"{key}: '{namespace}' is tenant {owners[namespace]}'s namespace too; one "
                "namespace has one quota: give each tenant its own"
            )
        owners.setdefault(namespace, name)
        for i, arn in enumerate(tenant.principals):
            if arn in settings.admin_role_arns:
                problems.append(
                    f"{where}.principals[{i}]: {arn} is in adminRoleArns, which makes it a "
                    "cluster admin already; EKS gives a principal one access entry: list it "
                    "in one place"
                )
    problems.extend(_demo_problems(settings))
    return problems


def _quota_problems(
    settings: Settings, name: str, tenant: TenantSettings, resources: set[str]
) -> list[str]:
    where = f"tenants.{name}.quota"
    known = (
        f"profiles: {', '.join(sorted(settings.sharing))}; "
        f"resources: {', '.join(sorted(resources)) or 'none'}"
    )
    problems = []
    counted: dict[str, str] = {}
    for key, slices in tenant.quota.items():
        if is_resource_key(key):
            if key not in resources:
                problems.append(
                    f"{where}.{key}: no GPU node group or pool of the stack advertises {key} "
                    f"({known})"
                )
                continue
            resource = key
        elif key not in settings.sharing:
            problems.append(f"{where}.{key}: no sharing profile or resource '{key}' ({known})")
            continue
        else:
            profile_resources = settings.profile_resource_names(key)
            if not profile_resources:
                problems.append(
                    f"{where}.{key}: profile '{key}' is on no GPU node group or Karpenter "
                    "pool, so none of its slices can ever exist"
                )
                continue
            if len(profile_resources) > 1:
                entries = ", ".join(f"{where}.{r}" for r in profile_resources)
                problems.append(
                    f"{where}.{key}: profile '{key}' advertises several resources "
                    f"({', '.join(profile_resources)}); a quota counts each on its own: give "
                    f"one entry per resource ({entries})"
                )
                continue
            (resource,) = profile_resources
        if resource in counted:
            problems.append(
                f"{where}.{key}: {counted[resource]} and {key} both count requests.{resource}; "
                "a ResourceQuota has one number per resource: give it once"
            )
            continue
        counted[resource] = key
        capacity = settings.resource_capacity(resource)
        if capacity is not None and slices > capacity:
            problems.append(
                f"{where}.{key}: {slices} {resource}, but the stack can never offer more than "
                f"{capacity} ({settings.capacity_breakdown(resource)}): the quota could never "
                "be used up; lower it, or raise maxSize or the pools' limits"
            )
    return problems


def _demo_problems(settings: Settings) -> list[str]:
    demo = settings.demo_workload
    if demo.tenant is None:
        return []
    known = ", ".join(sorted(settings.tenants)) or "none"
    tenant = settings.tenants.get(demo.tenant)
    if tenant is None:
        return [f"demoWorkload.tenant: no tenant '{demo.tenant}' (tenants: {known})"]
    problems = []
    if "namespace" in demo.model_fields_set:
        problems.append(
            f"demoWorkload.namespace: the demo runs in tenant {demo.tenant}'s namespace "
            f"'{tenant_namespace(demo.tenant, tenant)}'; leave namespace out"
        )
    if demo.enabled:
        resource = settings.demo_resource_name
        allowed = quota_counts(settings, tenant).get(resource, 0)
        if demo.replicas > allowed:
            problems.append(
                f"demoWorkload.replicas: {demo.replicas} pods of one {resource} each, but "
                f"tenant {demo.tenant}'s quota allows {allowed}: the API server would refuse the "
                "rest and `pulumi up` would wait for them; lower replicas or raise "
                f"tenants.{demo.tenant}.quota"
            )
    return problems


def tenant_warnings(settings: Settings) -> list[str]:
    """Quotas that deploy but count more than they seem to, or promise more than exists."""
    out = []
    totals: dict[str, int] = {}
    for name, tenant in settings.tenants.items():
        for grant in grants(settings, tenant):
            totals[grant.resource] = totals.get(grant.resource, 0) + grant.slices
            if not grant.by_profile:
                continue
            others = sorted(
                other
                for other in settings.sharing
                if other != grant.key and grant.resource in settings.profile_resource_names(other)
            )
            if others:
                out.append(
                    f"tenants.{name}.quota.{grant.key}: counts {grant.resource}, which profile(s) "
                    f"{', '.join(others)} advertise too: a ResourceQuota counts a resource, not "
                    "a profile, so pods on their nodes use up this quota as well"
                )
    for resource, total in sorted(totals.items()):
        capacity = settings.resource_capacity(resource)
        if capacity is not None and total > capacity:
            given = ", ".join(
                f"{name} {count}"
                for name, tenant in settings.tenants.items()
                if (count := quota_counts(settings, tenant).get(resource, 0))
            )
            out.append(
                f"tenants: quotas of {resource} add up to {total} ({given}), but the stack "
                f"offers at most {capacity}: a quota caps a team, it reserves nothing; the "
                "first to schedule gets the slices"
            )
    return out
