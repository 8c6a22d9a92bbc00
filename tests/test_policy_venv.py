"""The policy pack runs in policy/venv, which holds only policy/requirements.txt: every
third-party module the pack's import graph reaches must come from a package listed there,
or `pulumi preview --policy-pack policy` fails with ModuleNotFoundError on a fresh runner."""

from __future__ import annotations

import ast
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from eks_gpu_slicing.settings.stack_files import ROOT

PACK = ROOT / "policy"


def module_file(module: str) -> Path | None:
    """The project file that defines `module`, or None when it is not the project's."""
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def is_project_module(module: str) -> bool:
    top = ROOT / module.split(".")[0]
    return top.is_dir() or top.with_suffix(".py").is_file()


def imports_of(path: Path, package: str) -> set[str]:
    """Modules `path` imports, including inside functions (they run when the pack does), but
    not under `if TYPE_CHECKING:`."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            # `from package import module` imports the module.
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m and m != "__future__"}


def third_party_imports_of_the_pack() -> dict[str, set[str]]:
    """{top-level third-party module: project files importing it} over the pack's graph."""
    third_party: dict[str, set[str]] = {}
    seen: set[Path] = set()
    queue = [(PACK / "__main__.py", "policy")]
    while queue:
        path, package = queue.pop()
        if path in seen:
            continue
        seen.add(path)
        for module in imports_of(path, package):
            if is_project_module(module):
                # Importing a.b.c runs a/__init__.py and a/b/__init__.py first.
                parts = module.split(".")
                for depth in range(1, len(parts) + 1):
                    name = ".".join(parts[:depth])
                    if (file := module_file(name)) is not None:
                        parent = name if file.name == "__init__.py" else name.rpartition(".")[0]
                        queue.append((file, parent))
            else:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names:
                    third_party.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return third_party


def test_the_pack_imports_only_what_its_virtualenv_installs():
    required = {
        canonicalize_name(Requirement(line).name)
        for line in (PACK / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    providers = packages_distributions()
    imported = third_party_imports_of_the_pack()
    # The pack's own entry point needs pulumi_policy; an empty graph would prove nothing.
    assert "pulumi_policy" in imported
    missing = {
        module: sorted(files)
        for module, files in imported.items()
        if not {canonicalize_name(d) for d in providers.get(module, [])} & required
    }
    assert not missing, f"imported by the policy pack but not in policy/requirements.txt: {missing}"


def test_the_graph_walk_sees_imports_inside_functions(tmp_path):
    # The check above is only as good as this walk: a lazy import is still an import.
    source = tmp_path / "lazy.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import numpy\n"
        "def f():\n    import pydantic\n    from kubernetes import client\n"
    )
    assert imports_of(source, "") >= {"pydantic", "kubernetes", "kubernetes.client"}
    assert "numpy" not in imports_of(source, "")
