"""Kubernetes objects as the provider would send them, read back from a mocked run, and
their validation: built-in kinds against the cluster version's OpenAPI schema
(kubernetes-validate), custom resources against their CRDs' schemas and CEL rules.

Shared by the tests, `make render` and `make check`.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import kubernetes_validate.utils

from eks_gpu_slicing.review.crd_cel import CelResult, evaluate_object
from eks_gpu_slicing.review.karpenter_crds import (
    crd_files,
    karpenter_crd_dir,
    load_documents,
    read_crd_file,
)
from eks_gpu_slicing.review.mocks import Registration


def is_kubernetes_object(type_: str) -> bool:
    """`kubernetes:<group>/<version>:<Kind>`: an object in the API, not a Helm release, a
    provider or a YAML/kustomize component."""
    if not type_.startswith("kubernetes:"):
        return False
    group_version = type_.split(":")[1]
    return "/" in group_version and not group_version.startswith("helm.sh/")


def is_helm_release(type_: str) -> bool:
    return type_.startswith("kubernetes:helm.sh/")


def api_group(type_: str) -> str:
    group = type_.split(":")[1].split("/")[0]
    return "" if group == "core" else group


def is_builtin_kind(type_: str) -> bool:
    """Built-in API groups have no dot (apps, batch, policy) or end in .k8s.io."""
    group = api_group(type_)
    return "." not in group or group.endswith(".k8s.io")


def manifest_of(registration: Registration) -> dict[str, Any]:
    """The object as the provider would send it: apiVersion and kind from the type token,
    the name Kubernetes ended up with from the outputs."""
    _, group_version, kind = registration.type.split(":")
    group, version = group_version.split("/")
    body = copy.deepcopy(registration.inputs)
    body.pop("apiVersion", None)
    body.pop("kind", None)
    name = (registration.outputs.get("metadata") or {}).get("name")
    body["metadata"] = {**body.get("metadata", {}), **({"name": name} if name else {})}
    api_version = version if group == "core" else f"{group}/{version}"
    return {"apiVersion": api_version, "kind": kind, **body}


# kubernetes-validate reads and parses a kind's schema file and the 2 MB of definitions they all
# share from disk on every validate() call (~13 ms an object); the files never change, so each
# is read once. (Its validate() looks schema_contents up in its module at each call.)
_read_schema = kubernetes_validate.utils.schema_contents
if not hasattr(_read_schema, "cache_info"):
    kubernetes_validate.utils.schema_contents = cache(_read_schema)


def validate_builtin(manifest: Mapping[str, Any], kubernetes_version: str) -> None:
    """Strict: an unknown or misspelt field is an error (raises ValidationError)."""
    kubernetes_validate.validate(dict(manifest), f"{kubernetes_version}.0", strict=True)


def builtin_problems(manifest: Mapping[str, Any], kubernetes_version: str) -> list[str]:
    try:
        validate_builtin(manifest, kubernetes_version)
    except kubernetes_validate.ValidationError as exc:
        return [f"{'.'.join(str(p) for p in exc.path) or '<root>'}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError as exc:
        return [f"no OpenAPI schema: {exc}"]
    return []


# --- Custom resources --------------------------------------------------------------------------


def crd_schemas(crd_dir: Path | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """{(apiVersion, kind): openAPIV3Schema made strict} of every CRD in a folder ({} if
    absent); by default the pinned karpenter-crd chart's (karpenter_crds)."""
    return _strict_schemas(crd_dir or karpenter_crd_dir())


def crd_versions(crd_dir: Path | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """{(apiVersion, kind): openAPIV3Schema as the CRD has it, CEL rules included}."""
    return _crd_versions(crd_dir or karpenter_crd_dir())


@cache
def _crd_versions(crd_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    schemas: dict[tuple[str, str], dict[str, Any]] = {}
    for path in crd_files(crd_dir):
        for document in load_documents(read_crd_file(path)):
            if not isinstance(document, dict) or document.get("kind") != "CustomResourceDefinition":
                continue
            spec = document["spec"]
            for version in spec["versions"]:
                key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
                schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


@cache
def _strict_schemas(crd_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    schemas = {}
    for key, schema in _crd_versions(crd_dir).items():
        strict = _strict(schema)
        # `metadata` is the API server's to check (the CRD leaves it open).
        strict["properties"]["metadata"] = {"type": "object"}
        schemas[key] = strict
    return schemas


def _strict(schema: Any) -> Any:
    """A structural CRD schema made strict the way the API server's strict field validation
    is: an object with listed properties accepts no others (unless it preserves unknown
    fields)."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def custom_resource_problems(
    manifest: Mapping[str, Any], crd_dir: Path | None = None
) -> list[str] | None:
    """Problems against the CRD's OpenAPI schema; None when no CRD for it is known. CEL rules
    (x-kubernetes-validations): custom_resource_cel."""
    schema = crd_schemas(crd_dir).get((manifest.get("apiVersion"), manifest.get("kind")))
    if schema is None:
        return None
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(e.path))
    ]


def custom_resource_cel(
    manifest: Mapping[str, Any], crd_dir: Path | None = None
) -> CelResult | None:
    """The CRD's CEL rules evaluated on the object; None when no CRD for it is known."""
    schema = crd_versions(crd_dir).get((manifest.get("apiVersion"), manifest.get("kind")))
    return None if schema is None else evaluate_object(schema, manifest)
