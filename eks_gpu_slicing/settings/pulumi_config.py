"""Read this stack's Pulumi configuration into validated Settings (the only reader)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pulumi
from pulumi.runtime import config as runtime_config

from eks_gpu_slicing.settings import ConfigError, Settings
from eks_gpu_slicing.settings.stack_files import raw_settings, settings_of_engine_config


def engine_config() -> dict[str, str]:
    """Every config key of the stack, namespaced, with its value as the engine passed it.

    pulumi.Config only answers for keys you ask about; to report misspelt keys (and keys
    under a misspelt namespace) we need all of them, which the runtime keeps in its config
    map (set by the engine, or by `set_all_config` under test) and in PULUMI_CONFIG.
    """
    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {key: runtime_config.get_config(key) for key in keys}


def raw_stack_config() -> dict[str, Any]:
    """Every key set in this project's config namespace, decoded, without the prefix."""
    return raw_settings(engine_config())


def aws_profile() -> str | None:
    """The stack's `aws:profile`, if set (the AWS provider's own key)."""
    return pulumi.Config("aws").get("profile")


def read_settings(today: dt.date | None = None) -> Settings:
    """Validated settings for the current stack, or a RunError naming every problem."""
    try:
        settings = settings_of_engine_config(engine_config(), stack=pulumi.get_stack())
    except ConfigError as exc:
        # RunError ends the program with this message and no stack trace, before any
        # resource has been registered.
        raise pulumi.RunError(str(exc)) from None
    for warning in settings.warnings(today or dt.date.today()):
        pulumi.log.warn(warning)
    return settings
