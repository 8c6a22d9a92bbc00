"""Shared fixtures: the stack files as the engine would pass them, and a minimal config."""

from __future__ import annotations

import copy
import os
from typing import Any

import pytest

from eks_gpu_slicing import facts
from eks_gpu_slicing.review.karpenter_crds import CRD_DIR_ENV
from eks_gpu_slicing.settings.stack_files import ROOT, encode_config, engine_config_of_stack

# Where this project's CI keeps the upstream Karpenter CRDs (beside the repository): the tests
# use that copy, as .ci/run's `make check` does. Elsewhere the CRDs come from the cache or the
# chart's registry (eks_gpu_slicing/review/karpenter_crds.py).
KARPENTER_REFERENCE = ROOT.parent / "shared" / "reference" / f"karpenter-{facts.KARPENTER_VERSION}"
if KARPENTER_REFERENCE.is_dir():
    os.environ.setdefault(CRD_DIR_ENV, str(KARPENTER_REFERENCE))

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
    return engine_config_of_stack("dev")


@pytest.fixture(scope="session")
def prod_config() -> dict[str, str]:
    return engine_config_of_stack("prod")


def engine_config(raw: dict[str, Any]) -> dict[str, str]:
    """Raw settings encoded as the Pulumi engine hands config to the program."""
    return encode_config(raw)
