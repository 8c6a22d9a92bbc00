"""The real process management, with worker bodies that need no torch."""

from __future__ import annotations

import pytest

from benchmarks.sharing.bench import cases, cli, host_speed, mps, records, results_csv, workers
from tests.bench_support import META


def test_check_group_clients_wants_exactly_the_mps_group():
    ready = {("plain", 0): {"pid": 1}, ("plain", 1): {"pid": 2}}
    ready |= {("mps", 0): {"pid": 11}, ("mps", 1): {"pid": 12}}
    assert "are the mps group's workers" in mps.check_group_clients(ready, "mps", ["11", "12"])
    assert "not comparable" in mps.check_group_clients(ready, "mps", ["911", "912"])
    for listed in (["11"], ["11", "12", "1"], ["1", "12"]):
        with pytest.raises(records.BenchmarkError, match="want the 2 workers"):
            mps.check_group_clients(ready, "mps", listed)


def test_interleaved_workers_run_the_schedule_in_spawned_processes():
    from tests import fake_workers

    settings = cli.settings_from_args(
        cli.parse_args(["run", "--models", "mlp", "--clients", "1,2", "--rounds", "2"])
    )
    ready = {}
    run = workers.run_interleaved_workers(
        settings,
        {"plain": {"FAKE_GROUP_ENV": "plain"}, "mps": {"FAKE_GROUP_ENV": "mps"}},
        on_ready=ready.update,
        log=lambda _: None,
        body=fake_workers.interleaved,
    )
    assert set(ready) == {("plain", 0), ("plain", 1), ("mps", 0), ("mps", 1)}
    assert all(info["env"] == group for (group, _), info in ready.items())  # per-group env
    assert run.windows == tuple(cases.interleaved_schedule(settings))
    for w in run.windows:  # each window's samples in the order of its ranks
        assert [s.rank for s in run.samples["mlp"][w.index]] == list(w.ranks)
        assert [s.iterations for s in run.samples["mlp"][w.index]] == [
            100 * (r + 1) for r in w.ranks
        ]
    rows = results_csv.results_by_key(host_speed.summarize_interleaved("mlp", settings, run, META))
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

    settings = cli.settings_from_args(
        cli.parse_args(["run", "--models", "mlp", "--clients", "1,2", "--rounds", "2"])
    )
    with pytest.raises(records.WorkerCrash) as exc:
        workers.run_interleaved_workers(
            settings,
            {"plain": {}, "mps": {variable: "mps:1"}},
            log=lambda _: None,
            body=fake_workers.interleaved,
        )
    assert message in str(exc.value)
