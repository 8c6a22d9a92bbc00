"""The GitHub workflows: actions pinned to full commit SHAs, AWS only through OIDC, the
offline job without secrets. (actionlint, where installed, runs from .ci/run.)"""

from __future__ import annotations

import re

import pytest
import yaml

from eks_gpu_slicing.stack_files import ROOT

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")


def steps(workflow):
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_and_aws_uses_oidc(path):
    text = path.read_text()
    workflow = yaml.safe_load(text)
    assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text
    for name, job, step in steps(workflow):
        if "uses" in step:
            assert PINNED.match(step["uses"]), step["uses"]
        if step.get("uses", "").startswith("aws-actions/configure-aws-credentials@"):
            assert job["permissions"]["id-token"] == "write", name
            assert "role-to-assume" in step["with"]


def test_the_pull_request_job_needs_no_secrets_and_checks_every_stack():
    workflow = yaml.safe_load((ROOT / ".github/workflows/pull-request.yml").read_text())
    offline = workflow["jobs"]["offline"]
    assert "secrets." not in yaml.safe_dump(offline)
    assert "make check" in yaml.safe_dump(offline)
    preview = workflow["jobs"]["preview"]
    assert preview["if"] == "vars.AWS_ROLE_ARN != ''"
    stacks = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
    assert sorted(preview["strategy"]["matrix"]["stack"]) == stacks


def test_prod_deploys_behind_its_environment():
    workflow = yaml.safe_load((ROOT / ".github/workflows/deploy.yml").read_text())
    # PyYAML reads the `on:` key as True.
    assert workflow[True]["push"]["branches"] == ["main"]
    job = workflow["jobs"]["up"]
    assert job["environment"] == "${{ matrix.stack }}" and job["strategy"]["max-parallel"] == 1
    assert job["strategy"]["matrix"]["stack"][-1] == "prod"
