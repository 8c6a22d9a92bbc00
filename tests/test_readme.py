"""The README is the front door and docs/ holds the reference: the configuration reference
must match the settings, every relative link must resolve, and the README's example must be a
valid stack."""

from __future__ import annotations

import re
import typing

from pydantic import BaseModel

from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.settings.stack_files import ROOT


def config_key_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every key a stack file may set, with map entries written `<name>`."""
    paths = set()
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        annotation = field.annotation
        # An optional section (`Model | None`) has the keys of the model.
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], BaseModel):
            paths.add(path)
            paths |= config_key_paths(members[0], f"{path}.")
            continue
        if typing.get_origin(annotation) is dict:
            value_type = typing.get_args(annotation)[1]
            paths.add(path)
            if isinstance(value_type, type) and issubclass(value_type, BaseModel):
                paths |= config_key_paths(value_type, f"{path}.<name>.")
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= config_key_paths(annotation, f"{path}.")
        elif optional_model(annotation) is not None:
            # An optional section (existingCluster): the key itself, and its keys.
            paths.add(path)
            paths |= config_key_paths(optional_model(annotation), f"{path}.")
        else:
            paths.add(path)
    return paths


def optional_model(annotation) -> type[BaseModel] | None:
    """The model of `Model | None`, else None."""
    models = [
        arg
        for arg in typing.get_args(annotation)
        if isinstance(arg, type) and issubclass(arg, BaseModel)
    ]
    return models[0] if len(models) == 1 and type(None) in typing.get_args(annotation) else None


def documented_key_paths() -> set[str]:
    """Key cells of the configuration reference's table; `a.minSize` / `desiredSize` counts
    for each name."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text.split("\n## ", 1)[0]
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


# --- Links -----------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def markdown_files() -> list:
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        *sorted((ROOT / "benchmarks").rglob("README.md")),
    ]


def anchors(path) -> set[str]:
    """GitHub's heading anchors: lowercased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    found = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug)
    return found


def relative_links(path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r"^[a-z]+:", target)  # http(s):, mailto:
    ]


def broken_links() -> list[str]:
    broken = []
    for source in markdown_files():
        for target in relative_links(source):
            file_part, _, anchor = target.partition("#")
            resolved = (source.parent / file_part).resolve() if file_part else source
            if not resolved.exists():
                broken.append(f"{source.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
                broken.append(f"{source.relative_to(ROOT)}: {target} (no such heading)")
    return broken


def test_every_relative_link_in_readme_and_docs_resolves():
    assert broken_links() == []


def test_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## A section\n\n[ok](#a-section) [bad](#nope) [gone](missing.md)\n")
    targets = relative_links(page)
    assert targets == ["#a-section", "#nope", "missing.md"]
    assert "a-section" in anchors(page) and "nope" not in anchors(page)


def test_readme_first_screen_has_the_two_commands_and_the_offline_path():
    lines = (ROOT / "README.md").read_text().splitlines()
    first_screen = "\n".join(lines[:40])
    assert "make up STACK=dev" in first_screen
    assert "make test" in first_screen
    assert "make render" in first_screen and "make check" in first_screen
    assert len(lines) <= 250


def test_readme_example_profile_is_a_valid_stack():
    import yaml

    from eks_gpu_slicing.settings import load_settings
    from eks_gpu_slicing.settings.stack_files import encode_config, raw_settings

    text = (ROOT / "README.md").read_text()
    block = text.split("## A profile", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    config = yaml.safe_load(block)["config"]
    settings = load_settings(raw_settings(encode_config(config)), stack="readme")
    assert set(settings.sharing) == {"notebooks", "inference"}
    assert {g.sharing for g in settings.gpu_node_groups.values()} == {"notebooks", "inference"}
