"""Reading config the way the real engine hands it over."""

from __future__ import annotations

import json

import pulumi
import pytest

from eks_gpu_slicing.settings.loading import OTHER_CONFIG_NAMESPACES
from eks_gpu_slicing.settings.pulumi_config import raw_stack_config, read_settings
from eks_gpu_slicing.settings.stack_files import ROOT, engine_config_of_stack, raw_settings


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


def test_a_misspelt_namespace_is_a_validation_error_at_run_time(monkeypatch, no_runtime_config):
    # The engine passes every key of the stack file; one under a near-miss namespace is
    # read by nothing, so its whole section would silently fall back to the defaults.
    monkeypatch.setenv(
        "PULUMI_CONFIG",
        json.dumps(
            {
                "aws:region": "eu-west-1",
                "pulumi:tags": '{"team": "ml"}',
                "acme:owner": "alice",
                "eks-gpu-slicing:gpuNodeGroups": json.dumps(
                    {
                        "t4": {
                            "instanceType": "g4dn.xlarge",
                            "minSize": 1,
                            "desiredSize": 1,
                            "maxSize": 1,
                        }
                    }
                ),
                "eks-gpu-slice:demoWorkload": '{"enabled": false}',
                "eks_gpu_slicing:benchmark": '{"enabled": true}',
            }
        ),
    )
    with pytest.raises(pulumi.RunError) as caught:
        read_settings()
    problems = str(caught.value)
    for wrong, section in [("eks-gpu-slice", "demoWorkload"), ("eks_gpu_slicing", "benchmark")]:
        assert (
            f"{wrong}:{section}: namespace '{wrong}' is not this project's, so the program "
            f"never reads it; did you mean 'eks-gpu-slicing:{section}'?"
        ) in problems
    assert "aws:region" not in problems and "pulumi:" not in problems and "acme" not in problems


def test_known_namespaces_and_the_projects_own_are_never_reported(monkeypatch, no_runtime_config):
    config = {f"{ns}:someKey": "x" for ns in sorted(OTHER_CONFIG_NAMESPACES)}
    config["eks-gpu-slicing:gpuNodeGroups"] = json.dumps(
        {"t4": {"instanceType": "g4dn.xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 1}}
    )
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(config))
    assert read_settings().gpu_node_groups


# The keys that choose a version: a stack file either pins one (and says so) or follows the
# program's default (and says so), so a changed default's reach is clear from the files.
VERSION_KEYS = [
    ("kubernetesVersion",),
    ("devicePlugin", "chartVersion"),
    ("gpuMetrics", "chartVersion"),
    ("karpenter", "version"),
    ("karpenter", "amiRelease"),
]
STACK_FILES = sorted(ROOT.glob("Pulumi.*.yaml")) + sorted((ROOT / "examples").glob("Pulumi.*.yaml"))


def _set(raw: dict, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(raw, dict) or key not in raw:
            return False
        raw = raw[key]
    return True


@pytest.mark.parametrize("path", STACK_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_stack_file_says_whether_it_pins_versions_or_follows_the_defaults(path):
    stack = path.name.removeprefix("Pulumi.").removesuffix(".yaml")
    raw = raw_settings(engine_config_of_stack(stack, path.parent))
    pinned = [".".join(key) for key in VERSION_KEYS if _set(raw, key)]
    comments = " ".join(
        line.split("#", 1)[1] for line in path.read_text().splitlines() if "#" in line
    ).lower()
    if pinned:
        assert "pinned" in comments, f"{path.name} sets {pinned}: say that they are pinned"
    if len(pinned) < len(VERSION_KEYS):
        assert "follow" in comments and "default" in comments, (
            f"{path.name}: say which versions follow the program's defaults"
        )


def test_dev_follows_the_default_versions_and_prod_pins_its_own():
    dev = raw_settings(engine_config_of_stack("dev"))
    assert not [key for key in VERSION_KEYS if _set(dev, key)]
    prod = raw_settings(engine_config_of_stack("prod"))
    assert _set(prod, ("kubernetesVersion",)) and _set(prod, ("devicePlugin", "chartVersion"))
