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
    info["preload"] = os.environ.get("LD_PRELOAD")
    info["cap"] = os.environ.get("CUDA_DEVICE_MEMORY_LIMIT_0")
    info["cache"] = os.environ.get("CUDA_DEVICE_MEMORY_SHARED_CACHE")
    messages.put(("ready", member, info))
    settings = bench.settings_from_config(config)
    timeout = config["barrier_timeout_s"]
    for model in settings.models:
        for w in bench.interleaved_schedule(settings):
            barrier.wait(timeout)
            if bench.GROUP_OF_MODE[w.mode] == group and rank in w.ranks:
                messages.put(("sample", member, model, w.index, _sample(rank, 100.0 * (rank + 1))))
    messages.put(("done", member))


def _cap_mib() -> float | None:
    """The cap this process's environment asks HAMi-core for (a fake library honours it
    unless FAKE_HAMI_IGNORED is set)."""
    value = os.environ.get("CUDA_DEVICE_MEMORY_LIMIT_0")
    if not os.environ.get("LD_PRELOAD") or not value or os.environ.get("FAKE_HAMI_IGNORED"):
        return None
    assert value.endswith("m"), value
    return float(value[:-1])


def cap_check(member, config, barrier, messages) -> None:
    """The cap check's steps at the same barriers as the real body, on a made-up GPU of
    80 GiB where the library refuses what would pass the cap (CUDA context: 512 MiB)."""
    cap = _cap_mib()
    timeout = config["barrier_timeout_s"]
    gpu_total, context = 80 * 1024.0, 512.0
    used = context
    oom = "OutOfMemoryError: CUDA out of memory. Tried to allocate 256.00 MiB"

    def fits(mib: float) -> bool:
        return cap is None or used + mib <= cap

    report = {"total_mib": cap or gpu_total, "free_mib": (cap or gpu_total) - used}
    for step in range(1, 6):
        barrier.wait(timeout)
        if member == "under" and step == 1:
            report["held_mib"] = config["under_gib"] * 1024
            used += report["held_mib"]
        if member == "capped" and step == 2:
            report["single_request_mib"] = config["cap_gib"] * 1024 + 1024
            report["single_error"] = None if fits(report["single_request_mib"]) else oom
            allocated, limit = 0.0, (config["cap_gib"] + config["overshoot_gib"]) * 1024
            report["chunk_error"] = None
            while allocated < limit:
                if not fits(config["chunk_mib"]):
                    report["chunk_error"] = oom
                    break
                used += config["chunk_mib"]
                allocated += config["chunk_mib"]
            report["allocated_mib"] = allocated
        if member == "uncapped" and step == 3:
            report["gpu_free_mib"] = gpu_total - 3 * context - config["cap_gib"] * 1024
            report["allocated_mib"] = config["cap_gib"] * 1024 + 1024
            report["error"] = None
        if member == "under" and step == 3:
            report["intact"] = True
            report["extra_mib"] = 2 * config["chunk_mib"]
            report["extra_error"] = None if fits(report["extra_mib"]) else oom
        if member == "capped" and step == 4:
            report["realloc_mib"] = config["cap_gib"] * 512
            report["realloc_error"] = None
    messages.put(("report", member, report))
    messages.put(("done", member))
