"""HAMi-core, the library HAMi preloads into a container to cap its GPU memory (and, softly, its
SM share): the environment each capped client gets, and the cap check's verdict. No torch; the
check's worker body is in `workers`.

The names and formats below are HAMi-core's (src/include/memory_limit.h,
src/multiprocess/multiprocess_memory_limit.{c,h}, src/utils.c) and those HAMi's device plugin
sets for a container (HAMi v2.10.0, pkg/device-plugin/nvidiadevice/nvinternal/plugin/server.go):

* `CUDA_DEVICE_MEMORY_LIMIT_<i>`: the cap of the container's i-th CUDA device, a number with
  an optional k/m/g suffix (binary units); the plugin writes MiB (`<n>m`). Without an index
  the value applies to every device. HAMi-core counts each process's CUDA context (as NVML
  reports its memory) against the cap, not only its allocations.
* `CUDA_DEVICE_SM_LIMIT`: percent of the device's SMs; 0 or unset means no limit. HAMi-core
  enforces it by delaying kernel launches against the utilisation NVML samples, so it is a
  soft limit: bursts pass, and nothing partitions the SMs.
* `CUDA_DEVICE_MEMORY_SHARED_CACHE`: the file every process of one container maps to share
  its usage: the cap holds for the container's processes together. The plugin gives each
  container a file of its own (default `/tmp/cudevshr.cache`, shared by every process that
  leaves it unset), so each client here gets its own file.
* `/tmp/vgpulock/lock`: a lock all capped processes of a node take while they register (the
  plugin mounts the host's /tmp/vgpulock into every container); the directory must exist.

Nothing here stops a process that does not preload the library: it is not capped.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .records import BenchmarkError

PRELOAD_ENV = "LD_PRELOAD"
MEMORY_LIMIT_ENV = "CUDA_DEVICE_MEMORY_LIMIT"
SM_LIMIT_ENV = "CUDA_DEVICE_SM_LIMIT"
SHARED_CACHE_ENV = "CUDA_DEVICE_MEMORY_SHARED_CACHE"
LOCK_DIR = Path("/tmp/vgpulock")
# Where `run --hami-lib` and `hami-check --hami-lib` look when the option is left out.
LIBRARY_ENV = "HAMI_CORE_LIB"
DEVICE_INDEX = 0  # the benchmark uses the first visible GPU
# The cap check's exit status when the cap did not hold (2-4 are taken by `run`).
CAP_NOT_HELD = 5


def memory_limit_value(gib: float) -> str:
    """HAMi-core's value for a cap of `gib` GiB, in MiB as HAMi's device plugin writes it."""
    return f"{round(gib * 1024)}m"


def client_env(
    library: str | Path,
    memory_gib: float,
    cache_file: str | Path,
    sm_limit: int | None = None,
    device_index: int = DEVICE_INDEX,
) -> dict[str, str]:
    """The environment of one capped client: what HAMi's device plugin gives a container of
    `memory_gib` GiB (and `sm_limit` percent), with the library preloaded the way
    `/etc/ld.so.preload` preloads it there."""
    env = {
        PRELOAD_ENV: str(library),
        f"{MEMORY_LIMIT_ENV}_{device_index}": memory_limit_value(memory_gib),
        SHARED_CACHE_ENV: str(cache_file),
    }
    if sm_limit is not None:
        env[SM_LIMIT_ENV] = str(sm_limit)
    return env


def resolve_library(option: str | None, environ: Mapping[str, str] = os.environ) -> Path | None:
    """The library path from the option, else from $HAMI_CORE_LIB; None if neither is set."""
    value = option or environ.get(LIBRARY_ENV)
    return Path(value) if value else None


def library_problem(path: Path | None) -> str | None:
    """Why `path` cannot be preloaded, or None."""
    if path is None:
        return (
            f"the hami mode needs HAMi-core's libvgpu.so: pass --hami-lib PATH or set "
            f"{LIBRARY_ENV} (it is built from Project-HAMi/HAMi-core, not shipped here)"
        )
    if not path.is_file():
        return f"--hami-lib {path}: no such file"
    if not os.access(path, os.R_OK):
        return f"--hami-lib {path}: not readable"
    return None


def library_digest(path: Path) -> str:
    """sha256 of the library, recorded with a run so its results name the build they used."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class HamiSession:
    """The caps of one run: one shared-usage file per client in a private directory."""

    library: Path
    memory_gib: float
    sm_limit: int | None
    directory: Path

    def env(self, name: str) -> dict[str, str]:
        """The environment of the client called `name` (its own usage file)."""
        return client_env(
            self.library, self.memory_gib, self.directory / f"{name}.cache", self.sm_limit
        )


@contextlib.contextmanager
def hami_session(
    library: Path | None,
    memory_gib: float,
    sm_limit: int | None = None,
    lock_dir: Path = LOCK_DIR,
    log: Callable[[str], None] = print,
) -> Iterator[HamiSession]:
    """Check the library, make HAMi-core's lock directory (world-writable, as HAMi's plugin
    leaves it) and a private directory for the clients' usage files; remove the latter after.
    A stale usage file would carry an earlier run's limits (HAMi-core keeps the first limit
    written to it), so every run starts with fresh ones."""
    problem = library_problem(library)
    if problem or library is None:
        raise BenchmarkError(problem or "no library")
    lock_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        lock_dir.chmod(0o777)
    directory = Path(tempfile.mkdtemp(prefix="bench-hami-"))
    sm = "no SM limit" if sm_limit is None else f"SM limit {sm_limit} %"
    log(
        f"   HAMi-core {library} (sha256 {library_digest(library)[:16]}): each client capped "
        f"at {memory_limit_value(memory_gib)} of device memory, {sm}; usage files in {directory}"
    )
    try:
        yield HamiSession(library, memory_gib, sm_limit, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# The cap check: three processes on one GPU, walking the same steps at barriers.
#   capped    preloads the library with a cap of K GiB and allocates past it
#   under     preloads it with the same cap and stays under it, beside the capped one
#   uncapped  no library: allocates more than K, showing the GPU had the memory and that a
#             process that does not load the library is not capped
CAPPED, UNDER, UNCAPPED = "capped", "under", "uncapped"
CAP_CHECK_MEMBERS = (CAPPED, UNDER, UNCAPPED)
CHUNK_MIB = 256  # the capped client's allocation steps
# How far past the cap the capped client keeps allocating before it declares the cap absent.
OVERSHOOT_GIB = 2.0
# The uncapped process allocates this much more than the cap.
UNCAPPED_EXTRA_GIB = 1.0


@dataclass(frozen=True)
class CapCheckSettings:
    cap_gib: float
    under_gib: float  # what the client under its cap holds
    timeout_s: float = 300.0


def cap_check_config(settings: CapCheckSettings) -> dict:
    return {
        "cap_gib": settings.cap_gib,
        "under_gib": settings.under_gib,
        "chunk_mib": CHUNK_MIB,
        "overshoot_gib": OVERSHOOT_GIB,
        "uncapped_extra_gib": UNCAPPED_EXTRA_GIB,
        "barrier_timeout_s": settings.timeout_s,
    }


def _gib(mib: float | None) -> str:
    return "?" if mib is None else f"{mib / 1024:.2f} GiB"


def cap_check_verdict(
    reports: Mapping[str, Mapping], cap_gib: float
) -> tuple[list[str], list[str]]:
    """(what each process saw, one line per way the cap did not hold). `reports` is each
    member's final report (workers._cap_check_body)."""
    capped, under, uncapped = (reports.get(m, {}) for m in CAP_CHECK_MEMBERS)
    cap_mib = cap_gib * 1024
    lines = [
        f"cap {memory_limit_value(cap_gib)} ({cap_gib:g} GiB) for the capped and the under-cap "
        "client; the uncapped process preloads nothing",
        f"capped: the device as it sees it: {_gib(capped.get('total_mib'))} total, "
        f"{_gib(capped.get('free_mib'))} free; one allocation of "
        f"{_gib(capped.get('single_request_mib'))}: {capped.get('single_error') or 'succeeded'}",
        f"capped: allocated {_gib(capped.get('allocated_mib'))} in steps of {CHUNK_MIB} MiB, "
        f"then: {capped.get('chunk_error') or 'no error'}",
        f"capped: after freeing, {_gib(capped.get('realloc_mib'))} again: "
        f"{capped.get('realloc_error') or 'succeeded'}",
        f"under: held {_gib(under.get('held_mib'))}, data intact after the capped client's "
        f"error: {under.get('intact')}; another {_gib(under.get('extra_mib'))}: "
        f"{under.get('extra_error') or 'succeeded'}",
        f"uncapped: the GPU had {_gib(uncapped.get('gpu_free_mib'))} free when the capped "
        f"client was refused; it allocated {_gib(uncapped.get('allocated_mib'))}: "
        f"{uncapped.get('error') or 'succeeded'}",
    ]
    problems = []
    if not _is_oom_text(capped.get("single_error")):
        problems.append(
            f"capped: an allocation of {_gib(capped.get('single_request_mib'))} past its "
            f"{cap_gib:g} GiB cap did not fail with out of memory"
        )
    allocated = capped.get("allocated_mib")
    if not _is_oom_text(capped.get("chunk_error")) or allocated is None:
        problems.append("capped: allocating step by step never ran out of memory")
    elif allocated > cap_mib:
        problems.append(
            f"capped: it allocated {_gib(allocated)}, more than its {cap_gib:g} GiB cap"
        )
    if capped.get("realloc_error"):
        problems.append(
            f"capped: after its error it could not allocate again: {capped['realloc_error']}"
        )
    free_mib = uncapped.get("gpu_free_mib")
    if free_mib is None or free_mib < cap_mib + UNCAPPED_EXTRA_GIB * 1024:
        problems.append(
            f"the GPU had {_gib(free_mib)} free when the capped client was refused: not "
            "enough to tell the cap from a full GPU"
        )
    if uncapped.get("error"):
        problems.append(f"uncapped: {uncapped['error']}")
    if not under.get("held_mib") or under.get("intact") is not True or under.get("extra_error"):
        problems.append(
            "under: the client under its cap was affected: "
            + "; ".join(
                x
                for x in (
                    None if under.get("held_mib") else "it could not hold its memory",
                    None if under.get("intact") is True else "its data changed",
                    under.get("extra_error"),
                )
                if x
            )
        )
    return lines, problems


def _is_oom_text(error: str | None) -> bool:
    return bool(error) and "out of memory" in error.lower()


def cap_check_members(env_of: Callable[[str], dict[str, str]]) -> dict[str, dict[str, str]]:
    """Each cap-check process's environment: the capped and the under-cap client through
    `env_of` (their own usage files), the uncapped one none."""
    return {CAPPED: env_of(CAPPED), UNDER: env_of(UNDER), UNCAPPED: {}}


def format_report(lines: Sequence[str], problems: Sequence[str]) -> str:
    verdict = (
        [
            "THE CAP HELD: over-cap allocations failed with out of memory while the GPU had free "
            "memory, and the client under its cap was unaffected"
        ]
        if not problems
        else ["ERROR: THE CAP DID NOT HOLD:", *(f"  {p}" for p in problems)]
    )
    return "\n".join([*lines, *verdict])
