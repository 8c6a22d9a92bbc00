"""The offline stack-file check (`make validate STACK=...`)."""

from __future__ import annotations

from eks_gpu_slicing.validate import main


def test_valid_stack_prints_capacity(capsys):
    assert main(["dev"]) == 0
    out = capsys.readouterr().out
    assert "Pulumi.dev.yaml is valid" in out
    assert "g4dn.xlarge" in out and "nvidia.com/gpu" in out
    # The sharing report: GPU, memory per virtual GPU, price and its source, isolation.
    assert "1x T4 16 GiB" in out and "1.6" in out and "0.0526" in out
    assert "on-demand, us-east-1, 2026-07-20 (not us-west-2)" in out
    assert "isolation, a10g: memory capped per client" in out


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
