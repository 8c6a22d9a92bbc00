"""The policy pack's rules as plain functions over resources: `policy/` runs them in
`pulumi preview --policy-pack policy` on a real stack, `make check` over the offline render.

A rule sees a `Resource` (type token, name, URN, properties, protect) and returns its
violations as messages; a graph rule sees every resource and returns (URN, message) pairs.
Rules are keyed on type tokens, so they cover what pulumi-eks creates inside its components
(aws:eks/cluster:Cluster, aws:eks/nodeGroup:NodeGroup, aws:ec2/launchTemplate:LaunchTemplate)
when a real preview shows them, and the components' own inputs offline.

In a preview, `props` is pulumi-policy's unknown-checking proxy: reading a value that is not
known yet raises its UnknownValueError, and the analyzer reports that rule as not run. So a
rule reads only the keys it needs (`.get`, never a copy or a walk of everything), takes
mappings and lists as `Mapping` and `Sequence` (the proxy's types), and so runs past every
unknown it does not need.

Imports only the standard library, PyYAML, facts and pulumi-policy's error type, so the policy
pack's own virtualenv (policy/requirements.txt) can run it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import yaml

from eks_gpu_slicing import facts

try:
    from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, UNKNOWN_OBJECT_VALUE, UnknownValueError
except ImportError:  # pragma: no cover - without pulumi-policy no value is ever unknown

    class UnknownValueError(Exception):  # type: ignore[no-redef]
        unknown_type_sentinel = ""

    UNKNOWN_ARRAY_VALUE = UNKNOWN_OBJECT_VALUE = "unknown"

Enforcement = Literal["mandatory", "advisory"]


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    props: Mapping[str, Any]
    urn: str = ""
    protect: bool = False

    @property
    def stack(self) -> str:
        """urn:pulumi:<stack>::<project>::<type>::<name>"""
        parts = self.urn.split(":", 3)
        return parts[2] if len(parts) > 3 else ""


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    enforcement: Enforcement
    check: Callable[[Resource], list[str]]


@dataclass(frozen=True)
class GraphRule:
    name: str
    description: str
    enforcement: Enforcement
    check: Callable[[list[Resource]], list[tuple[str, str]]]


@dataclass(frozen=True)
class Violation:
    rule: str
    enforcement: Enforcement
    resource: str  # URN, or name where there is none
    message: str

    def __str__(self) -> str:
        return f"[{self.enforcement}] {self.rule}: {self.resource}: {self.message}"


# --- Type tokens ------------------------------------------------------------------------------

EKS_CLUSTERS = ("eks:index:Cluster", "aws:eks/cluster:Cluster")
NODE_GROUPS = ("eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup")
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
NODE_POOL = "kubernetes:karpenter.sh/v1:NodePool"
NODE_CLASS = "kubernetes:karpenter.k8s.aws/v1:EC2NodeClass"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
HELM = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")

# AMI types that carry the NVIDIA driver (EKS AmiType enum).
NVIDIA_AMI_TYPES = frozenset(
    {
        "AL2023_x86_64_NVIDIA",
        "AL2023_ARM_64_NVIDIA",
        "BOTTLEROCKET_x86_64_NVIDIA",
        "BOTTLEROCKET_ARM_64_NVIDIA",
    }
)
# EC2NodeClass AMI aliases for which Karpenter picks the NVIDIA variant on GPU instances.
NVIDIA_CAPABLE_ALIAS_FAMILIES = frozenset({"al2023", "bottlerocket"})
# Charts of cluster system components: never in the `default` namespace.
SYSTEM_CHARTS = frozenset(
    {
        facts.DEVICE_PLUGIN_CHART,
        facts.KARPENTER_CHART,
        facts.KARPENTER_CRD_CHART,
        facts.DCGM_EXPORTER_CHART,
        facts.HAMI_CHART,
    }
)
# Families every one of whose instance types in the facts table has MIG GPUs: a Karpenter pool
# may name its types by family.
MIG_CAPABLE_FAMILIES = frozenset(
    family
    for family in {i.family for i in facts.GPU_INSTANCES.values()}
    if all(
        name in facts.MIG_GPU_OF_INSTANCE
        for name, i in facts.GPU_INSTANCES.items()
        if i.family == family
    )
)
INSTANCE_FAMILY_LABEL = "karpenter.k8s.aws/instance-family"
OPEN_TO_WORLD = "0.0.0.0/0"
PRODUCTION_STACK = re.compile(r"(^|[-_.])(prod|production|prd|live)($|[-_.])", re.IGNORECASE)
EXACT_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")


def _is_gpu_instance(instance_type: Any) -> bool:
    return isinstance(instance_type, str) and instance_type.split(".", 1)[0] in facts.GPU_FAMILIES


def _has_gpu_taint(taints: Any, effects: tuple[str, ...]) -> bool:
    return any(
        isinstance(t, Mapping)
        and t.get("key") == facts.GPU_TAINT_KEY
        and t.get("effect") in effects
        for t in taints or []
    )


# --- Mandatory: GPU nodes ----------------------------------------------------------------------


def gpu_node_group_setup(r: Resource) -> list[str]:
    """A managed node group of GPU instances uses an NVIDIA AMI, the GPU label and taint."""
    if r.type not in NODE_GROUPS:
        return []
    p = r.props
    labels = p.get("labels") or {}
    gpu = any(_is_gpu_instance(t) for t in p.get("instanceTypes") or []) or (
        labels.get(facts.GPU_PRESENT_LABEL) is not None
    )
    if not gpu:
        return []
    out = []
    # Only a group whose launch template names its own image (amiType CUSTOM) escapes this;
    # that image is not checked here. This stack's templates never set one.
    if p.get("amiType") not in NVIDIA_AMI_TYPES and p.get("amiType") != "CUSTOM":
        out.append(f"amiType {p.get('amiType')!r} is not an NVIDIA AMI {sorted(NVIDIA_AMI_TYPES)}")
    if labels.get(facts.GPU_PRESENT_LABEL) != facts.GPU_PRESENT_VALUE:
        out.append(f'label {facts.GPU_PRESENT_LABEL}: "{facts.GPU_PRESENT_VALUE}" missing')
    if not _has_gpu_taint(p.get("taints"), (facts.EKS_NO_SCHEDULE,)):
        out.append(f"taint {facts.GPU_TAINT_KEY} {facts.EKS_NO_SCHEDULE} missing")
    return out


def gpu_node_pool_setup(r: Resource) -> list[str]:
    """A Karpenter NodePool of GPU nodes labels and taints them like a GPU node group."""
    if r.type != NODE_POOL:
        return []
    template = ((r.props.get("spec") or {}).get("template")) or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    spec = template.get("spec") or {}
    requirements = spec.get("requirements") or []
    gpu = labels.get(facts.GPU_PRESENT_LABEL) is not None or any(
        _is_gpu_requirement(req) for req in requirements
    )
    if not gpu:
        return []
    out = []
    if labels.get(facts.GPU_PRESENT_LABEL) != facts.GPU_PRESENT_VALUE:
        out.append(
            f'spec.template.metadata.labels: {facts.GPU_PRESENT_LABEL}: "{facts.GPU_PRESENT_VALUE}"'
            " missing"
        )
    if not _has_gpu_taint(spec.get("taints"), (facts.K8S_NO_SCHEDULE,)):
        out.append(f"spec.template.spec.taints: {facts.GPU_TAINT_KEY} NoSchedule missing")
    return out


def _is_gpu_requirement(req: Any) -> bool:
    if not isinstance(req, Mapping):
        return False
    key, values = req.get("key", ""), req.get("values") or []
    if key == "karpenter.k8s.aws/instance-family":
        return any(v in facts.GPU_FAMILIES for v in values)
    if key == "node.kubernetes.io/instance-type":
        return any(_is_gpu_instance(v) for v in values)
    return key.startswith("karpenter.k8s.aws/instance-gpu-") and req.get("operator") in (
        "In",
        "Exists",
        "Gt",
    )


def node_class_ami(r: Resource) -> list[str]:
    """An EC2NodeClass selects its AMI by an alias whose family has an NVIDIA variant
    (Karpenter picks it for GPU instances); an AMI by ID, name or tag cannot be checked."""
    if r.type != NODE_CLASS:
        return []
    terms = (r.props.get("spec") or {}).get("amiSelectorTerms") or []
    if not terms:
        return ["spec.amiSelectorTerms is empty"]
    out = []
    for i, term in enumerate(terms):
        alias = term.get("alias") if isinstance(term, Mapping) else None
        family = alias.split("@", 1)[0] if isinstance(alias, str) else None
        if family not in NVIDIA_CAPABLE_ALIAS_FAMILIES:
            out.append(
                f"spec.amiSelectorTerms[{i}]: not an alias of "
                f"{sorted(NVIDIA_CAPABLE_ALIAS_FAMILIES)} (no NVIDIA variant guaranteed)"
            )
    return out


# --- Mandatory: sharing -----------------------------------------------------------------------


def device_plugin_configs(r: Resource) -> dict[str, dict[str, Any]]:
    """The device-plugin config files (api/config/v1) a ConfigMap holds, by entry name."""
    if r.type != CONFIG_MAP:
        return {}
    found = {}
    for key, text in (r.props.get("data") or {}).items():
        config = _device_plugin_config(text)
        if config is not None:
            found[key] = config
    return found


def _device_plugin_config(text: Any) -> dict[str, Any] | None:
    """A ConfigMap entry parsed, if it is a device-plugin config file."""
    try:
        parsed = yaml.safe_load(text) if isinstance(text, str) else None
    except yaml.YAMLError:
        return None
    if (
        isinstance(parsed, Mapping)
        and parsed.get("version") == facts.DEVICE_PLUGIN_CONFIG_VERSION
        and ("sharing" in parsed or "flags" in parsed)
    ):
        return dict(parsed)
    return None


def _shared_resources(config: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping]]:
    for strategy, block in (config.get("sharing") or {}).items():
        if isinstance(block, Mapping):
            for i, resource in enumerate(block.get("resources") or []):
                if isinstance(resource, Mapping):
                    yield strategy, f"sharing.{strategy}.resources[{i}]", resource


def sharing_replicas(r: Resource) -> list[str]:
    """Every shared resource of a device-plugin config has replicas >= 2 (else the plugin
    crashes on the node), and at most 48 with MPS (else the MPS control daemon refuses the
    GPU)."""
    out = []
    for entry, config in device_plugin_configs(r).items():
        for strategy, where, resource in _shared_resources(config):
            replicas = resource.get("replicas")
            if isinstance(replicas, bool) or not isinstance(replicas, int):
                out.append(f"data.{entry}: {where}.replicas is not an integer")
            elif replicas < facts.MIN_SHARING_REPLICAS:
                out.append(
                    f"data.{entry}: {where}.replicas {replicas} < {facts.MIN_SHARING_REPLICAS}"
                )
            elif strategy == "mps" and replicas > facts.MPS_MAX_CLIENTS_PER_GPU:
                out.append(
                    f"data.{entry}: {where}.replicas {replicas} > "
                    f"{facts.MPS_MAX_CLIENTS_PER_GPU} MPS clients per GPU"
                )
    return out


def no_mps_on_mig(r: Resource) -> list[str]:
    """A device-plugin config that partitions with MIG (flags.migStrategy single or mixed)
    does not share with MPS: the plugin does not support MPS on MIG devices."""
    out = []
    for entry, config in device_plugin_configs(r).items():
        strategy = (config.get("flags") or {}).get("migStrategy", "none")
        if strategy != "none" and "mps" in (config.get("sharing") or {}):
            out.append(
                f"data.{entry}: sharing.mps with flags.migStrategy {strategy}: the device "
                "plugin does not support MPS on MIG"
            )
    return out


# --- Mandatory: MIG ----------------------------------------------------------------------------


def mig_capable_instances(r: Resource) -> list[str]:
    """A node group or Karpenter pool labelled with a MIG layout (nvidia.com/mig.config) runs
    only instance types whose GPUs have MIG (facts.MIG_GPU_OF_INSTANCE): elsewhere the manager
    fails on every node and the plugin advertises no slice."""
    capable = sorted(facts.MIG_GPU_OF_INSTANCE)
    if r.type in NODE_GROUPS:
        labels = r.props.get("labels") or {}
        if labels.get(facts.MIG_CONFIG_LABEL) is None:
            return []
        types = list(r.props.get("instanceTypes") or [])
        if not types:
            return [
                f"label {facts.MIG_CONFIG_LABEL} on a group without instanceTypes: set them "
                f"to MIG-capable types {capable}"
            ]
        wrong = [t for t in types if t not in facts.MIG_GPU_OF_INSTANCE]
        return (
            [f"label {facts.MIG_CONFIG_LABEL} on instance types without MIG {wrong}: {capable}"]
            if wrong
            else []
        )
    if r.type != NODE_POOL:
        return []
    template = (r.props.get("spec") or {}).get("template") or {}
    labels = (template.get("metadata") or {}).get("labels") or {}
    if labels.get(facts.MIG_CONFIG_LABEL) is None:
        return []
    restricted = False
    out = []
    for req in (template.get("spec") or {}).get("requirements") or []:
        if not isinstance(req, Mapping) or req.get("operator") != "In":
            continue
        key = req.get("key")
        if key == facts.INSTANCE_TYPE_LABEL:
            allowed, what = facts.MIG_GPU_OF_INSTANCE, "instance types"
        elif key == INSTANCE_FAMILY_LABEL:
            allowed, what = MIG_CAPABLE_FAMILIES, "instance families"
        else:
            continue
        restricted = True
        wrong = [v for v in req.get("values") or [] if v not in allowed]
        if wrong:
            out.append(
                f"spec.template.metadata.labels {facts.MIG_CONFIG_LABEL} with {what} without "
                f"MIG {wrong}: MIG-capable {sorted(allowed)}"
            )
    if not restricted:
        out.append(
            f"spec.template.metadata.labels {facts.MIG_CONFIG_LABEL}, but no "
            f"{facts.INSTANCE_TYPE_LABEL} or {INSTANCE_FAMILY_LABEL} In requirement keeps the "
            f"pool to MIG-capable types {capable}"
        )
    return out


# --- Mandatory: HAMi -------------------------------------------------------------------------

# Charts that run a device plugin: the release's node selector of its plugin DaemonSet.
DEVICE_PLUGIN_SELECTORS = {
    facts.DEVICE_PLUGIN_CHART: ("nodeSelector",),
    facts.HAMI_CHART: ("devicePlugin", "nvidiaNodeSelector"),
}


def _values_at(r: Resource, path: tuple[str, ...]) -> Any:
    """The release's value at `path` (None where any part is missing), read key by key."""
    value: Any = r.props.get("values")
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def hami_leaves_other_pods_alone(r: Resource) -> list[str]:
    """A HAMi release changes no pod but those that name its scheduler
    (scheduler.forceOverwriteDefaultScheduler false: the chart's default moves every pod that
    asks for nvidia.com/gpu, on any node, to HAMi's scheduler), runs its device plugin only on
    nodes labelled for it, and opens no NodePort on every node."""
    if r.type not in HELM or r.props.get("chart") != facts.HAMI_CHART:
        return []
    out = []
    if _values_at(r, ("scheduler", "forceOverwriteDefaultScheduler")) is not False:
        out.append(
            "values.scheduler.forceOverwriteDefaultScheduler is not false: HAMi's webhook "
            "would move every pod that asks for nvidia.com/gpu to HAMi's scheduler"
        )
    selector = _values_at(r, DEVICE_PLUGIN_SELECTORS[facts.HAMI_CHART]) or {}
    if selector.get(facts.DEVICE_PLUGIN_SOURCE_LABEL) != facts.DEVICE_PLUGIN_FROM_HAMI:
        out.append(
            "values.devicePlugin.nvidiaNodeSelector does not require "
            f"{facts.DEVICE_PLUGIN_SOURCE_LABEL}: {facts.DEVICE_PLUGIN_FROM_HAMI}"
        )
    for service in (("scheduler", "service", "type"), ("devicePlugin", "service", "type")):
        kind = _values_at(r, service)
        if kind != "ClusterIP":
            out.append(f"values.{'.'.join(service)} is {kind!r}, not ClusterIP (a NodePort)")
    return out


def one_device_plugin_per_node(resources: list[Resource]) -> list[tuple[str, str]]:
    """No two device-plugin releases (NVIDIA's, HAMi's) select the same nodes: both would
    register nvidia.com/gpu for the same GPUs. Each must require its own value of
    eks-gpu-slicing/device-plugin."""
    releases = [
        r for r in resources if r.type in HELM and r.props.get("chart") in DEVICE_PLUGIN_SELECTORS
    ]
    if len(releases) < 2:
        return []
    out = []
    for r in releases:
        selector = _values_at(r, DEVICE_PLUGIN_SELECTORS[r.props["chart"]]) or {}
        source = selector.get(facts.DEVICE_PLUGIN_SOURCE_LABEL)
        others = [
            o
            for o in releases
            if o is not r
            and (_values_at(o, DEVICE_PLUGIN_SELECTORS[o.props["chart"]]) or {}).get(
                facts.DEVICE_PLUGIN_SOURCE_LABEL
            )
            == source
        ]
        if source is None or others:
            out.append(
                (
                    r.urn or r.name,
                    f"chart {r.props['chart']}: its device plugin's node selector does not "
                    f"require a {facts.DEVICE_PLUGIN_SOURCE_LABEL} value of its own",
                )
            )
    return out


def hami_kube_scheduler_version(resources: list[Resource]) -> list[tuple[str, str]]:
    """HAMi's kube-scheduler image is of the cluster's Kubernetes minor version (a newer one is
    outside Kubernetes' version-skew policy; the chart picks its scheduler config's API version
    by the cluster's)."""
    versions = [
        r.props.get("version")
        for r in resources
        if r.type in EKS_CLUSTERS and isinstance(r.props.get("version"), str)
    ]
    if not versions:
        return []  # a cluster this stack did not create: its version is not in the graph
    out = []
    for r in resources:
        if r.type not in HELM or r.props.get("chart") != facts.HAMI_CHART:
            continue
        tag = _values_at(r, ("scheduler", "kubeScheduler", "image", "tag"))
        minor = re.match(r"^v(\d+\.\d+)\.\d+$", tag) if isinstance(tag, str) else None
        if minor is None or minor.group(1) not in versions:
            out.append(
                (
                    r.urn or r.name,
                    f"values.scheduler.kubeScheduler.image.tag {tag!r} is not of the cluster's "
                    f"Kubernetes version {', '.join(versions)}",
                )
            )
    return out


# --- Mandatory: what gets installed -----------------------------------------------------------


def chart_pinned(r: Resource) -> list[str]:
    """Every Helm chart at an exact version: a range or no version installs whatever is newest
    the day a node is replaced."""
    if r.type not in HELM:
        return []
    version = r.props.get("version")
    if not isinstance(version, str) or not EXACT_VERSION.match(version):
        return [f"chart {r.props.get('chart')!r} version {version!r} is not an exact version"]
    return []


def _images(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, image) of every `image` in a tree: a string, or Helm's {repository, tag}."""
    if isinstance(value, Mapping):
        for key in value:  # the keys alone: iterating a mapping reads none of its values
            here = f"{path}.{key}" if path else str(key)
            child = _image_or_subtree(value, key)
            if key == "image" and (
                isinstance(child, str) or (isinstance(child, Mapping) and "repository" in child)
            ):
                yield here, child
            else:
                yield from _images(child, here)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        for i in range(len(value)):
            yield from _images(_image_or_subtree(value, i), f"{path}[{i}]")


def _image_or_subtree(container: Any, key: Any) -> Any:
    """container[key], or None where it is an unknown value that cannot hold an image.

    An unknown `image` is an image the rule cannot check, and an unknown list or object may
    hold some: both stop the rule. Any other unknown (a role ARN in an annotation, a cluster
    name, an env value) is a scalar, not an image, and is passed over. The engine sends an
    unknown of a Python program as a string, whatever it will become; `pulumi up`, where every
    input is known, checks what a preview could not.
    """
    try:
        return container[key]
    except UnknownValueError as unknown:
        if key == "image" or unknown.unknown_type_sentinel in (
            UNKNOWN_ARRAY_VALUE,
            UNKNOWN_OBJECT_VALUE,
        ):
            raise
        return None


def image_tag_problem(image: Any) -> str | None:
    if isinstance(image, Mapping):
        if image.get("digest"):
            return None
        tag = image.get("tag")
        # A chart that leaves the tag empty uses its own appVersion: pinned by the chart.
        if tag in (None, ""):
            return None
        return "tag latest" if str(tag) == "latest" else None
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return "no tag"
    return "tag latest" if last.rsplit(":", 1)[1] == "latest" else None


def images_tagged(r: Resource) -> list[str]:
    """No container image without a tag or tagged `latest`, in Kubernetes objects and in
    Helm values."""
    if not r.type.startswith("kubernetes:") or r.type.startswith("pulumi:"):
        return []
    tree = r.props.get("values") if r.type in HELM else r.props.get("spec")
    out = []
    for path, image in _images(tree or {}):
        problem = image_tag_problem(image)
        if problem:
            out.append(f"{path}: {image} ({problem})")
    return out


def system_namespace(r: Resource) -> list[str]:
    """System components (device plugin, Karpenter, metrics exporter) stay out of `default`."""
    if r.type not in HELM or r.props.get("chart") not in SYSTEM_CHARTS:
        return []
    namespace = r.props.get("namespace") or "default"
    return (
        [f"chart {r.props['chart']} installed in namespace default"]
        if namespace == "default"
        else []
    )


# --- Mandatory: the control plane --------------------------------------------------------------


# pulumi-eks's Cluster inputs and aws.eks.Cluster's properties, read one field at a time: the
# KMS key is unknown on a first preview, and only the rule about encryption needs it.


def _cluster_secrets_key(r: Resource) -> Any:
    p = r.props
    if r.type == "eks:index:Cluster":
        return p.get("encryptionConfigKeyArn")
    encryption = p.get("encryptionConfig") or {}
    if "secrets" not in (encryption.get("resources") or []):
        return None
    return (encryption.get("provider") or {}).get("keyArn")


def _cluster_endpoint(r: Resource) -> Mapping[str, Any]:
    """Where the endpoint settings are: the component's inputs, or the cluster's vpcConfig."""
    return r.props if r.type == "eks:index:Cluster" else (r.props.get("vpcConfig") or {})


def cluster_secrets_encrypted(r: Resource) -> list[str]:
    """Kubernetes secrets envelope-encrypted with a KMS key."""
    if r.type not in EKS_CLUSTERS:
        return []
    return [] if _cluster_secrets_key(r) else ["secrets are not encrypted with a KMS key"]


def cluster_logs(r: Resource) -> list[str]:
    """Every control-plane log type on (api, audit, authenticator, controllerManager,
    scheduler)."""
    if r.type not in EKS_CLUSTERS:
        return []
    enabled = r.props.get("enabledClusterLogTypes") or []
    missing = sorted(set(facts.CLUSTER_LOG_TYPES) - set(enabled))
    return [f"control-plane logs off: {', '.join(missing)}"] if missing else []


def protected_endpoint(r: Resource) -> list[str]:
    """A protected stack's public API endpoint is not open to 0.0.0.0/0."""
    if r.type not in EKS_CLUSTERS or not r.protect:
        return []
    endpoint = _cluster_endpoint(r)
    if not endpoint.get("endpointPublicAccess", True):
        return []
    if OPEN_TO_WORLD in (endpoint.get("publicAccessCidrs") or [OPEN_TO_WORLD]):
        return ["public API endpoint open to 0.0.0.0/0 on a protected stack"]
    return []


# --- Mandatory: node placement and metadata ---------------------------------------------------


def imdsv2_required(r: Resource) -> list[str]:
    """Nodes only answer IMDSv2 (session tokens required)."""
    p = r.props
    if r.type == LAUNCH_TEMPLATE:
        tokens = (p.get("metadataOptions") or {}).get("httpTokens")
        return [] if tokens == "required" else [f"metadataOptions.httpTokens is {tokens!r}"]
    if r.type == NODE_CLASS:
        # Karpenter's default is required; only an explicit other value is a problem.
        tokens = ((p.get("spec") or {}).get("metadataOptions") or {}).get("httpTokens", "required")
        return [] if tokens == "required" else [f"spec.metadataOptions.httpTokens is {tokens!r}"]
    if r.type in NODE_GROUPS:
        # Either pulumi-eks builds an IMDSv2 launch template, or the group has its own (whose
        # metadataOptions this rule checks as a LaunchTemplate).
        if p.get("enableIMDSv2") or p.get("launchTemplate"):
            return []
        return ["neither enableIMDSv2 nor a launch template requiring IMDSv2"]
    return []


def nodes_in_private_subnets(resources: list[Resource]) -> list[tuple[str, str]]:
    """No node group in a subnet the stack's VPCs list as public."""
    groups = [r for r in resources if r.type in NODE_GROUPS]
    if not groups:
        return []
    public: set[str] = set()
    for r in resources:
        if r.type == "awsx:ec2:Vpc":
            public.update(s for s in r.props.get("publicSubnetIds") or [] if isinstance(s, str))
    out = []
    for r in groups:
        exposed = sorted(public.intersection(r.props.get("subnetIds") or []))
        if exposed:
            out.append((r.urn or r.name, f"nodes in public subnets {exposed}"))
    return out


# --- Advisory -----------------------------------------------------------------------------------


def gpu_memory_per_virtual_gpu(resources: list[Resource]) -> list[tuple[str, str]]:
    """Under 1 GiB of GPU memory per virtual GPU leaves too little for any real model."""
    groups = []
    for r in resources:
        if r.type in NODE_GROUPS:
            profile = (r.props.get("labels") or {}).get(facts.DEVICE_PLUGIN_CONFIG_LABEL)
            instances = [
                facts.GPU_INSTANCES[t]
                for t in r.props.get("instanceTypes") or []
                if isinstance(t, str) and t in facts.GPU_INSTANCES
            ]
            if isinstance(profile, str) and instances:
                groups.append((r, profile, instances))
    # Only the config entries those groups use: any other entry may be unknown in a preview.
    wanted = {profile for _, profile, _ in groups}
    configs: dict[str, dict[str, Any]] = {}
    for r in resources:
        if r.type == CONFIG_MAP:
            data = r.props.get("data") or {}
            for profile in sorted(wanted.intersection(data)):
                config = _device_plugin_config(data[profile])
                if config is not None:
                    configs[profile] = config
    out = []
    for r, profile, instances in groups:
        config = configs.get(profile)
        if config is None:
            continue
        for instance in instances:
            for _, where, resource in _shared_resources(config):
                replicas = resource.get("replicas")
                if isinstance(replicas, int) and replicas > 0:
                    mib = instance.gpu_memory_mib / replicas
                    if mib < facts.MIN_COMFORTABLE_GPU_MIB_PER_VIRTUAL_GPU:
                        out.append(
                            (
                                r.urn or r.name,
                                f"{instance.name} with profile {profile}: {mib:.0f} MiB "
                                f"of GPU memory per virtual GPU ({where}.replicas {replicas})",
                            )
                        )
    return out


def time_slicing_fail_requests(r: Resource) -> list[str]:
    """On a time-sliced profile, failRequestsGreaterThanOne off lets a pod ask for 2 virtual
    GPUs and believe it got twice the GPU; it gets no more than with one."""
    out = []
    for entry, config in device_plugin_configs(r).items():
        block = (config.get("sharing") or {}).get("timeSlicing")
        if isinstance(block, Mapping) and not block.get("failRequestsGreaterThanOne", False):
            out.append(f"data.{entry}: timeSlicing.failRequestsGreaterThanOne is off")
    return out


def production_protected(r: Resource) -> list[str]:
    """A stack named like production protects its cluster."""
    if r.type not in EKS_CLUSTERS or r.protect or not PRODUCTION_STACK.search(r.stack):
        return []
    return [f"stack {r.stack!r} looks like production but the cluster is not protected"]


RULES: tuple[Rule, ...] = (
    Rule("gpu-node-group-setup", gpu_node_group_setup.__doc__, "mandatory", gpu_node_group_setup),
    Rule("gpu-node-pool-setup", gpu_node_pool_setup.__doc__, "mandatory", gpu_node_pool_setup),
    Rule("node-class-nvidia-ami", node_class_ami.__doc__, "mandatory", node_class_ami),
    Rule("sharing-replicas", sharing_replicas.__doc__, "mandatory", sharing_replicas),
    Rule("no-mps-on-mig", no_mps_on_mig.__doc__, "mandatory", no_mps_on_mig),
    Rule(
        "mig-capable-instances",
        mig_capable_instances.__doc__,
        "mandatory",
        mig_capable_instances,
    ),
    Rule(
        "hami-leaves-other-pods-alone",
        hami_leaves_other_pods_alone.__doc__,
        "mandatory",
        hami_leaves_other_pods_alone,
    ),
    Rule("chart-pinned", chart_pinned.__doc__, "mandatory", chart_pinned),
    Rule("image-tagged", images_tagged.__doc__, "mandatory", images_tagged),
    Rule(
        "cluster-secrets-encrypted",
        cluster_secrets_encrypted.__doc__,
        "mandatory",
        cluster_secrets_encrypted,
    ),
    Rule("cluster-logs", cluster_logs.__doc__, "mandatory", cluster_logs),
    Rule("protected-endpoint", protected_endpoint.__doc__, "mandatory", protected_endpoint),
    Rule("imdsv2-required", imdsv2_required.__doc__, "mandatory", imdsv2_required),
    Rule("system-namespace", system_namespace.__doc__, "mandatory", system_namespace),
    Rule(
        "time-slicing-fail-requests",
        time_slicing_fail_requests.__doc__,
        "advisory",
        time_slicing_fail_requests,
    ),
    Rule("production-protected", production_protected.__doc__, "advisory", production_protected),
)
GRAPH_RULES: tuple[GraphRule, ...] = (
    GraphRule(
        "nodes-in-private-subnets",
        nodes_in_private_subnets.__doc__,
        "mandatory",
        nodes_in_private_subnets,
    ),
    GraphRule(
        "one-device-plugin-per-node",
        one_device_plugin_per_node.__doc__,
        "mandatory",
        one_device_plugin_per_node,
    ),
    GraphRule(
        "hami-kube-scheduler-version",
        hami_kube_scheduler_version.__doc__,
        "mandatory",
        hami_kube_scheduler_version,
    ),
    GraphRule(
        "gpu-memory-per-virtual-gpu",
        gpu_memory_per_virtual_gpu.__doc__,
        "advisory",
        gpu_memory_per_virtual_gpu,
    ),
)


def evaluate(resources: list[Resource]) -> list[Violation]:
    """Every rule over every resource, in a stable order."""
    found = [
        Violation(rule.name, rule.enforcement, r.urn or r.name, message)
        for r in resources
        for rule in RULES
        for message in rule.check(r)
    ]
    found += [
        Violation(rule.name, rule.enforcement, where, message)
        for rule in GRAPH_RULES
        for where, message in rule.check(resources)
    ]
    return found
