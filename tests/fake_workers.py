"""Worker bodies without torch, for running the benchmark's real process management in
tests: spawned children import this module by name, so it must stay importable and light."""

from __future__ import annotations

import dataclasses
import os

from benchmarks.sharing import bench


def _sample(rank: int, its: float) -> dict:
    return dataclasses.asdict(
        bench.WorkerSample(
            rank=rank,
            iterations=round(its),
            elapsed_s=1.0,
            p50_ms=1.0,
            p99_ms=2.0,
            mem_allocated_mib=1.0,
            mem_reserved_mib=2.0,
            host_rss_mib=100.0,
            cpu_probe_ms=2.5,
            cpu_probe_after_ms=2.5,
            launch_ms=0.1,
        )
    )


def interleaved(member, config, barrier, messages) -> None:
    """Walks the schedule as the real body does, one barrier per window; a worker runs at
    100 it/s times (rank + 1). FAKE_CRASH names a member that raises, FAKE_EXIT one that
    dies without a word."""
    group, rank = member
    if os.environ.get("FAKE_CRASH") == f"{group}:{rank}":
        raise RuntimeError("planted failure")
    if os.environ.get("FAKE_EXIT") == f"{group}:{rank}":
        os._exit(3)
    info = {"pid": os.getpid(), "torch": "fake", "gpu": "Fake GPU"}
    info["env"] = os.environ.get("FAKE_GROUP_ENV")
    messages.put(("ready", member, info))
    settings = bench.settings_from_config(config)
    timeout = config["barrier_timeout_s"]
    for model in settings.models:
        for w in bench.interleaved_schedule(settings):
            barrier.wait(timeout)
            if bench.GROUP_OF_MODE[w.mode] == group and rank in w.ranks:
                messages.put(("sample", member, model, w.index, _sample(rank, 100.0 * (rank + 1))))
    messages.put(("done", member))
