"""`make verify` over recorded API responses: a healthy cluster passes; each common failure
is reported on the right node and check, and makes the command exit non-zero."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from eks_gpu_slicing import verify

FIXTURES = Path(__file__).parent / "fixtures" / "verify"


def state(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def failures(results):
    return [(r.check, r.subject.split(".", 1)[0]) for r in results if not r.ok]


@pytest.mark.parametrize("name", ["healthy", "karpenter-and-metrics"])
def test_a_working_cluster_passes_every_check(name):
    results = verify.verify(state(name))
    assert failures(results) == []
    checks = {r.check for r in results}
    assert {"device plugin", "config label", "allocatable", "mps daemon", "demo sharing"} <= checks
    if name == "karpenter-and-metrics":
        assert {"karpenter", "node overlay", "gpu metrics"} <= checks


@pytest.mark.parametrize(
    ("name", "expected", "words"),
    [
        ("plugin-not-scheduled", ("device plugin", "ip-10-0-1-10"), "no device plugin pod"),
        ("replicas-not-applied", ("allocatable", "ip-10-0-1-10"), "replicas not applied"),
        ("wrong-profile", ("config label", "ip-10-0-2-20"), "expected 'small-slices'"),
        ("mps-daemon-missing", ("mps daemon", "ip-10-0-3-30"), "no MPS control daemon"),
    ],
)
def test_each_recorded_failure_is_named(name, expected, words, capsys):
    results = verify.verify(state(name))
    assert failures(results) == [expected]
    assert any(words in r.detail for r in results if not r.ok)
    assert verify.main(["dev", "--state", str(FIXTURES / f"{name}.json")]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_healthy_exit_zero(capsys):
    assert verify.main(["dev", "--state", str(FIXTURES / "healthy.json")]) == 0
    assert "0 failed" in capsys.readouterr().out


def test_bottlerocket_nodes_use_the_built_in_plugin():
    s = state("plugin-not-scheduled")
    s["nodes"][0]["status"]["nodeInfo"]["osImage"] = "Bottlerocket OS 1.50.0 (aws-k8s-1.35-nvidia)"
    results = verify.verify(s)
    plugin = next(r for r in results if r.check == "device plugin" and "10-0-1-10" in r.subject)
    assert plugin.ok and "Bottlerocket" in plugin.detail


def test_demo_pods_on_different_gpus_or_not_running_fail():
    s = state("healthy")
    for i, name in enumerate(sorted(s["logs"])):
        s["logs"][name] = f"GPU 0: Tesla T4 (UUID: GPU-0000000{i}-0000-0000-0000-000000000000)\n"
    s["pods"][-1]["status"]["phase"] = "Pending"
    assert set(failures(verify.verify(s))) == {("demo pods", "3 pods"), ("demo sharing", "3 pods")}


def test_karpenter_and_exporter_failures():
    s = state("karpenter-and-metrics")
    s["karpenter"][0]["status"]["readyReplicas"] = 0
    s["nodeOverlays"][0]["status"]["conditions"][0]["status"] = "False"
    s["metrics"]["dcgm-exporter-h2j4k"] = 'DCGM_FI_DEV_GPU_UTIL{gpu="0",pod=""} 37\n'
    assert set(failures(verify.verify(s))) == {
        ("karpenter", "controller"),
        ("node overlay", "gpu-g6-1gpu"),
        ("gpu metrics", "dcgm-exporter-h2j4k"),
    }
    s = copy.deepcopy(state("karpenter-and-metrics"))
    s["nodeOverlays"] = []
    assert failures(verify.verify(s)) == [("node overlay", "-")]


def test_renamed_and_mps_profiles_advertise_their_resource():
    config = {
        "sharing": {
            "timeSlicing": {
                "renameByDefault": True,
                "resources": [{"name": "nvidia.com/gpu", "replicas": 4}],
            }
        }
    }
    assert verify.profile_capacity(config) == ("nvidia.com/gpu.shared", 4, "time-slicing")
    both = {
        "sharing": {
            **config["sharing"],
            "mps": {"resources": [{"name": "nvidia.com/gpu", "replicas": 2}]},
        }
    }
    assert verify.profile_capacity(both) == ("nvidia.com/gpu", 2, "mps")
    assert verify.profile_capacity({"version": "v1"}) == ("nvidia.com/gpu", 1, "none")


def test_the_kubeconfig_output_is_read_as_json_text_or_a_mapping():
    assert verify.kubeconfig_dict('{"kind": "Config"}') == {"kind": "Config"}
    assert verify.kubeconfig_dict({"kind": "Config"}) == {"kind": "Config"}
