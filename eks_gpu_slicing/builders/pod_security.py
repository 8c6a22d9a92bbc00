"""How hardened the stack's own pods are, and which Pod Security Standards level each namespace
the stack creates enforces.

The demo Deployment and the benchmark Job meet the `restricted` profile (non-root, no
privilege escalation, every capability dropped, the runtime's default seccomp profile) and
mount no service-account token. The namespaces they go to enforce `restricted`; namespaces
that hold the NVIDIA add-ons enforce what those charts need. What checks this (the profile's
controls and checkov, with its accepted findings) is review/pod_security_checks.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from eks_gpu_slicing import facts

if TYPE_CHECKING:
    from eks_gpu_slicing.settings import Settings

# Pod Security Standards levels, least to most restrictive.
PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
POD_SECURITY_LABEL = "pod-security.kubernetes.io"

# The uid (and gid) the stack's own pods run as. Neither image defines a user: any numeric
# id works (the nvidia runtime's device nodes are world-readable and writable), and one
# above 10000 cannot be a host account. Keep the same uid for every pod that shares an MPS
# GPU: an MPS server serves one user at a time, and clients of a second uid queue until the
# first user's clients are gone (nvidia-cuda-mps-control(1)). Bottlerocket's built-in MPS
# serves non-root clients only once /run/nvidia is 0755 (bottlerocket-kernel-kit #415, 2026):
# on older Bottlerocket MPS nodes a CUDA app of this uid fails (nvidia-smi, the demo's, does
# not use MPS). 65532 is the conventional `nonroot` id of distroless images.
WORKLOAD_UID = 65532
# Scratch space: the root filesystem is read-only; HOME points here too, since CUDA (the
# compute cache, ~/.nv) and PyTorch write below HOME, and a uid with no passwd entry gets /.
SCRATCH_DIR = "/tmp"
SCRATCH_VOLUME = "scratch"


def pod_security_context(uid: int = WORKLOAD_UID) -> dict[str, Any]:
    """The pod-level part of `restricted`: non-root with a fixed id, RuntimeDefault seccomp."""
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """The container-level part of `restricted`, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }


def scratch_volume(size_limit: str) -> dict[str, Any]:
    """A writable emptyDir for SCRATCH_DIR, capped so a runaway write evicts only this pod."""
    return {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": size_limit}}


def scratch_mount() -> dict[str, Any]:
    return {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_DIR}


# --- Namespaces -------------------------------------------------------------------------------

# What each kind of workload the stack places needs, and why.
WORKLOAD_LEVELS: dict[str, tuple[str, str]] = {
    "demo": (RESTRICTED, "the demo Deployment meets `restricted`"),
    "benchmark": (
        RESTRICTED,
        "the benchmark Job meets `restricted`: its own MPS control daemon and server run as "
        "the pod's non-root uid in the same container (pipe and log directories under /tmp), "
        "so it needs neither root, nor added capabilities, nor the host's IPC namespace",
    ),
    "device-plugin": (
        PRIVILEGED,
        "the device plugin mounts the kubelet's device-plugins directory (hostPath), and "
        "its MPS control daemon and GFD containers run privileged",
    ),
    "gpu-metrics": (
        PRIVILEGED,
        "dcgm-exporter runs as root with SYS_ADMIN added (profiling metrics) and hostPID, and "
        "mounts the kubelet's pod-resources socket (hostPath)",
    ),
    "hami": (
        PRIVILEGED,
        "HAMi's device plugin runs privileged with hostPID and SYS_ADMIN and mounts host "
        "paths (the kubelet's device-plugins directory, its library directory, /usr/bin, /tmp, "
        "/var, /sys); its scheduler and certificate Jobs share the release's namespace",
    ),
    "karpenter": (
        BASELINE,
        "the Karpenter chart's controller is not verified here against `restricted` (only "
        "its values: RuntimeDefault seccomp, no host network); `baseline` blocks nothing it "
        "does, and warn/audit at `restricted` report any gap",
    ),
}


def workload_placements(settings: Settings) -> dict[str, set[str]]:
    """{namespace: the kinds of WORKLOAD_LEVELS placed there} for every namespace the stack
    puts objects in (Settings.namespaces names the same ones)."""
    placed = [(settings.device_plugin.namespace, "device-plugin")]
    if settings.demo_workload.enabled and not settings.demo_in_tenant:
        # (A demo that runs as a tenant is in the tenant's namespace, at the tenant's level.)
        placed.append((settings.demo_workload.namespace, "demo"))
    if settings.benchmark.enabled:
        placed.append((settings.benchmark.namespace, "benchmark"))
    if settings.gpu_metrics.enabled:
        placed.append((settings.gpu_metrics.namespace, "gpu-metrics"))
    if settings.karpenter_installs_here:
        placed.append((settings.karpenter.namespace, "karpenter"))
    if settings.hami is not None:
        placed.append((facts.HAMI_NAMESPACE, "hami"))
    placements: dict[str, set[str]] = {}
    for namespace, kind in placed:
        placements.setdefault(namespace, set()).add(kind)
    return placements


def least_restrictive(levels: Iterable[str]) -> str:
    return min(levels, key=LEVELS.index)


def namespace_levels(placements: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """{namespace: level} from {namespace: workload kinds placed there}: a namespace shared
    by several workloads enforces what the least restricted of them needs."""
    return {
        namespace: least_restrictive(WORKLOAD_LEVELS[kind][0] for kind in kinds)
        for namespace, kinds in placements.items()
    }


def namespace_labels(enforce: str) -> dict[str, str]:
    """Pod Security Admission labels for a namespace enforcing `enforce`.

    `enforce` checks only pods; `warn` and `audit` also check workload objects (a
    Deployment's or Job's pod template), so a template that would be refused is reported
    when it is applied rather than as a controller that silently creates no pods. Below
    `restricted`, warn and audit are at `restricted` to show what keeps the namespace there.
    """
    if enforce not in LEVELS:
        raise ValueError(f"unknown Pod Security Standards level {enforce!r}")
    report = RESTRICTED if enforce == BASELINE else enforce
    return {
        f"{POD_SECURITY_LABEL}/enforce": enforce,
        f"{POD_SECURITY_LABEL}/warn": report,
        f"{POD_SECURITY_LABEL}/audit": report,
    }
