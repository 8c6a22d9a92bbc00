"""Stack files (Pulumi.<stack>.yaml) read the way the Pulumi engine hands them to the
program, so offline tools and tests see exactly what `pulumi up` would."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import Settings, decode_config_value, load_settings

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = ROOT / "__main__.py"


class StackFileError(Exception):
    """A stack file Pulumi would refuse to read (YAML syntax, a key given twice, a config key
    that is not `<namespace>:<name>`): one line naming the file and, where known, the place."""


class _StackFileLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in one mapping at any depth, as
    Pulumi's YAML parser (gopkg.in/yaml.v3) does; PyYAML alone keeps the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        # Compared as written, like yaml.v3; `<<` merges are overrides, not duplicates.
        first_line: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            line = key_node.start_mark.line + 1
            if key_node.value in first_line:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key '{key_node.value}' is already defined at line "
                    f"{first_line[key_node.value]}; Pulumi refuses a key given twice",
                    key_node.start_mark,
                )
            first_line[key_node.value] = line
        return super().construct_mapping(node, deep=deep)


def read_stack_file(path: Path) -> dict[str, Any]:
    """A stack file's document; StackFileError for anything Pulumi could not read.
    FileNotFoundError when there is no such file."""
    if path.is_dir():
        raise StackFileError(f"{path.name}: a folder, not a stack file, in {path.parent}")
    if not path.is_file():
        stacks = ", ".join(stack_names(path.parent)) or "none"
        raise FileNotFoundError(
            f"{path.name}: no such stack file in {path.parent} (stacks: {stacks})"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise StackFileError(
            f"{path.name}: not UTF-8 text (byte {exc.start}), so not YAML Pulumi reads"
        ) from None
    except OSError as exc:
        raise StackFileError(f"{path.name}: cannot read it ({exc.strerror or exc})") from None
    try:
        document = yaml.load(text, Loader=_StackFileLoader)  # a SafeLoader: data only
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "not valid YAML"
        start = exc.context_mark
        if exc.problem and exc.context and start and mark and start.line != mark.line:
            # Where the unclosed thing began is often where the mistake is.
            problem += f" ({exc.context} started at line {start.line + 1})"
        raise StackFileError(f"{path.name}{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise StackFileError(f"{path.name}: {exc}") from None
    document = document if document is not None else {}
    if not isinstance(document, Mapping):
        raise StackFileError(f"{path.name}: expected a mapping with a `config:` section")
    config = document.get("config")
    if config is not None and not isinstance(config, Mapping):
        raise StackFileError(f"{path.name}: `config:` must be a mapping of config keys")
    for key in config or {}:
        problem = config_key_problem(key)
        if problem:
            raise StackFileError(f"{path.name}: config key {key!r}: {problem}")
    return dict(document)


def stack_names(root: Path = ROOT) -> list[str]:
    """The stacks that have a stack file in `root` (a folder so named is none)."""
    return sorted(
        p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml") if p.is_file()
    )


def config_key_problem(key: Any) -> str | None:
    """Why Pulumi would refuse a stack file's config key, or None. Keys are `name` (this
    project's namespace), `<namespace>:<name>`, or the old `<namespace>:config:<name>`."""
    if not isinstance(key, str):
        return "config keys are strings"
    parts = key.split(":")
    if len(parts) <= 2 or (len(parts) == 3 and parts[1] == "config"):
        return None
    return "not of the form `<namespace>:<name>`"


def engine_config_of_stack(stack: str, root: Path = ROOT) -> dict[str, str]:
    """A stack file's config as the engine passes it: namespaced keys, every value a
    string, structured values as JSON."""
    document = read_stack_file(root / f"Pulumi.{stack}.yaml")
    return encode_config(document.get("config") or {})


def encode_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Encode {key: YAML value} (keys namespaced or not) as the engine does."""
    encoded = {}
    for key, value in config.items():
        namespace, _, name = key.rpartition(":")
        # The old `<namespace>:config:<name>` form reaches the program as `<namespace>:<name>`.
        namespace = namespace.removesuffix(":config") or facts.CONFIG_NAMESPACE
        full_key = f"{namespace}:{name}"
        if isinstance(value, str):
            encoded[full_key] = value
        elif isinstance(value, bool):
            encoded[full_key] = "true" if value else "false"
        elif isinstance(value, int | float):
            encoded[full_key] = str(value)
        else:
            encoded[full_key] = json.dumps(value)
    return encoded


def raw_settings(engine_config: Mapping[str, str]) -> dict[str, Any]:
    """This project's keys of an engine config, without the prefix, decoded."""
    prefix = f"{facts.CONFIG_NAMESPACE}:"
    return {
        key[len(prefix) :]: decode_config_value(key[len(prefix) :], value)
        for key, value in sorted(engine_config.items())
        if key.startswith(prefix)
    }


def settings_of_stack(stack: str, root: Path = ROOT) -> Settings:
    """Validated settings of a stack file (raises ConfigError)."""
    return settings_of_engine_config(engine_config_of_stack(stack, root), stack=stack)


def settings_of_engine_config(engine_config: Mapping[str, str], *, stack: str) -> Settings:
    """Validated settings of an engine config (raises ConfigError), its namespaces checked."""
    return load_settings(raw_settings(engine_config), stack=stack, config_keys=engine_config)
