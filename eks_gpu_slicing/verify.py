"""After `pulumi up`: does GPU sharing actually work on the stack's cluster?

    python -m eks_gpu_slicing.verify dev [--kubeconfig FILE]     (or: make verify STACK=dev)

Reads the cluster through the Kubernetes API (kubeconfig from `pulumi stack output
kubeconfig --show-secrets`, or a file) and checks, per GPU node: the device plugin runs (or
Bottlerocket's built-in one), the node's config label names a profile that exists (and the
one its node group was given), allocatable virtual GPUs == physical GPUs x replicas, the MPS
control daemon on MPS nodes; then the demo pods share one GPU, Karpenter's controller and
overlays are ready when pools exist, and the GPU metrics exporter attributes metrics to pods.

The checks are pure functions over plain API objects (dicts, as `kubectl get -o json`
shows them); `collect` is the only part that talks to a cluster.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from eks_gpu_slicing import facts

INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
NODEGROUP_LABEL = "eks.amazonaws.com/nodegroup"
DEVICE_PLUGIN_POD_LABEL = ("app.kubernetes.io/name", facts.DEVICE_PLUGIN_CHART)
MPS_DAEMON_NAME = "mps-control-daemon"
DEMO_POD_LABEL = ("app", "gpu-deployment")
GPU_UUID = re.compile(r"UUID:\s*(GPU-[0-9a-fA-F-]+)")
# dcgm-exporter's per-pod series carry a non-empty pod label.
POD_METRIC = re.compile(r'^DCGM_FI_DEV_\w+\{[^}]*\bpod="[^"]+"', re.MULTILINE)


@dataclass(frozen=True)
class Result:
    check: str
    subject: str
    ok: bool
    detail: str


def _labels(obj: Mapping) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("labels") or {}


def _running(pod: Mapping) -> bool:
    status = pod.get("status") or {}
    ready = all(c.get("ready") for c in status.get("containerStatuses") or [{}])
    return status.get("phase") == "Running" and ready


def _node_name(pod: Mapping) -> str | None:
    return (pod.get("spec") or {}).get("nodeName")


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


def check_gpu_node(
    node: Mapping,
    pods: list[Mapping],
    profiles: Mapping[str, Mapping[str, Any]],
    expected_profile: str | None = None,
) -> list[Result]:
    name = node["metadata"]["name"]
    labels = _labels(node)
    on_node = [p for p in pods if _node_name(p) == name]
    out = []

    bottlerocket = _is_bottlerocket(node)
    key, value = DEVICE_PLUGIN_POD_LABEL
    plugin = [p for p in on_node if _labels(p).get(key) == value]
    if bottlerocket:
        out.append(Result("device plugin", name, True, "Bottlerocket built-in plugin"))
    elif not plugin:
        out.append(Result("device plugin", name, False, "no device plugin pod scheduled"))
    else:
        ok = any(_running(p) for p in plugin)
        phase = plugin[0].get("status", {}).get("phase")
        out.append(Result("device plugin", name, ok, "running" if ok else f"pod {phase}"))

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
    if instance is None:
        out.append(Result("allocatable", name, False, f"unknown GPU instance {instance_type}"))
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
            daemon = [p for p in on_node if MPS_DAEMON_NAME in p["metadata"]["name"]]
            ok = any(_running(p) for p in daemon)
            out.append(
                Result(
                    "mps daemon",
                    name,
                    ok,
                    "running" if ok else ("not running" if daemon else "no MPS control daemon"),
                )
            )
    return out


def check_demo(pods: list[Mapping], logs: Mapping[str, str]) -> list[Result]:
    key, value = DEMO_POD_LABEL
    demo = [p for p in pods if _labels(p).get(key) == value]
    if not demo:
        return []
    not_running = [p["metadata"]["name"] for p in demo if not _running(p)]
    out = [
        Result(
            "demo pods",
            f"{len(demo)} pods",
            not not_running,
            f"not running: {', '.join(not_running)}" if not_running else "all running",
        )
    ]
    uuids = Counter(
        m.group(1) for p in demo for m in GPU_UUID.finditer(logs.get(p["metadata"]["name"], ""))
    )
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


def _ready_condition(obj: Mapping) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def check_karpenter(
    node_pools: list[Mapping], overlays: list[Mapping], controllers: list[Mapping]
) -> list[Result]:
    if not node_pools:
        return []
    ready = sum(int((d.get("status") or {}).get("readyReplicas") or 0) for d in controllers)
    out = [Result("karpenter", "controller", ready > 0, f"{ready} ready replicas")]
    for overlay in overlays:
        ok = _ready_condition(overlay)
        out.append(
            Result("node overlay", overlay["metadata"]["name"], ok, "Ready" if ok else "not Ready")
        )
    if not overlays:
        out.append(Result("node overlay", "-", False, "node pools but no NodeOverlay"))
    return out


def check_metrics(exporter_pods: list[Mapping], metrics: Mapping[str, str]) -> list[Result]:
    out = []
    for pod in exporter_pods:
        name = pod["metadata"]["name"]
        text = metrics.get(name, "")
        ok = _running(pod) and bool(POD_METRIC.search(text))
        detail = "per-pod GPU metrics" if ok else "no DCGM series with a pod label"
        out.append(Result("gpu metrics", name, ok, detail))
    return out


def verify(state: Mapping[str, Any]) -> list[Result]:
    """Every check over a collected cluster state (see `collect` for its keys)."""
    profiles = {
        name: yaml.safe_load(text)
        for name, text in ((state.get("devicePluginConfigMap") or {}).get("data") or {}).items()
    }
    expected = state.get("expectedProfiles") or {}  # node group name prefix -> profile
    pods = state.get("pods") or []
    results = []
    gpu_nodes = [
        n
        for n in state.get("nodes") or []
        if _labels(n).get(facts.GPU_PRESENT_LABEL) == facts.GPU_PRESENT_VALUE
    ]
    if not gpu_nodes:
        results.append(Result("gpu nodes", "-", False, "no node labelled as a GPU node"))
    for node in gpu_nodes:
        group = _labels(node).get(NODEGROUP_LABEL, "")
        want = next((p for prefix, p in expected.items() if group.startswith(prefix)), None)
        results += check_gpu_node(node, pods, profiles, want)
    results += check_demo(pods, state.get("logs") or {})
    results += check_karpenter(
        state.get("nodePools") or [], state.get("nodeOverlays") or [], state.get("karpenter") or []
    )
    results += check_metrics(state.get("exporterPods") or [], state.get("metrics") or {})
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


def stack_output(stack: str, name: str) -> Any:
    """A stack output through the Pulumi CLI (secrets shown: the kubeconfig is one)."""
    text = subprocess.run(
        ["pulumi", "stack", "output", name, "--show-secrets", "--json", "--stack", stack],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(text)


def kubeconfig_dict(value: Any) -> dict:
    """The stack's kubeconfig output is pulumi-eks's kubeconfig JSON, as a string."""
    return json.loads(value) if isinstance(value, str) else dict(value)


def collect(api_client: Any, *, config_map: str, namespace: str, expected: Mapping) -> dict:
    """Read what verify() needs from a cluster (kubernetes.client.ApiClient)."""
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
        p["metadata"]["name"]: core.read_namespaced_pod_log(
            p["metadata"]["name"], p["metadata"]["namespace"]
        )
        for p in pods
        if _labels(p).get(key) == value and _running(p)
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
    metrics = {}
    for p in exporter:
        if _running(p):
            metrics[p["metadata"]["name"]] = core.connect_get_namespaced_pod_proxy_with_path(
                f"{p['metadata']['name']}:9400", p["metadata"]["namespace"], "metrics"
            )
    return {
        "nodes": plain(core.list_node().items),
        "pods": pods,
        "devicePluginConfigMap": plain(core.read_namespaced_config_map(config_map, namespace)),
        "expectedProfiles": dict(expected),
        "logs": logs,
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack", help="stack name")
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: the stack's output)")
    parser.add_argument("--state", help="a collected state as JSON, instead of a cluster")
    args = parser.parse_args(argv)
    if args.state:
        with open(args.state) as f:
            state = json.load(f)
    else:
        from kubernetes import config as kube_config

        from eks_gpu_slicing.stack_files import settings_of_stack

        settings = settings_of_stack(args.stack)
        if args.kubeconfig:
            api = kube_config.new_client_from_config(config_file=args.kubeconfig)
        else:
            api = kube_config.new_client_from_config_dict(
                kubeconfig_dict(stack_output(args.stack, "kubeconfig"))
            )
        expected = {f"gpu-{name}": g.sharing for name, g in settings.gpu_node_groups.items()}
        state = collect(
            api,
            config_map=stack_output(args.stack, "devicePluginConfigMap"),
            namespace=settings.device_plugin.namespace,
            expected=expected,
        )
    results = verify(state)
    print(table(results))
    failed = [r for r in results if not r.ok]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
