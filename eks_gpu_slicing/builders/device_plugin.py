"""Pure functions for the NVIDIA device plugin: its config files, Helm values and checks.

No Pulumi here: the DevicePlugin component turns these into resources, and tests call them
directly. Everything is derived from the sharing profiles, the single source of truth.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import workloads
from eks_gpu_slicing.settings import SharingProfile

# Pod annotation whose value changes whenever any config entry changes. The plugin's
# config-manager only watches the node label, and the chart adds no checksum for an external
# ConfigMap, so without this an edited profile would never reach a running plugin.
CONFIG_CHECKSUM_ANNOTATION = "checksum/config"

# The sharing ConfigMap is auto-named; `make verify` finds it by these labels, so it needs
# nothing but the cluster (no stack output).
CONFIG_MAP_LABELS = {
    "app.kubernetes.io/part-of": facts.PROJECT,
    "app.kubernetes.io/component": "device-plugin-config",
}


def device_plugin_config(profile: SharingProfile) -> dict[str, Any]:
    """One complete device-plugin config file (api/config/v1) for a sharing profile."""
    if profile.is_mig:
        return _mig_config(profile)
    config: dict[str, Any] = {
        "version": facts.DEVICE_PLUGIN_CONFIG_VERSION,
        "flags": {
            # Whole GPUs only: this project does not partition with MIG (and MPS does not
            # work with MIG at all: the plugin refuses to start).
            "migStrategy": "none",
            # A node whose GPU cannot be initialised should show a failing plugin pod, not a
            # node that silently advertises nothing.
            "failOnInitError": True,
        },
    }
    if profile.shared and not profile.is_hami:
        block = "mps" if profile.strategy == "mps" else "timeSlicing"
        config["sharing"] = {
            block: {
                "renameByDefault": profile.rename_by_default,
                # Written out even when unset, so the entry says what the plugin will do.
                "failRequestsGreaterThanOne": profile.fail_requests_over_one,
                "resources": [{"name": facts.GPU_RESOURCE, "replicas": profile.replicas}],
            }
        }
    # strategy "none": no `sharing` block at all; replicas 1 would crash the plugin. A hami
    # profile's nodes run HAMi's plugin, never this one (the release selects the `helm`
    # nodes); its entry keeps devicePlugin.defaultProfile and the node's config label
    # meaningful, and says whole GPUs should this plugin ever read it.
    return config


def mig_slice_resources(profile: SharingProfile) -> list[str]:
    """Every resource the profile's slices are advertised as, on any MIG GPU its layout fits
    (a config entry is per profile, not per GPU: `all-balanced` names other slices on an A100
    than on an H200, and the plugin leaves alone a resource its node does not have)."""
    if profile.mig is None:
        return []
    if profile.mig.strategy == "single":
        return [facts.GPU_RESOURCE]
    names: list[str] = []
    for gpu in facts.MIG_GPUS.values():
        if profile.mig.problems_on(gpu):
            continue
        for slice_name in profile.mig.slices_on(gpu):
            resource = gpu.profiles[slice_name].resource_name
            if resource not in names:
                names.append(resource)
    return names


def _mig_config(profile: SharingProfile) -> dict[str, Any]:
    assert profile.mig is not None
    config: dict[str, Any] = {
        "version": facts.DEVICE_PLUGIN_CONFIG_VERSION,
        "flags": {"migStrategy": profile.mig.strategy, "failOnInitError": True},
    }
    if profile.replicas is not None:
        # Time-slicing on MIG: on nvidia.com/gpu with `single`, on each mig-* resource with
        # `mixed`, every slice type alike. MPS on MIG is refused by the settings.
        config["sharing"] = {
            "timeSlicing": {
                "renameByDefault": False,
                "failRequestsGreaterThanOne": profile.fail_requests_over_one,
                "resources": [
                    {"name": name, "replicas": profile.replicas}
                    for name in mig_slice_resources(profile)
                ],
            }
        }
    return config


def config_map_data(profiles: Mapping[str, SharingProfile]) -> dict[str, str]:
    """ConfigMap data: one entry per profile, named as the node label will name it."""
    return {
        name: yaml.safe_dump(device_plugin_config(profile), sort_keys=False)
        for name, profile in sorted(profiles.items())
    }


def config_checksum(data: Mapping[str, str]) -> str:
    """A stable digest of the ConfigMap data (same data, same digest, run after run)."""
    canonical = json.dumps(dict(data), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def helm_values(
    *,
    config_map_name: Any,
    default_profile: str,
    checksum: str,
    gfd: bool = False,
    mig: bool = False,
    system_node_selector: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Values for the nvidia-device-plugin chart.

    `system_node_selector`: where the cluster's system nodes are (ClusterHandle's), for NFD's
    master and garbage collector with `gfd`; None or empty: no selector.

    `config_map_name` is the ConfigMap resource's name output, so the release cannot be
    created before the ConfigMap exists; `config.map` is never set as well (the chart
    refuses both). The plugin, its MPS control daemon and GFD all take `nodeSelector` and
    `tolerations`; the MPS daemon adds `nvidia.com/mps.capable=true` to the selector itself.
    """
    gpu_taint = {"key": facts.GPU_TAINT_KEY, "operator": "Exists", "effect": facts.K8S_NO_SCHEDULE}
    values: dict[str, Any] = {
        "config": {"name": config_map_name, "default": default_profile},
        # Only our labelled GPU nodes whose plugin is this release: Bottlerocket nodes run
        # their own, and two plugins on one GPU would both advertise it.
        "nodeSelector": {
            facts.GPU_PRESENT_LABEL: facts.GPU_PRESENT_VALUE,
            facts.DEVICE_PLUGIN_SOURCE_LABEL: facts.DEVICE_PLUGIN_FROM_HELM,
        },
        "tolerations": [gpu_taint, {"key": "CriticalAddonsOnly", "operator": "Exists"}],
        "podAnnotations": {CONFIG_CHECKSUM_ANNOTATION: checksum},
        "mps": {"root": facts.MPS_ROOT},
        "gfd": {"enabled": gfd},
    }
    if mig:
        # The MIG manager pauses the plugin (and GFD) while it repartitions a node by setting
        # their nvidia.com/gpu.deploy.* labels to paused-for-mig-change, then back to true.
        # It waits for the pods to go only through nvidia.com/gpu.deploy.client in their
        # nodeSelector (workloads.mig_client_node_selector; every GPU node of the stack has
        # it). A map-only nodeSelector cannot say "not paused", so the chart's affinity does;
        # absent labels match too, so nodes without MIG keep their plugin. On MIG nodes it
        # also waits for the layout (partitioned_only). This replaces the chart's default
        # affinity (NFD or gpu.present): nodeSelector already requires gpu.present.
        values["nodeSelector"].update(workloads.mig_client_node_selector())
        values["affinity"] = workloads.mig_paused_affinity(
            facts.MIG_DEPLOY_DEVICE_PLUGIN_LABEL,
            facts.MIG_DEPLOY_GFD_LABEL,
            partitioned_only=True,
        )
    if gfd:
        # GFD pulls in the Node Feature Discovery sub-chart. Its worker tolerates only
        # nvidia.com/gpu=present:NoSchedule, so on our nodes (nvidia.com/gpu=true) it would
        # never run, and GFD would have no PCI labels to work from.
        values["nfd"] = {"worker": {"tolerations": [gpu_taint]}}
        if system_node_selector:
            system = dict(system_node_selector)
            values["nfd"] |= {"master": {"nodeSelector": system}, "gc": {"nodeSelector": system}}
    return values


def check_device_plugin_config(config: Any) -> list[str]:
    """Problems the device plugin would have with a parsed config file (api/config/v1).

    Encodes the plugin's own rules: version v1, a non-empty resources list, a name on every
    resource, only full GPUs shared, replicas an integer >= 2 (at most 48 with MPS, which the
    MPS control daemon refuses beyond), and no keys it would ignore.
    """
    if not isinstance(config, Mapping):
        return ["config is not a mapping"]
    problems = _unknown_keys(config, facts.DEVICE_PLUGIN_CONFIG_KEYS[""], "")
    if config.get("version") != facts.DEVICE_PLUGIN_CONFIG_VERSION:
        problems.append(f"version: must be {facts.DEVICE_PLUGIN_CONFIG_VERSION}")
    flags = config.get("flags", {})
    problems += _unknown_keys(flags, facts.DEVICE_PLUGIN_CONFIG_KEYS["flags"], "flags.")
    if flags.get("migStrategy", "none") not in facts.MIG_STRATEGIES:
        problems.append(f"flags.migStrategy: not one of {sorted(facts.MIG_STRATEGIES)}")
    for section in ("plugin", "gfd"):
        problems += _unknown_keys(
            flags.get(section, {}),
            facts.DEVICE_PLUGIN_CONFIG_KEYS[f"flags.{section}"],
            f"flags.{section}.",
        )
    sharing = config.get("sharing", {})
    problems += _unknown_keys(sharing, facts.DEVICE_PLUGIN_CONFIG_KEYS["sharing"], "sharing.")
    for strategy in ("timeSlicing", "mps"):
        if strategy in sharing:
            problems += _check_replicated(
                sharing[strategy], f"sharing.{strategy}", mps=strategy == "mps"
            )
    if "mps" in sharing and flags.get("migStrategy", "none") != "none":
        problems.append("sharing.mps: MPS is not supported with MIG (migStrategy must be none)")
    return problems


def _check_replicated(block: Any, path: str, *, mps: bool) -> list[str]:
    if not isinstance(block, Mapping):
        return [f"{path}: not a mapping"]
    problems = _unknown_keys(block, facts.DEVICE_PLUGIN_CONFIG_KEYS["sharing.*"], f"{path}.")
    for flag in ("renameByDefault", "failRequestsGreaterThanOne"):
        if flag in block and not isinstance(block[flag], bool):
            problems.append(f"{path}.{flag}: must be a boolean")
    resources = block.get("resources")
    if not resources:
        return [*problems, f"{path}.resources: no resources specified"]
    for i, resource in enumerate(resources):
        where = f"{path}.resources[{i}]"
        problems += _unknown_keys(
            resource, facts.DEVICE_PLUGIN_CONFIG_KEYS["sharing.*.resources[]"], f"{where}."
        )
        name = resource.get("name")
        if not name:
            problems.append(f"{where}.name: no resource name specified")
        elif name not in (facts.GPU_RESOURCE, "gpu") and "mig-" not in name:
            problems.append(f"{where}.name: only GPUs and MIG devices can be shared, not {name}")
        replicas = resource.get("replicas")
        if isinstance(replicas, bool) or not isinstance(replicas, int):
            problems.append(f"{where}.replicas: must be an integer")
        elif replicas < facts.MIN_SHARING_REPLICAS:
            problems.append(
                f"{where}.replicas: number of replicas must be >= {facts.MIN_SHARING_REPLICAS}"
            )
        elif mps and replicas > facts.MPS_MAX_CLIENTS_PER_GPU:
            # The MPS control daemon's own check (cmd/mps-control-daemon/mps/device.go): it
            # exits with "invalid MPS configuration", and no MPS pod on the node starts.
            problems.append(
                f"{where}.replicas: maximum allowed replicas exceeded: {replicas} > "
                f"{facts.MPS_MAX_CLIENTS_PER_GPU} (MPS clients per GPU)"
            )
    return problems


def _unknown_keys(mapping: Any, known: frozenset[str], prefix: str) -> list[str]:
    if not isinstance(mapping, Mapping):
        return [f"{prefix.rstrip('.')}: not a mapping"]
    return [
        f"{prefix}{key}: unknown key, ignored by the plugin" for key in mapping if key not in known
    ]
