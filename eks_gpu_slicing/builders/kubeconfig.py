"""The kubeconfig of a cluster this program did not create: `aws eks get-token` at each call."""

from __future__ import annotations

from typing import Any

EXEC_API_VERSION = "client.authentication.k8s.io/v1beta1"


def exec_kubeconfig(
    *,
    cluster_name: str,
    endpoint: str,
    certificate_authority: str,
    region: str,
    profile: str | None = None,
) -> dict[str, Any]:
    """Shaped as pulumi-eks writes one for the clusters it creates (generateKubeconfig in
    nodejs/eks/cluster/cluster.ts): the region named, and the stack's `aws:profile` passed as
    `--profile`, which ambient AWS_* variables cannot override."""
    args = ["--region", region, "eks", "get-token", "--cluster-name", cluster_name]
    args += ["--output", "json"]
    if profile:
        args += ["--profile", profile]
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "kubernetes",
                "cluster": {
                    "server": endpoint,
                    "certificate-authority-data": certificate_authority,
                },
            }
        ],
        "contexts": [{"name": "aws", "context": {"cluster": "kubernetes", "user": "aws"}}],
        "current-context": "aws",
        "users": [
            {
                "name": "aws",
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": "aws",
                        "args": args,
                        "env": [
                            {
                                "name": "KUBERNETES_EXEC_INFO",
                                "value": f'{{"apiVersion": "{EXEC_API_VERSION}"}}',
                            }
                        ],
                    }
                },
            }
        ],
    }
