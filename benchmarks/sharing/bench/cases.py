"""What a run measures and in what order: the settings, the (mode, N) cases, the process groups
that stay up for the whole run and the schedule of windows they take turns in."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .records import Result, TelemetrySample, WorkerSample

MODELS = ("mlp", "transformer", "memory")
# The modes that need nothing beyond PyTorch and the NVIDIA driver (and its MPS daemon): what the
# in-cluster Job may be asked for (eks_gpu_slicing.settings.addons).
MODES = ("exclusive", "time-slicing", "mps", "mps-limited")
# N clients each capped by HAMi-core (`libvgpu.so`, preloaded), as HAMi's device plugin caps a
# container. It needs that library on the machine (`run --hami-lib`), which the Job's image does
# not ship, so it is a mode of local runs only.
HAMI_MODE = "hami"
ALL_MODES = (*MODES, HAMI_MODE)
DEFAULT_MODES = ("exclusive", "time-slicing", "mps")
DEFAULT_CLIENTS = (1, 2, 4, 8, 10)
DEFAULT_WARMUP_S = 1.0


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
PAIR_WARMUP_S = 0.1  # the active process's own warm-up at the start of each window


# A pair counts only if the CPU probes around both of its windows are within this fraction of
# each other (max / min - 1): the core was in the same state for both. The two states seen on
# the H200 VM (about 2.5 and 4.3 ms) are 1.7x apart.
DEFAULT_PAIR_PROBE_TOLERANCE = 0.2
# One client of these modes is measured against the exclusive window right before it on the same
# core (pairing): one MPS client, or one process under HAMi-core's cap, is the lone process plus
# whatever the mechanism costs it.
PAIRED_MODES = ("mps", "mps-limited", HAMI_MODE)
DEFAULT_ROUNDS = 12
DEFAULT_WINDOW_S = 0.4


# The process group a mode's windows run in: plain CUDA contexts serve both the exclusive
# baseline (one of them alone) and time-slicing (several at once).
GROUP_OF_MODE = {
    "exclusive": "plain",
    "time-slicing": "plain",
    "mps": "mps",
    "mps-limited": "mps-limited",
    HAMI_MODE: "hami",
}


# The process groups that are clients of the run's MPS daemon.
MPS_GROUPS = ("mps", "mps-limited")


# The per-client device memory cap of the hami mode, GiB. HAMi's device plugin gives each
# container its share of the GPU's memory (nvidia.com/gpumem); 8 GiB holds the `memory`
# model's default 4 GiB of weights and a CUDA context with room to spare, and is about what a
# quarter of an A10G (24 GB) or half of a T4 (16 GB) would give.
DEFAULT_HAMI_MEMORY_GIB = 8.0


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]
    modes: tuple[str, ...]
    clients: tuple[int, ...]
    warmup_s: float
    memory_gib: float
    mps_replicas: int
    case_timeout_s: float
    telemetry_interval_s: float = DEFAULT_TELEMETRY_INTERVAL_S
    pair_probe_tolerance: float = DEFAULT_PAIR_PROBE_TOLERANCE
    rounds: int = DEFAULT_ROUNDS
    window_s: float = DEFAULT_WINDOW_S
    # The hami mode's caps per client: device memory (GiB) and, optionally, HAMi-core's SM
    # utilisation limit (percent; None leaves it unset, i.e. no limit).
    hami_memory_gib: float = DEFAULT_HAMI_MEMORY_GIB
    hami_sm_limit: int | None = None


@dataclass(frozen=True)
class GpuInfo:
    name: str
    driver: str
    memory_total_mib: int | None


def clients_for_mode(mode: str, clients: Sequence[int]) -> list[int]:
    """The N values a mode is run with."""
    if mode == "exclusive":
        return [1]
    if mode == "time-slicing":
        return [n for n in clients if n > 1]  # one time-sliced process is the exclusive case
    return list(clients)


def estimate_seconds(settings: Settings) -> float:
    """Rough wall time: process start-up plus barriers, warm-ups and timed windows."""

    processes = len(worker_groups(settings)) * group_size(settings)
    startup = 4.0 + 0.2 * processes  # interpreter + torch import + CUDA context (on an H200)
    per_window = PAIR_WARMUP_S + settings.window_s + 0.08  # barriers, probes, messages
    per_model = (
        1.0
        + len(worker_groups(settings)) * (settings.warmup_s + 0.1)
        + len(interleaved_schedule(settings)) * per_window
    )
    return startup + len(settings.models) * per_model


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
    if "memory" not in settings.models:
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
        "or less, or fewer --clients"
    )


def hami_cap_problem(settings: Settings) -> str | None:
    """Why the hami mode's clients could not hold the `memory` model under their cap, or None.
    HAMi-core counts a process's CUDA context against its cap as well as its allocations."""
    if HAMI_MODE not in settings.modes or "memory" not in settings.models:
        return None
    need_gib = settings.memory_gib + CUDA_CONTEXT_GIB
    if need_gib <= settings.hami_memory_gib:
        return None
    return (
        f"the memory model needs about {need_gib:g} GiB per process ({settings.memory_gib:g} "
        f"GiB of weights + {CUDA_CONTEXT_GIB:g} GiB of CUDA context) and the hami mode caps "
        f"each client at {settings.hami_memory_gib:g} GiB: raise --hami-memory-gib or lower "
        "--memory-gib"
    )


def sort_results(results: Sequence[Result]) -> list[Result]:
    def order(value: str, known: Sequence[str]) -> tuple[int, str]:
        return (known.index(value), "") if value in known else (len(known), value)

    return sorted(
        results, key=lambda r: (order(r.model, MODELS), order(r.mode, ALL_MODES), r.clients)
    )


def settings_from_config(config: dict) -> Settings:
    """The Settings a worker was given (as dataclasses.asdict, plus extra keys)."""
    names = {f.name for f in dataclasses.fields(Settings)}
    values = {k: v for k, v in config.items() if k in names}
    for key in ("models", "modes", "clients"):
        values[key] = tuple(values[key])
    return Settings(**values)
