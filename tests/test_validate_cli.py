"""The offline stack-file check (`make validate STACK=...`)."""

from __future__ import annotations

import functools
import re

import pytest

from eks_gpu_slicing.review import check, render
from eks_gpu_slicing.review.check import main as check_main
from eks_gpu_slicing.review.render import main as render_main
from eks_gpu_slicing.review.validate import main
from eks_gpu_slicing.settings.stack_files import (
    ROOT,
    StackFileError,
    engine_config_of_stack,
    read_stack_file,
)


def test_valid_stack_prints_capacity(capsys):
    assert main(["dev"]) == 0
    out = capsys.readouterr().out
    assert "Pulumi.dev.yaml is valid" in out
    assert "g4dn.xlarge" in out and "nvidia.com/gpu" in out
    # The sharing report: GPU, memory per virtual GPU, price and its source, isolation.
    assert "1x T4 16 GiB" in out and "1.6" in out and "0.0526" in out
    assert "on-demand, us-east-1, 2026-07-20 (not us-west-2)" in out
    assert "isolation, a10g: memory capped per client" in out


def test_tenants_chargeback_and_quotas_against_capacity_are_printed(capsys):
    assert main(["tenants", "--dir", str(ROOT / "examples")]) == 0
    out = capsys.readouterr().out
    lines = [
        re.split(r"\s{2,}", line.strip()) for line in out.split("Tenants:\n", 1)[1].splitlines()
    ]
    # 12 time-sliced T4 slices at the report's 0.0526 $/h and 1.6 GiB each; 6 MPS A10G ones.
    assert ["research", "research", "nvidia.com/gpu", "12", "19.2", "0.6312"] in lines
    assert ["serving", "ml-serving", "nvidia.com/gpu.shared", "6", "33.54", "1.5090"] in lines
    assert ["nvidia.com/gpu", "12", "20"] in lines and ["nvidia.com/gpu.shared", "6", "8"] in lines


def test_a_stack_without_tenants_prints_no_tenants_section(capsys):
    assert main(["dev"]) == 0
    assert "Tenants:" not in capsys.readouterr().out


def test_invalid_stack_lists_problems_and_fails(tmp_path, capsys):
    (tmp_path / "Pulumi.bad.yaml").write_text(
        "config:\n"
        "  eks-gpu-slicing:gpuNodeGroups:\n"
        "    t4: {instanceType: g4dn.xlarge, minSize: 3, desiredSize: 3, maxSize: 2}\n"
        "  eks-gpu-slicing:sharing:\n"
        "    default: {replicas: 1}\n"
    )
    assert main(["bad", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "gpuNodeGroups.t4: minSize (3) > maxSize (2)" in err
    assert "sharing.default.replicas" in err


def test_a_group_without_an_on_demand_price_is_printed_without_one(tmp_path, capsys):
    (tmp_path / "Pulumi.p5e.yaml").write_text(
        "config:\n"
        "  eks-gpu-slicing:gpuNodeGroups:\n"
        "    h200: {instanceType: p5e.48xlarge, minSize: 0, desiredSize: 0, maxSize: 1}\n"
    )
    assert main(["p5e", "--dir", str(tmp_path)]) == 0
    (row,) = [line for line in capsys.readouterr().out.splitlines() if "p5e.48xlarge" in line]
    assert row.endswith("no price")


def test_missing_stack_file_is_reported(tmp_path):
    assert main(["nope", "--dir", str(tmp_path)]) == 2


def test_benchmark_sizing_is_reported_and_a_cap_is_a_warning(tmp_path, capsys):
    (tmp_path / "Pulumi.bench.yaml").write_text(
        "config:\n"
        "  eks-gpu-slicing:gpuNodeGroups:\n"
        "    t4: {instanceType: g4dn.xlarge, minSize: 1, desiredSize: 1, maxSize: 1, "
        "sharing: dense}\n"
        "    a10g: {instanceType: g5.xlarge, minSize: 1, desiredSize: 1, maxSize: 1}\n"
        "  eks-gpu-slicing:sharing:\n"
        "    default: {replicas: 4}\n"
        "    dense: {replicas: 40}\n"
        "  eks-gpu-slicing:benchmark:\n"
        "    enabled: true\n"
    )
    assert main(["bench", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "benchmark, a10g: N = 1, 2, 4; memory" in out
    assert "warning: benchmark, t4: N = 1, 2, 4, 8, " in out
    assert "N capped at" in out and "(the profile asks for up to 40)" in out


# --- Stack files Pulumi could not read ---------------------------------------------------------

TOOLS = {
    "validate": lambda stack, root: main([stack, "--dir", str(root)]),
    "render": lambda stack, root: render_main([stack, "--out", str(root / "out")]),
    "check": lambda stack, root: check_main([stack]),
}


@pytest.fixture
def stack_dir(tmp_path, monkeypatch):
    """render and check read stack files from the repository: point them at tmp_path."""
    monkeypatch.setattr(render, "render", functools.partial(render.render, root=tmp_path))
    monkeypatch.setattr(check, "render", functools.partial(render.render, root=tmp_path))
    return tmp_path


def _only_line(err: str) -> str:
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err.strip()


@pytest.mark.parametrize("tool", TOOLS)
def test_a_yaml_error_is_one_line_naming_file_line_and_column(stack_dir, capsys, tool):
    (stack_dir / "Pulumi.bad.yaml").write_text(
        "config:\n"
        "  eks-gpu-slicing:gpuNodeGroups:\n"
        "    t4: {instanceType: g4dn.xlarge, minSize: 1\n"
        "  eks-gpu-slicing:sharing:\n"
    )
    assert TOOLS[tool]("bad", stack_dir) == 1
    line = _only_line(capsys.readouterr().err)
    assert line.startswith("Pulumi.bad.yaml, line 4, column 26: ")
    assert "started at line 3" in line and "<unicode string>" not in line


@pytest.mark.parametrize("tool", TOOLS)
def test_a_key_given_twice_is_refused_with_both_lines(stack_dir, capsys, tool):
    (stack_dir / "Pulumi.twice.yaml").write_text(
        "config:\n"
        "  eks-gpu-slicing:gpuNodeGroups:\n"
        "    t4: {instanceType: g4dn.xlarge, minSize: 1, desiredSize: 1, maxSize: 1}\n"
        "    a10g: {instanceType: g5.xlarge, minSize: 1, desiredSize: 1, maxSize: 1}\n"
        "    t4: {instanceType: g4dn.2xlarge, minSize: 1, desiredSize: 1, maxSize: 1}\n"
    )
    assert TOOLS[tool]("twice", stack_dir) == 1
    line = _only_line(capsys.readouterr().err)
    assert line.startswith("Pulumi.twice.yaml, line 5, column 5: key 't4'")
    assert "already defined at line 3" in line


@pytest.mark.parametrize("tool", TOOLS)
def test_a_folder_named_like_a_stack_file_is_one_line_and_no_stack(stack_dir, capsys, tool):
    (stack_dir / "Pulumi.x.yaml").mkdir()
    assert TOOLS[tool]("x", stack_dir) == 1
    line = _only_line(capsys.readouterr().err)
    assert line == f"Pulumi.x.yaml: a folder, not a stack file, in {stack_dir}"
    # Nor is it offered as a stack when another one is missing.
    assert main(["y", "--dir", str(stack_dir)]) == 2
    assert "(stacks: none)" in _only_line(capsys.readouterr().err)


def test_a_stack_file_that_is_not_text_is_one_line(tmp_path, capsys):
    (tmp_path / "Pulumi.bin.yaml").write_bytes(b"config:\n  a: \xff\xfe\n")
    assert main(["bin", "--dir", str(tmp_path)]) == 1
    assert _only_line(capsys.readouterr().err) == (
        "Pulumi.bin.yaml: not UTF-8 text (byte 13), so not YAML Pulumi reads"
    )


@pytest.mark.parametrize(
    ("yaml_text", "key", "lines"),
    [
        ("config:\n  aws:region: us-west-2\n  aws:region: eu-west-1\n", "aws:region", (3, 2)),
        (
            "config:\n  eks-gpu-slicing:sharing:\n    default:\n      replicas: 4\n"
            "      replicas: 8\n",
            "replicas",
            (5, 4),
        ),
        ("config: {}\nconfig: {}\n", "config", (2, 1)),
        (
            "config:\n  eks-gpu-slicing:benchmark: {enabled: true, enabled: false}\n",
            "enabled",
            (2, 2),
        ),
    ],
    ids=["top-of-config", "deep", "document", "flow"],
)
def test_duplicate_keys_are_refused_at_every_depth(tmp_path, yaml_text, key, lines):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(yaml_text)
    with pytest.raises(StackFileError) as caught:
        read_stack_file(path)
    second, first = lines
    message = str(caught.value)
    assert message.startswith(f"Pulumi.x.yaml, line {second}, ")
    assert f"key '{key}' is already defined at line {first}" in message


def test_a_merge_key_override_is_not_a_duplicate(tmp_path):
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("base: &b {a: 1}\nconfig:\n  x:y:\n    <<: *b\n    a: 2\n")
    assert read_stack_file(path)["config"]["x:y"] == {"a": 2}


def test_a_config_key_pulumi_cannot_parse_is_refused(tmp_path, capsys):
    (tmp_path / "Pulumi.keys.yaml").write_text("config:\n  eks-gpu-slicing:network:cidr: x\n")
    assert main(["keys", "--dir", str(tmp_path)]) == 1
    line = _only_line(capsys.readouterr().err)
    assert "'eks-gpu-slicing:network:cidr'" in line and "<namespace>:<name>" in line


def test_the_old_namespace_config_name_form_reaches_the_program(tmp_path):
    (tmp_path / "Pulumi.old.yaml").write_text(
        "config:\n  aws:config:region: eu-west-1\n  eks-gpu-slicing:config:clusterName: old\n"
    )
    config = engine_config_of_stack("old", tmp_path)
    assert config == {"aws:region": "eu-west-1", "eks-gpu-slicing:clusterName": "old"}


def test_a_misspelt_project_namespace_is_a_problem_with_the_right_key(tmp_path, capsys):
    (tmp_path / "Pulumi.ns.yaml").write_text(
        "config:\n"
        "  aws:region: eu-west-1\n"
        "  kubernetes:enableServerSideApply: true\n"
        "  myorg:costCenter: gpu\n"
        "  eks-gpu-slicing:gpuNodeGroups:\n"
        "    t4: {instanceType: g4dn.xlarge, minSize: 1, desiredSize: 1, maxSize: 1}\n"
        "  eks-gpu-slice:demoWorkload:\n"
        "    enabled: false\n"
    )
    assert main(["ns", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "eks-gpu-slice:demoWorkload: namespace 'eks-gpu-slice' is not this project's" in err
    assert "did you mean 'eks-gpu-slicing:demoWorkload'?" in err
    assert "aws:" not in err and "kubernetes:" not in err and "myorg" not in err


@pytest.mark.parametrize("tool", TOOLS)
def test_a_missing_stack_is_one_line_and_exit_2(stack_dir, capsys, tool):
    (stack_dir / "Pulumi.dev.yaml").write_text("config: {}\n")
    assert TOOLS[tool]("nope", stack_dir) == 2
    line = _only_line(capsys.readouterr().err)
    assert line.startswith("Pulumi.nope.yaml: no such stack file") and "(stacks: dev)" in line
