"""Pure functions for tenants: each team's Namespace, ResourceQuota and LimitRange, who gets
access to which namespace, and what each team's quota stands for in GPU memory and dollars.

All from the settings the device-plugin config comes from: a quota is kept on the resources
the profiles advertise (settings.tenants.quota_counts), so renaming a profile's resource
moves the quota with it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.pod_security import namespace_labels
from eks_gpu_slicing.builders.workloads import SliceFigures, slice_figures
from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.settings.tenants import (
    Grant,
    TenantDefaultsSettings,
    TenantSettings,
    grants,
    quota_counts,
    tenant_namespace,
)


def tenant_labels(tenant_name: str) -> dict[str, str]:
    return {"app.kubernetes.io/part-of": facts.PROJECT, facts.TENANT_LABEL: tenant_name}


def namespace_metadata(tenant_name: str, tenant: TenantSettings) -> dict[str, Any]:
    """The tenant's Namespace: named as configured, labelled with its tenant and the Pod
    Security Standards level it enforces (as the stack's own namespaces are)."""
    return {
        "name": tenant_namespace(tenant_name, tenant),
        "labels": {**tenant_labels(tenant_name), **namespace_labels(tenant.pod_security)},
    }


def is_extended_resource(resource: str) -> bool:
    """An extended resource as the API server tells them apart (helper.IsNativeResource):
    a name with a domain prefix outside kubernetes.io."""
    domain, slash, _ = resource.partition("/")
    return bool(slash) and not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def quota_hard(counts: Mapping[str, int]) -> dict[str, str]:
    """spec.hard of a ResourceQuota on extended resources: `requests.<resource>` only (the
    one form the quota controller counts for them, facts.QUOTA_REQUESTS_PREFIX), whole
    numbers as quantity strings."""
    not_extended = [r for r in counts if not is_extended_resource(r)]
    if not_extended:
        raise ValueError(f"not extended resources: {', '.join(sorted(not_extended))}")
    return {f"{facts.QUOTA_REQUESTS_PREFIX}{r}": str(n) for r, n in sorted(counts.items())}


def resource_quota(tenant_name: str, namespace: str, counts: Mapping[str, int]) -> dict[str, Any]:
    """The tenant's ResourceQuota, as {metadata, spec}: the slices it may hold at once of
    every GPU resource the stack's nodes advertise (quota_counts)."""
    return {
        "metadata": {
            "name": facts.TENANT_QUOTA_NAME,
            "namespace": namespace,
            "labels": tenant_labels(tenant_name),
        },
        "spec": {"hard": quota_hard(counts)},
    }


def limit_range(
    tenant_name: str, namespace: str, defaults: TenantDefaultsSettings
) -> dict[str, Any]:
    """The tenant's LimitRange, as {metadata, spec}: one Container item with the default
    requests (defaultRequest) and limits (default) it was given, CPU and memory only."""
    item: dict[str, Any] = {"type": "Container"}
    if defaults.limits:
        item["default"] = {r: str(q) for r, q in defaults.limits.items()}
    if defaults.requests:
        item["defaultRequest"] = {r: str(q) for r, q in defaults.requests.items()}
    return {
        "metadata": {
            "name": facts.TENANT_LIMIT_RANGE_NAME,
            "namespace": namespace,
            "labels": tenant_labels(tenant_name),
        },
        "spec": {"limits": [item]},
    }


# --- Access ------------------------------------------------------------------------------------


def tenant_access(settings: Settings) -> dict[str, list[str]]:
    """Principal ARN -> the namespaces it may edit, over all tenants: EKS takes one access
    entry per principal and one association per principal and policy, so a principal of two
    tenants gets one association naming both namespaces."""
    access: dict[str, set[str]] = {}
    for name, tenant in settings.tenants.items():
        for arn in tenant.principals:
            access.setdefault(arn, set()).add(tenant_namespace(name, tenant))
    return {arn: sorted(namespaces) for arn, namespaces in sorted(access.items())}


def access_key(principal_arn: str) -> str:
    """A short, stable resource-name suffix for a principal: its entry keeps its name (and is
    never replaced) whatever other tenants or principals come and go."""
    return hashlib.sha256(principal_arn.encode()).hexdigest()[:10]


def access_scope(namespaces: list[str]) -> dict[str, Any]:
    """The association's accessScope: the tenants' namespaces, nothing cluster-wide."""
    return {"type": facts.ACCESS_SCOPE_NAMESPACE, "namespaces": list(namespaces)}


# --- Chargeback -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """Where a resource comes from: a node group or pool, an instance type, one device's
    figures there."""

    source: str
    instance_type: str
    figures: SliceFigures


def offers(settings: Settings, grant: Grant) -> list[Offer]:
    """Every node group and pool instance type a grant's slices may land on: for a quota keyed
    by profile, that profile's nodes; keyed by resource, every node advertising it."""
    found = []
    for name, group in settings.gpu_node_groups.items():
        if grant.by_profile and group.sharing != grant.key:
            continue
        figures = slice_figures(settings.profile_of(group), group.instance).get(grant.resource)
        if figures is not None:
            found.append(Offer(f"gpuNodeGroups.{name}", group.instance_type, figures))
    for name, pool in settings.karpenter_pools.items():
        if grant.by_profile and pool.sharing != grant.key:
            continue
        for instance in pool.instances:
            figures = slice_figures(settings.sharing[pool.sharing], instance).get(grant.resource)
            if figures is not None:
                found.append(Offer(f"karpenter.nodePools.{name}", instance.name, figures))
    return found


def _span(values: list[float], slices: int, digits: int) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return round(min(values) * slices, digits), round(max(values) * slices, digits)


def grant_report(settings: Settings, grant: Grant) -> dict[str, Any]:
    """One quota entry: its slices, and the GPU memory and on-demand dollars per hour they
    stand for when all are in use, lowest and highest over the nodes they may land on (one
    resource can be advertised by instance types of different prices)."""
    found = offers(settings, grant)
    prices = [o.figures.usd_per_hour for o in found if o.figures.usd_per_hour is not None]
    memory = [o.figures.gpu_memory_gib for o in found]
    usd_min, usd_max = _span(prices, grant.slices, 4)
    gib_min, gib_max = _span(memory, grant.slices, 2)
    return {
        "key": grant.key,
        "slices": grant.slices,
        "usdPerSliceHourMin": min(prices, default=None),
        "usdPerSliceHourMax": max(prices, default=None),
        "usdPerHourMin": usd_min,
        "usdPerHourMax": usd_max,
        "gpuMemoryGiBMin": gib_min,
        "gpuMemoryGiBMax": gib_max,
        "instanceTypes": sorted({o.instance_type for o in found}),
    }


def _total(entries: list[dict[str, Any]], key: str, digits: int) -> float | None:
    values = [e[key] for e in entries]
    return round(sum(values), digits) if values and None not in values else None


def tenant_report(settings: Settings) -> dict[str, Any]:
    """The sharing report's per-tenant section (stack output `tenants`, `make validate`):
    per tenant its namespace, Pod Security level, principals and, per resource it was given,
    the slices and what they stand for; then its totals. Prices are the instance table's
    (facts.PRICE_REGION, facts.PRICES_AS_OF), as in the node groups' report."""
    report = {}
    for name, tenant in settings.tenants.items():
        entries = {g.resource: grant_report(settings, g) for g in grants(settings, tenant)}
        values = list(entries.values())
        report[name] = {
            "namespace": tenant_namespace(name, tenant),
            "podSecurity": tenant.pod_security,
            "principals": list(tenant.principals),
            "quota": entries,
            "usdPerHourMin": _total(values, "usdPerHourMin", 4),
            "usdPerHourMax": _total(values, "usdPerHourMax", 4),
            "gpuMemoryGiBMin": _total(values, "gpuMemoryGiBMin", 2),
            "gpuMemoryGiBMax": _total(values, "gpuMemoryGiBMax", 2),
            "priceSource": f"on-demand, {facts.PRICE_REGION}, {facts.PRICES_AS_OF}",
        }
    return report


def quota_totals(settings: Settings) -> dict[str, dict[str, int | None]]:
    """Resource -> the slices all tenants' quotas add up to, and the most of it the stack can
    ever offer (Settings.resource_capacity; None: a pool without a countable limit). Quotas
    above the capacity overlap: a quota caps a team and reserves nothing."""
    totals: dict[str, int] = {}
    for tenant in settings.tenants.values():
        for resource, count in quota_counts(settings, tenant).items():
            totals[resource] = totals.get(resource, 0) + count
    return {
        resource: {"quota": total, "capacity": settings.resource_capacity(resource)}
        for resource, total in sorted(totals.items())
    }
