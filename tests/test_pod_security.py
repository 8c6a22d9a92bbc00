"""The stack's own workloads meet the `restricted` Pod Security Standard, the namespaces it
creates enforce what their workloads need, and checkov finds nothing beyond the accepted list."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from eks_gpu_slicing.builders import pod_security
from eks_gpu_slicing.review import pod_security_checks
from eks_gpu_slicing.review.manifests import is_kubernetes_object, manifest_of
from eks_gpu_slicing.review.mocks import Deployment, run_program
from eks_gpu_slicing.settings import load_settings
from eks_gpu_slicing.settings.stack_files import ROOT, engine_config_of_stack
from tests.conftest import MINIMAL, engine_config

NAMESPACE = "kubernetes:core/v1:Namespace"
WORKLOAD_KINDS = ("Deployment", "Job")
ENFORCE = f"{pod_security.POD_SECURITY_LABEL}/enforce"


@pytest.fixture(scope="module")
def dev_with_benchmark() -> Deployment:
    """The dev stack (demo on, GPU metrics on, Karpenter in kube-system) with the benchmark."""
    config = dict(engine_config_of_stack("dev"))
    config["eks-gpu-slicing:benchmark"] = json.dumps({"enabled": True})
    return run_program(config, stack="dev")


def workloads(deployment: Deployment) -> list[dict[str, Any]]:
    manifests = [
        manifest_of(r) for r in deployment.resources.values() if is_kubernetes_object(r.type)
    ]
    return [m for m in manifests if m["kind"] in WORKLOAD_KINDS]


def pod_spec(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["spec"]["template"]["spec"]


def namespace_labels(deployment: Deployment) -> dict[str, dict[str, str]]:
    return {
        n.inputs["metadata"]["name"]: n.inputs["metadata"]["labels"]
        for n in deployment.of_type(NAMESPACE)
    }


# --- The workloads ------------------------------------------------------------------------------


def test_demo_and_benchmark_meet_restricted(dev_with_benchmark):
    found = workloads(dev_with_benchmark)
    assert sorted({m["kind"] for m in found}) == ["Deployment", "Job"]
    for manifest in found:
        spec = pod_spec(manifest)
        assert pod_security_checks.restricted_problems(spec) == [], manifest["metadata"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsUser"] == pod_security.WORKLOAD_UID > 10000
        for container in spec["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
            assert {"cpu", "memory"} <= set(resources["limits"]), container["name"]
            # Read-only root: HOME (CUDA's and PyTorch's caches) is the writable scratch dir.
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            env = {e["name"]: e["value"] for e in container["env"]}
            assert env["HOME"] == pod_security.SCRATCH_DIR
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts[pod_security.SCRATCH_DIR]]


def test_workloads_stay_out_of_the_default_namespace(dev_with_benchmark):
    for manifest in workloads(dev_with_benchmark):
        assert manifest["metadata"]["namespace"] not in ("", "default")
    settings = load_settings(MINIMAL, stack="dev")
    assert settings.demo_workload.namespace == "gpu-demo"
    assert settings.benchmark.namespace == "gpu-benchmark"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda s: s["securityContext"].pop("seccompProfile"), "seccompProfile"),
        (lambda s: s["securityContext"].update(runAsNonRoot=False), "runAsNonRoot"),
        (lambda s: s["securityContext"].update(runAsUser=0), "runAsUser is 0"),
        (lambda s: s.update(hostIPC=True), "hostIPC"),
        (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
        (
            lambda s: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].update(capabilities={"drop": []}),
            "drop ALL",
        ),
        (
            lambda s: s["containers"][0]["securityContext"]["capabilities"].update(
                add=["SYS_ADMIN"]
            ),
            "SYS_ADMIN",
        ),
        (lambda s: s["containers"][0]["securityContext"].update(privileged=True), "privileged"),
    ],
)
def test_each_restricted_control_is_checked(dev_with_benchmark, change, problem):
    spec = copy.deepcopy(pod_spec(workloads(dev_with_benchmark)[0]))
    change(spec)
    assert any(problem in p for p in pod_security_checks.restricted_problems(spec))


# --- The namespaces ------------------------------------------------------------------------------


def test_created_namespaces_enforce_what_their_workloads_need(dev_with_benchmark):
    labels = namespace_labels(dev_with_benchmark)
    # kube-system (device plugin, Karpenter) is built in: never created, never labelled.
    assert sorted(labels) == ["gpu-benchmark", "gpu-demo", "gpu-monitoring"]
    for namespace, level in {
        "gpu-demo": "restricted",
        "gpu-benchmark": "restricted",
        # dcgm-exporter: root with SYS_ADMIN, hostPID, a hostPath socket.
        "gpu-monitoring": "privileged",
    }.items():
        assert labels[namespace] == {
            "app.kubernetes.io/part-of": "eks-gpu-slicing",
            **pod_security.namespace_labels(level),
        }
        assert labels[namespace][ENFORCE] == level


def shared(**sections: dict[str, Any]) -> dict[str, dict[str, str]]:
    raw = {
        "gpuNodeGroups": {
            "t4": {"instanceType": "g4dn.xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 1}
        },
        **sections,
    }
    return namespace_labels(run_program(engine_config(raw), stack="dev"))


def test_a_namespace_shared_with_a_privileged_add_on_is_not_restricted():
    # The demo placed with the device plugin: its namespace must let the plugin run.
    labels = shared(
        devicePlugin={"namespace": "gpu"}, demoWorkload={"enabled": True, "namespace": "gpu"}
    )
    assert labels["gpu"][ENFORCE] == "privileged"


def test_a_karpenter_namespace_enforces_baseline_and_reports_restricted():
    labels = shared(karpenter={"enabled": True, "namespace": "karpenter", "nodePools": {}})
    assert labels["karpenter"] == {
        "app.kubernetes.io/part-of": "eks-gpu-slicing",
        ENFORCE: "baseline",
        f"{pod_security.POD_SECURITY_LABEL}/warn": "restricted",
        f"{pod_security.POD_SECURITY_LABEL}/audit": "restricted",
    }


@pytest.mark.parametrize(
    "sections",
    [
        {},
        {"demoWorkload": {"enabled": True}, "benchmark": {"enabled": True}},
        {"gpuMetrics": {"enabled": True}, "demoWorkload": {"enabled": True, "namespace": "x"}},
        {"karpenter": {"enabled": True, "namespace": "k"}, "devicePlugin": {"namespace": "k"}},
    ],
)
def test_every_namespace_the_stack_uses_has_a_level(sections):
    settings = load_settings({**MINIMAL, **sections}, stack="dev")
    levels = pod_security.namespace_levels(pod_security.workload_placements(settings))
    assert set(levels) == settings.namespaces
    assert set(levels.values()) <= set(pod_security.LEVELS)


def test_the_restricted_level_is_only_given_to_workloads_that_meet_it(dev_with_benchmark):
    kinds = {"Deployment": "demo", "Job": "benchmark"}
    for manifest in workloads(dev_with_benchmark):
        level, _ = pod_security.WORKLOAD_LEVELS[kinds[manifest["kind"]]]
        assert level == "restricted"
        assert pod_security_checks.restricted_problems(pod_spec(manifest)) == []


# --- checkov ----------------------------------------------------------------------------------


def hardening_dropped(manifest: dict[str, Any]) -> dict[str, Any]:
    """A copy of a workload without its pod and container security contexts, with the
    service-account token mounted, in the default namespace."""
    manifest = copy.deepcopy(manifest)
    spec = pod_spec(manifest)
    del spec["securityContext"], spec["automountServiceAccountToken"]
    spec["containers"][0].pop("securityContext")
    manifest["metadata"]["namespace"] = "default"
    return manifest


@pytest.fixture(scope="module")
def checkov_findings(dev_with_benchmark) -> dict[str, list[pod_security_checks.CheckovFinding]]:
    """checkov's findings on the stack's workloads ("stack") and on the demo with its
    hardening dropped ("dropped"), from one checkov run: its start-up is most of its time.
    checkov comes from its own virtualenv (its pins conflict with pulumi's and kubernetes'),
    which `make test` creates before pytest runs; a test never builds it."""
    executable = pod_security_checks.checkov_executable(ROOT)
    if executable is None:
        pytest.fail(
            "checkov not found: run `make checkov-venv` (`make test` does), or set CHECKOV to "
            "a checkov executable",
            pytrace=False,
        )
    found = workloads(dev_with_benchmark)
    return pod_security_checks.run_checkov_on_sets(
        executable, {"stack": found, "dropped": [hardening_dropped(found[0])]}
    )


def test_checkov_finds_nothing_beyond_the_accepted_exceptions(checkov_findings):
    findings = checkov_findings["stack"]
    assert [str(f) for f in pod_security_checks.unaccepted(findings)] == []
    # No stale exceptions: each accepted one is still found, with its reason written down.
    assert {f.check_id for f in findings} == set(pod_security_checks.ACCEPTED_CHECKOV_FINDINGS)
    assert all(
        len(reason) > 40 for reason in pod_security_checks.ACCEPTED_CHECKOV_FINDINGS.values()
    )


def test_checkov_reports_a_workload_that_drops_the_hardening(checkov_findings):
    found = {f.check_id for f in pod_security_checks.unaccepted(checkov_findings["dropped"])}
    # root, escalation, capabilities, seccomp, token, the default namespace
    assert {"CKV_K8S_23", "CKV_K8S_20", "CKV_K8S_37", "CKV_K8S_31", "CKV_K8S_38", "CKV_K8S_21"} <= (
        found
    )
