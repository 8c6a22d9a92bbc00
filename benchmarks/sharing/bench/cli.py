"""The command line: `run`, `plan`, `summarize`, `compare`, `plot`, `table`."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import hami
from .cases import (
    ALL_MODES,
    CUDA_CONTEXT_GIB,
    DEFAULT_CASE_TIMEOUT_S,
    DEFAULT_CLIENTS,
    DEFAULT_HAMI_MEMORY_GIB,
    DEFAULT_MAX_BASELINE_SPREAD_PCT,
    DEFAULT_MEMORY_GIB,
    DEFAULT_MODES,
    DEFAULT_MPS_REPLICAS,
    DEFAULT_PAIR_PROBE_TOLERANCE,
    DEFAULT_ROUNDS,
    DEFAULT_TELEMETRY_INTERVAL_S,
    DEFAULT_WARMUP_S,
    DEFAULT_WINDOW_S,
    HAMI_MODE,
    MODELS,
    GpuInfo,
    InterleavedRunner,
    Settings,
    estimate_seconds,
    group_size,
    hami_cap_problem,
    interleaved_cases,
    interleaved_memory_problem,
    interleaved_schedule,
    worker_groups,
)
from .host_speed import REFERENCE_LAUNCH_MS, REFERENCE_NONE
from .plots import plot_results
from .records import BenchmarkError, InputFileError, OutOfMemoryFailure, Result
from .results_csv import compare_runs, format_table, load_results, write_csv
from .runs import (
    load_raw_run,
    run_interleaved_benchmark,
    summarize_interleaved_run,
)
from .summary import baseline_problems, halves_problems, raise_on_oom
from .telemetry import query_gpu
from .workers import gpu_interleaved_runner, run_cap_check


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


def _add_case_arguments(parser: argparse.ArgumentParser) -> None:
    """What a run measures: shared by `run` and `plan`."""
    parser.add_argument(
        "--models",
        type=_choices(MODELS),
        default=MODELS,
        help=f"comma-separated subset of {','.join(MODELS)} (default: all)",
    )
    parser.add_argument(
        "--modes",
        type=_choices(ALL_MODES),
        default=DEFAULT_MODES,
        help=f"comma-separated subset of {','.join(ALL_MODES)} (default: "
        f"{','.join(DEFAULT_MODES)}); {HAMI_MODE} needs --hami-lib",
    )
    parser.add_argument(
        "--clients",
        type=parse_clients,
        default=DEFAULT_CLIENTS,
        help="comma-separated process counts N (default: 1,2,4,8,10); exclusive always uses "
        "N=1, time-slicing skips N=1",
    )
    parser.add_argument(
        "--rounds",
        type=_number(int, 2, inclusive=True),
        default=DEFAULT_ROUNDS,
        help="rounds through every case (default: %(default)s)",
    )
    parser.add_argument(
        "--window",
        dest="window_s",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_WINDOW_S,
        help="timed seconds of each window (default: %(default)s)",
    )
    parser.add_argument(
        "--warmup",
        dest="warmup_s",
        type=_number(float, 0.0, inclusive=True),
        default=DEFAULT_WARMUP_S,
        help="warm-up seconds of each process group before its first window (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-gib",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_MEMORY_GIB,
        help="weights held by each process in the 'memory' model, GiB (default: %(default)s)",
    )
    parser.add_argument(
        "--mps-replicas",
        type=_number(int, 1, inclusive=True),
        default=DEFAULT_MPS_REPLICAS,
        help="replicas the device plugin would advertise, for mode mps-limited: thread "
        "percentage 100/R, pinned memory total/R (default: %(default)s)",
    )
    parser.add_argument(
        "--case-timeout",
        dest="case_timeout_s",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_CASE_TIMEOUT_S,
        help="seconds the run's processes may wait for each other before they are declared "
        "hung (default: %(default)s)",
    )
    parser.add_argument(
        "--telemetry-interval",
        dest="telemetry_interval_s",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_TELEMETRY_INTERVAL_S,
        help="seconds between GPU clock/temperature samples (default: %(default)s)",
    )
    parser.add_argument(
        "--pair-probe-tolerance",
        dest="pair_probe_tolerance",
        type=_number(float, 0.0, inclusive=True),
        default=DEFAULT_PAIR_PROBE_TOLERANCE,
        help="one MPS client: a pair of windows counts only if its four CPU probes are "
        "within this fraction of each other (max / min - 1; default: %(default)s)",
    )
    _add_hami_case_arguments(parser)


def _add_hami_case_arguments(parser: argparse.ArgumentParser) -> None:
    """The hami mode's caps: shared by `run` and `plan`."""
    parser.add_argument(
        "--hami-memory-gib",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_HAMI_MEMORY_GIB,
        help=f"mode {HAMI_MODE}: each client's device memory cap, GiB, as HAMi-core's "
        f"{hami.MEMORY_LIMIT_ENV}_0 (default: %(default)s)",
    )
    parser.add_argument(
        "--hami-sm-limit",
        type=_number(int, 1, inclusive=True),
        default=None,
        help=f"mode {HAMI_MODE}: each client's SM share, percent, as HAMi-core's "
        f"{hami.SM_LIMIT_ENV} (a soft limit; default: unset, no limit)",
    )


def _add_hami_library_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hami-lib",
        help=f"HAMi-core's libvgpu.so, preloaded into every capped client (default: "
        f"${hami.LIBRARY_ENV})",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark NVIDIA GPU sharing (exclusive, time-slicing, MPS) with N "
        "concurrent inference processes on one GPU.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the benchmark on the local GPU and write a CSV")
    _add_case_arguments(run)
    run.add_argument(
        "--max-baseline-spread",
        dest="max_baseline_spread_pct",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_MAX_BASELINE_SPREAD_PCT,
        help="percent by which the means of the exclusive windows over the run's thirds may "
        "differ before the drift is reported (default: %(default)s)",
    )
    run.add_argument(
        "--max-ratio-halves",
        dest="max_ratio_halves_pct",
        type=_number(float, 0.0, inclusive=False),
        default=DEFAULT_MAX_BASELINE_SPREAD_PCT,
        help="percent by which a ratio from the first half of the rounds may differ from the "
        "one from the second half before the run fails (default: %(default)s)",
    )
    run.add_argument(
        "--accept-unstable-baseline",
        action="store_true",
        help="report ratios whose halves disagree but exit 0",
    )
    _add_reference_argument(run)
    run.add_argument("--out", type=Path, default=Path("results.csv"), help="CSV to write")
    run.add_argument("--raw-out", type=Path, help="also write every worker's samples as JSON")
    run.add_argument("--plot", type=Path, help="also write the PNG plot here")
    _add_hami_library_argument(run)

    plan = sub.add_parser(
        "plan", help="print the cases, process groups and windows of a run, without a GPU"
    )
    _add_case_arguments(plan)

    plot = sub.add_parser("plot", help="plot a results CSV to a PNG")
    plot.add_argument("csv", type=Path)
    plot.add_argument("--out", type=Path, required=True)

    summarize = sub.add_parser(
        "summarize", help="recompute the CSV of a run from its --raw-out JSON"
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

    check = sub.add_parser(
        "hami-check",
        help="check HAMi-core's memory cap on the local GPU: a client capped at K GiB gets "
        "out of memory past K while the GPU has free memory, one under its cap is not "
        f"affected (exit {hami.CAP_NOT_HELD} if the cap did not hold)",
    )
    _add_hami_library_argument(check)
    check.add_argument(
        "--cap-gib",
        type=_number(float, 0.0, inclusive=False),
        default=4.0,
        help="the two capped clients' cap, GiB (default: %(default)s)",
    )
    check.add_argument(
        "--under-gib",
        type=_number(float, 0.0, inclusive=False),
        help="what the client under its cap holds, GiB (default: half the cap)",
    )
    check.add_argument(
        "--timeout",
        dest="timeout_s",
        type=_number(float, 0.0, inclusive=False),
        default=300.0,
        help="seconds the check's processes may wait for each other (default: %(default)s)",
    )
    check.add_argument("--out", type=Path, help="also write every process's report as JSON")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in ("run", "plan") and {"mps", "mps-limited"} <= set(args.modes):
        parser.error(
            "a run keeps one MPS daemon, with or without the device plugin's limits: measure "
            "mps and mps-limited in separate runs"
        )
    if args.command in ("run", "plan") and "mps-limited" in args.modes:
        too_many = [n for n in args.clients if n > args.mps_replicas]
        if too_many:
            parser.error(
                f"mode mps-limited: N={too_many} exceed --mps-replicas {args.mps_replicas}; "
                "the device plugin would never place more pods than replicas on one GPU"
            )
    _check_hami_args(parser, args)
    return args


def _check_hami_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The hami mode's and the cap check's arguments, before anything starts."""
    planned = args.command in ("run", "plan")
    if planned and args.hami_sm_limit is not None and args.hami_sm_limit > 100:
        parser.error(f"--hami-sm-limit {args.hami_sm_limit}: a percentage, 1 to 100")
    if planned and HAMI_MODE in args.modes:
        problem = hami_cap_problem(settings_from_args(args))
        if problem:
            parser.error(problem)
    if (args.command == "run" and HAMI_MODE in args.modes) or args.command == "hami-check":
        args.hami_lib = hami.resolve_library(args.hami_lib)
        problem = hami.library_problem(args.hami_lib)
        if problem:
            parser.error(problem)
    if args.command == "hami-check":
        if args.under_gib is None:
            args.under_gib = args.cap_gib / 2
        # the under-cap client holds its memory, its context and one more step under the cap
        room = args.cap_gib - CUDA_CONTEXT_GIB - 2 * hami.CHUNK_MIB / 1024
        if args.under_gib > room:
            parser.error(
                f"--under-gib {args.under_gib:g}: the client under a {args.cap_gib:g} GiB cap "
                f"also needs {CUDA_CONTEXT_GIB:g} GiB of CUDA context and "
                f"{2 * hami.CHUNK_MIB} MiB more: at most {room:g} GiB"
            )


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        models=tuple(args.models),
        modes=tuple(args.modes),
        clients=tuple(args.clients),
        warmup_s=float(args.warmup_s),
        memory_gib=float(args.memory_gib),
        mps_replicas=int(args.mps_replicas),
        case_timeout_s=float(args.case_timeout_s),
        telemetry_interval_s=float(args.telemetry_interval_s),
        pair_probe_tolerance=float(args.pair_probe_tolerance),
        rounds=int(args.rounds),
        window_s=float(args.window_s),
        hami_memory_gib=float(args.hami_memory_gib),
        hami_sm_limit=None if args.hami_sm_limit is None else int(args.hami_sm_limit),
    )


def describe_plan(settings: Settings) -> str:
    """What `run` would do with these settings: checked and printed without torch or a GPU."""
    groups = worker_groups(settings)
    size = group_size(settings)
    cases = [("exclusive", 1), *interleaved_cases(settings)]
    windows = interleaved_schedule(settings)
    lines = [
        f"models {', '.join(settings.models)}; cases "
        + ", ".join(f"{mode} N={n}" for mode, n in cases),
        f"process groups {', '.join(groups)}, {size} processes each ({len(groups) * size} in all)",
        f"per model {settings.rounds} rounds, {len(windows)} windows of "
        f"{settings.window_s:g} s; estimated {estimate_seconds(settings) / 60:.1f} min",
    ]
    if HAMI_MODE in settings.modes:
        sm = settings.hami_sm_limit
        lines.append(
            f"{HAMI_MODE}: every rank of its group preloads HAMi-core, capped at "
            f"{hami.memory_limit_value(settings.hami_memory_gib)} of device memory"
            + ("" if sm is None else f" and {sm} % of the SMs (soft)")
            + ", with a usage file of its own"
        )
    return "\n".join(lines)


def output_problem(path: Path) -> str | None:
    """Why `path` cannot be written, found before the work whose result goes there (a run
    takes minutes to hours), or None."""
    if path.is_dir():
        return f"{path}: is a folder; want the path of a file to write"
    folder = next(p for p in path.absolute().parents if p.exists())  # the root always exists
    if not folder.is_dir():
        return f"{path}: {folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return f"{path}: not writable"
    return None


# The files each command writes, checked before it starts.
OUTPUTS = {
    "run": ("out", "raw_out", "plot"),
    "plot": ("out",),
    "summarize": ("out",),
    "hami-check": ("out",),
}


def main(
    argv: Sequence[str] | None = None,
    gpu: GpuInfo | None = None,
    interleaved_runner: InterleavedRunner | None = None,
    cap_check_runner: Callable[..., dict[str, dict]] | None = None,
) -> int:
    """The exit status: 2 for a file that cannot be read or written (one line on stderr
    naming it), else the command's own (see _verdict for `run`)."""
    args = parse_args(argv)
    outputs = [getattr(args, name) for name in OUTPUTS.get(args.command, ())]
    problems = [p for path in outputs if path is not None and (p := output_problem(path))]
    for problem in problems:
        print(f"ERROR: {problem}", file=sys.stderr)
    if problems:
        return 2
    try:
        return _command(args, gpu, interleaved_runner, cap_check_runner)
    except InputFileError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2


def _command(
    args: argparse.Namespace,
    gpu: GpuInfo | None,
    interleaved_runner: InterleavedRunner | None,
    cap_check_runner: Callable[..., dict[str, dict]] | None,
) -> int:
    if args.command == "plan":
        print(describe_plan(settings_from_args(args)))
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
    if args.command == "hami-check":
        return _hami_check(args, cap_check_runner)
    if args.command == "summarize":
        settings, meta, run = load_raw_run(args.raw)
        results = summarize_interleaved_run(settings, run, meta, reference=args.reference)
        write_csv(args.out, results)
        print(f"wrote {len(results)} rows to {args.out}")
        print(format_table(results))
        return 0

    settings = settings_from_args(args)
    gpu = gpu or query_gpu()
    problem = interleaved_memory_problem(settings, gpu)
    if problem:
        print(f"ERROR: {problem}", file=sys.stderr)
        return 2
    print(
        f"GPU {gpu.name}, driver {gpu.driver}, {gpu.memory_total_mib} MiB\n"
        f"{describe_plan(settings)}",
        flush=True,
    )
    raw: list[dict] = []
    library = args.hami_lib if HAMI_MODE in settings.modes else None
    try:
        results = run_interleaved_benchmark(
            settings,
            interleaved_runner or gpu_interleaved_runner(gpu, hami_library=library),
            gpu,
            raw=raw,
            reference=args.reference,
        )
    except BenchmarkError as exc:
        if exc.partial_results:
            write_csv(args.out, exc.partial_results)
            print(f"wrote {len(exc.partial_results)} finished rows to {args.out}", file=sys.stderr)
        print(f"ERROR: benchmark failed: {exc}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_csv(args.out, results)
    print(f"wrote {len(results)} rows to {args.out}")
    if library is not None and raw:
        raw[0]["hami"] = _hami_provenance(library, settings)
    if args.raw_out:
        args.raw_out.parent.mkdir(parents=True, exist_ok=True)
        args.raw_out.write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        plot_results(results, args.plot)
    print(format_table(results))
    return _verdict(results, args)


def _verdict(results: Sequence[Result], args: argparse.Namespace) -> int:
    """The exit status: 4 when the two halves of the run give different ratios (a baseline
    drift is shared by every case sampled alongside it, so the drift itself is only
    reported), 3 when a case ran out of memory, else 0."""
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
    word = "WARNING" if args.accept_unstable_baseline else "ERROR"
    status = 0
    if unstable:
        banner = "!" * 78
        lines = [
            banner,
            f"{word}: UNSTABLE RATIOS - the two halves of the run disagree:",
            *(f"  {line}" for line in unstable),
            "  Look at the baseline and pair lines of the log above.",
            banner,
        ]
        print("\n".join(lines), file=sys.stderr)
        if not args.accept_unstable_baseline:
            status = 4
    try:
        raise_on_oom(results)
    except OutOfMemoryFailure as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        status = 3
    return status


def _hami_provenance(library: Path, settings: Settings) -> dict:
    """What the raw JSON records of the library a hami run preloaded, and its caps."""
    return {
        "library": str(library),
        "sha256": hami.library_digest(library),
        "env": hami.client_env(
            library, settings.hami_memory_gib, "<one file per client>", settings.hami_sm_limit
        ),
    }


def _hami_check(args: argparse.Namespace, runner: Callable[..., dict[str, dict]] | None) -> int:
    """`hami-check`: run the three processes, print what each saw and the verdict; exit 0
    when the cap held, hami.CAP_NOT_HELD when it did not, 1 when a process failed."""
    gpu = query_gpu()
    settings = hami.CapCheckSettings(args.cap_gib, args.under_gib, args.timeout_s)
    print(
        f"GPU {gpu.name}, driver {gpu.driver}, {gpu.memory_total_mib} MiB\n"
        f"HAMi-core {args.hami_lib} (sha256 {hami.library_digest(args.hami_lib)})",
        flush=True,
    )
    try:
        reports = (runner or run_cap_check)(settings, args.hami_lib)
    except BenchmarkError as exc:
        print(f"ERROR: the cap check failed: {exc}", file=sys.stderr)
        return 1
    lines, problems = hami.cap_check_verdict(reports, args.cap_gib)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "gpu": {"name": gpu.name, "driver": gpu.driver, "memory_mib": gpu.memory_total_mib},
            "library": str(args.hami_lib),
            "sha256": hami.library_digest(args.hami_lib),
            "settings": {"cap_gib": args.cap_gib, "under_gib": args.under_gib},
            "reports": reports,
            "held": not problems,
            "problems": problems,
        }
        args.out.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    text = hami.format_report(lines, problems)
    print(text, file=sys.stderr if problems else sys.stdout)
    return hami.CAP_NOT_HELD if problems else 0
