"""Pure functions for MIG partitioning on AL2023 nodes: the mig-parted config and the
standalone k8s-mig-manager (DaemonSet, its RBAC and ConfigMap).

The manager applies the layout a node's `nvidia.com/mig.config` label names, from a config
generated here from the facts table for exactly the layouts the stack uses. Bottlerocket nodes
partition themselves at boot (builders/bottlerocket.py) and never run it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.device_plugin import CONFIG_CHECKSUM_ANNOTATION
from eks_gpu_slicing.builders.workloads import gpu_toleration
from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.settings.sharing import MigSettings, SharingProfile

NAME = "nvidia-mig-manager"
LABELS = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/part-of": facts.PROJECT}
CONFIG_KEY = "config.yaml"
# Where the ConfigMap is mounted in the manager's container; CONFIG_FILE points into it.
CONFIG_MOUNT = "/mig-parted-config"
HOST_ROOT_MOUNT = "/host"
# The manager's own state on the host (the upstream example's path; it is a systemd drop-in
# the manager writes so a host-side service can reapply the layout at boot).
HOST_MIG_MANAGER_STATE_FILE = "/etc/systemd/system/nvidia-mig-manager.service.d/override.conf"
# The boot-time script of MIG nodes (node_user_data), shipped as its source text.
STATE_RESET_SCRIPT = Path(__file__).with_name("mig_state_reset.py")
# What it sets nvidia.com/mig.config.state to at boot: anything but success keeps the device
# plugin off the node; `pending` is what the manager itself says while it works.
BOOT_STATE = "pending"
# The MIME boundary of user data (the one Karpenter and the EKS user guide use).
_MIME_BOUNDARY = "//"
_HEREDOC_END = "EKS_GPU_SLICING_SCRIPT"
# The EKS AL2023 NVIDIA AMI installs the driver on the host; the manager's default host
# NVIDIA directory is that of the GPU Operator's driver container. Same value as upstream.
HOST_NVIDIA_DIR = "/usr/local/nvidia"


def mig_parted_config(layouts: Mapping[str, tuple[MigSettings, set[str]]]) -> dict[str, Any]:
    """The mig-parted config (`version: v1`, `mig-configs`) for the layouts in use.

    `layouts` is Settings.mig_layouts: label value -> (layout, the MIG GPU models it is applied
    to). A layout whose slices are the same on each of its GPUs is one entry for all devices;
    one whose slices differ (`all-balanced`, or `all-1g.10gb` on an A100 40GB and an 80GB) gets
    one entry per GPU, matched by PCI device ID (`device-filter`), as mig-parted's own
    catalogue does. `all-disabled` is always there, to turn MIG off on a node by relabelling.
    """
    configs: dict[str, Any] = {"all-disabled": [{"devices": "all", "mig-enabled": False}]}
    for name, (layout, gpu_names) in sorted(layouts.items()):
        gpus = [facts.MIG_GPUS[g] for g in sorted(gpu_names)]
        per_gpu = [(gpu, layout.slices_on(gpu)) for gpu in gpus]
        distinct = {tuple(slices.items()) for _, slices in per_gpu}
        if len(distinct) == 1:
            configs[name] = [_entry(per_gpu[0][1])]
        else:
            configs[name] = [
                {"device-filter": [gpu.pci_device_id], **_entry(slices)} for gpu, slices in per_gpu
            ]
    return {"version": facts.MIG_PARTED_CONFIG_VERSION, "mig-configs": configs}


def node_user_data() -> str:
    """User data of AL2023 nodes whose profile is MIG (a managed node group's launch template,
    a Karpenter pool's EC2NodeClass): MIME multi-part, as both take it for AL2023 (EKS adds its
    NodeConfig part to a node group's; Karpenter v1.14 keeps every part of a node class's,
    pkg/providers/amifamily/bootstrap/nodeadm.go). Its one part is a cloud-init boothook,
    which runs at every boot, before nodeadm starts the kubelet: mig_state_reset.py with
    nvidia.com/mig.config.state and BOOT_STATE, so after a reboot (which clears the slices,
    and MIG mode on an H100 or H200, but leaves the label at success) the device plugin waits
    for the manager again (the script's docstring says how)."""
    script = STATE_RESET_SCRIPT.read_text()
    assert _HEREDOC_END not in script and f"--{_MIME_BOUNDARY}" not in script
    boothook = (
        "#cloud-boothook\n"
        "#!/bin/sh\n"
        "# eks-gpu-slicing: MIG slices do not survive a reboot, the node's mig.config.state\n"
        "# label does; reset it before the kubelet starts, so the device plugin waits for\n"
        "# k8s-mig-manager to partition the GPUs again.\n"
        f"exec python3 - '{facts.MIG_CONFIG_STATE_LABEL}' '{BOOT_STATE}' <<'{_HEREDOC_END}'\n"
        f"{script.rstrip()}\n"
        f"{_HEREDOC_END}\n"
    )
    return (
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{_MIME_BOUNDARY}"\n'
        "\n"
        f"--{_MIME_BOUNDARY}\n"
        'Content-Type: text/cloud-boothook; charset="us-ascii"\n'
        "\n"
        f"{boothook}"
        f"--{_MIME_BOUNDARY}--\n"
    )


def al2023_user_data(profile: SharingProfile, *, bottlerocket: bool = False) -> str | None:
    """The user data a GPU node group or Karpenter pool of this profile needs, or None: the
    boot-time reset (node_user_data) where the manager partitions the nodes, i.e. a MIG
    profile on AL2023. Bottlerocket partitions at boot from its own settings; nodes without
    MIG need nothing (EKS and Karpenter bootstrap them)."""
    if bottlerocket or not profile.is_mig:
        return None
    return node_user_data()


def _entry(slices: Mapping[str, int]) -> dict[str, Any]:
    return {"devices": "all", "mig-enabled": True, "mig-devices": dict(slices)}


def config_map(namespace: str, settings: Settings) -> dict[str, Any]:
    """The ConfigMap holding the generated mig-parted config, as {metadata, data}."""
    config = mig_parted_config(settings.mig_layouts)
    return {
        "metadata": {"name": f"{NAME}-config", "namespace": namespace, "labels": LABELS},
        "data": {CONFIG_KEY: yaml.safe_dump(config, sort_keys=False)},
    }


def service_account(namespace: str) -> dict[str, Any]:
    return {"metadata": {"name": NAME, "namespace": namespace, "labels": LABELS}}


def cluster_role() -> dict[str, Any]:
    """Exactly the API calls k8s-mig-manager v0.15.0 makes with CONFIG_FILE set:
    - nodes list and watch: the informer on its own node (cmd/nvidia-mig-manager/main.go,
      ContinuouslySyncMigConfigChanges);
    - nodes get and patch: read the node's labels, then merge-patch nvidia.com/mig.config.state
      and the nvidia.com/gpu.deploy.* labels on every run (pkg/mig/reconfigure/reconfigure.go,
      getCurrentNodeLabels, setNodeLabels);
    - pods list and delete: wait for GPU client pods on the node to go, delete the GPU
      Operator's validator pods (waitForPodDeletion, waitForPodsWithNodeSelector, deletePod).
    Its other calls (get its own pod, create a per-node ConfigMap) are made only when it
    generates the config from the hardware, which CONFIG_FILE turns off. The upstream example
    grants `""/*/*`."""
    return {
        "metadata": {"name": NAME, "labels": LABELS},
        "rules": [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch", "patch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "delete"]},
        ],
    }


def cluster_role_binding(namespace: str) -> dict[str, Any]:
    return {
        "metadata": {"name": NAME, "labels": LABELS},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": NAME,
        },
        "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
    }


def daemon_set(
    *,
    namespace: str,
    config_map_name: Any,
    gpu_clients_namespace: str,
    config_checksum: str,
) -> dict[str, Any]:
    """The standalone k8s-mig-manager, as {metadata, spec}.

    From the upstream v0.15.0 example (deployments/container/nvidia-mig-manager-example*.yaml):
    privileged with the host's PID and IPC namespaces and its root and /sys mounted (it runs
    nvidia-smi and mig-parted against the host driver), the env vars its main.go reads, and
    WITH_REBOOT=false (EKS nodes are not rebooted by a pod). Host GPU clients are not shut
    down (the Hopper example's choice; AL2023 runs no DCGM or NVSM services). It runs only on
    nodes whose profile is MIG (our label) and tolerates the GPU taint.
    `gpu_clients_namespace` is where it looks for GPU client pods to wait for: the device
    plugin's namespace.

    `config_checksum` (of the ConfigMap's data) is a pod annotation, so a changed config rolls
    the manager. It must: k8s-mig-manager v0.15.0 reacts only to a change of a node's
    nvidia.com/mig.config label and to its own start (cmd/nvidia-mig-manager/main.go, the
    node informer's Update and Add handlers), never to its config file. A node relabelled with
    a layout its mounted file lacks ends in `failed` (pkg/mig/reconfigure/reconfigure.go,
    validateMigConfig) until something restarts the manager; the new pod reads the new file
    and applies the node's label.
    """
    env = [
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {
            "name": "POD_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
        },
        {"name": "CONFIG_FILE", "value": f"{CONFIG_MOUNT}/{CONFIG_KEY}"},
        {"name": "HOST_ROOT_MOUNT", "value": HOST_ROOT_MOUNT},
        {"name": "HOST_NVIDIA_DIR", "value": HOST_NVIDIA_DIR},
        {"name": "HOST_MIG_MANAGER_STATE_FILE", "value": HOST_MIG_MANAGER_STATE_FILE},
        {"name": "DEFAULT_GPU_CLIENTS_NAMESPACE", "value": gpu_clients_namespace},
        {"name": "WITH_SHUTDOWN_HOST_GPU_CLIENTS", "value": "false"},
        {"name": "WITH_REBOOT", "value": "false"},
    ]
    selector = {"app.kubernetes.io/name": NAME}
    return {
        "metadata": {"name": NAME, "namespace": namespace, "labels": LABELS},
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {
                    "labels": {**LABELS, **selector},
                    "annotations": {CONFIG_CHECKSUM_ANNOTATION: config_checksum},
                },
                "spec": {
                    "serviceAccountName": NAME,
                    "hostPID": True,
                    "hostIPC": True,
                    "nodeSelector": {facts.MIG_NODE_LABEL: facts.MIG_NODE_VALUE},
                    "tolerations": [gpu_toleration()],
                    "priorityClassName": "system-node-critical",
                    "containers": [
                        {
                            "name": NAME,
                            "image": facts.MIG_MANAGER_IMAGE,
                            "imagePullPolicy": "IfNotPresent",
                            "env": env,
                            "securityContext": {"privileged": True},
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "64Mi"},
                                "limits": {"memory": "256Mi"},
                            },
                            "volumeMounts": [
                                {"name": "host-root", "mountPath": HOST_ROOT_MOUNT},
                                {"name": "host-sys", "mountPath": "/sys"},
                                {"name": "mig-parted-config", "mountPath": CONFIG_MOUNT},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "host-root", "hostPath": {"path": "/", "type": "Directory"}},
                        {"name": "host-sys", "hostPath": {"path": "/sys", "type": "Directory"}},
                        {"name": "mig-parted-config", "configMap": {"name": config_map_name}},
                    ],
                },
            },
        },
    }
