"""The benchmark's command line: parsing, `plan`, and what `run` prints and exits with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.sharing.bench import cases, cli, mps, records, results_csv, summary
from tests.bench_support import (
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
