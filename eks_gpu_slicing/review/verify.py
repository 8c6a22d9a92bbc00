"""After `pulumi up`: does GPU sharing actually work on the stack's cluster?

    python -m eks_gpu_slicing.review.verify dev [--kubeconfig FILE]     (or: make verify STACK=dev)

Reads the cluster through the Kubernetes API and checks, per GPU node: the device plugin
runs and is Ready (or Bottlerocket's built-in one), the node's config label names a profile
that exists (and the one its node group or pool was given), allocatable virtual GPUs ==
physical GPUs x replicas, the MPS control daemon on MPS nodes; on MIG nodes (AL2023) the
layout label, `nvidia.com/mig.config.state=success` and a Ready k8s-mig-manager pod, and on every
MIG node allocatable per slice resource == GPUs x slices x replicas; on nodes of hami profiles
HAMi's device plugin Ready, the node registered with HAMi (`hami.io/node-nvidia-register`, one
entry per GPU with splitCount slices) and allocatable nvidia.com/gpu == GPUs x splitCount, and
HAMi's scheduler Ready; then the demo pods share one GPU, Karpenter's controller, node
classes, pools and overlays are Ready, and the GPU metrics exporter attributes metrics to the
pods that use a GPU (on hami nodes it cannot: device-level series only), and each tenant's
ResourceQuota is the one the stack sets (its used/hard per resource shown).

What the cluster should hold comes from the stack file (Pulumi.<stack>.yaml) and the sharing
ConfigMap, found by its labels. The only thing the Pulumi CLI is asked for is the stack's
`kubeconfig` output, and only without --kubeconfig.

The checks are pure functions over plain API objects (dicts, as `kubectl get -o json`
shows them); `collect` is the only part that talks to a cluster.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import karpenter, mig
from eks_gpu_slicing.builders.device_plugin import CONFIG_MAP_LABELS
from eks_gpu_slicing.builders.tenants import quota_hard
from eks_gpu_slicing.settings import ConfigError, Settings
from eks_gpu_slicing.settings.karpenter import quantity_value
from eks_gpu_slicing.settings.stack_files import StackFileError, settings_of_stack
from eks_gpu_slicing.settings.tenants import quota_counts, tenant_namespace

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
DEMO_POD_LABEL = ("app", "gpu-deployment")
GPU_UUID = re.compile(r"UUID:\s*(GPU-[0-9a-fA-F-]+)")
DCGM_SERIES = re.compile(r"^DCGM_FI_DEV_\w+(\{[^}]*\})?\s", re.MULTILINE)
# dcgm-exporter's per-pod series carry the pod's name; a GPU no pod uses keeps its
# device-level series without one (internal/pkg/transformation/kubernetes.go, 4.5.3-4.8.2 to
# 4.6.0-4.8.3).
POD_LABEL = re.compile(r'\bpod="([^"]+)"')
DCGM_EXPORTER_PORT = 9400  # the chart's service and container port (values.yaml)


def chart_fullname(release: str, chart: str) -> str:
    """The chart's `fullname` helper (templates/_helpers.tpl): the release name when it
    contains the chart's name, else release-chart, cut to 63 characters."""
    name = release if chart in release else f"{release}-{chart}"
    return name[:63].rstrip("-")


# The device-plugin chart (0.20.0) gives its plugin, MPS control daemon and GFD pods the same
# `app.kubernetes.io/name` label; only the DaemonSet and the container names tell them apart
# (templates/daemonset-device-plugin.yml, daemonset-mps-control-daemon.yml).
_PLUGIN_FULLNAME = chart_fullname(facts.DEVICE_PLUGIN_RELEASE_NAME, facts.DEVICE_PLUGIN_CHART)
DEVICE_PLUGIN_DAEMONSET = _PLUGIN_FULLNAME
DEVICE_PLUGIN_CONTAINER = "nvidia-device-plugin-ctr"
MPS_DAEMON_DAEMONSET = f"{_PLUGIN_FULLNAME}-mps-control-daemon"[:63].rstrip("-")
MPS_DAEMON_CONTAINER = "mps-control-daemon-ctr"
# What each value of nvidia.com/mig.config.state means for the node (mig-parted v0.15.0,
# pkg/mig/reconfigure: pending -> rebooting -> success | failed).
MIG_STATE_MEANING = {
    "pending": "the manager is repartitioning the GPUs (a MIG node also says so from its boot "
    "until the manager has run); the device plugin is paused",
    "rebooting": "the node reboots to change MIG mode",
    "failed": "mig-parted could not apply the layout; see the nvidia-mig-manager pod's log",
}


@dataclass(frozen=True)
class Result:
    check: str
    subject: str
    ok: bool
    detail: str


# --- Reading API objects -------------------------------------------------------------------


def _labels(obj: Mapping) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _name(obj: Mapping) -> str:
    return obj["metadata"]["name"]


def _ready(pod: Mapping) -> bool:
    """Running and Ready, as `kubectl get pods` shows READY: a crash-looping container
    keeps the pod Running but not Ready."""
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    return status.get("phase") == "Running" and ready


def _not_ready_detail(pod: Mapping) -> str:
    """Why a pod is not Ready, the way `kubectl describe` would start to say it."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        if container.get("ready"):
            continue
        state = container.get("state") or {}
        why = (state.get("waiting") or state.get("terminated") or {}).get("reason")
        restarts = container.get("restartCount") or 0
        return f"{container['name']} not ready ({why or 'running'}, {restarts} restarts)"
    return f"pod {status.get('phase') or 'unknown'}, not Ready"


def _node_name(pod: Mapping) -> str | None:
    return (pod.get("spec") or {}).get("nodeName")


def _owner_daemonset(pod: Mapping) -> str | None:
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "DaemonSet":
            return owner.get("name")
    return None


def _container_names(pod: Mapping) -> set[str]:
    return {c.get("name") for c in (pod.get("spec") or {}).get("containers") or []}


def is_device_plugin(pod: Mapping) -> bool:
    return _owner_daemonset(
        pod
    ) == DEVICE_PLUGIN_DAEMONSET or DEVICE_PLUGIN_CONTAINER in _container_names(pod)


def is_mps_daemon(pod: Mapping) -> bool:
    return _owner_daemonset(
        pod
    ) == MPS_DAEMON_DAEMONSET or MPS_DAEMON_CONTAINER in _container_names(pod)


def _is_hami(pod: Mapping, component: str) -> bool:
    """A pod of the hami chart's DaemonSet or Deployment: both carry the chart's name and
    their component (templates/device-plugin/daemonsetnvidia.yaml, scheduler/deployment.yaml)."""
    labels = _labels(pod)
    return (
        labels.get("app.kubernetes.io/name") == facts.HAMI_CHART
        and labels.get(facts.HAMI_COMPONENT_LABEL) == component
    )


def is_hami_device_plugin(pod: Mapping) -> bool:
    return _is_hami(pod, facts.HAMI_DEVICE_PLUGIN_COMPONENT)


def is_hami_scheduler(pod: Mapping) -> bool:
    return _is_hami(pod, facts.HAMI_SCHEDULER_COMPONENT)


def is_mig_manager(pod: Mapping) -> bool:
    return _owner_daemonset(pod) == mig.NAME or mig.NAME in _container_names(pod)


def _requests_gpu(pod: Mapping, resources: Iterable[str]) -> bool:
    """A pod holding (or about to hold) a GPU resource: extended resources are set in limits
    (and requests, if given, must equal them)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    names = set(resources)
    for container in (pod.get("spec") or {}).get("containers") or []:
        wanted = container.get("resources") or {}
        if names & {*(wanted.get("limits") or {}), *(wanted.get("requests") or {})}:
            return True
    return False


def _is_bottlerocket(node: Mapping) -> bool:
    return (
        "bottlerocket"
        in ((node.get("status") or {}).get("nodeInfo") or {}).get("osImage", "").lower()
    )


def profile_capacity(config: Mapping[str, Any]) -> tuple[str, int, str]:
    """(resource name, replicas per GPU, strategy) a device-plugin config advertises."""
    sharing = config.get("sharing") or {}
    # MPS wins when both are set (the plugin's rule).
    for strategy, key in (("mps", "mps"), ("time-slicing", "timeSlicing")):
        block = sharing.get(key)
        if block:
            resource = (block.get("resources") or [{}])[0]
            name = resource.get("name", facts.GPU_RESOURCE)
            if block.get("renameByDefault"):
                name += facts.SHARED_RESOURCE_SUFFIX
            return name, int(resource.get("replicas", 1)), strategy
    return facts.GPU_RESOURCE, 1, "none"


# --- What the stack file says the cluster holds ----------------------------------------------


def expectations(settings: Settings) -> dict[str, Any]:
    """Profiles per node group and pool, and the Karpenter objects the program creates,
    computed by the functions the program itself uses."""
    profiles = {f"gpu-{name}": g.sharing for name, g in settings.gpu_node_groups.items()}
    pools = settings.karpenter_pools
    return {
        "expectedMig": _expected_mig(settings),
        # hami profile -> the slices per GPU its nodes register (one installation, so every
        # hami profile has the same; only those node groups use: pools cannot be hami).
        "expectedHami": {
            group.sharing: {"splitCount": settings.profile_of(group).hami.split_count}
            for group in settings.hami_groups.values()
            if settings.profile_of(group).hami is not None
        },
        "expectedProfiles": profiles,
        "expectedPoolProfiles": {
            karpenter.node_pool_name(name): pool.sharing for name, pool in pools.items()
        },
        "expectedNodePools": sorted(karpenter.node_pool_name(name) for name in pools),
        # The program names each pool's EC2NodeClass as the pool.
        "expectedNodeClasses": sorted(karpenter.node_pool_name(name) for name in pools),
        # Per tenant namespace: the tenant and the quota's spec.hard the program sets.
        "expectedTenantQuotas": {
            tenant_namespace(name, tenant): {
                "tenant": name,
                "hard": quota_hard(quota_counts(settings, tenant)),
            }
            for name, tenant in settings.tenants.items()
        },
        "expectedOverlays": sorted(
            overlay["metadata"]["name"]
            for name, pool in pools.items()
            for overlay in karpenter.node_overlays(
                pool_name=name, pool=pool, profile=settings.sharing[pool.sharing]
            ).values()
        ),
    }


def _expected_mig(settings: Settings) -> dict[str, Any]:
    """MIG profile -> its layout label and, per MIG-capable instance type it applies to, what
    a node advertises: the report's `slicesPerNode` (SharingProfile.node_resources), GPUs x
    slices x replicas per slice resource."""
    expected = {}
    for name, profile in settings.sharing.items():
        if not profile.is_mig or profile.mig is None:
            continue
        resources = {
            instance_type: profile.node_resources(facts.GPU_INSTANCES[instance_type])
            for instance_type, gpu in facts.MIG_GPU_OF_INSTANCE.items()
            if not profile.mig.problems_on(facts.MIG_GPUS[gpu])
        }
        expected[name] = {"layout": profile.mig.layout_name, "resources": resources}
    return expected


def _expected_profile(node: Mapping, state: Mapping[str, Any]) -> str | None:
    labels = _labels(node)
    pool = labels.get(facts.NODE_POOL_LABEL)
    if pool:
        return (state.get("expectedPoolProfiles") or {}).get(pool)
    # Managed node groups are named gpu-<group>-<suffix>; the longest matching name wins.
    group = labels.get(NODEGROUP_LABEL, "")
    matches = [
        (len(prefix), profile)
        for prefix, profile in (state.get("expectedProfiles") or {}).items()
        if group == prefix or group.startswith(f"{prefix}-")
    ]
    return max(matches)[1] if matches else None


# --- Checks -----------------------------------------------------------------------------------


def check_gpu_node(
    node: Mapping,
    pods: list[Mapping],
    profiles: Mapping[str, Mapping[str, Any]],
    expected_profile: str | None = None,
    expected_mig: Mapping[str, Mapping[str, Any]] | None = None,
    expected_hami: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Result]:
    name = _name(node)
    labels = _labels(node)
    on_node = [p for p in pods if _node_name(p) == name]
    if is_hami_node(node, expected_profile, expected_hami):
        return check_hami_node(node, on_node, expected_profile, expected_hami or {})
    out = []

    bottlerocket = _is_bottlerocket(node)
    plugin = [p for p in on_node if is_device_plugin(p)]
    if bottlerocket:
        out.append(Result("device plugin", name, True, "Bottlerocket built-in plugin"))
    elif not plugin:
        out.append(Result("device plugin", name, False, "no device plugin pod scheduled"))
    else:
        ready = [p for p in plugin if _ready(p)]
        detail = f"{_name(ready[0])} Ready" if ready else _not_ready_detail(plugin[0])
        out.append(Result("device plugin", name, bool(ready), detail))

    profile = labels.get(facts.DEVICE_PLUGIN_CONFIG_LABEL)
    if bottlerocket:
        profile = None  # Bottlerocket's plugin reads its settings, not this label
    elif profile not in profiles:
        out.append(
            Result("config label", name, False, f"{profile!r} is not a profile {sorted(profiles)}")
        )
    elif expected_profile and profile != expected_profile:
        out.append(
            Result("config label", name, False, f"{profile!r}, expected {expected_profile!r}")
        )
    else:
        out.append(Result("config label", name, True, profile))

    instance_type = labels.get(INSTANCE_TYPE_LABEL)
    instance = facts.GPU_INSTANCES.get(instance_type)
    config = profiles.get(profile or expected_profile or "")
    mig_profile = (expected_mig or {}).get(profile or expected_profile or "")
    if instance is None:
        out.append(Result("allocatable", name, False, f"unknown GPU instance {instance_type}"))
    elif mig_profile is not None:
        out += check_mig_node(node, on_node, mig_profile, bottlerocket=bottlerocket)
    elif config is not None:
        resource, replicas, strategy = profile_capacity(config)
        expected = instance.gpus * replicas
        got = ((node.get("status") or {}).get("allocatable") or {}).get(resource, "0")
        ok = str(got) == str(expected)
        detail = f"{resource}={got}, expected {instance.gpus} GPU x {replicas} = {expected}"
        if not ok and str(got) == str(instance.gpus) and replicas > 1:
            detail += " (replicas not applied)"
        out.append(Result("allocatable", name, ok, detail))
        if strategy == "mps" and not bottlerocket:
            daemon = [p for p in on_node if is_mps_daemon(p)]
            ready = [p for p in daemon if _ready(p)]
            detail = (
                f"{_name(ready[0])} Ready"
                if ready
                else (_not_ready_detail(daemon[0]) if daemon else "no MPS control daemon")
            )
            out.append(Result("mps daemon", name, bool(ready), detail))
    return out


def is_hami_node(
    node: Mapping,
    expected_profile: str | None = None,
    expected_hami: Mapping[str, Mapping[str, Any]] | None = None,
) -> bool:
    """A node HAMi's device plugin serves: labelled so, or of a group the stack gives a hami
    profile."""
    source = _labels(node).get(facts.DEVICE_PLUGIN_SOURCE_LABEL)
    return source == facts.DEVICE_PLUGIN_FROM_HAMI or expected_profile in (expected_hami or {})


def check_hami_node(
    node: Mapping,
    on_node: list[Mapping],
    expected_profile: str | None,
    expected_hami: Mapping[str, Mapping[str, Any]],
) -> list[Result]:
    """A node of a hami profile: HAMi's device plugin Ready, the profile label, the node
    registered with HAMi (its plugin's annotation: one entry per GPU, each with splitCount
    slices and healthy) and allocatable nvidia.com/gpu == GPUs x splitCount."""
    name = _name(node)
    labels = _labels(node)
    out = []
    plugin = [p for p in on_node if is_hami_device_plugin(p)]
    ready = [p for p in plugin if _ready(p)]
    if ready:
        detail = f"{_name(ready[0])} Ready (HAMi)"
    else:
        detail = _not_ready_detail(plugin[0]) if plugin else "no HAMi device plugin pod scheduled"
    out.append(Result("device plugin", name, bool(ready), detail))

    profile = labels.get(facts.DEVICE_PLUGIN_CONFIG_LABEL)
    if expected_profile and profile != expected_profile:
        out.append(
            Result("config label", name, False, f"{profile!r}, expected {expected_profile!r}")
        )
    elif profile not in expected_hami:
        out.append(
            Result(
                "config label",
                name,
                False,
                f"{profile!r} is not a hami profile {sorted(expected_hami)}",
            )
        )
    else:
        out.append(Result("config label", name, True, profile))
    wanted = expected_hami.get(expected_profile or profile or "")
    instance = facts.GPU_INSTANCES.get(labels.get(INSTANCE_TYPE_LABEL, ""))
    if wanted is None or instance is None:
        why = "no hami profile" if wanted is None else "unknown GPU instance"
        out.append(Result("allocatable", name, False, why))
        return out
    split = int(wanted["splitCount"])
    out.append(_hami_registration(node, instance.gpus, split))
    expected = instance.gpus * split
    got = ((node.get("status") or {}).get("allocatable") or {}).get(facts.GPU_RESOURCE, "0")
    detail = f"{facts.GPU_RESOURCE}={got}, expected {instance.gpus} GPU x {split} = {expected}"
    out.append(Result("allocatable", name, str(got) == str(expected), detail))
    return out


def _hami_registration(node: Mapping, gpus: int, split: int) -> Result:
    """What HAMi's device plugin wrote on the node: a JSON list of its GPUs, each with
    `count` slices (deviceSplitCount) and `health` (pkg/device/devices.go DeviceInfo, whose
    fields are omitted when zero or false)."""
    name = _name(node)
    annotations = (node.get("metadata") or {}).get("annotations") or {}
    text = annotations.get(facts.HAMI_NODE_REGISTER_ANNOTATION)
    check = "hami registered"
    if not text:
        why = (
            f"no {facts.HAMI_NODE_REGISTER_ANNOTATION} annotation: HAMi's plugin has not registered"
        )
        return Result(check, name, False, why)
    try:
        devices = json.loads(text)
    except json.JSONDecodeError:
        return Result(check, name, False, f"{facts.HAMI_NODE_REGISTER_ANNOTATION} is not JSON")
    if not isinstance(devices, list) or not all(isinstance(d, Mapping) for d in devices):
        return Result(check, name, False, f"{facts.HAMI_NODE_REGISTER_ANNOTATION} is not a list")
    problems = []
    if len(devices) != gpus:
        problems.append(f"{len(devices)} GPUs registered, expected {gpus}")
    counts = sorted({d.get("count", 0) for d in devices})
    if counts != [split]:
        problems.append(f"slices per GPU {counts}, expected {split}")
    sick = [d.get("id", "?") for d in devices if not d.get("health")]
    if sick:
        problems.append(f"unhealthy: {', '.join(sick)}")
    if problems:
        return Result(check, name, False, "; ".join(problems))
    return Result(check, name, True, f"{gpus} GPU x {split} slices")


def check_hami(pods: list[Mapping], expected_hami: Mapping[str, Any]) -> list[Result]:
    """HAMi's scheduler (kube-scheduler, extender and webhook) Ready, where the stack
    installs HAMi: without it no hami pod is placed."""
    if not expected_hami:
        return []
    scheduler = [p for p in pods if is_hami_scheduler(p)]
    ready = [p for p in scheduler if _ready(p)]
    if ready:
        detail = f"{_name(ready[0])} Ready"
    else:
        detail = _not_ready_detail(scheduler[0]) if scheduler else "no hami-scheduler pod"
    return [Result("hami scheduler", facts.HAMI_NAMESPACE, bool(ready), detail)]


def check_mig_node(
    node: Mapping, on_node: list[Mapping], expected: Mapping[str, Any], *, bottlerocket: bool
) -> list[Result]:
    """A node whose profile is MIG: its layout applied (AL2023: the manager's state label and
    its pod), and every slice resource advertised as the stack computes it."""
    name = _name(node)
    labels = _labels(node)
    out = []
    if not bottlerocket:  # Bottlerocket partitions at boot: no manager, no state label
        layout = labels.get(facts.MIG_CONFIG_LABEL)
        state = labels.get(facts.MIG_CONFIG_STATE_LABEL)
        if layout != expected["layout"]:
            detail = f"{facts.MIG_CONFIG_LABEL}={layout!r}, expected {expected['layout']!r}"
            out.append(Result("mig config", name, False, detail))
        elif state != facts.MIG_CONFIG_STATE_SUCCESS:
            if state is None:
                why = f"no {facts.MIG_CONFIG_STATE_LABEL} label (the manager has not run)"
            else:
                why = f"{facts.MIG_CONFIG_STATE_LABEL}={state}"
                if state in MIG_STATE_MEANING:
                    why += f" ({MIG_STATE_MEANING[state]})"
            out.append(Result("mig config", name, False, f"{layout}: {why}"))
        else:
            out.append(Result("mig config", name, True, f"{layout}: {state}"))
        manager = [p for p in on_node if is_mig_manager(p)]
        ready = [p for p in manager if _ready(p)]
        detail = (
            f"{_name(ready[0])} Ready"
            if ready
            else (_not_ready_detail(manager[0]) if manager else f"no {mig.NAME} pod")
        )
        out.append(Result("mig manager", name, bool(ready), detail))

    instance_type = labels.get(INSTANCE_TYPE_LABEL, "")
    wanted = (expected.get("resources") or {}).get(instance_type)
    if wanted is None:
        detail = f"the profile's layout {expected['layout']!r} does not apply to {instance_type}"
        out.append(Result("allocatable", name, False, detail))
        return out
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    wrong = [
        f"{resource}={allocatable.get(resource, '0')}, expected {count}"
        for resource, count in sorted(wanted.items())
        if str(allocatable.get(resource, "0")) != str(count)
    ]
    gpus = facts.GPU_INSTANCES[instance_type].gpus
    if wrong:
        detail = "; ".join(wrong) + f" ({gpus} GPUs x slices x replicas)"
    else:
        detail = ", ".join(f"{r}={c}" for r, c in sorted(wanted.items()))
    out.append(Result("allocatable", name, not wrong, detail))
    return out


def check_demo(pods: list[Mapping], logs: Mapping[str, str]) -> list[Result]:
    key, value = DEMO_POD_LABEL
    demo = [p for p in pods if _labels(p).get(key) == value]
    if not demo:
        return []
    not_ready = [_name(p) for p in demo if not _ready(p)]
    out = [
        Result(
            "demo pods",
            f"{len(demo)} pods",
            not not_ready,
            f"not ready: {', '.join(not_ready)}" if not_ready else "all ready",
        )
    ]
    uuids = Counter(m.group(1) for p in demo for m in GPU_UUID.finditer(logs.get(_name(p), "")))
    shared = {u: n for u, n in uuids.items() if n > 1}
    out.append(
        Result(
            "demo sharing",
            f"{len(demo)} pods",
            bool(shared),
            ", ".join(f"{n} pods on {u}" for u, n in sorted(shared.items()))
            or f"no GPU named by two pods ({dict(uuids)})",
        )
    )
    return out


def _condition(obj: Mapping, kind: str) -> Result:
    """Karpenter's objects report a root `Ready` condition over their others (operatorpkg
    status conditions); when it is not True, the first False one says why."""
    name = _name(obj)
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready and ready.get("status") == "True":
        return Result(kind, name, True, "Ready")
    false = [c for c in conditions if c.get("status") == "False" and c.get("type") != "Ready"]
    why = false[0] if false else ready
    if why is None:
        return Result(kind, name, False, "no Ready condition yet")
    detail = f"{why.get('type')}: {why.get('reason') or why.get('status')}"
    if why.get("message"):
        detail += f" ({why['message']})"
    return Result(kind, name, False, detail)


def check_karpenter(state: Mapping[str, Any]) -> list[Result]:
    """Controller, and every node class, pool and overlay the stack creates, Ready."""
    expected_pools = state.get("expectedNodePools") or []
    if not expected_pools and not state.get("nodePools"):
        return []
    controllers = state.get("karpenter") or []
    ready = sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in controllers)
    out = [Result("karpenter", "controller", ready > 0, f"{ready} ready replicas")]
    for kind, objects, expected in (
        ("node class", state.get("nodeClasses"), state.get("expectedNodeClasses")),
        ("node pool", state.get("nodePools"), expected_pools),
        ("node overlay", state.get("nodeOverlays"), state.get("expectedOverlays")),
    ):
        by_name = {_name(o): o for o in objects or []}
        for name in expected or sorted(by_name):
            if name in by_name:
                out.append(_condition(by_name[name], kind))
            else:
                out.append(Result(kind, name, False, "not found"))
    return out


def _same_quantity(a: Any, b: Any) -> bool:
    try:
        return quantity_value(a) == quantity_value(b)
    except ValueError:
        return str(a) == str(b)


def check_tenants(state: Mapping[str, Any]) -> list[Result]:
    """Each tenant's ResourceQuota exists with the spec.hard the stack sets; its used/hard
    per resource the tenant was given (status, as the quota controller last counted)."""
    out = []
    quotas = state.get("tenantQuotas") or {}
    for namespace, expected in sorted((state.get("expectedTenantQuotas") or {}).items()):
        subject = f"{expected['tenant']} ({namespace})"
        quota = quotas.get(namespace)
        if not quota:
            detail = f"no ResourceQuota {facts.TENANT_QUOTA_NAME} in namespace {namespace}"
            out.append(Result("tenant quota", subject, False, detail))
            continue
        hard = ((quota.get("spec") or {}).get("hard")) or {}
        wanted = expected["hard"]
        wrong = [
            f"{key}: {hard.get(key, 'missing')}, the stack's {value}"
            for key, value in sorted(wanted.items())
            if key not in hard or not _same_quantity(hard[key], value)
        ]
        wrong += [f"{key}: {hard[key]}, not the stack's" for key in sorted(set(hard) - set(wanted))]
        if wrong:
            out.append(Result("tenant quota", subject, False, "; ".join(wrong)))
            continue
        status = quota.get("status") or {}
        used, counted = status.get("used") or {}, status.get("hard") or {}
        shown = [
            f"{key.removeprefix(facts.QUOTA_REQUESTS_PREFIX)} {used.get(key, '?')}/{value}"
            for key, value in sorted(wanted.items())
            if not _same_quantity(value, 0) or not _same_quantity(used.get(key, 0), 0)
        ]
        detail = ", ".join(shown) or "every GPU resource at 0"
        if not counted:
            detail += " (not counted yet by the quota controller)"
        out.append(Result("tenant quota", subject, True, detail))
    return out


def check_metrics(
    exporter_pods: list[Mapping],
    metrics: Mapping[str, str],
    pods: list[Mapping],
    gpu_resources: Iterable[str],
    hami_nodes: Iterable[str] = (),
) -> list[Result]:
    """Every exporter serves GPU series; where pods on its node use a GPU, each of them has
    its own series. A GPU no pod uses has device-level series only, and so has every GPU of a
    hami node: HAMi's device IDs (`GPU-<uuid>-<n>`) are not ones dcgm-exporter 4.5.3-4.8.2 maps
    to a GPU (internal/pkg/transformation/kubernetes.go, toDeviceToSharingPods)."""
    resources = set(gpu_resources)
    hami = set(hami_nodes)
    out = []
    for exporter in exporter_pods:
        name = _name(exporter)
        text = metrics.get(name, "")
        users = sorted(
            _name(p)
            for p in pods
            if _node_name(p) == _node_name(exporter) and _requests_gpu(p, resources)
        )
        attributed = {
            m.group(1) for s in DCGM_SERIES.finditer(text) for m in POD_LABEL.finditer(s.group(0))
        }
        if not _ready(exporter):
            out.append(Result("gpu metrics", name, False, _not_ready_detail(exporter)))
        elif not DCGM_SERIES.search(text):
            out.append(Result("gpu metrics", name, False, "no DCGM_FI_DEV series"))
        elif not users:
            detail = "device-level series (no pod on this node uses a GPU)"
            out.append(Result("gpu metrics", name, True, detail))
        elif _node_name(exporter) in hami:
            detail = (
                f"device-level series; HAMi slices of {len(users)} pods are not attributed by "
                "dcgm-exporter (per-container memory: HAMi's own metrics)"
            )
            out.append(Result("gpu metrics", name, True, detail))
        elif missing := [u for u in users if u not in attributed]:
            detail = f"no series with pod label for {', '.join(missing)}"
            out.append(Result("gpu metrics", name, False, detail))
        else:
            out.append(Result("gpu metrics", name, True, f"per-pod series for {len(users)} pods"))
    return out


def verify(state: Mapping[str, Any]) -> list[Result]:
    """Every check over a collected cluster state (see `collect` for its keys)."""
    config_map = state.get("devicePluginConfigMap")
    results = []
    if not config_map:
        where = state.get("devicePluginNamespace") or "its namespace"
        results.append(
            Result("sharing config", where, False, f"no ConfigMap labelled {_selector()}")
        )
    profiles = {
        name: yaml.safe_load(text) for name, text in ((config_map or {}).get("data") or {}).items()
    }
    pods = state.get("pods") or []
    # The stack's GPU nodes: every group and pool labels its nodes with the plugin that serves
    # them. nvidia.com/gpu.present alone is also on GPU nodes the stack does not own (an
    # existing cluster's; nodeadm sets it from Kubernetes 1.35), which are not ours to judge.
    gpu_nodes = [
        n
        for n in state.get("nodes") or []
        if _labels(n).get(facts.GPU_PRESENT_LABEL) == facts.GPU_PRESENT_VALUE
        and facts.DEVICE_PLUGIN_SOURCE_LABEL in _labels(n)
    ]
    if not gpu_nodes:
        results.append(
            Result(
                "gpu nodes",
                "-",
                False,
                f"no GPU node of this stack (labelled {facts.DEVICE_PLUGIN_SOURCE_LABEL})",
            )
        )
    expected_mig = state.get("expectedMig") or {}
    expected_hami = state.get("expectedHami") or {}
    hami_nodes = set()
    for node in gpu_nodes:
        expected_profile = _expected_profile(node, state)
        if is_hami_node(node, expected_profile, expected_hami):
            hami_nodes.add(_name(node))
        results += check_gpu_node(
            node, pods, profiles, expected_profile, expected_mig, expected_hami
        )
    results += check_hami(pods, expected_hami)
    results += check_demo(pods, state.get("logs") or {})
    results += check_karpenter(state)
    results += check_tenants(state)
    gpu_resources = {facts.GPU_RESOURCE} | {profile_capacity(c)[0] for c in profiles.values()}
    gpu_resources |= {
        r
        for m in expected_mig.values()
        for per_type in (m.get("resources") or {}).values()
        for r in per_type
    }
    results += check_metrics(
        state.get("exporterPods") or [], state.get("metrics") or {}, pods, gpu_resources, hami_nodes
    )
    return results


def table(results: list[Result]) -> str:
    rows = [("", "check", "subject", "detail")] + [
        ("ok" if r.ok else "FAIL", r.check, r.subject, r.detail) for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    )


# --- The thin client layer ---------------------------------------------------------------------


class VerifyError(Exception):
    """Verify cannot start: one line for the user, no traceback."""


def _selector() -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(CONFIG_MAP_LABELS.items()))


def stack_output(stack: str, name: str) -> Any:
    """A stack output through the Pulumi CLI (secrets shown: the kubeconfig is one)."""
    if shutil.which("pulumi") is None:
        raise VerifyError(
            "the Pulumi CLI is not installed: install it "
            "(https://www.pulumi.com/docs/iac/download-install/) to read the stack's "
            "kubeconfig, or pass a kubeconfig: make verify STACK=<stack> KUBECONFIG_FILE=<path>"
        )
    command = ["pulumi", "stack", "output", name, "--show-secrets", "--json", "--stack", stack]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise VerifyError(f"`pulumi stack output {name} --stack {stack}` failed: {last}")
    return json.loads(done.stdout)


def kubeconfig_dict(value: Any) -> dict:
    """The stack's kubeconfig output is pulumi-eks's kubeconfig JSON, as a string."""
    try:
        config = json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as exc:
        raise VerifyError(f"the stack's kubeconfig output is not JSON ({exc})") from None
    problem = kubeconfig_problem(config)
    if problem:
        raise VerifyError(f"cannot use the stack's kubeconfig output: {problem}")
    return dict(config)


def read_kubeconfig(path: str) -> dict:
    """A kubeconfig file's document; VerifyError, one line naming the file, for anything
    the Kubernetes client could not use (it would raise its own errors, or Python's, from
    deep inside its loader)."""
    where = f"cannot use the kubeconfig {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise VerifyError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise VerifyError(f"{where}: it is a folder, not a kubeconfig file") from None
    except UnicodeDecodeError:
        raise VerifyError(f"{where}: not a text file, so not a kubeconfig") from None
    except OSError as exc:
        raise VerifyError(f"{where}: cannot read it ({exc.strerror or exc})") from None
    try:
        config = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise VerifyError(f"{where}{at}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise VerifyError(f"{where}: not valid YAML ({exc})") from None
    problem = kubeconfig_problem(config)
    if problem:
        raise VerifyError(f"{where}: {problem}")
    return config


def kubeconfig_problem(config: Any) -> str | None:
    """Why a parsed document is not a kubeconfig the client can connect with, or None.

    The shape is client-go's clientcmd v1 Config (tools/clientcmd/api/v1/types.go):
    `clusters`, `users` and `contexts` are lists of `{name, cluster|user|context}`, a cluster
    has a `server`, a context names a cluster and a user, and `current-context` names the
    context to use (the Python client refuses a file without one)."""
    if config is None:
        return "the file is empty"
    if not isinstance(config, Mapping):
        kind = _yaml_kind(config)
        return f"not a kubeconfig: a YAML {kind}, not a mapping of clusters, contexts and users"
    entries: dict[str, dict[str, Any]] = {}
    for section, body in (("clusters", "cluster"), ("contexts", "context"), ("users", "user")):
        items = config.get(section)
        if not isinstance(items, list):
            return f"not a kubeconfig: no `{section}` list"
        entries[section] = {}
        for i, item in enumerate(items):
            if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
                return f"{section}[{i}] is not a `{{name: ..., {body}: ...}}` entry"
            if not isinstance(item.get(body) or {}, Mapping):
                return f"{section}[{i}] ({item['name']}): `{body}` is not a mapping"
            entries[section][item["name"]] = item.get(body) or {}
    current = config.get("current-context")
    if not isinstance(current, str) or not current:
        return "no `current-context` naming the context to use"
    context = entries["contexts"].get(current)
    if context is None:
        return f"current-context '{current}' is not in `contexts`"
    for key, section in (("cluster", "clusters"), ("user", "users")):
        name = context.get(key)
        if name not in entries[section]:
            return f"context '{current}' names {key} {name!r}, which is not in `{section}`"
    server = entries["clusters"][context["cluster"]].get("server")
    if not isinstance(server, str) or not server:
        return f"cluster '{context['cluster']}' has no `server` address (https://...)"
    user = entries["users"][context["user"]]
    exec_ = user.get("exec")
    # (The client logs a bad `exec` and goes on without credentials.)
    if exec_ is not None and not (
        isinstance(exec_, Mapping) and isinstance(exec_.get("command"), str)
    ):
        return f"user '{context['user']}': `exec` needs a `command` to run (aws, for EKS)"
    if not isinstance(user.get("token", ""), str):
        return f"user '{context['user']}': `token` is not a string"
    return None


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    return type(value).__name__


def collect(api_client: Any, *, namespace: str, expected: Mapping[str, Any]) -> dict:
    """Read what verify() needs from a cluster (kubernetes.client.ApiClient).

    `namespace`: the device plugin's; `expected`: expectations() of the stack's settings."""
    from kubernetes import client  # the one place that needs the client library

    core, apps, custom = (
        client.CoreV1Api(api_client),
        client.AppsV1Api(api_client),
        client.CustomObjectsApi(api_client),
    )
    plain = api_client.sanitize_for_serialization
    pods = plain(core.list_pod_for_all_namespaces().items)
    key, value = DEMO_POD_LABEL
    logs = {
        _name(p): core.read_namespaced_pod_log(_name(p), p["metadata"]["namespace"])
        for p in pods
        if _labels(p).get(key) == value and _ready(p)
    }

    def custom_list(group: str, version: str, plural: str) -> list:
        try:
            return custom.list_cluster_custom_object(group, version, plural)["items"]
        except client.ApiException as exc:
            if exc.status == 404:  # CRD not installed: no Karpenter on this stack
                return []
            raise

    # The chart's selector label is its name (templates/_helpers.tpl); it serves on :9400.
    exporter = [
        p for p in pods if _labels(p).get("app.kubernetes.io/name") == facts.DCGM_EXPORTER_CHART
    ]
    metrics = {
        _name(p): core.connect_get_namespaced_pod_proxy_with_path(
            f"{_name(p)}:{DCGM_EXPORTER_PORT}", p["metadata"]["namespace"], "metrics"
        )
        for p in exporter
        if _ready(p)
    }

    def tenant_quota(namespace: str) -> dict | None:
        try:
            return plain(core.read_namespaced_resource_quota(facts.TENANT_QUOTA_NAME, namespace))
        except client.ApiException as exc:
            if exc.status == 404:  # the quota, or its namespace, is not there
                return None
            raise

    return {
        "tenantQuotas": {
            namespace: tenant_quota(namespace)
            for namespace in expected.get("expectedTenantQuotas") or {}
        },
        "nodes": plain(core.list_node().items),
        "pods": pods,
        "devicePluginNamespace": namespace,
        "devicePluginConfigMap": _sharing_config_map(core, apps, plain, namespace),
        **expected,
        "logs": logs,
        "nodeClasses": custom_list(facts.NODE_CLASS_GROUP, "v1", "ec2nodeclasses"),
        "nodePools": custom_list("karpenter.sh", "v1", "nodepools"),
        "nodeOverlays": custom_list("karpenter.sh", "v1alpha1", "nodeoverlays"),
        "karpenter": plain(
            apps.list_deployment_for_all_namespaces(
                label_selector="app.kubernetes.io/name=karpenter"
            ).items
        ),
        "exporterPods": exporter,
        "metrics": metrics,
    }


def _sharing_config_map(core: Any, apps: Any, plain: Any, namespace: str) -> dict | None:
    """The ConfigMap the stack made, by its labels. It is auto-named and replaced
    create-before-delete, so for a moment there can be two: then the one the plugin's
    DaemonSet mounts."""
    found = plain(core.list_namespaced_config_map(namespace, label_selector=_selector()).items)
    if len(found) > 1:
        daemonset = plain(apps.read_namespaced_daemon_set(DEVICE_PLUGIN_DAEMONSET, namespace))
        mounted = {
            (v.get("configMap") or {}).get("name")
            for v in daemonset["spec"]["template"]["spec"].get("volumes") or []
        }
        found = [c for c in found if _name(c) in mounted] or found
    return found[0] if found else None


def read_cluster(stack: str, kubeconfig: str | None, root: Path | None = None) -> dict:
    """The collected state of the stack's cluster; VerifyError when it cannot be read.
    `root`: the folder of the stack file (default: the repository's)."""
    from kubernetes import config as kube_config
    from kubernetes.client import ApiException
    from urllib3.exceptions import HTTPError

    try:
        settings = settings_of_stack(stack, **({"root": root} if root else {}))
    except FileNotFoundError:
        raise VerifyError(f"no stack file Pulumi.{stack}.yaml") from None
    except StackFileError as exc:
        raise VerifyError(str(exc)) from None
    except ConfigError as exc:
        raise VerifyError(f"Pulumi.{stack}.yaml is not valid: {exc}") from None
    if kubeconfig:
        # Checked first, so that a file the client cannot use is one line naming it.
        read_kubeconfig(kubeconfig)
    try:
        if kubeconfig:
            # The client reads the file itself: it resolves relative certificate paths
            # against the file's folder.
            api = kube_config.new_client_from_config(config_file=kubeconfig)
        else:
            api = kube_config.new_client_from_config_dict(
                kubeconfig_dict(stack_output(stack, "kubeconfig"))
            )
    except kube_config.ConfigException as exc:
        where = f" {kubeconfig}" if kubeconfig else ""
        raise VerifyError(f"cannot use the kubeconfig{where}: {exc}") from None
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        # The client's loader takes every field to be of the type it expects, and fails
        # inside itself on one that is not (a number for certificate data, say).
        where = kubeconfig or "the stack's kubeconfig output"
        raise VerifyError(
            f"cannot use the kubeconfig {where}: a field of the wrong type "
            f"({type(exc).__name__}: {exc})"
        ) from None
    try:
        return collect(
            api, namespace=settings.device_plugin.namespace, expected=expectations(settings)
        )
    except ApiException as exc:
        raise VerifyError(f"the cluster refused a read: {exc.status} {exc.reason}") from None
    except HTTPError as exc:
        host = api.configuration.host
        raise VerifyError(f"cannot reach the cluster at {host}: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack name")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: the stack's output)")
    parser.add_argument("--state", help="a collected state as JSON, instead of a cluster")
    parser.add_argument(
        "--dir", type=Path, help="folder of the stack file (default: the repository root)"
    )
    args = parser.parse_args(argv)
    if args.state:
        with open(args.state) as f:
            state = json.load(f)
    else:
        try:
            state = read_cluster(args.stack, args.kubeconfig, args.dir)
        except VerifyError as exc:
            print(f"verify: {exc}", file=sys.stderr)
            return 2
    results = verify(state)
    print(table(results))
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
