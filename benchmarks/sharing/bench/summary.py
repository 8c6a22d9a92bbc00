"""From an interleaved run's windows to result rows: means over rounds, ratios against the
exclusive windows of the same minutes and cores, and the checks a run must pass."""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence

from .cases import PAIRED_MODES, InterleavedRun, Settings, Window, interleaved_cases, sort_results
from .pairing import (
    PAIR_EXCLUSIVE_RANK,
    PAIR_SHARED_RANK,
    oom_result,
    pair_ratios,
    paired_ratio,
    percentile,
    summarize_paired,
)
from .records import (
    RATIO_INTERLEAVED,
    STATUS_OK,
    STATUS_OOM,
    BenchmarkError,
    OutOfMemoryFailure,
    Result,
    RunMeta,
    TelemetrySample,
    WindowTelemetry,
    WorkerSample,
    oom_cases,
)

INTERLEAVED_LOW_PERCENTILE = 10.0  # ratio_low of an interleaved row, over the rounds


def with_baseline_columns(results: Sequence[Result]) -> list[Result]:
    """Every row with the baseline_* columns of its model's exclusive row, so each row says
    what it was divided by and how stable that was. Ratios stay as computed."""
    baseline = {
        r.model: r
        for r in results
        if r.mode == "exclusive" and r.clients == 1 and r.status == STATUS_OK and r.aggregate_it_s
    }
    out = []
    for r in results:
        base = baseline.get(r.model)
        out.append(
            dataclasses.replace(
                r,
                baseline_it_s=base.aggregate_it_s if base else None,
                baseline_runs=base.baseline_runs if base else None,
                baseline_spread_pct=base.baseline_spread_pct if base else None,
                baseline_launch_ms=base.baseline_launch_ms if base else None,
            )
        )
    return out


def baseline_problems(results: Sequence[Result], max_spread_pct: float) -> list[str]:
    """One line per model whose exclusive measurements spread more than max_spread_pct."""
    problems = []
    for r in sort_results(results):
        if r.mode != "exclusive" or r.baseline_spread_pct is None:
            continue
        if r.baseline_spread_pct <= max_spread_pct:
            continue
        if r.ratio_method == RATIO_INTERLEAVED:
            problems.append(
                f"model={r.model}: the mean of the {r.baseline_runs} exclusive windows differs "
                f"by {r.baseline_spread_pct:.1f}% between the thirds of the run (limit "
                f"{max_spread_pct:g}%); ratios divide by the mean over all, "
                f"{r.aggregate_it_s:.1f} it/s"
            )
        else:
            problems.append(
                f"model={r.model}: the {r.baseline_runs} exclusive measurements differ by "
                f"{r.baseline_spread_pct:.1f}% (limit {max_spread_pct:g}%); "
                f"ratios divide by their median {r.aggregate_it_s:.1f} it/s"
            )
    return problems


def _window_telemetry(
    telemetry: Sequence[TelemetrySample], samples: Sequence[WorkerSample]
) -> WindowTelemetry | None:
    starts = [s.window_start for s in samples if s.window_start is not None]
    ends = [s.window_end for s in samples if s.window_end is not None]
    if not telemetry or not starts or not ends:
        return None
    return summarize_window(telemetry, min(starts), max(ends))


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)


def _thirds(values: Sequence[float]) -> list[list[float]]:
    """Split values, in time order, into the beginning, middle and end of the run."""
    k, extra = divmod(len(values), 3)
    out, start = [], 0
    for i in range(3):
        end = start + k + (1 if i < extra else 0)
        out.append(list(values[start:end]))
        start = end
    return [part for part in out if part]


def _interleaved_rows(
    model: str, settings: Settings, run: InterleavedRun, meta: RunMeta
) -> list[Result]:
    """One row per case of `model` (and its exclusive row), ratios already in place.

    exclusive   aggregate_it_s is the mean over all exclusive windows; baseline_runs is
                their number, baseline_spread_pct the spread (max - min over the mean) of
                their means over the first, middle and last third of the run
    N > 1       aggregate_it_s is the mean over rounds of the window's total it/s, and
                ratio_vs_exclusive = aggregate / the baseline: both totals over the same
                minutes and cores. ratio_low is the INTERLEAVED_LOW_PERCENTILE-th percentile
                over rounds of (the window's total / that round's mean exclusive window)
    N = 1 (MPS) paired: each client window with the exclusive window right before it, on the
                same core (summarize_paired, the probe rule included)
    A model with any out-of-memory sample gets status 'oom' in every row.
    """
    windows = [w for w in run.windows if w.index in run.samples.get(model, {})]
    if len(windows) != len(run.windows):
        raise BenchmarkError(f"{model}: samples missing for some of the {len(run.windows)} windows")
    samples = run.samples[model]
    for w in windows:
        if len(samples[w.index]) != w.clients:
            raise BenchmarkError(
                f"{model}: window {w.index} ({w.mode} N={w.clients}) has "
                f"{len(samples[w.index])} worker samples, expected {w.clients}"
            )
    common = {"date": meta.date, "gpu": meta.gpu, "driver": meta.driver, "torch": meta.torch}
    cases = [("exclusive", 1), *interleaved_cases(settings)]
    if any(s.status == STATUS_OOM for w in windows for s in samples[w.index]):
        return [
            oom_result(
                **common,
                model=model,
                mode=mode,
                clients=n,
                repetitions=settings.rounds,
                duration_s=settings.window_s,
                ratio_method=RATIO_INTERLEAVED,
            )
            for mode, n in cases
        ]
    bad = [s for w in windows for s in samples[w.index] if s.status != STATUS_OK]
    if bad:
        raise BenchmarkError(f"{model}: unexpected sample status {bad[0]}")

    def total(w: Window) -> float:
        return math.fsum(s.it_s for s in samples[w.index])

    exclusive = [w for w in windows if w.mode == "exclusive"]
    if not exclusive or any(total(w) <= 0 for w in exclusive):
        raise BenchmarkError(f"{model}: an exclusive window ran no iterations")
    baseline = _mean([total(w) for w in exclusive])
    thirds = [_mean(part) for part in _thirds([total(w) for w in exclusive])]
    spread = 100.0 * (max(thirds) - min(thirds)) / baseline if len(thirds) > 1 else None
    round_baseline = {
        r: _mean([total(w) for w in exclusive if w.round == r])
        for r in dict.fromkeys(w.round for w in exclusive)
    }

    half = settings.rounds // 2  # rounds before it are the first half of the run

    def halves_pct(ratio_of: Callable[[Callable[[Window], bool]], float], ratio: float) -> float:
        first = ratio_of(lambda w: w.round < half)
        second = ratio_of(lambda w: w.round >= half)
        return 100.0 * abs(first - second) / ratio

    def row(mode: str, n: int, members: Sequence[Window]) -> Result:
        totals = [total(w) for w in members]
        aggregate = _mean(totals)

        def ratio_of(keep: Callable[[Window], bool]) -> float:
            part = [total(w) for w in members if keep(w)]
            part_baseline = [total(w) for w in exclusive if keep(w)]
            return _mean(part) / _mean(part_baseline)

        per_round = [total(w) / round_baseline[w.round] for w in members]
        tel = [_window_telemetry(run.telemetry, samples[w.index]) for w in members]
        clocks = [t.sm_clock_mhz for t in tel if t is not None and t.sm_clock_mhz is not None]
        temps = [t.temp_c for t in tel if t is not None and t.temp_c is not None]
        worker = [s for w in members for s in samples[w.index]]
        mems = [s.mem_reserved_mib for s in worker if s.mem_reserved_mib is not None]
        rss = [s.host_rss_mib for s in worker if s.host_rss_mib is not None]
        return Result(
            **common,
            model=model,
            mode=mode,
            clients=n,
            repetitions=len(members),
            duration_s=settings.window_s,
            aggregate_it_s=aggregate,
            aggregate_min_it_s=min(totals),
            aggregate_max_it_s=max(totals),
            per_process_it_s=aggregate / n,
            ratio_vs_exclusive=aggregate / baseline,
            ratio_low=percentile(per_round, INTERLEAVED_LOW_PERCENTILE),
            baseline_it_s=baseline,
            baseline_runs=len(exclusive),
            baseline_spread_pct=spread,
            p50_ms=statistics.median(
                statistics.median(s.p50_ms for s in samples[w.index]) for w in members
            ),
            p99_ms=statistics.median(
                statistics.median(s.p99_ms for s in samples[w.index]) for w in members
            ),
            mem_per_process_mib=max(mems) if mems else None,
            host_rss_mib=max(rss) if rss else None,
            sm_clock_mhz=statistics.median(clocks) if clocks else None,
            gpu_temp_c=max(temps) if temps else None,
            status=STATUS_OK,
            ratio_method=RATIO_INTERLEAVED,
            ratio_halves_pct=None
            if mode == "exclusive"
            else halves_pct(ratio_of, aggregate / baseline),
        )

    by_index = {w.index: w for w in windows}
    launches = [samples[w.index][0].launch_ms for w in exclusive]
    out = [
        dataclasses.replace(
            row("exclusive", 1, exclusive),
            baseline_launch_ms=statistics.median(launches) if None not in launches else None,
        )
    ]
    for mode, n in cases[1:]:
        members = [w for w in windows if w.mode == mode and w.clients == n]
        if n == 1 and mode in PAIRED_MODES:
            if any(by_index[w.index - 1].mode != "exclusive" for w in members):
                raise BenchmarkError(f"{model}/{mode}: a client window without its exclusive one")
            pairs = interleaved_pairs(model, run, mode)
            tel = [
                _window_telemetry(run.telemetry, samples[w.index]) or WindowTelemetry(0)
                for w in members
            ]
            paired = summarize_paired(
                model, mode, pairs, meta, settings.window_s, settings.pair_probe_tolerance, tel
            )

            def paired_ratio_of(keep: Callable[[Window], bool], pairs=pairs, members=members):
                part = [p for p, w in zip(pairs, members, strict=True) if keep(w)]
                return paired_ratio(pair_ratios(part, settings.pair_probe_tolerance))[0]

            out.append(
                dataclasses.replace(
                    paired,
                    baseline_it_s=baseline,
                    baseline_runs=len(exclusive),
                    baseline_spread_pct=spread,
                    ratio_halves_pct=halves_pct(paired_ratio_of, paired.ratio_vs_exclusive),
                )
            )
        else:
            out.append(row(mode, n, members))
    return out


def interleaved_pairs(model: str, run: InterleavedRun, mode: str) -> list[list[WorkerSample]]:
    """The (exclusive, client) window pairs of a one-client case: each client window with the
    exclusive window right before it, as pair_ratios wants them (ranks 0 and 1)."""
    samples = run.samples[model]
    return [
        [
            dataclasses.replace(samples[w.index - 1][0], rank=PAIR_EXCLUSIVE_RANK),
            dataclasses.replace(samples[w.index][0], rank=PAIR_SHARED_RANK),
        ]
        for w in run.windows
        if w.mode == mode and w.clients == 1
    ]


def describe_interleaved_baseline(model: str, run: InterleavedRun) -> str:
    """Log line: the exclusive windows' it/s by third of the run and by CPU core, and how long
    launching one iteration took (the core's speed during the window)."""
    samples = run.samples[model]
    exclusive = [samples[w.index][0] for w in run.windows if w.mode == "exclusive"]
    if any(s.status != STATUS_OK for s in exclusive):
        return "baseline: not measured (out of memory)"
    thirds = ", ".join(f"{_mean([s.it_s for s in part]):.0f}" for part in _thirds(exclusive))
    launches = sorted(s.launch_ms for s in exclusive if s.launch_ms is not None)
    text = f"baseline: {len(exclusive)} windows, mean it/s per third of the run {thirds}"
    if launches:
        text += (
            f"; launch ms/iteration min {launches[0]:.3f} median "
            f"{statistics.median(launches):.3f} max {launches[-1]:.3f}"
        )
    return text


def halves_problems(results: Sequence[Result], max_pct: float) -> list[str]:
    """One line per interleaved row whose two halves of the run disagree by more than
    max_pct: the ratio would not repeat in a run of its own."""
    return [
        f"model={r.model} mode={r.mode} N={r.clients}: the first and second half of the run "
        f"give ratios {r.ratio_halves_pct:.1f}% apart (limit {max_pct:g}%); x"
        f"{r.ratio_vs_exclusive:.3f} over the whole run"
        for r in sort_results(results)
        if r.ratio_halves_pct is not None and r.ratio_halves_pct > max_pct
    ]


# NVML's clocks event ("throttle") reason bits (nvml.h, nvmlClocksEventReason*).
CLOCK_REASONS = (
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal"),
    (0x40, "hw_thermal"),
    (0x80, "hw_power_brake"),
    (0x100, "display_clocks"),
)


def clock_reason_names(mask: int) -> tuple[str, ...]:
    return tuple(name for bit, name in CLOCK_REASONS if mask & bit)


def summarize_window(
    samples: Sequence[TelemetrySample], start: float, end: float
) -> WindowTelemetry:
    """Reduce the telemetry samples taken between start and end (time.monotonic())."""
    inside = [x for x in samples if start <= x.t <= end]

    def values(attr: str) -> list[float]:
        return [v for x in inside if (v := getattr(x, attr)) is not None]

    def median(attr: str) -> float | None:
        found = values(attr)
        return statistics.median(found) if found else None

    mask = 0
    for x in inside:
        mask |= x.clock_reasons or 0
    busy = steal = None
    jiffies = [x for x in inside if x.cpu_total_jiffies is not None]
    if len(jiffies) >= 2 and jiffies[-1].cpu_total_jiffies > jiffies[0].cpu_total_jiffies:
        first, last = jiffies[0], jiffies[-1]
        total = last.cpu_total_jiffies - first.cpu_total_jiffies
        busy = 100.0 * (last.cpu_busy_jiffies - first.cpu_busy_jiffies) / total
        steal = 100.0 * (last.cpu_steal_jiffies - first.cpu_steal_jiffies) / total
    clocks = values("sm_clock_mhz")
    temps = values("temp_c")
    return WindowTelemetry(
        samples=len(inside),
        sm_clock_mhz=median("sm_clock_mhz"),
        sm_clock_min_mhz=min(clocks) if clocks else None,
        mem_clock_mhz=median("mem_clock_mhz"),
        temp_c=max(temps) if temps else None,
        power_w=median("power_w"),
        gpu_util_pct=median("gpu_util_pct"),
        clock_reasons=clock_reason_names(mask),
        cpu_busy_pct=busy,
        cpu_steal_pct=steal,
    )


def raise_on_oom(results: Sequence[Result]) -> None:
    cases = oom_cases(results)
    if cases:
        raise OutOfMemoryFailure(cases)


def host_memory_drop_mib(telemetry: Sequence[TelemetrySample]) -> float | None:
    """How far the host's MemAvailable fell below its value when the case began: what the
    case's processes took together, shared pages counted once."""
    available = [x.mem_available_mib for x in telemetry if x.mem_available_mib is not None]
    if len(available) < 2:
        return None
    return available[0] - min(available)


def _describe(r: Result) -> str:
    if r.status != STATUS_OK:
        return f"{r.model:<12} {r.status.upper()}"
    extra = ""
    if r.sm_clock_mhz is not None:
        extra += f"  SM {r.sm_clock_mhz:5.0f} MHz"
    if r.gpu_temp_c is not None:
        extra += f"  {r.gpu_temp_c:3.0f} C"
    if r.host_rss_mib is not None:
        extra += f"  host RSS {r.host_rss_mib:6.0f} MiB"
    return (
        f"{r.model:<12} aggregate {r.aggregate_it_s:10.1f} it/s  per-process "
        f"{r.per_process_it_s:9.1f}  p50 {r.p50_ms:8.3f} ms  p99 {r.p99_ms:8.3f} ms  "
        f"mem {r.mem_per_process_mib:8.0f} MiB{extra}"
    )
