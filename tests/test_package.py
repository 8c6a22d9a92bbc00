"""The GpuSharing component package, tested without the Pulumi CLI.

What the CLI would do on `pulumi package add` (start provider/__main__.py, ask it for its
schema) and on `pulumi up` (Construct) is done here in-process with the provider the plugin
serves (the SDK's ComponentProvider, keeping undeclared inputs): constructing through it
under mocks registers what the existing-cluster stack registers for the same settings. That
the committed schema is the one it serves is tests/test_generate.py's.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import logging
import re
import runpy
import types
import typing
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml
from pydantic import BaseModel

import components.package as package
import components.package_inputs as package_inputs
from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.karpenter import node_pool_capacity
from eks_gpu_slicing.builders.workloads import virtual_gpu_capacity
from eks_gpu_slicing.review import generate
from eks_gpu_slicing.review.mocks import Deployment, ProgramMocks, RecordingMonitor, run_program
from eks_gpu_slicing.settings import (
    BenchmarkSettings,
    DemoWorkloadSettings,
    DevicePluginSettings,
    GpuMetricsSettings,
    GpuNodeGroupSettings,
    HamiSettings,
    KarpenterNodePoolSettings,
    KarpenterSettings,
    Settings,
    SharingProfile,
    load_settings,
)
from eks_gpu_slicing.settings.existing_cluster import (
    NOT_PACKAGE_INPUTS,
    ExistingClusterSettings,
)
from eks_gpu_slicing.settings.sharing import MigSettings
from eks_gpu_slicing.settings.stack_files import (
    ROOT,
    engine_config_of_stack,
    read_stack_file,
    settings_of_stack,
)
from eks_gpu_slicing.settings.tenants import TenantDefaultsSettings, TenantSettings
from tests.conftest import engine_config

TOKEN = "eks-gpu-slicing:index:GpuSharing"
EXAMPLE = ROOT / "examples" / "yaml-existing-cluster" / "Pulumi.yaml"
STACK = "existing"


@functools.cache
def schema() -> dict[str, Any]:
    """The schema the plugin serves (built once: the tests only read it)."""
    return generate.inferred_schema()


def example_properties() -> dict[str, Any]:
    program = yaml.safe_load(EXAMPLE.read_text())
    return copy.deepcopy(program["resources"]["gpu-sharing"]["properties"])


# --- The schema --------------------------------------------------------------------------------


def _properties(document: dict[str, Any]):
    """(path, property) of every property of the component and its types, nested ones too."""
    resource = document["resources"][TOKEN]
    roots = [(f"inputs.{k}", v) for k, v in resource["inputProperties"].items()]
    roots += [(f"outputs.{k}", v) for k, v in resource["properties"].items()]
    for name, type_ in document["types"].items():
        roots += [(f"{name}.{k}", v) for k, v in type_["properties"].items()]
    stack = list(roots)
    while stack:
        path, prop = stack.pop()
        yield path, prop
        for key in ("items", "additionalProperties"):
            if key in prop:
                stack.append((f"{path}[{key}]", prop[key]))


def test_every_property_is_documented_and_typed_with_no_any():
    document = schema()
    for path, prop in _properties(document):
        assert prop.get("description", "").strip(), f"{path}: no description"
        assert "type" in prop or "$ref" in prop, f"{path}: no type"
        assert prop.get("$ref") != "pulumi.json#/Any", f"{path}: Any"
        if "$ref" in prop:
            assert prop["$ref"].removeprefix("#/types/") in document["types"], path
    assert not document.get("dependencies"), "the inputs reference no other package's types"


def _descriptions(document: dict[str, Any]):
    yield "GpuSharing", document["resources"][TOKEN]["description"]
    for name, type_ in document["types"].items():
        yield name, type_.get("description", "")
    for path, prop in _properties(document):
        yield path, prop.get("description", "")


def test_no_description_depends_on_the_python_version():
    """Python 3.13 strips the indentation of a docstring's later lines (3.11 keeps it), and
    the analyzer reads class docstrings as Python made them: an indented line would make the
    served schema differ between the versions the README allows."""
    for where, description in _descriptions(schema()):
        assert not re.search(r"\n[ \t]", description), f"{where}: an indented line"


def test_every_input_is_plain_because_it_is_validated_before_anything_is_registered():
    for path, prop in _properties(schema()):
        if path.startswith("outputs.") or path.split(".")[0].endswith("Report"):
            assert "plain" not in prop, path
        else:
            assert prop.get("plain") is True, f"{path}: accepts an Output"


# Input type of the component (generated) -> the settings model it mirrors, key for key.
MIRRORS = {
    package_inputs.ExistingCluster: ExistingClusterSettings,
    package_inputs.SharingProfile: SharingProfile,
    package_inputs.MigPartitioning: MigSettings,
    package_inputs.HamiSlices: HamiSettings,
    package_inputs.GpuNodeGroup: GpuNodeGroupSettings,
    package_inputs.DevicePlugin: DevicePluginSettings,
    package_inputs.DemoWorkload: DemoWorkloadSettings,
    package_inputs.Benchmark: BenchmarkSettings,
    package_inputs.GpuMetrics: GpuMetricsSettings,
    package_inputs.Karpenter: KarpenterSettings,
    package_inputs.KarpenterNodePool: KarpenterNodePoolSettings,
    package_inputs.Tenant: TenantSettings,
    package_inputs.TenantDefaults: TenantDefaultsSettings,
}


def _config_keys(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def _schema_kind(annotation: Any) -> str:
    """The schema type a settings field's annotation should have."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if set(args) == {int, str}:  # a Kubernetes quantity: a string in the schema
            return "string"
        assert len(args) == 1, annotation
        return _schema_kind(args[0])
    if origin is typing.Annotated:
        return _schema_kind(typing.get_args(annotation)[0])
    if origin is typing.Literal:
        return "string"
    if origin is list:
        return "array"
    if origin is dict:
        return "object"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return f"#/types/eks-gpu-slicing:index:{_input_type_of(annotation).__name__}"
    return {str: "string", int: "integer", float: "number", bool: "boolean"}[annotation]


def _unoptional(annotation: Any) -> Any:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        return args[0]
    return annotation


def _input_type_of(model: type[BaseModel]) -> type:
    return next(t for t, m in MIRRORS.items() if m is model)


def _check_mirror(
    where: str, props: dict, required: list, model: type[BaseModel], skip=(), must=()
):
    """`must`: keys required here though optional in the stack (existingCluster: the
    component is for an existing cluster only)."""
    keys = {k: f for k, f in _config_keys(model).items() if k not in skip}
    # A key taking a name or a map (a MIG layout) is two properties: the name under its own
    # name, the map under another; either may be given, so neither is required.
    split = {
        k: f.json_schema_extra["packageMapKey"]
        for k, f in keys.items()
        if isinstance(f.json_schema_extra, dict) and "packageMapKey" in f.json_schema_extra
    }
    assert set(props) == set(keys) | set(split.values()), (
        f"{where}: inputs, {model.__name__} differ"
    )
    for key, map_key in split.items():
        assert props[key]["type"] == "string" and key not in required, f"{where}.{key}"
        assert props[map_key]["type"] == "object" and map_key not in required, f"{where}.{map_key}"
        assert props[map_key]["additionalProperties"]["type"] == "integer", f"{where}.{map_key}"
    for key, field in keys.items():
        if key in split:
            continue
        prop = props[key]
        kind = prop.get("$ref") or prop["type"]
        assert kind == _schema_kind(field.annotation), f"{where}.{key}"
        needed = field.is_required() or key in must
        assert (key in required) == needed, f"{where}.{key}: required differs"
        inner = typing.get_args(_unoptional(field.annotation))
        if kind in ("array", "object") and inner:
            item = prop.get("items") or prop["additionalProperties"]
            assert (item.get("$ref") or item["type"]) == _schema_kind(inner[-1]), key


def test_inputs_mirror_the_settings_models_key_for_key():
    """What `make generate` writes for each settings field: its key, schema type, items and
    whether it is required."""
    document = schema()
    resource = document["resources"][TOKEN]
    _check_mirror(
        "inputs",
        resource["inputProperties"],
        resource.get("requiredInputs", []),
        Settings,
        skip=NOT_PACKAGE_INPUTS,
        must={"existingCluster"},
    )
    for input_type, model in MIRRORS.items():
        type_ = document["types"][f"eks-gpu-slicing:index:{input_type.__name__}"]
        _check_mirror(input_type.__name__, type_["properties"], type_.get("required", []), model)


def test_documented_choices_are_the_settings_choices():
    document = schema()
    for input_type, model in MIRRORS.items():
        props = document["types"][f"eks-gpu-slicing:index:{input_type.__name__}"]["properties"]
        for key, field in _config_keys(model).items():
            literal = [
                a
                for a in (field.annotation, *typing.get_args(field.annotation))
                if typing.get_origin(a) is typing.Literal
            ]
            for choice in typing.get_args(literal[0]) if literal else ():
                assert (
                    f"`{choice}`" in props[key]["description"]
                    or choice in props[key]["description"]
                ), f"{input_type.__name__}.{key}: {choice} undocumented"


# --- The plugin --------------------------------------------------------------------------------


def test_the_plugin_entry_serves_gpu_sharing_under_the_schemas_name(monkeypatch):
    served = {}

    def serve(provider, args):
        served.update(provider=provider, args=args)

    monkeypatch.setattr("pulumi.provider.main", serve)
    monkeypatch.setattr("sys.argv", ["provider", "127.0.0.1:4321", "--logtostderr"])
    runpy.run_path(str(ROOT / "provider" / "__main__.py"), run_name="__main__")
    document = schema()
    provider = served["provider"]
    assert isinstance(provider, package.GpuSharingProvider)
    assert json.loads(provider.schema) == document
    assert (document["name"], document["version"]) == (
        package.PACKAGE_NAME,
        package.PACKAGE_VERSION,
    )
    # The engine's address and flags, as component_provider_host passes them on.
    assert served["args"] == ["127.0.0.1:4321", "--logtostderr"]
    manifest = yaml.safe_load((ROOT / "provider" / "PulumiPlugin.yaml").read_text())
    assert manifest["runtime"]["name"] == "python"
    requirements = (ROOT / "provider" / "requirements.txt").read_text().split()
    assert "-r" in requirements and "../requirements.txt" in requirements


# --- Constructed through the provider, under mocks ---------------------------------------------


def over_the_wire(value: Any) -> Any:
    """Numbers as the engine hands them to a provider: doubles."""
    if isinstance(value, dict):
        return {k: over_the_wire(v) for k, v in value.items()}
    if isinstance(value, list):
        return [over_the_wire(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def construct(properties: dict[str, Any], **mocks) -> Deployment:
    """Run a program that constructs GpuSharing as the plugin does on `pulumi up`."""

    def program():
        result = package.provider().construct("gpu-sharing", TOKEN, over_the_wire(properties), None)
        for key, value in result.state.items():
            pulumi.export(key, value)

    monitor = RecordingMonitor(ProgramMocks(**mocks))
    return run_program({}, stack=STACK, program=program, monitor=monitor)


def registered(deployment: Deployment) -> dict[tuple[str, str], dict[str, Any]]:
    """What each resource was registered with, URNs written as (type, name): the package's
    provider is the component's child, the stack's the stack's, so parents are left out."""
    by_urn = {r.urn: (r.type, r.name) for r in deployment.resources.values()}
    return {
        (r.type, r.name): {
            "inputs": r.inputs,
            "dependencies": sorted(by_urn[d] for d in r.dependencies),
            "property_dependencies": {
                k: sorted(by_urn[d] for d in v) for k, v in r.property_dependencies.items()
            },
            "provider": by_urn.get(r.provider_urn),
            "custom": r.custom,
            "protect": r.protect,
            "secret_inputs": sorted(r.secret_inputs),
        }
        for r in deployment.resources.values()
    }


@pytest.fixture(scope="module")
def from_the_package() -> Deployment:
    return construct(example_properties())


@pytest.fixture(scope="module")
def from_the_stack() -> Deployment:
    return run_program(engine_config_of_stack(STACK, ROOT / "examples"), stack=STACK)


def test_the_yaml_example_and_the_stack_example_have_the_same_settings():
    stack_config = read_stack_file(ROOT / "examples" / "Pulumi.existing.yaml")["config"]
    as_properties = {
        key.removeprefix("eks-gpu-slicing:"): value
        for key, value in stack_config.items()
        if key.startswith("eks-gpu-slicing:")
    }
    pools = as_properties["karpenter"]["nodePools"]
    for pool in pools.values():  # the schema's quantities are strings
        pool["limits"] = {k: str(v) for k, v in pool["limits"].items()}
    assert example_properties() == as_properties


def test_the_package_registers_what_the_existing_cluster_stack_registers(
    from_the_package, from_the_stack
):
    package_side, stack_side = registered(from_the_package), registered(from_the_stack)
    assert set(package_side) == set(stack_side)
    for key in stack_side:
        assert package_side[key] == stack_side[key], key
    assert from_the_package.one(TOKEN).urn.endswith("::gpu-sharing")


def _check_report(where: str, report: dict[str, Any], type_name: str) -> None:
    """A report as the schema declares it: only declared keys, every required one, each of
    its declared type (no nulls)."""
    types_ = schema()["types"]
    type_ = types_[f"eks-gpu-slicing:index:{type_name}"]
    _check_value(where, report, {"$ref": f"#/types/eks-gpu-slicing:index:{type_name}"}, types_)
    assert set(type_.get("required", [])) <= set(report), where


def test_the_package_outputs_are_the_stacks_and_match_the_schemas_report_types(
    from_the_package, from_the_stack
):
    for key in ("devicePluginConfigMap", "gpuNodeGroups", "karpenterNodePools"):
        assert from_the_package.outputs[key] == from_the_stack.outputs[key], key
    for name, group in from_the_package.outputs["gpuNodeGroups"].items():
        _check_report(f"gpuNodeGroups.{name}", group, "GpuNodeGroupReport")
    for name, pool in from_the_package.outputs["karpenterNodePools"].items():
        _check_report(f"karpenterNodePools.{name}", pool, "KarpenterNodePoolReport")


def _reports(settings: Settings) -> list[tuple[str, dict[str, Any], str]]:
    groups = [
        (f"gpuNodeGroups.{name}", virtual_gpu_capacity(g, settings.profile_of(g)), "GpuNodeGroup")
        for name, g in settings.gpu_node_groups.items()
    ]
    pools = [
        (
            f"karpenterNodePools.{name}",
            node_pool_capacity(name, pool, settings.sharing[pool.sharing]),
            "KarpenterNodePool",
        )
        for name, pool in settings.karpenter_pools.items()
    ]
    return [(where, report, f"{kind}Report") for where, report, kind in groups + pools]


# Every stack and example, and a p5e group (no on-demand price) shared by MIG and by
# time-slicing: the reports the schema must declare, MIG's keys and missing prices included.
P5E = {"instanceType": "p5e.48xlarge", "minSize": 0, "desiredSize": 0, "maxSize": 1}
REPORTED = {
    "dev": lambda: settings_of_stack("dev"),
    "prod": lambda: settings_of_stack("prod"),
    "existing": lambda: settings_of_stack("existing", ROOT / "examples"),
    "mig": lambda: settings_of_stack("mig", ROOT / "examples"),
    "p5e": lambda: load_settings(
        {
            "sharing": {
                "default": {"strategy": "time-slicing", "replicas": 4},
                "h200": {"strategy": "mig", "mig": {"layout": "all-balanced", "strategy": "mixed"}},
            },
            "gpuNodeGroups": {"shared": P5E, "mig": {**P5E, "sharing": "h200"}},
        },
        stack="p5e",
    ),
}


@pytest.mark.parametrize("source", REPORTED)
def test_every_report_the_stack_builds_is_declared_in_the_schema_as_it_can_be(source):
    reports = _reports(REPORTED[source]())
    assert reports
    for where, report, type_name in reports:
        _check_report(f"{source}: {where}", report, type_name)


def test_a_group_without_an_on_demand_price_reports_no_price_rather_than_null():
    (shared, mig) = [r for _, r, _ in _reports(REPORTED["p5e"]())]
    assert facts.GPU_INSTANCES["p5e.48xlarge"].usd_per_hour is None
    assert "usdPerVirtualGpuHour" not in shared and "usdPerVirtualGpuHour" not in mig
    assert "usdPerSliceHour" not in mig and mig["slicesPerNode"]


def test_the_package_leaves_the_cluster_alone_and_adopts_nothing(from_the_package):
    (sharing,) = from_the_package.of_type(TOKEN)
    for registration in from_the_package.resources.values():
        if registration is not sharing:
            assert sharing in from_the_package.ancestors(registration), registration.urn
        assert not registration.aliases, registration.urn
    assert not from_the_package.of_type("aws:eks/cluster:Cluster")


# --- Bad input: the stack's message ------------------------------------------------------------


def as_stack_config(properties: dict[str, Any]) -> dict[str, Any]:
    """The same settings as a stack file writes them: pool limits as numbers where whole."""
    config = copy.deepcopy(properties)
    for pool in config["karpenter"]["nodePools"].values():
        pool["limits"] = package._int_or_string(pool["limits"])
    return config


def stack_message(properties: dict[str, Any], **mocks) -> str:
    monitor = RecordingMonitor(ProgramMocks(**mocks))
    with pytest.raises(pulumi.RunError) as exc:
        run_program(engine_config(properties), stack=STACK, monitor=monitor)
    assert not monitor.registrations
    return str(exc.value)


def package_message(properties: dict[str, Any], **mocks) -> str:
    monitor = RecordingMonitor(ProgramMocks(**mocks))
    with pytest.raises(Exception) as exc:
        run_program(
            {},
            stack=STACK,
            program=lambda: package.provider().construct(
                "gpu-sharing", TOKEN, over_the_wire(properties), None
            ),
            monitor=monitor,
        )
    assert not monitor.registrations, "registered before refusing"
    return str(exc.value)


def _bad_profile_and_subnet(p: dict) -> None:
    p["sharing"]["default"]["replicas"] = 1
    p["existingCluster"]["privateSubnetIds"] = ["subnet-xyz"]
    p["gpuNodeGroups"]["t4"]["sharing"] = "missing"


def _bad_pool(p: dict) -> None:
    p["karpenter"]["nodePools"]["g5"]["limits"] = {"cpu": "lots"}
    p["karpenter"]["nodePools"]["g5"]["instanceTypes"] = ["m5.large"]
    del p["existingCluster"]["podIdentityAgent"]


def _too_big_group(p: dict) -> None:
    p["gpuNodeGroups"]["t4"]["minSize"] = 5
    p["gpuMetrics"]["namespace"] = "default"


@pytest.mark.parametrize("spoil", [_bad_profile_and_subnet, _bad_pool, _too_big_group])
def test_a_bad_input_is_refused_with_the_stacks_message(spoil):
    properties = example_properties()
    spoil(properties)
    message = package_message(properties)
    assert message == stack_message(as_stack_config(properties))
    assert message.startswith("invalid stack configuration")


def test_a_cluster_that_disagrees_is_refused_with_the_stacks_message():
    properties = example_properties()
    properties["kubernetesVersion"] = "1.34"
    message = package_message(properties, cluster_version="1.35")
    assert "kubernetesVersion: the stack says 1.34, but cluster 'team-cluster' runs 1.35" in message
    assert message == stack_message(as_stack_config(properties), cluster_version="1.35")


def _misspelt_profile_key(p: dict) -> None:
    p["sharing"]["default"]["failRequestGreaterThanOne"] = p["sharing"]["default"].pop(
        "failRequestsGreaterThanOne"
    )


def _misspelt_replicas(p: dict) -> None:
    p["sharing"]["default"]["replica"] = p["sharing"]["default"].pop("replicas")


def _misspelt_section(p: dict) -> None:
    p["gpuNodeGroup"] = p.pop("gpuNodeGroups")
    p["karpenter"]["nodePools"]["g5"]["limit"] = {"nodes": "2"}


def _created_cluster_keys(p: dict) -> None:
    p["network"] = {"natGateways": "onePerAz"}
    p["protect"] = True


# Inputs the schema does not declare: the stack refuses the same keys in a stack file.
UNDECLARED = {
    "failRequestGreaterThanOne": (
        _misspelt_profile_key,
        "sharing.default.failRequestGreaterThanOne: unknown key; did you mean "
        "'failRequestsGreaterThanOne'?",
    ),
    "replica": (
        _misspelt_replicas,
        "sharing.default.replica: unknown key; did you mean 'replicas'?",
    ),
    "section": (
        _misspelt_section,
        "gpuNodeGroup: unknown key; did you mean 'gpuNodeGroups'?",
    ),
    "network and protect": (
        _created_cluster_keys,
        "network: only applies to a cluster this stack creates",
    ),
}


@pytest.mark.parametrize("spoil", UNDECLARED.values(), ids=UNDECLARED)
def test_an_input_the_schema_does_not_declare_is_refused_with_the_stacks_message(spoil):
    """The SDK's provider drops what the schema does not declare without a word; GpuSharing
    refuses it by name, as the stack refuses a misspelt key."""
    edit, expected = spoil
    properties = example_properties()
    edit(properties)
    message = package_message(properties)
    assert expected in message
    assert message == stack_message(as_stack_config(properties))


def test_a_nested_misspelt_key_is_named_with_its_path():
    properties = example_properties()
    _misspelt_section(properties)
    message = package_message(properties)
    assert "karpenter.nodePools.g5.limit: unknown key; did you mean 'limits'?" in message
    assert "protect" not in message


def test_cluster_name_is_not_an_input_even_when_it_names_the_cluster():
    """The stack takes clusterName equal to existingCluster.name; the package has no such
    input (the schema does not declare it), so it is refused, not ignored."""
    properties = example_properties()
    properties["clusterName"] = properties["existingCluster"]["name"]
    properties["sharing"]["default"]["replicas"] = 1
    message = package_message(properties)
    assert "  - clusterName: not an input of GpuSharing (it is existingCluster.name)" in message
    assert "sharing.default.replicas" in message  # with the other problems, in one error


def test_an_input_given_as_null_is_left_out(from_the_package):
    """A null reaches the provider for a property a program sets to null (or leaves unset in
    some SDKs): it is the key left out, as in a stack file, at every level."""
    properties = example_properties()
    properties["kubernetesVersion"] = None
    properties["demoWorkload"] = None
    properties["sharing"]["default"]["renameByDefault"] = None
    properties["gpuNodeGroups"]["t4"]["diskSizeGiB"] = None
    properties["karpenter"]["nodePools"]["g5"]["weight"] = None
    assert registered(construct(properties)) == registered(from_the_package)


def test_the_settings_warnings_reach_the_pulumi_log(caplog):
    properties = example_properties()
    properties["devicePlugin"] = {"chartVersion": "0.19.0"}
    properties["sharing"]["unused"] = {"strategy": "none"}
    with caplog.at_level(logging.WARNING):
        construct(properties)
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = settings_of_args_warnings(properties)
    assert expected and all(w in warned for w in expected)
    assert any(w.startswith("devicePlugin.chartVersion 0.19.0:") for w in expected)
    assert any("sharing profiles not used by any GPU node group: unused" in w for w in expected)


def settings_of_args_warnings(properties: dict[str, Any]) -> list[str]:
    """The warnings the stack gives for the same settings."""
    config = as_stack_config(properties)
    settings = load_settings(
        {**config, "clusterName": config["existingCluster"]["name"]}, stack=STACK
    )
    return settings.warnings(dt.date.today())


# The example's subnets, as an existing cluster's subnets may be found (see test_gpu_sharing).
SUBNET_1, SUBNET_2 = yaml.safe_load(EXAMPLE.read_text())["resources"]["gpu-sharing"]["properties"][
    "existingCluster"
]["privateSubnetIds"]
DISCOVERY = facts.KARPENTER_DISCOVERY_TAG
SUBNETS_FOUND = {
    "another-vpc": {"subnets": {SUBNET_2: {"vpcId": "vpc-0ffffffffffffffff"}}},
    "tagged-for-another-cluster": {
        "subnets": {SUBNET_1: {"tags": {DISCOVERY: "blue"}}},
        "cluster_security_group_tags": {DISCOVERY: "blue"},
    },
    "missing": {"subnets": {SUBNET_1: None}},
}


@pytest.mark.parametrize("found", SUBNETS_FOUND.values(), ids=SUBNETS_FOUND)
def test_subnets_and_tags_the_stack_refuses_are_refused_with_its_message(found):
    properties = example_properties()
    message = package_message(properties, **found)
    assert message == stack_message(as_stack_config(properties), **found)
    assert "existingCluster.privateSubnetIds[" in message


def test_a_discovery_tag_that_was_there_is_left_alone_as_the_stack_leaves_it():
    found = {
        "subnets": {SUBNET_1: {"tags": {DISCOVERY: "team-cluster"}}},
        "cluster_security_group_tags": {DISCOVERY: "team-cluster"},
    }
    properties = example_properties()
    package_side = registered(construct(properties, **found))
    stack = run_program(
        engine_config_of_stack(STACK, ROOT / "examples"),
        stack=STACK,
        monitor=RecordingMonitor(ProgramMocks(**found)),
    )
    stack_side = registered(stack)
    tags = {key for key in stack_side if key[0] == "aws:ec2/tag:Tag"}
    assert tags == {key for key in package_side if key[0] == "aws:ec2/tag:Tag"}
    assert {stack_side[key]["inputs"]["resourceId"] for key in tags} == {SUBNET_2}


def test_an_output_input_is_refused_by_name():
    with pytest.raises(pulumi.RunError, match=r"existingCluster\.name: must be a known value"):
        package.plain_config(
            {"existing_cluster": {"name": pulumi.Output.from_input("x")}}, package.GpuSharingArgs
        )


# --- The example consumer ----------------------------------------------------------------------


def _check_value(path: str, value: Any, prop: dict[str, Any], types_: dict[str, Any]) -> None:
    if "$ref" in prop:
        type_ = types_[prop["$ref"].removeprefix("#/types/")]
        assert isinstance(value, dict), path
        unknown = set(value) - set(type_["properties"])
        assert not unknown, f"{path}: no such properties {unknown}"
        missing = set(type_.get("required", [])) - set(value)
        assert not missing, f"{path}: missing {missing}"
        for key, item in value.items():
            _check_value(f"{path}.{key}", item, type_["properties"][key], types_)
        return
    kind = prop["type"]
    if kind == "object":
        assert isinstance(value, dict), path
        for key, item in value.items():
            _check_value(f"{path}.{key}", item, prop["additionalProperties"], types_)
    elif kind == "array":
        assert isinstance(value, list), path
        for i, item in enumerate(value):
            _check_value(f"{path}[{i}]", item, prop["items"], types_)
    else:
        python = {"string": str, "integer": int, "number": int | float, "boolean": bool}[kind]
        assert isinstance(value, python), f"{path}: {value!r} is not a {kind}"
        assert kind == "boolean" or not isinstance(value, bool), f"{path}: a boolean"


def test_the_yaml_example_passes_only_properties_of_the_schema_with_their_types():
    document = yaml.safe_load(EXAMPLE.read_text())
    schema_ = json.loads(generate.SCHEMA_FILE.read_text())
    resource = schema_["resources"][TOKEN]
    (gpu_sharing,) = document["resources"].values()
    assert gpu_sharing["type"] == TOKEN
    properties = gpu_sharing["properties"]
    assert set(resource.get("requiredInputs", [])) <= set(properties)
    for key, value in properties.items():
        assert key in resource["inputProperties"], f"no input {key}"
        _check_value(key, value, resource["inputProperties"][key], schema_["types"])
    for expression in document["outputs"].values():
        output = expression.removeprefix("${gpu-sharing.").removesuffix("}")
        assert output in resource["properties"], output
    assert document["runtime"] == "yaml"
    source = Path(document["packages"][schema_["name"]])
    assert (EXAMPLE.parent / source / "PulumiPlugin.yaml").is_file()


def test_a_mig_profile_crosses_the_wire_as_the_stack_reads_it():
    """A custom MIG layout is the customLayout input: its counts arrive as doubles and must
    reach the settings as the layout's ints a stack file gives, keys (profile names)
    untouched."""
    properties = example_properties()
    properties["sharing"] = {
        "default": {"strategy": "time-slicing", "replicas": 4},
        "h100": {
            "strategy": "mig",
            "replicas": 2,
            "mig": {"customLayout": {"1g.10gb": 4, "3g.40gb": 1}, "strategy": "mixed"},
        },
    }
    properties["gpuNodeGroups"] = {
        "h100": {
            "instanceType": "p5.48xlarge",
            "minSize": 0,
            "desiredSize": 1,
            "maxSize": 1,
            "sharing": "h100",
        }
    }
    deployment = construct(properties)
    (mig_manager,) = [
        r for r in deployment.resources.values() if r.type == "kubernetes:apps/v1:DaemonSet"
    ]
    assert mig_manager.inputs["metadata"]["name"] == "nvidia-mig-manager"
    (config,) = [
        r
        for r in deployment.resources.values()
        if r.type == "kubernetes:core/v1:ConfigMap"
        and r.inputs["metadata"].get("name") == "nvidia-mig-manager-config"
    ]
    (text,) = config.inputs["data"].values()
    layouts = yaml.safe_load(text)["mig-configs"]
    (custom,) = [name for name in layouts if name.startswith("custom-")]
    assert layouts[custom][0]["mig-devices"] == {"1g.10gb": 4, "3g.40gb": 1}
