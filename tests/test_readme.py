"""The README is the front door and docs/ holds the reference: the configuration reference
must match the settings, every relative link must resolve, and the README's example must be a
valid stack."""

from __future__ import annotations

import re

from eks_gpu_slicing.review import generate
from eks_gpu_slicing.settings.stack_files import ROOT


def config_key_paths() -> set[str]:
    """Every key a stack file may set, sections included, with map entries written `<name>`."""
    return {key.path for key in generate.config_keys()}


def documented_key_paths() -> set[str]:
    """Key cells of the configuration reference's table."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    section = text.split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([^|`]+)` \|", section, flags=re.M))


def test_reference_documents_every_key_and_nothing_else():
    expected = config_key_paths()
    documented = documented_key_paths()
    assert expected - documented == set(), "undocumented keys"
    assert documented - expected == set(), "documented keys that do not exist"


def test_key_paths_walk_nested_models():
    paths = config_key_paths()
    assert "gpuNodeGroups.<name>.diskSizeGiB" in paths
    assert "sharing.<name>.renameByDefault" in paths
    assert "sharing.<name>.mig.layout" in paths
    assert "network.natGateways" in paths
    assert {"existingCluster", "existingCluster.name", "network"} <= paths
    assert len(paths) == len(list(generate.config_keys())), "a key listed twice"


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
