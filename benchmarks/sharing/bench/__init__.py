"""GPU sharing benchmark: one GPU, N concurrent inference processes, three ways of sharing.

Modes
  exclusive     one plain process (N=1): the baseline every other row is compared with.
  time-slicing  N plain processes, each with its own CUDA context: what N pods get from the
                NVIDIA device plugin's timeSlicing strategy.
  mps           N clients of one CUDA MPS server, started by the run with private pipe and log
                directories and no client limits.
  mps-limited   like mps, with the per-client limits the device plugin's MPS strategy sets for
                `replicas: R` (--mps-replicas): 100/R % of the threads, total/R of the memory.
  hami          N plain processes, each preloading HAMi-core (libvgpu.so, --hami-lib) with a
                device memory cap of its own (--hami-memory-gib) and optionally its soft SM
                limit (--hami-sm-limit): what N pods get from HAMi's device plugin. Local runs
                only: the in-cluster Job's image has no HAMi-core. `hami-check` shows the cap
                holding (hami).

Method (one, for the published figures and the in-cluster Job alike)
  Every process group stays up for the whole run (plain CUDA contexts for exclusive and
  time-slicing, the clients of one MPS daemon for mps or mps-limited), rank i of each group
  pinned to the same CPU core, and all cases take turns in short windows, round after round,
  each right after an exclusive window on the core of its first worker (cases). Ratios divide
  a case's mean over its rounds by the mean of all exclusive windows; one MPS client is paired
  with the exclusive window before it (summary, pairing). Launch-bound models are stated at a
  reference host speed (host_speed), never above what N clients can deliver.

Modules, in the direction of their imports: records (data) <- cases (settings, schedule) <-
pairing, summary, host_speed (rows and ratios) <- run; results_csv, plots; telemetry, mps, hami,
workers (the only one that touches torch, inside the spawned processes) <- cli.

Run it with `python -m benchmarks.sharing.bench run ...` from the repository root, or
`python -m bench run ...` with PYTHONPATH at the folder holding this package (the Job does).
"""

from .cases import (
    ALL_MODES,
    DEFAULT_ROUNDS,
    DEFAULT_WINDOW_S,
    GROUP_OF_MODE,
    HAMI_MODE,
    MODELS,
    MODES,
    Settings,
    estimate_seconds,
    group_size,
    interleaved_schedule,
    settings_from_config,
    worker_groups,
)
from .cli import build_parser, main, parse_args, settings_from_args
from .records import STATUS_OK, Result, WorkerSample
from .results_csv import load_results, results_by_key

__all__ = [
    "ALL_MODES",
    "DEFAULT_ROUNDS",
    "DEFAULT_WINDOW_S",
    "GROUP_OF_MODE",
    "HAMI_MODE",
    "MODELS",
    "MODES",
    "STATUS_OK",
    "Result",
    "Settings",
    "WorkerSample",
    "build_parser",
    "estimate_seconds",
    "group_size",
    "interleaved_schedule",
    "load_results",
    "main",
    "parse_args",
    "results_by_key",
    "settings_from_args",
    "settings_from_config",
    "worker_groups",
]
