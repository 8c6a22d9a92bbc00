"""Checks that the stack's own pods are as hardened as builders/pod_security.py says: the
`restricted` Pod Security Standard's controls, and checkov's Kubernetes checks over the
rendered workloads. The checkov findings that remain are listed, each with its reason, in
ACCEPTED_CHECKOV_FINDINGS; any other finding fails the tests (tests/test_pod_security.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

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


def run_checkov(executable: str, manifests: Iterable[Mapping[str, Any]]) -> list[CheckovFinding]:
    """Every failed checkov Kubernetes check on `manifests`, offline."""
    return run_checkov_on_sets(executable, {"manifests": manifests})["manifests"]


def run_checkov_on_sets(
    executable: str, sets: Mapping[str, Iterable[Mapping[str, Any]]]
) -> dict[str, list[CheckovFinding]]:
    """{set name: every failed checkov Kubernetes check on that set's manifests}, from one
    checkov run (its start-up, ~2 s, is most of its time): each set in a folder of its own,
    each finding given to the set whose folder holds its file."""
    with tempfile.TemporaryDirectory(prefix="checkov-") as folder:
        for name, manifests in sets.items():
            Path(folder, name).mkdir()
            for i, manifest in enumerate(manifests):
                Path(folder, name, f"{i:03d}.yaml").write_text(yaml.safe_dump(dict(manifest)))
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
    found: dict[str, list[CheckovFinding]] = {name: [] for name in sets}
    for report in reports:
        for f in report.get("results", {}).get("failed_checks", []):
            # file_path is relative to --directory: /<set>/<nnn>.yaml
            found[Path(f["file_path"]).parts[1]].append(
                CheckovFinding(f["check_id"], f["check_name"], f["resource"])
            )
    return found


def unaccepted(findings: Iterable[CheckovFinding]) -> list[CheckovFinding]:
    return [f for f in findings if f.check_id not in ACCEPTED_CHECKOV_FINDINGS]
