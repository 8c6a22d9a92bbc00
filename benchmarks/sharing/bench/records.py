"""What a run produces: worker samples, telemetry samples, result rows, and the errors that end
a run or refuse a file it was given. Plain data, no behaviour beyond small derived values and
reading a file's bytes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Rows of older CSVs (the retired sweep method) divided by the median exclusive row.
RATIO_BASELINE = "median-baseline"
RATIO_PAIRED = "paired"
RATIO_INTERLEAVED = "interleaved"
STATUS_OK = "ok"
STATUS_OOM = "oom"
MIB = 1024 * 1024


class BenchmarkError(RuntimeError):
    """The benchmark could not produce trustworthy numbers."""

    partial_results: list[Result]

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.partial_results = []


class InputFileError(ValueError):
    """A file given on the command line cannot be used (missing, unreadable, not what it should
    be). The message is one line that starts with the file's path; the CLI prints it as is."""


def read_input(path: Path | str, what: str) -> bytes:
    """The bytes of an input file, or an InputFileError saying in one line why not. `what`
    names what the file should be ("a results CSV")."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise InputFileError(f"{path}: no such file; want {what}") from None
    except IsADirectoryError:
        raise InputFileError(f"{path}: is a folder; want {what}") from None
    except OSError as exc:
        raise InputFileError(f"{path}: cannot read it: {exc.strerror or exc}") from None


class WorkerCrash(BenchmarkError):
    """A worker process failed with something other than running out of GPU memory."""


class OutOfMemoryFailure(BenchmarkError):
    """One or more (model, mode, N) cases ran out of GPU memory."""

    def __init__(self, cases: Sequence[tuple[str, str, int]]) -> None:
        self.cases = list(cases)
        super().__init__(oom_message(self.cases))


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


def oom_cases(results: Sequence[Result]) -> list[tuple[str, str, int]]:
    return [r.key for r in results if r.status == STATUS_OOM]


def oom_message(cases: Sequence[tuple[str, str, int]]) -> str:
    listed = "; ".join(f"model={m} mode={mode} N={n}" for m, mode, n in cases)
    return f"out of GPU memory in {len(cases)} case(s): {listed}"
