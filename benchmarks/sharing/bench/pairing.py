"""One MPS client against the exclusive process: each client window paired with the exclusive
window before it on the same CPU core, and the ratio of the pairs whose core stayed in one state."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from .records import (
    RATIO_PAIRED,
    STATUS_OK,
    STATUS_OOM,
    BenchmarkError,
    Result,
    RunMeta,
    WindowTelemetry,
    WorkerSample,
)

PAIR_MIN_KEPT = 3  # fewer agreeing pairs than this: the ratio falls back to all pairs
PAIRED_LOW_PERCENTILE = 10.0  # ratio_low of a paired row: this percentile of the pair ratios


def percentile(values: Sequence[float], q: float) -> float:
    """q-th percentile (0..100), linear interpolation between closest ranks (numpy default)."""
    if not values:
        raise ValueError("percentile of an empty sequence")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be within [0, 100], got {q}")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def latency_percentiles_ms(latencies_s: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds of one worker's per-iteration latencies in seconds."""
    return percentile(latencies_s, 50.0) * 1e3, percentile(latencies_s, 99.0) * 1e3


def oom_result(**identity) -> Result:
    """The row of a case that ran out of GPU memory: who it is, and no measured number."""
    return Result(
        **identity,
        aggregate_it_s=None,
        per_process_it_s=None,
        ratio_vs_exclusive=None,
        p50_ms=None,
        p99_ms=None,
        mem_per_process_mib=None,
        status=STATUS_OOM,
    )


@dataclass(frozen=True)
class PairRatio:
    """One pair of adjacent windows: the exclusive process's and the MPS client's."""

    index: int
    exclusive_it_s: float
    shared_it_s: float
    ratio: float  # shared_it_s / exclusive_it_s
    probe_spread: float | None  # max / min - 1 of the four CPU probes; None if one is missing
    kept: bool  # probe_spread within the tolerance: the core was in one state for both


PAIR_EXCLUSIVE_RANK = 0  # rank 0 of a paired case is the plain process, rank 1 the MPS client
PAIR_SHARED_RANK = 1


def probe_spread(probes: Sequence[float | None]) -> float | None:
    """max / min - 1 of CPU probe times, or None when any is missing or not positive."""
    if not probes or any(p is None or p <= 0 for p in probes):
        return None
    return max(probes) / min(probes) - 1.0


def pair_ratios(pairs: Sequence[Sequence[WorkerSample]], tolerance: float) -> list[PairRatio]:
    """Per pair of windows, the MPS client's it/s over the exclusive process's.

    Both processes ran on the same CPU core, one after the other, so a pair sees the core in
    one state unless it switched in between: the pair is kept only when the probes taken
    before and after both windows are within `tolerance` of each other (probe_spread).
    """
    out = []
    for i, pair in enumerate(pairs):
        by_rank = {s.rank: s for s in pair}
        if len(pair) != 2 or set(by_rank) != {PAIR_EXCLUSIVE_RANK, PAIR_SHARED_RANK}:
            raise BenchmarkError(f"pair {i}: want one exclusive and one MPS sample, got {pair}")
        bad = [s for s in pair if s.status != STATUS_OK]
        if bad:
            raise BenchmarkError(f"pair {i}: unexpected sample status {bad[0]}")
        exclusive, shared = by_rank[PAIR_EXCLUSIVE_RANK], by_rank[PAIR_SHARED_RANK]
        if exclusive.it_s <= 0:
            raise BenchmarkError(f"pair {i}: the exclusive window ran no iterations")
        spread = probe_spread(
            [
                exclusive.cpu_probe_ms,
                exclusive.cpu_probe_after_ms,
                shared.cpu_probe_ms,
                shared.cpu_probe_after_ms,
            ]
        )
        out.append(
            PairRatio(
                index=i,
                exclusive_it_s=exclusive.it_s,
                shared_it_s=shared.it_s,
                ratio=shared.it_s / exclusive.it_s,
                probe_spread=spread,
                kept=spread is not None and spread <= tolerance,
            )
        )
    return out


def paired_ratio(ratios: Sequence[PairRatio]) -> tuple[float, float, list[PairRatio]]:
    """(median, low end, pairs used) of the per-pair ratios of the kept pairs.

    The low end is the PAIRED_LOW_PERCENTILE-th percentile. With fewer than PAIR_MIN_KEPT
    kept pairs, every pair is used (the caller says so).
    """
    if not ratios:
        raise BenchmarkError("no paired windows to compute a ratio from")
    used = [r for r in ratios if r.kept]
    if len(used) < PAIR_MIN_KEPT:
        used = list(ratios)
    values = [r.ratio for r in used]
    return statistics.median(values), percentile(values, PAIRED_LOW_PERCENTILE), used


def summarize_paired(
    model: str,
    mode: str,
    pairs: Sequence[Sequence[WorkerSample]],
    meta: RunMeta,
    window_s: float,
    tolerance: float,
    windows: Sequence[WindowTelemetry] | None = None,
) -> Result:
    """One N=1 row from paired windows. ratio_vs_exclusive is the median per-pair ratio and
    ratio_low its PAIRED_LOW_PERCENTILE-th percentile over the pairs used (paired_ratio); the
    throughput and latency columns describe the MPS client's windows of those pairs."""
    ratios = pair_ratios(pairs, tolerance)
    ratio, low, used = paired_ratio(ratios)
    shared = [next(s for s in pairs[r.index] if s.rank == PAIR_SHARED_RANK) for r in used]
    its = [s.it_s for s in shared]
    aggregate = statistics.median(its)
    kept = sum(r.kept for r in ratios)
    used_windows = [windows[r.index] for r in used] if windows is not None else []
    clocks = [w.sm_clock_mhz for w in used_windows if w.sm_clock_mhz is not None]
    temps = [w.temp_c for w in used_windows if w.temp_c is not None]
    mems = [s.mem_reserved_mib for s in shared if s.mem_reserved_mib is not None]
    rss = [s.host_rss_mib for s in shared if s.host_rss_mib is not None]
    return Result(
        date=meta.date,
        gpu=meta.gpu,
        driver=meta.driver,
        torch=meta.torch,
        model=model,
        mode=mode,
        clients=1,
        repetitions=len(used),
        duration_s=window_s,
        aggregate_it_s=aggregate,
        aggregate_min_it_s=min(its),
        aggregate_max_it_s=max(its),
        per_process_it_s=aggregate,
        ratio_vs_exclusive=ratio,
        ratio_low=low,
        p50_ms=statistics.median(s.p50_ms for s in shared),
        p99_ms=statistics.median(s.p99_ms for s in shared),
        mem_per_process_mib=max(mems) if mems else None,
        host_rss_mib=max(rss) if rss else None,
        sm_clock_mhz=statistics.median(clocks) if clocks else None,
        gpu_temp_c=max(temps) if temps else None,
        status=STATUS_OK,
        ratio_method=RATIO_PAIRED,
        pairs_kept=kept,
        pairs_excluded=len(ratios) - kept,
    )


def describe_pairs(ratios: Sequence[PairRatio], tolerance: float) -> list[str]:
    """Log lines: the ratio from the kept pairs, from all pairs, and every pair."""
    ratio, low, used = paired_ratio(ratios)
    kept = [r for r in ratios if r.kept]
    everything = statistics.median(r.ratio for r in ratios)
    head = (
        f"paired: {len(kept)} of {len(ratios)} pairs kept (CPU probes within "
        f"{100 * tolerance:g}%); ratio {ratio:.3f} (low {low:.3f}) from "
        f"{len(used)} pairs; all pairs {everything:.3f}"
    )
    if len(used) != len(kept):
        head += f"; WARNING: fewer than {PAIR_MIN_KEPT} pairs kept, all pairs used"
    parts = []
    for r in ratios:
        spread = "?" if r.probe_spread is None else f"{100 * r.probe_spread:.0f}%"
        mark = "" if r.kept else " x"
        parts.append(f"{r.exclusive_it_s:.0f}/{r.shared_it_s:.0f}={r.ratio:.2f}({spread}){mark}")
    return [head, "pairs (exclusive/mps it/s, probe spread, x = excluded): " + " ".join(parts)]
