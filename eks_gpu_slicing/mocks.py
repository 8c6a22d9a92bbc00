"""Run this Pulumi program offline with mocks, and record what it registers.

The one mocks module: the tests use it, and so can any offline tool (a preview report, a
render benchmark). Nothing here reaches AWS or a cluster.

    deployment = run_program(engine_config_of_stack("dev"), stack="dev")
    deployment.one("kubernetes:helm.sh/v3:Release").inputs["values"]
"""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.proto import resource_pb2

from eks_gpu_slicing import facts
from eks_gpu_slicing.stack_files import PROGRAM

MOCK_ACCOUNT = "123456789012"
MOCK_REGION = "us-west-2"


@dataclass
class Registration:
    """One resource as the program registered it."""

    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]  # what the mocks answered
    custom: bool
    parent: str
    provider: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    delete_before_replace: bool
    secret_inputs: set[str]  # top-level inputs sent as secrets

    @property
    def provider_urn(self) -> str:
        """URN of the explicit provider ('' when the default provider is used)."""
        return self.provider.rsplit("::", 1)[0] if self.provider else ""


@dataclass
class Deployment:
    """What one run of the program registered, and its stack outputs."""

    resources: dict[str, Registration]
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of_type(self, type_: str) -> list[Registration]:
        return [r for r in self.resources.values() if r.type == type_]

    def one(self, type_: str, name: str | None = None) -> Registration:
        found = [r for r in self.of_type(type_) if name is None or r.name == name]
        if len(found) != 1:
            names = [r.name for r in self.of_type(type_)]
            raise LookupError(f"expected one {type_} named {name!r}, found {names}")
        return found[0]

    def ancestors(self, registration: Registration) -> list[Registration]:
        chain = []
        while registration.parent in self.resources:
            registration = self.resources[registration.parent]
            chain.append(registration)
        return chain

    def inputs_by_urn(self) -> dict[str, dict[str, Any]]:
        return {urn: r.inputs for urn, r in self.resources.items()}


class ProgramMocks(pulumi.runtime.Mocks):
    """Plausible outputs for the resources this program uses; inputs are echoed back.

    Remote components (pulumi-eks, awsx) only have the outputs returned here, in camelCase.
    Outputs are derived from names, never random, so two runs are identical.
    """

    def __init__(self, availability_zones: int = 3):
        self.availability_zones = availability_zones

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        token = args.typ
        # Remote components' outputs are typed differently from their inputs (awsx's
        # natGateways input is a setting, its output a list of resources): echo nothing.
        remote = token.split(":", 1)[0] in ("awsx", "eks")
        outputs = {} if remote else dict(args.inputs)
        rid = f"{args.name}-id"
        if token == "awsx:ec2:Vpc":
            azs = int(args.inputs.get("numberOfAvailabilityZones", self.availability_zones))
            outputs.update(
                vpcId="vpc-0123456789abcdef0",
                privateSubnetIds=[f"subnet-0a{i:015x}" for i in range(azs)],
                publicSubnetIds=[f"subnet-0b{i:015x}" for i in range(azs)],
            )
        elif token == "eks:index:Cluster":
            name = args.inputs.get("name", args.name)
            kubeconfig = _mock_kubeconfig(name)
            outputs.update(kubeconfig=kubeconfig, kubeconfigJson=json.dumps(kubeconfig))
        elif token == "aws:kms/key:Key":
            rid = f"mrk-{_digest(args.name)}"
            outputs.update(keyId=rid, arn=_arn("kms", f"key/{rid}"))
        elif token == "aws:iam/role:Role":
            outputs.update(name=args.name, arn=_arn("iam", f"role/{args.name}", region=""))
        elif token.startswith("kubernetes:") and not token.startswith("kubernetes:helm"):
            metadata = dict(args.inputs.get("metadata") or {})
            # Auto-naming: Pulumi appends a suffix; ours is derived from the name.
            metadata.setdefault("name", f"{args.name}-{_digest(args.name)[:8]}")
            outputs["metadata"] = metadata
        elif token == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {"status": "deployed", "version": 1}
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        # The program makes no invokes; one appearing should be noticed, not mocked away.
        raise NotImplementedError(f"no mock for call {args.token}")


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps each registration's options and dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}

    # Without resource references the SDK sends a resource input as its ID (custom) or URN
    # (component). With them, the mock monitor would rebuild each referenced resource on its
    # own thread's event loop, and the program then fails with "Future attached to a
    # different loop" (or hangs) as soon as a resource is passed to a remote component.
    def GetDeploymentInfo(self, request):
        info = super().GetDeploymentInfo(request)
        kept = [
            f
            for f in info.supportedFeatures
            if f != resource_pb2.RESOURCE_MONITOR_FEATURE_RESOURCE_REFERENCES
        ]
        return resource_pb2.DeploymentInfo(supportedFeatures=kept)

    def SupportsFeature(self, request):
        supported = request.id not in ("outputValues", "resourceReferences")
        return type("SupportsFeatureResponse", (object,), {"hasSupport": supported})

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            inputs = rpc.deserialize_properties(request.object)
            self.registrations[response.urn] = Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                inputs=_plain(inputs),
                outputs=_plain(rpc.deserialize_properties(response.object)),
                custom=bool(request.custom),
                parent=request.parent,
                provider=request.provider,
                dependencies=list(request.dependencies),
                property_dependencies={
                    key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                },
                protect=bool(request.protect),
                delete_before_replace=bool(request.deleteBeforeReplace),
                secret_inputs={key for key, value in inputs.items() if _is_secret(value)},
            )
        return response


def run_program(
    config: Mapping[str, str],
    *,
    stack: str = "dev",
    preview: bool = False,
    program: Callable[[], Any] | None = None,
    monitor: RecordingMonitor | None = None,
) -> Deployment:
    """Run the program (or `program`) under mocks and return what it registered.

    Exceptions from the program (pulumi.RunError for bad configuration) propagate; pass
    your own `monitor` to see what was registered before one was raised.
    """
    monitor = monitor or RecordingMonitor(ProgramMocks())
    mocks = monitor.mocks
    runtime_settings.ROOT.set(None)  # a fresh Stack resource, so outputs don't leak
    pulumi.runtime.set_mocks(
        mocks, project=facts.PROJECT, stack=stack, preview=preview, monitor=monitor
    )
    pulumi.runtime.set_all_config(dict(config), [])
    outputs: dict[str, Any] = {}
    secret: set[str] = set()

    @pulumi.runtime.test
    def run():
        if program is None:
            runpy.run_path(str(PROGRAM), run_name="__main__")
        else:
            program()
        exported = runtime_settings.get_root_resource().outputs
        resolved = []
        for name, value in exported.items():
            out = pulumi.Output.from_input(value)
            resolved.append(out.apply(lambda v, n=name: outputs.__setitem__(n, _plain(v))))
            resolved.append(
                pulumi.Output.from_input(out.is_secret()).apply(
                    lambda s, n=name: secret.add(n) if s else None
                )
            )
        return pulumi.Output.all(*resolved)

    run()
    return Deployment(resources=dict(monitor.registrations), outputs=outputs, secret_outputs=secret)


def _is_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(rpc._special_sig_key) == rpc._special_secret_sig


def _plain(value: Any) -> Any:
    """Protobuf-decoded values as plain Python: secrets unwrapped (see
    Registration.secret_inputs), whole floats as ints (protobuf numbers are all doubles)."""
    if _is_secret(value):
        return _plain(value["value"])
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _arn(service: str, resource: str, region: str = MOCK_REGION) -> str:
    return f"arn:aws:{service}:{region}:{MOCK_ACCOUNT}:{resource}"


def _mock_kubeconfig(cluster_name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": f"https://{_digest(cluster_name)}.eks.amazonaws.com"},
            }
        ],
        "contexts": [{"name": "aws", "context": {"cluster": cluster_name, "user": "aws"}}],
        "current-context": "aws",
        "users": [{"name": "aws", "user": {"token": "mock"}}],
    }
