"""One interleaved run from start to rows, and back from its raw JSON (`summarize`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import json
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .cases import (
    PAIR_WARMUP_S,
    GpuInfo,
    InterleavedRun,
    InterleavedRunner,
    Settings,
    Window,
    group_size,
    interleaved_schedule,
    settings_from_config,
    sort_results,
    worker_groups,
)
from .host_speed import host_reference, rows_at_reference
from .pairing import describe_pairs, pair_ratios
from .records import (
    RATIO_PAIRED,
    STATUS_OK,
    InputFileError,
    Result,
    RunMeta,
    TelemetrySample,
    WorkerSample,
    read_input,
)
from .summary import (
    _describe,
    _interleaved_rows,
    describe_interleaved_baseline,
    host_memory_drop_mib,
    interleaved_pairs,
    with_baseline_columns,
)

# The method named in every entry of the raw JSON (older files also knew "sweep").
RAW_METHOD = "interleaved"
WHAT_RAW = "the JSON `bench run --raw-out` wrote (.json or .json.gz)"


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
                "method": RAW_METHOD,
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
                    "method": RAW_METHOD,
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
                "method": RAW_METHOD,
                "telemetry": [dataclasses.astuple(x) for x in run.telemetry],
                "telemetry_fields": [f.name for f in dataclasses.fields(TelemetrySample)],
            }
        )
    drop = host_memory_drop_mib(run.telemetry)
    used = f"; host MemAvailable fell by {drop:.0f} MiB" if drop is not None else ""
    if used:
        log(f"  {used[1:]}")
    return with_baseline_columns(sort_results(rows))


def read_raw(path: Path | str) -> list[dict]:
    """The JSON `run --raw-out` wrote, plain or gzip-compressed (the committed files). A file
    that is not one raises InputFileError: one line naming the file and what is wrong."""
    data = read_input(path, WHAT_RAW)
    if not data.strip():
        raise InputFileError(f"{path}: empty file; want {WHAT_RAW}")
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
            raise InputFileError(f"{path}: corrupt or cut-short gzip data ({exc})") from None
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputFileError(f"{path}: not JSON ({exc}); want {WHAT_RAW}") from None
    if not isinstance(raw, list) or not all(isinstance(entry, dict) for entry in raw):
        raise InputFileError(f"{path}: not a list of JSON objects; want {WHAT_RAW}")
    return raw


def load_raw_run(path: Path | str) -> tuple[Settings, RunMeta, InterleavedRun]:
    """read_raw, then interleaved_from_raw, with whatever the file lacks in one line naming
    it (a missing key, a value of the wrong type, windows that do not match the settings)."""
    raw = read_raw(path)
    try:
        return interleaved_from_raw(raw)
    except KeyError as exc:
        why = f"no {exc.args[0]!r} where an entry needs one"
    except (TypeError, ValueError) as exc:
        why = str(exc)
    raise InputFileError(f"{path}: not the raw output of an interleaved run: {why}")


def interleaved_from_raw(raw: Sequence[dict]) -> tuple[Settings, RunMeta, InterleavedRun]:
    """Rebuild an interleaved run from the JSON `run --raw-out` wrote, to summarize it again
    (the `summarize` subcommand)."""
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
