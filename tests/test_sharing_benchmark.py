"""Tests for benchmarks/sharing/bench.py that need neither torch nor a GPU.

Worker results are injected through a fake runner; no worker process is started.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "sharing" / "bench.py"


def _load_bench():
    spec = importlib.util.spec_from_file_location("sharing_bench", BENCH_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


bench = _load_bench()

GPU = bench.GpuInfo(name="Test GPU", driver="1.2.3", memory_total_mib=16000)
META = bench.RunMeta(date="2026-01-02", gpu="Test GPU", driver="1.2.3", torch="9.9")


def sample(rank=0, iterations=100, elapsed=1.0, p50=1.0, p99=2.0, reserved=100.0, **kw):
    return bench.WorkerSample(
        rank=rank,
        iterations=iterations,
        elapsed_s=elapsed,
        p50_ms=p50,
        p99_ms=p99,
        mem_allocated_mib=reserved - 10,
        mem_reserved_mib=reserved,
        **kw,
    )


def oom_sample(rank=0):
    return bench.WorkerSample(rank, 0, 0.0, None, None, None, None, None, bench.STATUS_OOM, "OOM")


def pair(exclusive_it_s, shared_it_s, probes=(2.5, 2.5, 2.5, 2.5), start=0.0, window=0.5):
    """One paired window: [exclusive sample (rank 0), MPS client sample (rank 1)]; `probes`
    are the exclusive's before/after and the client's before/after CPU probe times (ms)."""
    exclusive = sample(
        0,
        iterations=round(exclusive_it_s * window),
        elapsed=window,
        cpu_probe_ms=probes[0],
        cpu_probe_after_ms=probes[1],
        window_start=start,
        window_end=start + window,
    )
    shared = sample(
        1,
        iterations=round(shared_it_s * window),
        elapsed=window,
        cpu_probe_ms=probes[2],
        cpu_probe_after_ms=probes[3],
        window_start=start + window + 0.1,
        window_end=start + 2 * window + 0.1,
        host_rss_mib=750.0,
    )
    return [exclusive, shared]


def fake_runner(
    speed=None,
    oom=(),
    crash_on=None,
    calls=None,
    baseline=None,
    clock_mhz=1980.0,
    pair_ratio=None,
):
    """Runner returning made-up samples: each worker does speed[model] / N iterations/s.

    `baseline` gives, per model, the speed of the 1st, 2nd, ... exclusive measurement (to plant
    a drifting baseline). Every repetition gets a window on a made-up clock and telemetry
    samples inside it at `clock_mhz`, with one sample outside every window at 300 MHz that
    must never count. A paired case (one MPS client, pairing on) returns settings.pairs pairs
    whose exclusive window runs at speed[model] and whose client runs pair_ratio[model] times
    that (default 0.8), the probes agreeing.
    """
    pair_ratio = pair_ratio or {}
    speed = speed or {"mlp": 1000.0, "transformer": 200.0, "memory": 50.0}
    exclusive_calls = []
    clock = [100.0]

    def run(mode, n, settings):
        if calls is not None:
            calls.append((mode, n))
        if (mode, n) == crash_on:
            raise bench.WorkerCrash(f"worker 1 of {n} failed:\nRuntimeError: planted crash")
        if mode == "exclusive":
            exclusive_calls.append(n)
        samples = {}
        telemetry = [bench.TelemetrySample(t=clock[0] - 0.5, sm_clock_mhz=300.0, temp_c=30.0)]
        if bench.is_paired_case(mode, n, settings):
            for model in settings.models:
                fast = speed[model]
                samples[model] = []
                for _ in range(settings.pairs):
                    window = settings.pair_window_s
                    shared = fast * pair_ratio.get(model, 0.8)
                    samples[model].append(pair(fast, shared, start=clock[0], window=window))
                    telemetry.append(bench.TelemetrySample(t=clock[0], sm_clock_mhz=clock_mhz))
                    clock[0] += 2 * window + 1.0
            return bench.CaseRun(
                samples=samples, torch_version="9.9", gpu="Test GPU", telemetry=tuple(telemetry)
            )
        for model in settings.models:
            reps = []
            for _ in range(settings.repetitions):
                start, end = clock[0], clock[0] + settings.duration_s
                clock[0] = end + 1.0
                window = {"window_start": start, "window_end": end, "host_rss_mib": 700.0 + n}
                telemetry += [
                    bench.TelemetrySample(t=start + f * (end - start), sm_clock_mhz=clock_mhz)
                    for f in (0.1, 0.5, 0.9)
                ]
                if (model, mode, n) in oom:
                    reps.append([sample(r) for r in range(n - 1)] + [oom_sample(n - 1)])
                    continue
                model_speed = speed[model]
                if mode == "exclusive" and baseline is not None:
                    model_speed = baseline[model][len(exclusive_calls) - 1]
                its = model_speed * settings.duration_s / n
                reps.append(
                    [
                        sample(r, iterations=int(its), elapsed=settings.duration_s, **window)
                        for r in range(n)
                    ]
                )
            samples[model] = reps
        return bench.CaseRun(
            samples=samples, torch_version="9.9", gpu="Test GPU", telemetry=tuple(telemetry)
        )

    return run


# --- import hygiene ---------------------------------------------------------------------------


def test_module_imports_without_torch():
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('b', {str(BENCH_PATH)!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['b'] = m\n"
        "spec.loader.exec_module(m)\n"
        "assert 'torch' not in sys.modules, 'bench imported torch at import time'\n"
        "assert 'matplotlib' not in sys.modules, 'bench imported matplotlib at import time'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# --- argument parsing -------------------------------------------------------------------------


def test_run_defaults():
    args = bench.parse_args(["run"])
    assert args.method == "interleaved"
    assert (args.rounds, args.window_s) == (12, 0.4)
    assert args.models == ("mlp", "transformer", "memory")
    assert args.modes == ("exclusive", "time-slicing", "mps")
    assert args.clients == (1, 2, 4, 8, 10)
    assert args.duration_s == 3.0
    assert args.warmup_s == 1.0
    assert args.repetitions == 3
    assert args.memory_gib == 4.0
    assert args.mps_replicas == 10
    assert args.out == Path("results.csv")
    settings = bench.settings_from_args(args)
    assert settings.clients == (1, 2, 4, 8, 10)


def test_run_custom_values_are_canonicalised():
    args = bench.parse_args(
        [
            *(
                "run",
                "--method",
                "sweep",
                "--modes",
                "mps,exclusive",
                "--models",
                "memory,mlp",
                "--clients",
                "8,2,1",
            ),
            *("--duration", "0.5", "--warmup", "0", "--repetitions", "5", "--memory-gib", "1.5"),
        ]
    )
    assert args.modes == ("exclusive", "mps")
    assert args.models == ("mlp", "memory")
    assert args.clients == (1, 2, 8)
    assert (args.duration_s, args.warmup_s, args.repetitions, args.memory_gib) == (0.5, 0, 5, 1.5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--clients", "0"], "must be >= 1"),
        (["--clients", "1,x"], "not an integer"),
        (["--clients", "2,2"], "duplicate"),
        (["--clients", ""], "comma-separated"),
        (["--clients", "1,,2"], "comma-separated"),
        (["--duration", "0"], "must be >"),
        (["--duration", "-1"], "must be >"),
        (["--duration", "nan"], "not finite"),
        (["--warmup", "-0.5"], "must be >="),
        (["--repetitions", "0"], "must be >="),
        (["--repetitions", "1.5"], "not a valid int"),
        (["--memory-gib", "0"], "must be >"),
        (["--modes", "exclusive,mig"], "unknown value(s) mig"),
        (["--models", "resnet"], "unknown value(s) resnet"),
        (["--modes", "mps-limited", "--clients", "4", "--mps-replicas", "2"], "exceed"),
    ],
)
def test_bad_values_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["run", "--method", "sweep", *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_clients_per_mode():
    clients = (1, 2, 4)
    assert bench.clients_for_mode("exclusive", clients) == [1]
    assert bench.clients_for_mode("time-slicing", clients) == [2, 4]
    assert bench.clients_for_mode("mps", clients) == [1, 2, 4]
    settings = bench.settings_from_args(
        bench.parse_args(
            ["run", "--method", "sweep", "--modes", "exclusive,time-slicing", "--clients", "1,2,4"]
        )
    )
    # The baseline is measured before and after the sweep, so drift shows as spread.
    assert bench.planned_cases(settings) == [
        ("exclusive", 1),
        ("time-slicing", 2),
        ("time-slicing", 4),
        ("exclusive", 1),
    ]
    windows = 4 * 3 * 3 * (1.0 + 3.0)  # 4 cases x 3 models x 3 repetitions x (warm-up + timed)
    assert bench.estimate_seconds(settings) > windows


def _settings(*argv):
    return bench.settings_from_args(bench.parse_args(["run", "--method", "sweep", *argv]))


def test_baseline_is_measured_before_and_after_every_sweep():
    cases = bench.planned_cases(
        _settings("--modes", "exclusive,time-slicing,mps", "--clients", "1,2")
    )
    assert cases == [
        ("exclusive", 1),
        ("time-slicing", 2),
        ("exclusive", 1),
        ("mps", 1),
        ("mps", 2),
        ("exclusive", 1),
    ]
    # Alone it is still measured twice: one measurement has no spread to report.
    assert bench.planned_cases(_settings("--modes", "exclusive")) == [("exclusive", 1)] * 2
    # Without it there is nothing to divide by, and nothing is added.
    assert bench.planned_cases(_settings("--modes", "mps", "--clients", "1,2")) == [
        ("mps", 1),
        ("mps", 2),
    ]


def test_estimate_counts_the_extra_baselines():
    one = _settings("--modes", "exclusive,mps", "--clients", "2", "--models", "mlp")
    two = _settings("--modes", "exclusive,time-slicing,mps", "--clients", "2", "--models", "mlp")
    per_window = one.warmup_s + one.duration_s
    # time-slicing adds its own case and one more baseline after it
    assert bench.estimate_seconds(two) - bench.estimate_seconds(one) > 2 * 3 * per_window


def test_mps_limit_commands_match_device_plugin_shares():
    assert bench.mps_limit_commands(10, 143771) == [
        "set_default_active_thread_percentage 10",
        "set_default_device_pinned_mem_limit 0 14377M",
    ]
    assert bench.mps_limit_commands(3, 16000, device_index=1)[0].endswith(" 33")
    with pytest.raises(ValueError):
        bench.mps_limit_commands(0, 16000)


# --- aggregation ------------------------------------------------------------------------------


def test_percentile_known_values():
    values = list(range(1, 102))  # 1..101
    assert bench.percentile(values, 50) == 51
    assert bench.percentile(values, 99) == 100
    assert bench.percentile([4, 1, 3, 2], 99) == pytest.approx(3.97)  # numpy's default method
    assert bench.percentile([0.0, 10.0], 50) == 5.0
    assert bench.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        bench.percentile([], 50)
    with pytest.raises(ValueError):
        bench.percentile([1.0], 101)


def test_latency_percentiles_in_ms():
    latencies_s = [0.001] * 98 + [0.010, 0.100]  # 100 samples
    p50, p99 = bench.latency_percentiles_ms(latencies_s)
    assert p50 == pytest.approx(1.0)
    assert p99 == pytest.approx(10.0 + 0.01 * 90.0)  # 99th lies 1% of the way from 10 to 100 ms


def test_summarize_case_takes_medians():
    reps = [
        [sample(0, 100, 1.0, 1.0, 5.0, 100.0), sample(1, 300, 1.0, 3.0, 9.0, 120.0)],  # 400 it/s
        [sample(0, 500, 2.0, 2.0, 6.0, 100.0), sample(1, 500, 2.0, 4.0, 8.0, 100.0)],  # 500 it/s
        [sample(0, 50, 0.5, 9.0, 50.0, 100.0), sample(1, 50, 0.5, 9.0, 70.0, 100.0)],  # 200 it/s
    ]
    r = bench.summarize_case("mlp", "mps", 2, reps, META, 1.0)
    assert r.status == "ok"
    assert r.aggregate_it_s == pytest.approx(400.0)
    assert r.per_process_it_s == pytest.approx(200.0)
    # medians over workers per repetition: p50 2, 3, 9 -> 3; p99 7, 7, 60 -> 7
    assert r.p50_ms == pytest.approx(3.0)
    assert r.p99_ms == pytest.approx(7.0)
    assert r.mem_per_process_mib == 120.0
    assert r.repetitions == 3
    assert r.ratio_vs_exclusive is None  # filled by apply_ratios
    assert (r.date, r.gpu, r.driver, r.torch) == ("2026-01-02", "Test GPU", "1.2.3", "9.9")


def test_summarize_case_rejects_missing_workers():
    with pytest.raises(bench.BenchmarkError, match="expected 2"):
        bench.summarize_case("mlp", "mps", 2, [[sample(0)]], META, 1.0)
    with pytest.raises(bench.BenchmarkError, match="no repetitions"):
        bench.summarize_case("mlp", "mps", 2, [], META, 1.0)


def test_apply_ratios_against_exclusive_of_same_model():
    def row(model, mode, n, agg, status="ok"):
        rep = [sample(r, iterations=int(agg / n), elapsed=1.0) for r in range(n)]
        if status == "oom":
            rep[-1] = oom_sample(n - 1)
        return bench.summarize_case(model, mode, n, [rep], META, 1.0)

    results = bench.apply_ratios(
        [
            row("mlp", "exclusive", 1, 100),
            row("mlp", "time-slicing", 2, 150),
            row("mlp", "mps", 4, 400),
            row("mlp", "mps", 8, 0, status="oom"),
            row("memory", "mps", 2, 50),  # no exclusive baseline for this model
        ]
    )
    ratios = [r.ratio_vs_exclusive for r in results]
    assert ratios[0] == pytest.approx(1.0)
    assert ratios[1] == pytest.approx(1.5)
    assert ratios[2] == pytest.approx(4.0)
    assert ratios[3] is None
    assert ratios[4] is None


def test_summarize_case_combines_baseline_measurements_by_their_medians():
    def rep(it_s):
        return [sample(0, iterations=it_s, elapsed=1.0)]

    # Three measurements of two repetitions: medians 100, 150 and 120 it/s.
    reps = [rep(90), rep(110), rep(150), rep(150), rep(120), rep(120)]
    r = bench.summarize_case(
        "mlp", "exclusive", 1, reps, META, 1.0, measurement_of_rep=[0, 0, 1, 1, 2, 2]
    )
    assert r.aggregate_it_s == pytest.approx(120.0)  # median of the medians, not of all reps
    assert r.baseline_runs == 3
    assert r.repetitions == 2  # per measurement
    assert r.baseline_spread_pct == pytest.approx(100 * (150 - 100) / 120)
    assert (r.aggregate_min_it_s, r.aggregate_max_it_s) == (90.0, 150.0)
    # An ordinary case has no baseline spread of its own.
    plain = bench.summarize_case("mlp", "mps", 1, reps, META, 1.0)
    assert plain.baseline_spread_pct is None and plain.baseline_runs is None


def test_ratios_divide_by_the_median_baseline_and_report_its_spread():
    # The first exclusive measurement is planted low, as in the 2026-11-28 run.
    baseline = {"mlp": [600.0, 1000.0, 1050.0], "transformer": [200.0, 200.0, 200.0]}
    settings = _settings(
        *("--models", "mlp,transformer", "--modes", "exclusive,time-slicing,mps"),
        *("--clients", "1,2", "--repetitions", "2", "--duration", "1"),
    )
    runner = fake_runner(speed={"mlp": 1000.0, "transformer": 300.0}, baseline=baseline)
    results = bench.run_benchmark(settings, runner, GPU, log=lambda _: None)
    rows = bench.results_by_key(results)
    assert len(results) == 2 * 4  # one exclusive row per model, however often it was measured
    base = rows[("mlp", "exclusive", 1)]
    assert base.aggregate_it_s == pytest.approx(1000.0)  # not the 600 measured first
    assert base.baseline_runs == 3
    assert base.baseline_spread_pct == pytest.approx(45.0)  # (1050 - 600) / 1000
    ts = rows[("mlp", "time-slicing", 2)]
    assert ts.ratio_vs_exclusive == pytest.approx(1.0)
    assert ts.baseline_it_s == pytest.approx(1000.0)
    assert ts.baseline_spread_pct == pytest.approx(45.0)  # every row carries its baseline's
    assert ts.ratio_low == pytest.approx(1000.0 / 1050.0)  # against the fastest baseline rep
    steady = rows[("transformer", "mps", 2)]
    assert steady.ratio_vs_exclusive == pytest.approx(1.5)
    assert rows[("transformer", "exclusive", 1)].baseline_spread_pct == pytest.approx(0.0)
    assert bench.baseline_problems(results, 10.0) == [
        "model=mlp: the 3 exclusive measurements differ by 45.0% (limit 10%); "
        "ratios divide by their median 1000.0 it/s"
    ]
    assert bench.baseline_problems(results, 50.0) == []


def _run_args(tmp_path, *extra):
    return [
        *("run", "--method", "sweep", "--models", "mlp", "--clients", "1,2", "--duration", "1"),
        *("--repetitions", "1", "--out", str(tmp_path / "r.csv"), *extra),
    ]


def test_unstable_baseline_fails_the_run_loudly(tmp_path, capsys):
    drifting = {"mlp": [800.0, 1000.0, 1000.0]}  # 20 % apart
    code = bench.main(_run_args(tmp_path), runner=fake_runner(baseline=drifting), gpu=GPU)
    assert code == 4
    err = capsys.readouterr().err
    assert "ERROR: UNSTABLE BASELINE" in err
    assert "model=mlp: the 3 exclusive measurements differ by 20.0%" in err
    # The rows are written all the same, with the spread that failed them.
    (base,) = [r for r in bench.load_results(tmp_path / "r.csv") if r.mode == "exclusive"]
    assert base.baseline_spread_pct == pytest.approx(20.0)


def test_unstable_baseline_can_be_accepted_or_tolerated(tmp_path, capsys):
    drifting = {"mlp": [800.0, 1000.0, 1000.0]}
    argv = _run_args(tmp_path, "--accept-unstable-baseline")
    assert bench.main(argv, runner=fake_runner(baseline=drifting), gpu=GPU) == 0
    assert "WARNING: UNSTABLE BASELINE" in capsys.readouterr().err
    argv = _run_args(tmp_path, "--max-baseline-spread", "25")
    assert bench.main(argv, runner=fake_runner(baseline=drifting), gpu=GPU) == 0
    assert "UNSTABLE" not in capsys.readouterr().err


def test_rows_carry_window_telemetry_and_host_memory():
    settings = _settings("--models", "mlp", "--clients", "1,4", "--repetitions", "2")
    raw = []
    results = bench.run_benchmark(
        settings, fake_runner(clock_mhz=1755.0), GPU, log=lambda _: None, raw=raw
    )
    rows = bench.results_by_key(results)
    # The 300 MHz samples lie outside every window and must not pull the median down.
    assert rows[("mlp", "mps", 4)].sm_clock_mhz == 1755.0
    assert rows[("mlp", "mps", 4)].host_rss_mib == 704.0  # the fake reports 700 + N
    assert rows[("mlp", "exclusive", 1)].host_rss_mib == 701.0
    sample_entries = [e for e in raw if "samples" in e]
    assert all(len(e["windows"]) == 2 for e in sample_entries if not e["paired"])
    (paired,) = [e for e in sample_entries if e["paired"]]
    assert len(paired["windows"]) == len(paired["samples"]) == settings.pairs
    assert paired["samples"][0][1]["cpu_probe_after_ms"] == 2.5
    assert [e["baseline_measurement"] for e in sample_entries if e["mode"] == "exclusive"] == [
        1,
        2,
        3,
    ]
    traces = [e for e in raw if "telemetry" in e]
    assert len(traces) == len(bench.planned_cases(settings))
    assert traces[0]["telemetry_fields"][:2] == ["t", "sm_clock_mhz"]


def test_summarize_window_uses_only_samples_inside_it():
    def at(t, clock, temp, busy, steal, total, reasons=0):
        return bench.TelemetrySample(
            t=t,
            sm_clock_mhz=clock,
            temp_c=temp,
            clock_reasons=reasons,
            cpu_busy_jiffies=busy,
            cpu_steal_jiffies=steal,
            cpu_total_jiffies=total,
        )

    samples = [
        at(0.5, 345, 30, 0, 0, 0, reasons=0x1),  # idle, before the window
        at(1.0, 1980, 40, 100, 10, 1000),
        at(2.0, 1900, 45, 300, 20, 2000, reasons=0x4),
        at(3.0, 1700, 44, 500, 30, 3000),
        at(9.0, 345, 31, 500, 30, 9000),  # after it
    ]
    w = bench.summarize_window(samples, 1.0, 3.0)
    assert w.samples == 3
    assert (w.sm_clock_mhz, w.sm_clock_min_mhz, w.temp_c) == (1900, 1700, 45)
    assert w.clock_reasons == ("sw_power_cap",)  # gpu_idle was outside
    assert w.cpu_busy_pct == pytest.approx(100 * 400 / 2000)
    assert w.cpu_steal_pct == pytest.approx(100 * 20 / 2000)
    empty = bench.summarize_window(samples, 4.0, 5.0)
    assert empty.samples == 0 and empty.sm_clock_mhz is None and empty.cpu_busy_pct is None


def test_case_windows_span_from_first_start_to_last_end():
    rep = [
        sample(0, window_start=10.0, window_end=12.0),
        sample(1, window_start=10.2, window_end=12.5),
    ]
    telemetry = tuple(
        bench.TelemetrySample(t=t, sm_clock_mhz=c) for t, c in ((9.9, 1), (10.1, 2), (12.4, 3))
    )
    case = bench.CaseRun(samples={"mlp": [rep]}, telemetry=telemetry)
    (window,) = bench.case_windows(case, "mlp")
    assert window.samples == 2 and window.sm_clock_min_mhz == 2
    assert bench.case_windows(bench.CaseRun(samples={"mlp": [rep]}), "mlp") is None


def test_proc_parsers():
    stat = "cpu  100 5 50 1000 20 3 2 40 7 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n"
    assert bench.parse_cpu_jiffies(stat) == (160, 40, 1220)
    assert bench.parse_cpu_jiffies("intr 1 2 3") is None
    status = "Name:\tpython3\nVmHWM:\t  1048576 kB\nVmRSS:\t   524288 kB\n"
    assert bench.parse_kib_field(status, "VmHWM") == 1024.0
    assert bench.parse_kib_field(status, "VmRSS") == 512.0
    assert bench.parse_kib_field(status, "Pss") is None
    fields = " ".join(str(i) for i in range(3, 53))  # fields 3..52; field 39 holds 39
    assert bench.parse_last_cpu(f"1234 (python3 -c x) {fields}") == 39  # a name with spaces
    assert bench.parse_last_cpu("1234 (short) S 1") is None
    assert bench.parse_smi_telemetry("1980, 3201, 41, [N/A], 97\n") == {
        "sm_clock_mhz": 1980.0,
        "mem_clock_mhz": 3201.0,
        "temp_c": 41.0,
        "gpu_util_pct": 97.0,
    }


def test_telemetry_monitor_samples_until_stopped():
    reads = []

    def read_gpu():
        reads.append(1)
        if len(reads) == 2:
            raise RuntimeError("NVML hiccup")  # one failed read must not stop the sampling
        return {"sm_clock_mhz": 1980.0, "temp_c": 40.0}

    with bench.TelemetryMonitor(read_gpu, interval_s=0.01) as monitor:
        time.sleep(0.1)
    samples = monitor.samples
    assert len(samples) >= 3
    assert [x.t for x in samples] == sorted(x.t for x in samples)
    assert samples[0].sm_clock_mhz == 1980.0
    assert samples[1].sm_clock_mhz is None
    count = len(samples)
    time.sleep(0.05)
    assert len(monitor.samples) == count  # the thread is gone


def test_host_memory_drop_counts_shared_pages_once():
    trace = [
        bench.TelemetrySample(t=i, mem_available_mib=m) for i, m in enumerate((9000, 7000, 7500))
    ]
    assert bench.host_memory_drop_mib(trace) == 2000
    assert bench.host_memory_drop_mib(trace[:1]) is None


# --- CSV --------------------------------------------------------------------------------------


def _results(tmp_path=None):
    settings = bench.settings_from_args(
        bench.parse_args(
            [
                "run",
                "--method",
                "sweep",
                "--clients",
                "1,2",
                "--repetitions",
                "2",
                "--duration",
                "2.5",
            ]
        )
    )
    runner = fake_runner(oom={("memory", "mps", 2)})
    return bench.run_benchmark(settings, runner, GPU, date="2026-01-02", log=lambda _: None)


def test_csv_header_and_round_trip(tmp_path):
    results = _results()
    path = tmp_path / "out" / "results.csv"
    bench.write_csv(path, results)
    header = path.read_text().splitlines()[0]
    assert header == (
        "date,gpu,driver,torch,model,mode,clients,repetitions,duration_s,aggregate_it_s,"
        "aggregate_min_it_s,aggregate_max_it_s,per_process_it_s,ratio_vs_exclusive,ratio_low,"
        "baseline_it_s,baseline_runs,baseline_spread_pct,p50_ms,p99_ms,mem_per_process_mib,"
        "host_rss_mib,sm_clock_mhz,gpu_temp_c,status,ratio_method,pairs_kept,pairs_excluded,"
        "ratio_halves_pct,baseline_launch_ms,ratio_host,reference_launch_ms,reference_it_s"
    )
    loaded = bench.load_results(path)
    assert len(loaded) == len(results) == 3 * 4  # 3 models x (exclusive 1, ts 2, mps 1, mps 2)
    for a, b in zip(results, loaded, strict=True):
        assert a.key == b.key
        assert a.status == b.status
        for field in (
            "aggregate_it_s",
            "aggregate_min_it_s",
            "per_process_it_s",
            "ratio_vs_exclusive",
            "ratio_low",
            "baseline_it_s",
            "baseline_spread_pct",
            "p50_ms",
            "host_rss_mib",
            "sm_clock_mhz",
        ):
            va, vb = getattr(a, field), getattr(b, field)
            assert (va is None and vb is None) or vb == pytest.approx(va, rel=1e-3)
        assert a.baseline_runs == b.baseline_runs
        assert (a.ratio_method, a.pairs_kept, a.pairs_excluded) == (
            b.ratio_method,
            b.pairs_kept,
            b.pairs_excluded,
        )
        assert isinstance(b.clients, int)
        if b.ratio_method == "paired":  # one MPS client: pairs of 0.5 s windows
            assert (b.key[1:], b.repetitions, b.duration_s) == (("mps", 1), 16, 0.5)
            assert (b.pairs_kept, b.pairs_excluded) == (16, 0)
            continue
        assert (b.repetitions, b.duration_s) == (2, 2.5)
        assert (b.date, b.gpu, b.driver, b.torch) == ("2026-01-02", "Test GPU", "1.2.3", "9.9")
    oom_row = next(r for r in loaded if r.status == "oom")
    assert oom_row.key == ("memory", "mps", 2)
    assert oom_row.aggregate_it_s is None and oom_row.p99_ms is None
    oom_line = next(line for line in path.read_text().splitlines() if ",oom," in line)
    # every measured column empty, not zero; only the baseline it was to be divided by stays
    fields = dict(zip(bench.CSV_COLUMNS, oom_line.split(","), strict=True))
    measured = ("aggregate_it_s", "ratio_vs_exclusive", "ratio_low", "p99_ms", "host_rss_mib")
    assert all(fields[column] == "" for column in measured)
    assert float(fields["baseline_it_s"]) > 0


def test_legacy_single_baseline_files_still_load(tmp_path):
    legacy = tmp_path / "legacy.csv"
    header = ",".join(bench.LEGACY_CSV_COLUMNS)
    row = "2026-01-02,T4,1,2.9,mlp,exclusive,1,3,3,5000,5000,1.0,0.2,0.3,54,ok"
    legacy.write_text(f"{header}\n{row}\n")
    (r,) = bench.load_results(legacy)
    assert (r.aggregate_it_s, r.ratio_vs_exclusive, r.p99_ms) == (5000.0, 1.0, 0.3)
    assert r.ratio_low is None and r.baseline_runs is None and r.host_rss_mib is None


def test_load_results_rejects_foreign_files(tmp_path):
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("model,mode\nmlp,mps\n")
    with pytest.raises(ValueError, match="unexpected columns"):
        bench.load_results(bad_header)
    good = tmp_path / "good.csv"
    bench.write_csv(good, _results())
    lines = good.read_text().splitlines()
    cells = lines[1].split(",")
    cells[bench.CSV_COLUMNS.index("status")] = "weird"
    good.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="unknown status"):
        bench.load_results(good)
    cells[bench.CSV_COLUMNS.index("status")] = "ok"
    cells[bench.CSV_COLUMNS.index("ratio_method")] = "guessed"
    good.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="unknown ratio_method"):
        bench.load_results(good)


def test_merge_recomputes_ratios_and_rejects_duplicates():
    results = _results()
    exclusive = [r for r in results if r.mode == "exclusive"]
    others = [
        dataclasses.replace(r, ratio_vs_exclusive=None) for r in results if r.mode != "exclusive"
    ]
    merged = bench.merge_results([others, exclusive])
    assert [r.key for r in merged] == [r.key for r in bench.sort_results(results)]
    ts = bench.results_by_key(merged)[("mlp", "time-slicing", 2)]
    assert ts.ratio_vs_exclusive == pytest.approx(1.0, rel=1e-2)  # fake: same total speed
    with pytest.raises(bench.BenchmarkError, match="duplicate"):
        bench.merge_results([results, exclusive])


def test_format_table_lists_every_row():
    table = bench.format_table(_results())
    assert table.count("| exclusive | 1 |") == 3
    assert "| mps | 2 | – |" in table  # the OOM'd memory case shows no numbers
    assert "oom |" in table


# --- plot -------------------------------------------------------------------------------------


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    settings = bench.settings_from_args(
        bench.parse_args(
            [
                "run",
                "--method",
                "sweep",
                "--models",
                "mlp",
                "--clients",
                "1,2,4",
                "--repetitions",
                "1",
            ]
        )
    )
    runner = fake_runner(oom={("mlp", "mps", 4)})  # one model keeps the test fast
    results = bench.run_benchmark(settings, runner, GPU, log=lambda _: None)
    csv_path = tmp_path / "r.csv"
    bench.write_csv(csv_path, results)
    png = tmp_path / "plots" / "r.png"
    assert bench.main(["plot", str(csv_path), "--out", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000  # an actual figure, not an empty canvas


# --- OOM and crashes --------------------------------------------------------------------------


def test_oom_row_and_nonzero_exit(tmp_path, capsys):
    out = tmp_path / "r.csv"
    calls = []
    runner = fake_runner(oom={("memory", "time-slicing", 4), ("mlp", "mps", 2)}, calls=calls)
    argv = [
        "run",
        "--method",
        "sweep",
        "--clients",
        "1,2,4",
        "--duration",
        "1",
        "--repetitions",
        "1",
        "--out",
        str(out),
    ]
    code = bench.main(argv, runner=runner, gpu=GPU)
    mps_cases = [("mps", 1), ("mps", 2), ("mps", 4)]
    assert code != 0
    err = capsys.readouterr().err
    assert "model=memory mode=time-slicing N=4" in err
    assert "model=mlp mode=mps N=2" in err
    # the run went on after the OOM
    assert calls == [
        ("exclusive", 1),
        ("time-slicing", 2),
        ("time-slicing", 4),
        ("exclusive", 1),
        *mps_cases,
        ("exclusive", 1),
    ]
    rows = bench.results_by_key(bench.load_results(out))
    assert rows[("memory", "time-slicing", 4)].status == "oom"
    assert rows[("mlp", "mps", 2)].status == "oom"
    assert rows[("mlp", "mps", 4)].status == "ok"
    assert sum(r.status == "oom" for r in rows.values()) == 2


def test_raise_on_oom_names_cases():
    results = _results()
    with pytest.raises(bench.OutOfMemoryFailure) as exc:
        bench.raise_on_oom(results)
    assert exc.value.cases == [("memory", "mps", 2)]
    assert "model=memory mode=mps N=2" in str(exc.value)
    bench.raise_on_oom([r for r in results if r.status == "ok"])  # no error without OOM


def test_clean_run_exits_zero(tmp_path):
    out = tmp_path / "r.csv"
    argv = [
        "run",
        "--method",
        "sweep",
        "--clients",
        "1,2",
        "--duration",
        "1",
        "--repetitions",
        "1",
        "--out",
        str(out),
    ]
    assert bench.main(argv, runner=fake_runner(), gpu=GPU) == 0
    assert all(r.status == "ok" for r in bench.load_results(out))


def test_worker_crash_fails_run_and_keeps_finished_rows(tmp_path, capsys):
    out = tmp_path / "r.csv"
    runner = fake_runner(crash_on=("mps", 2))
    argv = [
        "run",
        "--method",
        "sweep",
        "--clients",
        "1,2",
        "--duration",
        "1",
        "--repetitions",
        "1",
        "--out",
        str(out),
    ]
    assert bench.main(argv, runner=runner, gpu=GPU) == 1
    err = capsys.readouterr().err
    assert "planted crash" in err
    finished = {r.key for r in bench.load_results(out)}
    assert ("mlp", "mps", 1) in finished
    assert not any(mode == "mps" and n == 2 for _, mode, n in finished)


def test_unexpected_sample_status_is_an_error():
    bad = bench.WorkerSample(0, 1, 1.0, 1.0, 1.0, 1.0, 1.0, status="weird")
    with pytest.raises(bench.BenchmarkError, match="unexpected sample status"):
        bench.summarize_case("mlp", "mps", 1, [[bad]], META, 1.0)


# --- committed results ------------------------------------------------------------------------


COMMITTED = sorted(BENCH_PATH.parent.glob("results-h200*.csv"))


def test_every_committed_results_file_is_found():
    names = {p.name for p in COMMITTED}
    assert {"results-h200.csv", "results-h200-repeat.csv", "results-h200-reduced-a.csv"} <= names
    assert {f"results-h200-reduced-{x}.csv" for x in "abcdefghij"} <= names


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_h200_results_load(path):
    results = bench.load_results(path)
    keys = bench.results_by_key(results)
    assert len(keys) == len(results)  # one row per (model, mode, N)
    for model in {r.model for r in results}:
        base = keys[(model, "exclusive", 1)]
        assert base.ratio_vs_exclusive == pytest.approx(1.0)
        assert base.baseline_runs >= 2  # measured before and after every sweep
        for r in results:
            if r.model == model and r.status == "ok":
                assert r.baseline_it_s == pytest.approx(base.aggregate_it_s)
                # every row's ratio is at its model's reference host speed, or as measured
                assert r.reference_launch_ms == base.reference_launch_ms
                if r.ratio_method == "paired":  # measured against its own exclusive windows
                    assert (r.mode, r.clients) in (("mps", 1), ("mps-limited", 1))
                    assert r.pairs_kept >= bench.PAIR_MIN_KEPT
                    assert r.repetitions == r.pairs_kept
                else:
                    assert r.ratio_host == pytest.approx(
                        r.aggregate_it_s / base.aggregate_it_s, rel=1e-3
                    )
                    if base.reference_launch_ms is None:
                        assert r.ratio_vs_exclusive == r.ratio_host
                    else:
                        assert r.ratio_vs_exclusive == pytest.approx(
                            r.reference_it_s / base.reference_it_s, rel=1e-3
                        )
                assert r.ratio_low <= r.ratio_vs_exclusive
                assert r.aggregate_min_it_s <= r.aggregate_it_s <= r.aggregate_max_it_s
                assert r.host_rss_mib > 0 and r.sm_clock_mhz > 0
                assert math.isclose(r.per_process_it_s * r.clients, r.aggregate_it_s, rel_tol=1e-3)


# --- one MPS client, paired with an exclusive process on the same core -------------------------


def test_pairing_is_on_by_default_for_one_mps_client_only():
    settings = _settings("--modes", "exclusive,time-slicing,mps,mps-limited", "--clients", "1,2")
    assert settings.pairing and settings.pairs == 16 and settings.pair_window_s == 0.5
    assert bench.is_paired_case("mps", 1, settings)
    assert bench.is_paired_case("mps-limited", 1, settings)
    assert not bench.is_paired_case("mps", 2, settings)
    assert not bench.is_paired_case("exclusive", 1, settings)
    assert not bench.is_paired_case("mps", 1, _settings("--no-pairing"))
    custom = _settings("--pairs", "8", "--pair-window", "0.25", "--pair-probe-tolerance", "0.1")
    assert (custom.pairs, custom.pair_window_s, custom.pair_probe_tolerance) == (8, 0.25, 0.1)


def test_estimate_counts_the_paired_windows():
    paired = _settings("--modes", "exclusive,mps", "--clients", "1", "--models", "mlp")
    unpaired = _settings(
        "--modes", "exclusive,mps", "--clients", "1", "--models", "mlp", "--no-pairing"
    )
    windows = paired.pairs * 2 * (paired.pair_window_s + bench.PAIR_WARMUP_S)
    per_rep = unpaired.repetitions * (unpaired.warmup_s + unpaired.duration_s)
    difference = bench.estimate_seconds(paired) - bench.estimate_seconds(unpaired)
    assert difference > windows - per_rep


def test_pair_ratios_keep_only_pairs_whose_probes_agree():
    pairs = [
        pair(8000, 7200),  # 0.9, one core state throughout
        pair(5000, 4500, probes=(4.3, 4.4, 4.2, 4.3)),  # 0.9 on the slow core: kept
        pair(8000, 4400, probes=(2.5, 2.5, 4.3, 4.4)),  # core slowed between the windows
        pair(8000, 6000, probes=(2.5, 4.2, 4.2, 4.2)),  # slowed inside the exclusive window
        pair(8000, 7300, probes=(2.5, 2.6, 2.5, None)),  # a probe missing: cannot tell
        pair(8000, 7400, probes=(2.5, 2.6, 2.7, 2.6)),  # 0.925, kept
        pair(8000, 4500, probes=(2.5, 2.5, 4.3, 4.3)),  # slowed between the windows
    ]
    ratios = bench.pair_ratios(pairs, tolerance=0.2)
    assert [r.kept for r in ratios] == [True, True, False, False, False, True, False]
    assert ratios[2].ratio == pytest.approx(0.55)
    assert ratios[2].probe_spread == pytest.approx(4.4 / 2.5 - 1)
    assert ratios[4].probe_spread is None
    # only kept pairs count; without the rule the slowed pairs pull the median down
    assert bench.paired_ratio(ratios)[0] == pytest.approx(0.9)
    everything = bench.pair_ratios(pairs, tolerance=10.0)
    # 0.9, 0.9, 0.55, 0.75, 0.925, 0.5625 (the pair without a probe is still left out)
    assert bench.paired_ratio(everything)[0] == pytest.approx(0.825)
    lines = bench.describe_pairs(ratios, 0.2)
    assert lines[0].startswith("paired: 3 of 7 pairs kept (CPU probes within 20%)")
    assert "WARNING" not in lines[0]
    assert lines[1].count(") x") == 4 and "8000/4400=0.55(76%) x" in lines[1]


def test_paired_ratio_low_end_and_fallback():
    ratios = bench.pair_ratios([pair(1000, 1000 * (0.8 + i / 100)) for i in range(11)], 0.2)
    median, low, used = bench.paired_ratio(ratios)
    assert median == pytest.approx(0.85)
    assert low == pytest.approx(0.81)  # 10th percentile of 0.80 .. 0.90
    assert len(used) == 11
    # Fewer than PAIR_MIN_KEPT agreeing pairs: all pairs are used, and the log says so.
    disagreeing = [pair(1000, 900, probes=(2.5, 4.3, 2.5, 2.5))] * 3 + [pair(1000, 500)]
    ratios = bench.pair_ratios(disagreeing, 0.2)
    assert bench.paired_ratio(ratios)[0] == pytest.approx(0.9)
    assert len(bench.paired_ratio(ratios)[2]) == 4
    assert "WARNING: fewer than 3 pairs kept" in bench.describe_pairs(ratios, 0.2)[0]
    with pytest.raises(bench.BenchmarkError, match="no paired windows"):
        bench.paired_ratio([])


def test_pair_ratios_reject_malformed_pairs():
    with pytest.raises(bench.BenchmarkError, match="one exclusive and one MPS sample"):
        bench.pair_ratios([[sample(0), sample(0)]], 0.2)
    with pytest.raises(bench.BenchmarkError, match="one exclusive and one MPS sample"):
        bench.pair_ratios([[sample(1)]], 0.2)
    with pytest.raises(bench.BenchmarkError, match="ran no iterations"):
        bench.pair_ratios([pair(0, 100)], 0.2)
    with pytest.raises(bench.BenchmarkError, match="unexpected sample status"):
        bench.pair_ratios([[sample(0), oom_sample(1)]], 0.2)


def test_summarize_paired_describes_the_client_windows_of_the_pairs_used():
    pairs = [pair(8000, 7200), pair(8000, 7600), pair(8000, 4000, probes=(2.5, 2.5, 4.3, 4.3))]
    pairs += [pair(5000, 4000, probes=(4.3, 4.3, 4.3, 4.3))]
    windows = [
        bench.WindowTelemetry(samples=1, sm_clock_mhz=c, temp_c=40 + c / 100)
        for c in (1980, 1900, 345, 1700)
    ]
    r = bench.summarize_paired("mlp", "mps", pairs, META, 0.5, 0.2, windows)
    assert (r.ratio_method, r.pairs_kept, r.pairs_excluded) == ("paired", 3, 1)
    assert r.ratio_vs_exclusive == pytest.approx(0.9)  # 0.9, 0.95, 0.8
    assert (r.repetitions, r.duration_s, r.clients) == (3, 0.5, 1)
    assert r.aggregate_it_s == pytest.approx(7200.0)  # median of 7200, 7600, 4000
    assert (r.aggregate_min_it_s, r.aggregate_max_it_s) == (4000.0, 7600.0)
    assert r.sm_clock_mhz == 1900  # the excluded pair's window does not count
    assert r.host_rss_mib == 750.0  # the client's, not the exclusive process's 0
    assert r.ratio_low <= r.ratio_vs_exclusive


def _simulated_core(seed, ticks, flip=0.02):
    """A core that runs at speed 1.0 or 0.6, flipping with probability `flip` every 0.1 s."""
    rng = random.Random(seed)
    state, out = 1.0, []
    for _ in range(ticks):
        if rng.random() < flip:
            state = 1.6 - state
        out.append(state)
    return out


def test_paired_windows_cancel_a_bimodal_core_that_separate_windows_do_not():
    """The failure this method is for: a launch-bound process runs at its core's speed, which
    flips between two states every few seconds. One MPS client truly runs at 0.9x exclusive.
    Separate 2 s measurements (the baseline's way) give ratios all over the place; pairs of
    adjacent 0.5 s windows on the same core, with the probe rule, give 0.9 every time."""
    true_ratio, fast_it_s = 0.9, 8000.0

    def window(core, t, ticks, speed):
        return speed * statistics.mean(core[t : t + ticks]), 2.5 / core[t], 2.5 / core[t + ticks]

    separate, paired, excluded = [], [], 0
    for seed in range(20):
        core = _simulated_core(seed, 2000)
        # the old way: 3 exclusive windows of 2 s, then 3 MPS-client windows of 2 s, later
        base = statistics.median(window(core, 100 * i, 20, fast_it_s)[0] for i in range(3))
        mps = statistics.median(
            window(core, 1000 + 100 * i, 20, fast_it_s * true_ratio)[0] for i in range(3)
        )
        separate.append(mps / base)
        pairs, t = [], 0
        for i in range(16):  # 0.1 s warm-up + 0.5 s window each, the order alternating
            first = window(core, t + 1, 5, fast_it_s)
            second = window(core, t + 7, 5, fast_it_s * true_ratio)
            excl, client = (first, second) if i % 2 == 0 else (second, first)
            if i % 2:
                excl = window(core, t + 7, 5, fast_it_s)
                client = window(core, t + 1, 5, fast_it_s * true_ratio)
            pairs.append(pair(excl[0], client[0], probes=(*excl[1:], *client[1:])))
            t += 12
        ratios = bench.pair_ratios(pairs, bench.DEFAULT_PAIR_PROBE_TOLERANCE)
        excluded += sum(not r.kept for r in ratios)
        paired.append(bench.paired_ratio(ratios)[0])
    assert max(separate) / min(separate) > 1.3  # the noise is there
    assert excluded > 0  # and some pairs straddled a switch
    assert all(abs(r / true_ratio - 1) < 0.02 for r in paired)


def test_run_reports_the_paired_ratio_for_one_mps_client(tmp_path, capsys):
    # A drifting baseline moves every baseline ratio but not the paired one.
    drifting = {"mlp": [600.0, 1000.0]}  # two measurements: before and after the MPS sweep
    out = tmp_path / "r.csv"
    argv = [*_run_args(tmp_path), "--modes", "exclusive,mps", "--accept-unstable-baseline"]
    runner = fake_runner(baseline=drifting, pair_ratio={"mlp": 0.7})
    assert bench.main(argv, runner=runner, gpu=GPU) == 0
    printed = capsys.readouterr().out
    assert "== mode=mps N=1 (paired: 16 x 0.5 s windows" in printed
    assert "paired: 16 of 16 pairs kept" in printed
    assert "¹ mps N=1: ratios from windows paired with an exclusive process" in printed
    rows = bench.results_by_key(bench.load_results(out))
    single = rows[("mlp", "mps", 1)]
    assert single.ratio_method == "paired"
    assert single.ratio_vs_exclusive == pytest.approx(0.7)
    assert single.baseline_it_s == pytest.approx(800.0)  # still says what the others divide by
    two = rows[("mlp", "mps", 2)]
    assert two.ratio_method == "median-baseline"
    assert two.ratio_vs_exclusive == pytest.approx(1000.0 / 800.0)
    # merging recomputes the baseline ratios and keeps the paired one
    merged = bench.results_by_key(bench.merge_results([bench.load_results(out)]))
    assert merged[("mlp", "mps", 1)].ratio_vs_exclusive == pytest.approx(0.7)
    # --no-pairing measures it like the others: the fake's 1000 it/s over the baseline's
    argv = [*argv, "--no-pairing"]
    runner = fake_runner(baseline=drifting, pair_ratio={"mlp": 0.7})
    assert bench.main(argv, runner=runner, gpu=GPU) == 0
    single = bench.results_by_key(bench.load_results(out))[("mlp", "mps", 1)]
    assert single.ratio_method == "median-baseline"
    assert single.ratio_vs_exclusive == pytest.approx(1000.0 / 800.0)


def test_pre_pairing_files_still_load(tmp_path):
    results = _results()
    path = tmp_path / "old.csv"
    bench.write_csv(path, results)
    n = len(bench.PRE_PAIRING_CSV_COLUMNS)
    lines = [",".join(line.split(",")[:n]) for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    loaded = bench.load_results(path)
    assert all(r.ratio_method == "median-baseline" and r.pairs_kept is None for r in loaded)


def test_check_pair_clients_wants_the_mps_worker_listed_and_the_exclusive_not():
    ready = {0: {"pid": 111}, 1: {"pid": 222}}
    assert "is the MPS worker (pid 222)" in bench.check_pair_clients(ready, ["222"])
    assert "not comparable" in bench.check_pair_clients(ready, ["9222"])  # other pid namespace
    for listed in (["111", "222"], ["111"], [], ["222", "333"]):
        with pytest.raises(bench.BenchmarkError, match="want only the MPS worker 222"):
            bench.check_pair_clients(ready, listed)


# --- the interleaved method -------------------------------------------------------------------


def _interleaved(*argv):
    return bench.settings_from_args(bench.parse_args(["run", *argv]))


def test_interleaved_schedule_pairs_every_case_with_an_exclusive_window_on_its_core():
    settings = _interleaved("--models", "mlp", "--clients", "1,2,10", "--rounds", "10")
    schedule = bench.interleaved_schedule(settings)
    cases = bench.interleaved_cases(settings)
    assert cases == [("time-slicing", 2), ("time-slicing", 10), ("mps", 1), ("mps", 2), ("mps", 10)]
    assert bench.worker_groups(settings) == ("plain", "mps")
    assert bench.group_size(settings) == 10
    assert len(schedule) == 10 * 2 * len(cases)
    assert [w.index for w in schedule] == list(range(len(schedule)))
    for exclusive, shared in zip(schedule[::2], schedule[1::2], strict=True):
        assert (exclusive.mode, exclusive.clients, exclusive.case) == ("exclusive", 1, shared.case)
        assert (shared.mode, shared.clients) == shared.case
        assert exclusive.ranks == shared.ranks[:1]  # the same core, right before
        assert len(set(shared.ranks)) == shared.clients
        assert exclusive.round == shared.round
    for r in range(10):  # every case once per round, the order reversed every other round
        order = [w.case for w in schedule if w.round == r and w.mode != "exclusive"]
        assert order == (cases if r % 2 == 0 else cases[::-1])
    for case in cases:  # over 10 rounds each case starts once on every core
        firsts = [w.ranks[0] for w in schedule if w.mode != "exclusive" and w.case == case]
        assert sorted(firsts) == list(range(10))
    alone = bench.interleaved_schedule(_interleaved("--modes", "exclusive", "--rounds", "3"))
    assert [(w.mode, w.ranks) for w in alone] == [("exclusive", (0,))] * 3


def test_interleaved_runs_one_mps_daemon_at_most():
    assert bench.worker_groups(_interleaved("--modes", "exclusive,mps-limited")) == (
        "plain",
        "mps-limited",
    )
    assert bench.worker_groups(_interleaved("--modes", "exclusive,time-slicing")) == ("plain",)
    with pytest.raises(SystemExit):
        _interleaved("--modes", "mps,mps-limited")
    assert _interleaved("--method", "sweep", "--modes", "mps,mps-limited").method == "sweep"


def test_interleaved_memory_check_names_a_size_that_fits():
    h200 = bench.GpuInfo("H200", "580", 143771)
    assert bench.interleaved_memory_problem(_interleaved(), h200) is None  # 20 x 4.75 GiB
    problem = bench.interleaved_memory_problem(_interleaved("--memory-gib", "8"), h200)
    assert "20 processes needs about 175 GiB" in problem and "--memory-gib 5.75" in problem
    settings = _interleaved("--memory-gib", "5.75")
    assert bench.interleaved_memory_problem(settings, h200) is None
    assert (
        bench.interleaved_memory_problem(
            _interleaved("--models", "mlp", "--memory-gib", "99"), h200
        )
        is None
    )


def test_estimate_counts_every_interleaved_window():
    settings = _interleaved("--models", "mlp", "--clients", "1,10", "--rounds", "20")
    windows = len(bench.interleaved_schedule(settings)) * (settings.window_s + bench.PAIR_WARMUP_S)
    assert windows < bench.estimate_seconds(settings) < 2 * windows


def _interleaved_run(settings, speed_of, start=0.0):
    """An InterleavedRun whose workers run at speed_of(window, rank, t) it/s, telemetry at
    1980 MHz inside every window and 300 MHz outside."""
    samples, telemetry, t = {}, [], start
    for model in settings.models:
        samples[model] = {}
        for w in bench.interleaved_schedule(settings):
            lst = []
            for rank in w.ranks:
                its = speed_of(model, w, rank, t)
                lst.append(
                    sample(
                        rank,
                        iterations=round(its * settings.window_s),
                        elapsed=settings.window_s,
                        window_start=t,
                        window_end=t + settings.window_s,
                        cpu_probe_ms=2.5,
                        cpu_probe_after_ms=2.5,
                        host_rss_mib=760.0,
                        launch_ms=0.1,
                    )
                )
            telemetry += [
                bench.TelemetrySample(t=t + settings.window_s / 2, sm_clock_mhz=1980.0),
                bench.TelemetrySample(t=t + settings.window_s + 0.05, sm_clock_mhz=300.0),
            ]
            samples[model][w.index] = lst
            t += settings.window_s + 0.1
    return bench.InterleavedRun(
        windows=tuple(bench.interleaved_schedule(settings)),
        samples=samples,
        torch_version="9.9",
        gpu="Test GPU",
        telemetry=tuple(telemetry),
    )


def test_interleaved_rows_divide_by_the_mean_of_all_exclusive_windows():
    settings = _interleaved("--models", "mlp", "--clients", "1,4", "--rounds", "4")

    def speed(model, w, rank, t):
        if w.mode == "exclusive":
            return 1000.0 if w.round < 2 else 600.0  # the baseline drifts: mean 800
        if w.mode == "time-slicing":
            return 900.0 / w.clients  # GPU-bound: 900 it/s together
        return 950.0 if w.round < 2 else 570.0  # MPS clients follow their cores, like it

    run = _interleaved_run(settings, speed)
    rows = bench.results_by_key(bench.summarize_interleaved("mlp", settings, run, META))
    base = rows[("mlp", "exclusive", 1)]
    assert base.aggregate_it_s == pytest.approx(800.0)
    assert (base.baseline_runs, base.repetitions, base.duration_s) == (12, 12, 0.4)
    assert base.baseline_spread_pct == pytest.approx(100 * (1000 - 600) / 800)
    assert base.baseline_launch_ms == pytest.approx(0.1)
    ts = rows[("mlp", "time-slicing", 4)]
    assert ts.ratio_method == "interleaved"
    assert ts.ratio_vs_exclusive == pytest.approx(900 / 800)
    assert ts.ratio_low == pytest.approx(bench.percentile([0.9, 0.9, 1.5, 1.5], 10))
    # halves: 900/1000 against 900/600 - a GPU-bound case follows the baseline's core speed
    assert ts.ratio_halves_pct == pytest.approx(100 * (1.5 - 0.9) / (900 / 800))
    mps4 = rows[("mlp", "mps", 4)]
    assert mps4.ratio_vs_exclusive == pytest.approx(4 * 760 / 800)
    assert mps4.ratio_halves_pct == pytest.approx(0.0, abs=1e-9)  # co-varies: both halves 3.8
    assert (mps4.sm_clock_mhz, mps4.host_rss_mib) == (1980.0, 760.0)
    single = rows[("mlp", "mps", 1)]
    assert single.ratio_method == "paired" and single.pairs_kept == 4
    assert single.ratio_vs_exclusive == pytest.approx(0.95)
    assert single.baseline_it_s == pytest.approx(800.0)
    for r in rows.values():
        assert r.baseline_it_s == pytest.approx(800.0) and r.baseline_runs == 12


def test_interleaving_cancels_a_drifting_host_for_launch_bound_cases():
    """Every core flips between full and 0.6 speed (_simulated_core). Launch-bound processes
    (the exclusive baseline, MPS clients) run at their core's speed; one MPS client truly
    runs at 0.95x exclusive and ten at 0.9x each. Interleaved, the ratios come out right for
    every host history (ten clients within 8 %: the baseline is one core's history, the ten
    clients ten cores'); measured in separate blocks, as the sweep did, they miss by more."""
    settings = _interleaved("--models", "mlp", "--clients", "1,10", "--modes", "exclusive,mps")
    settings = dataclasses.replace(settings, rounds=20)
    ratios, separate = [], []
    for seed in range(10):
        cores = [_simulated_core(seed * 100 + c, 4000, flip=0.01) for c in range(10)]

        def speed(model, w, rank, t, cores=cores):
            factor = {"exclusive": 1.0, "mps": 0.95 if w.clients == 1 else 0.9}[w.mode]
            return 8000.0 * factor * cores[rank][int(t * 10)]

        rows = bench.results_by_key(
            bench.summarize_interleaved("mlp", settings, _interleaved_run(settings, speed), META)
        )
        ratios.append(
            (
                rows[("mlp", "mps", 1)].ratio_vs_exclusive,
                rows[("mlp", "mps", 10)].ratio_vs_exclusive,
            )
        )
        # the sweep's way: the baseline over its first minute, ten clients over the next
        base = statistics.mean(8000.0 * cores[0][t] for t in range(0, 600))
        ten = sum(
            statistics.mean(7200.0 * cores[c][t] for t in range(600, 1200)) for c in range(10)
        )
        separate.append(ten / base)
    assert all(one == pytest.approx(0.95, rel=0.02) for one, _ in ratios)
    assert all(ten == pytest.approx(9.0, rel=0.08) for _, ten in ratios)
    # ... which the sweep's separate blocks miss by more, for some host histories
    assert max(abs(ten / 9.0 - 1) for ten in separate) > 0.08


def test_an_oom_marks_every_row_of_its_model():
    settings = _interleaved("--models", "mlp,memory", "--clients", "1,2", "--rounds", "2")
    run = _interleaved_run(settings, lambda *_: 500.0)
    index = next(w.index for w in run.windows if w.mode == "mps" and w.clients == 2)
    run.samples["memory"][index][1] = oom_sample(1)
    rows = bench.summarize_interleaved("memory", settings, run, META)
    assert {r.status for r in rows} == {"oom"} and len(rows) == 1 + 3
    assert {r.status for r in bench.summarize_interleaved("mlp", settings, run, META)} == {"ok"}
    run.samples["mlp"].pop(index)
    with pytest.raises(bench.BenchmarkError, match="samples missing"):
        bench.summarize_interleaved("mlp", settings, run, META)


def _fake_interleaved_runner(speed_of):
    return lambda settings: _interleaved_run(settings, speed_of)


def test_main_interleaved_fails_when_the_halves_of_the_run_disagree(tmp_path, capsys):
    out, raw = tmp_path / "r.csv", tmp_path / "raw.json"
    argv = ["run", "--models", "mlp", "--clients", "1,2", "--rounds", "4", "--out", str(out)]
    argv += ["--raw-out", str(raw)]

    def steady(model, w, rank, t):
        return 1000.0 if w.mode == "exclusive" else 700.0

    assert bench.main(argv, gpu=GPU, interleaved_runner=_fake_interleaved_runner(steady)) == 0
    printed = capsys.readouterr()
    assert "method interleaved" in printed.out and "UNSTABLE" not in printed.err
    rows = bench.results_by_key(bench.load_results(out))
    assert rows[("mlp", "time-slicing", 2)].ratio_vs_exclusive == pytest.approx(1.4)
    assert rows[("mlp", "time-slicing", 2)].ratio_halves_pct == pytest.approx(0.0)

    def drifting(model, w, rank, t):  # the cores slow down; time-slicing is GPU-bound
        if w.mode == "time-slicing":
            return 700.0
        return 1000.0 if w.round < 2 else 700.0  # the baseline and MPS clients follow them

    runner = _fake_interleaved_runner(drifting)
    assert bench.main(argv, gpu=GPU, interleaved_runner=runner) == 4
    err = capsys.readouterr().err
    assert "NOTE: the baseline moved during the run" in err
    assert "ERROR: UNSTABLE RATIOS" in err
    assert "model=mlp mode=time-slicing N=2: the first and second half" in err
    assert "mode=mps" not in err  # the MPS rows follow the cores as the baseline does
    accepted = [*argv, "--accept-unstable-baseline"]
    assert bench.main(accepted, gpu=GPU, interleaved_runner=runner) == 0
    assert "WARNING: UNSTABLE RATIOS" in capsys.readouterr().err
    assert bench.main([*argv, "--max-ratio-halves", "80"], gpu=GPU, interleaved_runner=runner) == 0


def test_summarize_recomputes_the_csv_from_the_raw_json(tmp_path):
    import gzip

    out, raw = tmp_path / "r.csv", tmp_path / "raw.json"
    argv = ["run", "--models", "mlp", "--clients", "1,2", "--rounds", "4", "--out", str(out)]
    runner = _fake_interleaved_runner(lambda m, w, rank, t: 900.0 + 10 * rank + w.round)
    assert bench.main([*argv, "--raw-out", str(raw)], gpu=GPU, interleaved_runner=runner) == 0
    packed = tmp_path / "raw.json.gz"
    packed.write_bytes(gzip.compress(raw.read_bytes()))
    for source in (raw, packed):
        again = tmp_path / f"again-{source.suffix}.csv"
        assert bench.main(["summarize", str(source), "--out", str(again)]) == 0
        assert again.read_text() == out.read_text()
    with pytest.raises(ValueError, match="no settings entry"):
        bench.interleaved_from_raw([{"model": "mlp", "windows": []}])


COMMITTED_RAW = sorted(COMMITTED[0].parent.glob("results-*-raw.json.gz"))


@pytest.mark.parametrize("raw", COMMITTED_RAW, ids=lambda p: p.name)
def test_committed_csvs_are_what_their_raw_windows_give(raw):
    """Every committed interleaved CSV is recomputed from its committed raw windows by this
    code: the published ratios are the method's, not edited numbers."""
    csv_path = raw.with_name(raw.name.replace("-raw.json.gz", ".csv"))
    settings, meta, run = bench.interleaved_from_raw(bench.read_raw(raw))
    committed = bench.results_by_key(bench.load_results(csv_path))
    # the committed files are stated at the default reference host speed
    reference = {
        model: ms
        for (model, mode, _), c in committed.items()
        if mode == "exclusive" and (ms := c.reference_launch_ms) is not None
    }
    assert reference == {m: ms for m, ms in bench.REFERENCE_LAUNCH_MS.items() if m in reference}
    assert set(reference) == {"mlp", "transformer"} & set(settings.models)
    rows = bench.summarize_interleaved_run(
        settings, run, meta, log=lambda _: None, reference=bench.REFERENCE_LAUNCH_MS
    )
    assert set(committed) == {r.key for r in rows}
    for r in rows:
        c = committed[r.key]
        assert c.ratio_method == r.ratio_method
        assert c.ratio_vs_exclusive == pytest.approx(r.ratio_vs_exclusive, rel=1e-3)
        assert c.ratio_low == pytest.approx(r.ratio_low, rel=1e-3)
        assert c.ratio_host == pytest.approx(r.ratio_host, rel=1e-3)
        assert c.aggregate_it_s == pytest.approx(r.aggregate_it_s, rel=1e-4)


def test_check_group_clients_wants_exactly_the_mps_group():
    ready = {("plain", 0): {"pid": 1}, ("plain", 1): {"pid": 2}}
    ready |= {("mps", 0): {"pid": 11}, ("mps", 1): {"pid": 12}}
    assert "are the mps group's workers" in bench.check_group_clients(ready, "mps", ["11", "12"])
    assert "not comparable" in bench.check_group_clients(ready, "mps", ["911", "912"])
    for listed in (["11"], ["11", "12", "1"], ["1", "12"]):
        with pytest.raises(bench.BenchmarkError, match="want the 2 workers"):
            bench.check_group_clients(ready, "mps", listed)


def test_files_before_the_halves_column_still_load(tmp_path):
    path = tmp_path / "r.csv"
    settings = _interleaved("--models", "mlp", "--clients", "1,2", "--rounds", "2")
    run = _interleaved_run(settings, lambda *_: 500.0)
    bench.write_csv(path, bench.summarize_interleaved("mlp", settings, run, META))
    n = len(bench.PRE_INTERLEAVED_CSV_COLUMNS)
    path.write_text("\n".join(",".join(x.split(",")[:n]) for x in path.read_text().splitlines()))
    loaded = bench.load_results(path)
    assert {r.ratio_method for r in loaded} == {"interleaved", "paired"}
    assert all(r.ratio_halves_pct is None for r in loaded)


def test_compare_puts_two_runs_side_by_side_and_fails_on_a_difference(tmp_path, capsys):
    directory = COMMITTED[0].parent
    pairs = [
        tuple(directory / f"results-h200-reduced-{x}.csv" for x in pair)
        for pair in ("ab", "cd", "ef", "gh", "ij")
    ]
    # the criterion (within 10 %) on the committed back-to-back runs, and on the two
    # full runs
    for a, b in [*pairs, (directory / "results-h200.csv", directory / "results-h200-repeat.csv")]:
        assert bench.main(["compare", str(a), str(b)]) == 0, (a.name, b.name)
    out = capsys.readouterr().out
    assert out.count("| mlp |") == 5 * 3 + 9 and out.count("| transformer |") == 5 * 3 + 9
    x, y = (
        bench.results_by_key(bench.load_results(p))[("transformer", "mps", 10)] for p in pairs[0]
    )
    diff = 100 * (y.ratio_vs_exclusive / x.ratio_vs_exclusive - 1)
    assert (
        f"| transformer | mps | 10 | interleaved | {x.ratio_vs_exclusive:.3f} ({x.ratio_low:.2f}) "
        f"| {y.ratio_vs_exclusive:.3f} ({y.ratio_low:.2f}) | {diff:+.1f} % |"
    ) in out
    c, d = pairs[1]
    assert bench.main(["compare", str(c), str(d), "--max-diff", "0.1"]) == 4
    captured = capsys.readouterr()
    assert "**" in captured.out and "ERROR: THE RUNS DO NOT AGREE" in captured.err
    assert "model=mlp mode=mps N=10:" in captured.err
    # ratios stated at different host speeds are not compared as if they were alike
    measured = tmp_path / "c-measured.csv"
    raw = directory / "results-h200-reduced-c-raw.json.gz"
    assert (
        bench.main(["summarize", str(raw), "--out", str(measured), "--reference-launch-ms", "none"])
        == 0
    )
    capsys.readouterr()
    assert bench.main(["compare", str(c), str(measured), "--max-diff", "1000"]) == 4
    err = capsys.readouterr().err
    assert "model=mlp: the ratios are stated at different host speeds" in err
    assert "(reference launch ms 0.120 against none)" in err


# --- ratios at a reference host speed ----------------------------------------------------------


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
    assert bench.parse_reference("mlp=0.1, transformer=1") == {"mlp": 0.1, "transformer": 1.0}
    assert bench.parse_reference("none") == {}
    for bad in ("mlp", "gpt=1", "mlp=0", "mlp=-1", "mlp=x", "mlp=inf", ""):
        with pytest.raises(Exception, match=r"want MODEL=MS|must be a number|comma-separated"):
            bench.parse_reference(bad)
    args = bench.parse_args(["run"])
    assert args.reference == bench.REFERENCE_LAUNCH_MS
    assert bench.parse_args(["summarize", "x.json", "--out", "y.csv"]).reference == args.reference


def test_bad_reference_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.parse_args(["run", "--reference-launch-ms", "mlp=fast"])
    assert exc.value.code == 2
    assert "'mlp=fast': the launch time must be a number > 0" in capsys.readouterr().err


def test_host_slope_is_how_an_iteration_follows_the_launch_time():
    follows = [(x, x + 0.01) for x in (0.1, 0.12, 0.15, 0.2)]
    assert bench.host_slope(follows) == (pytest.approx(1.0), pytest.approx(0.0, abs=1e-9))
    held = [(x, 1.7) for x in (0.1, 0.12, 0.15, 0.2)]
    assert bench.host_slope(held)[0] == pytest.approx(0.0, abs=1e-12)
    noisy = [(0.1, 1.0), (0.2, 1.3), (0.1, 1.2), (0.2, 1.1)]
    slope, error = bench.host_slope(noisy)
    assert slope == pytest.approx(1.0) and error == pytest.approx(math.sqrt(2))  # cannot tell
    assert bench.host_slope([(0.1, 1.0), (0.1, 1.1), (0.1, 1.2)]) is None  # no spread
    assert bench.host_slope(follows[:2]) is None


def test_at_reference_moves_each_window_by_its_case_slope():
    ref = bench.HostReference(launch_ms=0.12, lone_launch_ms=0.16, lone_wait_ms=0.01)
    lone = bench.at_reference(_window_sample(0.17, 0.16), ref, 1.0)  # follows the host
    assert bench.iteration_ms(lone) == pytest.approx(0.13) and lone.launch_ms == 0.12
    assert lone.iterations == 400 and lone.p99_ms == 2.0  # latencies stay as measured
    steeper = bench.at_reference(_window_sample(0.17, 0.16), ref, 1.15)
    assert bench.iteration_ms(steeper) == pytest.approx(0.17 - 1.15 * 0.04)
    held = bench.at_reference(_window_sample(1.7, 0.2), ref, 0.0)  # the GPU sets the pace
    assert bench.iteration_ms(held) == pytest.approx(1.7)
    partly = bench.at_reference(_window_sample(1.7, 0.2), ref, 0.25)
    assert bench.iteration_ms(partly) == pytest.approx(1.7 - 0.25 * 0.08)
    slower = dataclasses.replace(ref, launch_ms=1.0)  # a slower reference host
    assert bench.iteration_ms(bench.at_reference(_window_sample(0.17, 0.16), slower, 1.0)) == (
        pytest.approx(1.01)
    )
    # never shorter than launching it takes
    assert bench.iteration_ms(bench.at_reference(_window_sample(0.5, 0.45), ref, 2.0)) == (
        pytest.approx(0.12)
    )
    assert bench.at_reference(oom_sample(), ref, 1.0) == oom_sample()
    no_launch = sample(iterations=100, elapsed=1.0)
    assert bench.at_reference(no_launch, ref, 1.0) == no_launch


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
        bench.results_by_key(
            bench.summarize_interleaved("mlp", settings, _host_run(settings, host), META, 0.12)
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
    plain = bench.summarize_interleaved("mlp", settings, _host_run(settings, 1.4), META, None)
    for r in plain:
        assert r.ratio_vs_exclusive == r.ratio_host and r.reference_launch_ms is None


def test_a_gpu_bound_lone_process_keeps_its_ratios_as_measured():
    settings = _interleaved("--models", "memory", "--clients", "1,2", "--rounds", "2")
    run = _interleaved_run(settings, lambda *_: 780.0)  # 1.28 ms a window, launch 0.1 ms
    ref, why = bench.host_reference("memory", run, 0.5)
    assert ref is None and "GPU-bound" in why
    rows = bench.summarize_interleaved("memory", settings, run, META, 0.5)
    assert all(r.reference_launch_ms is None and r.ratio_host == r.ratio_vs_exclusive for r in rows)
    assert bench.host_reference("memory", run, None)[0] is None


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
    ref, why = bench.host_reference("transformer", run, 0.5)
    assert ref.slopes == {
        ("exclusive", 1): pytest.approx(1.0),
        ("mps", 1): pytest.approx(1.0),
        ("mps", 2): pytest.approx(1.0),
        ("mps", 4): pytest.approx(0.0, abs=1e-9),
    }
    assert "mps N=2 1.00, mps N=4 0.00" in why
    assert bench.gpu_capacity("transformer", run, ref) == {"mps": pytest.approx(2800)}
    rows = bench.results_by_key(
        bench.summarize_interleaved("transformer", settings, run, META, 0.5)
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
    ref, why = bench.host_reference("mlp", run, 0.12)
    assert ref is None
    assert "cannot be measured from this run (no spread in launch time)" in why
    rows = bench.summarize_interleaved("mlp", settings, run, META, 0.12)
    assert all(r.reference_launch_ms is None and r.ratio_host == r.ratio_vs_exclusive for r in rows)


def test_the_table_says_at_which_host_speed_the_ratios_are():
    settings = _interleaved("--models", "mlp", "--clients", "1,10", "--rounds", "4")
    rows = bench.summarize_interleaved("mlp", settings, _host_run(settings, 1.4), META, 0.12)
    table = bench.format_table(rows)
    assert "at a reference host that launches one iteration in 0.12 ms" in table
    assert "| × as measured |" in table
    ts = bench.results_by_key(rows)[("mlp", "time-slicing", 10)]
    assert f"| {ts.ratio_vs_exclusive:.2f} | {ts.ratio_low:.2f} | {ts.ratio_host:.2f} |" in table


def test_main_states_ratios_at_the_reference_and_logs_why(tmp_path, capsys):
    out = tmp_path / "r.csv"
    settings_argv = ["--models", "mlp", "--clients", "1,10", "--rounds", "4"]
    runner = lambda settings: _host_run(settings, 1.4)  # noqa: E731
    argv = ["run", *settings_argv, "--out", str(out), "--reference-launch-ms", "mlp=0.12"]
    assert bench.main(argv, gpu=GPU, interleaved_runner=runner) == 0
    printed = capsys.readouterr().out
    assert "ratios at a reference host that launches one iteration in 0.12 ms" in printed
    assert "(the run's lone process: 0.212 ms, then 0.010 ms on the GPU)" in printed
    rows = bench.results_by_key(bench.load_results(out))
    assert rows[("mlp", "time-slicing", 10)].reference_launch_ms == 0.12
    assert rows[("mlp", "time-slicing", 10)].ratio_vs_exclusive == pytest.approx(0.78, rel=1e-3)


def test_files_before_the_reference_columns_still_load(tmp_path):
    path = tmp_path / "r.csv"
    settings = _interleaved("--models", "mlp", "--clients", "1,2", "--rounds", "2")
    bench.write_csv(
        path, bench.summarize_interleaved("mlp", settings, _host_run(settings, 1), META, 0.12)
    )
    n = len(bench.PRE_REFERENCE_CSV_COLUMNS)
    path.write_text("\n".join(",".join(x.split(",")[:n]) for x in path.read_text().splitlines()))
    loaded = bench.load_results(path)
    assert all(r.reference_launch_ms is None and r.ratio_host is None for r in loaded)
    assert all(r.ratio_halves_pct is not None for r in loaded if r.mode != "exclusive")


# --- the real process management, with worker bodies that need no torch -----------------------


def _pkg_bench():
    from benchmarks.sharing import bench as importable  # spawned children import it by name

    return importable


def test_interleaved_workers_run_the_schedule_in_spawned_processes():
    from tests import fake_workers

    b = _pkg_bench()
    settings = b.settings_from_args(
        b.parse_args(["run", "--models", "mlp", "--clients", "1,2", "--rounds", "2"])
    )
    ready = {}
    run = b.run_interleaved_workers(
        settings,
        {"plain": {"FAKE_GROUP_ENV": "plain"}, "mps": {"FAKE_GROUP_ENV": "mps"}},
        on_ready=ready.update,
        log=lambda _: None,
        body=fake_workers.interleaved,
    )
    assert set(ready) == {("plain", 0), ("plain", 1), ("mps", 0), ("mps", 1)}
    assert all(info["env"] == group for (group, _), info in ready.items())  # per-group env
    assert run.windows == tuple(b.interleaved_schedule(settings))
    for w in run.windows:  # each window's samples in the order of its ranks
        assert [s.rank for s in run.samples["mlp"][w.index]] == list(w.ranks)
        assert [s.iterations for s in run.samples["mlp"][w.index]] == [
            100 * (r + 1) for r in w.ranks
        ]
    rows = b.results_by_key(b.summarize_interleaved("mlp", settings, run, META))
    assert rows[("mlp", "exclusive", 1)].aggregate_it_s == pytest.approx(150.0)  # ranks 0, 1
    assert rows[("mlp", "time-slicing", 2)].aggregate_it_s == pytest.approx(300.0)


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("FAKE_CRASH", "worker ('mps', 1) failed:\nTraceback"),
        ("FAKE_EXIT", "worker ('mps', 1) exited with code 3 without reporting an error"),
    ],
)
def test_a_failing_interleaved_worker_fails_the_run(variable, message):
    from tests import fake_workers

    b = _pkg_bench()
    settings = b.settings_from_args(
        b.parse_args(["run", "--models", "mlp", "--clients", "1,2", "--rounds", "2"])
    )
    with pytest.raises(b.WorkerCrash) as exc:
        b.run_interleaved_workers(
            settings,
            {"plain": {}, "mps": {variable: "mps:1"}},
            log=lambda _: None,
            body=fake_workers.interleaved,
        )
    assert message in str(exc.value)


def test_sweep_workers_report_every_repetition_in_spawned_processes():
    from tests import fake_workers

    b = _pkg_bench()
    settings = b.settings_from_args(
        b.parse_args(["run", "--method", "sweep", "--models", "mlp", "--repetitions", "2"])
    )
    case = b.run_workers(3, settings, env={}, log=lambda _: None, body=fake_workers.sweep)
    assert [[s.iterations for s in rep] for rep in case.samples["mlp"]] == [[50, 100, 150]] * 2
    assert (case.torch_version, case.gpu) == ("fake", "Fake GPU")
