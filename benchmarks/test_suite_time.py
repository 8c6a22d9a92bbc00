"""Time the whole test suite: the median wall time of three runs, once dependencies are
installed, on the two pytest-xdist workers pyproject.toml sets. Measured 2026-11-29 on a
2-core machine of CI's size: 959 tests, median 42.4 s (an earlier 893-test run: 73 s on one
worker); the goal is to keep it under a minute on 2 cores.

    make time-tests
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

RUNS = 3


def main() -> int:
    cores = os.cpu_count()
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"],
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            print(result.stdout[-2000:], result.stderr[-2000:])
            return result.returncode
    summary = next(
        (line for line in reversed(result.stdout.splitlines()) if " passed" in line), "?"
    ).strip("= ")
    print(f"{summary}; wall time over {RUNS} runs on {cores} cores: ", end="")
    print(f"median {statistics.median(times):.1f} s, max {max(times):.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
