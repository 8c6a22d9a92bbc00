"""`make render` and `make check`: the render is complete, stable and masks secrets; the
checks catch what the API server, the plugin, Helm or the policies would reject."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import yaml

from eks_gpu_slicing import check, render
from eks_gpu_slicing.helm import value_paths
from eks_gpu_slicing.manifests import crd_schemas, custom_resource_problems
from eks_gpu_slicing.stack_files import ROOT

STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml")
)


@pytest.fixture(scope="module")
def dev():
    return render.render("dev")


def test_render_writes_every_object_release_and_resource(dev, tmp_path):
    render.write(dev, tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    config_map = next(f for f in files if f.startswith("kubernetes/configmap-kube-system-"))
    assert "kubernetes/deployment-gpu-demo-gpu-deployment.yaml" in files
    assert "helm/kube-system-nvidia-device-plugin.yaml" in files
    release = yaml.safe_load((tmp_path / "helm/kube-system-nvidia-device-plugin.yaml").read_text())
    assert (release["chart"], release["version"]) == ("nvidia-device-plugin", "0.20.0")
    assert release["values"]["config"]["name"] in config_map
    summary = json.loads((tmp_path / "resources.json").read_text())
    assert {r["urn"] for r in summary} == set(dev.deployment.resources)
    provider = next(r for r in summary if r["type"] == "pulumi:providers:kubernetes")
    assert provider["inputs"]["kubeconfig"] == render.MASK
    cluster = next(r for r in summary if r["type"] == "eks:index:Cluster")
    assert cluster["parent"].endswith("GpuCluster::cluster")
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    assert outputs["kubeconfig"] == render.MASK
    assert outputs["gpuNodeGroups"]["t4"]["virtualGpusPerNode"] == 10


def test_two_renders_are_identical_and_stale_files_go(dev, tmp_path):
    render.write(dev, tmp_path / "a")
    (tmp_path / "a" / "kubernetes" / "stale.yaml").write_text("x")
    render.write(render.render("dev"), tmp_path / "a")
    render.write(render.render("dev"), tmp_path / "b")
    a = {p.relative_to(tmp_path / "a"): p.read_text() for p in (tmp_path / "a").rglob("*.*")}
    b = {p.relative_to(tmp_path / "b"): p.read_text() for p in (tmp_path / "b").rglob("*.*")}
    assert a == b


def test_summary_has_counts_and_sharing_report(dev):
    import datetime as dt

    lines = render.summary(dev, dt.date(2026, 11, 1))
    assert any("eks:index:ManagedNodeGroup" in line and line.endswith("3") for line in lines)
    assert any(
        line.startswith("  t4: g4dn.xlarge") and "10 nvidia.com/gpu" in line for line in lines
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_passes_the_checks(stack):
    report = check.check_rendered(render.render(stack))
    assert report.violations == []


def _broken(dev):
    rendered = copy.deepcopy(dev)
    return rendered


def test_check_names_resource_and_rule_for_each_kind_of_mistake(dev):
    rendered = _broken(dev)
    d = rendered.deployment
    release = d.one("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin")
    release.inputs["values"]["nodeselector"] = {}  # misspelt: Helm ignores it
    release.inputs["version"] = "~0.20"
    config_map_urn = d.one("kubernetes:core/v1:ConfigMap").urn
    manifest = rendered.manifests[config_map_urn]
    manifest["data"]["default"] = manifest["data"]["default"].replace("replicas: 10", "replicas: 1")
    d.resources[config_map_urn].inputs["data"] = manifest["data"]
    demo = rendered.manifests[d.one("kubernetes:apps/v1:Deployment").urn]
    demo["spec"]["template"]["spec"]["nodeselector"] = {}
    group = d.one("eks:index:ManagedNodeGroup", "gpu-t4")
    group.inputs["amiType"] = "AL2023_x86_64_STANDARD"
    violations = check.check_rendered(rendered).violations
    expected = [
        ("HelmRelease nvidia-device-plugin", "[helm-value-paths] nodeselector"),
        ("ConfigMap nvidia-device-plugin-config", "[device-plugin-config] default"),
        ("Deployment demo", "[openapi-1.35]"),
        ("ManagedNodeGroup gpu-t4", "[policy:gpu-node-group-setup]"),
        ("kubernetes:helm.sh/v3:Release nvidia-device-plugin", "[policy:chart-pinned]"),
        ("kubernetes:core/v1:ConfigMap nvidia-device-plugin-config", "[policy:sharing-replicas]"),
    ]
    for resource, rule in expected:
        assert any(resource in v and rule in v for v in violations), (resource, rule, violations)


def test_the_device_plugin_release_must_find_its_config_map(dev):
    rendered = _broken(dev)
    rendered.deployment.one("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin").inputs[
        "values"
    ]["config"]["default"] = "missing"
    violations = check.check_rendered(rendered).violations
    assert any("default entry 'missing' missing" in v for v in violations)


def test_value_paths_stop_at_the_paths_a_chart_reads_whole():
    known = frozenset({"nodeSelector", "config.name"})
    values = {"nodeSelector": {"a": "b"}, "config": {"name": "x", "nmae": "y"}}
    assert sorted(value_paths(values, known)) == [
        "config.name",
        "config.nmae",
        "nodeSelector",
    ]


REFERENCE = ROOT.parent / "shared" / "reference" / "karpenter-1.14.1"
needs_crds = pytest.mark.skipif(not REFERENCE.is_dir(), reason="no upstream reference")


@needs_crds
def test_karpenter_objects_are_checked_against_the_crds():
    assert {kind for _, kind in crd_schemas()} >= {"NodePool", "EC2NodeClass", "NodeOverlay"}
    pool = {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodePool",
        "metadata": {"name": "gpu"},
        "spec": {
            "template": {
                "metadata": {"labels": {"nvidia.com/gpu.present": "true"}},
                "spec": {
                    "nodeClassRef": {
                        "group": "karpenter.k8s.aws",
                        "kind": "EC2NodeClass",
                        "name": "gpu",
                    },
                    "requirements": [
                        {
                            "key": "karpenter.k8s.aws/instance-family",
                            "operator": "In",
                            "values": ["g5"],
                        }
                    ],
                },
            }
        },
    }
    assert custom_resource_problems(pool) == []
    old = copy.deepcopy(pool)
    old["spec"]["disruption"] = {"expireAfter": "720h"}  # v1beta1's place for it
    assert any("expireAfter" in p for p in custom_resource_problems(old))
    assert custom_resource_problems({"apiVersion": "example.com/v1", "kind": "X"}) is None


def test_without_the_reference_custom_resources_are_skipped_with_a_notice(dev, tmp_path):
    report = check.check_rendered(dev, crd_dir=tmp_path / "absent")
    assert any("custom resources not validated" in n for n in report.notices)


def test_cli_exit_codes(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(check, "BUILD_DIR", tmp_path)
    assert check.main(["prod"]) == 0
    assert (tmp_path / "prod" / "resources.json").is_file()
    assert "no violations" in capsys.readouterr().out
    assert render.main(["no-such-stack"]) == 2
    shutil.rmtree(tmp_path)
