"""Bottlerocket's built-in NVIDIA device plugin, set up from the same sharing profile.

On `BOTTLEROCKET_x86_64_NVIDIA` nodes the plugin is part of the OS and reads
`settings.kubelet-device-plugins.nvidia.*`; the Helm release stays off those nodes. The
settings travel as TOML in the node group's launch template user data, which EKS merges with
its own bootstrap settings.
"""

from __future__ import annotations

from typing import Any

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings import SharingProfile

SETTINGS_PATH = ("settings", "kubelet-device-plugins", "nvidia")


def device_plugin_settings(profile: SharingProfile) -> dict[str, Any]:
    """The `settings.kubelet-device-plugins.nvidia` table for a profile.

    Callers check bottlerocket_problems() first: MPS has no fail-requests setting there, and
    MIG there is a uniform `single` layout without replicas. Its MIG profile table takes one
    profile per GPU model (keys such as "a100.40gb", bottlerocket-os nvidia-migmanager); the
    entry for every MIG GPU whose Bottlerocket profiles include the layout's slice is written,
    so the same user data partitions whichever of them the node has (a GPU that lacks it gets
    no entry rather than one Bottlerocket would turn into a whole-GPU slice).
    """
    if profile.is_hami:
        # HAMi's device plugin advertises these GPUs; two plugins on one GPU would both
        # register nvidia.com/gpu. Off needs Bottlerocket 1.63.0+ (FACTS).
        return {facts.BOTTLEROCKET_PLUGIN_ENABLED_KEY: False}
    if profile.is_mig and profile.mig is not None:
        slice_name = profile.mig.layout_name.removeprefix("all-")
        return {
            "device-partitioning-strategy": "mig",
            "mig": {
                "profile": {
                    gpu.bottlerocket_key: slice_name
                    for gpu in facts.MIG_GPUS.values()
                    if slice_name in gpu.bottlerocket_profiles
                }
            },
        }
    if not profile.shared:
        return {"device-sharing-strategy": "none"}
    block: dict[str, Any] = {
        "replicas": profile.replicas,
        "rename-by-default": profile.rename_by_default,
    }
    if profile.strategy == "time-slicing":
        block["fail-requests-greater-than-one"] = profile.fail_requests_over_one
    return {"device-sharing-strategy": profile.strategy, profile.strategy: block}


def user_data(profile: SharingProfile) -> str:
    """Bottlerocket user data (TOML) carrying the profile's device-plugin settings."""
    return to_toml({".".join(SETTINGS_PATH): device_plugin_settings(profile)})


def to_toml(tables: dict[str, dict[str, Any]]) -> str:
    """A small TOML writer for tables of strings, integers, booleans and sub-tables, which is
    all these settings need (the standard library reads TOML but does not write it)."""
    lines: list[str] = []

    def table(name: str, values: dict[str, Any]) -> None:
        lines.append(f"[{name}]")
        nested = {k: v for k, v in values.items() if isinstance(v, dict)}
        for key, value in values.items():
            if key not in nested:
                lines.append(f"{_key(key)} = {_value(value)}")
        lines.append("")
        for key, value in nested.items():
            table(f"{name}.{_key(key)}", value)

    for name, values in tables.items():
        table(name, values)
    return "\n".join(lines)


def _key(key: str) -> str:
    # Bare keys allow A-Za-z0-9_-; anything else is quoted.
    return key if key.replace("-", "").replace("_", "").isalnum() else f'"{key}"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    raise TypeError(f"no TOML for {value!r}")
