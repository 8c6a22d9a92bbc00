"""The benchmark's hami mode and cap check: HAMi-core's environment per client, the spawned
processes with worker bodies that need no torch, the verdict and the command line."""

from __future__ import annotations

import dataclasses
import json
import stat

import pytest

from benchmarks.sharing.bench import cases, cli, hami, records, results_csv, runs, workers
from tests.bench_support import GPU, _fake_interleaved_runner, _interleaved_run

LIB_BYTES = b"\x7fELF not really a library"


@pytest.fixture
def library(tmp_path):
    path = tmp_path / "libvgpu.so"
    path.write_bytes(LIB_BYTES)
    return path


def test_client_env_is_what_hamis_device_plugin_gives_a_container(tmp_path):
    env = hami.client_env("/lib/libvgpu.so", 8, tmp_path / "a.cache")
    assert env == {
        "LD_PRELOAD": "/lib/libvgpu.so",
        "CUDA_DEVICE_MEMORY_LIMIT_0": "8192m",  # MiB, as the plugin writes it
        "CUDA_DEVICE_MEMORY_SHARED_CACHE": str(tmp_path / "a.cache"),
    }
    assert hami.client_env("l", 0.5, "c", sm_limit=25)["CUDA_DEVICE_SM_LIMIT"] == "25"
    assert hami.memory_limit_value(1.25) == "1280m"


def test_the_library_comes_from_the_option_or_the_environment(library):
    assert hami.resolve_library(None, {}) is None
    assert hami.resolve_library(None, {"HAMI_CORE_LIB": str(library)}) == library
    assert hami.resolve_library(str(library), {"HAMI_CORE_LIB": "/other"}) == library
    assert "--hami-lib PATH or set HAMI_CORE_LIB" in hami.library_problem(None)
    assert "no such file" in hami.library_problem(library.with_name("missing.so"))
    assert hami.library_problem(library) is None


def test_each_capped_client_gets_a_usage_file_of_its_own(tmp_path, library):
    """HAMi-core caps the processes sharing one usage file together: one file per client
    makes each client a container of its own, and a run never reuses an earlier run's."""
    lock = tmp_path / "vgpulock"
    with hami.hami_session(library, 6, 50, lock_dir=lock, log=lambda _: None) as session:
        a, b = session.env("hami-0"), session.env("hami-1")
        assert a["CUDA_DEVICE_MEMORY_SHARED_CACHE"] != b["CUDA_DEVICE_MEMORY_SHARED_CACHE"]
        assert a["CUDA_DEVICE_MEMORY_LIMIT_0"] == b["CUDA_DEVICE_MEMORY_LIMIT_0"] == "6144m"
        assert a["CUDA_DEVICE_SM_LIMIT"] == "50"
        directory = session.directory
        assert directory.is_dir()
    assert not directory.exists()
    assert stat.S_IMODE(lock.stat().st_mode) == 0o777  # HAMi-core's lock, for any user
    with (
        pytest.raises(records.BenchmarkError, match="no such file"),
        hami.hami_session(tmp_path / "none.so", 6, lock_dir=lock, log=lambda _: None),
    ):
        pass


def test_the_hami_group_preloads_the_library_in_spawned_processes(tmp_path, library):
    from tests import fake_workers

    settings = cli.settings_from_args(
        cli.parse_args(
            [
                *("run", "--models", "mlp", "--modes", "exclusive,time-slicing,hami"),
                *("--clients", "1,2", "--rounds", "2", "--hami-lib", str(library)),
                *("--hami-memory-gib", "3"),
            ]
        )
    )
    assert cases.worker_groups(settings) == ("plain", "hami")
    ready = {}
    with workers.hami_member_env(
        settings, library, log=lambda _: None, lock_dir=tmp_path / "lock"
    ) as member_env:
        run = workers.run_interleaved_workers(
            settings,
            {"plain": {}, "hami": {}},
            on_ready=ready.update,
            log=lambda _: None,
            body=fake_workers.interleaved,
            member_env=member_env,
        )
    assert {info["preload"] for (group, _), info in ready.items() if group == "plain"} == {None}
    capped = {rank: info for (group, rank), info in ready.items() if group == "hami"}
    assert {info["preload"] for info in capped.values()} == {str(library)}
    assert {info["cap"] for info in capped.values()} == {"3072m"}
    assert len({info["cache"] for info in capped.values()}) == 2  # one container each
    rows = runs.summarize_interleaved_run(settings, run, run_meta(), log=lambda _: None)
    by_key = results_csv.results_by_key(rows)
    assert by_key[("mlp", "hami", 1)].ratio_method == "paired"  # like one MPS client
    assert by_key[("mlp", "hami", 2)].ratio_method == "interleaved"


def test_no_hami_mode_no_member_environment(library):
    settings = cli.settings_from_args(cli.parse_args(["run", "--models", "mlp"]))
    with workers.hami_member_env(settings, library) as member_env:
        assert member_env is None


def run_meta():
    return records.RunMeta(date="2026-01-02", gpu="Test GPU", driver="1.2.3", torch="9.9")


GOOD = {
    "capped": {
        "total_mib": 4096.0,
        "free_mib": 3584.0,
        "single_request_mib": 5120.0,
        "single_error": "OutOfMemoryError: CUDA out of memory. Tried to allocate 5.00 GiB",
        "allocated_mib": 3328.0,
        "chunk_error": "OutOfMemoryError: CUDA out of memory. Tried to allocate 256.00 MiB",
        "realloc_mib": 2048.0,
        "realloc_error": None,
    },
    "under": {"held_mib": 2048.0, "intact": True, "extra_mib": 512.0, "extra_error": None},
    "uncapped": {"gpu_free_mib": 70000.0, "allocated_mib": 5120.0, "error": None},
}


def test_the_verdict_holds_for_a_cap_that_held():
    lines, problems = hami.cap_check_verdict(GOOD, 4)
    assert problems == []
    text = "\n".join(lines)
    assert "capped: allocated 3.25 GiB in steps of 256 MiB, then: OutOfMemoryError" in text
    assert "the GPU had 68.36 GiB free when the capped client was refused" in text
    assert "THE CAP HELD" in hami.format_report(lines, problems)


@pytest.mark.parametrize(
    ("member", "change", "problem"),
    [
        ("capped", {"single_error": None}, "past its 4 GiB cap did not fail with out of memory"),
        ("capped", {"chunk_error": None}, "never ran out of memory"),
        ("capped", {"allocated_mib": 4352.0}, "allocated 4.25 GiB, more than its 4 GiB cap"),
        ("capped", {"chunk_error": "RuntimeError: CUDA error: unknown"}, "never ran out"),
        ("capped", {"realloc_error": "OutOfMemoryError: x"}, "could not allocate again"),
        ("uncapped", {"gpu_free_mib": 4000.0}, "not enough to tell the cap from a full GPU"),
        ("uncapped", {"error": "OutOfMemoryError: x"}, "uncapped: OutOfMemoryError"),
        ("under", {"intact": False}, "under its cap was affected: its data changed"),
        ("under", {"extra_error": "OutOfMemoryError: y"}, "was affected: OutOfMemoryError: y"),
        ("under", {"held_mib": None}, "could not hold its memory"),
    ],
)
def test_the_verdict_names_each_way_the_cap_did_not_hold(member, change, problem):
    reports = {**GOOD, member: {**GOOD[member], **change}}
    _, problems = hami.cap_check_verdict(reports, 4)
    assert len(problems) == 1 and problem in problems[0], problems
    assert "ERROR: THE CAP DID NOT HOLD" in hami.format_report([], problems)


def test_the_cap_check_runs_its_three_processes(tmp_path, library, monkeypatch):
    from tests import fake_workers

    settings = hami.CapCheckSettings(cap_gib=4, under_gib=2, timeout_s=60)

    def check():
        return workers.run_cap_check(
            settings,
            library,
            log=lambda _: None,
            body=fake_workers.cap_check,
            lock_dir=tmp_path / "lock",
        )

    reports = check()
    assert set(reports) == set(hami.CAP_CHECK_MEMBERS)
    assert hami.cap_check_verdict(reports, 4)[1] == []
    assert reports["capped"]["allocated_mib"] == 3584.0  # 4 GiB less the 512 MiB context
    monkeypatch.setenv("FAKE_HAMI_IGNORED", "1")  # a library that does not cap
    _, problems = hami.cap_check_verdict(check(), 4)
    assert any("did not fail with out of memory" in p for p in problems)


def test_hami_check_prints_the_verdict_and_exits_5_when_the_cap_did_not_hold(
    tmp_path, library, capsys
):
    out = tmp_path / "check.json"
    argv = ["hami-check", "--hami-lib", str(library), "--cap-gib", "4", "--out", str(out)]
    calls = []

    def runner(settings, lib):
        calls.append((settings, lib))
        return GOOD

    assert cli.main(argv, cap_check_runner=runner) == 0
    assert calls == [(hami.CapCheckSettings(4.0, 2.0, 300.0), library)]
    assert "THE CAP HELD" in capsys.readouterr().out
    record = json.loads(out.read_text())
    assert record["held"] is True and record["reports"] == GOOD
    assert record["sha256"] == hami.library_digest(library)

    broken = {**GOOD, "capped": {**GOOD["capped"], "single_error": None}}
    assert cli.main(argv, cap_check_runner=lambda *_: broken) == hami.CAP_NOT_HELD == 5
    assert "ERROR: THE CAP DID NOT HOLD" in capsys.readouterr().err
    assert json.loads(out.read_text())["held"] is False

    def crash(*_):
        raise records.WorkerCrash("cap-check process capped failed:\nplanted")

    assert cli.main(argv, cap_check_runner=crash) == 1
    assert "planted" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--modes", "exclusive,hami"], "needs HAMi-core's libvgpu.so"),
        (["run", "--modes", "hami", "--hami-lib", "/no/such.so"], "no such file"),
        (["hami-check"], "needs HAMi-core's libvgpu.so"),
        (["plan", "--modes", "hami", "--hami-memory-gib", "4"], "raise --hami-memory-gib"),
        (["plan", "--modes", "hami", "--hami-sm-limit", "101"], "a percentage, 1 to 100"),
        (["plan", "--modes", "hami", "--hami-sm-limit", "0"], "must be >= 1"),
        (["hami-check", "--hami-lib", "LIB", "--cap-gib", "2", "--under-gib", "1"], "at most"),
    ],
)
def test_bad_hami_arguments_are_usage_errors(argv, message, library, capsys, monkeypatch):
    monkeypatch.delenv("HAMI_CORE_LIB", raising=False)
    argv = [str(library) if a == "LIB" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_plan_needs_no_library_and_says_how_clients_are_capped(capsys, monkeypatch):
    monkeypatch.delenv("HAMI_CORE_LIB", raising=False)
    argv = ["plan", "--models", "mlp", "--modes", "exclusive,time-slicing,hami"]
    assert cli.main([*argv, "--clients", "1,2,4", "--hami-sm-limit", "50"]) == 0
    out = capsys.readouterr().out
    assert "process groups plain, hami, 4 processes each (8 in all)" in out
    assert "capped at 8192m of device memory and 50 % of the SMs (soft)" in out


def test_a_hami_run_is_published_like_the_others(tmp_path, library, capsys):
    """Rows, table and raw JSON of a run with the hami mode (fake runner): one capped client
    is paired with its exclusive window, the raw file names the library it preloaded, and
    `summarize` gives the same CSV back."""
    out, raw = tmp_path / "r.csv", tmp_path / "raw.json"
    argv = [
        *("run", "--models", "mlp,memory", "--modes", "exclusive,time-slicing,hami"),
        *("--clients", "1,2,4", "--rounds", "4", "--memory-gib", "1", "--hami-lib"),
        *(str(library), "--out", str(out), "--raw-out", str(raw)),
    ]

    def speed(model, w, rank, t):  # per worker: the capped clients a little slower
        return {"exclusive": 1000.0, "time-slicing": 450.0, "hami": 440.0}[w.mode]

    assert cli.main(argv, gpu=GPU, interleaved_runner=_fake_interleaved_runner(speed)) == 0
    rows = results_csv.results_by_key(results_csv.load_results(out))
    assert rows[("mlp", "hami", 1)].ratio_method == "paired"
    assert rows[("mlp", "hami", 1)].ratio_vs_exclusive == pytest.approx(0.44)
    assert rows[("memory", "hami", 4)].aggregate_it_s == pytest.approx(4 * 440.0)
    assert [r.mode for r in results_csv.load_results(out) if r.model == "mlp"] == [
        "exclusive",
        "time-slicing",
        "time-slicing",
        "hami",
        "hami",
        "hami",
    ]
    head = json.loads(raw.read_text())[0]
    assert head["settings"]["hami_memory_gib"] == 8.0 and head["settings"]["hami_sm_limit"] is None
    assert head["hami"]["sha256"] == hami.library_digest(library)
    assert head["hami"]["env"]["CUDA_DEVICE_MEMORY_LIMIT_0"] == "8192m"
    table = results_csv.format_table(results_csv.load_results(out))
    assert "it/s and latencies are the capped client's windows" in table
    again = tmp_path / "again.csv"
    assert cli.main(["summarize", str(raw), "--out", str(again)]) == 0
    assert again.read_text() == out.read_text()


def test_the_hami_group_is_kept_up_beside_an_mps_daemon():
    settings = cli.settings_from_args(
        cli.parse_args(["plan", "--modes", "exclusive,mps,hami", "--models", "mlp"])
    )
    assert cases.worker_groups(settings) == ("plain", "mps", "hami")
    run = _interleaved_run(settings, lambda *_: 500.0)
    assert {w.mode for w in run.windows} == {"exclusive", "mps", "hami"}
    assert dataclasses.asdict(settings)["hami_memory_gib"] == cases.DEFAULT_HAMI_MEMORY_GIB


def test_the_in_cluster_job_is_not_offered_the_hami_mode():
    """The Job's image has no HAMi-core, so `benchmark.modes` keeps to the modes that need
    only PyTorch and the driver; the hami mode is for local runs with --hami-lib."""
    from eks_gpu_slicing.settings.addons import BenchmarkSettings

    assert "hami" in cases.ALL_MODES and "hami" not in cases.MODES
    with pytest.raises(ValueError, match="subset of exclusive, time-slicing, mps, mps-limited"):
        BenchmarkSettings(modes=["exclusive", "hami"])
