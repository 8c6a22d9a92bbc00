"""`make generate`: the settings models are the one declaration of a configuration key, and
the files written from them (the component package's input types, the configuration
reference's table, provider/schema.json) are what it would write."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import typing

import pytest
from pydantic import BaseModel

from eks_gpu_slicing import facts
from eks_gpu_slicing.review import generate
from eks_gpu_slicing.settings import Settings
from eks_gpu_slicing.settings.stack_files import ROOT

GENERATED = [generate.INPUTS_FILE, generate.DOCS_FILE, generate.SCHEMA_FILE]


def test_every_generated_file_is_what_make_generate_writes():
    assert generate.stale_files() == [], (
        "generated from the settings models, and out of date: run `make generate`, review the "
        "diff and commit it"
    )


def _copies(tmp_path, monkeypatch) -> dict:
    """The generated files copied to tmp_path, and the generator pointed at the copies."""
    copies = {}
    for original in GENERATED:
        copy = tmp_path / original.relative_to(ROOT)
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(original.read_text())
        copies[original] = copy
    monkeypatch.setattr(generate, "ROOT", tmp_path)
    monkeypatch.setattr(generate, "INPUTS_FILE", copies[generate.INPUTS_FILE])
    monkeypatch.setattr(generate, "DOCS_FILE", copies[generate.DOCS_FILE])
    monkeypatch.setattr(generate, "SCHEMA_FILE", copies[generate.SCHEMA_FILE])
    return copies


# A hand edit of each generated file.
EDITS = {
    generate.INPUTS_FILE: ("    replicas: NotRequired[int]", "    replica: NotRequired[int]"),
    generate.DOCS_FILE: ("| `sharing.<name>.replicas` |", "| `sharing.<name>.replica` |"),
    generate.SCHEMA_FILE: ('"replicas": {', '"replica": {'),
}


@pytest.mark.parametrize("path", GENERATED, ids=lambda p: p.name)
def test_the_check_names_a_file_that_differs_and_the_command(path, tmp_path, monkeypatch, capsys):
    copies = _copies(tmp_path, monkeypatch)
    old, new = EDITS[path]
    assert old in copies[path].read_text()
    copies[path].write_text(copies[path].read_text().replace(old, new, 1))
    assert generate.main(["--check"]) == 1
    name = str(path.relative_to(ROOT))
    assert capsys.readouterr().out.splitlines() == [
        f"{name} is out of date: run `make generate`, review the diff and commit it"
    ]


def test_the_prose_around_the_generated_table_stays_hand_written(tmp_path, monkeypatch):
    _copies(tmp_path, monkeypatch)
    docs = generate.DOCS_FILE  # the copy
    edited = docs.read_text().replace("# Configuration reference", "# Configuration keys", 1)
    docs.write_text(edited)
    assert generate.stale_files() == []
    generate._write(docs, generate.docs_text(docs.read_text()))
    assert docs.read_text() == edited


def test_every_key_and_section_has_a_description():
    for key in generate.config_keys():
        assert (key.field.description or "").strip(), f"{key.path}: no description"
    seen: set[type[BaseModel]] = set()
    stack: list[type[BaseModel]] = [Settings]
    while stack:
        model = stack.pop()
        seen.add(model)
        assert (model.__doc__ or "").strip(), f"{model.__name__}: no docstring"
        for field in model.model_fields.values():
            section, _ = generate._section(field.annotation)
            if section is not None and section not in seen:
                stack.append(section)


def test_a_key_without_a_description_is_refused_by_name():
    class Section(BaseModel):
        """A section."""

        described: int = 1
        """An attribute docstring is not a description: Field(description=...) is."""

    (key,) = generate.config_keys(Section, "section.")
    with pytest.raises(ValueError, match=r"^section\.described: no description"):
        generate.package_description(key)


def test_the_reference_table_shows_type_default_and_bounds_from_the_model():
    rows = {
        line.split(" | ")[0].strip("| `"): line.split(" | ")[1:]
        for line in generate.reference_table().splitlines()[2:]
    }
    assert rows["gpuNodeGroups.<name>.diskSizeGiB"][:2] == ["int 20–16384", "`100`"]
    assert rows["systemNodeGroup.diskSizeGiB"][:2] == ["int 20–16384", "`50`"]
    assert rows["gpuNodeGroups.<name>.capacityType"][:2] == [
        "`ON_DEMAND` \\| `SPOT`",
        "`ON_DEMAND`",
    ]
    # A version YAML would read as a number is shown quoted, as a stack file must write it.
    assert rows["kubernetesVersion"][1] == f'`"{facts.DEFAULT_KUBERNETES_VERSION}"`'

    assert rows["clusterName"][1] == "`eks-gpu-slicing-<stack>`"
    assert rows["sharing"][1] == "`{default: {strategy: time-slicing, replicas: 10}}`"
    assert rows["benchmark.durationSeconds"][0] == "number > 0, ≤ 60"
    assert rows["existingCluster.podIdentityAgent"][:2] == ["`installed` \\| `create`", "unset"]


def test_a_key_that_takes_a_name_or_a_map_is_two_typed_package_properties():
    """A schema has no either-or type: a MIG layout is a name (`layout`) or a map of profile
    to count (`customLayout`), never Any."""
    hints = typing.get_type_hints(generate_module().MigPartitioning)
    assert hints["layout"] is str
    assert hints["custom_layout"] == dict[str, int]
    module = generate_module()
    assert {module.MigPartitioning: {"custom_layout": "layout"}} == module.MAP_ALTERNATIVES


def generate_module():
    import components.package_inputs as package_inputs

    return package_inputs


# --- A new key, end to end ---------------------------------------------------------------------

NEW_FIELD = """
    example_timeout_seconds: int | None = Field(
        default=None,
        ge=1,
        description="A key added by tests/test_generate.py, to show it reaches every copy.",
    )
"""
DESCRIPTION = "A key added by tests/test_generate.py, to show it reaches every copy."


def _run(copy, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "eks_gpu_slicing.review.generate", *args],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_new_optional_key_with_a_description_reaches_the_docs_the_package_and_the_schema(
    tmp_path,
):
    """What issue 26 promises: add an optional field with a description to a settings model,
    run `make generate`, and the key is in docs/configuration.md, the package's input types
    and provider/schema.json with that description; a second run changes nothing."""
    copy = tmp_path / "repo"
    for folder in ("eks_gpu_slicing", "components", "benchmarks", "docs", "provider"):
        shutil.copytree(
            ROOT / folder,
            copy / folder,
            ignore=shutil.ignore_patterns("__pycache__", "results", "*.png"),
        )
    addons = copy / "eks_gpu_slicing" / "settings" / "addons.py"
    anchor = '''    """The NVIDIA device plugin Helm release."""\n'''
    assert anchor in addons.read_text()
    addons.write_text(addons.read_text().replace(anchor, anchor + NEW_FIELD))

    first = _run(copy)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [f"wrote {p.relative_to(ROOT)}" for p in GENERATED]
    written = {p: (copy / p.relative_to(ROOT)).read_text() for p in GENERATED}

    docs = written[generate.DOCS_FILE]
    assert f"| `devicePlugin.exampleTimeoutSeconds` | int ≥ 1 | unset | {DESCRIPTION} |" in docs
    inputs = written[generate.INPUTS_FILE]
    assert f'    example_timeout_seconds: NotRequired[int]\n    "{DESCRIPTION} At least 1."' in (
        inputs
    )
    schema = json.loads(written[generate.SCHEMA_FILE])
    prop = schema["types"]["eks-gpu-slicing:index:DevicePlugin"]["properties"][
        "exampleTimeoutSeconds"
    ]
    assert prop == {"description": f"{DESCRIPTION} At least 1.", "plain": True, "type": "integer"}

    # A second run would write the same: --check compares with exactly what it would write.
    again = _run(copy, "--check")
    assert again.returncode == 0, again.stdout + again.stderr
    assert {p: (copy / p.relative_to(ROOT)).read_text() for p in GENERATED} == written
