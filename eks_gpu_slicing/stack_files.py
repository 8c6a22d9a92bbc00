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

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = ROOT / "__main__.py"


def engine_config_of_stack(stack: str, root: Path = ROOT) -> dict[str, str]:
    """A stack file's config as the engine passes it: namespaced keys, every value a
    string, structured values as JSON."""
    document = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text()) or {}
    return encode_config(document.get("config") or {})


def encode_config(config: Mapping[str, Any]) -> dict[str, str]:
    """Encode {key: YAML value} (keys namespaced or not) as the engine does."""
    encoded = {}
    for key, value in config.items():
        full_key = key if ":" in key else f"{facts.CONFIG_NAMESPACE}:{key}"
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
    return load_settings(raw_settings(engine_config_of_stack(stack, root)), stack=stack)
