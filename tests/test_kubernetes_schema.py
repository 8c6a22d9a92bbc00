"""Every Kubernetes object the program registers validates against the OpenAPI schema of
the cluster's Kubernetes version, strictly (an unknown or misspelt field is an error, as is
a YAML boolean where Kubernetes wants a string)."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from eks_gpu_slicing.review.manifests import manifest_of, validate_builtin
from eks_gpu_slicing.review.mocks import run_program
from eks_gpu_slicing.settings import load_settings
from tests.conftest import engine_config
from tests.test_program import dev_settings


@pytest.fixture(scope="module")
def everything_on():
    raw = dev_settings()
    raw["benchmark"] = {"enabled": True}
    raw["devicePlugin"] = {"namespace": "gpu-sharing"}
    return raw, run_program(engine_config(raw), stack="dev")


def version_of(raw: dict) -> str:
    """The cluster's Kubernetes version for these settings (dev follows the default)."""
    return load_settings(raw, stack="dev").kubernetes_version


def test_every_kubernetes_object_is_valid_for_the_cluster_version(everything_on):
    raw, deployment = everything_on
    objects = [
        r
        for r in deployment.resources.values()
        if r.type.startswith("kubernetes:")
        and not r.type.startswith("kubernetes:helm.sh")
        # Karpenter's custom resources: checked against their CRDs in test_karpenter.py.
        and not r.type.startswith("kubernetes:karpenter")
    ]
    kinds = {r.type.rsplit(":", 1)[1] for r in objects}
    assert kinds == {"Namespace", "ConfigMap", "Deployment", "Job"}
    for registration in objects:
        validate_builtin(manifest_of(registration), version_of(raw))


def test_the_schema_check_catches_what_the_api_server_would_reject(everything_on):
    raw, deployment = everything_on
    demo = manifest_of(deployment.one("kubernetes:apps/v1:Deployment"))
    # The source design's unquoted `nvidia.com/gpu.present: true`.
    unquoted = copy.deepcopy(demo)
    unquoted["spec"]["template"]["spec"]["nodeSelector"]["nvidia.com/gpu.present"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(unquoted, version_of(raw))
    misspelt = copy.deepcopy(demo)
    misspelt["spec"]["template"]["spec"]["nodeselector"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(misspelt, version_of(raw))
