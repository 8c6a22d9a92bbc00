"""From windows to rows: the schedule, interleaved ratios, one MPS client's pairs."""

from __future__ import annotations

import dataclasses
import random
import statistics

import pytest

from benchmarks.sharing.bench import cases, host_speed, pairing, records, results_csv, summary
from tests.bench_support import (
    META,
    _interleaved,
    _interleaved_run,
    _results,
    oom_sample,
    pair,
    sample,
)


def test_percentile_known_values():
    values = list(range(1, 102))  # 1..101
    assert pairing.percentile(values, 50) == 51
    assert pairing.percentile(values, 99) == 100
    assert pairing.percentile([4, 1, 3, 2], 99) == pytest.approx(3.97)  # numpy's default method
    assert pairing.percentile([0.0, 10.0], 50) == 5.0
    assert pairing.percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError):
        pairing.percentile([], 50)
    with pytest.raises(ValueError):
        pairing.percentile([1.0], 101)


def test_latency_percentiles_in_ms():
    latencies_s = [0.001] * 98 + [0.010, 0.100]  # 100 samples
    p50, p99 = pairing.latency_percentiles_ms(latencies_s)
    assert p50 == pytest.approx(1.0)
    assert p99 == pytest.approx(10.0 + 0.01 * 90.0)  # 99th lies 1% of the way from 10 to 100 ms


def test_summarize_window_uses_only_samples_inside_it():
    def at(t, clock, temp, busy, steal, total, reasons=0):
        return records.TelemetrySample(
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
    w = summary.summarize_window(samples, 1.0, 3.0)
    assert w.samples == 3
    assert (w.sm_clock_mhz, w.sm_clock_min_mhz, w.temp_c) == (1900, 1700, 45)
    assert w.clock_reasons == ("sw_power_cap",)  # gpu_idle was outside
    assert w.cpu_busy_pct == pytest.approx(100 * 400 / 2000)
    assert w.cpu_steal_pct == pytest.approx(100 * 20 / 2000)
    empty = summary.summarize_window(samples, 4.0, 5.0)
    assert empty.samples == 0 and empty.sm_clock_mhz is None and empty.cpu_busy_pct is None


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
    ratios = pairing.pair_ratios(pairs, tolerance=0.2)
    assert [r.kept for r in ratios] == [True, True, False, False, False, True, False]
    assert ratios[2].ratio == pytest.approx(0.55)
    assert ratios[2].probe_spread == pytest.approx(4.4 / 2.5 - 1)
    assert ratios[4].probe_spread is None
    # only kept pairs count; without the rule the slowed pairs pull the median down
    assert pairing.paired_ratio(ratios)[0] == pytest.approx(0.9)
    everything = pairing.pair_ratios(pairs, tolerance=10.0)
    # 0.9, 0.9, 0.55, 0.75, 0.925, 0.5625 (the pair without a probe is still left out)
    assert pairing.paired_ratio(everything)[0] == pytest.approx(0.825)
    lines = pairing.describe_pairs(ratios, 0.2)
    assert lines[0].startswith("paired: 3 of 7 pairs kept (CPU probes within 20%)")
    assert "WARNING" not in lines[0]
    assert lines[1].count(") x") == 4 and "8000/4400=0.55(76%) x" in lines[1]


def test_paired_ratio_low_end_and_fallback():
    ratios = pairing.pair_ratios([pair(1000, 1000 * (0.8 + i / 100)) for i in range(11)], 0.2)
    median, low, used = pairing.paired_ratio(ratios)
    assert median == pytest.approx(0.85)
    assert low == pytest.approx(0.81)  # 10th percentile of 0.80 .. 0.90
    assert len(used) == 11
    # Fewer than PAIR_MIN_KEPT agreeing pairs: all pairs are used, and the log says so.
    disagreeing = [pair(1000, 900, probes=(2.5, 4.3, 2.5, 2.5))] * 3 + [pair(1000, 500)]
    ratios = pairing.pair_ratios(disagreeing, 0.2)
    assert pairing.paired_ratio(ratios)[0] == pytest.approx(0.9)
    assert len(pairing.paired_ratio(ratios)[2]) == 4
    assert "WARNING: fewer than 3 pairs kept" in pairing.describe_pairs(ratios, 0.2)[0]
    with pytest.raises(records.BenchmarkError, match="no paired windows"):
        pairing.paired_ratio([])


def test_pair_ratios_reject_malformed_pairs():
    with pytest.raises(records.BenchmarkError, match="one exclusive and one MPS sample"):
        pairing.pair_ratios([[sample(0), sample(0)]], 0.2)
    with pytest.raises(records.BenchmarkError, match="one exclusive and one MPS sample"):
        pairing.pair_ratios([[sample(1)]], 0.2)
    with pytest.raises(records.BenchmarkError, match="ran no iterations"):
        pairing.pair_ratios([pair(0, 100)], 0.2)
    with pytest.raises(records.BenchmarkError, match="unexpected sample status"):
        pairing.pair_ratios([[sample(0), oom_sample(1)]], 0.2)


def test_summarize_paired_describes_the_client_windows_of_the_pairs_used():
    pairs = [pair(8000, 7200), pair(8000, 7600), pair(8000, 4000, probes=(2.5, 2.5, 4.3, 4.3))]
    pairs += [pair(5000, 4000, probes=(4.3, 4.3, 4.3, 4.3))]
    windows = [
        records.WindowTelemetry(samples=1, sm_clock_mhz=c, temp_c=40 + c / 100)
        for c in (1980, 1900, 345, 1700)
    ]
    r = pairing.summarize_paired("mlp", "mps", pairs, META, 0.5, 0.2, windows)
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


def test_pre_pairing_files_still_load(tmp_path):
    results = _results()
    path = tmp_path / "old.csv"
    results_csv.write_csv(path, results)
    n = len(results_csv.PRE_PAIRING_CSV_COLUMNS)
    lines = [",".join(line.split(",")[:n]) for line in path.read_text().splitlines()]
    path.write_text("\n".join(lines) + "\n")
    loaded = results_csv.load_results(path)
    assert all(r.ratio_method == "median-baseline" and r.pairs_kept is None for r in loaded)


def test_interleaved_schedule_pairs_every_case_with_an_exclusive_window_on_its_core():
    settings = _interleaved("--models", "mlp", "--clients", "1,2,10", "--rounds", "10")
    schedule = cases.interleaved_schedule(settings)
    shared = cases.interleaved_cases(settings)
    assert shared == [
        ("time-slicing", 2),
        ("time-slicing", 10),
        ("mps", 1),
        ("mps", 2),
        ("mps", 10),
    ]
    assert cases.worker_groups(settings) == ("plain", "mps")
    assert cases.group_size(settings) == 10
    assert len(schedule) == 10 * 2 * len(shared)
    assert [w.index for w in schedule] == list(range(len(schedule)))
    for exclusive, window in zip(schedule[::2], schedule[1::2], strict=True):
        assert (exclusive.mode, exclusive.clients, exclusive.case) == ("exclusive", 1, window.case)
        assert (window.mode, window.clients) == window.case
        assert exclusive.ranks == window.ranks[:1]  # the same core, right before
        assert len(set(window.ranks)) == window.clients
        assert exclusive.round == window.round
    for r in range(10):  # every case once per round, the order reversed every other round
        order = [w.case for w in schedule if w.round == r and w.mode != "exclusive"]
        assert order == (shared if r % 2 == 0 else shared[::-1])
    for case in shared:  # over 10 rounds each case starts once on every core
        firsts = [w.ranks[0] for w in schedule if w.mode != "exclusive" and w.case == case]
        assert sorted(firsts) == list(range(10))
    alone = cases.interleaved_schedule(_interleaved("--modes", "exclusive", "--rounds", "3"))
    assert [(w.mode, w.ranks) for w in alone] == [("exclusive", (0,))] * 3


def test_interleaved_runs_one_mps_daemon_at_most():
    assert cases.worker_groups(_interleaved("--modes", "exclusive,mps-limited")) == (
        "plain",
        "mps-limited",
    )
    assert cases.worker_groups(_interleaved("--modes", "exclusive,time-slicing")) == ("plain",)
    with pytest.raises(SystemExit):
        _interleaved("--modes", "mps,mps-limited")


def test_interleaved_memory_check_names_a_size_that_fits():
    h200 = cases.GpuInfo("H200", "580", 143771)
    assert cases.interleaved_memory_problem(_interleaved(), h200) is None  # 20 x 4.75 GiB
    problem = cases.interleaved_memory_problem(_interleaved("--memory-gib", "8"), h200)
    assert "20 processes needs about 175 GiB" in problem and "--memory-gib 5.75" in problem
    settings = _interleaved("--memory-gib", "5.75")
    assert cases.interleaved_memory_problem(settings, h200) is None
    assert (
        cases.interleaved_memory_problem(
            _interleaved("--models", "mlp", "--memory-gib", "99"), h200
        )
        is None
    )


def test_estimate_counts_every_interleaved_window():
    settings = _interleaved("--models", "mlp", "--clients", "1,10", "--rounds", "20")
    windows = len(cases.interleaved_schedule(settings)) * (settings.window_s + cases.PAIR_WARMUP_S)
    assert windows < cases.estimate_seconds(settings) < 2 * windows


def test_interleaved_rows_divide_by_the_mean_of_all_exclusive_windows():
    settings = _interleaved("--models", "mlp", "--clients", "1,4", "--rounds", "4")

    def speed(model, w, rank, t):
        if w.mode == "exclusive":
            return 1000.0 if w.round < 2 else 600.0  # the baseline drifts: mean 800
        if w.mode == "time-slicing":
            return 900.0 / w.clients  # GPU-bound: 900 it/s together
        return 950.0 if w.round < 2 else 570.0  # MPS clients follow their cores, like it

    run = _interleaved_run(settings, speed)
    rows = results_csv.results_by_key(host_speed.summarize_interleaved("mlp", settings, run, META))
    base = rows[("mlp", "exclusive", 1)]
    assert base.aggregate_it_s == pytest.approx(800.0)
    assert (base.baseline_runs, base.repetitions, base.duration_s) == (12, 12, 0.4)
    assert base.baseline_spread_pct == pytest.approx(100 * (1000 - 600) / 800)
    assert base.baseline_launch_ms == pytest.approx(0.1)
    ts = rows[("mlp", "time-slicing", 4)]
    assert ts.ratio_method == "interleaved"
    assert ts.ratio_vs_exclusive == pytest.approx(900 / 800)
    assert ts.ratio_low == pytest.approx(pairing.percentile([0.9, 0.9, 1.5, 1.5], 10))
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

        rows = results_csv.results_by_key(
            host_speed.summarize_interleaved(
                "mlp", settings, _interleaved_run(settings, speed), META
            )
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
    rows = host_speed.summarize_interleaved("memory", settings, run, META)
    assert {r.status for r in rows} == {"oom"} and len(rows) == 1 + 3
    assert {r.status for r in host_speed.summarize_interleaved("mlp", settings, run, META)} == {
        "ok"
    }
    run.samples["mlp"].pop(index)
    with pytest.raises(records.BenchmarkError, match="samples missing"):
        host_speed.summarize_interleaved("mlp", settings, run, META)


def test_the_baseline_spread_is_over_the_thirds_of_the_run_in_time_order():
    """baseline_spread_pct (in every row of the CSV) is max - min of the exclusive windows'
    means over the first, middle and last third of the run, over their mean. 10 windows
    split 4, 3, 3: one slow window, the 8th, lowers the last third only."""
    settings = _interleaved("--models", "mlp", "--modes", "exclusive,mps", "--clients", "1,2")
    settings = dataclasses.replace(settings, rounds=5)
    exclusive = [w.index for w in cases.interleaved_schedule(settings) if w.mode == "exclusive"]
    assert len(exclusive) == 10
    slow = exclusive[7]

    def speed(model, w, rank, t):
        return 700.0 if w.index == slow else 1000.0

    run = _interleaved_run(settings, speed)
    log = summary.describe_interleaved_baseline("mlp", run)
    assert "10 windows, mean it/s per third of the run 1000, 1000, 900" in log
    rows = host_speed.summarize_interleaved("mlp", settings, run, META)
    mean = (9 * 1000 + 700) / 10
    assert [r.baseline_spread_pct for r in rows] == pytest.approx(
        [100 * (1000 - 900) / mean] * len(rows)
    )
