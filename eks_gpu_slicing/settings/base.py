"""What every settings section shares: the strict base model, the error type, name rules."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from eks_gpu_slicing import facts

# A name used in Kubernetes label values, ConfigMap keys and Pulumi resource names.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[0-9A-Za-z][A-Za-z0-9\-_]{0,99}$")
_EC2_INSTANCE_TYPE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9-]+$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")
_VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_IAM_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[\w+=,.@/-]+$")
_KUBERNETES_VERSION = re.compile(r"^1\.\d+$")


def _namespace_name(namespace: str) -> str:
    if not _DNS_LABEL.match(namespace):
        raise ValueError(f"'{namespace}' is not a valid namespace name")
    return namespace


def _pinned_image(image: str) -> str:
    if "@sha256:" in image:
        return image
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    if not tag or tag == "latest":
        raise ValueError(f"'{image}' must be pinned to a tag other than 'latest' or a digest")
    return image


def _exact_version(version: str) -> str:
    if not _SEMVER.match(version):
        # A range (~0.20, ^1.14) or `latest` would let a later install pick another chart.
        raise ValueError(f"'{version}' is not an exact version (MAJOR.MINOR.PATCH)")
    return version


# Strings with a rule of their own, reusable across sections.
Namespace = Annotated[str, AfterValidator(_namespace_name)]
PinnedImage = Annotated[str, AfterValidator(_pinned_image)]
# A Helm chart pinned to one release.
ChartVersion = Annotated[str, AfterValidator(_exact_version)]
# A node's root volume in GiB (node groups and Karpenter pools alike); 16384 GiB (16 TiB) is
# the largest gp3 volume.
RootVolumeGiB = Annotated[int, Field(ge=20, le=16384)]
# The sharing profile a stack has when it defines none, and the one groups, pools and the
# device plugin use unless they name another.
DEFAULT_PROFILE = "default"


# Every configuration key is declared once, in these models: its stack-file name (the field's
# alias), type, default, bounds, allowed values and a `Field(description=...)`. `make generate`
# (eks_gpu_slicing/review/generate.py) writes the configuration reference in
# docs/configuration.md, the component package's input types (components/package_inputs.py)
# and provider/schema.json from them. Where the model alone cannot say what a reader needs,
# `Field(json_schema_extra=...)` adds it with the helpers below.


def shown_default(text: str) -> dict[str, str]:
    """json_schema_extra for a key whose default is worked out when the settings load (e.g.
    clusterName's), so the model's own default is not what a stack gets: what the
    reference shows instead."""
    return {"shownDefault": text}


def package_map_alternative(key: str, description: str) -> dict[str, str]:
    """json_schema_extra for a key that takes a name or a map (a MIG layout). A Pulumi
    package schema has no either-or type, so the component package takes the map as a
    second, typed property `key` (described by `description`) and the name under the key's
    own name."""
    return {"packageMapKey": key, "packageMapDescription": description}


def listing(values: Iterable[object], last: str = "and") -> str:
    """`a`, `b` and `c` (or `a`, `b` or `c`): values as a description names them."""
    quoted = [f"`{v}`" for v in values]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} {last} {quoted[-1]}"


class ConfigError(Exception):
    """Every problem found in a stack's configuration, each as 'key.path: why'."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(
            f"invalid stack configuration (namespace '{facts.CONFIG_NAMESPACE}'), "
            f"{len(problems)} {noun}:\n{lines}"
        )


class _Settings(BaseModel):
    # extra="forbid": a misspelt key is an error, not a silently ignored default.
    # strict: "10" is not 10, and true is not 1.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        alias_generator=to_camel,
        populate_by_name=True,
    )


def _check_names(mapping: Mapping[str, Any], what: str) -> None:
    bad = [name for name in mapping if not _NAME.match(name)]
    if bad:
        raise ValueError(
            f"{what} names must be 1-32 lowercase letters, digits or '-' (they become label "
            f"values and resource names): {', '.join(bad)}"
        )


def _subset(chosen: list[str], allowed: tuple[str, ...], what: str) -> list[str]:
    unknown = [c for c in chosen if c not in allowed]
    if unknown or not chosen:
        raise ValueError(f"{what} must be a non-empty subset of {', '.join(allowed)}")
    return chosen


def _ipv4_network(cidr: str) -> ipaddress.IPv4Network:
    """A CIDR block as written (`a.b.c.d/n`, no host bits), or ValueError saying why not."""
    if "/" not in cidr:
        # ipaddress reads a bare address as its /32, but the stack passes the text on as
        # written, and AWS refuses a CIDR without a prefix length; nor can we tell whether
        # one address or its network was meant.
        raise ValueError(
            f"'{cidr}' is not a CIDR block: it has no prefix length (such as /16 for a "
            "network, /32 for one address)"
        )
    try:
        return ipaddress.IPv4Network(cidr, strict=True)
    except ValueError as exc:
        raise ValueError(f"'{cidr}' is not an IPv4 CIDR block ({exc})") from None
