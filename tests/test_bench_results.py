"""Results CSV, plots, comparisons, and the committed results recomputed from their raw windows."""

from __future__ import annotations

import dataclasses
import gzip
import math

import pytest

from benchmarks.sharing.bench import cli, host_speed, pairing, records, results_csv, runs
from tests.bench_support import (
    COMMITTED,
    COMMITTED_RAW,
    GPU,
    META,
    _fake_interleaved_runner,
    _interleaved,
    _interleaved_run,
    _results,
)


def test_csv_header_and_round_trip(tmp_path):
    results = _results()
    path = tmp_path / "out" / "results.csv"
    results_csv.write_csv(path, results)
    header = path.read_text().splitlines()[0]
    assert header == (
        "date,gpu,driver,torch,model,mode,clients,repetitions,duration_s,aggregate_it_s,"
        "aggregate_min_it_s,aggregate_max_it_s,per_process_it_s,ratio_vs_exclusive,ratio_low,"
        "baseline_it_s,baseline_runs,baseline_spread_pct,p50_ms,p99_ms,mem_per_process_mib,"
        "host_rss_mib,sm_clock_mhz,gpu_temp_c,status,ratio_method,pairs_kept,pairs_excluded,"
        "ratio_halves_pct,baseline_launch_ms,ratio_host,reference_launch_ms,reference_it_s"
    )
    loaded = results_csv.load_results(path)
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
        if b.ratio_method == "paired":  # one MPS client: paired with the window before it
            assert b.key[1:] == ("mps", 1)
            assert (b.repetitions, b.pairs_kept, b.pairs_excluded) == (2, 2, 0)
        else:
            assert b.duration_s == 0.4  # the window
        assert (b.date, b.gpu, b.driver, b.torch) == ("2026-01-02", "Test GPU", "1.2.3", "9.9")
    oom_row = next(r for r in loaded if r.status == "oom")
    assert oom_row.model == "memory"
    assert oom_row.aggregate_it_s is None and oom_row.p99_ms is None
    oom_line = next(line for line in path.read_text().splitlines() if ",oom," in line)
    # every measured column empty, not zero
    fields = dict(zip(results_csv.CSV_COLUMNS, oom_line.split(","), strict=True))
    measured = ("aggregate_it_s", "ratio_vs_exclusive", "ratio_low", "p99_ms", "host_rss_mib")
    assert all(fields[column] == "" for column in measured)


def test_legacy_single_baseline_files_still_load(tmp_path):
    legacy = tmp_path / "legacy.csv"
    header = ",".join(results_csv.LEGACY_CSV_COLUMNS)
    row = "2026-01-02,T4,1,2.9,mlp,exclusive,1,3,3,5000,5000,1.0,0.2,0.3,54,ok"
    legacy.write_text(f"{header}\n{row}\n")
    (r,) = results_csv.load_results(legacy)
    assert (r.aggregate_it_s, r.ratio_vs_exclusive, r.p99_ms) == (5000.0, 1.0, 0.3)
    assert r.ratio_low is None and r.baseline_runs is None and r.host_rss_mib is None


def test_load_results_rejects_foreign_files(tmp_path):
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("model,mode\nmlp,mps\n")
    with pytest.raises(ValueError, match="unexpected columns"):
        results_csv.load_results(bad_header)
    good = tmp_path / "good.csv"
    results_csv.write_csv(good, _results())
    lines = good.read_text().splitlines()
    cells = lines[1].split(",")
    cells[results_csv.CSV_COLUMNS.index("status")] = "weird"
    good.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="unknown status"):
        results_csv.load_results(good)
    cells[results_csv.CSV_COLUMNS.index("status")] = "ok"
    cells[results_csv.CSV_COLUMNS.index("ratio_method")] = "guessed"
    good.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match="unknown ratio_method"):
        results_csv.load_results(good)


def test_format_table_lists_every_row():
    table = results_csv.format_table(_results())
    assert table.count("| exclusive | 1 |") == 3
    assert "| mps | 2 | – |" in table  # the OOM'd memory case shows no numbers
    assert "oom |" in table


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    results = [r for r in _results() if r.model == "mlp"]  # one model keeps the test fast
    csv_path = tmp_path / "r.csv"
    results_csv.write_csv(csv_path, results)
    png = tmp_path / "plots" / "r.png"
    assert cli.main(["plot", str(csv_path), "--out", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000  # an actual figure, not an empty canvas


def test_every_committed_results_file_is_found():
    names = {p.name for p in COMMITTED}
    assert {"results-h200.csv", "results-h200-repeat.csv", "results-h200-reduced-a.csv"} <= names
    assert {f"results-h200-reduced-{x}.csv" for x in "abcdefghij"} <= names


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_committed_results_load(path):
    results = results_csv.load_results(path)
    keys = results_csv.results_by_key(results)
    assert len(keys) == len(results)  # one row per (model, mode, N)
    for model in {r.model for r in results}:
        base = keys[(model, "exclusive", 1)]
        assert base.ratio_vs_exclusive == pytest.approx(1.0)
        assert base.baseline_runs >= 2  # an exclusive window before every case, every round
        for r in results:
            if r.model == model and r.status == "ok":
                assert r.baseline_it_s == pytest.approx(base.aggregate_it_s)
                # every row's ratio is at its model's reference host speed, or as measured
                assert r.reference_launch_ms == base.reference_launch_ms
                if r.ratio_method == "paired":  # measured against its own exclusive windows
                    assert (r.mode, r.clients) in (("mps", 1), ("mps-limited", 1), ("hami", 1))
                    assert r.pairs_kept >= pairing.PAIR_MIN_KEPT
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


# `ratio_host` is the ratio as measured, kept for reference and never capped: a single MPS
# client measured against its own exclusive windows can come out a little above 1 by noise
# (1.0326 and 1.0232 in the committed runs). The README states this tolerance.
RATIO_HOST_NOISE = 0.05
# Every column holding a ratio to the exclusive baseline, and how far above the physical
# bound each may go. `ratio_halves_pct` is the gap between the run's halves, not a ratio.
RATIO_COLUMNS = {"ratio_vs_exclusive": 0.0, "ratio_low": 0.0, "ratio_host": RATIO_HOST_NOISE}


def ratio_bound_problems(row: records.Result) -> list[str]:
    """Each ratio of the row above what its clients can deliver (plus the column's noise)."""
    bound = host_speed.client_bound(row.clients)
    return [
        f"{row.key} {column} {value} > {bound} x {1 + noise}"
        for column, noise in RATIO_COLUMNS.items()
        if (value := getattr(row, column)) is not None and value > bound * (1 + noise)
    ]


def test_every_ratio_column_has_a_bound():
    ratios = {c for c in results_csv.CSV_COLUMNS if c.startswith("ratio_")}
    assert ratios - {"ratio_method", "ratio_halves_pct"} == set(RATIO_COLUMNS)


@pytest.mark.parametrize(
    ("column", "value", "over"),
    [
        ("ratio_vs_exclusive", 1.0001, True),
        ("ratio_low", 1.0001, True),
        ("ratio_host", 1.0 + RATIO_HOST_NOISE, False),
        ("ratio_host", 1.0 + RATIO_HOST_NOISE + 0.001, True),
    ],
)
def test_ratio_bound_at_and_past_its_limit(column, value, over):
    (row,) = [r for r in _results() if (r.mode, r.clients) == ("mps", 1)][:1]
    row = dataclasses.replace(row, ratio_vs_exclusive=0.9, ratio_low=0.8, ratio_host=0.9)
    assert bool(ratio_bound_problems(dataclasses.replace(row, **{column: value}))) is over


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: p.name)
def test_no_committed_ratio_exceeds_what_its_clients_can_deliver(path):
    """N clients deliver at most N lone processes' work, one MPS client at most one's: a
    published ratio (whole run or low end) above that would be an artefact; the as-measured
    one may pass it by no more than measurement noise."""
    for r in results_csv.load_results(path):
        if r.status == "ok":
            assert not ratio_bound_problems(r)


def test_the_readme_names_every_as_measured_ratio_above_the_bound():
    """Readers of the CSVs see ratio_host above N; the README says where and why."""
    readme = (COMMITTED[0].parent / "README.md").read_text()
    over = [
        (path.name, r)
        for path in COMMITTED
        for r in results_csv.load_results(path)
        if r.status == "ok" and r.ratio_host and r.ratio_host > host_speed.client_bound(r.clients)
    ]
    assert over  # if none is left, the README's examples are stale
    for name, r in over:
        assert f"{r.ratio_host:.4f}" in readme and name in readme, (name, r.key)
    assert f"{RATIO_HOST_NOISE:.0%}".replace("%", " %") + " above that bound" in readme


def test_summarize_recomputes_the_csv_from_the_raw_json(tmp_path):

    out, raw = tmp_path / "r.csv", tmp_path / "raw.json"
    argv = ["run", "--models", "mlp", "--clients", "1,2", "--rounds", "4", "--out", str(out)]
    runner = _fake_interleaved_runner(lambda m, w, rank, t: 900.0 + 10 * rank + w.round)
    assert cli.main([*argv, "--raw-out", str(raw)], gpu=GPU, interleaved_runner=runner) == 0
    packed = tmp_path / "raw.json.gz"
    packed.write_bytes(gzip.compress(raw.read_bytes()))
    for source in (raw, packed):
        again = tmp_path / f"again-{source.suffix}.csv"
        assert cli.main(["summarize", str(source), "--out", str(again)]) == 0
        assert again.read_text() == out.read_text()
    with pytest.raises(ValueError, match="no settings entry"):
        runs.interleaved_from_raw([{"model": "mlp", "windows": []}])


@pytest.mark.parametrize("raw", COMMITTED_RAW, ids=lambda p: p.name)
def test_committed_csvs_are_what_their_raw_windows_give(raw):
    """Every committed interleaved CSV is recomputed from its committed raw windows by this
    code: the published ratios are the method's, not edited numbers."""
    csv_path = raw.with_name(raw.name.replace("-raw.json.gz", ".csv"))
    settings, meta, run = runs.interleaved_from_raw(runs.read_raw(raw))
    committed = results_csv.results_by_key(results_csv.load_results(csv_path))
    # the committed files are stated at the default reference host speed
    reference = {
        model: ms
        for (model, mode, _), c in committed.items()
        if mode == "exclusive" and (ms := c.reference_launch_ms) is not None
    }
    assert reference == {
        m: ms for m, ms in host_speed.REFERENCE_LAUNCH_MS.items() if m in reference
    }
    assert set(reference) == {"mlp", "transformer"} & set(settings.models)
    rows = runs.summarize_interleaved_run(
        settings, run, meta, log=lambda _: None, reference=host_speed.REFERENCE_LAUNCH_MS
    )
    assert set(committed) == {r.key for r in rows}
    for r in rows:
        c = committed[r.key]
        assert c.ratio_method == r.ratio_method
        assert c.ratio_vs_exclusive == pytest.approx(r.ratio_vs_exclusive, rel=1e-3)
        assert c.ratio_low == pytest.approx(r.ratio_low, rel=1e-3)
        assert c.ratio_host == pytest.approx(r.ratio_host, rel=1e-3)
        assert c.aggregate_it_s == pytest.approx(r.aggregate_it_s, rel=1e-4)
        # the baseline's windows and their spread over the run's thirds (written to 2 places)
        assert c.baseline_runs == r.baseline_runs
        assert c.baseline_spread_pct == pytest.approx(r.baseline_spread_pct, abs=0.0051)


def test_files_before_the_halves_column_still_load(tmp_path):
    path = tmp_path / "r.csv"
    settings = _interleaved("--models", "mlp", "--clients", "1,2", "--rounds", "2")
    run = _interleaved_run(settings, lambda *_: 500.0)
    results_csv.write_csv(path, host_speed.summarize_interleaved("mlp", settings, run, META))
    n = len(results_csv.PRE_INTERLEAVED_CSV_COLUMNS)
    path.write_text("\n".join(",".join(x.split(",")[:n]) for x in path.read_text().splitlines()))
    loaded = results_csv.load_results(path)
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
        assert cli.main(["compare", str(a), str(b)]) == 0, (a.name, b.name)
    out = capsys.readouterr().out
    assert out.count("| mlp |") == 5 * 3 + 9 and out.count("| transformer |") == 5 * 3 + 9
    x, y = (
        results_csv.results_by_key(results_csv.load_results(p))[("transformer", "mps", 10)]
        for p in pairs[0]
    )
    diff = 100 * (y.ratio_vs_exclusive / x.ratio_vs_exclusive - 1)
    assert (
        f"| transformer | mps | 10 | interleaved | {x.ratio_vs_exclusive:.3f} ({x.ratio_low:.2f}) "
        f"| {y.ratio_vs_exclusive:.3f} ({y.ratio_low:.2f}) | {diff:+.1f} % |"
    ) in out
    c, d = pairs[1]
    assert cli.main(["compare", str(c), str(d), "--max-diff", "0.1"]) == 4
    captured = capsys.readouterr()
    assert "**" in captured.out and "ERROR: THE RUNS DO NOT AGREE" in captured.err
    assert "model=mlp mode=mps N=10:" in captured.err
    # ratios stated at different host speeds are not compared as if they were alike
    measured = tmp_path / "c-measured.csv"
    raw = directory / "results-h200-reduced-c-raw.json.gz"
    assert (
        cli.main(["summarize", str(raw), "--out", str(measured), "--reference-launch-ms", "none"])
        == 0
    )
    capsys.readouterr()
    assert cli.main(["compare", str(c), str(measured), "--max-diff", "1000"]) == 4
    err = capsys.readouterr().err
    assert "model=mlp: the ratios are stated at different host speeds" in err
    assert "(reference launch ms 0.120 against none)" in err
