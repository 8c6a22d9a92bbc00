"""The results CSV (one row per model, mode and N): writing, reading (older layouts too),
comparing two runs and printing a Markdown table."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from .cases import HAMI_MODE, sort_results
from .pairing import PAIRED_LOW_PERCENTILE
from .records import (
    RATIO_BASELINE,
    RATIO_INTERLEAVED,
    RATIO_PAIRED,
    STATUS_OK,
    STATUS_OOM,
    InputFileError,
    Result,
    read_input,
)
from .summary import INTERLEAVED_LOW_PERCENTILE

# Whose windows a paired row's throughput and latencies are, by mode (else the MPS client's).
PAIRED_CLIENT = {HAMI_MODE: "capped client"}

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


# What load_results wants, for its messages; and the first bytes of a gzip file (the raw JSON
# is committed compressed, and is the file most easily given in a CSV's place).
WHAT_CSV = "a results CSV written by `bench run` or `bench summarize`"
GZIP_MAGIC = b"\x1f\x8b"


def results_by_key(results: Sequence[Result]) -> dict[tuple[str, str, int], Result]:
    """{(model, mode, clients): Result} for look-ups (e.g. by a capacity planner)."""
    return {r.key: r for r in results}


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
    whose missing columns come back as None) into typed Result rows. A file that is not one,
    or has no rows, raises InputFileError: one line naming the file and what is wrong."""
    data = read_input(path, WHAT_CSV)
    if data[:2] == GZIP_MAGIC:
        raise InputFileError(
            f"{path}: is gzip-compressed; want {WHAT_CSV} (a --raw-out JSON goes to `summarize`)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path}: not a text file ({exc}); want {WHAT_CSV}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        rows = list(reader)
    except csv.Error as exc:
        raise InputFileError(f"{path}:{reader.line_num}: not a CSV ({exc})") from None
    columns = tuple(reader.fieldnames or ())
    if not columns:
        raise InputFileError(f"{path}: empty file; want {WHAT_CSV}")
    known = (
        CSV_COLUMNS,
        PRE_REFERENCE_CSV_COLUMNS,
        PRE_INTERLEAVED_CSV_COLUMNS,
        PRE_PAIRING_CSV_COLUMNS,
        LEGACY_CSV_COLUMNS,
    )
    if columns not in known:
        raise InputFileError(
            f"{path}: unexpected columns ({_column_problem(columns)}); want {WHAT_CSV}"
        )
    if not rows:
        raise InputFileError(f"{path}: only a header, no rows; want {WHAT_CSV}")
    return [
        _result_from_row(path, line, row, len(columns)) for line, row in enumerate(rows, start=2)
    ]


def _column_problem(columns: Sequence[str]) -> str:
    """What is wrong with a header, briefly (the full list of 33 columns helps nobody)."""
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    missing = [c for c in CSV_COLUMNS if c not in columns]
    parts = []
    if unknown:
        shown = ", ".join(repr(c[:40]) for c in unknown[:3])
        parts.append(
            f"unknown {shown}" + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else "")
        )
    if missing:
        shown = ", ".join(missing[:3])
        parts.append(
            f"missing {shown}" + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        )
    return "; ".join(parts) or "in an order no version of the benchmark wrote"


def _result_from_row(path: Path | str, line: int, row: dict, width: int) -> Result:
    # DictReader puts a short row's missing cells at None and a long row's extra ones under
    # the key None: a file cut short, or not written by this benchmark.
    if None in row:
        raise InputFileError(f"{path}:{line}: more cells than the header's {width} columns")
    if None in row.values():
        cells = sum(v is not None for v in row.values())
        raise InputFileError(
            f"{path}:{line}: {cells} of the header's {width} cells; is the file cut short?"
        )
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
        raise InputFileError(f"{path}:{line}: {exc}") from None
    if status == STATUS_OK and r.aggregate_it_s is None:
        raise InputFileError(f"{path}:{line}: status ok but no aggregate_it_s")
    return r


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
                    "for differing CPU probes; it/s and latencies are the "
                    f"{PAIRED_CLIENT.get(r.mode, 'MPS client')}'s windows."
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
