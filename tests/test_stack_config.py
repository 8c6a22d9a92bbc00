"""Reading config the way the real engine hands it over."""

from __future__ import annotations

import json

import pulumi
import pytest

from eks_gpu_slicing.stack_config import raw_stack_config, read_settings


@pytest.fixture
def no_runtime_config():
    token = pulumi.runtime.config.CONFIG.set({})
    yield
    pulumi.runtime.config.CONFIG.reset(token)


def test_config_from_the_engine_environment(monkeypatch, no_runtime_config):
    # The Python language host passes the stack's config as JSON in PULUMI_CONFIG.
    monkeypatch.setenv(
        "PULUMI_CONFIG",
        json.dumps(
            {
                "aws:region": "us-west-2",
                "eks-gpu-slicing:kubernetesVersion": "1.35",
                "eks-gpu-slicing:gpuNodeGroup": "{}",
                "eks-gpu-slicing:sharing": '{"default": {"replicas": 4}}',
            }
        ),
    )
    raw = raw_stack_config()
    assert raw == {
        "gpuNodeGroup": {},
        "kubernetesVersion": "1.35",
        "sharing": {"default": {"replicas": 4}},
    }


def test_read_settings_turns_problems_into_a_run_error(monkeypatch, no_runtime_config):
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps({"eks-gpu-slicing:gpuNodeGroup": "{}"}))
    with pytest.raises(pulumi.RunError) as caught:
        read_settings()
    message = str(caught.value)
    assert "gpuNodeGroup: unknown key; did you mean 'gpuNodeGroups'?" in message
    assert "gpuNodeGroups: at least one GPU node group is required" in message
