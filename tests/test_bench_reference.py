"""Ratios at a reference host speed, and the bound N clients can physically deliver."""

from __future__ import annotations

import dataclasses
import math

import pytest

from benchmarks.sharing.bench import cli, host_speed, results_csv
from tests.bench_support import GPU, META, _interleaved, _interleaved_run, oom_sample, sample


def _window_sample(iteration_ms, launch_ms, iterations=400, rank=0):
    return sample(
        rank,
        iterations=iterations,
        elapsed=iterations * iteration_ms / 1e3,
        launch_ms=launch_ms,
        cpu_probe_ms=2.5,
        cpu_probe_after_ms=2.5,
    )


def test_parse_reference():
    assert cli.parse_reference("mlp=0.1, transformer=1") == {"mlp": 0.1, "transformer": 1.0}
    assert cli.parse_reference("none") == {}
    for bad in ("mlp", "gpt=1", "mlp=0", "mlp=-1", "mlp=x", "mlp=inf", ""):
        with pytest.raises(Exception, match=r"want MODEL=MS|must be a number|comma-separated"):
            cli.parse_reference(bad)
    args = cli.parse_args(["run"])
    assert args.reference == host_speed.REFERENCE_LAUNCH_MS
    assert cli.parse_args(["summarize", "x.json", "--out", "y.csv"]).reference == args.reference


def test_bad_reference_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(["run", "--reference-launch-ms", "mlp=fast"])
    assert exc.value.code == 2
    assert "'mlp=fast': the launch time must be a number > 0" in capsys.readouterr().err


def test_host_slope_is_how_an_iteration_follows_the_launch_time():
    follows = [(x, x + 0.01) for x in (0.1, 0.12, 0.15, 0.2)]
    assert host_speed.host_slope(follows) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-9))
    held = [(x, 1.7) for x in (0.1, 0.12, 0.15, 0.2)]
    assert host_speed.host_slope(held)[0] == pytest.approx(0.0, abs=1e-12)
    noisy = [(0.1, 1.0), (0.2, 1.3), (0.1, 1.2), (0.2, 1.1)]
    slope, error = host_speed.host_slope(noisy)
    assert slope == pytest.approx(1.0) and error == pytest.approx(math.sqrt(2))  # cannot tell
    assert host_speed.host_slope([(0.1, 1.0), (0.1, 1.1), (0.1, 1.2)]) is None  # no spread
    assert host_speed.host_slope(follows[:2]) is None


def test_at_reference_moves_each_window_by_its_case_slope():
    ref = host_speed.HostReference(launch_ms=0.12, lone_launch_ms=0.16, lone_wait_ms=0.01)
    lone = host_speed.at_reference(_window_sample(0.17, 0.16), ref, 1.0)  # follows the host
    assert host_speed.iteration_ms(lone) == pytest.approx(0.13) and lone.launch_ms == 0.12
    assert lone.iterations == 400 and lone.p99_ms == 2.0  # latencies stay as measured
    steeper = host_speed.at_reference(_window_sample(0.17, 0.16), ref, 1.15)
    assert host_speed.iteration_ms(steeper) == pytest.approx(0.17 - 1.15 * 0.04)
    held = host_speed.at_reference(_window_sample(1.7, 0.2), ref, 0.0)  # the GPU sets the pace
    assert host_speed.iteration_ms(held) == pytest.approx(1.7)
    partly = host_speed.at_reference(_window_sample(1.7, 0.2), ref, 0.25)
    assert host_speed.iteration_ms(partly) == pytest.approx(1.7 - 0.25 * 0.08)
    slower = dataclasses.replace(ref, launch_ms=1.0)  # a slower reference host
    assert host_speed.iteration_ms(
        host_speed.at_reference(_window_sample(0.17, 0.16), slower, 1.0)
    ) == (pytest.approx(1.01))
    # never shorter than launching it takes
    assert host_speed.iteration_ms(
        host_speed.at_reference(_window_sample(0.5, 0.45), ref, 2.0)
    ) == (pytest.approx(0.12))
    assert host_speed.at_reference(oom_sample(), ref, 1.0) == oom_sample()
    no_launch = sample(iterations=100, elapsed=1.0)
    assert host_speed.at_reference(no_launch, ref, 1.0) == no_launch


def _host_run(settings, host, capacity=6000.0):
    """A run on a host whose cores launch `host` times slower than 0.15 ms per mlp iteration:
    the lone process and MPS clients are launch-bound (wait 0.01 / 0.015 ms), time-slicing
    shares `capacity` it/s of GPU turns between its processes."""
    run = _interleaved_run(settings, lambda *_: 1.0)
    samples = {}
    for w in run.windows:
        launch = 0.15 * host * (1.0 + 0.02 * (w.round % 3))
        if w.mode == "exclusive":
            iteration = launch + 0.01
        elif w.mode == "time-slicing":
            iteration = 1e3 * w.clients / capacity
        else:
            iteration = launch + 0.015
        samples[w.index] = [_window_sample(iteration, launch, rank=r) for r in w.ranks]
    return dataclasses.replace(run, samples={"mlp": samples})


def test_ratios_at_a_reference_host_repeat_where_the_hosts_differ():
    """Two runs whose cores differ by 1.4x: the time-slicing ratio as measured follows the
    host (GPU-bound throughput over one launch-bound process), the one at the reference does
    not; MPS, launch-bound on both sides, is alike either way."""
    settings = _interleaved("--models", "mlp", "--clients", "1,10", "--rounds", "4")
    rows = [
        results_csv.results_by_key(
            host_speed.summarize_interleaved("mlp", settings, _host_run(settings, host), META, 0.12)
        )
        for host in (1.0, 1.4)
    ]
    fast, slow = (r[("mlp", "time-slicing", 10)] for r in rows)
    assert slow.ratio_host / fast.ratio_host > 1.3
    assert fast.ratio_vs_exclusive == pytest.approx(6000 * 0.13 / 1e3, rel=1e-6)
    assert slow.ratio_vs_exclusive == pytest.approx(fast.ratio_vs_exclusive, rel=1e-6)
    assert fast.reference_launch_ms == 0.12 and fast.reference_it_s == pytest.approx(6000)
    assert fast.aggregate_it_s == pytest.approx(6000)  # throughput columns stay as measured
    for r in rows:
        assert r[("mlp", "mps", 10)].ratio_vs_exclusive == pytest.approx(10 * 0.13 / 0.135)
        assert r[("mlp", "mps", 1)].ratio_vs_exclusive == pytest.approx(0.13 / 0.135)
        base = r[("mlp", "exclusive", 1)]
        assert base.reference_it_s == pytest.approx(1e3 / 0.13)
        assert base.aggregate_it_s < base.reference_it_s  # both hosts are slower than it
    # without a reference, every ratio is as measured
    plain = host_speed.summarize_interleaved("mlp", settings, _host_run(settings, 1.4), META, None)
    for r in plain:
        assert r.ratio_vs_exclusive == r.ratio_host and r.reference_launch_ms is None


def test_a_gpu_bound_lone_process_keeps_its_ratios_as_measured():
    settings = _interleaved("--models", "memory", "--clients", "1,2", "--rounds", "2")
    run = _interleaved_run(settings, lambda *_: 780.0)  # 1.28 ms a window, launch 0.1 ms
    ref, why = host_speed.host_reference("memory", run, 0.5)
    assert ref is None and "GPU-bound" in why
    rows = host_speed.summarize_interleaved("memory", settings, run, META, 0.5)
    assert all(r.reference_launch_ms is None and r.ratio_host == r.ratio_vs_exclusive for r in rows)
    assert host_speed.host_reference("memory", run, None)[0] is None


def test_a_faster_reference_host_gets_no_more_than_the_gpu_delivers():
    """Two MPS clients follow the host; at a host twice as fast they would ask for more than
    the GPU gives the four, which it holds (gpu_capacity), so they get what the four get."""
    settings = _interleaved(
        "--models", "transformer", "--clients", "1,2,4", "--modes", "exclusive,mps"
    )
    run = _interleaved_run(settings, lambda *_: 1.0)
    samples = {}
    for w in run.windows:
        launch = 1.6 * (1.0 + 0.1 * (w.round % 2))  # the host flips between two speeds
        if w.mode == "exclusive" or w.clients < 4:
            its = [_window_sample(launch + 0.03, launch, rank=r) for r in w.ranks]
        else:  # the GPU holds four clients to 2800 it/s whatever the host does
            its = [_window_sample(4 * 1e3 / 2800, launch, rank=r) for r in w.ranks]
        samples[w.index] = its
    run = dataclasses.replace(run, samples={"transformer": samples})
    ref, why = host_speed.host_reference("transformer", run, 0.5)
    assert ref.slopes == {
        ("exclusive", 1): pytest.approx(1.0),
        ("mps", 1): pytest.approx(1.0),
        ("mps", 2): pytest.approx(1.0),
        ("mps", 4): pytest.approx(0.0, abs=1e-9),
    }
    assert "mps N=2 1.00, mps N=4 0.00" in why
    assert host_speed.gpu_capacity("transformer", run, ref) == {"mps": pytest.approx(2800)}
    rows = results_csv.results_by_key(
        host_speed.summarize_interleaved("transformer", settings, run, META, 0.5)
    )
    two = rows[("transformer", "mps", 2)]
    assert two.reference_it_s == pytest.approx(2800)  # not 2 x 1000 / 0.53 = 3774
    assert two.ratio_vs_exclusive == pytest.approx(2800 * 0.53 / 1e3)
    assert rows[("transformer", "mps", 4)].reference_it_s == pytest.approx(2800)


def test_a_case_whose_host_dependence_cannot_be_measured_keeps_the_ratios_as_measured():
    settings = _interleaved("--models", "mlp", "--clients", "1,2", "--rounds", "2")
    run = _interleaved_run(settings, lambda *_: 1.0)
    steady = {  # every window at the same launch time: no slope can be fitted
        w.index: [_window_sample(0.16, 0.15, rank=r) for r in w.ranks] for w in run.windows
    }
    run = dataclasses.replace(run, samples={"mlp": steady})
    ref, why = host_speed.host_reference("mlp", run, 0.12)
    assert ref is None
    assert "cannot be measured from this run (no spread in launch time)" in why
    rows = host_speed.summarize_interleaved("mlp", settings, run, META, 0.12)
    assert all(r.reference_launch_ms is None and r.ratio_host == r.ratio_vs_exclusive for r in rows)


def test_the_table_says_at_which_host_speed_the_ratios_are():
    settings = _interleaved("--models", "mlp", "--clients", "1,10", "--rounds", "4")
    rows = host_speed.summarize_interleaved("mlp", settings, _host_run(settings, 1.4), META, 0.12)
    table = results_csv.format_table(rows)
    assert "at a reference host that launches one iteration in 0.12 ms" in table
    assert "| × as measured |" in table
    ts = results_csv.results_by_key(rows)[("mlp", "time-slicing", 10)]
    assert f"| {ts.ratio_vs_exclusive:.2f} | {ts.ratio_low:.2f} | {ts.ratio_host:.2f} |" in table


def test_main_states_ratios_at_the_reference_and_logs_why(tmp_path, capsys):
    out = tmp_path / "r.csv"
    settings_argv = ["--models", "mlp", "--clients", "1,10", "--rounds", "4"]
    runner = lambda settings: _host_run(settings, 1.4)  # noqa: E731
    argv = ["run", *settings_argv, "--out", str(out), "--reference-launch-ms", "mlp=0.12"]
    assert cli.main(argv, gpu=GPU, interleaved_runner=runner) == 0
    printed = capsys.readouterr().out
    assert "ratios at a reference host that launches one iteration in 0.12 ms" in printed
    assert "(the run's lone process: 0.212 ms, then 0.010 ms on the GPU)" in printed
    rows = results_csv.results_by_key(results_csv.load_results(out))
    assert rows[("mlp", "time-slicing", 10)].reference_launch_ms == 0.12
    assert rows[("mlp", "time-slicing", 10)].ratio_vs_exclusive == pytest.approx(0.78, rel=1e-3)


def test_files_before_the_reference_columns_still_load(tmp_path):
    path = tmp_path / "r.csv"
    settings = _interleaved("--models", "mlp", "--clients", "1,2", "--rounds", "2")
    results_csv.write_csv(
        path, host_speed.summarize_interleaved("mlp", settings, _host_run(settings, 1), META, 0.12)
    )
    n = len(results_csv.PRE_REFERENCE_CSV_COLUMNS)
    path.write_text("\n".join(",".join(x.split(",")[:n]) for x in path.read_text().splitlines()))
    loaded = results_csv.load_results(path)
    assert all(r.reference_launch_ms is None and r.ratio_host is None for r in loaded)
    assert all(r.ratio_halves_pct is not None for r in loaded if r.mode != "exclusive")


def test_no_projected_ratio_exceeds_what_the_clients_can_deliver():
    """The lone process and the MPS clients follow the host by different slopes (0.5 and 1),
    so at a faster reference host the projection alone would make two clients do ten times
    the lone process's work, and one client five times. Two clients deliver at most two lone
    processes' work, one client one's: the ratios stop there; as measured they stay."""
    settings = _interleaved("--models", "mlp", "--clients", "1,2", "--modes", "exclusive,mps")
    run = _interleaved_run(settings, lambda *_: 1.0)
    samples = {}
    for w in run.windows:
        launch = 1.6 * (1.0 + 0.1 * (w.round % 2))  # the host flips between two speeds
        if w.mode == "exclusive":
            its = [_window_sample(0.5 * launch + 0.85, launch, rank=r) for r in w.ranks]
        else:
            its = [_window_sample(launch + 0.07, launch, rank=r) for r in w.ranks]
        samples[w.index] = its
    run = dataclasses.replace(run, samples={"mlp": samples})
    ref, _ = host_speed.host_reference("mlp", run, 0.12)
    assert ref.slopes[("exclusive", 1)] == pytest.approx(0.5)
    assert ref.slopes[("mps", 2)] == pytest.approx(1.0)
    rows = results_csv.results_by_key(
        host_speed.summarize_interleaved("mlp", settings, run, META, 0.12)
    )
    lone, one, two = (
        rows[("mlp", mode, n)] for mode, n in [("exclusive", 1), ("mps", 1), ("mps", 2)]
    )
    for row in (one, two):
        bound = host_speed.client_bound(row.clients)
        assert row.ratio_vs_exclusive == pytest.approx(bound)
        assert row.ratio_low <= bound * (1 + 1e-9)
        assert row.ratio_host < bound  # as measured, below the bound all along
    assert two.reference_it_s == pytest.approx(2 * lone.reference_it_s)
