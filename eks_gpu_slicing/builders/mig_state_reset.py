"""Run on an AL2023 MIG node at every boot, before the kubelet starts: set the node's
`nvidia.com/mig.config.state` label back to a value that is not `success`.

    python3 - <label> <value> < mig_state_reset.py      (what builders/mig.node_user_data runs)

Why: a GPU's slices do not survive an EC2 reboot (nor, on an H100 or H200, its MIG mode), but
the Node object and its `success` label do. The device plugin selects MIG nodes only once the
state is `success` (workloads.mig_paused_affinity); the kubelet checks a pod's node affinity
against the node's labels again when it starts (admission), so with the label reset first it
refuses the plugin's pod, and the plugin cannot advertise the unpartitioned GPUs as whole
ones. k8s-mig-manager applies the node's layout when its own pod starts (v0.15.0,
cmd/nvidia-mig-manager/main.go: the node informer's Add handler) and sets `success` again,
which brings the plugin back.

When: as a cloud-init boothook, which runs at every boot (cloud-init's init stage); nodeadm
starts the kubelet only after cloud-init's final stage (nodeadm-run.service,
After=cloud-final.service), and the kubelet unit is not enabled on its own.

How: with the kubelet's own credentials, which the Node authorizer lets patch its own Node: the
kubeconfig nodeadm writes (API server, cluster CA and the `aws eks get-token` exec command) and
the node name nodeadm gives the kubelet (`--hostname-override` in its environment file). A node
that has not registered yet (the first boot) is left alone. Python 3.9 (AL2023's system
Python) and its standard library, plus PyYAML, which cloud-init itself needs. It never blocks
the boot for long: a few tries, then it gives up and says so.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml

# Where nodeadm (awslabs/amazon-eks-ami nodeadm/internal/kubelet) writes the kubelet's
# kubeconfig and environment (NODEADM_KUBELET_ARGS holds --hostname-override=<node name>).
KUBECONFIG = "/var/lib/kubelet/kubeconfig"
KUBELET_ENVIRONMENT = "/etc/eks/kubelet/environment"
NODE_NAME_FLAG = re.compile(r"--hostname-override=(\S+)")
PREFIX = "eks-gpu-slicing mig-state-reset:"


def log(message: str) -> None:
    print(f"{PREFIX} {message}", file=sys.stderr, flush=True)


def node_name(environment_text: str) -> str | None:
    found = NODE_NAME_FLAG.search(environment_text)
    return found.group(1).strip("\"'") if found else None


def _named(entries: list, name: str) -> dict:
    for entry in entries or []:
        if entry.get("name") == name:
            return entry
    return (entries or [{}])[0]


def api_access(kubeconfig: dict) -> tuple[str, str | None, dict]:
    """(API server URL, CA file, the user's exec entry) of the kubeconfig's current context."""
    context = _named(kubeconfig.get("contexts"), kubeconfig.get("current-context", "")).get(
        "context", {}
    )
    cluster = _named(kubeconfig.get("clusters"), context.get("cluster", "")).get("cluster", {})
    user = _named(kubeconfig.get("users"), context.get("user", "")).get("user", {})
    return cluster["server"].rstrip("/"), cluster.get("certificate-authority"), user["exec"]


def token(exec_entry: dict) -> str:
    """Run the kubeconfig's credential command, as the kubelet does, and read its token."""
    env = dict(os.environ)
    env.update({e["name"]: e["value"] for e in exec_entry.get("env") or []})
    done = subprocess.run(
        [exec_entry["command"], *(exec_entry.get("args") or [])],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)["status"]["token"]


def patch_label(
    server: str, ca_file: str | None, bearer: str, node: str, label: str, value: str
) -> int:
    """Merge-patch one label onto the node: the HTTP status (404: no such node)."""
    body = json.dumps({"metadata": {"labels": {label: value}}}).encode()
    request = urllib.request.Request(
        f"{server}/api/v1/nodes/{node}",
        data=body,
        method="PATCH",
        headers={
            "Authorization": f"Bearer {bearer}",
            "Content-Type": "application/merge-patch+json",
            "Accept": "application/json",
        },
    )
    context = ssl.create_default_context(cafile=ca_file) if server.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label")
    parser.add_argument("value")
    parser.add_argument("--kubeconfig", default=KUBECONFIG)
    parser.add_argument("--kubelet-environment", default=KUBELET_ENVIRONMENT)
    parser.add_argument("--attempts", type=int, default=6)
    parser.add_argument("--retry-seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        with open(args.kubelet_environment) as f:
            node = node_name(f.read())
        with open(args.kubeconfig) as f:
            kubeconfig = yaml.safe_load(f)
    except FileNotFoundError as exc:
        log(f"{exc.filename} is missing: the node was never set up, nothing to reset")
        return 0
    if not node:
        log(f"no --hostname-override in {args.kubelet_environment}: nothing to reset")
        return 0
    try:
        server, ca_file, exec_entry = api_access(kubeconfig)
    except (AttributeError, KeyError, TypeError) as exc:
        log(f"{args.kubeconfig} names no API server and credential command ({exc!r})")
        return 1
    for attempt in range(1, args.attempts + 1):
        try:
            status = patch_label(server, ca_file, token(exec_entry), node, args.label, args.value)
        except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
            status, why = None, repr(exc)
        else:
            why = f"HTTP {status}"
        if status is not None and 200 <= status < 300:
            log(f"node {node}: {args.label}={args.value}")
            return 0
        if status == 404:
            log(f"node {node} is not registered yet: nothing to reset")
            return 0
        log(f"node {node}: try {attempt} of {args.attempts} failed: {why}")
        if attempt < args.attempts:
            time.sleep(args.retry_seconds)
    log(f"node {node}: gave up; the device plugin may start before the MIG layout is applied")
    return 1


if __name__ == "__main__":
    sys.exit(main())
