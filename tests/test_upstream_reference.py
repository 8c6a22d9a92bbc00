"""Our encoded facts checked against upstream data in ../shared/reference (the NVIDIA
device plugin chart 0.20.0's values and the value paths its templates read). The reference
files are not part of this repository; where they are absent these tests are skipped, and
the facts they guard are still used by every other test."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.device_plugin import helm_values
from eks_gpu_slicing.builders.workloads import gpu_node_labels
from eks_gpu_slicing.review.helm import value_paths
from tests.k8s_semantics import affinity_matches, tolerates

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
CHART = REFERENCE / f"nvidia-device-plugin-{facts.DEVICE_PLUGIN_CHART_VERSION}"

pytestmark = pytest.mark.skipif(not CHART.is_dir(), reason=f"no upstream reference at {CHART}")


def chart_value_paths() -> set[str]:
    """Every value path the chart's templates read, its NFD sub-chart's (prefixed `nfd.`)
    included."""
    return {
        line.strip()
        for name in ("values-paths.txt", "nfd-0.19.0-values-paths.txt")
        for line in (CHART / name).read_text().splitlines()
        if line.strip()
    }


def chart_defaults() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def test_every_value_path_we_know_is_read_by_the_chart_templates():
    assert chart_value_paths() >= facts.DEVICE_PLUGIN_VALUE_PATHS


def test_every_value_we_set_is_read_by_the_chart_templates():
    values = helm_values(config_map_name="cm", default_profile="default", checksum="0")
    assert set(value_paths(values, facts.DEVICE_PLUGIN_VALUE_PATHS)) <= chart_value_paths()


def test_chart_default_affinity_admits_our_gpu_nodes_and_not_cpu_nodes():
    affinity = chart_defaults()["affinity"]
    assert affinity_matches(affinity, gpu_node_labels("default"))
    assert not affinity_matches(affinity, {"kubernetes.io/os": "linux"})


def test_chart_defaults_we_rely_on():
    defaults = chart_defaults()
    assert defaults["config"]["name"] == "" and defaults["config"]["map"] == {}
    assert defaults["gfd"]["enabled"] is False
    assert defaults["allowDefaultNamespace"] is False
    # The NFD worker only tolerates `nvidia.com/gpu=present`, not our `=true` taint: one more
    # reason we keep gfd (and with it NFD) off.
    worker = defaults["nfd"]["worker"]["tolerations"]
    assert not tolerates(
        worker, [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]
    )
