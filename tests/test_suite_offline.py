"""The suite offline in a plain clone: with no copy of the Karpenter CRDs (no KARPENTER_CRD_DIR,
nothing beside the repository, an empty cache) and their registry out of reach, the tests that
need the CRDs skip, the others run, and the summary says why once (tests/conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from eks_gpu_slicing.review.karpenter_crds import CRD_DIR_ENV
from eks_gpu_slicing.settings.stack_files import ROOT

NEEDS_CRDS = [
    # raises CrdsUnavailable
    "tests/test_render_check.py::test_karpenter_objects_are_checked_against_the_crds",
    # marked needs_karpenter_crds: `make check` would exit 1
    "tests/test_render_check.py::test_the_example_stacks_render_and_pass_make_check[mig]",
]
NEEDS_NONE = "tests/test_render_check.py::test_value_paths_stop_at_the_paths_a_chart_reads_whole"


def test_without_the_karpenter_crds_the_tests_that_need_them_skip_with_one_reason(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: the registry is out of reach
        probe.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{probe.getsockname()[1]}"
    proxies = ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy", "NO_PROXY", "no_proxy")
    env = {k: v for k, v in os.environ.items() if k not in proxies}
    env |= {
        CRD_DIR_ENV: "",  # no local copy, not even the one beside the repository
        "XDG_CACHE_HOME": str(tmp_path),  # an empty cache
        "HTTPS_PROXY": nowhere,
        "HTTP_PROXY": nowhere,
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            *NEEDS_CRDS,
            NEEDS_NONE,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert any(line.startswith("1 passed, 2 skipped in ") for line in lines), lines[-3:]
    (why,) = [line for line in lines if "need the Karpenter CRDs" in line]
    assert why.startswith("2 tests that need the Karpenter CRDs skipped: Karpenter CRDs "), why
    assert f"set {CRD_DIR_ENV} to a folder" in why
