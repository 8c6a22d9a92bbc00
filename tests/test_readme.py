"""The README is the front door: its configuration reference must match the settings."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.stack_files import ROOT


def config_key_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key a stack file may set, with map entries written `<name>`."""
    paths = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        if typing.get_origin(annotation) is dict:
            value_type = typing.get_args(annotation)[1]
            paths.add(path)
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                paths |= config_key_paths(value_type, f"{path}.<name>.")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= config_key_paths(annotation, f"{path}.")
        else:
            paths.add(path)
    return paths


def documented_key_paths() -> set[str]:
    """Key cells of the README's reference table; `a.minSize` / `desiredSize` counts for
    each name."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    documented = set()
    for row in re.findall(r"^\| `([^|]+)` \|", section, flags=re.M):
        first, *rest = [cell.strip(" `") for cell in row.split("/")]
        documented.add(first)
        parent = first.rsplit(".", 1)[0] + "." if "." in first else ""
        documented |= {parent + name for name in rest}
    return documented


def test_reference_documents_every_key_and_nothing_else():
    expected = config_key_paths(Settings)
    documented = documented_key_paths()
    assert expected - documented == set(), "undocumented keys"
    assert documented - expected == set(), "documented keys that do not exist"


def test_key_paths_walk_nested_models():
    paths = config_key_paths(Settings)
    assert "gpuNodeGroups.<name>.diskSizeGiB" in paths
    assert "sharing.<name>.renameByDefault" in paths
    assert "network.natGateways" in paths
