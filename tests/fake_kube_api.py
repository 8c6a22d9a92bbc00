"""A fake Kubernetes API server for tests: canned objects served over HTTP on 127.0.0.1 to
the real `kubernetes` client, so code that reads a cluster is tested through the client's
own URL building, label selectors and deserialisation.

It serves only reads: lists (cluster-wide and per namespace, with equality label
selectors), single objects, pod logs, and the pod proxy (where metrics are scraped). A
resource is served when it is built in (`BUILT_IN`), an object of its kind is loaded, or
it is named in `resources` (an installed CRD with no objects yet); everything else is a 404
`Status`, as from an API server without that CRD. Every request path is recorded in
`requests`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml


def plural(kind: str) -> str:
    """The resource name of a kind, as the CRDs and core types in these tests spell it."""
    lower = kind.lower()
    return lower + ("es" if lower.endswith("s") else "s")


def resource_path(api_version: str, kind: str) -> str:
    """`api/v1/pods`, `apis/karpenter.sh/v1/nodepools`: the path prefix of a resource."""
    base = "api/v1" if api_version == "v1" else f"apis/{api_version}"
    return f"{base}/{plural(kind)}"


# How often the server thread checks whether it should stop (see __enter__).
POLL_INTERVAL_S = 0.005

# Built into every API server, served even when empty.
BUILT_IN = frozenset(
    {
        "api/v1/nodes",
        "api/v1/pods",
        "api/v1/configmaps",
        "api/v1/resourcequotas",
        "api/v1/services",
        "apis/apps/v1/daemonsets",
        "apis/apps/v1/deployments",
    }
)


def _matches(obj: Mapping, selector: str | None) -> bool:
    if not selector:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key.strip()) != value.strip():
            return False
    return True


class FakeKubeApi:
    """Start with `with FakeKubeApi(objects) as api:`; `api.kubeconfig(path)` writes a
    kubeconfig that points the real client at it."""

    def __init__(
        self,
        objects: Iterable[Mapping[str, Any]],
        *,
        logs: Mapping[str, str] | None = None,
        proxy: Mapping[str, str] | None = None,
        resources: Iterable[str] = (),
    ):
        """`logs`: {"namespace/pod": text}; `proxy`: {"namespace/pod:port/path": text};
        `resources`: extra resource paths to serve empty (`apis/karpenter.sh/v1/nodepools`)."""
        self.objects = [dict(o) for o in objects]
        self.logs = dict(logs or {})
        self.proxy = dict(proxy or {})
        self.served = {resource_path(o["apiVersion"], o["kind"]) for o in self.objects}
        self.served |= BUILT_IN | set(resources)
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    # --- what a path answers ----------------------------------------------------------------

    def answer(self, path: str, query: Mapping[str, list[str]]) -> tuple[int, Any]:
        """(HTTP status, body) for a GET; the body is JSON-able, or text for logs/proxy."""
        parts = path.strip("/").split("/")
        base_len = 2 if parts[:1] == ["api"] else 3
        base, rest = parts[:base_len], parts[base_len:]
        namespace = None
        if len(rest) >= 2 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest:
            return self._not_found(path)
        prefix = "/".join([*base, rest[0]])
        if base == ["api", "v1"] and rest[0] == "pods" and namespace and len(rest) >= 3:
            return self._pod_subresource(namespace, rest[1], rest[2:], path)
        if prefix not in self.served:
            return self._not_found(path)
        kind_objects = [
            o
            for o in self.objects
            if resource_path(o["apiVersion"], o["kind"]) == prefix
            and (namespace is None or o["metadata"].get("namespace") == namespace)
        ]
        if len(rest) == 1:
            selector = (query.get("labelSelector") or [None])[0]
            items = [o for o in kind_objects if _matches(o, selector)]
            kind = kind_objects[0]["kind"] if kind_objects else "List"
            return 200, {
                "apiVersion": "/".join(base[1:]),
                "kind": f"{kind}List",
                "metadata": {"resourceVersion": "1"},
                "items": items,
            }
        found = [o for o in kind_objects if o["metadata"]["name"] == rest[1]]
        return (200, found[0]) if len(rest) == 2 and found else self._not_found(path)

    def _pod_subresource(
        self, namespace: str, pod: str, rest: list[str], path: str
    ) -> tuple[int, Any]:
        if rest == ["log"] and f"{namespace}/{pod}" in self.logs:
            return 200, self.logs[f"{namespace}/{pod}"]
        if rest[0] == "proxy":
            key = f"{namespace}/{pod}/{'/'.join(rest[1:])}"
            if key in self.proxy:
                return 200, self.proxy[key]
        return self._not_found(path)

    @staticmethod
    def _not_found(path: str) -> tuple[int, Any]:
        return 404, {
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "message": f"the server could not find the requested resource ({path})",
            "reason": "NotFound",
            "code": 404,
        }

    # --- the server -----------------------------------------------------------------------

    def __enter__(self) -> FakeKubeApi:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                path = unquote(url.path)
                api.requests.append(path)
                status, body = api.answer(path, parse_qs(url.query))
                text = body if isinstance(body, str) else json.dumps(body)
                kind = "text/plain" if isinstance(body, str) else "application/json"
                payload = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        # shutdown() waits for serve_forever to look at its flag, which it does once per poll
        # interval (0.5 s by default): that wait was most of each test's time.
        threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": POLL_INTERVAL_S},
            daemon=True,
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first (with FakeKubeApi(...))"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def kubeconfig(self, path: Path) -> Path:
        """Write a kubeconfig for this server (plain HTTP, a bearer token) to `path`."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}],
            "current-context": "fake",
        }
        path.write_text(yaml.safe_dump(config))
        return path
