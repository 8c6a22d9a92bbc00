"""Render a stack offline: what `pulumi up` would create, as files a reviewer can diff.

    python -m eks_gpu_slicing.review.render dev      (or: make render STACK=dev)

Runs the real `__main__.py` with the stack file's config under the project's mocks (no AWS,
no Pulumi CLI, no network) and writes build/render/<stack>/:

    kubernetes/<kind>-<namespace>-<name>.yaml   every Kubernetes object, custom resources too
    helm/<namespace>-<release>.yaml             each Helm release: chart, repo, version, values
    resources.json                              every resource: type, name, parent,
                                                dependencies, inputs (secret inputs masked)
    outputs.json                                the stack outputs (secret ones masked)

Names come from the resources, keys are sorted and nothing records a time, so two renders of
the same code diff cleanly.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import shutil
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from eks_gpu_slicing.builders.workloads import report_resources
from eks_gpu_slicing.review.manifests import is_helm_release, is_kubernetes_object, manifest_of
from eks_gpu_slicing.review.mocks import Deployment, Registration, run_program
from eks_gpu_slicing.settings import ConfigError, Settings
from eks_gpu_slicing.settings.stack_files import (
    ROOT,
    StackFileError,
    engine_config_of_stack,
    settings_of_stack,
)

BUILD_DIR = ROOT / "build" / "render"
MASK = "[secret]"


@dataclass
class Rendered:
    stack: str
    settings: Settings
    deployment: Deployment
    # Relative path under build/render/<stack>/ -> file content.
    files: dict[str, str]
    # Manifest of every Kubernetes object, by URN (what `make check` validates).
    manifests: dict[str, dict[str, Any]]


def render(stack: str, root: Path = ROOT) -> Rendered:
    """Run the program for a stack under mocks. Raises ConfigError for a bad stack file."""
    settings = settings_of_stack(stack, root)
    deployment = run_program(engine_config_of_stack(stack, root), stack=stack)
    files: dict[str, str] = {}
    manifests: dict[str, dict[str, Any]] = {}
    for urn, registration in sorted(deployment.resources.items()):
        if is_kubernetes_object(registration.type):
            manifest = manifest_of(registration)
            manifests[urn] = manifest
            files[_unique(files, f"kubernetes/{_object_file(manifest)}", registration)] = to_yaml(
                manifest
            )
        elif is_helm_release(registration.type):
            release = helm_release(registration)
            name = f"helm/{release['namespace']}-{release['release']}.yaml"
            files[_unique(files, name, registration)] = to_yaml(release)
    files["resources.json"] = to_json(
        [resource_summary(r) for _, r in sorted_resources(deployment)]
    )
    files["outputs.json"] = to_json(
        {
            name: MASK if name in deployment.secret_outputs else value
            for name, value in deployment.outputs.items()
        }
    )
    return Rendered(stack, settings, deployment, files, manifests)


def sorted_resources(deployment: Deployment) -> list[tuple[str, Registration]]:
    return sorted(deployment.resources.items())


def helm_release(registration: Registration) -> dict[str, Any]:
    """What a reviewer needs of a Helm release (v3 Release or v4 Chart alike)."""
    inputs = registration.inputs
    return {
        "resource": registration.name,
        "release": inputs.get("name") or registration.name,
        "chart": inputs.get("chart"),
        "repository": (inputs.get("repositoryOpts") or {}).get("repo"),
        "version": inputs.get("version"),
        # Helm installs into the provider's namespace when none is given: "default" here.
        "namespace": inputs.get("namespace") or "default",
        "values": inputs.get("values") or {},
    }


def resource_summary(registration: Registration) -> dict[str, Any]:
    inputs = {
        key: MASK if key in registration.secret_inputs else value
        for key, value in registration.inputs.items()
    }
    return {
        "urn": registration.urn,
        "type": registration.type,
        "name": registration.name,
        "parent": registration.parent,
        "provider": registration.provider_urn,
        "dependencies": sorted(set(registration.dependencies)),
        "protect": registration.protect,
        "inputs": inputs,
    }


def _object_file(manifest: dict[str, Any]) -> str:
    metadata = manifest.get("metadata") or {}
    parts = [manifest["kind"], metadata.get("namespace"), metadata.get("name")]
    return "-".join(str(p) for p in parts if p).lower() + ".yaml"


def _unique(files: dict[str, str], name: str, registration: Registration) -> str:
    """Two objects with one file name (same kind, namespace and name: a bug the API server
    would reject too) both stay visible."""
    if name not in files:
        return name
    return name.removesuffix(".yaml") + f"--{registration.name}.yaml"


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Multi-line strings (ConfigMap data, scripts) as literal blocks, so diffs are per line.
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def to_yaml(value: Any) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=True, default_flow_style=False, width=100)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True) + "\n"


class WriteError(Exception):
    """The rendered files cannot be put in their folder: one line naming it, and why."""


def write(rendered: Rendered, out_dir: Path) -> None:
    """Replace out_dir with the rendered files, all at once (a removed resource leaves no
    stale file). They are written into a new folder beside it and moved into place, so a
    render that fails, or another render into the same folder at the same time, never leaves
    it half-written or holding files of two renders. WriteError when it cannot be done."""
    if out_dir.exists() and not out_dir.is_dir():
        raise WriteError(f"cannot render into {out_dir}: it is a file, not a folder")
    above = next((p for p in out_dir.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise WriteError(f"cannot render into {out_dir}: {above} is a file, not a folder")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / "resources.json").is_file():
        # Replacing it would delete whatever it holds; a render always has resources.json.
        raise WriteError(
            f"cannot render into {out_dir}: it holds files that are not a render "
            "(no resources.json); choose another folder with --out"
        )
    staging = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex}.tmp"
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
        for name, text in rendered.files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        _move_into_place(staging, out_dir)
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise WriteError(f"cannot write the render into {out_dir}: {why}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already once moved into place


def _move_into_place(staging: Path, out_dir: Path) -> None:
    """Rename `staging` to `out_dir`, replacing an earlier render there. A rename onto a
    folder only succeeds while that folder is empty or absent, so the earlier one is first
    renamed aside; another render may move in between, hence the loop. Concurrent renders of
    one stack hold the same files, and whichever lands last stays."""
    for _ in range(100):
        try:
            staging.rename(out_dir)
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        aside = out_dir.parent / f".{out_dir.name}.{uuid.uuid4().hex}.old"
        try:
            out_dir.rename(aside)
        except FileNotFoundError:
            continue  # another render moved it aside first
        shutil.rmtree(aside, ignore_errors=True)
    raise OSError(errno.EBUSY, "other renders kept replacing it")


def summary(rendered: Rendered, today: dt.date) -> list[str]:
    """Counts by type, the sharing report and the settings' warnings, as lines."""
    lines = [f"stack {rendered.stack}: {len(rendered.deployment.resources)} resources"]
    counts = Counter(r.type for r in rendered.deployment.resources.values())
    width = max(len(t) for t in counts)
    lines += [f"  {t.ljust(width)}  {n}" for t, n in sorted(counts.items())]
    lines.append("GPU sharing (stack output gpuNodeGroups):")
    for group, c in sorted(rendered.deployment.outputs.get("gpuNodeGroups", {}).items()):
        # One count per resource: a MIG `mixed` layout advertises several slice resources.
        counts = report_resources(c)
        per_node = " + ".join(f"{n} {r}" for r, (n, _) in counts.items())
        at_max = " + ".join(str(m) for _, m in counts.values())
        gpus = (
            f"a {c['gpuFraction']} {c['gpuModel']} vGPU"
            if "gpuFraction" in c
            else f"x{c['gpusPerNode']} GPU"
        )
        lines.append(
            f"  {group}: {c['instanceType']} {gpus}, profile {c['profile']}"
            f" ({c['strategy']}), {per_node} per node, {at_max} at maxSize"
        )
    lines += [f"warning: {w}" for w in rendered.settings.warnings(today)]
    return lines


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    """The stack arguments `make render`, `make check` and `make validate` share."""
    parser.add_argument("stack", help="stack name: reads Pulumi.<stack>.yaml")
    parser.add_argument(
        "--dir", type=Path, help="folder of the stack file (default: the repository root)"
    )


def render_or_exit_code(
    args: argparse.Namespace, render_stack: Callable[..., Rendered]
) -> Rendered | int:
    """The rendered stack, or the exit code after one line on stderr saying why not (1: a
    stack file Pulumi or the settings refuse; 2: no such stack file). `render_stack` is the
    caller's own `render`, so a test that replaces it there is heard."""
    try:
        # Only a given folder is passed on: the default is render()'s own.
        return render_stack(args.stack, **({"root": args.dir} if args.dir else {}))
    except (ConfigError, pulumi.RunError) as exc:
        print(f"Pulumi.{args.stack}.yaml: {exc}", file=sys.stderr)
        return 1
    except StackFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    parser.add_argument("--out", type=Path, help="output folder (default build/render/<stack>)")
    args = parser.parse_args(argv)
    rendered = render_or_exit_code(args, render)
    if isinstance(rendered, int):
        return rendered
    out_dir = args.out or BUILD_DIR / args.stack
    try:
        write(rendered, out_dir)
    except WriteError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("\n".join(summary(rendered, dt.date.today())))
    print(f"wrote {len(rendered.files)} files to {_relative(out_dir)}")
    return 0


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
