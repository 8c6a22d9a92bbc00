"""Where `make check` gets Karpenter's CRDs: the pinned karpenter-crd chart pulled through the
real OCI client code from a local fake registry that answers as public.ecr.aws does
(401 with a bearer challenge, an anonymous token from /token/, the manifest, the chart blob
behind a redirect), then the cache; KARPENTER_CRD_DIR; and the one-line failure."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import socket
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.review import check, karpenter_crds
from eks_gpu_slicing.review.karpenter_crds import CRD_DIR_ENV, CrdsUnavailable, karpenter_crd_dir
from eks_gpu_slicing.review.manifests import crd_versions

REPOSITORY = facts.KARPENTER_CRD_CHART.split("/", 3)[3]  # karpenter/karpenter-crd
TOKEN = "anonymous-token"
# The karpenter-crd chart's templates carry this block in metadata.annotations
# (aws/karpenter-provider-aws charts/karpenter-crd/templates/*.yaml at v1.14.1).
ANNOTATIONS_BLOCK = (
    "    {{- with .Values.additionalAnnotations }}\n"
    "      {{- toYaml . | nindent 4 }}\n"
    "    {{- end }}\n"
)


def reference_crds() -> dict[str, str]:
    """The CRD files this checkout has (conftest points KARPENTER_CRD_DIR at them)."""
    folder = karpenter_crd_dir()
    return {p.name: p.read_text() for p in karpenter_crds.crd_files(folder)}


def chart_archive(version: str = facts.KARPENTER_VERSION) -> bytes:
    """A karpenter-crd chart as `helm package` lays it out: CRDs in templates/ with the
    annotations template block."""
    files = {
        "Chart.yaml": yaml.safe_dump(
            {"apiVersion": "v2", "name": "karpenter-crd", "version": version}
        ),
        "values.yaml": "additionalAnnotations: {}\n",
    }
    for name, text in reference_crds().items():
        files[f"templates/{name}"] = text.replace(
            "  annotations:\n", "  annotations:\n" + ANNOTATIONS_BLOCK, 1
        )
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"karpenter-crd/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


class FakeRegistry:
    """OCI distribution API for one chart, with public.ecr.aws's anonymous token flow."""

    def __init__(self, archive: bytes, digest: str | None = None) -> None:
        self.archive = archive
        self.digest = digest or "sha256:" + hashlib.sha256(archive).hexdigest()
        self.requests: list[str] = []
        self.unavailable_answers = 0  # how many of the next /v2/ requests get a 503
        self.token_queries: list[dict[str, list[str]]] = []
        registry = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                registry.requests.append(self.path)
                url = urlparse(self.path)
                base = f"http://{self.headers['Host']}"
                if url.path == "/token/":
                    registry.token_queries.append(parse_qs(url.query))
                    return self.reply(
                        200, json.dumps({"token": TOKEN}).encode(), "application/json"
                    )
                if url.path.startswith("/blobstore/"):  # where ECR redirects a blob to
                    return self.reply(200, registry.archive, "application/octet-stream")
                if registry.unavailable_answers and url.path.startswith("/v2/"):
                    registry.unavailable_answers -= 1
                    return self.reply(503, b'{"errors":[{"code":"UNAVAILABLE"}]}', "text/json")
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    challenge = f'Bearer realm="{base}/token/",service="public.ecr.aws",scope="aws"'
                    return self.reply(
                        401, b'{"errors":[{"code":"DENIED"}]}', "application/json", challenge
                    )
                if url.path == f"/v2/{REPOSITORY}/manifests/{facts.KARPENTER_VERSION}":
                    return self.reply(200, registry.manifest(), karpenter_crds.OCI_MANIFEST)
                if url.path == f"/v2/{REPOSITORY}/blobs/{registry.digest}":
                    self.send_response(307)
                    self.send_header("Location", f"{base}/blobstore/{registry.digest}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self.reply(
                    404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json"
                )

            def reply(self, status, body, content_type, challenge=None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if challenge:
                    self.send_header("WWW-Authenticate", challenge)
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.chart = f"oci://127.0.0.1:{self.server.server_port}/{REPOSITORY}"
        # A short poll interval: close() waits up to one for the server thread to stop.
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.005}, daemon=True
        ).start()

    def manifest(self) -> bytes:
        config = b"{}"
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": karpenter_crds.OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.cncf.helm.config.v1+json",
                    "digest": "sha256:" + hashlib.sha256(config).hexdigest(),
                    "size": len(config),
                },
                "layers": [
                    {
                        "mediaType": karpenter_crds.HELM_CHART_LAYER,
                        "digest": self.digest,
                        "size": len(self.archive),
                    }
                ],
            }
        ).encode()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def registry():
    fake = FakeRegistry(chart_archive())
    yield fake
    fake.close()


def parsed(folder: Path) -> dict[str, list]:
    return {
        p.name: list(yaml.safe_load_all(p.read_text())) for p in karpenter_crds.crd_files(folder)
    }


def test_the_chart_is_pulled_with_an_anonymous_token_unpacked_and_cached(registry, tmp_path):
    expected = {name: list(yaml.safe_load_all(text)) for name, text in reference_crds().items()}
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    folder = karpenter_crd_dir(environ, chart=registry.chart, plain_http=True)
    assert folder == tmp_path / "eks-gpu-slicing" / f"karpenter-crd-{facts.KARPENTER_VERSION}"
    assert parsed(folder) == expected  # the template block rendered away, nothing else changed
    assert registry.token_queries == [{"service": ["public.ecr.aws"], "scope": ["aws"]}]
    assert any(path.startswith("/blobstore/") for path in registry.requests)
    assert {kind for _, kind in crd_versions(folder)} >= {"EC2NodeClass", "NodePool", "NodeOverlay"}
    # Cached by version: the next run asks the registry nothing.
    asked = len(registry.requests)
    assert karpenter_crd_dir(environ, chart=registry.chart, plain_http=True) == folder
    assert len(registry.requests) == asked


def test_make_check_validates_against_the_pulled_chart(
    registry, tmp_path, monkeypatch, capsys, renders
):
    monkeypatch.setattr(check, "render", renders)  # the session's render of the dev stack
    monkeypatch.delenv(CRD_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(
        check,
        "karpenter_crd_dir",
        functools.partial(karpenter_crd_dir, chart=registry.chart, plain_http=True),
    )
    monkeypatch.setattr(check, "BUILD_DIR", tmp_path / "build")
    assert check.main(["dev"]) == 0
    assert "EC2NodeClass/gpu-g5: " in capsys.readouterr().out
    assert registry.token_queries


def test_a_chart_that_does_not_match_its_digest_is_refused(tmp_path):
    fake = FakeRegistry(chart_archive(), digest="sha256:" + "0" * 64)
    try:
        with pytest.raises(CrdsUnavailable, match="does not match its digest"):
            karpenter_crd_dir({"XDG_CACHE_HOME": str(tmp_path)}, chart=fake.chart, plain_http=True)
    finally:
        fake.close()
    assert not karpenter_crds.has_crds(
        karpenter_crds.cache_dir(facts.KARPENTER_VERSION, {"XDG_CACHE_HOME": str(tmp_path)})
    )


PROVENANCE_LAYER = "application/vnd.cncf.helm.chart.provenance.v1.prov"  # helm constants.go


@pytest.mark.parametrize(
    ("layers", "says"),
    [
        # a second chart archive under the same tag: which one holds the pinned CRDs?
        ([karpenter_crds.HELM_CHART_LAYER, karpenter_crds.HELM_CHART_LAYER], "2 "),
        ([PROVENANCE_LAYER], "no "),  # a provenance file and no chart
    ],
    ids=["two-chart-layers", "no-chart-layer"],
)
def test_a_manifest_without_exactly_one_chart_layer_is_refused(tmp_path, layers, says):
    class Registry(FakeRegistry):
        def manifest(self) -> bytes:
            manifest = json.loads(super().manifest())
            (chart,) = manifest["layers"]
            manifest["layers"] = [
                {**chart, "mediaType": media_type, "digest": f"{chart['digest'][:-1]}{i}"}
                for i, media_type in enumerate(layers)
            ]
            return json.dumps(manifest).encode()

    fake = Registry(chart_archive())
    environ = {"XDG_CACHE_HOME": str(tmp_path)}
    try:
        with pytest.raises(CrdsUnavailable) as caught:
            karpenter_crd_dir(environ, chart=fake.chart, plain_http=True)
    finally:
        fake.close()
    message = str(caught.value)
    assert "\n" not in message
    assert (
        f"is not a Helm chart: {says}{karpenter_crds.HELM_CHART_LAYER} layers, want one" in message
    )
    assert not any("/blobs/" in path for path in fake.requests)  # refused before any download
    assert not karpenter_crds.has_crds(karpenter_crds.cache_dir(facts.KARPENTER_VERSION, environ))


def test_a_chart_of_another_version_is_refused(tmp_path):
    fake = FakeRegistry(chart_archive(version="1.13.0"))
    try:
        with pytest.raises(CrdsUnavailable, match=r"version 1\.13\.0, expected"):
            karpenter_crd_dir({"XDG_CACHE_HOME": str(tmp_path)}, chart=fake.chart, plain_http=True)
    finally:
        fake.close()


def test_an_unreachable_registry_ends_in_one_line_saying_how_to_provide_the_crds(
    tmp_path, monkeypatch, capsys, renders
):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        chart = f"oci://127.0.0.1:{probe.getsockname()[1]}/{REPOSITORY}"
    started = time.monotonic()
    with pytest.raises(CrdsUnavailable) as caught:
        karpenter_crd_dir(
            {"XDG_CACHE_HOME": str(tmp_path)}, chart=chart, plain_http=True, retry_wait_s=0
        )
    assert time.monotonic() - started < 30
    message = str(caught.value)
    assert "\n" not in message
    assert f"set {CRD_DIR_ENV} to a folder" in message and facts.KARPENTER_VERSION in message

    monkeypatch.delenv(CRD_DIR_ENV, raising=False)  # needs no CRDs: runs where there are none
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(check, "render", renders)  # the session's render of the dev stack
    monkeypatch.setattr(
        check,
        "karpenter_crd_dir",
        functools.partial(karpenter_crd_dir, chart=chart, plain_http=True, retry_wait_s=0),
    )
    monkeypatch.setattr(check, "BUILD_DIR", tmp_path / "build")
    assert check.main(["dev"]) == 1
    assert capsys.readouterr().err.splitlines() == [f"error: {message}"]


def test_a_registry_that_fails_a_request_is_asked_once_more(registry, tmp_path):
    manifest = f"/v2/{REPOSITORY}/manifests/{facts.KARPENTER_VERSION}"
    pull = functools.partial(
        karpenter_crd_dir, chart=registry.chart, plain_http=True, retry_wait_s=0
    )
    registry.unavailable_answers = 1
    assert pull({"XDG_CACHE_HOME": str(tmp_path / "a")}) == karpenter_crds.cache_dir(
        facts.KARPENTER_VERSION, {"XDG_CACHE_HOME": str(tmp_path / "a")}
    )
    registry.requests.clear()
    registry.unavailable_answers = 2  # the request and its one retry
    with pytest.raises(CrdsUnavailable, match="Service Unavailable"):
        pull({"XDG_CACHE_HOME": str(tmp_path / "b")})
    assert registry.requests == [manifest, manifest]


def test_the_environment_variable_names_a_local_copy(tmp_path):
    reference = karpenter_crd_dir()
    assert karpenter_crd_dir({CRD_DIR_ENV: str(reference)}) == reference.resolve()
    (tmp_path / "notes.yaml").write_text("a: 1\n")
    with pytest.raises(
        CrdsUnavailable, match=f"{CRD_DIR_ENV}=.* holds no CustomResourceDefinition"
    ):
        karpenter_crd_dir({CRD_DIR_ENV: str(tmp_path)})


def test_the_variable_may_name_the_templates_folder_of_a_pulled_chart(tmp_path):
    with tarfile.open(fileobj=io.BytesIO(chart_archive()), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")  # as `helm pull --untar` leaves it
    templates = tmp_path / "karpenter-crd" / "templates"
    assert "{{- with" in next(templates.glob("*.yaml")).read_text()
    assert karpenter_crd_dir({CRD_DIR_ENV: str(templates)}) == templates
    assert crd_versions(templates) == crd_versions(karpenter_crd_dir())


def test_a_template_beyond_the_known_annotations_block_is_refused():
    with pytest.raises(ValueError, match="more than the annotations block"):
        karpenter_crds.render_crd_template("metadata:\n  name: {{ .Values.name }}\n")
