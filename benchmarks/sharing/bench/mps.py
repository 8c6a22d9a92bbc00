"""A private CUDA MPS control daemon for the run's MPS group, with the per-client limits the
device plugin's MPS strategy sets for mps-limited."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .records import BenchmarkError

MPS_CONTROL = "nvidia-cuda-mps-control"


def mps_limit_commands(replicas: int, total_mib: int, device_index: int = 0) -> list[str]:
    """Control-daemon commands that give every client the share the device plugin's MPS
    strategy gives one of `replicas` replicas of a GPU."""
    if replicas < 1:
        raise ValueError("replicas must be >= 1")
    return [
        f"set_default_active_thread_percentage {100 // replicas}",
        f"set_default_device_pinned_mem_limit {device_index} {total_mib // replicas}M",
    ]


@dataclass
class MpsDaemon:
    binary: str
    env: dict[str, str]  # the two CUDA_MPS_* variables
    log_dir: Path

    def command(self, text: str, timeout: float = 30.0) -> str:
        proc = subprocess.run(
            [self.binary],
            input=text + "\n",
            check=False,
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0:
            raise BenchmarkError(
                f"'{text}' to {MPS_CONTROL} failed (rc={proc.returncode}): "
                f"{proc.stdout.strip()} {proc.stderr.strip()}"
            )
        return proc.stdout.strip()

    def log_tail(self, lines: int = 30) -> str:
        parts = []
        for name in ("control.log", "server.log"):
            path = self.log_dir / name
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts) or f"(no MPS logs in {self.log_dir})"


@contextlib.contextmanager
def mps_daemon(
    setup_commands: Sequence[str], log: Callable[[str], None] = print
) -> Iterator[MpsDaemon]:
    """Start `nvidia-cuda-mps-control -d` with private pipe/log dirs; always quit it after."""
    binary = shutil.which(MPS_CONTROL)
    if binary is None:
        raise BenchmarkError(f"{MPS_CONTROL} not found on PATH ({os.environ.get('PATH')})")
    root = Path(tempfile.mkdtemp(prefix="bench-mps-"))
    pipe_dir, log_dir = root / "pipe", root / "log"
    pipe_dir.mkdir()
    log_dir.mkdir()
    daemon = MpsDaemon(
        binary=binary,
        env={"CUDA_MPS_PIPE_DIRECTORY": str(pipe_dir), "CUDA_MPS_LOG_DIRECTORY": str(log_dir)},
        log_dir=log_dir,
    )
    start = subprocess.run(
        [binary, "-d"],
        env={**os.environ, **daemon.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if start.returncode != 0:
        raise BenchmarkError(
            f"{MPS_CONTROL} -d failed (rc={start.returncode}): {start.stdout} {start.stderr}\n"
            + daemon.log_tail()
        )
    log(f"   MPS control daemon started (pipe {pipe_dir})")
    ok = False
    try:
        for cmd in setup_commands:
            out = daemon.command(cmd)
            log(f"   MPS: {cmd} -> {out or 'ok'}")
        yield daemon
        ok = True
    finally:
        try:
            out = daemon.command("quit", timeout=120)
            log(f"   MPS control daemon quit {out}".rstrip())
        except (BenchmarkError, subprocess.SubprocessError) as exc:
            log(f"   WARNING: stopping the MPS daemon failed: {exc}")
            ok = False
        if not ok:
            log(daemon.log_tail())
        shutil.rmtree(root, ignore_errors=True)


def check_group_clients(
    ready: dict[tuple[str, int], dict], group: str, listed: Sequence[str]
) -> str:
    """The MPS server of an interleaved run must serve exactly the MPS group's workers and no
    plain one. Raises otherwise; returns what was verified (pids compare only where the
    daemon sees the workers' pid namespace)."""
    members = {str(info.get("pid")) for (g, _), info in ready.items() if g == group}
    plain = {str(info.get("pid")) for (g, _), info in ready.items() if g != group}
    if len(listed) != len(members) or plain & set(listed):
        raise BenchmarkError(
            f"the MPS server lists clients {sorted(listed)}; want the {len(members)} workers "
            f"of the {group} group {sorted(members)} and none of the plain ones"
        )
    if set(listed) == members:
        return f"its {len(listed)} clients are the {group} group's workers, no plain process"
    return f"it has {len(listed)} clients (pids not comparable with the workers')"
