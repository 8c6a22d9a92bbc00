"""The worker processes: the only module that touches torch (imported inside the spawned
workers), and the runner that keeps every process group up for a whole interleaved run."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import multiprocessing
import os
import queue
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from .cases import (
    GROUP_OF_MODE,
    HAMI_MODE,
    MPS_GROUPS,
    PAIR_WARMUP_S,
    GpuInfo,
    InterleavedRun,
    InterleavedRunner,
    Settings,
    estimate_seconds,
    group_size,
    interleaved_schedule,
    settings_from_config,
    worker_groups,
)
from .hami import (
    CAP_CHECK_MEMBERS,
    CAPPED,
    LOCK_DIR,
    UNCAPPED,
    UNDER,
    CapCheckSettings,
    cap_check_config,
    cap_check_members,
    hami_session,
)
from .mps import check_group_clients, mps_daemon, mps_limit_commands
from .pairing import latency_percentiles_ms
from .records import MIB, STATUS_OOM, BenchmarkError, WorkerCrash, WorkerSample
from .telemetry import (
    TelemetryMonitor,
    _read_text,
    gpu_telemetry_reader,
    parse_kib_field,
    parse_last_cpu,
    query_compute_mode,
)

# Model shapes (fp16, inference). Kept here so the README and the code cannot disagree.
MLP_WIDTH = 1024
MLP_LAYERS = 4
MLP_BATCH = 8
TRANSFORMER_D_MODEL = 1024
TRANSFORMER_HEADS = 16
TRANSFORMER_FFN = 4096
TRANSFORMER_LAYERS = 4
TRANSFORMER_SEQ = 128
TRANSFORMER_BATCH = 8
MEMORY_DIM = 8192  # each weight matrix is MEMORY_DIM x MEMORY_DIM fp16 = 128 MiB
MEMORY_BATCH = 8


def _start_worker(ctx, body: Callable, key, config: dict, barrier, messages, env: dict[str, str]):
    """Start one spawned worker running body(key, config, barrier, messages) with `env` added
    to its environment (spawned children inherit the environment at start)."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        p = ctx.Process(
            target=_run_worker, args=(body, key, config, barrier, messages), daemon=True
        )
        p.start()
        return p
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _collect(
    procs: Sequence,
    keys: Sequence,
    barrier,
    messages,
    timeout_s: float,
    timeout_message: str,
    describe: Callable[[object], str],
    handle: Callable[[str, object, tuple], None],
) -> None:
    """Read the workers' messages until every one said 'done', passing 'ready' and 'sample'
    messages to handle(kind, key, message). A worker's error, a worker that exits without
    saying why, or the timeout raises WorkerCrash; then the barrier is broken and the others
    stopped. The processes are always reaped."""
    done: set = set()
    exited_at: dict = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(done) < len(procs):
            try:
                msg = messages.get(timeout=0.5)
            except queue.Empty:
                now = time.monotonic()
                for key, p in zip(keys, procs, strict=True):
                    if p.exitcode is not None and key not in done:
                        exited_at.setdefault(key, now)
                        if p.exitcode != 0 or now - exited_at[key] > 10.0:
                            raise WorkerCrash(
                                f"{describe(key)} exited with code {p.exitcode} without "
                                "reporting an error (killed? segfault?)"
                            ) from None
                if now > deadline:
                    raise WorkerCrash(timeout_message) from None
                continue
            kind, key = msg[0], msg[1]
            if kind == "error":
                raise WorkerCrash(f"{describe(key)} failed:\n{msg[2]}")
            if kind == "done":
                done.add(key)
            else:
                handle(kind, key, msg)
    except BaseException:
        with contextlib.suppress(Exception):
            barrier.abort()
        for p in procs:
            if p.is_alive():
                p.terminate()
        raise
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)


def _is_oom(torch, exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _build_step(torch, model: str, config: dict, device) -> Callable[[], object]:
    """Return a callable running one inference iteration of `model` (no synchronize)."""
    nn = torch.nn
    half = torch.float16
    if model == "mlp":
        layers: list = []
        for _ in range(MLP_LAYERS):
            layers += [nn.Linear(MLP_WIDTH, MLP_WIDTH), nn.ReLU()]
        net = nn.Sequential(*layers).to(device=device, dtype=half).eval()
        x = torch.randn(MLP_BATCH, MLP_WIDTH, device=device, dtype=half)
        return lambda: net(x)
    if model == "transformer":
        layer = nn.TransformerEncoderLayer(
            d_model=TRANSFORMER_D_MODEL,
            nhead=TRANSFORMER_HEADS,
            dim_feedforward=TRANSFORMER_FFN,
            dropout=0.0,
            batch_first=True,
        )
        net = nn.TransformerEncoder(layer, TRANSFORMER_LAYERS, enable_nested_tensor=False)
        net = net.to(device=device, dtype=half).eval()
        x = torch.randn(
            TRANSFORMER_BATCH, TRANSFORMER_SEQ, TRANSFORMER_D_MODEL, device=device, dtype=half
        )
        return lambda: net(x)
    if model == "memory":
        per_matrix = MEMORY_DIM * MEMORY_DIM * 2
        count = max(1, round(config["memory_gib"] * 1024**3 / per_matrix))
        weights = []
        for _ in range(count):
            w = torch.empty(MEMORY_DIM, MEMORY_DIM, device=device, dtype=half)
            w.normal_(0.0, MEMORY_DIM**-0.5)  # keeps activations O(1) through the chain
            weights.append(w)
        x0 = torch.randn(MEMORY_BATCH, MEMORY_DIM, device=device, dtype=half)

        def step() -> object:
            y = x0
            for w in weights:  # streams every weight once: bandwidth-bound, like LLM decode
                y = torch.mm(y, w)
            return y

        return step
    raise ValueError(f"unknown model {model}")


def _loop(
    torch, step, seconds: float, latencies: list[float] | None, launches: list[float] | None = None
) -> tuple[int, float]:
    """Run step+synchronize until `seconds` have passed (at least once). `launches` gets the
    host time of each step() call alone (the kernels are launched asynchronously)."""
    sync = torch.cuda.synchronize
    perf = time.perf_counter
    start = perf()
    end = start + seconds
    n = 0
    while True:
        t0 = perf()
        step()
        if launches is not None:
            launches.append(perf() - t0)
        sync()
        t1 = perf()
        if latencies is not None:
            latencies.append(t1 - t0)
        n += 1
        if t1 >= end:
            return n, t1 - start


def _cpu_probe(loops: int = 50_000) -> float:
    """Milliseconds for a fixed pure-Python loop: how fast this worker's CPU is right now.
    The launch-bound models run at the speed of the core they are on, so a slow window with
    a slow probe points at the host, not the GPU."""
    start = time.perf_counter()
    x = 0
    for i in range(loops):
        x += i * i
    return (time.perf_counter() - start) * 1e3


def _run_worker(body: Callable, key, config: dict, barrier, messages) -> None:
    """A worker process's entry point: run body(key, config, barrier, messages) and send any
    failure to the parent (which fails the run), breaking the barrier for the others."""
    try:
        body(key, config, barrier, messages)
    except Exception:
        messages.put(("error", key, traceback.format_exc()))
        # Flush the error before releasing the others from the barrier: their own errors
        # (a broken barrier) must not reach the parent first and hide the cause.
        messages.close()
        messages.join_thread()
        with contextlib.suppress(Exception):
            barrier.abort()
        sys.exit(1)
    messages.close()
    messages.join_thread()


def _ready_info(torch, device) -> dict:
    return {
        "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(device),
        "pid": os.getpid(),
    }


def _host_info() -> dict:
    return {
        "host_rss_mib": parse_kib_field(_read_text("/proc/self/status") or "", "VmHWM"),
        "host_pss_mib": parse_kib_field(_read_text("/proc/self/smaps_rollup") or "", "Pss"),
        "cpu": parse_last_cpu(_read_text("/proc/self/stat") or ""),
    }


def interleaved_cores(processes_per_group: int) -> list[int] | None:
    """The CPU core of each rank (rank i of every group on the i-th), leaving the lowest
    allowed core to the parent and its telemetry; None (no pinning) on too few cores."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) <= processes_per_group:
        return None
    return allowed[-processes_per_group:]


MemberEnv = Callable[[str, int], dict[str, str]]


@contextlib.contextmanager
def hami_member_env(
    settings: Settings,
    library: Path | None,
    log: Callable[[str], None] = print,
    lock_dir: Path = LOCK_DIR,
) -> Iterator[MemberEnv | None]:
    """Each worker's own environment where the run has a hami group: every rank of it
    preloads HAMi-core with the run's caps and a usage file of its own (one container each);
    None where the run has no hami mode."""
    if HAMI_MODE not in settings.modes:
        yield None
        return
    hami_group = GROUP_OF_MODE[HAMI_MODE]
    with hami_session(
        library,
        settings.hami_memory_gib,
        settings.hami_sm_limit,
        lock_dir=lock_dir,
        log=log,
    ) as session:

        def env(group: str, rank: int) -> dict[str, str]:
            return session.env(f"{group}-{rank}") if group == hami_group else {}

        yield env


def gpu_interleaved_runner(
    gpu: GpuInfo, log: Callable[[str], None] = print, hami_library: Path | None = None
) -> InterleavedRunner:
    """The real interleaved runner: every process group up at once on GPU 0, the MPS group as
    clients of one MPS daemon, the hami group's ranks each capped by HAMi-core
    (`hami_library`), while the GPU and the host are sampled."""
    backend, read_gpu = gpu_telemetry_reader()
    log(f"GPU telemetry through {backend}")

    def run(settings: Settings) -> InterleavedRun:
        groups = worker_groups(settings)
        mps_groups = [g for g in groups if g in MPS_GROUPS]
        if mps_groups:
            compute_mode = query_compute_mode()
            log(f"   GPU compute mode: {compute_mode}")
            if compute_mode not in ("Default", None):
                raise BenchmarkError(
                    "the plain processes run beside the MPS server, which needs compute mode "
                    f"Default; the GPU is in {compute_mode} (a node of the device plugin's MPS "
                    "strategy sets that): measure the MPS modes on a GPU in Default mode"
                )
        with (
            TelemetryMonitor(read_gpu, settings.telemetry_interval_s) as monitor,
            hami_member_env(settings, hami_library, log=log) as member_env,
        ):
            if not mps_groups:
                result = run_interleaved_workers(
                    settings, {g: {} for g in groups}, member_env=member_env, log=log
                )
            else:
                (group,) = mps_groups
                commands: list[str] = []
                if group == "mps-limited":
                    if gpu.memory_total_mib is None:
                        raise BenchmarkError("mps-limited needs the GPU's total memory")
                    commands = mps_limit_commands(settings.mps_replicas, gpu.memory_total_mib)
                with mps_daemon(commands, log=log) as daemon:

                    def check_server(ready: dict[tuple[str, int], dict]) -> None:
                        servers = daemon.command("get_server_list").split()
                        if len(servers) != 1:
                            raise BenchmarkError(
                                f"the MPS daemon lists servers {servers}, want one\n"
                                + daemon.log_tail()
                            )
                        want = group_size(settings)
                        for _ in range(10):  # the listing can lag behind the clients' start
                            listed = daemon.command(f"get_client_list {servers[0]}").split()
                            if len(listed) >= want:
                                break
                            time.sleep(0.3)
                        log(f"   MPS server pid {servers[0]}: {len(listed)} client(s) listed")
                        log(f"   {check_group_clients(ready, group, listed)}")

                    try:
                        result = run_interleaved_workers(
                            settings,
                            {g: daemon.env if g == group else {} for g in groups},
                            on_ready=check_server,
                            log=log,
                            member_env=member_env,
                        )
                    except BenchmarkError as exc:
                        raise type(exc)(f"{exc}\n{daemon.log_tail()}") from exc
        return dataclasses.replace(result, telemetry=tuple(monitor.samples))

    return run


def run_interleaved_workers(
    settings: Settings,
    group_env: dict[str, dict[str, str]],
    on_ready: Callable[[dict[tuple[str, int], dict]], None] | None = None,
    log: Callable[[str], None] = print,
    body: Callable | None = None,
    member_env: MemberEnv | None = None,
) -> InterleavedRun:
    """Spawn group_size processes per group (with that group's environment, and
    member_env(group, rank) over it where given), let them run the schedule, collect every
    window's samples; fail loudly on any crash or hang. `body` replaces the worker code
    (tests)."""
    schedule = interleaved_schedule(settings)
    size = group_size(settings)
    members = [(group, rank) for group in group_env for rank in range(size)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(members))
    messages = ctx.Queue()
    config = dataclasses.asdict(settings)
    config["barrier_timeout_s"] = settings.case_timeout_s
    config["groups"] = list(group_env)
    config["cores"] = interleaved_cores(size)
    if config["cores"] is None:
        log(f"   {len(os.sched_getaffinity(0))} CPUs for {size} ranks: not pinned")
    else:
        log(f"   rank i of every group pinned to CPU {config['cores']}[i]")
    procs = [
        _start_worker(
            ctx,
            body or _interleaved_worker_body,
            member,
            config,
            barrier,
            messages,
            {**group_env[member[0]], **(member_env(*member) if member_env else {})},
        )
        for member in members
    ]
    position = {w.index: {rank: i for i, rank in enumerate(w.ranks)} for w in schedule}
    group_of = {w.index: GROUP_OF_MODE[w.mode] for w in schedule}
    samples: dict[str, dict[int, list[WorkerSample | None]]] = {
        m: {w.index: [None] * w.clients for w in schedule} for m in settings.models
    }
    ready: dict[tuple[str, int], dict] = {}

    def handle(kind: str, member, msg: tuple) -> None:
        if kind == "ready":
            ready[member] = msg[2]
            if len(ready) == len(members) and on_ready is not None:
                on_ready(ready)
        elif kind == "sample":
            _, _, model, index, data = msg
            group, rank = member
            if group_of[index] != group or rank not in position[index]:
                raise WorkerCrash(f"worker {member} sent a sample for window {index}")
            samples[model][index][position[index][rank]] = WorkerSample(**data)

    limit = max(settings.case_timeout_s, 3 * estimate_seconds(settings))
    _collect(
        procs,
        members,
        barrier,
        messages,
        limit,
        f"interleaved run timed out after {limit:.0f} s",
        lambda member: f"worker {member}",
        handle,
    )
    missing = [
        (m, index)
        for m, by_index in samples.items()
        for index, row in by_index.items()
        if any(s is None for s in row)
    ]
    if missing:
        raise WorkerCrash(f"workers finished but samples are missing: {missing[:5]}")
    info = next(iter(ready.values()), {})
    return InterleavedRun(
        windows=tuple(schedule),
        samples=samples,  # type: ignore[arg-type]
        torch_version=info.get("torch", ""),
        gpu=info.get("gpu", ""),
    )


def _interleaved_worker_body(member: tuple[str, int], config: dict, barrier, messages) -> None:
    """One process of one group. Every process walks the same schedule: at each window all
    meet at the barrier, the window's ranks of its group warm up briefly, all meet again, the
    active ones run the timed window (CPU probes right before and after) and report it."""
    import gc

    import torch

    group, rank = me = member
    if config.get("cores"):
        os.sched_setaffinity(0, {config["cores"][rank]})
    torch.set_num_threads(1)
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    torch.zeros(1, device=device)  # create the CUDA context (and connect to MPS) now
    messages.put(("ready", me, _ready_info(torch, device)))
    settings = settings_from_config(config)
    schedule = interleaved_schedule(settings)
    timeout = config["barrier_timeout_s"]

    def free() -> None:
        gc.collect()
        torch.cuda.synchronize()
        torch.cuda.empty_cache()

    def oom_text(exc: BaseException) -> str:
        if not _is_oom(torch, exc):
            raise exc
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    with torch.inference_mode():
        for model in settings.models:
            free()
            torch.cuda.reset_peak_memory_stats(device)
            torch.manual_seed(1000 + rank)  # rank i of every group holds the same weights
            oom, step = "", None
            try:
                step = _build_step(torch, model, config, device)
                step()
                torch.cuda.synchronize()
            except Exception as exc:
                oom, step = oom_text(exc), None
                free()
            barrier.wait(timeout)  # everybody has built (or failed to build) the model
            for warming in config["groups"]:  # a full warm-up per group, the others idle
                barrier.wait(timeout)
                if warming == group and step is not None:
                    try:
                        _loop(torch, step, settings.warmup_s, None)
                    except Exception as exc:
                        oom, step = oom_text(exc), None
                        free()
            for w in schedule:
                active = GROUP_OF_MODE[w.mode] == group and rank in w.ranks
                barrier.wait(timeout)  # the previous window is over
                probe_ms = None
                if active and step is not None:
                    try:
                        _loop(torch, step, PAIR_WARMUP_S, None)
                    except Exception as exc:
                        oom, step = oom_text(exc), None
                        free()
                    probe_ms = _cpu_probe()
                barrier.wait(timeout)  # the timed windows of the active ranks start together
                if not active:
                    continue
                latencies: list[float] = []
                launches: list[float] = []
                n, elapsed = 0, 0.0
                switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw
                window_start = time.monotonic()
                if step is not None:
                    try:
                        n, elapsed = _loop(torch, step, settings.window_s, latencies, launches)
                    except Exception as exc:
                        oom, step = oom_text(exc), None
                        free()
                window_end = time.monotonic()
                switches = resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw - switches
                host = {
                    "window_start": window_start,
                    "window_end": window_end,
                    "involuntary_switches": switches,
                    "cpu_probe_ms": probe_ms,
                    "cpu_probe_after_ms": _cpu_probe(),
                    **_host_info(),
                }
                if oom or step is None:
                    sample = WorkerSample(
                        rank, 0, 0.0, None, None, None, None, None, STATUS_OOM, oom, **host
                    )
                else:
                    p50, p99 = latency_percentiles_ms(latencies)
                    free_b, total_b = torch.cuda.mem_get_info(device)
                    sample = WorkerSample(
                        rank=rank,
                        iterations=n,
                        elapsed_s=elapsed,
                        p50_ms=p50,
                        p99_ms=p99,
                        mem_allocated_mib=torch.cuda.max_memory_allocated(device) / MIB,
                        mem_reserved_mib=torch.cuda.max_memory_reserved(device) / MIB,
                        device_used_mib=(total_b - free_b) / MIB,
                        launch_ms=1e3 * math.fsum(launches) / len(launches),
                        **host,
                    )
                messages.put(("sample", me, model, w.index, dataclasses.asdict(sample)))
            barrier.wait(timeout)  # the last window is over before anyone frees the model
            step = None
    free()
    messages.put(("done", me))


def run_cap_check(
    settings: CapCheckSettings,
    library: Path | None,
    log: Callable[[str], None] = print,
    body: Callable | None = None,
    lock_dir: Path = LOCK_DIR,
) -> dict[str, dict]:
    """The cap check (hami.CAP_CHECK_MEMBERS): a client capped at settings.cap_gib that
    allocates past its cap, one under the same cap beside it, and a process without the
    library; returns each one's report. `body` replaces the worker code (tests)."""
    with hami_session(library, settings.cap_gib, lock_dir=lock_dir, log=log) as session:
        envs = cap_check_members(session.env)
        ctx = multiprocessing.get_context("spawn")
        barrier = ctx.Barrier(len(CAP_CHECK_MEMBERS))
        messages = ctx.Queue()
        config = cap_check_config(settings)
        procs = [
            _start_worker(ctx, body or _cap_check_body, m, config, barrier, messages, envs[m])
            for m in CAP_CHECK_MEMBERS
        ]
        reports: dict[str, dict] = {}

        def handle(kind: str, member, msg: tuple) -> None:
            if kind == "report":
                reports[member] = msg[2]

        _collect(
            procs,
            CAP_CHECK_MEMBERS,
            barrier,
            messages,
            settings.timeout_s,
            f"the cap check timed out after {settings.timeout_s:.0f} s",
            lambda member: f"cap-check process {member}",
            handle,
        )
    missing = [m for m in CAP_CHECK_MEMBERS if m not in reports]
    if missing:
        raise WorkerCrash(f"cap-check processes {missing} finished without a report")
    return reports


def _cap_check_body(member: str, config: dict, barrier, messages) -> None:
    """One process of the cap check. All three walk the same barriers: contexts up; the
    under-cap client fills its memory; the capped client allocates past its cap (and keeps
    what it got); the uncapped process reads the GPU's free memory and allocates more than
    the cap while the under-cap client checks its data and allocates a little more; the
    capped client frees and allocates again."""
    import torch

    mib = 1024 * 1024
    timeout = config["barrier_timeout_s"]
    cap_mib = config["cap_gib"] * 1024
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    torch.zeros(1, device=device)  # the CUDA context (HAMi-core registers the process here)
    free_b, total_b = torch.cuda.mem_get_info(device)
    report: dict = {"free_mib": free_b / mib, "total_mib": total_b / mib, "pid": os.getpid()}
    report["torch"] = torch.__version__

    def oom_text(exc: BaseException) -> str:
        if not _is_oom(torch, exc):
            raise exc
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"

    def allocate(n_mib: float):
        t = torch.empty(int(n_mib * mib), dtype=torch.uint8, device=device)
        t.fill_(1)  # touch it: the memory is really there
        torch.cuda.synchronize()
        return t

    barrier.wait(timeout)  # 1: every context is up
    held = checksum = None
    if member == UNDER:
        held_mib = config["under_gib"] * 1024
        gen = torch.Generator(device=device).manual_seed(7)
        held = torch.randint(
            0, 256, (int(held_mib * mib),), dtype=torch.uint8, device=device, generator=gen
        )
        checksum = int(held.sum(dtype=torch.int64))
        report["held_mib"] = held_mib
    barrier.wait(timeout)  # 2: the under-cap client holds its memory
    chunks: list = []
    if member == CAPPED:
        single = cap_mib + 1024
        report["single_request_mib"] = single
        try:
            big = allocate(single)
            del big
            report["single_error"] = None
        except Exception as exc:
            report["single_error"] = oom_text(exc)
        torch.cuda.empty_cache()
        limit = cap_mib + config["overshoot_gib"] * 1024
        allocated, error = 0.0, None
        while allocated < limit:
            try:
                chunks.append(allocate(config["chunk_mib"]))
            except Exception as exc:
                error = oom_text(exc)
                break
            allocated += config["chunk_mib"]
        report["allocated_mib"] = allocated
        report["chunk_error"] = error
        free_b, total_b = torch.cuda.mem_get_info(device)
        report["at_error_free_mib"], report["at_error_total_mib"] = free_b / mib, total_b / mib
    barrier.wait(timeout)  # 3: the capped client was refused and still holds what it got
    if member == UNCAPPED:
        free_b, _ = torch.cuda.mem_get_info(device)
        report["gpu_free_mib"] = free_b / mib
        want = cap_mib + config["uncapped_extra_gib"] * 1024
        try:
            big = allocate(want)
            report["allocated_mib"], report["error"] = want, None
            del big
        except Exception as exc:
            report["allocated_mib"], report["error"] = 0.0, oom_text(exc)
        torch.cuda.empty_cache()
    if member == UNDER:
        report["intact"] = int(held.sum(dtype=torch.int64)) == checksum
        extra_mib = config["chunk_mib"] * 2
        report["extra_mib"] = extra_mib
        try:
            extra = allocate(extra_mib)
            report["extra_error"] = None
            del extra
        except Exception as exc:
            report["extra_error"] = oom_text(exc)
    barrier.wait(timeout)  # 4
    if member == CAPPED:
        chunks.clear()
        torch.cuda.empty_cache()
        again = cap_mib / 2
        report["realloc_mib"] = again
        try:
            t = allocate(again)
            report["realloc_error"] = None
            del t
        except Exception as exc:
            report["realloc_error"] = oom_text(exc)
    barrier.wait(timeout)  # 5: everything measured
    del held
    messages.put(("report", member, report))
    messages.put(("done", member))
