"""GPU sharing benchmark: one GPU, N concurrent inference processes, three ways of sharing.

Modes
  exclusive     one plain process (N=1): the baseline every other row is compared with.
  time-slicing  N plain processes, each with its own CUDA context. This is what N pods get
                from the NVIDIA device plugin's timeSlicing strategy: the GPU switches between
                the contexts in time slices. (N=1 would be the exclusive case, so it is skipped.)
  mps           N processes that are clients of one CUDA MPS server. The benchmark starts its
                own MPS control daemon (temp pipe/log directories), points the workers at it
                and quits it afterwards; no client limits are set.
  mps-limited   like mps, but the daemon is given the per-client defaults that the device
                plugin's MPS strategy sets for `replicas: R` (--mps-replicas): active thread
                percentage 100/R and a pinned device memory limit of total/R.

Method (--method)
  interleaved (default): every process group stays up for the whole run (plain CUDA contexts
  for exclusive and time-slicing, the clients of one MPS daemon for mps or mps-limited), rank
  i of each group pinned to the same CPU core, and all cases take turns in short windows,
  round after round, each right after an exclusive window on the core of its first worker
  (interleaved_schedule). Ratios divide a case's mean over its rounds by the mean of all
  exclusive windows, so both cover the same minutes and cores; one MPS client is paired with
  the exclusive window before it (summarize_interleaved). A lone process of a launch-bound
  model runs at its host's speed while shared GPU-bound ones do not, so for those models
  every window is projected to a reference host launching one iteration in
  --reference-launch-ms (at_reference) and the ratios are stated there; `ratio_host` keeps
  the ratio as measured. The run fails (exit 4) when a ratio from the first half of the
  rounds and one from the second differ by more than --max-ratio-halves percent.
  `summarize` recomputes the CSV from --raw-out.
  sweep: each (mode, N) in turn with its own processes; the exclusive case before the first
  sweep and after every one, ratios against their median, exit 4 when those measurements
  spread by more than --max-baseline-spread percent; one MPS client in windows paired with an
  exclusive process on its core. The in-cluster Job uses it.
  Either way the GPU's SM clock, temperature and power, and the host's CPU load and steal
  time, are sampled during every timed window, and each worker reports its peak host memory
  (RSS), CPU probes and, interleaved, its host launch time per iteration.

Subcommands
  run        run the benchmark and write a CSV (one row per model, mode and N)
  summarize  recompute an interleaved run's CSV from its --raw-out JSON (.json or .json.gz)
  merge      merge CSVs from several runs (recomputes median-baseline ratios)
  compare    two runs' ratios side by side (exit 4 when any differ by more than --max-diff)
  plot       CSV -> PNG
  table      CSV -> Markdown table

Everything except the worker code is plain Python: torch is imported only inside the worker
processes, so the parsing, aggregation, CSV, plotting and loading code can be imported and
tested without torch or a GPU. A capacity planner can use `load_results()`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import datetime as dt
import json
import math
import multiprocessing
import os
import queue
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

MODELS = ("mlp", "transformer", "memory")
MODES = ("exclusive", "time-slicing", "mps", "mps-limited")
DEFAULT_MODES = ("exclusive", "time-slicing", "mps")
DEFAULT_CLIENTS = (1, 2, 4, 8, 10)
DEFAULT_DURATION_S = 3.0
DEFAULT_WARMUP_S = 1.0
DEFAULT_REPETITIONS = 3
# 4 GiB of weights per process: far beyond the GPU's caches (bandwidth-bound, as intended),
# and small enough that the interleaved method's two groups of 10 processes fit on one H200.
DEFAULT_MEMORY_GIB = 4.0
CUDA_CONTEXT_GIB = 0.75  # device memory of one process's CUDA context (~690 MiB measured)
DEFAULT_MPS_REPLICAS = 10
DEFAULT_CASE_TIMEOUT_S = 900.0
DEFAULT_TELEMETRY_INTERVAL_S = 0.2
# A baseline whose measurements differ by more than this (max - min over median, percent)
# cannot carry ratios: the 2026-11-28 run divided by a baseline 1.7x below a re-run's.
DEFAULT_MAX_BASELINE_SPREAD_PCT = 10.0
# Paired windows for one MPS client against one exclusive process (see paired_ratio).
DEFAULT_PAIRS = 16
DEFAULT_PAIR_WINDOW_S = 0.5
PAIR_WARMUP_S = 0.1  # the active process's own warm-up at the start of each window
# A pair counts only if the CPU probes around both of its windows are within this fraction of
# each other (max / min - 1): the core was in the same state for both. The two states seen on
# the H200 VM (about 2.5 and 4.3 ms) are 1.7x apart.
DEFAULT_PAIR_PROBE_TOLERANCE = 0.2
PAIR_MIN_KEPT = 3  # fewer agreeing pairs than this: the ratio falls back to all pairs
PAIRED_LOW_PERCENTILE = 10.0  # ratio_low of a paired row: this percentile of the pair ratios
PAIRED_MODES = ("mps", "mps-limited")
RATIO_BASELINE = "median-baseline"
RATIO_PAIRED = "paired"
RATIO_INTERLEAVED = "interleaved"
# How cases are scheduled. `interleaved` (the default) keeps one process group per way of
# sharing alive and takes turns in short windows, round after round, so every case and its
# baseline see the same minutes of the host's CPU (see interleaved_schedule); `sweep` runs
# each (mode, N) as its own block of repetitions, the baseline before and after each sweep.
METHOD_INTERLEAVED = "interleaved"
METHOD_SWEEP = "sweep"
METHODS = (METHOD_INTERLEAVED, METHOD_SWEEP)
DEFAULT_ROUNDS = 12
DEFAULT_WINDOW_S = 0.4
INTERLEAVED_LOW_PERCENTILE = 10.0  # ratio_low of an interleaved row, over the rounds
# Reference host speed (interleaved runs). A lone `mlp` or `transformer` process is its host's
# kernel-launch time plus a few tens of microseconds, while N >= 4 processes sharing the GPU
# are GPU-bound; so a ratio of the two follows the host's CPU speed, which on the H200 test VM
# moved by up to 1.7x between runs. The published ratios are therefore stated at a fixed host
# speed: each worker's window is projected to the time this host would take to launch one
# iteration (at_reference), and the ratio as measured stays in `ratio_host`. These are the
# lone process's launch times on that VM's cores in their fast state (median over the
# exclusive windows with a CPU probe under 3.6 ms in the six reduced runs of 2026-11-28:
# mlp 0.112-0.135 ms, transformer 0.767-0.956 ms), rounded; `--reference-launch-ms` sets
# others, `none` keeps the ratios as measured.
REFERENCE_LAUNCH_MS = {"mlp": 0.12, "transformer": 0.80}
REFERENCE_NONE = "none"
# A model is projected only where its lone process is launch-bound in the run: it waits on the
# GPU, after its last launch, for at most this share of its launch time (median over the
# exclusive windows; mlp 0.08, transformer 0.03, the bandwidth-bound memory model 1.1).
LAUNCH_BOUND_SHARE = 0.25
# How each case follows the host is measured, not assumed: the slope of its workers'
# iteration time over their launch time across the run's windows (host_slope; the VM's cores
# flip speed often enough to spread launch times by 12-29 % within every case). A slope whose
# standard error is above this cannot carry a projection: the model's ratios stay as measured.
MAX_SLOPE_ERROR = 0.25
# A case whose iteration follows the host by at most this slope is held by the GPU; at the
# largest N it gives the GPU's capacity for that way of sharing (gpu_capacity).
GPU_HELD_SLOPE = 0.5
# The process group a mode's windows run in: plain CUDA contexts serve both the exclusive
# baseline (one of them alone) and time-slicing (several at once).
GROUP_OF_MODE = {
    "exclusive": "plain",
    "time-slicing": "plain",
    "mps": "mps",
    "mps-limited": "mps-limited",
}

STATUS_OK = "ok"
STATUS_OOM = "oom"

CSV_COLUMNS = (
    "date",
    "gpu",
    "driver",
    "torch",
    "model",
    "mode",
    "clients",
    "repetitions",
    "duration_s",
    "aggregate_it_s",
    "aggregate_min_it_s",
    "aggregate_max_it_s",
    "per_process_it_s",
    "ratio_vs_exclusive",
    "ratio_low",
    "baseline_it_s",
    "baseline_runs",
    "baseline_spread_pct",
    "p50_ms",
    "p99_ms",
    "mem_per_process_mib",
    "host_rss_mib",
    "sm_clock_mhz",
    "gpu_temp_c",
    "status",
    "ratio_method",
    "pairs_kept",
    "pairs_excluded",
    "ratio_halves_pct",
    "baseline_launch_ms",
    "ratio_host",
    "reference_launch_ms",
    "reference_it_s",
)
# Files written before single clients were paired with an exclusive process (no ratio_method:
# every ratio divides by the median baseline).
PRE_PAIRING_CSV_COLUMNS = CSV_COLUMNS[: CSV_COLUMNS.index("ratio_method")]
PRE_INTERLEAVED_CSV_COLUMNS = CSV_COLUMNS[: CSV_COLUMNS.index("ratio_halves_pct")]
# Interleaved files written before ratios were stated at a reference host speed.
PRE_REFERENCE_CSV_COLUMNS = CSV_COLUMNS[: CSV_COLUMNS.index("ratio_host")]
# Files written before the baseline was measured more than once; still readable (the new
# columns are then empty), so a CSV from an older in-cluster Job can still be planned with.
LEGACY_CSV_COLUMNS = (
    "date",
    "gpu",
    "driver",
    "torch",
    "model",
    "mode",
    "clients",
    "repetitions",
    "duration_s",
    "aggregate_it_s",
    "per_process_it_s",
    "ratio_vs_exclusive",
    "p50_ms",
    "p99_ms",
    "mem_per_process_mib",
    "status",
)

# Model shapes (fp16, inference). Kept here so the README and the code cannot disagree.
MLP_WIDTH = 1024
MLP_LAYERS = 4
MLP_BATCH = 8
TRANSFORMER_D_MODEL = 1024
TRANSFORMER_HEADS = 16
TRANSFORMER_FFN = 4096
TRANSFORMER_LAYERS = 4
TRANSFORMER_SEQ = 128
TRANSFORMER_BATCH = 8
MEMORY_DIM = 8192  # each weight matrix is MEMORY_DIM x MEMORY_DIM fp16 = 128 MiB
MEMORY_BATCH = 8

MPS_CONTROL = "nvidia-cuda-mps-control"
MIB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """The benchmark could not produce trustworthy numbers."""

    partial_results: list[Result]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.partial_results = []


class WorkerCrash(BenchmarkError):
    """A worker process failed with something other than running out of GPU memory."""


class OutOfMemoryFailure(BenchmarkError):
    """One or more (model, mode, N) cases ran out of GPU memory."""

    def __init__(self, cases: Sequence[tuple[str, str, int]]) -> None:
        self.cases = list(cases)
        super().__init__(oom_message(self.cases))


# --------------------------------------------------------------------------------------------
# Data types


@dataclass(frozen=True)
class WorkerSample:
    """What one worker measured in one repetition of one model."""

    rank: int
    iterations: int
    elapsed_s: float
    p50_ms: float | None
    p99_ms: float | None
    mem_allocated_mib: float | None
    mem_reserved_mib: float | None
    device_used_mib: float | None = None  # total - free on the device, all processes
    status: str = STATUS_OK
    error: str = ""
    # time.monotonic() at the start and end of the timed window: the clock is system-wide on
    # Linux, so the parent can match its GPU telemetry samples to the window.
    window_start: float | None = None
    window_end: float | None = None
    host_rss_mib: float | None = None  # peak resident set of the process so far (VmHWM)
    host_pss_mib: float | None = None  # proportional set: shared pages split between sharers
    cpu: int | None = None  # the CPU the worker last ran on, after the window
    involuntary_switches: int | None = None  # preemptions during the window
    cpu_probe_ms: float | None = None  # a fixed pure-Python loop just before the window
    cpu_probe_after_ms: float | None = None  # the same loop just after it (paired windows)
    # Mean host time per iteration spent launching the step (until step() returned, before
    # synchronize): how fast the core was *during* the window, where the probes are snapshots.
    launch_ms: float | None = None

    @property
    def it_s(self) -> float:
        return self.iterations / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class TelemetrySample:
    """One reading of the GPU and the host, taken by the parent process during a case."""

    t: float  # time.monotonic()
    sm_clock_mhz: float | None = None
    mem_clock_mhz: float | None = None
    temp_c: float | None = None
    power_w: float | None = None
    gpu_util_pct: float | None = None
    clock_reasons: int | None = None  # NVML clocks event reasons, a bit mask
    cpu_busy_jiffies: int | None = None  # /proc/stat, all CPUs, cumulative
    cpu_steal_jiffies: int | None = None
    cpu_total_jiffies: int | None = None
    mem_available_mib: float | None = None


@dataclass(frozen=True)
class WindowTelemetry:
    """The telemetry samples that fell inside one timed window, reduced."""

    samples: int
    sm_clock_mhz: float | None = None  # median
    sm_clock_min_mhz: float | None = None
    mem_clock_mhz: float | None = None  # median
    temp_c: float | None = None  # highest
    power_w: float | None = None  # median
    gpu_util_pct: float | None = None  # median
    clock_reasons: tuple[str, ...] = ()  # every reason any sample gave
    cpu_busy_pct: float | None = None  # of all CPUs, over the window
    cpu_steal_pct: float | None = None  # time the hypervisor gave the CPUs to someone else


@dataclass(frozen=True)
class CaseRun:
    """Everything the workers of one (mode, N) reported: model -> repetition -> worker."""

    samples: dict[str, list[list[WorkerSample]]]
    torch_version: str = ""
    gpu: str = ""
    telemetry: tuple[TelemetrySample, ...] = ()  # the whole case, in time order


@dataclass(frozen=True)
class RunMeta:
    date: str
    gpu: str
    driver: str
    torch: str


@dataclass(frozen=True)
class Result:
    """One CSV row. Numbers are None where the case failed (status 'oom') or, for the columns
    added with the repeated baseline, where a legacy file did not have them."""

    date: str
    gpu: str
    driver: str
    torch: str
    model: str
    mode: str
    clients: int
    repetitions: int
    duration_s: float
    aggregate_it_s: float | None
    per_process_it_s: float | None
    ratio_vs_exclusive: float | None
    p50_ms: float | None
    p99_ms: float | None
    mem_per_process_mib: float | None
    status: str
    aggregate_min_it_s: float | None = None  # slowest repetition
    aggregate_max_it_s: float | None = None  # fastest repetition
    ratio_low: float | None = None  # slowest repetition / fastest baseline repetition
    baseline_it_s: float | None = None  # what ratio_vs_exclusive divides by
    baseline_runs: int | None = None  # how many times the exclusive case was measured
    baseline_spread_pct: float | None = None  # (max - min) / median of those measurements
    host_rss_mib: float | None = None  # largest peak RSS of any worker
    sm_clock_mhz: float | None = None  # median over windows of each window's median
    gpu_temp_c: float | None = None  # highest in any window
    # RATIO_BASELINE: ratios divide by the exclusive row; RATIO_PAIRED: they come from windows
    # paired with an exclusive process on the same core (paired_ratio), and stay as they are.
    ratio_method: str = RATIO_BASELINE
    pairs_kept: int | None = None  # paired rows: pairs whose CPU probes agreed
    pairs_excluded: int | None = None  # paired rows: pairs left out because they did not
    # Interleaved rows: how far the ratio from the first half of the rounds and the one from
    # the second half differ, over the ratio (percent): two shorter runs, back to back.
    ratio_halves_pct: float | None = None
    # Interleaved runs: the median host time to launch one iteration in the exclusive windows,
    # i.e. how fast the host's cores were for the baseline. The launch-bound models' exclusive
    # throughput follows it, so runs can only be compared at similar values.
    baseline_launch_ms: float | None = None
    # Interleaved rows: the ratio at the host's speed during the run (aggregate over the
    # baseline as measured). Where a reference applies, ratio_vs_exclusive, ratio_low and
    # ratio_halves_pct are instead at reference_launch_ms, the host time to launch one
    # iteration that every window was projected to (at_reference), and reference_it_s is
    # the row's throughput so projected.
    ratio_host: float | None = None
    reference_launch_ms: float | None = None
    reference_it_s: float | None = None

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.model, self.mode, self.clients)


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]
    modes: tuple[str, ...]
    clients: tuple[int, ...]
    duration_s: float
    warmup_s: float
    repetitions: int
    memory_gib: float
    mps_replicas: int
    case_timeout_s: float
    telemetry_interval_s: float = DEFAULT_TELEMETRY_INTERVAL_S
    # One MPS client (N = 1) is measured in windows alternating with an exclusive process on
    # the same CPU core instead of against the run's median baseline (see paired_ratio).
    pairing: bool = False
    pairs: int = DEFAULT_PAIRS
    pair_window_s: float = DEFAULT_PAIR_WINDOW_S
    pair_probe_tolerance: float = DEFAULT_PAIR_PROBE_TOLERANCE
    method: str = METHOD_INTERLEAVED
    rounds: int = DEFAULT_ROUNDS
    window_s: float = DEFAULT_WINDOW_S


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    memory_total_mib: int | None


Runner = Callable[[str, int, Settings], CaseRun]


# --------------------------------------------------------------------------------------------
# Argument parsing


def _csv_list(text: str) -> list[str]:
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(not item for item in items):
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {text!r}")
    return items


def parse_clients(text: str) -> tuple[int, ...]:
    """'1,2,4' -> (1, 2, 4): positive, unique, returned sorted."""
    values = []
    for item in _csv_list(text):
        try:
            value = int(item)
        except ValueError:
            raise argparse.ArgumentTypeError(f"client count {item!r} is not an integer") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"client count must be >= 1, got {value}")
        values.append(value)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"duplicate client counts in {text!r}")
    return tuple(sorted(values))


def _choices(allowed: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        items = _csv_list(text)
        unknown = [item for item in items if item not in allowed]
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown value(s) {', '.join(unknown)}; choose from {', '.join(allowed)}"
            )
        if len(set(items)) != len(items):
            raise argparse.ArgumentTypeError(f"duplicate values in {text!r}")
        return tuple(item for item in allowed if item in items)  # canonical order

    return parse


def _number(kind: type, minimum: float, inclusive: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not finite")
        if value < minimum or (value == minimum and not inclusive):
            op = ">=" if inclusive else ">"
            raise argparse.ArgumentTypeError(f"must be {op} {minimum}, got {value}")
        return value

    return parse


def parse_reference(text: str) -> dict[str, float]:
    """--reference-launch-ms: `model=ms,...` (models without one keep measured ratios), or
    `none` for every ratio as measured."""
    if text.strip() == REFERENCE_NONE:
        return {}
    out: dict[str, float] = {}
    for item in _csv_list(text):
        model, sep, value = item.partition("=")
        model = model.strip()
        if not sep or model not in MODELS:
            raise argparse.ArgumentTypeError(
                f"{item!r}: want MODEL=MS with MODEL one of {', '.join(MODELS)}, or "
                f"{REFERENCE_NONE!r}"
            )
        try:
            ms = float(value)
        except ValueError:
            ms = float("nan")
        if not ms > 0 or math.isinf(ms):
            raise argparse.ArgumentTypeError(f"{item!r}: the launch time must be a number > 0")
        out[model] = ms
    return out


def _add_reference_argument(parser: argparse.ArgumentParser) -> None:
    default = ",".join(f"{m}={ms:g}" for m, ms in REFERENCE_LAUNCH_MS.items())
    parser.add_argument(
        "--reference-launch-ms",
        dest="reference",
        type=parse_reference,
        default=dict(REFERENCE_LAUNCH_MS),
        help="interleaved: state the ratios of launch-bound models at a host that launches "
        f"one iteration in this many ms, MODEL=MS,... (default: {default}); "
        f"{REFERENCE_NONE!r}: as measured",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench.py",
        description="Benchmark NVIDIA GPU sharing (exclusive, time-slicing, MPS) with N "
        "concurrent inference processes on one GPU.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the benchmark on the local GPU and write a CSV")
    run.add_argument(
        "--models",
        type=_choices(MODELS),
        default=MODELS,
        help=f"comma-separated subset of {','.join(MODELS)} (default: all)",
    )
    run.add_argument(
        "--modes",
        type=_choices(MODES),
        default=DEFAULT_MODES,
        help=f"comma-separated subset of {','.join(MODES)} (default: {','.join(DEFAULT_MODES)})",
    )
    run.add_argument(
        "--clients",
        type=parse_clients,
        default=DEFAULT_CLIENTS,
        help="comma-separated process counts N (default: 1,2,4,8,10); exclusive always uses "
        "N=1, time-slicing skips N=1",
    )
    run.add_argument(
        "--duration",
        dest="duration_s",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_DURATION_S,
        help="timed seconds per repetition (default: %(default)s)",
    )
    run.add_argument(
        "--warmup",
        dest="warmup_s",
        type=_number(float, 0.0, inclusive=True),
        default=DEFAULT_WARMUP_S,
        help="warm-up seconds before each repetition (default: %(default)s)",
    )
    run.add_argument(
        "--repetitions",
        type=_number(int, 1, inclusive=True),
        default=DEFAULT_REPETITIONS,
        help="repetitions per case; the median is reported (default: %(default)s)",
    )
    run.add_argument(
        "--memory-gib",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_MEMORY_GIB,
        help="weights held by each process in the 'memory' model, GiB (default: %(default)s)",
    )
    run.add_argument(
        "--mps-replicas",
        type=_number(int, 1, inclusive=True),
        default=DEFAULT_MPS_REPLICAS,
        help="replicas the device plugin would advertise, for mode mps-limited: thread "
        "percentage 100/R, pinned memory total/R (default: %(default)s)",
    )
    run.add_argument(
        "--case-timeout",
        dest="case_timeout_s",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_CASE_TIMEOUT_S,
        help="seconds one (mode, N) case may take before it is declared hung",
    )
    run.add_argument(
        "--telemetry-interval",
        dest="telemetry_interval_s",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_TELEMETRY_INTERVAL_S,
        help="seconds between GPU clock/temperature samples (default: %(default)s)",
    )
    run.add_argument(
        "--max-baseline-spread",
        dest="max_baseline_spread_pct",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_MAX_BASELINE_SPREAD_PCT,
        help="percent by which the exclusive measurements of one model may differ "
        "(max - min over median) before the run fails (sweep; interleaved: the means of the "
        "run's thirds, reported only) (default: %(default)s)",
    )
    run.add_argument(
        "--max-ratio-halves",
        dest="max_ratio_halves_pct",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_MAX_BASELINE_SPREAD_PCT,
        help="interleaved: percent by which a ratio from the first half of the rounds may "
        "differ from the one from the second half before the run fails (default: %(default)s)",
    )
    run.add_argument(
        "--accept-unstable-baseline",
        action="store_true",
        help="report an unstable baseline (sweep) or ratios (interleaved) but exit 0",
    )
    run.add_argument(
        "--no-pairing",
        dest="pairing",
        action="store_false",
        help="measure one MPS client like the other cases, against the median baseline, "
        "instead of in windows paired with an exclusive process on the same CPU core",
    )
    run.add_argument(
        "--pairs",
        type=_number(int, 1, inclusive=True),
        default=DEFAULT_PAIRS,
        help="paired windows (exclusive, MPS client) per model for N=1 (default: %(default)s)",
    )
    run.add_argument(
        "--pair-window",
        dest="pair_window_s",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_PAIR_WINDOW_S,
        help="timed seconds of each paired window (default: %(default)s)",
    )
    run.add_argument(
        "--pair-probe-tolerance",
        dest="pair_probe_tolerance",
        type=_number(float, 0.0, inclusive=True),
        default=DEFAULT_PAIR_PROBE_TOLERANCE,
        help="a pair counts only if its four CPU probes are within this fraction of each "
        "other (max / min - 1; default: %(default)s)",
    )
    run.add_argument(
        "--method",
        choices=METHODS,
        default=METHOD_INTERLEAVED,
        help="interleaved (default): all process groups stay up and every case takes turns "
        "with the exclusive baseline in short windows, round after round; sweep: each (mode, "
        "N) in turn, repetitions of --duration, the baseline before and after each sweep",
    )
    run.add_argument(
        "--rounds",
        type=_number(int, 2, inclusive=True),
        default=DEFAULT_ROUNDS,
        help="interleaved: rounds through every case (default: %(default)s)",
    )
    run.add_argument(
        "--window",
        dest="window_s",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_WINDOW_S,
        help="interleaved: timed seconds of each window (default: %(default)s)",
    )
    _add_reference_argument(run)
    run.add_argument("--out", type=Path, default=Path("results.csv"), help="CSV to write")
    run.add_argument("--raw-out", type=Path, help="also write every worker's samples as JSON")
    run.add_argument("--plot", type=Path, help="also write the PNG plot here")

    merge = sub.add_parser("merge", help="merge CSVs of several runs")
    merge.add_argument("inputs", type=Path, nargs="+")
    merge.add_argument("--out", type=Path, required=True)

    plot = sub.add_parser("plot", help="plot a results CSV to a PNG")
    plot.add_argument("csv", type=Path)
    plot.add_argument("--out", type=Path, required=True)

    summarize = sub.add_parser(
        "summarize", help="recompute the CSV of an interleaved run from its --raw-out JSON"
    )
    summarize.add_argument("raw", type=Path, help="the --raw-out JSON (.json or .json.gz)")
    summarize.add_argument("--out", type=Path, required=True)
    _add_reference_argument(summarize)

    compare = sub.add_parser(
        "compare", help="two runs' ratios side by side; exit 4 if any differ by more than allowed"
    )
    compare.add_argument("first", type=Path)
    compare.add_argument("second", type=Path)
    compare.add_argument(
        "--max-diff",
        dest="max_diff_pct",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_MAX_BASELINE_SPREAD_PCT,
        help="percent by which a ratio may differ between the runs (default: %(default)s)",
    )

    table = sub.add_parser("table", help="print a results CSV as a Markdown table")
    table.add_argument("csv", type=Path)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (
        args.command == "run"
        and args.method == METHOD_INTERLEAVED
        and {"mps", "mps-limited"} <= set(args.modes)
    ):
        parser.error(
            "--method interleaved runs one MPS daemon, with or without the device plugin's "
            "limits: measure mps and mps-limited in separate runs (or use --method sweep)"
        )
    if args.command == "run" and "mps-limited" in args.modes:
        too_many = [n for n in args.clients if n > args.mps_replicas]
        if too_many:
            parser.error(
                f"mode mps-limited: N={too_many} exceed --mps-replicas {args.mps_replicas}; "
                "the device plugin would never place more pods than replicas on one GPU"
            )
    return args


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        models=tuple(args.models),
        modes=tuple(args.modes),
        clients=tuple(args.clients),
        duration_s=float(args.duration_s),
        warmup_s=float(args.warmup_s),
        repetitions=int(args.repetitions),
        memory_gib=float(args.memory_gib),
        mps_replicas=int(args.mps_replicas),
        case_timeout_s=float(args.case_timeout_s),
        telemetry_interval_s=float(args.telemetry_interval_s),
        pairing=bool(args.pairing),
        pairs=int(args.pairs),
        pair_window_s=float(args.pair_window_s),
        pair_probe_tolerance=float(args.pair_probe_tolerance),
        method=str(args.method),
        rounds=int(args.rounds),
        window_s=float(args.window_s),
    )


def is_paired_case(mode: str, clients: int, settings: Settings) -> bool:
    """Whether (mode, N) is measured in paired windows: one MPS client, pairing on."""
    return settings.pairing and clients == 1 and mode in PAIRED_MODES


def clients_for_mode(mode: str, clients: Sequence[int]) -> list[int]:
    """The N values a mode is run with."""
    if mode == "exclusive":
        return [1]
    if mode == "time-slicing":
        return [n for n in clients if n > 1]  # one time-sliced process is the exclusive case
    return list(clients)


def planned_cases(settings: Settings) -> list[tuple[str, int]]:
    """Every (mode, N) case in run order. The exclusive baseline is measured before the first
    sweep and after each one (twice when it is the only mode), so a baseline that drifts
    through the run shows up as spread instead of silently scaling every ratio."""
    sweeps = [
        [(mode, n) for n in clients_for_mode(mode, settings.clients)]
        for mode in settings.modes
        if mode != "exclusive"
    ]
    if "exclusive" not in settings.modes:
        return [case for sweep in sweeps for case in sweep]
    baseline = ("exclusive", 1)
    cases = [baseline]
    for sweep in sweeps or [[]]:
        cases += [*sweep, baseline]
    return cases


def estimate_seconds(settings: Settings) -> float:
    """Rough wall time: process start-up plus barriers, warm-ups and timed windows."""

    def case_seconds(mode: str, n: int) -> float:
        models = len(settings.models)
        if is_paired_case(mode, n, settings):  # two processes, taking turns
            per_pair = 2 * (PAIR_WARMUP_S + settings.pair_window_s + 0.05)
            per_model = 2 * settings.warmup_s + settings.pairs * per_pair
            return 4.4 + 0.5 * models + models * per_model
        startup = 4.0 + 0.2 * n  # interpreter + torch import + CUDA context (seen on an H200)
        build = 0.5 * models
        per_rep = settings.warmup_s + settings.duration_s + 0.3
        return startup + build + models * settings.repetitions * per_rep

    if settings.method == METHOD_INTERLEAVED:
        processes = len(worker_groups(settings)) * group_size(settings)
        startup = 4.0 + 0.2 * processes
        per_window = PAIR_WARMUP_S + settings.window_s + 0.08  # barriers, probes, messages
        per_model = (
            1.0
            + len(worker_groups(settings)) * (settings.warmup_s + 0.1)
            + len(interleaved_schedule(settings)) * per_window
        )
        return startup + len(settings.models) * per_model
    return sum(case_seconds(mode, n) for mode, n in planned_cases(settings))


# --------------------------------------------------------------------------------------------
# Aggregation


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


def summarize_case(
    model: str,
    mode: str,
    clients: int,
    reps: Sequence[Sequence[WorkerSample]],
    meta: RunMeta,
    duration_s: float,
    windows: Sequence[WindowTelemetry] | None = None,
    measurement_of_rep: Sequence[int] | None = None,
) -> Result:
    """Reduce repetitions x workers to one row (ratios are filled by apply_ratios).

    aggregate_it_s   median over repetitions of (sum over workers of iterations / elapsed);
                     for the exclusive baseline, whose repetitions come from several
                     measurements (`measurement_of_rep` names each one's), the median over
                     measurements of each measurement's median
    aggregate_min/max_it_s  the slowest and fastest repetition
    per_process_it_s aggregate_it_s / N
    p50_ms, p99_ms   median over repetitions of (median over workers of that worker's
                     p50 / p99 per-iteration latency in the repetition)
    mem_per_process  largest peak torch.cuda.max_memory_reserved of any worker (MiB)
    host_rss_mib     largest peak resident set (VmHWM) of any worker (MiB)
    sm_clock_mhz     median over repetitions of the window's median SM clock
    gpu_temp_c       highest GPU temperature in any window
    """
    common = {
        "date": meta.date,
        "gpu": meta.gpu,
        "driver": meta.driver,
        "torch": meta.torch,
        "model": model,
        "mode": mode,
        "clients": clients,
        "repetitions": len(reps),
        "duration_s": duration_s,
    }
    if not reps:
        raise BenchmarkError(f"no repetitions reported for {model}/{mode}/N={clients}")
    for i, rep in enumerate(reps):
        if len(rep) != clients:
            raise BenchmarkError(
                f"{model}/{mode}/N={clients}: repetition {i} has {len(rep)} worker samples, "
                f"expected {clients}"
            )
    if windows is not None and len(windows) != len(reps):
        raise BenchmarkError(
            f"{model}/{mode}/N={clients}: {len(windows)} telemetry windows for {len(reps)} "
            "repetitions"
        )
    groups: dict[int, list[int]] = {}
    for i, k in enumerate(measurement_of_rep or [0] * len(reps)):
        groups.setdefault(k, []).append(i)
    if measurement_of_rep is not None:
        if len(measurement_of_rep) != len(reps):
            raise BenchmarkError(f"{model}/{mode}: a measurement index for every repetition")
        common["repetitions"] = max(len(members) for members in groups.values())
        common["baseline_runs"] = len(groups)
    if any(s.status == STATUS_OOM for rep in reps for s in rep):
        return oom_result(**common)
    bad = [s for rep in reps for s in rep if s.status != STATUS_OK]
    if bad:
        raise BenchmarkError(f"{model}/{mode}/N={clients}: unexpected sample status {bad[0]}")
    totals = [sum(s.it_s for s in rep) for rep in reps]
    medians = [statistics.median(totals[i] for i in members) for members in groups.values()]
    aggregate = statistics.median(medians)
    spread = None
    if measurement_of_rep is not None and len(medians) > 1:
        spread = 100.0 * (max(medians) - min(medians)) / aggregate
    p50 = statistics.median(statistics.median(s.p50_ms for s in rep) for rep in reps)
    p99 = statistics.median(statistics.median(s.p99_ms for s in rep) for rep in reps)
    mems = [s.mem_reserved_mib for rep in reps for s in rep if s.mem_reserved_mib is not None]
    rss = [s.host_rss_mib for rep in reps for s in rep if s.host_rss_mib is not None]
    clocks = [w.sm_clock_mhz for w in windows or () if w.sm_clock_mhz is not None]
    temps = [w.temp_c for w in windows or () if w.temp_c is not None]
    return Result(
        **common,
        aggregate_it_s=aggregate,
        aggregate_min_it_s=min(totals),
        aggregate_max_it_s=max(totals),
        per_process_it_s=aggregate / clients,
        ratio_vs_exclusive=None,
        baseline_spread_pct=spread,
        p50_ms=p50,
        p99_ms=p99,
        mem_per_process_mib=max(mems) if mems else None,
        host_rss_mib=max(rss) if rss else None,
        sm_clock_mhz=statistics.median(clocks) if clocks else None,
        gpu_temp_c=max(temps) if temps else None,
        status=STATUS_OK,
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


def apply_ratios(results: Sequence[Result]) -> list[Result]:
    """Divide every row of a model by that model's exclusive N=1 row (the median baseline).

    ratio_low is the low end of what was measured: the row's slowest repetition over the
    baseline's fastest one, so a spread in either shows up as a lower figure. The baseline_*
    columns of the exclusive row are copied onto every row of its model, so each row says
    what it was divided by and how stable that was. Paired rows (RATIO_PAIRED) keep the
    ratios they were measured with.
    """
    baseline = {
        r.model: r
        for r in results
        if r.mode == "exclusive" and r.clients == 1 and r.status == STATUS_OK and r.aggregate_it_s
    }
    out = []
    for r in results:
        base = baseline.get(r.model)
        ratio = ratio_low = None
        if r.ratio_method in (RATIO_PAIRED, RATIO_INTERLEAVED):
            ratio, ratio_low = r.ratio_vs_exclusive, r.ratio_low
        elif base is not None and r.status == STATUS_OK and r.aggregate_it_s is not None:
            ratio = r.aggregate_it_s / base.aggregate_it_s
            if r.aggregate_min_it_s is not None and base.aggregate_max_it_s:
                ratio_low = r.aggregate_min_it_s / base.aggregate_max_it_s
        out.append(
            dataclasses.replace(
                r,
                ratio_vs_exclusive=ratio,
                ratio_low=ratio_low,
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


# --------------------------------------------------------------------------------------------
# The interleaved method (the default)
#
# One launch-bound process runs at the speed of its CPU core, and on the test VM each core
# flips between two speeds within seconds, independently of the others. Measuring a case and
# its baseline minutes apart therefore compares core states as often as ways of sharing. Here
# every process group stays up for the whole run (plain CUDA contexts for exclusive and
# time-slicing, MPS clients for mps), rank i of every group pinned to the same core, and the
# cases take turns in short windows, round after round, each right after an exclusive window
# on the core of its first worker. A case and the baseline are then sampled over the same
# minutes and the same cores, and each ratio is a ratio of totals over the whole run.


@dataclass(frozen=True)
class Window:
    """One timed window of an interleaved run: which ranks of which group run in it."""

    index: int
    round: int
    mode: str  # "exclusive" or the case's mode; GROUP_OF_MODE names the group
    clients: int
    ranks: tuple[int, ...]  # the group's ranks that run; the others wait
    case: tuple[str, int]  # the case this window is (or, for an exclusive window, precedes)


@dataclass(frozen=True)
class InterleavedRun:
    """What an interleaved runner returns: model -> window index -> the active workers'
    samples, in the order of Window.ranks."""

    windows: tuple[Window, ...]
    samples: dict[str, dict[int, list[WorkerSample]]]
    torch_version: str = ""
    gpu: str = ""
    telemetry: tuple[TelemetrySample, ...] = ()


InterleavedRunner = Callable[[Settings], InterleavedRun]


def interleaved_cases(settings: Settings) -> list[tuple[str, int]]:
    """The shared (mode, N) cases of an interleaved run, each measured against the baseline."""
    return [
        (mode, n)
        for mode in settings.modes
        if mode != "exclusive"
        for n in clients_for_mode(mode, settings.clients)
    ]


def worker_groups(settings: Settings) -> tuple[str, ...]:
    """The process groups an interleaved run keeps up: always the plain one (the baseline)."""
    groups = ["plain"] + [GROUP_OF_MODE[m] for m in settings.modes]
    return tuple(dict.fromkeys(groups))


def group_size(settings: Settings) -> int:
    """Processes per group: the largest N any case runs."""
    return max([1] + [n for _, n in interleaved_cases(settings)])


def interleaved_schedule(settings: Settings) -> list[Window]:
    """Every window of one model, in order.

    Per round, every case once, each preceded by an exclusive window on the core of the
    case's first rank; the order of the cases is reversed every other round, so a drift
    through the run weighs on every case alike. Each case's first rank moves on by one core
    per round (and cases start on different cores within a round), so over `size` rounds
    each case and its exclusive windows use every core. A run of the exclusive mode alone has
    one exclusive window per round.
    """
    cases = interleaved_cases(settings)
    size = group_size(settings)
    windows: list[Window] = []

    def add(round_: int, mode: str, n: int, first: int, case: tuple[str, int]) -> None:
        ranks = tuple((first + i) % size for i in range(n))
        windows.append(Window(len(windows), round_, mode, n, ranks, case))

    for r in range(settings.rounds):
        if not cases:
            add(r, "exclusive", 1, r % size, ("exclusive", 1))
            continue
        for case in cases if r % 2 == 0 else cases[::-1]:
            first = (cases.index(case) + r) % size
            add(r, "exclusive", 1, first, case)
            add(r, case[0], case[1], first, case)
    return windows


def interleaved_memory_problem(settings: Settings, gpu: GpuInfo) -> str | None:
    """Why the `memory` model would not fit on the GPU with every group up, or None."""
    if settings.method != METHOD_INTERLEAVED or "memory" not in settings.models:
        return None
    if gpu.memory_total_mib is None:
        return None
    processes = len(worker_groups(settings)) * group_size(settings)
    need_gib = processes * (settings.memory_gib + CUDA_CONTEXT_GIB)
    have_gib = gpu.memory_total_mib / 1024
    if need_gib <= 0.95 * have_gib:
        return None
    fits = max(0.0, 0.95 * have_gib / processes - CUDA_CONTEXT_GIB)
    return (
        f"the memory model in {processes} processes needs about {need_gib:.0f} GiB "
        f"({settings.memory_gib:g} GiB of weights + {CUDA_CONTEXT_GIB:g} GiB of CUDA context "
        f"each) and the GPU has {have_gib:.0f} GiB: use --memory-gib {math.floor(fits * 4) / 4:g} "
        "or less, fewer --clients, or --method sweep"
    )


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


@dataclass(frozen=True)
class HostReference:
    """The host speed a model's ratios are stated at, and what the projection needs."""

    launch_ms: float  # the reference: host time to launch one iteration
    lone_launch_ms: float  # the run's lone process: median launch time of its windows
    lone_wait_ms: float  # and its median wait on the GPU after the last launch
    # (mode, N) -> how many ms an iteration of that case takes longer per ms of launch time
    slopes: dict[tuple[str, int], float] = dataclasses.field(default_factory=dict)


def iteration_ms(sample: WorkerSample) -> float:
    return 1e3 * sample.elapsed_s / sample.iterations


def host_slope(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares slope of iteration time over launch time through (launch_ms,
    iteration_ms) points, and its standard error; None with fewer than 3 points or no spread
    in launch time. 1: the iteration follows the host; 0: the GPU sets its pace."""
    n = len(points)
    if n < 3:
        return None
    mean_x = math.fsum(x for x, _ in points) / n
    mean_y = math.fsum(y for _, y in points) / n
    sxx = math.fsum((x - mean_x) ** 2 for x, _ in points)
    if sxx <= 1e-12 * n * mean_x * mean_x:  # equal launch times, up to rounding
        return None
    slope = math.fsum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    residual = math.fsum((y - mean_y - slope * (x - mean_x)) ** 2 for x, y in points)
    return slope, math.sqrt(residual / (n - 2) / sxx)


def host_reference(
    model: str, run: InterleavedRun, reference_launch_ms: float | None
) -> tuple[HostReference | None, str]:
    """(the reference for `model`, or None; a log line saying which and why). None where no
    reference is given, the run has no launch times, the lone process is not launch-bound
    (its ratios then do not depend on the host's speed this way), or some case's slope
    cannot be measured (host_slope, MAX_SLOPE_ERROR)."""
    if reference_launch_ms is None:
        return None, "ratios at the host's speed as measured (no reference)"
    samples = run.samples[model]
    workers = [s for w in run.windows for s in samples[w.index]]
    if any(s.launch_ms is None or s.iterations <= 0 for s in workers):
        return None, "ratios as measured: the run recorded no launch times"
    lone = [samples[w.index][0] for w in run.windows if w.mode == "exclusive"]
    launch = statistics.median(s.launch_ms for s in lone)
    wait = statistics.median(iteration_ms(s) - s.launch_ms for s in lone)
    if wait > LAUNCH_BOUND_SHARE * launch:
        return None, (
            f"ratios as measured: the lone process is GPU-bound (it waits {wait:.3f} ms on "
            f"the GPU per iteration after launching for {launch:.3f} ms)"
        )
    points: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for w in run.windows:
        points.setdefault((w.mode, w.clients), []).extend(
            (s.launch_ms, iteration_ms(s)) for s in samples[w.index]
        )
    slopes = {}
    for case, case_points in points.items():
        fit = host_slope(case_points)
        if fit is None or fit[1] > MAX_SLOPE_ERROR:
            error = "no spread in launch time" if fit is None else f"± {fit[1]:.2f}"
            return None, (
                f"ratios as measured: how {case[0]} N={case[1]} follows the host's speed "
                f"cannot be measured from this run ({error})"
            )
        slopes[case] = max(fit[0], 0.0)
    ref = HostReference(reference_launch_ms, launch, max(wait, 0.0), slopes)
    described = ", ".join(f"{mode} N={n} {b:.2f}" for (mode, n), b in slopes.items())
    return ref, (
        f"ratios at a reference host that launches one iteration in {ref.launch_ms:g} ms "
        f"(the run's lone process: {launch:.3f} ms, then {ref.lone_wait_ms:.3f} ms on the "
        f"GPU); ratio_host is as measured. ms of iteration per ms of launch: {described}"
    )


def at_reference(sample: WorkerSample, ref: HostReference, slope: float) -> WorkerSample:
    """The window as it would have run on a host launching an iteration in ref.launch_ms:
    its iteration time moved by `slope` (its case's, host_reference) times the difference in
    launch time, and never below the reference launch time itself. Latency percentiles, CPU
    data and timestamps are kept as measured."""
    if sample.status != STATUS_OK or sample.launch_ms is None or sample.iterations <= 0:
        return sample
    projected = iteration_ms(sample) + slope * (ref.launch_ms - sample.launch_ms)
    projected = max(projected, ref.launch_ms)
    return dataclasses.replace(
        sample, elapsed_s=sample.iterations * projected / 1e3, launch_ms=ref.launch_ms
    )


def gpu_capacity(model: str, run: InterleavedRun, ref: HostReference) -> dict[str, float]:
    """mode -> what the GPU delivers to `model` at the reference host speed when it is the
    bottleneck: the mean projected total it/s of the windows of the mode's largest N, where
    that case is held by the GPU (slope at most GPU_HELD_SLOPE). Modes whose largest N
    follows the host are absent: the GPU was not seen at its limit."""
    samples = run.samples[model]
    largest: dict[str, int] = {}
    for w in run.windows:
        if w.clients > 1:
            largest[w.mode] = max(largest.get(w.mode, 0), w.clients)
    capacity = {}
    for mode, n in largest.items():
        slope = ref.slopes[(mode, n)]
        if slope > GPU_HELD_SLOPE:
            continue
        totals = [
            math.fsum(at_reference(s, ref, slope).it_s for s in samples[w.index])
            for w in run.windows
            if (w.mode, w.clients) == (mode, n)
        ]
        capacity[mode] = _mean(totals)
    return capacity


def run_at_reference(model: str, run: InterleavedRun, ref: HostReference) -> InterleavedRun:
    """`run` with every window of `model` projected by at_reference. A shared window that a
    faster host would speed up beyond what the GPU gives at the mode's largest N
    (gpu_capacity) is held to that, or to what the window itself delivered where that was
    more: two time-sliced processes may follow the host, but the GPU gives them no more
    turns than it gives the most processes measured."""
    capacity = gpu_capacity(model, run, ref)
    by_index = {w.index: w for w in run.windows}
    projected = {}
    for index, window in run.samples[model].items():
        w = by_index[index]
        moved = [at_reference(s, ref, ref.slopes[(w.mode, w.clients)]) for s in window]
        if w.clients > 1 and w.mode in capacity:
            limit = max(capacity[w.mode], math.fsum(s.it_s for s in window))
            total = math.fsum(s.it_s for s in moved)
            if total > limit:
                moved = [
                    dataclasses.replace(s, elapsed_s=s.elapsed_s * total / limit) for s in moved
                ]
        projected[index] = moved
    return dataclasses.replace(run, samples={**run.samples, model: projected})


def summarize_interleaved(
    model: str,
    settings: Settings,
    run: InterleavedRun,
    meta: RunMeta,
    reference_launch_ms: float | None = None,
) -> list[Result]:
    """One row per case of `model` (and its exclusive row), ratios already in place: at the
    reference host speed where host_reference gives one, else as measured. The throughput,
    latency and baseline columns are always as measured; ratio_host is the measured ratio."""
    measured = _interleaved_rows(model, settings, run, meta)
    if any(r.status != STATUS_OK for r in measured):
        return measured
    return rows_at_reference(
        measured, model, settings, run, meta, host_reference(model, run, reference_launch_ms)[0]
    )


def rows_at_reference(
    measured: Sequence[Result],
    model: str,
    settings: Settings,
    run: InterleavedRun,
    meta: RunMeta,
    ref: HostReference | None,
) -> list[Result]:
    """`measured` (the model's rows as measured) with their ratios at `ref`, or as they are
    where there is no reference; ratio_host keeps the measured ratio either way."""
    if ref is None:
        return [dataclasses.replace(r, ratio_host=r.ratio_vs_exclusive) for r in measured]
    projected = _interleaved_rows(model, settings, run_at_reference(model, run, ref), meta)
    return [
        dataclasses.replace(
            m,
            ratio_vs_exclusive=p.ratio_vs_exclusive,
            ratio_low=p.ratio_low,
            ratio_halves_pct=p.ratio_halves_pct,
            pairs_kept=p.pairs_kept,
            pairs_excluded=p.pairs_excluded,
            ratio_host=m.ratio_vs_exclusive,
            reference_launch_ms=ref.launch_ms,
            reference_it_s=p.aggregate_it_s,
        )
        for m, p in zip(measured, projected, strict=True)
    ]


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


def run_interleaved_benchmark(
    settings: Settings,
    runner: InterleavedRunner,
    gpu: GpuInfo,
    date: str | None = None,
    log: Callable[[str], None] = print,
    raw: list[dict] | None = None,
    reference: Mapping[str, float] | None = None,
) -> list[Result]:
    """Run every case of `settings` in one interleaved run and return its rows (ratios at
    `reference`: model -> launch ms per iteration; see summarize_interleaved)."""
    date = date or dt.datetime.now(dt.UTC).date().isoformat()
    schedule = interleaved_schedule(settings)
    log(
        f"== interleaved: groups {', '.join(worker_groups(settings))} x "
        f"{group_size(settings)} processes; per model {settings.rounds} rounds, "
        f"{len(schedule)} windows of {PAIR_WARMUP_S:g} s warm-up + {settings.window_s:g} s"
    )
    started = time.monotonic()
    run = runner(settings)
    log(f"   the run took {time.monotonic() - started:.1f} s")
    meta = RunMeta(
        date=date,
        gpu=gpu.name if gpu.name != "unknown" else (run.gpu or "unknown"),
        driver=gpu.driver,
        torch=run.torch_version or "unknown",
    )
    if raw is not None:
        raw.append(
            {
                "method": METHOD_INTERLEAVED,
                "settings": dataclasses.asdict(settings),
                "meta": dataclasses.asdict(meta),
            }
        )
    return summarize_interleaved_run(settings, run, meta, log, raw, reference)


def summarize_interleaved_run(
    settings: Settings,
    run: InterleavedRun,
    meta: RunMeta,
    log: Callable[[str], None] = print,
    raw: list[dict] | None = None,
    reference: Mapping[str, float] | None = None,
) -> list[Result]:
    """Every row of an interleaved run, logging what each was computed from. `reference`:
    model -> the launch time per iteration its ratios are stated at (none: as measured)."""
    rows: list[Result] = []
    for model in settings.models:
        model_rows = _interleaved_rows(model, settings, run, meta)
        log(f"   {describe_interleaved_baseline(model, run)}")
        if all(r.status == STATUS_OK for r in model_rows):
            ref, why = host_reference(model, run, (reference or {}).get(model))
            model_rows = rows_at_reference(model_rows, model, settings, run, meta, ref)
            log(f"   {why}")
        rows += model_rows
        for r in model_rows:
            ratio = "" if r.ratio_vs_exclusive is None else f"  x{r.ratio_vs_exclusive:.3f}"
            low = "" if r.ratio_low is None else f" (low {r.ratio_low:.3f})"
            if r.reference_launch_ms is not None and r.ratio_host is not None:
                low += f" [as measured x{r.ratio_host:.3f}]"
            log(f"   {r.mode:<12} N={r.clients:<3} {_describe(r)}{ratio}{low}")
            if r.ratio_method == RATIO_PAIRED:
                ratios = pair_ratios(
                    interleaved_pairs(model, run, r.mode), settings.pair_probe_tolerance
                )
                for line in describe_pairs(ratios, settings.pair_probe_tolerance):
                    log(f"   {'':<12} {line}")
        if raw is not None:
            raw.append(
                {
                    "model": model,
                    "method": METHOD_INTERLEAVED,
                    "windows": [
                        {
                            **dataclasses.asdict(w),
                            "samples": [
                                dataclasses.asdict(s) for s in run.samples[model].get(w.index, [])
                            ],
                        }
                        for w in run.windows
                    ],
                }
            )
    if raw is not None and run.telemetry:
        raw.append(
            {
                "method": METHOD_INTERLEAVED,
                "telemetry": [dataclasses.astuple(x) for x in run.telemetry],
                "telemetry_fields": [f.name for f in dataclasses.fields(TelemetrySample)],
            }
        )
    drop = host_memory_drop_mib(run.telemetry)
    used = f"; host MemAvailable fell by {drop:.0f} MiB" if drop is not None else ""
    if used:
        log(f"  {used[1:]}")
    return apply_ratios(sort_results(rows))


def read_raw(path: Path | str) -> list[dict]:
    """The JSON `run --raw-out` wrote, plain or gzip-compressed (the committed files)."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        import gzip

        data = gzip.decompress(data)
    return json.loads(data)


def interleaved_from_raw(raw: Sequence[dict]) -> tuple[Settings, RunMeta, InterleavedRun]:
    """Rebuild an interleaved run from the JSON `run --raw-out` wrote, to summarize it again
    (`bench.py summarize`)."""
    head = next((e for e in raw if "settings" in e and "meta" in e), None)
    if head is None:
        raise ValueError("not the raw output of an interleaved run: no settings entry")
    settings = settings_from_config(head["settings"])
    meta = RunMeta(**head["meta"])
    windows: tuple[Window, ...] = ()
    samples: dict[str, dict[int, list[WorkerSample]]] = {}
    telemetry: tuple[TelemetrySample, ...] = ()
    for entry in raw:
        if "model" in entry:
            model_windows = []
            samples[entry["model"]] = {}
            for w in entry["windows"]:
                window = Window(
                    index=w["index"],
                    round=w["round"],
                    mode=w["mode"],
                    clients=w["clients"],
                    ranks=tuple(w["ranks"]),
                    case=(w["case"][0], w["case"][1]),
                )
                model_windows.append(window)
                samples[entry["model"]][window.index] = [WorkerSample(**x) for x in w["samples"]]
            windows = tuple(model_windows)
        elif "telemetry" in entry:
            fields = entry["telemetry_fields"]
            telemetry = tuple(
                TelemetrySample(**dict(zip(fields, x, strict=True))) for x in entry["telemetry"]
            )
    if tuple(interleaved_schedule(settings)) != windows:
        raise ValueError("the raw windows do not match the schedule of the recorded settings")
    return settings, meta, InterleavedRun(windows, samples, meta.torch, meta.gpu, telemetry)


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


def case_windows(case: CaseRun, model: str) -> list[WindowTelemetry] | None:
    """Telemetry per repetition of `model`: the window spans from the first worker's start to
    the last worker's end. None when the runner sent no telemetry or no window times."""
    if not case.telemetry:
        return None
    out = []
    for rep in case.samples[model]:
        starts = [s.window_start for s in rep if s.window_start is not None]
        ends = [s.window_end for s in rep if s.window_end is not None]
        if not starts or not ends:
            out.append(WindowTelemetry(samples=0))
            continue
        out.append(summarize_window(case.telemetry, min(starts), max(ends)))
    return out


def oom_cases(results: Sequence[Result]) -> list[tuple[str, str, int]]:
    return [r.key for r in results if r.status == STATUS_OOM]


def oom_message(cases: Sequence[tuple[str, str, int]]) -> str:
    listed = "; ".join(f"model={m} mode={mode} N={n}" for m, mode, n in cases)
    return f"out of GPU memory in {len(cases)} case(s): {listed}"


def raise_on_oom(results: Sequence[Result]) -> None:
    cases = oom_cases(results)
    if cases:
        raise OutOfMemoryFailure(cases)


def sort_results(results: Sequence[Result]) -> list[Result]:
    def order(value: str, known: Sequence[str]) -> tuple[int, str]:
        return (known.index(value), "") if value in known else (len(known), value)

    return sorted(results, key=lambda r: (order(r.model, MODELS), order(r.mode, MODES), r.clients))


def merge_results(groups: Sequence[Sequence[Result]]) -> list[Result]:
    """Concatenate runs; a (model, mode, N) present twice is an error. Ratios recomputed."""
    seen: dict[tuple[str, str, int], Result] = {}
    for group in groups:
        for r in group:
            if r.key in seen:
                raise BenchmarkError(
                    f"duplicate row for model={r.model} mode={r.mode} N={r.clients}"
                )
            seen[r.key] = r
    return apply_ratios(sort_results(list(seen.values())))


def results_by_key(results: Sequence[Result]) -> dict[tuple[str, str, int], Result]:
    """{(model, mode, clients): Result} for look-ups (e.g. by a capacity planner)."""
    return {r.key: r for r in results}


# --------------------------------------------------------------------------------------------
# CSV


def _fmt(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def result_to_row(r: Result) -> dict[str, str]:
    return {
        "date": r.date,
        "gpu": r.gpu,
        "driver": r.driver,
        "torch": r.torch,
        "model": r.model,
        "mode": r.mode,
        "clients": str(r.clients),
        "repetitions": str(r.repetitions),
        "duration_s": f"{r.duration_s:g}",
        "aggregate_it_s": _fmt(r.aggregate_it_s, 2),
        "aggregate_min_it_s": _fmt(r.aggregate_min_it_s, 2),
        "aggregate_max_it_s": _fmt(r.aggregate_max_it_s, 2),
        "per_process_it_s": _fmt(r.per_process_it_s, 2),
        "ratio_vs_exclusive": _fmt(r.ratio_vs_exclusive, 4),
        "ratio_low": _fmt(r.ratio_low, 4),
        "baseline_it_s": _fmt(r.baseline_it_s, 2),
        "baseline_runs": "" if r.baseline_runs is None else str(r.baseline_runs),
        "baseline_spread_pct": _fmt(r.baseline_spread_pct, 2),
        "p50_ms": _fmt(r.p50_ms, 4),
        "p99_ms": _fmt(r.p99_ms, 4),
        "mem_per_process_mib": _fmt(r.mem_per_process_mib, 1),
        "host_rss_mib": _fmt(r.host_rss_mib, 1),
        "sm_clock_mhz": _fmt(r.sm_clock_mhz, 0),
        "gpu_temp_c": _fmt(r.gpu_temp_c, 0),
        "status": r.status,
        "ratio_method": r.ratio_method,
        "pairs_kept": "" if r.pairs_kept is None else str(r.pairs_kept),
        "pairs_excluded": "" if r.pairs_excluded is None else str(r.pairs_excluded),
        "ratio_halves_pct": _fmt(r.ratio_halves_pct, 2),
        "baseline_launch_ms": _fmt(r.baseline_launch_ms, 4),
        "ratio_host": _fmt(r.ratio_host, 4),
        "reference_launch_ms": _fmt(r.reference_launch_ms, 4),
        "reference_it_s": _fmt(r.reference_it_s, 2),
    }


def write_csv(path: Path | str, results: Sequence[Result]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in results:
            writer.writerow(result_to_row(r))


def _opt_float(text: str) -> float | None:
    return None if text == "" else float(text)


def _opt_int(text: str) -> int | None:
    return None if text == "" else int(text)


def load_results(path: Path | str) -> list[Result]:
    """Read a results CSV written by this script (or by its single-baseline predecessor,
    whose missing columns come back as None) into typed Result rows."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = tuple(reader.fieldnames or ())
        known = (
            CSV_COLUMNS,
            PRE_REFERENCE_CSV_COLUMNS,
            PRE_INTERLEAVED_CSV_COLUMNS,
            PRE_PAIRING_CSV_COLUMNS,
            LEGACY_CSV_COLUMNS,
        )
        if columns not in known:
            raise ValueError(f"{path}: unexpected columns {reader.fieldnames}; want {CSV_COLUMNS}")
        out = []
        for line, row in enumerate(reader, start=2):
            row = {column: row.get(column, "") for column in CSV_COLUMNS}
            try:
                status = row["status"]
                if status not in (STATUS_OK, STATUS_OOM):
                    raise ValueError(f"unknown status {status!r}")
                method = row["ratio_method"] or RATIO_BASELINE
                if method not in (RATIO_BASELINE, RATIO_PAIRED, RATIO_INTERLEAVED):
                    raise ValueError(f"unknown ratio_method {method!r}")
                r = Result(
                    date=row["date"],
                    gpu=row["gpu"],
                    driver=row["driver"],
                    torch=row["torch"],
                    model=row["model"],
                    mode=row["mode"],
                    clients=int(row["clients"]),
                    repetitions=int(row["repetitions"]),
                    duration_s=float(row["duration_s"]),
                    aggregate_it_s=_opt_float(row["aggregate_it_s"]),
                    aggregate_min_it_s=_opt_float(row["aggregate_min_it_s"]),
                    aggregate_max_it_s=_opt_float(row["aggregate_max_it_s"]),
                    per_process_it_s=_opt_float(row["per_process_it_s"]),
                    ratio_vs_exclusive=_opt_float(row["ratio_vs_exclusive"]),
                    ratio_low=_opt_float(row["ratio_low"]),
                    baseline_it_s=_opt_float(row["baseline_it_s"]),
                    baseline_runs=_opt_int(row["baseline_runs"]),
                    baseline_spread_pct=_opt_float(row["baseline_spread_pct"]),
                    p50_ms=_opt_float(row["p50_ms"]),
                    p99_ms=_opt_float(row["p99_ms"]),
                    mem_per_process_mib=_opt_float(row["mem_per_process_mib"]),
                    host_rss_mib=_opt_float(row["host_rss_mib"]),
                    sm_clock_mhz=_opt_float(row["sm_clock_mhz"]),
                    gpu_temp_c=_opt_float(row["gpu_temp_c"]),
                    status=status,
                    ratio_method=method,
                    pairs_kept=_opt_int(row["pairs_kept"]),
                    pairs_excluded=_opt_int(row["pairs_excluded"]),
                    ratio_halves_pct=_opt_float(row["ratio_halves_pct"]),
                    baseline_launch_ms=_opt_float(row["baseline_launch_ms"]),
                    ratio_host=_opt_float(row["ratio_host"]),
                    reference_launch_ms=_opt_float(row["reference_launch_ms"]),
                    reference_it_s=_opt_float(row["reference_it_s"]),
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: {exc}") from None
            if status == STATUS_OK and r.aggregate_it_s is None:
                raise ValueError(f"{path}:{line}: status ok but no aggregate_it_s")
            out.append(r)
    return out


def compare_runs(
    first: Sequence[Result], second: Sequence[Result], max_diff_pct: float
) -> tuple[list[str], list[str]]:
    """(Markdown lines, problems): every ratio of two runs side by side, second vs first in
    percent, and the ones further apart than max_diff_pct; then each model's baseline with
    the host launch time it was measured at (compare runs at similar values)."""
    a, b = results_by_key(first), results_by_key(second)
    lines = [
        "| model | mode | N | ratio from | first × (low) | second × (low) | second vs first |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: |",
    ]
    problems = []
    for key in [r.key for r in sort_results(first) if r.key in b]:
        x, y = a[key], b[key]
        if key[1] == "exclusive" or None in (x.ratio_vs_exclusive, y.ratio_vs_exclusive):
            continue
        diff = 100.0 * (y.ratio_vs_exclusive / x.ratio_vs_exclusive - 1.0)
        mark = f"**{diff:+.1f} %**" if abs(diff) > max_diff_pct else f"{diff:+.1f} %"
        lines.append(
            f"| {key[0]} | {key[1]} | {key[2]} | {x.ratio_method} "
            f"| {x.ratio_vs_exclusive:.3f} ({_fmt(x.ratio_low, 2) or '–'}) "
            f"| {y.ratio_vs_exclusive:.3f} ({_fmt(y.ratio_low, 2) or '–'}) | {mark} |"
        )
        if abs(diff) > max_diff_pct:
            problems.append(
                f"model={key[0]} mode={key[1]} N={key[2]}: {x.ratio_vs_exclusive:.3f} against "
                f"{y.ratio_vs_exclusive:.3f} ({diff:+.1f}%, limit {max_diff_pct:g}%)"
            )
    lines.append("")
    for model in dict.fromkeys(r.model for r in sort_results(first)):
        x, y = a.get((model, "exclusive", 1)), b.get((model, "exclusive", 1))
        if x is None or y is None or x.aggregate_it_s is None or y.aggregate_it_s is None:
            continue
        if x.reference_launch_ms != y.reference_launch_ms:
            problems.append(
                f"model={model}: the ratios are stated at different host speeds (reference "
                f"launch ms {_fmt(x.reference_launch_ms, 3) or 'none'} against "
                f"{_fmt(y.reference_launch_ms, 3) or 'none'}); summarize both alike"
            )
        launch = ""
        if x.baseline_launch_ms is not None and y.baseline_launch_ms is not None:
            launch = f" at {x.baseline_launch_ms:.3f} and {y.baseline_launch_ms:.3f} ms launch time"
        lines.append(
            f"{model} baseline: {x.aggregate_it_s:.0f} and {y.aggregate_it_s:.0f} it/s{launch}"
        )
    return lines, problems


def format_table(results: Sequence[Result]) -> str:
    """Markdown table, one block per model, each headed by its baseline."""
    lines = []
    for model in dict.fromkeys(r.model for r in sort_results(results)):
        rows = [r for r in sort_results(results) if r.model == model]
        base = next((r for r in rows if r.mode == "exclusive" and r.status == STATUS_OK), None)
        lines += [f"**{model}**", ""]
        if base is not None and base.baseline_runs and base.ratio_method == RATIO_INTERLEAVED:
            spread = _fmt(base.baseline_spread_pct, 1) or "–"
            lines += [
                f"Baseline (exclusive): {base.aggregate_it_s:.0f} it/s, the mean of "
                f"{base.baseline_runs} windows of {base.duration_s:g} s interleaved with the "
                f"other cases; spread {spread}% (max - min of the means of the run's three "
                "thirds, over the mean); host launch time per iteration in those windows "
                f"{_fmt(base.baseline_launch_ms, 3) or '–'} ms (median). Shared rows: mean over "
                f"their rounds; low × is the p{INTERLEAVED_LOW_PERCENTILE:g} over rounds. "
                + (
                    f"Ratios (× exclusive, low ×) at a reference host that launches one "
                    f"iteration in {base.reference_launch_ms:g} ms; × as measured: at this "
                    "run's host speed."
                    if base.reference_launch_ms is not None
                    else "Ratios as measured."
                ),
                "",
            ]
        elif base is not None and base.baseline_runs:
            spread = _fmt(base.baseline_spread_pct, 1) or "–"
            lines += [
                f"Baseline (exclusive): {base.aggregate_it_s:.0f} it/s, the median of "
                f"{base.baseline_runs} measurements spread through the run; spread "
                f"{spread}% (max - min over median).",
                "",
            ]
        lines += [
            (
                "| mode | N | aggregate it/s | per-process it/s | × exclusive | low × "
                "| × as measured | p50 ms | p99 ms | MiB/process | host RSS MiB | SM MHz | status |"
            ),
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| --- |",
        ]
        notes = []
        for r in rows:
            mode = r.mode
            if r.ratio_method == RATIO_PAIRED:
                mode += " ¹"
                notes.append(
                    f"¹ {r.mode} N={r.clients}: ratios from windows paired with an exclusive "
                    f"process on the same CPU core, median (low: p{PAIRED_LOW_PERCENTILE:g}) of "
                    f"{r.repetitions} pairs; {r.pairs_kept} kept, {r.pairs_excluded} excluded "
                    "for differing CPU probes; it/s and latencies are the MPS client's windows."
                )
            lines.append(
                f"| {mode} | {r.clients} | {_fmt(r.aggregate_it_s, 0) or '–'} "
                f"| {_fmt(r.per_process_it_s, 1) or '–'} | {_fmt(r.ratio_vs_exclusive, 2) or '–'} "
                f"| {_fmt(r.ratio_low, 2) or '–'} | {_fmt(r.ratio_host, 2) or '–'} "
                f"| {_fmt(r.p50_ms, 2) or '–'} | {_fmt(r.p99_ms, 2) or '–'} "
                f"| {_fmt(r.mem_per_process_mib, 0) or '–'} | {_fmt(r.host_rss_mib, 0) or '–'} "
                f"| {_fmt(r.sm_clock_mhz, 0) or '–'} | {r.status} |"
            )
        if notes:
            lines += ["", *notes]
        lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Plot


MODE_LABEL = {"mps-limited": "mps-limited (device-plugin limits)"}
MODE_STYLE = {
    "time-slicing": ("tab:red", "o"),
    "mps": ("tab:blue", "s"),
    "mps-limited": ("tab:green", "^"),
}


def plot_results(results: Sequence[Result], out_png: Path | str) -> Path:
    """One row per model: throughput vs exclusive, and p99 latency, against N; one line per
    mode. The time-slicing line starts at the exclusive point (one time-sliced process is
    exclusive use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = sort_results(results)
    if not results:
        raise ValueError("nothing to plot")
    models = list(dict.fromkeys(r.model for r in results))
    modes = [m for m in dict.fromkeys(r.mode for r in results) if m != "exclusive"]
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 3.6 * len(models)), squeeze=False)
    all_n = sorted({r.clients for r in results})
    for row, model in enumerate(models):
        ax_tp, ax_lat = axes[row]
        rows = [r for r in results if r.model == model]
        base = next((r for r in rows if r.mode == "exclusive" and r.status == STATUS_OK), None)
        for mode in modes:
            color, marker = MODE_STYLE.get(mode, ("tab:gray", "x"))
            pts = [r for r in rows if r.mode == mode and r.status == STATUS_OK]
            if mode == "time-slicing" and base is not None:
                pts = [base, *pts]
            pts.sort(key=lambda r: r.clients)
            xs = [r.clients for r in pts]
            if pts and all(r.ratio_vs_exclusive is not None for r in pts):
                ratios = [r.ratio_vs_exclusive for r in pts]
                ax_tp.plot(xs, ratios, marker=marker, color=color, label=MODE_LABEL.get(mode, mode))
                if all(r.ratio_low is not None for r in pts):
                    # The shaded band reaches down to the low end the planner uses.
                    lows = [r.ratio_low for r in pts]
                    ax_tp.fill_between(xs, lows, ratios, color=color, alpha=0.15, linewidth=0)
            if pts:
                ax_lat.plot(
                    xs,
                    [r.p99_ms for r in pts],
                    marker=marker,
                    color=color,
                    label=MODE_LABEL.get(mode, mode),
                )
        if base is not None:
            star = {"marker": "*", "markersize": 13, "color": "black", "linestyle": "none"}
            ax_tp.plot([1], [1.0], label="exclusive", **star)
            ax_lat.plot([1], [base.p99_ms], label="exclusive", **star)
        for r in rows:
            if r.status == STATUS_OOM:  # failed cases are marked, never silently left out
                color = MODE_STYLE.get(r.mode, ("black", ""))[0]
                for ax in (ax_tp, ax_lat):
                    ax.annotate(
                        f"{r.mode} OOM",
                        (r.clients, 0.05),
                        xycoords=("data", "axes fraction"),
                        color=color,
                        rotation=90,
                        ha="center",
                        fontsize=8,
                    )
        ax_tp.axhline(1.0, color="gray", linestyle="--", linewidth=0.8)
        title = f"{model}: aggregate throughput / exclusive"
        if base is not None and base.baseline_spread_pct is not None:
            runs, spread = base.baseline_runs, base.baseline_spread_pct
            if base.ratio_method == RATIO_INTERLEAVED and base.reference_launch_ms is not None:
                title += (
                    f"\n(at a host launching one iteration in {base.reference_launch_ms:g} ms; "
                    f"{runs} interleaved baseline windows)"
                )
            elif base.ratio_method == RATIO_INTERLEAVED:
                title += f"\n(baseline: mean of {runs} interleaved windows; thirds {spread:.1f}%)"
            else:
                title += f"\n(baseline: median of {runs} runs, spread {spread:.1f}%)"
        ax_tp.set_title(title)
        ax_tp.set_ylabel("× exclusive (N=1)")
        ax_tp.set_ylim(bottom=0)
        ax_lat.set_title(f"{model}: p99 latency per process")
        ax_lat.set_ylabel("ms")
        ax_lat.set_ylim(bottom=0)
        for ax in (ax_tp, ax_lat):
            ax.set_xlabel("concurrent processes N")
            ax.set_xticks(all_n)
            ax.set_xlim(0.5, max(all_n) + 0.5)
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    first = results[0]
    if first.ratio_method == RATIO_INTERLEAVED:
        shared = [
            r.repetitions
            for r in results
            if r.ratio_method == RATIO_INTERLEAVED and r.mode != "exclusive"
        ]
        rounds = max(shared, default=first.repetitions)
        how = f"interleaved: {rounds} rounds of {first.duration_s:g} s windows"
    else:
        how = f"median of {first.repetitions} × {first.duration_s:g} s"
    fig.suptitle(
        f"GPU sharing benchmark: {first.gpu}, driver {first.driver}, torch {first.torch}, "
        f"{first.date} ({how})",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


# --------------------------------------------------------------------------------------------
# Orchestration (pure: the runner that touches the GPU is injected)


def run_benchmark(
    settings: Settings,
    runner: Runner,
    gpu: GpuInfo,
    date: str | None = None,
    log: Callable[[str], None] = print,
    raw: list[dict] | None = None,
    on_case: Callable[[list[Result]], None] | None = None,
) -> list[Result]:
    """Run every planned case through `runner` and return one Result per (model, mode, N).

    The exclusive case is planned several times (see planned_cases); its measurements become
    one exclusive row per model whose aggregate is their median and whose
    baseline_spread_pct says how far they differ. OOM'd cases come back with status 'oom'
    (use raise_on_oom to fail on them); a worker crash raises WorkerCrash with the rows
    finished so far in `partial_results`. `on_case` gets the rows so far after every case,
    e.g. to checkpoint the CSV.
    """
    date = date or dt.datetime.now(dt.UTC).date().isoformat()
    cases = planned_cases(settings)
    baseline_total = cases.count(("exclusive", 1))
    rows: list[Result] = []
    # model -> one (repetitions, telemetry windows, meta) per exclusive measurement
    baseline: dict[str, list[tuple[list[list[WorkerSample]], list | None, RunMeta]]] = {
        model: [] for model in settings.models
    }

    def assemble() -> list[Result]:
        out = list(rows)
        for model, measurements in baseline.items():
            if not measurements:
                continue
            reps = [rep for m_reps, _, _ in measurements for rep in m_reps]
            index = [k for k, (m_reps, _, _) in enumerate(measurements) for _ in m_reps]
            windows = None
            if all(w is not None for _, w, _ in measurements):
                windows = [window for _, m_windows, _ in measurements for window in m_windows]
            meta = measurements[0][2]
            out.append(
                summarize_case(
                    model, "exclusive", 1, reps, meta, settings.duration_s, windows, index
                )
            )
        return apply_ratios(sort_results(out))

    try:
        measured = 0
        for mode, n in cases:
            label = f"== mode={mode} N={n}"
            paired = is_paired_case(mode, n, settings)
            if mode == "exclusive":
                measured += 1
                label += f" (baseline {measured} of {baseline_total})"
            if paired:
                label += (
                    f" (paired: {settings.pairs} x {settings.pair_window_s:g} s windows "
                    "alternating with an exclusive process on the same CPU core)"
                )
            log(label)
            started = time.monotonic()
            case = runner(mode, n, settings)
            meta = RunMeta(
                date=date,
                gpu=gpu.name if gpu.name != "unknown" else (case.gpu or "unknown"),
                driver=gpu.driver,
                torch=case.torch_version or "unknown",
            )
            for model in settings.models:
                if model not in case.samples:
                    raise BenchmarkError(f"runner returned no samples for {model}/{mode}/N={n}")
                reps = case.samples[model]
                windows = case_windows(case, model)
                if paired:
                    r = summarize_paired(
                        model,
                        mode,
                        reps,
                        meta,
                        settings.pair_window_s,
                        settings.pair_probe_tolerance,
                        windows,
                    )
                else:
                    r = summarize_case(model, mode, n, reps, meta, settings.duration_s, windows)
                if mode == "exclusive":
                    baseline[model].append((reps, windows, meta))
                else:
                    rows.append(r)
                if raw is not None:
                    raw.append(
                        {
                            "model": model,
                            "mode": mode,
                            "clients": n,
                            "baseline_measurement": measured if mode == "exclusive" else None,
                            "paired": paired,
                            "samples": [[dataclasses.asdict(s) for s in rep] for rep in reps],
                            "windows": [dataclasses.asdict(w) for w in windows or ()],
                        }
                    )
                log(f"   {_describe(r)}")
                if paired:
                    ratios = pair_ratios(reps, settings.pair_probe_tolerance)
                    for line in describe_pairs(ratios, settings.pair_probe_tolerance):
                        log(f"   {'':<12} {line}")
                else:
                    log(f"   {'':<12} {_describe_reps(reps, windows)}")
            if raw is not None and case.telemetry:
                raw.append(
                    {
                        "mode": mode,
                        "clients": n,
                        "baseline_measurement": measured if mode == "exclusive" else None,
                        "telemetry": [dataclasses.astuple(x) for x in case.telemetry],
                        "telemetry_fields": [f.name for f in dataclasses.fields(TelemetrySample)],
                    }
                )
            drop = host_memory_drop_mib(case.telemetry)
            used = f"; host MemAvailable fell by {drop:.0f} MiB" if drop is not None else ""
            log(f"   case took {time.monotonic() - started:.1f} s{used}")
            if on_case is not None:
                on_case(assemble())
    except BenchmarkError as exc:
        exc.partial_results = assemble()
        raise
    return assemble()


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


def _describe_reps(
    reps: Sequence[Sequence[WorkerSample]], windows: Sequence[WindowTelemetry] | None
) -> str:
    """Per repetition: aggregate it/s, and what the GPU and host did meanwhile."""
    parts = []
    for i, rep in enumerate(reps):
        if any(s.status != STATUS_OK for s in rep):
            parts.append(rep[0].status if rep else "?")
            continue
        text = f"{sum(s.it_s for s in rep):.0f}"
        w = windows[i] if windows else None
        if w is not None and w.sm_clock_mhz is not None:
            text += f" @{w.sm_clock_mhz:.0f}MHz"
            if w.gpu_util_pct is not None:
                text += f"/{w.gpu_util_pct:.0f}%"
        if w is not None and w.cpu_steal_pct is not None:
            text += f" steal {w.cpu_steal_pct:.1f}%"
        probes = [s.cpu_probe_ms for s in rep if s.cpu_probe_ms is not None]
        if probes:
            text += f" cpu-probe {statistics.median(probes):.2f}ms"
        parts.append(text)
    return "reps: " + " | ".join(parts)


# --------------------------------------------------------------------------------------------
# GPU side: nvidia-smi, the MPS daemon, worker processes


def query_gpu() -> GpuInfo:
    """Name, driver and total memory of GPU 0 from nvidia-smi ('unknown' if unavailable)."""
    try:
        out = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader,nounits",
                "-i",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        name, driver, total = [part.strip() for part in out.strip().splitlines()[0].split(",")]
        return GpuInfo(name=name, driver=driver, memory_total_mib=int(float(total)))
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return GpuInfo(name="unknown", driver="unknown", memory_total_mib=None)


# --- Telemetry: what the GPU and the host did while the workers ran --------------------------


def parse_cpu_jiffies(proc_stat: str) -> tuple[int, int, int] | None:
    """(busy, steal, total) jiffies of all CPUs from /proc/stat's aggregate `cpu` line.

    Fields: user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
    already inside user, so it is not added again. Steal is time the hypervisor ran someone
    else on our virtual CPUs: a launch-bound worker slows down by that much.
    """
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu" and len(parts) >= 9:
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, parts[1:9])
            busy = user + nice + system + irq + softirq
            return busy, steal, busy + idle + iowait + steal
    return None


def parse_kib_field(text: str, key: str) -> float | None:
    """A `Key:   1234 kB` line of /proc/meminfo, /proc/self/status or smaps_rollup, in MiB."""
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            parts = value.split()
            if parts and parts[-1] == "kB":
                return int(parts[0]) / 1024
    return None


def parse_last_cpu(proc_pid_stat: str) -> int | None:
    """Field 39 of /proc/<pid>/stat: the CPU the task last ran on. The command name (field
    2) may contain spaces, so count from the closing parenthesis."""
    rest = proc_pid_stat.rpartition(")")[2].split()
    try:
        return int(rest[36])  # rest[0] is field 3
    except (IndexError, ValueError):
        return None


def parse_smi_telemetry(line: str) -> dict[str, float]:
    """One `nvidia-smi --query-gpu=<SMI_TELEMETRY fields> --format=csv,noheader,nounits`
    line; fields the GPU does not report ([N/A]) are left out."""
    out = {}
    for (key, _), cell in zip(SMI_TELEMETRY, line.strip().split(","), strict=False):
        try:
            out[key] = float(cell.strip())
        except ValueError:
            continue
    return out


# TelemetrySample field <- nvidia-smi query field, for machines without nvidia-ml-py.
SMI_TELEMETRY = (
    ("sm_clock_mhz", "clocks.sm"),
    ("mem_clock_mhz", "clocks.mem"),
    ("temp_c", "temperature.gpu"),
    ("power_w", "power.draw"),
    ("gpu_util_pct", "utilization.gpu"),
)


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def read_host_counters() -> dict[str, float | int]:
    """CPU jiffies and MemAvailable of the whole machine (Linux; empty elsewhere)."""
    out: dict[str, float | int] = {}
    jiffies = parse_cpu_jiffies(_read_text("/proc/stat") or "")
    if jiffies is not None:
        out["cpu_busy_jiffies"], out["cpu_steal_jiffies"], out["cpu_total_jiffies"] = jiffies
    available = parse_kib_field(_read_text("/proc/meminfo") or "", "MemAvailable")
    if available is not None:
        out["mem_available_mib"] = available
    return out


def nvml_reader(index: int = 0) -> Callable[[], dict[str, float]] | None:
    """A function reading GPU `index` through NVML (the nvidia-ml-py package), or None."""
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # not installed, or no driver: fall back
        return None
    # Renamed from "throttle" to "event" reasons in newer NVML; either is the same bit mask.
    reasons = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or getattr(
        pynvml, "nvmlDeviceGetCurrentClocksThrottleReasons", None
    )
    queries: dict[str, Callable[[], float]] = {
        "sm_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM),
        "mem_clock_mhz": lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_MEM),
        "temp_c": lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU),
        "power_w": lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0,
        "gpu_util_pct": lambda: pynvml.nvmlDeviceGetUtilizationRates(handle).gpu,
    }
    if reasons is not None:
        queries["clock_reasons"] = lambda: reasons(handle)

    def read() -> dict[str, float]:
        out = {}
        for key, query in queries.items():
            try:
                out[key] = query()
            except Exception:  # one unsupported query must not lose the others
                continue
        return out

    return read


def smi_reader(index: int = 0) -> Callable[[], dict[str, float]] | None:
    """A function reading GPU `index` through nvidia-smi (slower than NVML), or None."""
    binary = shutil.which("nvidia-smi")
    if binary is None:
        return None
    query = ",".join(field for _, field in SMI_TELEMETRY)
    command = [binary, f"--query-gpu={query}", "--format=csv,noheader,nounits", "-i", str(index)]

    def read() -> dict[str, float]:
        try:
            out = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError):
            return {}
        return parse_smi_telemetry(out.stdout.splitlines()[0] if out.stdout else "")

    return read


def gpu_telemetry_reader() -> tuple[str, Callable[[], dict[str, float]] | None]:
    """The best available way to read the GPU's clocks: NVML, else nvidia-smi, else none."""
    for name, make in (("nvml", nvml_reader), ("nvidia-smi", smi_reader)):
        read = make()
        if read is not None:
            return name, read
    return "none", None


class TelemetryMonitor:
    """Samples the GPU and the host on a thread of the parent process while a case runs.

    The parent only waits on a queue meanwhile, so the sampling takes no CPU time from the
    workers' launch loops beyond one idle core's worth.
    """

    def __init__(self, read_gpu: Callable[[], dict[str, float]] | None, interval_s: float):
        self.read_gpu = read_gpu
        self.interval_s = interval_s
        self.samples: list[TelemetrySample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="telemetry", daemon=True)

    def __enter__(self) -> TelemetryMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while True:
            self.samples.append(self._read())
            if self._stop.wait(self.interval_s):
                self.samples.append(self._read())
                return

    def _read(self) -> TelemetrySample:
        t = time.monotonic()
        gpu = {}
        if self.read_gpu is not None:
            with contextlib.suppress(Exception):
                gpu = self.read_gpu()
        return TelemetrySample(t=t, **gpu, **read_host_counters())


def mps_limit_commands(replicas: int, total_mib: int, device_index: int = 0) -> list[str]:
    """Control-daemon commands that give every client the share the device plugin's MPS
    strategy gives one of `replicas` replicas of a GPU."""
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    return [
        f"set_default_active_thread_percentage {100 // replicas}",
        f"set_default_device_pinned_mem_limit {device_index} {total_mib // replicas}M",
    ]


@dataclass
class MpsDaemon:
    binary: str
    env: dict[str, str]  # the two CUDA_MPS_* variables
    log_dir: Path

    def command(self, text: str, timeout: float = 30.0) -> str:
        proc = subprocess.run(
            [self.binary],
            input=text + "\n",
            check=False,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise BenchmarkError(
                f"'{text}' to {MPS_CONTROL} failed (rc={proc.returncode}): "
                f"{proc.stdout.strip()} {proc.stderr.strip()}"
            )
        return proc.stdout.strip()

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("control.log", "server.log"):
            path = self.log_dir / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts) or f"(no MPS logs in {self.log_dir})"


@contextlib.contextmanager
def mps_daemon(
    setup_commands: Sequence[str], log: Callable[[str], None] = print
) -> Iterator[MpsDaemon]:
    """Start `nvidia-cuda-mps-control -d` with private pipe/log dirs; always quit it after."""
    binary = shutil.which(MPS_CONTROL)
    if binary is None:
        raise BenchmarkError(f"{MPS_CONTROL} not found on PATH ({os.environ.get('PATH')})")
    root = Path(tempfile.mkdtemp(prefix="bench-mps-"))
    pipe_dir, log_dir = root / "pipe", root / "log"
    pipe_dir.mkdir()
    log_dir.mkdir()
    daemon = MpsDaemon(
        binary=binary,
        env={"CUDA_MPS_PIPE_DIRECTORY": str(pipe_dir), "CUDA_MPS_LOG_DIRECTORY": str(log_dir)},
        log_dir=log_dir,
    )
    start = subprocess.run(
        [binary, "-d"],
        env={**os.environ, **daemon.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if start.returncode != 0:
        raise BenchmarkError(
            f"{MPS_CONTROL} -d failed (rc={start.returncode}): {start.stdout} {start.stderr}\n"
            + daemon.log_tail()
        )
    log(f"   MPS control daemon started (pipe {pipe_dir})")
    ok = False
    try:
        for cmd in setup_commands:
            out = daemon.command(cmd)
            log(f"   MPS: {cmd} -> {out or 'ok'}")
        yield daemon
        ok = True
    finally:
        try:
            out = daemon.command("quit", timeout=120)
            log(f"   MPS control daemon quit {out}".rstrip())
        except (BenchmarkError, subprocess.SubprocessError) as exc:
            log(f"   WARNING: stopping the MPS daemon failed: {exc}")
            ok = False
        if not ok:
            log(daemon.log_tail())
        shutil.rmtree(root, ignore_errors=True)


def check_pair_clients(ready: dict[int, dict], listed: Sequence[str]) -> str:
    """A paired case is only what it claims if the MPS server has exactly one client, the MPS
    worker, and not the exclusive worker. Raises otherwise; returns what was verified (the
    pids can only be compared where the daemon sees the workers' pid namespace)."""
    shared = str(ready.get(PAIR_SHARED_RANK, {}).get("pid"))
    exclusive = str(ready.get(PAIR_EXCLUSIVE_RANK, {}).get("pid"))
    if len(listed) != 1 or exclusive in listed:
        raise BenchmarkError(
            f"paired case: the MPS server lists clients {list(listed)}; want only the MPS "
            f"worker {shared}, not the exclusive worker {exclusive}"
        )
    if shared in listed:
        return f"its one client is the MPS worker (pid {shared}), not the exclusive {exclusive}"
    return f"it has one client (pid {listed[0]}, not comparable with the workers' {shared})"


def query_compute_mode(index: int = 0) -> str | None:
    """The GPU's compute mode as nvidia-smi names it (Default, Exclusive_Process, ...)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_mode", "--format=csv,noheader", "-i", str(index)],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out else None


def gpu_runner(gpu: GpuInfo, log: Callable[[str], None] = print) -> Runner:
    """The real runner: starts N worker processes on GPU 0 (inside an MPS daemon if asked),
    sampling the GPU's clocks and the host's CPU and memory meanwhile."""
    backend, read_gpu = gpu_telemetry_reader()
    log(f"GPU telemetry through {backend}")

    def run(mode: str, clients: int, settings: Settings) -> CaseRun:
        with TelemetryMonitor(read_gpu, settings.telemetry_interval_s) as monitor:
            case = run_case(mode, clients, settings)
        return dataclasses.replace(case, telemetry=tuple(monitor.samples))

    def run_case(mode: str, clients: int, settings: Settings) -> CaseRun:
        paired = is_paired_case(mode, clients, settings)
        if paired:
            compute_mode = query_compute_mode()
            log(f"   GPU compute mode: {compute_mode}")
            if compute_mode not in ("Default", None):
                raise BenchmarkError(
                    f"paired windows need compute mode Default (a plain process beside the MPS "
                    f"server), the GPU is in {compute_mode}; run with --no-pairing"
                )
        if mode in ("exclusive", "time-slicing"):
            return run_workers(clients, settings, env={}, log=log)
        if mode == "mps":
            commands: list[str] = []
        elif mode == "mps-limited":
            if gpu.memory_total_mib is None:
                raise BenchmarkError("mps-limited needs the GPU's total memory from nvidia-smi")
            commands = mps_limit_commands(settings.mps_replicas, gpu.memory_total_mib)
        else:
            raise BenchmarkError(f"unknown mode {mode}")
        with mps_daemon(commands, log=log) as daemon:

            def check_server(ready: dict[int, dict]) -> None:
                servers = daemon.command("get_server_list").split()
                if not servers:
                    raise BenchmarkError(
                        f"{clients} workers initialised CUDA but the MPS daemon lists no server: "
                        "they are not MPS clients\n" + daemon.log_tail()
                    )
                for pid in servers:
                    for _ in range(10):  # the listing can lag behind the clients' start-up
                        listed = daemon.command(f"get_client_list {pid}").split()
                        if len(listed) >= clients:
                            break
                        time.sleep(0.3)
                    log(f"   MPS server pid {pid}: {len(listed)} client(s) listed")
                    if paired:
                        log(f"   {check_pair_clients(ready, listed)}")

            try:
                if paired:
                    return run_workers(
                        2,
                        settings,
                        env={},
                        rank_env={PAIR_SHARED_RANK: daemon.env},
                        on_ready=check_server,
                        log=log,
                        paired=True,
                    )
                return run_workers(
                    clients, settings, env=daemon.env, on_ready=check_server, log=log
                )
            except BenchmarkError as exc:
                raise type(exc)(f"{exc}\n{daemon.log_tail()}") from exc

    return run


def pair_cpu() -> int:
    """The CPU core both processes of a paired case are pinned to: the last one allowed."""
    return max(os.sched_getaffinity(0))


def _start_worker(ctx, body: Callable, key, config: dict, barrier, messages, env: dict[str, str]):
    """Start one spawned worker running body(key, config, barrier, messages) with `env` added
    to its environment (spawned children inherit the environment at start)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        p = ctx.Process(
            target=_run_worker, args=(body, key, config, barrier, messages), daemon=True
        )
        p.start()
        return p
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _collect(
    procs: Sequence,
    keys: Sequence,
    barrier,
    messages,
    timeout_s: float,
    timeout_message: str,
    describe: Callable[[object], str],
    handle: Callable[[str, object, tuple], None],
) -> None:
    """Read the workers' messages until every one said 'done', passing 'ready' and 'sample'
    messages to handle(kind, key, message). A worker's error, a worker that exits without
    saying why, or the timeout raises WorkerCrash; then the barrier is broken and the others
    stopped. The processes are always reaped."""
    done: set = set()
    exited_at: dict = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(done) < len(procs):
            try:
                msg = messages.get(timeout=0.5)
            except queue.Empty:
                now = time.monotonic()
                for key, p in zip(keys, procs, strict=True):
                    if p.exitcode is not None and key not in done:
                        exited_at.setdefault(key, now)
                        if p.exitcode != 0 or now - exited_at[key] > 10.0:
                            raise WorkerCrash(
                                f"{describe(key)} exited with code {p.exitcode} without "
                                "reporting an error (killed? segfault?)"
                            ) from None
                if now > deadline:
                    raise WorkerCrash(timeout_message) from None
                continue
            kind, key = msg[0], msg[1]
            if kind == "error":
                raise WorkerCrash(f"{describe(key)} failed:\n{msg[2]}")
            if kind == "done":
                done.add(key)
            else:
                handle(kind, key, msg)
    except BaseException:
        with contextlib.suppress(Exception):
            barrier.abort()
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)


def run_workers(
    clients: int,
    settings: Settings,
    env: dict[str, str],
    on_ready: Callable[[dict[int, dict]], None] | None = None,
    log: Callable[[str], None] = print,
    rank_env: dict[int, dict[str, str]] | None = None,
    paired: bool = False,
    body: Callable | None = None,
) -> CaseRun:
    """Spawn `clients` worker processes, collect their samples, fail loudly on any crash.

    `env` goes to every worker, `rank_env[rank]` to that worker on top. With `paired`, the
    two workers take turns (_paired_worker_body) and report settings.pairs windows each.
    `body` replaces the worker code (tests).
    """
    if paired and clients != 2:
        raise ValueError("a paired case has exactly two workers")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(clients)
    messages = ctx.Queue()
    config = dataclasses.asdict(settings)
    config["barrier_timeout_s"] = settings.case_timeout_s
    if paired:
        config["pair_cpu"] = pair_cpu()
        log(f"   both processes pinned to CPU {config['pair_cpu']}")
    body = body or (_paired_worker_body if paired else _worker_body)
    keys = list(range(clients))
    procs = [
        _start_worker(
            ctx, body, rank, config, barrier, messages, {**env, **(rank_env or {}).get(rank, {})}
        )
        for rank in keys
    ]
    slots = settings.pairs if paired else settings.repetitions
    samples: dict[str, list[list[WorkerSample | None]]] = {
        m: [[None] * clients for _ in range(slots)] for m in settings.models
    }
    ready: dict[int, dict] = {}

    def handle(kind: str, rank, msg: tuple) -> None:
        if kind == "ready":
            ready[rank] = msg[2]
            if len(ready) == clients and on_ready is not None:
                on_ready(ready)
        elif kind == "sample":
            _, _, model, rep, data = msg
            samples[model][rep][rank] = WorkerSample(**data)

    _collect(
        procs,
        keys,
        barrier,
        messages,
        settings.case_timeout_s,
        f"case with N={clients} timed out after {settings.case_timeout_s:g} s",
        lambda rank: f"worker {rank} of {clients}",
        handle,
    )
    missing = [
        (m, rep, rank)
        for m, reps in samples.items()
        for rep, row in enumerate(reps)
        for rank, s in enumerate(row)
        if s is None
    ]
    if missing:
        raise WorkerCrash(f"workers finished but samples are missing: {missing[:5]}")
    info = next(iter(ready.values()), {})
    return CaseRun(
        samples={m: [list(row) for row in reps] for m, reps in samples.items()},  # type: ignore[misc]
        torch_version=info.get("torch", ""),
        gpu=info.get("gpu", ""),
    )


def _is_oom(torch, exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _build_step(torch, model: str, config: dict, device) -> Callable[[], object]:
    """Return a callable running one inference iteration of `model` (no synchronize)."""
    nn = torch.nn
    half = torch.float16
    if model == "mlp":
        layers: list = []
        for _ in range(MLP_LAYERS):
            layers += [nn.Linear(MLP_WIDTH, MLP_WIDTH), nn.ReLU()]
        net = nn.Sequential(*layers).to(device=device, dtype=half).eval()
        x = torch.randn(MLP_BATCH, MLP_WIDTH, device=device, dtype=half)
        return lambda: net(x)
    if model == "transformer":
        layer = nn.TransformerEncoderLayer(
            d_model=TRANSFORMER_D_MODEL,
            nhead=TRANSFORMER_HEADS,
            dim_feedforward=TRANSFORMER_FFN,
            dropout=0.0,
            batch_first=True,
        )
        net = nn.TransformerEncoder(layer, TRANSFORMER_LAYERS, enable_nested_tensor=False)
        net = net.to(device=device, dtype=half).eval()
        x = torch.randn(
            TRANSFORMER_BATCH, TRANSFORMER_SEQ, TRANSFORMER_D_MODEL, device=device, dtype=half
        )
        return lambda: net(x)
    if model == "memory":
        per_matrix = MEMORY_DIM * MEMORY_DIM * 2
        count = max(1, round(config["memory_gib"] * 1024**3 / per_matrix))
        weights = []
        for _ in range(count):
            w = torch.empty(MEMORY_DIM, MEMORY_DIM, device=device, dtype=half)
            w.normal_(0.0, MEMORY_DIM**-0.5)  # keeps activations O(1) through the chain
            weights.append(w)
        x0 = torch.randn(MEMORY_BATCH, MEMORY_DIM, device=device, dtype=half)

        def step() -> object:
            y = x0
            for w in weights:  # streams every weight once: bandwidth-bound, like LLM decode
                y = torch.mm(y, w)
            return y

        return step
    raise ValueError(f"unknown model {model}")


def _loop(
    torch, step, seconds: float, latencies: list[float] | None, launches: list[float] | None = None
) -> tuple[int, float]:
    """Run step+synchronize until `seconds` have passed (at least once). `launches` gets the
    host time of each step() call alone (the kernels are launched asynchronously)."""
    sync = torch.cuda.synchronize
    perf = time.perf_counter
    start = perf()
    end = start + seconds
    n = 0
    while True:
        t0 = perf()
        step()
        if launches is not None:
            launches.append(perf() - t0)
        sync()
        t1 = perf()
        if latencies is not None:
            latencies.append(t1 - t0)
        n += 1
        if t1 >= end:
            return n, t1 - start


def _cpu_probe(loops: int = 50_000) -> float:
    """Milliseconds for a fixed pure-Python loop: how fast this worker's CPU is right now.
    The launch-bound models run at the speed of the core they are on, so a slow window with
    a slow probe points at the host, not the GPU."""
    start = time.perf_counter()
    x = 0
    for i in range(loops):
        x += i * i
    return (time.perf_counter() - start) * 1e3


def _run_worker(body: Callable, key, config: dict, barrier, messages) -> None:
    """A worker process's entry point: run body(key, config, barrier, messages) and send any
    failure to the parent (which fails the run), breaking the barrier for the others."""
    try:
        body(key, config, barrier, messages)
    except Exception:
        messages.put(("error", key, traceback.format_exc()))
        # Flush the error before releasing the others from the barrier: their own errors
        # (a broken barrier) must not reach the parent first and hide the cause.
        messages.close()
        messages.join_thread()
        with contextlib.suppress(Exception):
            barrier.abort()
        sys.exit(1)
    messages.close()
    messages.join_thread()


def _worker_body(rank: int, config: dict, barrier, messages) -> None:
    import gc

    import torch

    torch.set_num_threads(1)
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    torch.zeros(1, device=device)  # create the CUDA context (and connect to MPS) now
    torch.manual_seed(1000 + rank)
    messages.put(("ready", rank, _ready_info(torch, device)))
    timeout = config["barrier_timeout_s"]

    def free() -> None:
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()

    with torch.inference_mode():
        for model in config["models"]:
            free()
            torch.cuda.reset_peak_memory_stats(device)
            oom = ""
            step = None
            try:
                step = _build_step(torch, model, config, device)
                step()
                torch.cuda.synchronize()
            except Exception as exc:
                if not _is_oom(torch, exc):
                    raise
                oom = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                step = None
                free()
            barrier.wait(timeout)  # everybody has built (or failed to build) the model
            for rep in range(config["repetitions"]):
                latencies: list[float] = []
                n, elapsed = 0, 0.0
                barrier.wait(timeout)
                if step is not None:
                    try:
                        _loop(torch, step, config["warmup_s"], None)
                    except Exception as exc:
                        if not _is_oom(torch, exc):
                            raise
                        oom, step = f"{type(exc).__name__}: {str(exc).splitlines()[0]}", None
                        free()
                probe_ms = _cpu_probe()
                barrier.wait(timeout)  # timed windows start together
                switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
                window_start = time.monotonic()
                if step is not None:
                    try:
                        n, elapsed = _loop(torch, step, config["duration_s"], latencies)
                    except Exception as exc:
                        if not _is_oom(torch, exc):
                            raise
                        oom, step = f"{type(exc).__name__}: {str(exc).splitlines()[0]}", None
                        free()
                window_end = time.monotonic()
                switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches
                free_b, total_b = torch.cuda.mem_get_info(device)
                host = {
                    "window_start": window_start,
                    "window_end": window_end,
                    "host_rss_mib": parse_kib_field(_read_text("/proc/self/status") or "", "VmHWM"),
                    "host_pss_mib": parse_kib_field(
                        _read_text("/proc/self/smaps_rollup") or "", "Pss"
                    ),
                    "cpu": parse_last_cpu(_read_text("/proc/self/stat") or ""),
                    "involuntary_switches": switches,
                    "cpu_probe_ms": probe_ms,
                }
                if oom:
                    sample = WorkerSample(
                        rank, 0, 0.0, None, None, None, None, None, STATUS_OOM, oom, **host
                    )
                else:
                    p50, p99 = latency_percentiles_ms(latencies)
                    sample = WorkerSample(
                        rank=rank,
                        iterations=n,
                        elapsed_s=elapsed,
                        p50_ms=p50,
                        p99_ms=p99,
                        mem_allocated_mib=torch.cuda.max_memory_allocated(device) / MIB,
                        mem_reserved_mib=torch.cuda.max_memory_reserved(device) / MIB,
                        device_used_mib=(total_b - free_b) / MIB,
                        **host,
                    )
                messages.put(("sample", rank, model, rep, dataclasses.asdict(sample)))
            step = None
    free()
    messages.put(("done", rank))


def _ready_info(torch, device) -> dict:
    return {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device),
        "pid": os.getpid(),
    }


def _host_info() -> dict:
    return {
        "host_rss_mib": parse_kib_field(_read_text("/proc/self/status") or "", "VmHWM"),
        "host_pss_mib": parse_kib_field(_read_text("/proc/self/smaps_rollup") or "", "Pss"),
        "cpu": parse_last_cpu(_read_text("/proc/self/stat") or ""),
    }


def _paired_worker_body(rank: int, config: dict, barrier, messages) -> None:
    """One of the two processes of a paired case (rank 0 plain, rank 1 the MPS client; the
    parent set their environments). Both are pinned to one CPU core and take turns: per pair
    each runs one short warm-up and one timed window while the other waits on the barrier,
    the order alternating from pair to pair; a CPU probe is taken right before and right
    after every window."""
    import gc

    import torch

    if config.get("pair_cpu") is not None:
        os.sched_setaffinity(0, {config["pair_cpu"]})
    torch.set_num_threads(1)
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    torch.zeros(1, device=device)
    torch.manual_seed(1000)  # the same weights in both processes
    messages.put(("ready", rank, _ready_info(torch, device)))
    timeout = config["barrier_timeout_s"]
    with torch.inference_mode():
        for model in config["models"]:
            gc.collect()
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
            step = _build_step(torch, model, config, device)
            step()
            torch.cuda.synchronize()
            for turn in range(2):  # a full warm-up each, in turn
                barrier.wait(timeout)
                if turn == rank:
                    _loop(torch, step, config["warmup_s"], None)
            for pair in range(config["pairs"]):
                order = (0, 1) if pair % 2 == 0 else (1, 0)
                for active in order:
                    barrier.wait(timeout)  # the other one's window is over
                    if active != rank:
                        continue
                    _loop(torch, step, PAIR_WARMUP_S, None)
                    latencies: list[float] = []
                    probe_ms = _cpu_probe()
                    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
                    window_start = time.monotonic()
                    n, elapsed = _loop(torch, step, config["pair_window_s"], latencies)
                    window_end = time.monotonic()
                    switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches
                    probe_after_ms = _cpu_probe()
                    p50, p99 = latency_percentiles_ms(latencies)
                    free_b, total_b = torch.cuda.mem_get_info(device)
                    sample = WorkerSample(
                        rank=rank,
                        iterations=n,
                        elapsed_s=elapsed,
                        p50_ms=p50,
                        p99_ms=p99,
                        mem_allocated_mib=torch.cuda.max_memory_allocated(device) / MIB,
                        mem_reserved_mib=torch.cuda.max_memory_reserved(device) / MIB,
                        device_used_mib=(total_b - free_b) / MIB,
                        window_start=window_start,
                        window_end=window_end,
                        involuntary_switches=switches,
                        cpu_probe_ms=probe_ms,
                        cpu_probe_after_ms=probe_after_ms,
                        **_host_info(),
                    )
                    messages.put(("sample", rank, model, pair, dataclasses.asdict(sample)))
            barrier.wait(timeout)  # the last window is over before either frees the model
            step = None
    messages.put(("done", rank))


def interleaved_cores(processes_per_group: int) -> list[int] | None:
    """The CPU core of each rank (rank i of every group on the i-th), leaving the lowest
    allowed core to the parent and its telemetry; None (no pinning) on too few cores."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) <= processes_per_group:
        return None
    return allowed[-processes_per_group:]


def check_group_clients(
    ready: dict[tuple[str, int], dict], group: str, listed: Sequence[str]
) -> str:
    """The MPS server of an interleaved run must serve exactly the MPS group's workers and no
    plain one. Raises otherwise; returns what was verified (pids compare only where the
    daemon sees the workers' pid namespace)."""
    members = {str(info.get("pid")) for (g, _), info in ready.items() if g == group}
    plain = {str(info.get("pid")) for (g, _), info in ready.items() if g != group}
    if len(listed) != len(members) or plain & set(listed):
        raise BenchmarkError(
            f"the MPS server lists clients {sorted(listed)}; want the {len(members)} workers "
            f"of the {group} group {sorted(members)} and none of the plain ones"
        )
    if set(listed) == members:
        return f"its {len(listed)} clients are the {group} group's workers, no plain process"
    return f"it has {len(listed)} clients (pids not comparable with the workers')"


def gpu_interleaved_runner(gpu: GpuInfo, log: Callable[[str], None] = print) -> InterleavedRunner:
    """The real interleaved runner: every process group up at once on GPU 0, the MPS group as
    clients of one MPS daemon, while the GPU and the host are sampled."""
    backend, read_gpu = gpu_telemetry_reader()
    log(f"GPU telemetry through {backend}")

    def run(settings: Settings) -> InterleavedRun:
        groups = worker_groups(settings)
        mps_groups = [g for g in groups if g != "plain"]
        if mps_groups:
            compute_mode = query_compute_mode()
            log(f"   GPU compute mode: {compute_mode}")
            if compute_mode not in ("Default", None):
                raise BenchmarkError(
                    "the interleaved method runs plain processes beside the MPS server, which "
                    f"needs compute mode Default; the GPU is in {compute_mode}: use "
                    "--method sweep"
                )
        with TelemetryMonitor(read_gpu, settings.telemetry_interval_s) as monitor:
            if not mps_groups:
                result = run_interleaved_workers(settings, {"plain": {}}, log=log)
            else:
                (group,) = mps_groups
                commands: list[str] = []
                if group == "mps-limited":
                    if gpu.memory_total_mib is None:
                        raise BenchmarkError("mps-limited needs the GPU's total memory")
                    commands = mps_limit_commands(settings.mps_replicas, gpu.memory_total_mib)
                with mps_daemon(commands, log=log) as daemon:

                    def check_server(ready: dict[tuple[str, int], dict]) -> None:
                        servers = daemon.command("get_server_list").split()
                        if len(servers) != 1:
                            raise BenchmarkError(
                                f"the MPS daemon lists servers {servers}, want one\n"
                                + daemon.log_tail()
                            )
                        want = group_size(settings)
                        for _ in range(10):  # the listing can lag behind the clients' start
                            listed = daemon.command(f"get_client_list {servers[0]}").split()
                            if len(listed) >= want:
                                break
                            time.sleep(0.3)
                        log(f"   MPS server pid {servers[0]}: {len(listed)} client(s) listed")
                        log(f"   {check_group_clients(ready, group, listed)}")

                    try:
                        result = run_interleaved_workers(
                            settings,
                            {"plain": {}, group: daemon.env},
                            on_ready=check_server,
                            log=log,
                        )
                    except BenchmarkError as exc:
                        raise type(exc)(f"{exc}\n{daemon.log_tail()}") from exc
        return dataclasses.replace(result, telemetry=tuple(monitor.samples))

    return run


def run_interleaved_workers(
    settings: Settings,
    group_env: dict[str, dict[str, str]],
    on_ready: Callable[[dict[tuple[str, int], dict]], None] | None = None,
    log: Callable[[str], None] = print,
    body: Callable | None = None,
) -> InterleavedRun:
    """Spawn group_size processes per group (with that group's environment), let them run
    the schedule, collect every window's samples; fail loudly on any crash or hang. `body`
    replaces the worker code (tests)."""
    schedule = interleaved_schedule(settings)
    size = group_size(settings)
    members = [(group, rank) for group in group_env for rank in range(size)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(members))
    messages = ctx.Queue()
    config = dataclasses.asdict(settings)
    config["barrier_timeout_s"] = settings.case_timeout_s
    config["groups"] = list(group_env)
    config["cores"] = interleaved_cores(size)
    if config["cores"] is None:
        log(f"   {len(os.sched_getaffinity(0))} CPUs for {size} ranks: not pinned")
    else:
        log(f"   rank i of every group pinned to CPU {config['cores']}[i]")
    procs = [
        _start_worker(
            ctx,
            body or _interleaved_worker_body,
            member,
            config,
            barrier,
            messages,
            group_env[member[0]],
        )
        for member in members
    ]
    position = {w.index: {rank: i for i, rank in enumerate(w.ranks)} for w in schedule}
    group_of = {w.index: GROUP_OF_MODE[w.mode] for w in schedule}
    samples: dict[str, dict[int, list[WorkerSample | None]]] = {
        m: {w.index: [None] * w.clients for w in schedule} for m in settings.models
    }
    ready: dict[tuple[str, int], dict] = {}

    def handle(kind: str, member, msg: tuple) -> None:
        if kind == "ready":
            ready[member] = msg[2]
            if len(ready) == len(members) and on_ready is not None:
                on_ready(ready)
        elif kind == "sample":
            _, _, model, index, data = msg
            group, rank = member
            if group_of[index] != group or rank not in position[index]:
                raise WorkerCrash(f"worker {member} sent a sample for window {index}")
            samples[model][index][position[index][rank]] = WorkerSample(**data)

    limit = max(settings.case_timeout_s, 3 * estimate_seconds(settings))
    _collect(
        procs,
        members,
        barrier,
        messages,
        limit,
        f"interleaved run timed out after {limit:.0f} s",
        lambda member: f"worker {member}",
        handle,
    )
    missing = [
        (m, index)
        for m, by_index in samples.items()
        for index, row in by_index.items()
        if any(s is None for s in row)
    ]
    if missing:
        raise WorkerCrash(f"workers finished but samples are missing: {missing[:5]}")
    info = next(iter(ready.values()), {})
    return InterleavedRun(
        windows=tuple(schedule),
        samples=samples,  # type: ignore[arg-type]
        torch_version=info.get("torch", ""),
        gpu=info.get("gpu", ""),
    )


def settings_from_config(config: dict) -> Settings:
    """The Settings a worker was given (as dataclasses.asdict, plus extra keys)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    values = {k: v for k, v in config.items() if k in names}
    for key in ("models", "modes", "clients"):
        values[key] = tuple(values[key])
    return Settings(**values)


def _interleaved_worker_body(member: tuple[str, int], config: dict, barrier, messages) -> None:
    """One process of one group. Every process walks the same schedule: at each window all
    meet at the barrier, the window's ranks of its group warm up briefly, all meet again, the
    active ones run the timed window (CPU probes right before and after) and report it."""
    import gc

    import torch

    group, rank = me = member
    if config.get("cores"):
        os.sched_setaffinity(0, {config["cores"][rank]})
    torch.set_num_threads(1)
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    torch.zeros(1, device=device)  # create the CUDA context (and connect to MPS) now
    messages.put(("ready", me, _ready_info(torch, device)))
    settings = settings_from_config(config)
    schedule = interleaved_schedule(settings)
    timeout = config["barrier_timeout_s"]

    def free() -> None:
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()

    def oom_text(exc: BaseException) -> str:
        if not _is_oom(torch, exc):
            raise exc
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    with torch.inference_mode():
        for model in settings.models:
            free()
            torch.cuda.reset_peak_memory_stats(device)
            torch.manual_seed(1000 + rank)  # rank i of every group holds the same weights
            oom, step = "", None
            try:
                step = _build_step(torch, model, config, device)
                step()
                torch.cuda.synchronize()
            except Exception as exc:
                oom, step = oom_text(exc), None
                free()
            barrier.wait(timeout)  # everybody has built (or failed to build) the model
            for warming in config["groups"]:  # a full warm-up per group, the others idle
                barrier.wait(timeout)
                if warming == group and step is not None:
                    try:
                        _loop(torch, step, settings.warmup_s, None)
                    except Exception as exc:
                        oom, step = oom_text(exc), None
                        free()
            for w in schedule:
                active = GROUP_OF_MODE[w.mode] == group and rank in w.ranks
                barrier.wait(timeout)  # the previous window is over
                probe_ms = None
                if active and step is not None:
                    try:
                        _loop(torch, step, PAIR_WARMUP_S, None)
                    except Exception as exc:
                        oom, step = oom_text(exc), None
                        free()
                    probe_ms = _cpu_probe()
                barrier.wait(timeout)  # the timed windows of the active ranks start together
                if not active:
                    continue
                latencies: list[float] = []
                launches: list[float] = []
                n, elapsed = 0, 0.0
                switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
                window_start = time.monotonic()
                if step is not None:
                    try:
                        n, elapsed = _loop(torch, step, settings.window_s, latencies, launches)
                    except Exception as exc:
                        oom, step = oom_text(exc), None
                        free()
                window_end = time.monotonic()
                switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches
                host = {
                    "window_start": window_start,
                    "window_end": window_end,
                    "involuntary_switches": switches,
                    "cpu_probe_ms": probe_ms,
                    "cpu_probe_after_ms": _cpu_probe(),
                    **_host_info(),
                }
                if oom or step is None:
                    sample = WorkerSample(
                        rank, 0, 0.0, None, None, None, None, None, STATUS_OOM, oom, **host
                    )
                else:
                    p50, p99 = latency_percentiles_ms(latencies)
                    free_b, total_b = torch.cuda.mem_get_info(device)
                    sample = WorkerSample(
                        rank=rank,
                        iterations=n,
                        elapsed_s=elapsed,
                        p50_ms=p50,
                        p99_ms=p99,
                        mem_allocated_mib=torch.cuda.max_memory_allocated(device) / MIB,
                        mem_reserved_mib=torch.cuda.max_memory_reserved(device) / MIB,
                        device_used_mib=(total_b - free_b) / MIB,
                        launch_ms=1e3 * math.fsum(launches) / len(launches),
                        **host,
                    )
                messages.put(("sample", me, model, w.index, dataclasses.asdict(sample)))
            barrier.wait(timeout)  # the last window is over before anyone frees the model
            step = None
    free()
    messages.put(("done", me))


# --------------------------------------------------------------------------------------------
# CLI


def main(
    argv: Sequence[str] | None = None,
    runner: Runner | None = None,
    gpu: GpuInfo | None = None,
    interleaved_runner: InterleavedRunner | None = None,
) -> int:
    args = parse_args(argv)
    if args.command == "merge":
        merged = merge_results([load_results(p) for p in args.inputs])
        write_csv(args.out, merged)
        print(f"wrote {len(merged)} rows to {args.out}")
        if oom_cases(merged):
            print(f"note: {oom_message(oom_cases(merged))}", file=sys.stderr)
        return 0
    if args.command == "plot":
        print(f"wrote {plot_results(load_results(args.csv), args.out)}")
        return 0
    if args.command == "table":
        print(format_table(load_results(args.csv)))
        return 0
    if args.command == "compare":
        lines, problems = compare_runs(
            load_results(args.first), load_results(args.second), args.max_diff_pct
        )
        print("\n".join(lines))
        if problems:
            print("\n".join(["ERROR: THE RUNS DO NOT AGREE:", *problems]), file=sys.stderr)
            return 4
        return 0
    if args.command == "summarize":
        settings, meta, run = interleaved_from_raw(read_raw(args.raw))
        results = summarize_interleaved_run(settings, run, meta, reference=args.reference)
        write_csv(args.out, results)
        print(f"wrote {len(results)} rows to {args.out}")
        print(format_table(results))
        return 0

    settings = settings_from_args(args)
    gpu = gpu or query_gpu()
    interleaved = settings.method == METHOD_INTERLEAVED
    problem = interleaved_memory_problem(settings, gpu)
    if problem:
        print(f"ERROR: {problem}", file=sys.stderr)
        return 2
    cases = [("exclusive", 1), *interleaved_cases(settings)] if interleaved else None
    print(
        f"GPU {gpu.name}, driver {gpu.driver}, {gpu.memory_total_mib} MiB; method "
        f"{settings.method}; {len(cases or planned_cases(settings))} cases "
        f"{cases or planned_cases(settings)}; estimated {estimate_seconds(settings) / 60:.1f} min",
        flush=True,
    )
    raw: list[dict] = []
    try:
        if interleaved:
            results = run_interleaved_benchmark(
                settings,
                interleaved_runner or gpu_interleaved_runner(gpu),
                gpu,
                raw=raw,
                reference=args.reference,
            )
        else:
            results = run_benchmark(
                settings,
                runner or gpu_runner(gpu),
                gpu,
                raw=raw,
                on_case=lambda rows: write_csv(args.out, rows),
            )
    except BenchmarkError as exc:
        if exc.partial_results:
            write_csv(args.out, exc.partial_results)
            print(f"wrote {len(exc.partial_results)} finished rows to {args.out}", file=sys.stderr)
        print(f"ERROR: benchmark failed: {exc}", file=sys.stderr)
        return 1
    write_csv(args.out, results)
    print(f"wrote {len(results)} rows to {args.out}")
    if args.raw_out:
        args.raw_out.parent.mkdir(parents=True, exist_ok=True)
        args.raw_out.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        plot_results(results, args.plot)
    print(format_table(results))
    banner = "!" * 78
    word = "WARNING" if args.accept_unstable_baseline else "ERROR"
    if interleaved:
        # Interleaved: a baseline drift is shared by every case sampled alongside it, so what
        # fails the run is a ratio that the two halves of the run do not reproduce; the drift
        # itself is reported.
        drift = baseline_problems(results, args.max_baseline_spread_pct)
        if drift:
            print(
                "\n".join(
                    [
                        "NOTE: the baseline moved during the run; the shared cases were "
                        "measured alongside it (see each row's ratio_halves_pct):",
                        *(f"  {line}" for line in drift),
                    ]
                ),
                file=sys.stderr,
            )
        unstable = halves_problems(results, args.max_ratio_halves_pct)
        headline = f"{word}: UNSTABLE RATIOS - the two halves of the run disagree:"
        hint = "  Look at the baseline and pair lines of the log above."
    else:
        unstable = baseline_problems(results, args.max_baseline_spread_pct)
        headline = (
            f"{word}: UNSTABLE BASELINE - every ratio of these models is uncertain by about "
            "this much:"
        )
        hint = (
            "  Look at the SM clock, steal and cpu-probe figures of the exclusive repetitions "
            "above."
        )
    status = 0
    if unstable:
        lines = [banner, headline, *(f"  {line}" for line in unstable), hint, banner]
        print("\n".join(lines), file=sys.stderr)
        if not args.accept_unstable_baseline:
            status = 4
    try:
        raise_on_oom(results)
    except OutOfMemoryFailure as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        status = 3
    return status


if __name__ == "__main__":
    sys.exit(main())
