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
from eks_gpu_slicing.builders.workloads import benchmark_sizing, virtual_gpu_capacity
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
        rows.append(
            (
                name,
                c["instanceType"],
                f"{c['gpusPerNode']}x {c['gpuModel']} {c['gpuMemoryGiB']:g} GiB",
                f"{c['profile']} ({c['strategy']})",
                c["resourceName"],
                str(c["virtualGpusPerNode"]),
                str(c["virtualGpusAtMaxSize"]),
                f"{c['gpuMemoryPerVirtualGpuGiB']:g}",
                f"{c['usdPerVirtualGpuHour']:.4f}" if "usdPerVirtualGpuHour" in c else "no price",
            )
        )
    _print_table(rows)
    if reports:
        print(f"prices: {next(iter(reports.values()))['priceSource']}")
    for name, c in reports.items():
        print(f"isolation, {name}: {c['isolation']}")
    pools = settings.karpenter_pools
    if pools:
        print("Karpenter node pools:")
        rows = [("pool", "profile", "resource", "virtual GPUs per instance type")]
        for name, pool in pools.items():
            c = node_pool_capacity(name, pool, settings.sharing[pool.sharing])
            per_type = ", ".join(f"{t}: {n}" for t, n in c["virtualGpusPerInstanceType"].items())
            rows.append((name, f"{c['profile']} ({c['strategy']})", c["resourceName"], per_type))
        _print_table(rows)
    _print_benchmark_sizing(settings)
    return 0


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
