"""Opt-in: bring up a small dev stack with the Automation API, run `make verify`'s checks on
it, and destroy it even when a step fails. Costs money; needs AWS credentials and the
Pulumi CLI.

    EKS_GPU_SLICING_INTEGRATION=1 AWS_PROFILE=... PULUMI_CONFIG_PASSPHRASE=... \
        .venv/bin/python -m pytest tests/integration -s -n 0
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid

import pytest

from eks_gpu_slicing.review import verify
from eks_gpu_slicing.settings import load_settings
from eks_gpu_slicing.settings.stack_files import ROOT, engine_config_of_stack, raw_settings

ENABLED = os.environ.get("EKS_GPU_SLICING_INTEGRATION") == "1"
HAS_AWS = any(
    os.environ.get(v)
    for v in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
)
pytestmark = pytest.mark.skipif(
    not (ENABLED and HAS_AWS and shutil.which("pulumi")),
    reason="set EKS_GPU_SLICING_INTEGRATION=1, with AWS credentials and the Pulumi CLI",
)


def test_dev_stack_comes_up_shares_gpus_and_goes_away():
    from kubernetes import config as kube_config
    from pulumi import automation as auto

    name = f"it-{uuid.uuid4().hex[:8]}"
    backend = os.environ.get("PULUMI_BACKEND_URL") or f"file://{tempfile.mkdtemp()}"
    os.environ.setdefault("PULUMI_CONFIG_PASSPHRASE", "integration-test")
    stack = auto.create_stack(
        stack_name=name,
        work_dir=str(ROOT),
        opts=auto.LocalWorkspaceOptions(env_vars={"PULUMI_BACKEND_URL": backend}),
    )
    try:
        # dev's config, but one small GPU group and its own cluster name.
        config = engine_config_of_stack("dev")
        config["eks-gpu-slicing:clusterName"] = name
        config["eks-gpu-slicing:gpuNodeGroups"] = (
            '{"t4": {"instanceType": "g4dn.xlarge", "minSize": 1, "desiredSize": 1, '
            '"maxSize": 1, "sharing": "default"}}'
        )
        stack.set_all_config({k: auto.ConfigValue(v) for k, v in config.items()})
        outputs = stack.up(on_output=print).outputs
        api = kube_config.new_client_from_config_dict(
            verify.kubeconfig_dict(outputs["kubeconfig"].value)
        )
        settings = load_settings(raw_settings(config), stack=name)
        state = verify.collect(
            api,
            namespace=settings.device_plugin.namespace,
            expected=verify.expectations(settings),
        )
        results = verify.verify(state)
        print(verify.table(results))
        assert [r for r in results if not r.ok] == []
    finally:
        stack.destroy(on_output=print)
        stack.workspace.remove_stack(name)
