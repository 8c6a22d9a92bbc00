"""Karpenter's CRDs for offline checks: the pinned `karpenter-crd` chart, pulled from its OCI
registry once and cached by version, or a local copy named by KARPENTER_CRD_DIR.

    KARPENTER_CRD_DIR=path   a folder of CRD files (the chart's templates/, or the CRDs
                             from aws/karpenter-provider-aws pkg/apis/crds at the tag)
    otherwise                $XDG_CACHE_HOME/eks-gpu-slicing/karpenter-crd-<version>/,
                             filled from oci://public.ecr.aws/karpenter/karpenter-crd
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import shutil
import tarfile
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from eks_gpu_slicing import facts

CRD_DIR_ENV = "KARPENTER_CRD_DIR"
CACHE_APP = "eks-gpu-slicing"

# Helm's media type for a chart archive in an OCI registry (helm pkg/registry/constants.go).
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REQUEST_TIMEOUT_S = 30
# A failed registry request is tried once more after this wait (see _ChartRegistry).
RETRY_WAIT_S = 2.0
# A CRD file is large (EC2NodeClass: ~80 kB of YAML): libyaml, where PyYAML was built with it,
# parses it about ten times faster than the pure-Python loader, to the same objects.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# The karpenter-crd chart's CRD files carry one template block: `{{- with
# .Values.additionalAnnotations }}` ... `{{- end }}` in metadata.annotations. With the chart's
# default values it renders to nothing, so dropping the action lines renders it.
_TEMPLATE_ACTION_LINE = re.compile(r"^\s*\{\{.*\}\}\s*$")


class CrdsUnavailable(Exception):
    """The CRDs can be had neither from KARPENTER_CRD_DIR, the cache nor the registry."""


def karpenter_crd_dir(
    environ: Mapping[str, str] | None = None,
    *,
    chart: str = facts.KARPENTER_CRD_CHART,
    version: str = facts.KARPENTER_VERSION,
    plain_http: bool = False,
    retry_wait_s: float = RETRY_WAIT_S,
) -> Path:
    """The folder holding the pinned chart's CRD files: KARPENTER_CRD_DIR when set, else the
    cache, filled from the registry on first use. Raises CrdsUnavailable with one line
    saying how to provide them. `retry_wait_s`: the wait before a failed request's one retry."""
    environ = os.environ if environ is None else environ
    local = environ.get(CRD_DIR_ENV)
    if local:
        path = Path(local).expanduser().resolve()
        if not has_crds(path):
            raise CrdsUnavailable(
                f"{CRD_DIR_ENV}={local} holds no CustomResourceDefinition files: point it at "
                f"a copy of the karpenter-crd {version} chart's CRDs"
            )
        return path
    cached = cache_dir(version, environ)
    if has_crds(cached):
        return cached
    try:
        pull_chart_crds(chart, version, cached, plain_http=plain_http, retry_wait_s=retry_wait_s)
    except (OSError, ValueError, KeyError, tarfile.TarError, yaml.YAMLError) as exc:
        # requests' errors are OSErrors; oras raises ValueError for refused requests.
        reason = _reason(exc, chart)
        raise CrdsUnavailable(
            f"Karpenter CRDs unavailable: pulling {chart}:{version} failed ({reason}); "
            f"set {CRD_DIR_ENV} to a folder with that chart's CRD files "
            f"(`helm pull {chart} --version {version} --untar`, then its templates/)"
        ) from exc
    return cached


def _reason(exc: Exception, chart: str) -> str:
    import requests

    host = chart.removeprefix("oci://").split("/")[0]
    if isinstance(exc, requests.Timeout):
        return f"no answer from {host} in {REQUEST_TIMEOUT_S} s"
    if isinstance(exc, requests.ConnectionError):
        return f"cannot reach {host}"
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def cache_dir(version: str, environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    root = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / CACHE_APP / f"karpenter-crd-{version}"


def crd_files(folder: Path) -> list[Path]:
    """CRD files as controller-gen names them, `<group>_<plural>.yaml` (which leaves out a
    chart's values.yaml and whatever else a local copy holds)."""
    return sorted(folder.glob("*_*.yaml")) if folder.is_dir() else []


def read_crd_file(path: Path) -> str:
    """A CRD file's text; a chart template (a `helm pull --untar` copy) rendered."""
    return render_crd_template(path.read_text())


def has_crds(folder: Path) -> bool:
    try:
        return any(_is_crd_file(read_crd_file(p)) for p in crd_files(folder))
    except ValueError:
        return False


def pull_chart_crds(
    chart: str,
    version: str,
    dest: Path,
    *,
    plain_http: bool = False,
    retry_wait_s: float = RETRY_WAIT_S,
) -> Path:
    """Pull `chart` (oci://host/repository) at `version` through the OCI distribution API
    (oras, anonymous bearer token as public.ecr.aws hands out), check the archive's digest
    and write its CRD files into `dest` (replaced whole, so a half-written cache never
    counts)."""
    if not chart.startswith("oci://"):
        raise ValueError(f"not an OCI chart reference: {chart}")
    host, _, repository = chart.removeprefix("oci://").partition("/")
    registry = _registry(host, plain_http, retry_wait_s)
    target = f"{host}/{repository}:{version}"
    manifest = registry.get_manifest(target, allowed_media_type=[OCI_MANIFEST])
    layers = [
        layer for layer in manifest.get("layers", []) if layer["mediaType"] == HELM_CHART_LAYER
    ]
    # Helm itself would take the last of several chart layers; two archives under one tag
    # leave it open which CRDs are the pinned ones, so refuse rather than guess.
    if len(layers) != 1:
        raise ValueError(
            f"{target} is not a Helm chart: {len(layers) or 'no'} {HELM_CHART_LAYER} layers, "
            "want one"
        )
    response = registry.get_blob(target, layers[0]["digest"])
    response.raise_for_status()
    archive = response.content
    algorithm, _, expected = layers[0]["digest"].partition(":")
    if algorithm != "sha256" or hashlib.sha256(archive).hexdigest() != expected:
        raise ValueError(f"{target}: chart archive does not match its digest")
    files = chart_crd_files(archive, version)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    for name, text in files.items():
        (staging / name).write_text(text)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest


def chart_crd_files(archive: bytes, version: str) -> dict[str, str]:
    """{file name: rendered CRD text} from a chart archive: its crds/ and templates/ files
    that are CustomResourceDefinitions (karpenter-crd keeps them in templates/)."""
    files: dict[str, str] = {}
    chart_version = None
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if not member.isfile() or len(parts) < 2:
                continue
            text = tar.extractfile(member).read().decode()
            if parts[1:] == ("Chart.yaml",):
                chart_version = str(yaml.safe_load(text).get("version"))
            elif (
                len(parts) == 3 and parts[1] in ("crds", "templates") and parts[2].endswith(".yaml")
            ):
                rendered = render_crd_template(text)
                if _is_crd_file(rendered):
                    files[parts[2]] = rendered
    if chart_version != version:
        raise ValueError(f"chart archive is version {chart_version}, expected {version}")
    if not files:
        raise ValueError("chart archive holds no CustomResourceDefinition")
    return files


def render_crd_template(text: str) -> str:
    rendered = "\n".join(
        line for line in text.splitlines() if not _TEMPLATE_ACTION_LINE.match(line)
    )
    if "{{" in rendered:
        raise ValueError("a CRD template holds more than the annotations block it is known to")
    return rendered + "\n"


def load_documents(text: str) -> list[Any]:
    """The YAML documents of a CRD file (yaml.safe_load_all, with libyaml where available)."""
    return list(yaml.load_all(text, Loader=_SAFE_LOADER))


# Every lookup of the CRD folder (karpenter_crd_dir, so each check) asks whether its files are
# CRDs: remember the answer per file text rather than parse the files again.
@functools.lru_cache(maxsize=64)
def _is_crd_file(text: str) -> bool:
    try:
        documents = load_documents(text)
    except yaml.YAMLError:
        return False
    return any(
        isinstance(d, dict) and d.get("kind") == "CustomResourceDefinition" for d in documents
    )


def _registry(host: str, plain_http: bool, retry_wait_s: float) -> Any:
    return _chart_registry_class()(hostname=host, insecure=plain_http, retry_wait_s=retry_wait_s)


@functools.cache
def _chart_registry_class() -> type:
    """oras's registry client with our retry policy, defined on first use: only a pull needs
    oras and requests, which take longer to import than the rest of `make check`'s tools."""
    import oras.provider  # imports oras.decorator (importing that first is an import cycle)
    import requests

    class _ChartRegistry(oras.provider.Registry):
        """oras retries a failed request five times with waits up to 83 s, and requests waits
        for an answer forever: an unreachable registry should end `make check` in seconds.
        Here a request that cannot connect, times out or gets a 5xx is tried once more, after
        `retry_wait_s`."""

        _request_once = oras.provider.Registry.do_request.__wrapped__

        def __init__(self, hostname: str, insecure: bool, retry_wait_s: float) -> None:
            super().__init__(hostname=hostname, insecure=insecure)
            self.retry_wait_s = retry_wait_s
            # The session is shared with the token backend, so this covers the token request.
            self.session.request = functools.partial(
                self.session.request, timeout=REQUEST_TIMEOUT_S
            )

        def do_request(self, *args: Any, **kwargs: Any) -> requests.Response:
            try:
                response = self._request_once(*args, **kwargs)
            except requests.exceptions.SSLError:
                raise  # a certificate problem does not go away by asking again
            except (requests.ConnectionError, requests.Timeout):
                pass
            else:
                if response.status_code < 500:
                    return response
            time.sleep(self.retry_wait_s)
            return self._request_once(*args, **kwargs)

    return _ChartRegistry
