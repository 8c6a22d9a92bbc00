"""Fakes for the benchmark package's tests: made-up worker samples and interleaved runs, no
torch, no GPU."""

from __future__ import annotations

from pathlib import Path

from benchmarks.sharing.bench import cases, cli, records, runs

RESULTS_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "sharing"


GPU = cases.GpuInfo(name="Test GPU", driver="1.2.3", memory_total_mib=16000)


META = records.RunMeta(date="2026-01-02", gpu="Test GPU", driver="1.2.3", torch="9.9")


def sample(rank=0, iterations=100, elapsed=1.0, p50=1.0, p99=2.0, reserved=100.0, **kw):
    return records.WorkerSample(
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
    return records.WorkerSample(
        rank, 0, 0.0, None, None, None, None, None, records.STATUS_OOM, "OOM"
    )


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


def _interleaved(*argv):
    return cli.settings_from_args(cli.parse_args(["run", *argv]))


def _interleaved_run(settings, speed_of, start=0.0):
    """An InterleavedRun whose workers run at speed_of(window, rank, t) it/s, telemetry at
    1980 MHz inside every window and 300 MHz outside."""
    samples, telemetry, t = {}, [], start
    for model in settings.models:
        samples[model] = {}
        for w in cases.interleaved_schedule(settings):
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
                records.TelemetrySample(t=t + settings.window_s / 2, sm_clock_mhz=1980.0),
                records.TelemetrySample(t=t + settings.window_s + 0.05, sm_clock_mhz=300.0),
            ]
            samples[model][w.index] = lst
            t += settings.window_s + 0.1
    return cases.InterleavedRun(
        windows=tuple(cases.interleaved_schedule(settings)),
        samples=samples,
        torch_version="9.9",
        gpu="Test GPU",
        telemetry=tuple(telemetry),
    )


def _fake_interleaved_runner(speed_of):
    return lambda settings: _interleaved_run(settings, speed_of)


def _results():
    """Rows of a made-up run of every model, N = 1 and 2, whose memory model ran out of
    memory in one window (every row of that model is then 'oom')."""
    settings = _interleaved("--clients", "1,2", "--rounds", "2")
    speed = {"mlp": 1000.0, "transformer": 200.0, "memory": 50.0}
    run = _interleaved_run(settings, lambda model, w, rank, t: speed[model] / w.clients)
    index = next(w.index for w in run.windows if (w.mode, w.clients) == ("mps", 2))
    run.samples["memory"][index][1] = oom_sample(1)
    return runs.summarize_interleaved_run(settings, run, META, log=lambda _: None)


# Every published run, whatever its GPU (the H200 runs, the hami run).
COMMITTED = sorted(RESULTS_DIR.glob("results-*.csv"))


COMMITTED_RAW = sorted(COMMITTED[0].parent.glob("results-*-raw.json.gz"))
