"""Secret (`secure:`) config values in a stack file, as the offline tools read it: a value
they cannot see, shown as [secret] where the stack only passes it on, one problem naming the
key where they need it; never its ciphertext, never a key named `secure`."""

from __future__ import annotations

import datetime as dt
import json
import textwrap

import pytest

from eks_gpu_slicing.review import check, render, validate, verify
from eks_gpu_slicing.settings import ConfigError, load_settings
from eks_gpu_slicing.settings.secrets import MASK, is_secret, secret_paths
from eks_gpu_slicing.settings.stack_files import (
    engine_config_of_stack,
    settings_of_engine_config,
    settings_of_stack,
)

# As `pulumi config set --secret clusterName ...`, `--path --secret 'adminRoleArns[1]'` and
# `--path --secret tags.owner` write them (the ciphertexts are made up: nothing decrypts here).
STACK_FILE = """\
config:
  aws:region: us-west-2
  eks-gpu-slicing:clusterName:
    secure: v1:Y2lwaGVydGV4dC1uYW1l
  eks-gpu-slicing:adminRoleArns:
    - arn:aws:iam::123456789012:role/platform
    - secure: v1:Y2lwaGVydGV4dC1hcm4=
  eks-gpu-slicing:tags:
    team: ml
    owner:
      secure: v1:Y2lwaGVydGV4dC10YWc=
  eks-gpu-slicing:gpuNodeGroups:
    t4: {instanceType: g4dn.xlarge, minSize: 1, desiredSize: 1, maxSize: 1}
"""


CIPHERTEXT = "Y2lwaGVydGV4dC"  # what the three ciphertexts begin with


@pytest.fixture
def stack_dir(tmp_path):
    (tmp_path / "Pulumi.sec.yaml").write_text(STACK_FILE)
    return tmp_path


def test_secure_values_are_recognised_as_pulumi_writes_them():
    """A mapping of exactly one key `secure` with a string (Pulumi's isSecureValue), at the
    top of a key or anywhere inside a structured value."""
    assert is_secret({"secure": "v1:abc"})
    assert not is_secret({"secure": "v1:abc", "other": 1})
    assert not is_secret({"secure": 1}) and not is_secret("v1:abc")
    config = {
        "clusterName": {"secure": "v1:a"},
        "adminRoleArns": ["arn", {"secure": "v1:b"}],
        "tags": {"team": "ml", "owner": {"secure": "v1:c"}},
    }
    assert secret_paths(config) == [("clusterName",), ("adminRoleArns", 1), ("tags", "owner")]


def test_validate_shows_each_secret_as_one_it_cannot_see(stack_dir, capsys):
    assert validate.main(["sec", "--dir", str(stack_dir)]) == 0
    out = capsys.readouterr()
    assert CIPHERTEXT not in out.out + out.err
    assert f"Pulumi.sec.yaml is valid: cluster {MASK}, " in out.out
    for key in ("clusterName", "adminRoleArns.1", "tags.owner"):
        assert f"warning: {key} is a secret that offline tools cannot read; rendered as" in out.out


def test_render_shows_secrets_as_the_mask_never_as_ciphertext_or_a_key(stack_dir):
    rendered = render.render("sec", root=stack_dir)
    everything = "".join(rendered.files.values())
    assert CIPHERTEXT not in everything and '"secure"' not in everything
    resources = json.loads(rendered.files["resources.json"])
    cluster = next(r for r in resources if r["type"] == "eks:index:Cluster")
    assert cluster["inputs"]["name"] == MASK
    assert cluster["inputs"]["tags"]["owner"] == MASK
    assert cluster["inputs"]["tags"]["team"] == "ml"
    principals = sorted(e["principalArn"] for e in cluster["inputs"]["accessEntries"].values())
    assert principals == sorted([MASK, "arn:aws:iam::123456789012:role/platform"])
    # `make check` finds nothing wrong with what stands in for them.
    assert check.check_rendered(rendered).violations == []


def test_verify_reads_a_stack_file_with_secrets(stack_dir, tmp_path, capsys):
    """Only the (missing) kubeconfig stops it: the stack file's secrets do not."""
    missing = tmp_path / "no-kubeconfig"
    assert verify.main(["sec", "--dir", str(stack_dir), "--kubeconfig", str(missing)]) == 2
    assert capsys.readouterr().err.startswith(f"verify: cannot use the kubeconfig {missing}")


def test_a_whole_secret_list_or_map(stack_dir):
    """`pulumi config set --secret adminRoleArns '[...]'` or `tags '{...}'`: the list is one
    entry the tools cannot see; the map's names are secret too, so it adds no tag (not one
    named `secure`)."""
    (stack_dir / "Pulumi.sec.yaml").write_text(
        textwrap.dedent(
            """\
            config:
              eks-gpu-slicing:adminRoleArns:
                secure: v1:bGlzdA==
              eks-gpu-slicing:tags:
                secure: v1:bWFw
              eks-gpu-slicing:gpuNodeGroups:
                t4: {instanceType: g4dn.xlarge, minSize: 1, desiredSize: 1, maxSize: 1}
            """
        )
    )
    settings = settings_of_stack("sec", stack_dir)
    assert settings.admin_role_arns == [MASK]
    assert settings.tags == {}
    notes = settings.warnings(dt.date(2026, 12, 6))
    assert any(n.startswith("adminRoleArns is a secret") and "one entry" in n for n in notes)
    assert any(n.startswith("tags is a secret") and "without those tags" in n for n in notes)


def test_a_secret_the_tools_need_is_one_problem_naming_its_key(stack_dir):
    config = engine_config_of_stack("sec", stack_dir)
    config["eks-gpu-slicing:protect"] = json.dumps({"secure": "v1:Ym9vbA=="})
    groups = json.loads(config["eks-gpu-slicing:gpuNodeGroups"])
    groups["t4"]["instanceType"] = {"secure": "v1:dHlwZQ=="}
    config["eks-gpu-slicing:gpuNodeGroups"] = json.dumps(groups)
    # Under a misspelt key, the misspelling is the problem to fix.
    config["eks-gpu-slicing:tagz"] = json.dumps({"secure": "v1:dGFncw=="})
    with pytest.raises(ConfigError) as caught:
        settings_of_engine_config(config, stack="sec")
    problems = caught.value.problems
    assert len(problems) == 3, problems
    for key in ("gpuNodeGroups.t4.instanceType", "protect"):
        (problem,) = [p for p in problems if p.startswith(f"{key}:")]
        assert "a secret (`secure:`) that offline tools cannot read" in problem
    assert "tagz: unknown key; did you mean 'tags'?" in problems
    assert not any("v1:" in p or "secure'" in p for p in problems)


SECRET = {"secure": "v1:c2VjcmV0"}
GROUP = {"instanceType": "g4dn.xlarge", "minSize": 1, "desiredSize": 1, "maxSize": 1}


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        ({"gpuNodeGroups": {"t4": {**GROUP, "sharing": SECRET}}}, "gpuNodeGroups.t4.sharing"),
        ({"gpuNodeGroups": {"t4": SECRET}}, "gpuNodeGroups.t4"),
        ({"gpuNodeGroups": SECRET}, "gpuNodeGroups"),
        ({"sharing": SECRET}, "sharing"),
        ({"sharing": {"default": {"replicas": SECRET}}}, "sharing.default.replicas"),
        ({"benchmark": {"enabled": True, "nodeGroups": [SECRET]}}, "benchmark.nodeGroups.0"),
        ({"karpenter": SECRET}, "karpenter"),
        ({"kubernetesVersion": SECRET}, "kubernetesVersion"),
        ({"tags": {"team": {"name": SECRET}}}, "tags.team.name"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_secret_anywhere_else_is_one_problem_naming_its_key(sections, key):
    """Wherever it is (a whole section, a reference to a profile or group, a number), it is
    reported once, as a secret; the checks that read other keys against it neither fail nor
    take it for a map of profiles or groups."""
    raw = {"gpuNodeGroups": {"t4": GROUP}, **sections}
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="t")
    problems = [p for p in caught.value.problems if "secret" in p]
    assert [p.split(":")[0] for p in problems] == [key]
    assert not any("secure" in p.replace("`secure:`", "") for p in caught.value.problems)
