"""The GitHub workflows: actions pinned to full commit SHAs, AWS only through OIDC, the
offline job without secrets, every stack run from a runner that can reach its API endpoint,
the policy pack's virtualenv created before the pack runs, a state backend required, and
zizmor and the workflow schema clean (as `.ci/run` checks them)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from eks_gpu_slicing.settings.stack_files import ROOT, settings_of_stack

WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")
STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))
# A stack whose API endpoint is private is reachable only from its VPC or a connected network.
PRIVATE_STACKS = [s for s in STACKS if not settings_of_stack(s).cluster_endpoint.public_access]
CHECKOUT = "actions/checkout@"
# Labels GitHub gives its hosted runners: none of them is inside anyone's VPC.
HOSTED_LABEL = re.compile(r"^(ubuntu|windows|macos)-")
# The pulumi/actions v7.0.0 inputs these workflows rely on (action.yml at tag v7.0.0,
# 8e5e406f4007fca908480587cb9893c07090f58d): a misspelt input is silently ignored.
PULUMI_ACTIONS_INPUTS = {
    "command",
    "stack-name",
    "cloud-url",
    "upsert",
    "diff",
    "comment-on-pr",
    "policyPacks",
}


def steps(workflow):
    for name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield name, job, step


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def pulumi_jobs(workflow: dict) -> dict[str, dict]:
    return {
        name: job
        for name, job in workflow["jobs"].items()
        if any(s.get("uses", "").startswith("pulumi/actions@") for s in job.get("steps", []))
    }


def pulumi_step(job: dict) -> dict:
    return next(s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@"))


def run_step(step: dict, env: dict[str, str]) -> subprocess.CompletedProcess:
    """A step's `run:` script under bash, as a GitHub Linux runner runs it."""
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", step["run"]],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


# --- The few GitHub expressions the workflows use, evaluated ---------------------------------

_EXPRESSION = re.compile(r"^\$\{\{\s*(.*?)\s*\}\}$", re.S)


def evaluate(value, contexts: dict[str, dict[str, str]]):
    """`${{ ... }}` with `&&`, `||`, `!`, `==`, `!=`, string literals, `fromJSON` and
    `inputs.x`/`vars.X`/`matrix.x`, as GitHub evaluates them; other values as they are."""
    if not isinstance(value, str) or not (match := _EXPRESSION.match(value)):
        return value
    text = match.group(1)
    text = re.sub(r"\bneeds\.([\w-]+)\.outputs\.([\w-]+)", r'ctx("needs", "\1.\2")', text)
    text = re.sub(r"\b(inputs|vars|matrix)\.([\w-]+)", r'ctx("\1", "\2")', text)
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)

    def walk(node):
        match node:
            case ast.Expression(body=body):
                return walk(body)
            case ast.Constant(value=str() as constant):
                return constant
            case ast.BoolOp(op=ast.And(), values=values):
                result = None
                for v in values:
                    result = walk(v)
                    if not result:
                        return result
                return result
            case ast.BoolOp(op=ast.Or(), values=values):
                result = None
                for v in values:
                    result = walk(v)
                    if result:
                        return result
                return result
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not walk(operand)
            case ast.Compare(left=left, ops=[op], comparators=[right]):
                equal = walk(left) == walk(right)
                return equal if isinstance(op, ast.Eq) else not equal
            case ast.Call(func=ast.Name(id="ctx"), args=[ast.Constant(c), ast.Constant(k)]):
                return contexts.get(c, {}).get(k, "")
            case ast.Call(func=ast.Name(id="fromJSON"), args=[arg]):
                return json.loads(walk(arg))
        raise AssertionError(f"expression not understood by this test: {value}")

    return walk(ast.parse(text, mode="eval"))


def runner_labels(job: dict, stack: str, variables: dict[str, str]) -> list[str]:
    """The labels `stack`'s run of this job asks for (raises where GitHub would fail the job
    before it starts, for example `fromJSON('')`)."""
    contexts = {"vars": variables, "inputs": {"stack": stack}}
    include = job.get("strategy", {}).get("matrix", {}).get("include")
    if include is not None:
        (entry,) = [e for e in include if e["stack"] == stack]
        contexts["matrix"] = {k: evaluate(v, contexts) for k, v in entry.items()}
    labels = evaluate(job["runs-on"], contexts)
    return [labels] if isinstance(labels, str) else list(labels)


def stacks_of(workflow: dict, job: dict) -> list[str]:
    include = job.get("strategy", {}).get("matrix", {}).get("include")
    if include is not None:
        return [e["stack"] for e in include]
    stack = pulumi_step(job)["with"]["stack-name"]
    if "${{" not in stack:  # a job of its own for one stack
        return [stack]
    return workflow[True]["workflow_dispatch"]["inputs"]["stack"]["options"]


def needed(workflow: dict, name: str) -> set[str]:
    """Every job `name` waits for, directly or through others."""
    needs = workflow["jobs"][name].get("needs", [])
    direct = {needs} if isinstance(needs, str) else set(needs)
    return direct.union(*(needed(workflow, n) for n in direct))


def runner_checks(workflow: dict, name: str, variable: str) -> list[dict]:
    """The steps, in jobs `name` waits for, that check the runner variable."""
    return [
        step
        for job in sorted(needed(workflow, name))
        for step in workflow["jobs"][job]["steps"]
        if "run" in step and variable in step.get("env", {})
    ]


# --- Tests ------------------------------------------------------------------------------------


def test_prod_is_a_private_endpoint_stack():
    # What the runner tests below rest on: if no stack file is private they test nothing.
    assert "prod" in PRIVATE_STACKS and "dev" not in PRIVATE_STACKS


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


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_checkout_leaves_no_token_behind(path):
    # Nothing after checkout pushes or fetches: the render diff's `git worktree add` reads the
    # base branch that `fetch-depth: 0` already fetched.
    checkouts = [s for _, _, s in steps(load(path)) if s.get("uses", "").startswith(CHECKOUT)]
    assert checkouts
    for step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_stack_runs_where_its_api_endpoint_is_reachable(path):
    workflow = load(path)
    jobs = pulumi_jobs(workflow)
    assert jobs
    assert sorted(s for job in jobs.values() for s in stacks_of(workflow, job)) == STACKS
    self_hosted = ["self-hosted", "in-vpc"]
    for name, job in jobs.items():
        for stack in stacks_of(workflow, job):
            variable = f"{stack.upper()}_RUNNER_LABELS"
            configured = runner_labels(job, stack, {variable: json.dumps(self_hosted)})
            if stack in PRIVATE_STACKS:
                assert configured == self_hosted, (name, stack)
                # Not configured: the job cannot start, rather than run on a hosted runner.
                with pytest.raises(json.JSONDecodeError):
                    runner_labels(job, stack, {})
            else:
                assert configured == runner_labels(job, stack, {}), (name, stack)
                assert all(HOSTED_LABEL.match(label) for label in configured), (name, stack)


# Workflows that run every stack at once (destroy runs the one stack it is given, and checks
# the runner only for a private one: test_destroy_checks_the_runner_only_for_a_private_stack).
EVERY_STACK_WORKFLOWS = [p for p in WORKFLOWS if "workflow_dispatch" not in load(p)[True]]


@pytest.mark.parametrize("path", EVERY_STACK_WORKFLOWS, ids=lambda p: p.name)
def test_a_public_stack_runs_without_a_private_stacks_runner(path):
    """A repository with AWS_ROLE_ARN and no PROD_RUNNER_LABELS still previews and deploys
    dev: no public stack's job waits for a private stack's runner check."""
    workflow = load(path)
    for name, job in pulumi_jobs(workflow).items():
        stacks = set(stacks_of(workflow, job))
        if stacks <= set(PRIVATE_STACKS):
            continue
        # A job (matrix) shared with a private stack shares its runner check's fate.
        assert not stacks & set(PRIVATE_STACKS), name
        for private in PRIVATE_STACKS:
            assert not runner_checks(workflow, name, f"{private.upper()}_RUNNER_LABELS"), name
        contexts = {"vars": {"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/ci"}}
        assert evaluate(f"${{{{ {job.get('if', 'true')} }}}}", contexts), name


def outputs_of(step: dict, variable: str, value: str, tmp_path: Path):
    """(result, the step's $GITHUB_OUTPUT as a dict) for a run with `variable` = value."""
    out = tmp_path / "github_output"
    out.write_text("")
    result = run_step(step, {variable: value, "GITHUB_OUTPUT": str(out)})
    return result, dict(line.split("=", 1) for line in out.read_text().splitlines())


@pytest.mark.skipif(shutil.which("jq") is None, reason="the runner check uses jq, as on GitHub")
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_a_missing_or_hosted_runner_for_a_private_stack_stops_its_leg(path, tmp_path):
    """A hosted label fails the private stack's leg; no label at all fails it where it
    deploys and skips it, with a warning, in pull requests (whose checks would otherwise be
    red in every repository without a runner)."""
    workflow = load(path)
    for name, job in pulumi_jobs(workflow).items():
        for stack in set(stacks_of(workflow, job)) & set(PRIVATE_STACKS):
            variable = f"{stack.upper()}_RUNNER_LABELS"
            (check,) = runner_checks(workflow, name, variable)
            assert check["env"][variable] == f"${{{{ vars.{variable} }}}}"
            for bad in ["not json", '"ubuntu-latest"', '["ubuntu-24.04"]', "[]"]:
                result, _ = outputs_of(check, variable, bad, tmp_path)
                assert result.returncode != 0, (name, bad)
                assert f"Pulumi.{stack}.yaml" in result.stdout and variable in result.stdout
            missing, outputs = outputs_of(check, variable, "", tmp_path)
            assert f"Pulumi.{stack}.yaml" in missing.stdout and variable in missing.stdout
            if path.name == "pull-request.yml":
                assert missing.returncode == 0 and "::warning" in missing.stdout, name
                assert not leg_runs(workflow, name, check, outputs), name
            else:
                assert missing.returncode != 0 and "::error" in missing.stdout, name
            for good in ['["self-hosted", "prod-vpc"]', '"prod-vpc"']:
                result, outputs = outputs_of(check, variable, good, tmp_path)
                assert result.returncode == 0, (name, good)
                assert leg_runs(workflow, name, check, outputs), (name, good)


def leg_runs(workflow: dict, name: str, check: dict, outputs: dict[str, str]) -> bool:
    """Whether job `name` runs after its runner check succeeded with these step outputs."""
    job = workflow["jobs"][name]
    condition = job.get("if", "true")
    if ".outputs." not in condition:
        return True  # it waits for the check (`needs`) and nothing else about it
    (checker,) = [n for n in needed(workflow, name) if check in workflow["jobs"][n]["steps"]]
    job_outputs = {
        f"{checker}.{key}": evaluate(value, {}) if "steps." not in value else outputs.get(key, "")
        for key, value in workflow["jobs"][checker].get("outputs", {}).items()
    }
    contexts = {"vars": {"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/ci"}, "needs": job_outputs}
    return bool(evaluate(f"${{{{ {condition} }}}}", contexts))


def test_destroy_checks_the_runner_only_for_a_private_stack_and_then_runs():
    workflow = load(ROOT / ".github/workflows/destroy.yml")
    destroy, runners = workflow["jobs"]["destroy"], workflow["jobs"]["runners"]
    for stack in STACKS:
        contexts = {"inputs": {"stack": stack}}
        assert evaluate(f"${{{{ {runners['if']} }}}}", contexts) == (stack in PRIVATE_STACKS)
    # A skipped check must not skip the destroy; a failed one must.
    assert "!cancelled()" in destroy["if"] and "needs.runners.result != 'failure'" in destroy["if"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_an_empty_backend_variable_fails_before_pulumi_runs(path):
    # pulumi/actions logs in with `pulumi login`: with no URL that is Pulumi Cloud.
    for name, job in pulumi_jobs(load(path)).items():
        pulumi = pulumi_step(job)
        assert pulumi["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
        assert pulumi["with"]["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
        before = job["steps"][: job["steps"].index(pulumi)]
        (check,) = [s for s in before if "PULUMI_BACKEND_URL" in s.get("env", {})]
        assert check["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
        empty = run_step(check, {"PULUMI_BACKEND_URL": ""})
        assert empty.returncode != 0 and "PULUMI_BACKEND_URL" in empty.stdout, name
        assert run_step(check, {"PULUMI_BACKEND_URL": "s3://state/eks"}).returncode == 0


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_only_up_creates_a_missing_stack(path):
    for name, job in pulumi_jobs(load(path)).items():
        inputs = pulumi_step(job)["with"]
        assert set(inputs) <= PULUMI_ACTIONS_INPUTS, name
        # A preview or destroy of a stack that does not exist is a mistake, not a new stack.
        assert inputs.get("upsert", False) is (inputs["command"] == "up"), name


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_the_policy_packs_virtualenv_exists_before_the_pack_runs(path):
    for name, job in pulumi_jobs(load(path)).items():
        pulumi = pulumi_step(job)
        pack = pulumi["with"].get("policyPacks")
        if pack is None:
            continue
        assert (ROOT / pack / "PulumiPolicy.yaml").is_file()
        before = job["steps"][: job["steps"].index(pulumi)]
        assert any(s.get("run") == "make policy-venv" for s in before), name


@pytest.mark.parametrize("target", ["preview", "up"])
def test_make_preview_and_up_run_the_policy_pack_from_its_own_virtualenv(target):
    pack = yaml.safe_load((ROOT / "policy" / "PulumiPolicy.yaml").read_text())
    venv = f"policy/{pack['runtime']['options']['virtualenv']}"
    plan = subprocess.run(
        ["make", "--dry-run", "--always-make", "--no-print-directory", target, "STACK=dev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    create = plan.index(f"test -x {venv}/bin/python || python3 -m venv {venv}")
    install = plan.index(f"{venv}/bin/python -m pip install -q -r policy/requirements.txt")
    (pulumi,) = [i for i, line in enumerate(plan) if line.startswith(f"pulumi {target} ")]
    assert create < install < pulumi
    assert plan[pulumi].endswith("--policy-pack policy")


def test_the_pull_request_job_needs_no_secrets_and_checks_every_stack():
    workflow = load(ROOT / ".github/workflows/pull-request.yml")
    offline = workflow["jobs"]["offline"]
    assert "secrets." not in yaml.safe_dump(offline)
    previews = pulumi_jobs(workflow)
    for name, preview in previews.items():
        assert preview["if"].startswith("vars.AWS_ROLE_ARN != ''")
        assert "offline" in needed(workflow, name)
    assert sorted(s for job in previews.values() for s in stacks_of(workflow, job)) == STACKS


def test_the_offline_job_and_ci_run_check_the_same_things():
    offline = load(ROOT / ".github/workflows/pull-request.yml")["jobs"]["offline"]
    job_script = "\n".join(s.get("run", "") for s in offline["steps"])
    ci_run = (ROOT / ".ci" / "run").read_text()
    for command in [
        "make test",
        'make check STACK="$stack"',
        'make check STACK="$stack" STACK_DIR=examples',
        "make lint-workflows",
    ]:
        assert command in job_script and command in ci_run, command
    assert "python3 -m venv .venv" in ci_run and "actionlint" not in ci_run


def _python_versions() -> list[str]:
    """The Pythons pyproject.toml's classifiers list, oldest first."""
    classifiers = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["classifiers"]
    prefix = "Programming Language :: Python :: "
    found = [c.removeprefix(prefix) for c in classifiers if c.startswith(prefix + "3.")]
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def test_the_tests_run_on_the_oldest_and_the_newest_supported_python():
    """The README allows 3.11 and later; a schema that depended on the version (Python 3.13
    dedents docstrings) went unseen while CI ran 3.11 only."""
    versions = _python_versions()
    oldest, newest = versions[0], versions[-1]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == f">={oldest}"
    workflow = load(ROOT / ".github/workflows/pull-request.yml")
    tested = set()
    for _, job, step in steps(workflow):
        if "make test" in step.get("run", ""):
            (setup,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/setup-")]
            assert setup["uses"].startswith("actions/setup-python@")
            tested.add(setup["with"]["python-version"])
    assert tested == {oldest, newest}
    ci_run = (ROOT / ".ci" / "run").read_text()
    assert f"NEWEST_PYTHON=${{NEWEST_PYTHON:-python{newest}}}" in ci_run
    assert 'make test PYTHON="$NEWEST_PYTHON"' in ci_run
    assert "grep -E '^" + newest.replace(".", "\\.") + "(" in ci_run  # pyenv's install of it
    readme = (ROOT / "README.md").read_text()
    assert f"Python {oldest} or later" in readme and newest in readme


def test_prod_deploys_behind_its_environment_after_dev():
    workflow = load(ROOT / ".github/workflows/deploy.yml")
    # PyYAML reads the `on:` key as True.
    assert workflow[True]["push"]["branches"] == ["main"]
    jobs = {stacks_of(workflow, job)[0]: (name, job) for name, job in pulumi_jobs(workflow).items()}
    assert sorted(jobs) == STACKS
    for stack, (_, job) in jobs.items():
        assert job["environment"] == stack
    # prod waits for dev (one deploy at a time, dev first); dev waits for nothing of prod's.
    assert jobs["dev"][0] in needed(workflow, jobs["prod"][0])
    assert jobs["prod"][0] not in needed(workflow, jobs["dev"][0])


def test_zizmor_finds_nothing_at_medium_or_above_and_the_schema_holds():
    # Installed beside the interpreter running the tests (requirements-dev.txt).
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    tools = {t: shutil.which(t, path=path) for t in ("zizmor", "check-jsonschema")}
    assert all(tools.values()), f"install requirements-dev.txt: {tools}"
    zizmor = subprocess.run(
        [
            tools["zizmor"],
            "--offline",
            "--min-severity",
            "medium",
            "--no-progress",
            "--color",
            "never",
            ".github/workflows",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert zizmor.returncode == 0, zizmor.stdout + zizmor.stderr
    schema = subprocess.run(
        [
            tools["check-jsonschema"],
            "--builtin-schema",
            "vendor.github-workflows",
            *map(str, WORKFLOWS),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr
