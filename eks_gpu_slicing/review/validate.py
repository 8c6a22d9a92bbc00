"""Check a stack file offline, before review or deploy: no AWS, no Pulumi CLI.

    python -m eks_gpu_slicing.review.validate prod      (or: make validate STACK=prod)

Prints every configuration problem with its key path (exit 1), or the warnings and what
each GPU node group and Karpenter node pool will advertise to the scheduler.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from eks_gpu_slicing.builders.karpenter import node_pool_capacity
from eks_gpu_slicing.builders.tenants import quota_totals, tenant_report
from eks_gpu_slicing.builders.workloads import (
    benchmark_sizing,
    report_resources,
    virtual_gpu_capacity,
)
from eks_gpu_slicing.settings import ConfigError
from eks_gpu_slicing.settings.stack_files import (
    ROOT,
    StackFileError,
    engine_config_of_stack,
    settings_of_stack,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument("--dir", type=Path, default=ROOT, help="folder of the stack files")
    args = parser.parse_args(argv)
    try:
        settings = settings_of_stack(args.stack, args.dir)
    except ConfigError as exc:
        print(f"Pulumi.{args.stack}.yaml: {exc}", file=sys.stderr)
        return 1
    except StackFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2
    for warning in settings.warnings(dt.date.today()):
        print(f"warning: {warning}")
    print(
        f"Pulumi.{args.stack}.yaml is valid: cluster {settings.cluster_name}, "
        f"Kubernetes {settings.kubernetes_version}"
    )
    region = engine_config_of_stack(args.stack, args.dir).get("aws:region")
    header = (
        "group",
        "instance",
        "GPUs",
        "profile",
        "resource",
        "per node",
        "at maxSize",
        "GiB/vGPU",
        "$/vGPU-h",
    )
    rows = [header]
    reports = {}
    for name, group in settings.gpu_node_groups.items():
        c = reports[name] = virtual_gpu_capacity(group, settings.profile_of(group), region)
        # One row per resource: a MIG `mixed` layout advertises several slice resources, each
        # with its own count, memory and price (the report's per-slice figures).
        for i, (resource, (per_node, at_max)) in enumerate(report_resources(c).items()):
            memory = c["gpuMemoryPerVirtualGpuGiB"]
            # No price (p5e.48xlarge: Capacity Blocks only) is an absent key, not a null.
            price = c.get("usdPerVirtualGpuHour")
            if "sliceMemoryGiB" in c:
                memory = round(c["sliceMemoryGiB"][resource] / c["replicas"], 2)
                price = c.get("usdPerSliceHour", {}).get(resource)
            gpus = (
                f"{c['gpuFraction']} {c['gpuModel']} vGPU"
                if "gpuFraction" in c
                else f"{c['gpusPerNode']}x {c['gpuModel']}"
            )
            first = (
                name,
                c["instanceType"],
                f"{gpus} {c['gpuMemoryGiB']:g} GiB",
                f"{c['profile']} ({c['strategy']})",
            )
            rows.append(
                (
                    *(first if i == 0 else ("",) * len(first)),
                    resource,
                    str(per_node),
                    str(at_max),
                    f"{memory:g}",
                    "no price" if price is None else f"{price:.4f}",
                )
            )
    _print_table(rows)
    if reports:
        print(f"prices: {next(iter(reports.values()))['priceSource']}")
    for name, c in reports.items():
        print(f"isolation, {name}: {c['isolation']}")
        if "hami" in c:
            # The GiB/vGPU column is the even share; what is enforced is each pod's request.
            print(f"memory per slice, {name}: {c['hami']['memoryPerSlice']}")
    pools = settings.karpenter_pools
    if pools:
        print("Karpenter node pools:")
        rows = [("pool", "profile", "resource", "virtual GPUs per instance type")]
        for name, pool in pools.items():
            c = node_pool_capacity(name, pool, settings.sharing[pool.sharing])
            # One row per resource, as for groups: each MIG slice resource with the types
            # that advertise it (a pool's GPUs may differ, and so may their slices).
            per_type = c.get("resourcesPerInstanceType") or {
                t: {c["resourceName"]: n} for t, n in c["virtualGpusPerInstanceType"].items()
            }
            resources = list(dict.fromkeys(r for counts in per_type.values() for r in counts))
            for i, resource in enumerate(resources):
                counts = ", ".join(
                    f"{t}: {n[resource]}" for t, n in per_type.items() if resource in n
                )
                profile = f"{c['profile']} ({c['strategy']})"
                rows.append(
                    (name, profile, resource, counts) if i == 0 else ("", "", resource, counts)
                )
        _print_table(rows)
    _print_tenants(settings)
    _print_benchmark_sizing(settings)
    return 0


def _span(low: float | None, high: float | None, spec: str) -> str:
    """A figure, or its range where the nodes a quota may land on differ."""
    if low is None or high is None:
        return "-"
    return f"{low:{spec}}" if low == high else f"{low:{spec}}-{high:{spec}}"


def _print_tenants(settings) -> None:
    """Per tenant (stack output `tenants`): each resource of its quota, the GPU memory and the
    on-demand dollars per hour it stands for; then the quotas added up against the capacity."""
    if not settings.tenants:
        return
    print("Tenants:")
    rows = [("tenant", "namespace", "resource", "slices", "GiB", "$/h")]
    for name, report in tenant_report(settings).items():
        entries = list(report["quota"].items())
        for i, (resource, entry) in enumerate(entries):
            first = (name, report["namespace"]) if i == 0 else ("", "")
            rows.append(
                (
                    *first,
                    resource,
                    str(entry["slices"]),
                    _span(entry["gpuMemoryGiBMin"], entry["gpuMemoryGiBMax"], "g"),
                    _span(entry["usdPerHourMin"], entry["usdPerHourMax"], ".4f"),
                )
            )
        if len(entries) > 1:
            rows.append(
                (
                    "",
                    "",
                    "total",
                    "",
                    _span(report["gpuMemoryGiBMin"], report["gpuMemoryGiBMax"], "g"),
                    _span(report["usdPerHourMin"], report["usdPerHourMax"], ".4f"),
                )
            )
    _print_table(rows)
    rows = [("resource", "all quotas", "capacity")]
    for resource, total in quota_totals(settings).items():
        capacity = total["capacity"]
        rows.append(
            (resource, str(total["quota"]), "unbounded" if capacity is None else str(capacity))
        )
    _print_table(rows)


def _print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def _print_benchmark_sizing(settings) -> None:
    """What each benchmark Job will run and ask for; says so where memory caps N."""
    for name, (group, profile) in settings.benchmark_groups.items():
        b = settings.benchmark
        sizing = benchmark_sizing(group.instance, profile, b.models, b.modes)
        word = "warning: benchmark" if sizing.capped else "benchmark"
        print(f"{word}, {name}: {sizing.describe(group.instance_type)}")


if __name__ == "__main__":
    sys.exit(main())
