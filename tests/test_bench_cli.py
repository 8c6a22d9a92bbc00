"""The benchmark's command line: parsing, `plan`, and what `run` prints and exits with."""

from __future__ import annotations

import csv
import dataclasses
import functools
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.sharing.bench import cases, cli, mps, records, results_csv, summary
from tests.bench_support import (
    COMMITTED,
    COMMITTED_RAW,
    GPU,
    _fake_interleaved_runner,
    _interleaved,
    _interleaved_run,
    _results,
    oom_sample,
)

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = _interleaved("--clients", "1,2", "--rounds", "2")  # what _results() ran


def test_the_package_imports_without_torch_or_matplotlib():
    code = (
        "import sys\n"
        "import benchmarks.sharing.bench as b\n"
        "from benchmarks.sharing.bench import cli, plots, workers\n"
        "assert 'torch' not in sys.modules, 'the package imported torch at import time'\n"
        "assert 'matplotlib' not in sys.modules, 'the package imported matplotlib'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30, cwd=ROOT)


def test_run_defaults():
    args = cli.parse_args(["run"])
    assert (args.rounds, args.window_s) == (12, 0.4)
    assert args.models == ("mlp", "transformer", "memory")
    assert args.modes == ("exclusive", "time-slicing", "mps")
    assert args.clients == (1, 2, 4, 8, 10)
    assert args.warmup_s == 1.0
    assert args.memory_gib == 4.0
    assert args.mps_replicas == 10
    assert args.out == Path("results.csv")
    settings = cli.settings_from_args(args)
    assert settings.clients == (1, 2, 4, 8, 10)


def test_run_custom_values_are_canonicalised():
    args = cli.parse_args(
        [
            *("run", "--modes", "mps,exclusive", "--models", "memory,mlp", "--clients", "8,2,1"),
            *("--window", "0.5", "--warmup", "0", "--rounds", "5", "--memory-gib", "1.5"),
        ]
    )
    assert args.modes == ("exclusive", "mps")
    assert args.models == ("mlp", "memory")
    assert args.clients == (1, 2, 8)
    assert (args.window_s, args.warmup_s, args.rounds, args.memory_gib) == (0.5, 0, 5, 1.5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clients", "0"], "must be >= 1"),
        (["--clients", "1,x"], "not an integer"),
        (["--clients", "2,2"], "duplicate"),
        (["--clients", ""], "comma-separated"),
        (["--clients", "1,,2"], "comma-separated"),
        (["--window", "0"], "must be >"),
        (["--window", "-1"], "must be >"),
        (["--window", "nan"], "not finite"),
        (["--warmup", "-0.5"], "must be >="),
        (["--rounds", "1"], "must be >="),
        (["--rounds", "1.5"], "not a valid int"),
        (["--memory-gib", "0"], "must be >"),
        (["--modes", "exclusive,mig"], "unknown value(s) mig"),
        (["--models", "resnet"], "unknown value(s) resnet"),
        (["--modes", "mps-limited", "--clients", "4", "--mps-replicas", "2"], "exceed"),
        (["--modes", "mps,mps-limited"], "separate runs"),
        # the sweep method is retired: one method for the published figures and the Job
        (["--method", "sweep"], "unrecognized arguments"),
        (["--repetitions", "3"], "unrecognized arguments"),
    ],
)
def test_bad_values_are_rejected(argv, message, capsys):
    for command in ("run", "plan"):
        with pytest.raises(SystemExit) as exc:
            cli.parse_args([command, *argv])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def test_clients_per_mode():
    clients = (1, 2, 4)
    assert cases.clients_for_mode("exclusive", clients) == [1]
    assert cases.clients_for_mode("time-slicing", clients) == [2, 4]
    assert cases.clients_for_mode("mps", clients) == [1, 2, 4]


def test_plan_prints_what_a_run_would_do_without_a_gpu(capsys):
    argv = ["--models", "mlp", "--modes", "exclusive,time-slicing,mps", "--clients", "1,2"]
    assert cli.main(["plan", *argv, "--rounds", "2"]) == 0
    out = capsys.readouterr().out
    settings = cli.settings_from_args(cli.parse_args(["run", *argv, "--rounds", "2"]))
    assert "cases exclusive N=1, time-slicing N=2, mps N=1, mps N=2" in out
    assert "process groups plain, mps, 2 processes each (4 in all)" in out
    assert f"{len(cases.interleaved_schedule(settings))} windows" in out


def test_python_dash_m_runs_the_package(tmp_path):
    """What a user types at the repository root; the Job runs the same module (`bench`) with
    PYTHONPATH at its mount (tests/test_workloads.py)."""
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.sharing.bench", "plan", "--models", "mlp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "process groups plain, mps" in done.stdout


def test_mps_limit_commands_match_device_plugin_shares():
    assert mps.mps_limit_commands(10, 143771) == [
        "set_default_active_thread_percentage 10",
        "set_default_device_pinned_mem_limit 0 14377M",
    ]
    assert mps.mps_limit_commands(3, 16000, device_index=1)[0].endswith(" 33")
    with pytest.raises(ValueError):
        mps.mps_limit_commands(0, 16000)


def test_raise_on_oom_names_cases():
    results = _results()
    with pytest.raises(records.OutOfMemoryFailure) as exc:
        summary.raise_on_oom(results)
    # an out-of-memory window marks every row of its model
    assert exc.value.cases == [
        ("memory", mode, n) for mode, n in [("exclusive", 1), *cases.interleaved_cases(SETTINGS)]
    ]
    assert "model=memory mode=mps N=2" in str(exc.value)
    summary.raise_on_oom([r for r in results if r.status == "ok"])  # no error without OOM


def test_main_interleaved_fails_when_the_halves_of_the_run_disagree(tmp_path, capsys):
    out, raw = tmp_path / "r.csv", tmp_path / "raw.json"
    argv = ["run", "--models", "mlp", "--clients", "1,2", "--rounds", "4", "--out", str(out)]
    argv += ["--raw-out", str(raw)]

    def steady(model, w, rank, t):
        return 1000.0 if w.mode == "exclusive" else 700.0

    assert cli.main(argv, gpu=GPU, interleaved_runner=_fake_interleaved_runner(steady)) == 0
    printed = capsys.readouterr()
    assert "process groups plain, mps" in printed.out and "UNSTABLE" not in printed.err
    rows = results_csv.results_by_key(results_csv.load_results(out))
    assert rows[("mlp", "time-slicing", 2)].ratio_vs_exclusive == pytest.approx(1.4)
    assert rows[("mlp", "time-slicing", 2)].ratio_halves_pct == pytest.approx(0.0)

    def drifting(model, w, rank, t):  # the cores slow down; time-slicing is GPU-bound
        if w.mode == "time-slicing":
            return 700.0
        return 1000.0 if w.round < 2 else 700.0  # the baseline and MPS clients follow them

    runner = _fake_interleaved_runner(drifting)
    assert cli.main(argv, gpu=GPU, interleaved_runner=runner) == 4
    err = capsys.readouterr().err
    assert "NOTE: the baseline moved during the run" in err
    assert "ERROR: UNSTABLE RATIOS" in err
    assert "model=mlp mode=time-slicing N=2: the first and second half" in err
    assert "mode=mps" not in err  # the MPS rows follow the cores as the baseline does
    accepted = [*argv, "--accept-unstable-baseline"]
    assert cli.main(accepted, gpu=GPU, interleaved_runner=runner) == 0
    assert "WARNING: UNSTABLE RATIOS" in capsys.readouterr().err
    assert cli.main([*argv, "--max-ratio-halves", "80"], gpu=GPU, interleaved_runner=runner) == 0


def test_main_exits_3_on_out_of_memory_and_1_on_a_crash(tmp_path, capsys):
    out = tmp_path / "r.csv"
    argv = ["run", "--models", "mlp,memory", "--clients", "1,2", "--rounds", "2"]
    argv += ["--memory-gib", "1", "--out", str(out)]

    def oom_in_memory(settings):
        run = _interleaved_run(settings, lambda *_: 500.0)
        index = next(w.index for w in run.windows if (w.mode, w.clients) == ("mps", 2))
        run.samples["memory"][index][1] = oom_sample(1)
        return run

    assert cli.main(argv, gpu=GPU, interleaved_runner=oom_in_memory) == 3
    assert "model=memory mode=mps N=2" in capsys.readouterr().err
    rows = results_csv.load_results(out)
    assert {r.status for r in rows if r.model == "memory"} == {"oom"}
    assert {r.status for r in rows if r.model == "mlp"} == {"ok"}

    def crash(settings):
        raise records.WorkerCrash("worker ('mps', 1) failed:\nRuntimeError: planted crash")

    assert cli.main(argv, gpu=GPU, interleaved_runner=crash) == 1
    assert "planted crash" in capsys.readouterr().err


# A file given to `table`, `plot` or `compare` in place of a results CSV, and the words that
# say what is wrong with it (issue 22, item 10): one line on stderr naming the file, exit 2.
@functools.cache
def _good_csv() -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=results_csv.CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(results_csv.result_to_row(r) for r in _results())
    return buffer.getvalue()


def _bad_csv(path: Path, kind: str) -> None:
    text = _good_csv()
    header, first_row = text.splitlines()[:2]
    content = {
        "empty": "",
        "header-only": header + "\n",
        "cut-in-the-header": header[: header.index("ratio_method") + 5],
        "cut-in-a-row": f"{header}\n{first_row}\n{first_row[: len(first_row) // 2]}",
        "a-cell-too-many": f"{header}\n{first_row},surplus\n",
        "json": '{"rows": []}\n',
    }
    if kind == "folder":
        path.mkdir()
    elif kind == "not-utf8":
        path.write_bytes(b"\xd0\xcf\x11\xe0 a spreadsheet\n")
    elif kind == "gzip":
        path.write_bytes(gzip.compress(text.encode()))
    elif kind != "missing":
        path.write_text(content[kind.removesuffix("-says-so")])


BAD_CSVS = {
    "missing": "no such file",
    "empty": "empty file",
    "folder": "is a folder",
    "header-only": "only a header, no rows",
    "cut-in-the-header": "unknown 'ratio'; missing ratio_method",
    "cut-in-a-row": "csv:3: ",  # the line, then how many cells it has
    "cut-in-a-row-says-so": "of the header's 33 cells; is the file cut short?",
    "a-cell-too-many": ":2: more cells than the header's 33 columns",
    "json": "unknown '{\"rows\": []}'",
    "not-utf8": "can't decode",
    "gzip": "is gzip-compressed",
}


@pytest.mark.parametrize("kind", BAD_CSVS)
@pytest.mark.parametrize("command", ["table", "plot", "compare-first", "compare-second"])
def test_an_unusable_results_csv_is_one_line_and_exit_2(tmp_path, capsys, kind, command):
    bad, good, png = tmp_path / "results.csv", tmp_path / "other.csv", tmp_path / "plot.png"
    good.write_text(_good_csv())
    _bad_csv(bad, kind)
    argv = {
        "table": ["table", str(bad)],
        "plot": ["plot", str(bad), "--out", str(png)],
        "compare-first": ["compare", str(bad), str(good)],
        "compare-second": ["compare", str(good), str(bad)],
    }[command]
    assert cli.main(argv) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and not png.exists()
    assert printed.err.startswith(f"ERROR: {bad}") and printed.err.count("\n") == 1
    assert BAD_CSVS[kind] in printed.err


@functools.cache
def _committed_raw() -> tuple[bytes, bytes]:
    """(gzip, plain) bytes of a committed --raw-out file."""
    committed = COMMITTED_RAW[0].read_bytes()
    return committed, gzip.decompress(committed)


def _bad_raw(path: Path, kind: str) -> None:
    committed, plain = _committed_raw()
    content = {
        "empty": lambda: b"",
        "a-results-csv": lambda: COMMITTED[0].read_bytes(),
        "cut-json": lambda: plain[: len(plain) // 2],
        "cut-gzip": lambda: committed[: len(committed) // 2],
        "not-gzip-after-its-magic": lambda: b"\x1f\x8b not deflate data",
        "gzip-of-cut-json": lambda: gzip.compress(plain[: len(plain) // 2]),
        "an-object": lambda: b'{"settings": {}}',
        "no-settings": lambda: b'[{"model": "mlp", "windows": []}]',
        "settings-without-models": lambda: b'[{"settings": {}, "meta": {}}]',
        "windows-not-the-schedule": lambda: json.dumps(
            [{**entry, "windows": entry.get("windows", [])[:-1]} for entry in json.loads(plain)]
        ).encode(),
    }
    if kind == "folder":
        path.mkdir()
    elif kind != "missing":
        path.write_bytes(content[kind]())


BAD_RAWS = {
    "missing": "no such file",
    "empty": "empty file",
    "folder": "is a folder",
    "a-results-csv": "not JSON",
    "cut-json": "not JSON",
    "cut-gzip": "corrupt or cut-short gzip data",
    "not-gzip-after-its-magic": "corrupt or cut-short gzip data",
    "gzip-of-cut-json": "not JSON",
    "an-object": "not a list of JSON objects",
    "no-settings": "no settings entry",
    "settings-without-models": "no 'models'",
    "windows-not-the-schedule": "do not match the schedule",
}


@pytest.mark.parametrize("kind", BAD_RAWS)
def test_an_unusable_raw_json_is_one_line_and_exit_2(tmp_path, capsys, kind):
    bad, out = tmp_path / "raw.json.gz", tmp_path / "r.csv"
    _bad_raw(bad, kind)
    assert cli.main(["summarize", str(bad), "--out", str(out)]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and not out.exists()
    assert printed.err.startswith(f"ERROR: {bad}: ") and printed.err.count("\n") == 1
    assert BAD_RAWS[kind] in printed.err


def test_an_output_that_cannot_be_written_stops_a_command_before_it_starts(tmp_path, capsys):
    """A run takes minutes to hours: a --out that is a folder, or under a file, is refused
    before the first window, not when the results are written."""
    folder, a_file = tmp_path / "folder", tmp_path / "file"
    folder.mkdir()
    a_file.write_text("x")
    good = tmp_path / "good.csv"
    good.write_text(_good_csv())

    def never(settings):
        raise AssertionError("the run started")

    argv = ["run", "--models", "mlp", "--clients", "1,2", "--rounds", "2", "--out", str(folder)]
    argv += ["--raw-out", str(a_file / "raw.json")]
    assert cli.main(argv, gpu=GPU, interleaved_runner=never) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"ERROR: {folder}: is a folder; want the path of a file to write",
        f"ERROR: {a_file / 'raw.json'}: {a_file} is not a folder",
    ]
    raw = COMMITTED_RAW[0]
    for argv in (
        ["plot", str(good), "--out", str(folder)],
        ["summarize", str(raw), "--out", str(folder)],
    ):
        assert cli.main(argv) == 2
        assert capsys.readouterr().err == (
            f"ERROR: {folder}: is a folder; want the path of a file to write\n"
        )


# The run's guards (issue 22, item 30): what `run` prints and exits with when a guard holds
# or trips, each at its limit.
GUARDED = ["run", "--models", "mlp", "--clients", "1,2", "--rounds", "6", "--window", "0.5"]


def _dropping_the_exclusive_window_before_a_lone_client(settings):
    """A runner whose schedule lost the exclusive window before one MPS client's window:
    the client would be paired with whatever ran before it."""
    run = _interleaved_run(settings, lambda *_: 500.0)
    lone = next(w for w in run.windows if (w.mode, w.clients) == ("mps", 1) and w.index > 1)
    windows, samples = [], {model: {} for model in run.samples}
    for w in run.windows:
        if w.index != lone.index - 1:
            kept = dataclasses.replace(w, index=len(windows))
            for model in run.samples:
                samples[model][kept.index] = run.samples[model][w.index]
            windows.append(kept)
    return dataclasses.replace(run, windows=tuple(windows), samples=samples)


def test_a_lone_mps_client_without_its_exclusive_window_fails_the_run(tmp_path, capsys):
    out = tmp_path / "r.csv"
    runner = _dropping_the_exclusive_window_before_a_lone_client
    assert cli.main([*GUARDED, "--out", str(out)], gpu=GPU, interleaved_runner=runner) == 1
    err = capsys.readouterr().err
    assert "ERROR: benchmark failed: mlp/mps: a client window without its exclusive one" in err
    assert not out.exists()


def _slowing_for_the_last_third(model, w, rank, t):
    """Every process at 88 % for the last two of six rounds: the exclusive windows' thirds
    (rounds 0-1, 2-3, 4-5) average 1000, 1000 and 880 it/s, over a mean of 960: 12.5 %."""
    speed = 1000.0 if w.round < 4 else 880.0
    return speed * {"exclusive": 1.0, "time-slicing": 0.45, "mps": 0.95}[w.mode]


@pytest.mark.parametrize(("limit", "noted"), [("12.5", False), ("12.49", True)])
def test_the_baseline_drift_note_at_its_limit(tmp_path, capsys, limit, noted):
    out = tmp_path / "r.csv"
    argv = [*GUARDED, "--out", str(out), "--max-baseline-spread", limit]
    runner = _fake_interleaved_runner(_slowing_for_the_last_third)
    assert cli.main(argv, gpu=GPU, interleaved_runner=runner) == 0  # a drift only notes
    rows = results_csv.load_results(out)
    assert {r.baseline_spread_pct for r in rows} == {12.5}  # every row, as the CSV has it
    err = capsys.readouterr().err
    assert ("NOTE: the baseline moved during the run" in err) == noted
    if noted:  # one line per model, from its exclusive row
        (line,) = [line for line in err.splitlines() if "model=mlp" in line]
        assert line.startswith(
            "  model=mlp: the mean of the 18 exclusive windows differs by 12.5% "
        )


def _lone_client_probes_25_percent_apart(settings):
    """Every lone MPS client's CPU probe after its window at 1.25 x the other three."""
    run = _interleaved_run(settings, lambda model, w, rank, t: 1000.0 - 50 * (w.mode == "mps"))
    for w in run.windows:
        if (w.mode, w.clients) == ("mps", 1):
            (client,) = run.samples["mlp"][w.index]
            run.samples["mlp"][w.index] = [dataclasses.replace(client, cpu_probe_after_ms=3.125)]
    return run


@pytest.mark.parametrize(("tolerance", "kept"), [("0.25", 6), ("0.2499", 0)])
def test_a_pair_whose_probes_differ_by_the_tolerance_is_kept(tmp_path, capsys, tolerance, kept):
    out = tmp_path / "r.csv"
    argv = [*GUARDED, "--out", str(out), "--pair-probe-tolerance", tolerance]
    runner = _lone_client_probes_25_percent_apart
    assert cli.main(argv, gpu=GPU, interleaved_runner=runner) == 0
    lone = results_csv.results_by_key(results_csv.load_results(out))[("mlp", "mps", 1)]
    assert (lone.pairs_kept, lone.pairs_excluded) == (kept, 6 - kept)
    assert f"paired: {kept} of 6 pairs kept" in capsys.readouterr().out
