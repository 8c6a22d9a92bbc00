"""Time the whole test suite as `make test` runs it: the median wall time of three runs, once
dependencies are installed (`make setup checkov-venv`), on the pytest-xdist workers
pyproject.toml sets (`-n auto`: one per core). It also prints the CPU seconds the runs took
(pytest and its workers and subprocesses): on a machine busy with other work the wall time
grows, the CPU time much less. Figures measured, and the machine, are in docs/architecture.md;
the goal is under 25 s on 2 cores.

    make time-tests
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time

RUNS = 3


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    cores = os.cpu_count()
    times, cpu = [], []
    for _ in range(RUNS):
        start, start_cpu = time.perf_counter(), _children_cpu_s()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - start)
        cpu.append(_children_cpu_s() - start_cpu)
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:])
            return result.returncode
    summary = next(
        (line for line in reversed(result.stdout.splitlines()) if " passed" in line), "?"
    ).strip("= ")
    print(f"{summary}; wall time over {RUNS} runs on {cores} cores: ", end="")
    print(f"median {statistics.median(times):.1f} s, min {min(times):.1f} s, ", end="")
    print(f"max {max(times):.1f} s; CPU time median {statistics.median(cpu):.1f} s")
    print(f"load average now: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
