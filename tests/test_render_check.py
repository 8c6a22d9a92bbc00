"""`make render` and `make check`: the render is complete, stable and masks secrets; the
checks catch what the API server, the plugin, Helm or the policies would reject."""

from __future__ import annotations

import copy
import json
import shutil

import pulumi
import pulumi_aws
import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.review import check, crd_cel, karpenter_crds, render
from eks_gpu_slicing.review.helm import value_paths
from eks_gpu_slicing.review.manifests import (
    crd_schemas,
    crd_versions,
    custom_resource_cel,
    custom_resource_problems,
)
from eks_gpu_slicing.review.mocks import MOCK_ZONES, ProgramMocks, plausible_zones
from eks_gpu_slicing.settings import NetworkSettings
from eks_gpu_slicing.settings.stack_files import ROOT

STACKS = sorted(
    p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in ROOT.glob("Pulumi.*.yaml")
)


@pytest.fixture(scope="module")
def dev(dev_rendered):
    return dev_rendered  # shared by the session: read only (_broken makes a copy to change)


def test_render_writes_every_object_release_and_resource(dev, tmp_path):
    render.write(dev, tmp_path)
    files = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    config_map = next(f for f in files if f.startswith("kubernetes/configmap-kube-system-"))
    assert "kubernetes/deployment-gpu-demo-gpu-deployment.yaml" in files
    assert "helm/kube-system-nvidia-device-plugin.yaml" in files
    release = yaml.safe_load((tmp_path / "helm/kube-system-nvidia-device-plugin.yaml").read_text())
    assert (release["chart"], release["version"]) == (
        "nvidia-device-plugin",
        dev.settings.device_plugin.chart_version,
    )
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
    render.write(render.render("dev"), tmp_path / "a")  # a second render, over the first
    render.write(dev, tmp_path / "b")
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
def test_every_stack_passes_the_checks(stack, renders):
    report = check.check_rendered(renders(stack))
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
        ("Deployment demo", f"[openapi-{rendered.settings.kubernetes_version}]"),
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


# --- CEL rules (x-kubernetes-validations) ------------------------------------------------------


def _custom(rendered, kind):
    return next(m for m in rendered.manifests.values() if m["kind"] == kind)


def _break_alias_and_id(rendered):
    _custom(rendered, "EC2NodeClass")["spec"]["amiSelectorTerms"][0]["id"] = "ami-0123456789abcdef0"


def _break_label_domain(rendered):
    requirements = _custom(rendered, "NodePool")["spec"]["template"]["spec"]["requirements"]
    requirements.append({"key": "karpenter.sh/team", "operator": "Exists"})


def _break_empty_in(rendered):
    requirements = _custom(rendered, "NodePool")["spec"]["template"]["spec"]["requirements"]
    requirements.append({"key": "topology.kubernetes.io/zone", "operator": "In", "values": []})


def _break_overlay_capacity(rendered):
    _custom(rendered, "NodeOverlay")["spec"]["capacity"]["pods"] = "10"


# Each mistake breaks one CEL rule of its CRD and nothing in the OpenAPI schema.
CEL_MISTAKES = {
    "alias-with-id": (
        _break_alias_and_id,
        "EC2NodeClass/gpu-g5 spec.amiSelectorTerms: 'alias' is mutually exclusive, cannot be "
        "set with a combination of other fields in amiSelectorTerms",
    ),
    "restricted-label-domain": (
        _break_label_domain,
        'NodePool/gpu-g5 spec.template.spec.requirements[{last}].key: label domain "karpenter.sh" '
        "is restricted",
    ),
    "in-without-values": (
        _break_empty_in,
        "NodePool/gpu-g5 spec.template.spec.requirements: requirements with operator 'In' must "
        "have a value defined",
    ),
    "restricted-overlay-capacity": (
        _break_overlay_capacity,
        "NodeOverlay/gpu-g5-1gpu spec.capacity: invalid resource restricted",
    ),
}


@pytest.mark.parametrize("mistake", sorted(CEL_MISTAKES))
def test_make_check_fails_on_an_object_that_breaks_one_cel_rule(dev, mistake, monkeypatch, capsys):
    breaker, expected = CEL_MISTAKES[mistake]
    rendered = _broken(dev)
    breaker(rendered)
    requirements = _custom(rendered, "NodePool")["spec"]["template"]["spec"]["requirements"]
    expected = expected.format(last=len(requirements) - 1)
    for manifest in rendered.manifests.values():
        if manifest["kind"] in ("EC2NodeClass", "NodePool", "NodeOverlay"):
            assert custom_resource_problems(manifest) == [], "the schema alone passes it"
    report = check.check_rendered(rendered)
    assert expected in report.violations
    # `make check` (check.main) exits 1 and prints it.
    monkeypatch.setattr(check, "render", lambda stack: rendered)
    monkeypatch.setattr(check, "write", lambda rendered, path: None)
    assert check.main(["dev"]) == 1
    assert f"  {expected}" in capsys.readouterr().err.splitlines()


def test_dev_objects_pass_every_cel_rule_and_make_check_shows_the_counts(
    dev, capsys, monkeypatch, tmp_path
):
    """(Every stack passes the CEL rules too: test_every_stack_passes_the_checks.)"""
    report = check.check_rendered(dev)
    counted = {line.split(":")[0]: line for line in report.checked}
    custom = [m for m in dev.manifests.values() if "." in m["apiVersion"].split("/")[0]]
    assert len(custom) == len(counted) >= 3
    for manifest in custom:
        result = custom_resource_cel(manifest)
        assert result.failures == []
        assert result.evaluated > 0
        line = counted[f"{manifest['kind']}/{manifest['metadata']['name']}"]
        assert f": {result.evaluated} CEL rules evaluated, 0 failed" in line
    monkeypatch.setattr(check, "BUILD_DIR", tmp_path)
    monkeypatch.setattr(check, "render", lambda stack: dev)  # the render this test checked
    assert check.main(["dev"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert all(line in printed for line in report.checked)


def test_every_rule_of_the_three_crds_compiles_and_calls_only_supplied_functions(dev):
    called: set[str] = set()
    rules = 0
    for (_, kind), schema in crd_versions().items():
        if kind not in ("EC2NodeClass", "NodePool", "NodeOverlay"):
            continue
        for _path, rule in crd_cel.all_rules(schema):
            if rule.is_transition:
                continue
            rules += 1
            names = crd_cel.called_functions(rule.rule)
            assert names <= crd_cel.SUPPORTED_FUNCTIONS, (kind, rule.rule)
            called |= names
    assert rules > 0
    # The Kubernetes functions supplied are exactly those the rules call.
    assert set(crd_cel.KUBERNETES_FUNCTIONS) <= called
    # ... and every rule that applies to the dev stack's objects evaluates without error.
    for manifest in dev.manifests.values():
        result = custom_resource_cel(manifest)
        if result is not None:
            assert not [f for f in result.failures if "could not be evaluated" in f]


def test_an_unsupported_function_is_a_failure_never_a_pass():
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.name.lowerAscii() == self.name", "message": "lower case"}
                ],
            }
        },
    }
    result = crd_cel.evaluate_object(schema, {"spec": {"name": "a"}})
    assert result.evaluated == 1
    assert result.failures == [
        "spec: rule could not be evaluated (unsupported function lowerAscii): "
        "self.name.lowerAscii() == self.name"
    ]


def test_rules_apply_per_element_after_defaults_and_skip_transition_rules():
    item_rule = {"rule": "self.size() <= 3", "message": "too long"}
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.mode == 'fast'", "messageExpression": "'mode is ' + self.mode"},
                    {"rule": "self.mode == oldSelf.mode", "message": "immutable"},
                    {"rule": "has(self.tags)"},  # no message: the API server's default
                ],
                "properties": {
                    "mode": {"type": "string", "default": "slow"},
                    "names": {
                        "type": "array",
                        "items": {"type": "string", "x-kubernetes-validations": [item_rule]},
                    },
                    "labels": {
                        "type": "object",
                        "additionalProperties": {
                            "type": "string",
                            "x-kubernetes-validations": [item_rule],
                        },
                    },
                },
            }
        },
    }
    spec = {"names": ["abc", "abcd"], "labels": {"a": "long-value", "b": "ok"}}
    result = crd_cel.evaluate_object(schema, {"spec": spec})
    assert result.transition_skipped == 1
    assert result.evaluated == 2 + 2 + 2
    assert result.failures == [
        "spec: mode is slow",
        "spec: failed rule: has(self.tags)",
        "spec.names[1]: too long",
        "spec.labels[a]: too long",
    ]


def test_a_null_field_is_checked_as_the_api_server_does_absent(dev):
    """The API server drops an object's null field whose schema is neither nullable nor
    defaulted before any rule runs (k8s.io/apiextensions-apiserver v0.35.7
    pkg/apiserver/schema/defaulting/prunenulls.go), so `has()` on it is false: a manifest
    with `instanceProfile: null` beside `role`, or `replicas: null` beside `weight`, is
    accepted, and `make check` must not report it."""
    node_class = copy.deepcopy(_custom(dev, "EC2NodeClass"))
    node_pool = copy.deepcopy(_custom(dev, "NodePool"))
    assert "role" in node_class["spec"] and "weight" in node_pool["spec"]
    node_class["spec"]["instanceProfile"] = None
    node_pool["spec"]["replicas"] = None
    for manifest in (node_class, node_pool):
        assert custom_resource_cel(manifest).failures == []
    # ... while the same fields with a value break the rules (the objects are not vacuous).
    node_class["spec"]["instanceProfile"] = "gpu-nodes"
    node_pool["spec"]["replicas"] = 2
    assert custom_resource_cel(node_class).failures == [
        "spec: must specify exactly one of ['role', 'instanceProfile']"
    ]
    assert "spec: 'weight' is not supported on static NodePools" in (
        custom_resource_cel(node_pool).failures
    )


def test_no_rule_runs_at_a_null_value_and_a_defaulted_null_is_checked_with_its_default():
    """pkg/apiserver/schema/cel/validation.go (v0.35.7) validates non-null values only;
    defaulting.Default gives a null whose schema is not nullable its default first."""
    positive = {"rule": "self > 0", "message": "must be positive"}
    nullable_positive = {
        "type": "integer",
        "nullable": True,
        "x-kubernetes-validations": [positive],
    }
    schema = {
        "type": "object",
        "properties": {
            "spec": {
                "type": "object",
                "x-kubernetes-validations": [
                    {"rule": "self.replicas == 3", "message": "replicas not defaulted"},
                    {"rule": "has(self.limit)", "message": "a nullable null was dropped"},
                ],
                "properties": {
                    "replicas": {
                        "type": "integer",
                        "default": 3,
                        "x-kubernetes-validations": [positive],
                    },
                    "limit": {**nullable_positive, "default": 5},
                    "sizes": {"type": "array", "items": nullable_positive},
                    "weights": {"type": "object", "additionalProperties": nullable_positive},
                },
            }
        },
    }
    spec = {"replicas": None, "limit": None, "sizes": [None, 2], "weights": {"a": None, "b": 1}}
    result = crd_cel.evaluate_object(schema, {"spec": spec})
    assert result.failures == []
    # the two rules on spec, replicas' (defaulted to 3), one per non-null element; none at
    # limit (nullable: kept null, not defaulted) nor at the null elements
    assert result.evaluated == 2 + 1 + 1 + 1
    spec = {"sizes": [None, -2], "weights": {"a": None, "b": -1}, "limit": -1}
    assert crd_cel.evaluate_object(schema, {"spec": spec}).failures == [
        "spec.limit: must be positive",
        "spec.sizes[1]: must be positive",
        "spec.weights[b]: must be positive",
    ]


# k8s.io/apiserver v0.35.7 pkg/apis/cel/config.go: MaxEvaluatedMessageExpressionSizeBytes
LONGEST_MESSAGE = "x" * (5 * 1024)


@pytest.mark.parametrize(
    ("message_expression", "message", "expected"),
    [
        # messageExpression first; message only when the expression gives no usable text
        ("'size is ' + string(self.size)", "too big", "size is 9"),
        ("'  padded \\n '", "too big", "padded"),  # trimmed before the line-break check
        (f"'{LONGEST_MESSAGE}'", "too big", LONGEST_MESSAGE),
        (f"'{LONGEST_MESSAGE}x'", "too big", "too big"),  # over the size limit
        ("'two\\nlines'", "too big", "too big"),
        ("'   '", "too big", "too big"),
        ("self.size", "too big", "too big"),  # not a string
        ("self.missing + 'x'", "too big", "too big"),  # fails to evaluate
        ("self.missing + 'x'", "", "failed rule: self.size < 5"),
        ("", "  too big  ", "too big"),
        ("", "", "failed rule: self.size < 5"),
    ],
)
def test_the_message_of_a_failed_rule_is_the_api_servers(message_expression, message, expected):
    """k8s.io/apiextensions-apiserver v0.35.7 pkg/apiserver/schema/cel/validation.go:
    evalMessageExpression, then ruleMessageOrDefault."""
    rule = crd_cel.Rule(
        rule="self.size < 5", message=message, message_expression=message_expression
    )
    assert crd_cel.check_rule(rule, {"size": 9}) == expected
    assert crd_cel.check_rule(rule, {"size": 4}) is None


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # k8s.io/apiserver pkg/cel/library/regex.go examples
        ("'abc 123'.find('[0-9]+') == '123'", True),
        ("'abc 123'.find('xyz') == ''", True),
        ("'karpenter.sh/nodepool'.find('^([^/]+)') == 'karpenter.sh'", True),
        ("'nodepool'.find('^([^/]+)').endsWith('karpenter.sh')", False),
        # cel-go ext/strings.go: Go strings.Split
        ("'al2023@v20251103'.split('@') == ['al2023', 'v20251103']", True),
        ("'al2023'.split('@') == ['al2023']", True),
        ("''.split('@') == ['']", True),
        ("'ab'.split('') == ['a', 'b']", True),
        ("'a@b@'.split('@') == ['a', 'b', '']", True),
    ],
)
def test_kubernetes_string_functions(expression, expected):
    rule = crd_cel.Rule(rule=expression, message="false")
    assert crd_cel.check_rule(rule, {}) == (None if expected else "false")


def test_missing_crds_end_make_check_with_one_line(dev, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(karpenter_crds.CRD_DIR_ENV, str(tmp_path / "absent"))
    with pytest.raises(karpenter_crds.CrdsUnavailable, match=karpenter_crds.CRD_DIR_ENV):
        check.check_rendered(dev)
    monkeypatch.setattr(check, "BUILD_DIR", tmp_path / "build")
    monkeypatch.setattr(check, "render", lambda stack: dev)
    assert check.main(["dev"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: KARPENTER_CRD_DIR=") and "CustomResourceDefinition" in line


def test_a_karpenter_kind_the_crds_do_not_serve_is_a_violation(dev):
    rendered = _broken(dev)
    _custom(rendered, "NodePool")["apiVersion"] = "karpenter.sh/v1beta1"
    assert any(
        "no CRD serves karpenter.sh/v1beta1" in v for v in check.check_rendered(rendered).violations
    )


def test_cli_exit_codes(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(check, "BUILD_DIR", tmp_path)
    assert check.main(["prod"]) == 0
    assert (tmp_path / "prod" / "resources.json").is_file()
    assert "no violations" in capsys.readouterr().out
    assert render.main(["no-such-stack"]) == 2
    shutil.rmtree(tmp_path)


# --- Any commercial region ---------------------------------------------------------------------


def _stack_in_region(tmp_path, stack: str, region: str) -> str:
    """A copy of a committed stack file, deployed to another region."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    document["config"]["aws:region"] = region
    (tmp_path / f"Pulumi.{region}.yaml").write_text(yaml.safe_dump(document))
    return region


@pytest.mark.parametrize("region", ["eu-west-1", "eu-central-1", "ap-southeast-7", "sa-east-1"])
def test_render_and_check_work_in_regions_the_mocks_have_no_account_for(tmp_path, region):
    assert region not in MOCK_ZONES
    rendered = render.render(_stack_in_region(tmp_path, "dev", region), tmp_path)
    count = rendered.settings.network.availability_zone_count
    vpc = rendered.deployment.one("awsx:ec2:Vpc")
    assert vpc.inputs["availabilityZoneNames"] == [f"{region}{c}" for c in "abc"[:count]]
    assert check.check_rendered(rendered).violations == []


def test_the_prod_stack_renders_in_another_region(tmp_path):
    rendered = render.render(_stack_in_region(tmp_path, "prod", "eu-central-1"), tmp_path)
    assert check.check_rendered(rendered).violations == []


def test_every_commercial_region_has_zones_enough_for_the_default_network():
    needed = NetworkSettings().availability_zone_count
    for region in facts.AWS_COMMERCIAL_REGIONS:
        lookup = ProgramMocks(region=region).call(
            pulumi.runtime.MockCallArgs(
                token="aws:index/getAvailabilityZones:getAvailabilityZones",
                args={"excludeZoneIds": list(facts.EKS_UNSUPPORTED_ZONE_IDS)},
                provider="",
            )
        )
        # The mocked us-west-1 account is an old one with two usable zones: enough for EKS.
        enough = needed if region not in MOCK_ZONES else facts.EKS_MIN_AVAILABILITY_ZONES
        assert len(lookup["names"]) >= enough, region
        assert all(z.startswith(f"{facts.zone_id_prefix(region)}-az") for z in lookup["zoneIds"])


def test_a_zone_eks_refuses_is_still_left_out_where_it_applies():
    # ca-central-1 is known to the mocks; were it not, its plausible zones would include
    # cac1-az3, and the lookup must still drop it.
    zones = plausible_zones("ca-central-1")
    assert ("ca-central-1c", "cac1-az3") in zones
    mocks = ProgramMocks(region="ca-central-1", zones={})
    lookup = mocks.call(
        pulumi.runtime.MockCallArgs(
            token="aws:index/getAvailabilityZones:getAvailabilityZones",
            args={"excludeZoneIds": list(facts.EKS_UNSUPPORTED_ZONE_IDS)},
            provider="",
        )
    )
    assert "cac1-az3" not in lookup["zoneIds"] and len(lookup["names"]) == len(zones) - 1


def test_zone_id_prefixes_match_the_zone_ids_accounts_see():
    for region, zones in MOCK_ZONES.items():
        assert {z.rsplit("-az", 1)[0] for _, z in zones} == {facts.zone_id_prefix(region)}
    assert all(z.rsplit("-az", 1)[0] in _known_prefixes() for z in facts.EKS_UNSUPPORTED_ZONE_IDS)


def _known_prefixes() -> set[str]:
    return {facts.zone_id_prefix(r) for r in facts.AWS_COMMERCIAL_REGIONS}


def test_commercial_regions_are_pulumi_aws_regions_of_the_aws_partition():
    other_partitions = ("cn-", "us-gov-", "us-iso", "eu-isoe-", "eusc-")
    enum = {r.value for r in pulumi_aws.Region if not r.value.startswith(other_partitions)}
    assert set(facts.AWS_COMMERCIAL_REGIONS) == enum


def test_an_unknown_region_gets_no_made_up_zones():
    assert plausible_zones("eu-wast-1") == []


@pytest.mark.needs_karpenter_crds
@pytest.mark.parametrize("stack", ["existing", "mig"])
def test_the_example_stacks_render_and_pass_make_check(stack, tmp_path, monkeypatch, renders):
    """`make check STACK=<example> STACK_DIR=examples`, as CI runs it (the render shared with
    the session; `make render` renders it again)."""
    monkeypatch.setattr(check, "BUILD_DIR", tmp_path)
    monkeypatch.setattr(check, "render", renders)
    assert check.main([stack, "--dir", str(ROOT / "examples")]) == 0
    assert render.main([stack, "--dir", str(ROOT / "examples"), "--out", str(tmp_path / "r")]) == 0
    assert (tmp_path / "r" / "resources.json").exists()
