"""Run this Pulumi program offline with mocks, and record what it registers.

The one mocks module: the tests use it, and so can any offline tool (a preview report, a
render benchmark). Nothing here reaches AWS or a cluster.

    deployment = run_program(engine_config_of_stack("dev"), stack="dev")
    deployment.one("kubernetes:helm.sh/v3:Release", "nvidia-device-plugin").inputs["values"]
"""

from __future__ import annotations

import hashlib
import json
import runpy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.proto import provider_pb2, resource_pb2

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.stack_files import PROGRAM

MOCK_ACCOUNT = "123456789012"
MOCK_REGION = "us-west-2"
# Who runs `pulumi up` in the mocks: an SSO-style assumed-role session, as most people are.
MOCK_CALLER_ROLE = "platform-admin"
MOCK_CALLER_ARN = f"arn:aws:sts::{MOCK_ACCOUNT}:assumed-role/{MOCK_CALLER_ROLE}/alice"

# Zone names and IDs as one account sees them (names map to IDs differently per account).
# us-east-1e is use1-az3, where EKS refuses control-plane subnets; us-west-2 has only four
# zones; this us-west-1 account is an old one that still has usw1-az2.
MOCK_ZONES: dict[str, list[tuple[str, str]]] = {
    "us-east-1": [
        ("us-east-1a", "use1-az6"),
        ("us-east-1b", "use1-az1"),
        ("us-east-1c", "use1-az2"),
        ("us-east-1d", "use1-az4"),
        ("us-east-1e", "use1-az3"),
        ("us-east-1f", "use1-az5"),
    ],
    "us-west-2": [
        ("us-west-2a", "usw2-az2"),
        ("us-west-2b", "usw2-az1"),
        ("us-west-2c", "usw2-az3"),
        ("us-west-2d", "usw2-az4"),
    ],
    "us-west-1": [
        ("us-west-1a", "usw1-az2"),
        ("us-west-1b", "usw1-az1"),
        ("us-west-1c", "usw1-az3"),
    ],
    "ca-central-1": [
        ("ca-central-1a", "cac1-az1"),
        ("ca-central-1b", "cac1-az2"),
        ("ca-central-1d", "cac1-az4"),
    ],
    "cn-north-1": [("cn-north-1a", "cnn1-az1"), ("cn-north-1b", "cnn1-az2")],
    "us-gov-west-1": [
        ("us-gov-west-1a", "usgw1-az1"),
        ("us-gov-west-1b", "usgw1-az2"),
        ("us-gov-west-1c", "usgw1-az3"),
    ],
}


def plausible_zones(region: str) -> list[tuple[str, str]]:
    """Zones for a commercial Region the mocks have no account's view of: the fewest a
    Region has, named <region>a, b, c with IDs <prefix>-az1, 2, 3. A zone ID EKS refuses
    is still left out by the lookup, as AWS does; a name outside the commercial list (a
    typo, another partition) gets no zones, so the run fails as it would in AWS."""
    if region not in facts.AWS_COMMERCIAL_REGIONS:
        return []
    prefix = facts.zone_id_prefix(region)
    letters = "abcdefghijklmnopqrstuvwxyz"[: facts.MIN_ZONES_PER_REGION]
    return [(f"{region}{letter}", f"{prefix}-az{i}") for i, letter in enumerate(letters, 1)]


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
    # Former identities (the aliases option): URNs, or specs with the keys name, type,
    # parentUrn and noParent as the engine receives them (empty when unset).
    aliases: list[dict[str, Any]] = field(default_factory=list)

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
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def calls_of(self, token: str) -> list[dict[str, Any]]:
        """The arguments of every invoke or method call of `token`."""
        return [args for tok, args in self.calls if tok == token]

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

    def __init__(
        self,
        *,
        region: str = MOCK_REGION,
        caller_arn: str = MOCK_CALLER_ARN,
        zones: Mapping[str, list[tuple[str, str]]] | None = None,
        cluster_version: str = facts.DEFAULT_KUBERNETES_VERSION,
        cluster_authentication_mode: str = "API_AND_CONFIG_MAP",
        subnets: Mapping[str, Mapping[str, Any] | None] | None = None,
        cluster_security_group_tags: Mapping[str, str] | None = None,
        security_groups: Mapping[str, Mapping[str, Any] | None] | None = None,
        node_groups: Mapping[str, Sequence[str] | None] | None = None,
    ):
        self.region = region
        # What `aws.ec2.get_subnet` answers, by subnet ID: `vpcId` and `tags` to override
        # (a subnet not listed is an untagged one in the VPC of the cluster looked up), or
        # None for a subnet that does not exist.
        self.subnets = dict(subnets or {})
        # The tags `aws.ec2.get_security_group` answers for the looked-up cluster's group.
        self.cluster_security_group_tags = dict(cluster_security_group_tags or {})
        # What it answers for other groups, by ID: `vpcId` and `tags` to override (a group not
        # listed is an untagged one in the cluster's VPC), or None for one that does not exist.
        self.security_groups = dict(security_groups or {})
        # The looked-up cluster's managed node groups (`aws.eks.get_node_groups`), each with
        # the security groups its launch template names (`aws.eks.get_node_group`,
        # `aws.ec2.get_launch_template`), or None for a group without a launch template.
        self.node_groups = dict(node_groups or {})
        # The VPC of the cluster `aws.eks.get_cluster` answered last.
        self.existing_vpc_id = ""
        # What `aws.eks.get_cluster` answers for a cluster the program did not create.
        self.cluster_version = cluster_version
        self.cluster_authentication_mode = cluster_authentication_mode
        self.caller_arn = caller_arn
        self.zones = MOCK_ZONES if zones is None else zones
        # Cluster name by resource name, to answer `Cluster.get_kubeconfig()`.
        self.cluster_names: dict[str, str] = {}

    @property
    def partition(self) -> str:
        if self.region.startswith("cn-"):
            return "aws-cn"
        if self.region.startswith("us-gov-"):
            return "aws-us-gov"
        return "aws"

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        token = args.typ
        # Remote components' outputs are typed differently from their inputs (awsx's
        # natGateways input is a setting, its output a list of resources): echo nothing.
        remote = token.split(":", 1)[0] in ("awsx", "eks")
        outputs = {} if remote else dict(args.inputs)
        rid = f"{args.name}-id"
        if token == "awsx:ec2:Vpc":
            azs = len(args.inputs.get("availabilityZoneNames") or []) or int(
                args.inputs.get("numberOfAvailabilityZones", 3)
            )
            outputs.update(
                vpcId="vpc-0123456789abcdef0",
                privateSubnetIds=[f"subnet-0a{i:015x}" for i in range(azs)],
                publicSubnetIds=[f"subnet-0b{i:015x}" for i in range(azs)],
            )
        elif token == "eks:index:Cluster":
            name = args.inputs.get("name", args.name)
            self.cluster_names[args.name] = name
            kubeconfig = _mock_kubeconfig(name)
            outputs.update(kubeconfig=kubeconfig, kubeconfigJson=json.dumps(kubeconfig))
        elif token == "aws:kms/key:Key":
            rid = f"mrk-{_digest(args.name)}"
            outputs.update(keyId=rid, arn=self._arn("kms", f"key/{rid}"))
        elif token == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs["latestVersion"] = 1
        elif token == "aws:iam/role:Role":
            outputs.update(name=args.name, arn=self._arn("iam", f"role/{args.name}", region=""))
        # Karpenter: the interruption queue, the controller's policies and the event rules.
        elif token == "aws:sqs/queue:Queue":
            name = args.inputs.get("name", f"{args.name}-{_digest(args.name)[:7]}")
            rid = f"https://sqs.{self.region}.amazonaws.com/{MOCK_ACCOUNT}/{name}"
            outputs.update(name=name, url=rid, arn=self._arn("sqs", name))
        elif token == "aws:iam/policy:Policy":
            outputs.update(name=args.name, arn=self._arn("iam", f"policy/{args.name}", region=""))
        elif token == "aws:cloudwatch/eventRule:EventRule":
            outputs.update(name=args.name, arn=self._arn("events", f"rule/{args.name}"))
        elif token.startswith("kubernetes:") and not token.startswith("kubernetes:helm"):
            metadata = dict(args.inputs.get("metadata") or {})
            # Auto-naming: Pulumi appends a suffix; ours is derived from the name.
            metadata.setdefault("name", f"{args.name}-{_digest(args.name)[:8]}")
            outputs["metadata"] = metadata
        elif token == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {"status": "deployed", "version": 1}
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        """Invokes (data sources) and method calls; an unknown one should be noticed, not
        mocked away."""
        a = args.args
        match args.token:
            case "aws:index/getPartition:getPartition":
                suffix = "amazonaws.com.cn" if self.partition == "aws-cn" else "amazonaws.com"
                return {"id": self.partition, "partition": self.partition, "dnsSuffix": suffix}
            case "aws:index/getRegion:getRegion":
                return {"id": self.region, "name": self.region, "region": self.region}
            case "aws:index/getCallerIdentity:getCallerIdentity":
                return {
                    "id": MOCK_ACCOUNT,
                    "accountId": MOCK_ACCOUNT,
                    "arn": self.caller_arn,
                    "userId": "AROAEXAMPLE:alice",
                }
            case "aws:iam/getSessionContext:getSessionContext":
                return _session_context(a["arn"])
            case "aws:index/getAvailabilityZones:getAvailabilityZones":
                excluded = set(a.get("excludeZoneIds") or []) | set(a.get("excludeNames") or [])
                kept = [
                    (name, zone_id)
                    for name, zone_id in self.zones_of_region()
                    if name not in excluded and zone_id not in excluded
                ]
                return {
                    "id": self.region,
                    "names": [name for name, _ in kept],
                    "zoneIds": [zone_id for _, zone_id in kept],
                    "state": a.get("state"),
                }
            case "aws:eks/getCluster:getCluster":
                cluster = self.existing_cluster(a["name"])
                self.existing_vpc_id = cluster["vpcConfig"]["vpcId"]
                return cluster
            case "aws:ec2/getSubnet:getSubnet":
                subnet = self.existing_subnet(a["id"])
                # A failed invoke, as the provider reports one.
                return subnet if subnet else ({}, [("id", "no matching EC2 Subnet found")])
            case "aws:ec2/getSecurityGroup:getSecurityGroup":
                if a["id"] in self.security_groups and self.security_groups[a["id"]] is None:
                    return {}, [("id", "no matching EC2 Security Group found")]
                if a["id"] in self.security_groups:
                    return {
                        "id": a["id"],
                        "arn": self._arn("ec2", f"security-group/{a['id']}"),
                        "name": f"node-{a['id']}",
                        "description": "node security group",
                        "vpcId": self.existing_vpc_id,
                        "tags": {},
                        **(self.security_groups[a["id"]] or {}),
                    }
                return {
                    "id": a["id"],
                    "arn": self._arn("ec2", f"security-group/{a['id']}"),
                    "name": f"eks-cluster-sg-{a['id']}",
                    "description": "EKS created security group",
                    "vpcId": self.existing_vpc_id,
                    "tags": dict(self.cluster_security_group_tags),
                }
            case "aws:eks/getNodeGroups:getNodeGroups":
                return {
                    "id": a["clusterName"],
                    "clusterName": a["clusterName"],
                    "names": list(self.node_groups),
                }
            case "aws:eks/getNodeGroup:getNodeGroup":
                name = a["nodeGroupName"]
                if name not in self.node_groups:
                    return {}, [("nodeGroupName", f"no EKS Node Group {name} found")]
                templates = (
                    []
                    if self.node_groups[name] is None
                    else [{"id": f"lt-{_digest(name)[:17]}", "name": f"{name}-lt", "version": "1"}]
                )
                return {
                    "id": f"{a['clusterName']}:{name}",
                    "clusterName": a["clusterName"],
                    "nodeGroupName": name,
                    "launchTemplates": templates,
                }
            case "aws:ec2/getLaunchTemplate:getLaunchTemplate":
                for name, groups in self.node_groups.items():
                    if groups is not None and a["id"] == f"lt-{_digest(name)[:17]}":
                        return {
                            "id": a["id"],
                            "name": f"{name}-lt",
                            "vpcSecurityGroupIds": list(groups),
                        }
                return {}, [("id", "no matching EC2 Launch Template found")]
            case "eks:index:Cluster/getKubeconfig":
                # `__self__` arrives as the component's URN: its last part is the name.
                name = self.cluster_names[str(a["__self__"]).rsplit("::", 1)[-1]]
                kubeconfig = _mock_kubeconfig(name, profile=a.get("profileName"))
                return {"result": json.dumps(kubeconfig)}
        raise NotImplementedError(f"no mock for call {args.token}")

    def existing_cluster(self, name: str) -> dict[str, Any]:
        """An EKS cluster as DescribeCluster shows it, derived from its name."""
        digest = _digest(name)
        return {
            "id": name,
            "name": name,
            "arn": self._arn("eks", f"cluster/{name}"),
            "version": self.cluster_version,
            "endpoint": f"https://{digest.upper()}.gr7.{self.region}.eks.amazonaws.com",
            "certificateAuthorities": [{"data": "LS0tLS1CRUdJTi1NT0NLLUNBLS0tLS0K"}],
            "accessConfigs": [
                {
                    "authenticationMode": self.cluster_authentication_mode,
                    "bootstrapClusterCreatorAdminPermissions": True,
                }
            ],
            "vpcConfig": {
                # The EKS-created security group every node of the cluster is in.
                "clusterSecurityGroupId": f"sg-0c{digest[:15]}",
                "vpcId": f"vpc-0e{digest[:15]}",
                "subnetIds": [f"subnet-0e{digest[:13]}{i:02x}" for i in range(4)],
            },
        }

    def existing_subnet(self, subnet_id: str) -> dict[str, Any] | None:
        """A subnet as DescribeSubnets shows it; None for one configured as missing."""
        if subnet_id in self.subnets and self.subnets[subnet_id] is None:
            return None
        return {
            "id": subnet_id,
            "arn": self._arn("ec2", f"subnet/{subnet_id}"),
            "vpcId": self.existing_vpc_id,
            "tags": {},
            **(self.subnets.get(subnet_id) or {}),
        }

    def zones_of_region(self) -> list[tuple[str, str]]:
        """(name, zone ID) of every zone of the region, as this account sees them."""
        if self.region in self.zones:
            return list(self.zones[self.region])
        return plausible_zones(self.region)

    def _arn(self, service: str, resource: str, region: str | None = None) -> str:
        region = self.region if region is None else region
        return f"arn:{self.partition}:{service}:{region}:{MOCK_ACCOUNT}:{resource}"


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """A mock monitor that also keeps each registration's options and dependencies."""

    def __init__(self, mocks: pulumi.runtime.Mocks):
        super().__init__(mocks)
        self.registrations: dict[str, Registration] = {}
        # (token, arguments) of every invoke and method call, in order.
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def Invoke(self, request):
        self.calls.append((request.tok, _plain(rpc.deserialize_properties(request.args))))
        return super().Invoke(request)

    # The stock mock monitor has no Call (method calls on components, such as pulumi-eks's
    # Cluster.get_kubeconfig): answer them from the same Mocks.call.
    def Call(self, request):
        args = _plain(rpc.deserialize_properties(request.args))
        self.calls.append((request.tok, args))
        result = self.mocks.call(
            pulumi.runtime.MockCallArgs(token=request.tok, args=args, provider=request.provider)
        )
        returned = pulumi_mocks._sync_await(rpc.serialize_properties(result, {}))
        return provider_pb2.CallResponse(**{"return": returned})

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
                aliases=[_alias(alias) for alias in request.aliases],
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
    monitor = monitor or RecordingMonitor(
        ProgramMocks(region=config.get("aws:region", MOCK_REGION))
    )
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
    return Deployment(
        resources=dict(monitor.registrations),
        outputs=outputs,
        secret_outputs=secret,
        calls=list(monitor.calls),
    )


def _alias(alias: Any) -> dict[str, Any]:
    if alias.HasField("urn"):
        return {"urn": alias.urn}
    spec = alias.spec
    return {
        "name": spec.name,
        "type": spec.type,
        "parentUrn": spec.parentUrn,
        "noParent": spec.noParent,
    }


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


def _session_context(arn: str) -> dict[str, Any]:
    """What IAM answers for an ARN: an assumed-role session resolves to its role."""
    parts = arn.split(":", 5)
    partition, account, resource = parts[1], parts[4], parts[5]
    if resource.startswith("assumed-role/"):
        _, role, session = resource.split("/", 2)
        issuer = f"arn:{partition}:iam::{account}:role/{role}"
        return {
            "id": arn,
            "arn": arn,
            "issuerArn": issuer,
            "issuerName": role,
            "sessionName": session,
            "issuerId": "AROAEXAMPLE",
        }
    return {
        "id": arn,
        "arn": arn,
        "issuerArn": arn,
        "issuerName": "",
        "sessionName": "",
        "issuerId": "",
    }


def _mock_kubeconfig(cluster_name: str, profile: str | None = None) -> dict[str, Any]:
    """Shaped like pulumi-eks's: `aws eks get-token`, with AWS_PROFILE when a profile is
    given (pulumi-eks's `kubeconfigJson` is the variant without one)."""
    env = [
        {
            "name": "KUBERNETES_EXEC_INFO",
            "value": '{"apiVersion": "client.authentication.k8s.io/v1beta1"}',
        }
    ]
    if profile:
        env.append({"name": "AWS_PROFILE", "value": profile})
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
        "users": [
            {
                "name": "aws",
                "user": {
                    "exec": {
                        "apiVersion": "client.authentication.k8s.io/v1beta1",
                        "command": "aws",
                        "args": [
                            "eks",
                            "get-token",
                            "--cluster-name",
                            cluster_name,
                            "--output",
                            "json",
                        ],
                        "env": env,
                    }
                },
            }
        ],
    }
