"""Helm values checked against what each pinned chart's templates read.

Helm ignores a misspelt value without a word; every release this program makes is listed
here with the value paths its chart version reads (from facts), and `value_paths` walks a
values tree the same way for all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from eks_gpu_slicing import facts

# Chart (as the Release names it) -> the value paths this program may set in it.
CHART_VALUE_PATHS: dict[str, frozenset[str]] = {
    facts.DEVICE_PLUGIN_CHART: facts.DEVICE_PLUGIN_VALUE_PATHS,
    facts.DCGM_EXPORTER_CHART: facts.DCGM_EXPORTER_VALUE_PATHS,
    facts.KARPENTER_CHART: facts.KARPENTER_VALUE_PATHS,
    facts.HAMI_CHART: facts.HAMI_VALUE_PATHS,
    # Only CRDs: this program sets no values in it.
    facts.KARPENTER_CRD_CHART: frozenset(),
}


def value_paths(
    values: Mapping[str, Any], known: frozenset[str], prefix: str = ""
) -> Iterator[str]:
    """Dotted paths of a values tree, stopping at the paths a chart reads as a whole (a
    nodeSelector map, a list of tolerations)."""
    for key, value in values.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and path not in known:
            yield from value_paths(value, known, f"{path}.")
        else:
            yield path


def unknown_value_paths(chart: str, values: Mapping[str, Any]) -> list[str]:
    """Paths set in `values` that `chart` does not read (KeyError for an unknown chart)."""
    known = CHART_VALUE_PATHS[chart]
    return [path for path in value_paths(values, known) if path not in known]
