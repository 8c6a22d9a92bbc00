"""Shared fixtures: the stack files as the engine would pass them, a minimal config, and the
committed stacks rendered once per session; where the Karpenter CRDs come from.

Pulumi, the settings and the renderer are imported inside the fixtures and hooks that use
them: pytest-xdist's controller process loads this file too, and runs no test.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from eks_gpu_slicing import facts
from eks_gpu_slicing.review.karpenter_crds import CRD_DIR_ENV, CrdsUnavailable

if TYPE_CHECKING:
    from eks_gpu_slicing.review.mocks import Deployment
    from eks_gpu_slicing.review.render import Rendered

# The smallest configuration this program accepts: everything else has a default.
MINIMAL: dict[str, Any] = {
    "gpuNodeGroups": {
        "t4": {"instanceType": "g4dn.xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 2}
    }
}


@pytest.fixture
def minimal() -> dict[str, Any]:
    """A fresh copy of MINIMAL (raw settings, as load_settings takes them)."""
    return copy.deepcopy(MINIMAL)


@pytest.fixture(scope="session")
def dev_config() -> dict[str, str]:
    from eks_gpu_slicing.settings.stack_files import engine_config_of_stack

    return engine_config_of_stack("dev")


@pytest.fixture(scope="session")
def prod_config() -> dict[str, str]:
    from eks_gpu_slicing.settings.stack_files import engine_config_of_stack

    return engine_config_of_stack("prod")


def engine_config(raw: dict[str, Any]) -> dict[str, str]:
    """Raw settings encoded as the Pulumi engine hands config to the program."""
    from eks_gpu_slicing.settings.stack_files import encode_config

    return encode_config(raw)


# --- Garbage collection ------------------------------------------------------------------------

# Python's cyclic collector runs a collection every 700 new container objects by default, and
# each full one walks every live object: after the first render a test process holds about
# half a million (Pulumi's SDK and its provider types), so collecting took ~18 % of the suite's
# CPU. Collecting every 10,000 finds the same garbage, an order of magnitude less often.
GC_THRESHOLD = (10_000, 10, 10)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_gc_threshold_key] = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLD)


def pytest_unconfigure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):
        # An xdist worker exits next: freezing its objects spares the interpreter's final
        # collections, which walk them all again (~1 s a worker).
        gc.freeze()
    elif _gc_threshold_key in config.stash:
        gc.set_threshold(*config.stash[_gc_threshold_key])


_gc_threshold_key = pytest.StashKey[tuple[int, int, int]]()


# --- Where the Karpenter CRDs come from --------------------------------------------------------

# Set, for the xdist workers, by the process that looked for the CRDs and found none: why.
NO_CRDS_ENV = "EKS_GPU_SLICING_TESTS_NO_KARPENTER_CRDS"


def pytest_configure(config: pytest.Config) -> None:
    """Find the Karpenter CRDs once, before any test (and before xdist starts its workers,
    which inherit the environment): this project's CI keeps a copy beside the repository
    (../shared/reference, which .ci/run's `make check` uses too); otherwise the cache or the
    chart's registry (eks_gpu_slicing/review/karpenter_crds.py). A KARPENTER_CRD_DIR set
    before the tests is used as it is; set empty, it means no local copy (not even the one
    beside the repository). Where none can be had, the tests that need them skip
    (pytest_runtest_setup, pytest_runtest_makereport) and the summary says why once."""
    config.addinivalue_line(
        "markers",
        "needs_karpenter_crds: fails without the Karpenter CRDs in a way other than raising "
        "CrdsUnavailable (e.g. an exit code): skipped in a session that has none",
    )
    if hasattr(config, "workerinput"):  # an xdist worker: its controller looked already
        return
    os.environ.pop(NO_CRDS_ENV, None)  # from a pytest that started this one, if any
    reference = config.rootpath.parent / "shared" / "reference"
    copy_beside = reference / f"karpenter-{facts.KARPENTER_VERSION}"
    if copy_beside.is_dir():
        os.environ.setdefault(CRD_DIR_ENV, str(copy_beside))  # an empty one stays empty
    if os.environ.get(CRD_DIR_ENV):
        return  # a wrong folder fails the tests that need it, naming the variable
    from eks_gpu_slicing.review.karpenter_crds import karpenter_crd_dir

    try:
        # No wait before the one retry: offline, the lookup fails at once.
        os.environ[CRD_DIR_ENV] = str(karpenter_crd_dir(retry_wait_s=0))
    except CrdsUnavailable as exc:
        os.environ[NO_CRDS_ENV] = str(exc)


def no_karpenter_crds() -> str | None:
    """Why this session has no Karpenter CRDs, or None when it has them."""
    return os.environ.get(NO_CRDS_ENV)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked needs_karpenter_crds (one that would see their absence only as an exit
    code) does not run in a session that has none."""
    reason = no_karpenter_crds()
    if reason is not None and item.get_closest_marker("needs_karpenter_crds"):
        pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A test that raised CrdsUnavailable, in a session that has no Karpenter CRDs, is
    skipped, not failed (a test that expects the error catches it and is not touched). In a
    session that has them, the error fails the test as any other."""
    outcome = yield
    reason = no_karpenter_crds()
    report = outcome.get_result()
    if reason is None or report.outcome != "failed" or call.excinfo is None:
        return
    if call.excinfo.errisinstance(CrdsUnavailable):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), (item.location[1] or 0) + 1, f"Skipped: {reason}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    reason = no_karpenter_crds()
    skipped = [
        r for r in terminalreporter.stats.get("skipped", []) if reason and reason in str(r.longrepr)
    ]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} tests that need the Karpenter CRDs skipped: {reason}", yellow=True
        )


# --- Renders shared by the whole session -------------------------------------------------------


class SharedRenders:
    """`render.render(stack, root)`, each stack at most once per session (once per pytest-xdist
    worker): a whole-stack render is the most expensive step of most tests. Read what it
    returns; change a copy (copy.deepcopy) only: `changed()` names each render a test
    changed, and the session's end fails on one."""

    def __init__(self) -> None:
        self._renders: dict[tuple[str, Path], Rendered] = {}
        self._fingerprints: dict[tuple[str, Path], str] = {}

    def __call__(self, stack: str, root: Path | None = None) -> Rendered:
        """The stack file Pulumi.<stack>.yaml in `root` (default: the repository's root)."""
        from eks_gpu_slicing.review import render
        from eks_gpu_slicing.settings.stack_files import ROOT

        key = (stack, Path(root or ROOT).resolve())
        if key not in self._renders:
            rendered = render.render(stack, key[1])
            self._renders[key] = rendered
            self._fingerprints[key] = _fingerprint(rendered)
        return self._renders[key]

    def changed(self) -> list[str]:
        return [
            str(root / f"Pulumi.{stack}.yaml")
            for (stack, root), rendered in self._renders.items()
            if _fingerprint(rendered) != self._fingerprints[(stack, root)]
        ]


def _fingerprint(rendered: Rendered) -> str:
    return hashlib.sha256(pickle.dumps(rendered)).hexdigest()


@pytest.fixture(scope="session")
def renders() -> Iterator[SharedRenders]:
    shared = SharedRenders()
    yield shared
    changed = shared.changed()
    assert not changed, f"a test changed the shared render of {changed}: change a deep copy"


@pytest.fixture(scope="session")
def dev_rendered(renders: SharedRenders) -> Rendered:
    """The dev stack rendered (Pulumi.dev.yaml under mocks): read only, see SharedRenders."""
    return renders("dev")


@pytest.fixture(scope="session")
def dev_deployment(dev_rendered: Rendered) -> Deployment:
    """What the dev stack registers: read only, see SharedRenders."""
    return dev_rendered.deployment


@pytest.fixture(scope="session")
def prod_deployment(renders: SharedRenders) -> Deployment:
    """What the prod stack registers: read only, see SharedRenders."""
    return renders("prod").deployment
