"""How hardened the stack's own pods are, and which Pod Security Standards level each namespace
the stack creates enforces.

The demo Deployment and the benchmark Job meet the `restricted` profile (non-root, no
privilege escalation, every capability dropped, the runtime's default seccomp profile) and
mount no service-account token. The namespaces they go to enforce `restricted`; namespaces
that hold the NVIDIA add-ons enforce what those charts need. The checkov findings that remain
on the rendered workloads are listed, each with its reason, in ACCEPTED_CHECKOV_FINDINGS; any
other finding fails the tests (tests/test_pod_security.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

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


# --- What `restricted` asks of a pod -----------------------------------------------------------

# Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-standards/):
# the volume types `restricted` allows.
RESTRICTED_VOLUME_SOURCES = frozenset(
    [
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ]
)
SECCOMP_ALLOWED = ("RuntimeDefault", "Localhost")


def restricted_problems(pod: Mapping[str, Any]) -> list[str]:
    """What keeps a pod spec from the `restricted` profile (its `baseline` controls included,
    except the AppArmor, SELinux, /proc mount and sysctl ones, which the stack never sets)."""
    problems = [
        f"{field} is true" for field in ("hostNetwork", "hostPID", "hostIPC") if pod.get(field)
    ]
    pod_context = pod.get("securityContext") or {}
    for volume in pod.get("volumes") or []:
        sources = set(volume) - {"name"}
        if not sources <= RESTRICTED_VOLUME_SOURCES:
            problems.append(f"volume {volume['name']}: {sorted(sources)} not allowed")
    containers = [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]
    for container in containers:
        where = f"container {container['name']}"
        context = container.get("securityContext") or {}
        merged = {**pod_context, **context}
        if context.get("privileged"):
            problems.append(f"{where}: privileged")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if merged.get("runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true")
        if merged.get("runAsUser") == 0:
            problems.append(f"{where}: runAsUser is 0")
        if (merged.get("seccompProfile") or {}).get("type") not in SECCOMP_ALLOWED:
            problems.append(f"{where}: seccompProfile is not RuntimeDefault or Localhost")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            problems.append(f"{where}: capabilities do not drop ALL")
        added = set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            problems.append(f"{where}: adds capabilities {sorted(added)}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            problems.append(f"{where}: hostPort")
    return problems


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
    if settings.demo_workload.enabled:
        placed.append((settings.demo_workload.namespace, "demo"))
    if settings.benchmark.enabled:
        placed.append((settings.benchmark.namespace, "benchmark"))
    if settings.gpu_metrics.enabled:
        placed.append((settings.gpu_metrics.namespace, "gpu-metrics"))
    if settings.karpenter.enabled:
        placed.append((settings.karpenter.namespace, "karpenter"))
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


# --- checkov ----------------------------------------------------------------------------------

# checkov's Kubernetes checks (3.3) that stay failed on the demo Deployment and benchmark
# Job, and why. Every other failed check fails the tests.
ACCEPTED_CHECKOV_FINDINGS: dict[str, str] = {
    "CKV_K8S_43": "Image should use digest: images are pinned to exact tags (settings refuse "
    "`latest` and untagged images) and a digest cannot be resolved offline; the image "
    "settings accept name@sha256:... for whoever needs immutable references",
    "CKV_K8S_15": "Image Pull Policy should be Always: the tags are pinned, and Always would "
    "make every pod start depend on the registry (Docker Hub rate limits anonymous pulls) "
    "for multi-GB CUDA and PyTorch images a node already has",
    "CKV_K8S_8": "Liveness Probe should be configured (demo): a restart does not repair a "
    "GPU; the readiness probe (nvidia-smi -L) takes a pod that lost its GPU out of service",
    "CKV2_K8S_6": "Pods should have a NetworkPolicy: neither workload listens or connects to "
    "anything, and EKS enforces NetworkPolicy only with the VPC CNI's network policy agent, "
    "which this stack does not enable",
}

CHECKOV_ENV = "CHECKOV"
CHECKOV_REQUIREMENTS = "requirements-checkov.txt"


@dataclass(frozen=True)
class CheckovFinding:
    check_id: str
    name: str
    resource: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.check_id} {self.name}"


def checkov_executable(root: Path) -> str | None:
    """checkov, installed apart from the project's virtualenv (its pins conflict with the
    project's: see requirements-checkov.txt): $CHECKOV, else root/.venv-checkov, else PATH."""
    if os.environ.get(CHECKOV_ENV):
        return os.environ[CHECKOV_ENV]
    local = root / ".venv-checkov" / "bin" / "checkov"
    if local.exists():
        return str(local)
    from shutil import which

    return which("checkov")


def install_checkov(root: Path) -> str:
    """Create root/.venv-checkov with requirements-checkov.txt; returns the executable."""
    venv = root / ".venv-checkov"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "-r", str(root / CHECKOV_REQUIREMENTS)],
        check=True,
    )
    return str(venv / "bin" / "checkov")


def run_checkov(executable: str, manifests: Iterable[Mapping[str, Any]]) -> list[CheckovFinding]:
    """Every failed checkov Kubernetes check on `manifests`, offline."""
    with tempfile.TemporaryDirectory(prefix="checkov-") as folder:
        for i, manifest in enumerate(manifests):
            Path(folder, f"{i:03d}.yaml").write_text(yaml.safe_dump(dict(manifest)))
        proc = subprocess.run(
            [
                executable,
                "--directory",
                folder,
                "--framework",
                "kubernetes",
                "--output",
                "json",
                "--quiet",
                # Nothing from the vendor's API: no guideline links, no network.
                "--skip-download",
            ],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        )
    # 0: nothing failed, 1: something failed; anything else is checkov itself failing.
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed (rc={proc.returncode}): {proc.stderr[-2000:]}")
    reports = json.loads(proc.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    return [
        CheckovFinding(f["check_id"], f["check_name"], f["resource"])
        for report in reports
        for f in report.get("results", {}).get("failed_checks", [])
    ]


def unaccepted(findings: Iterable[CheckovFinding]) -> list[CheckovFinding]:
    return [f for f in findings if f.check_id not in ACCEPTED_CHECKOV_FINDINGS]
