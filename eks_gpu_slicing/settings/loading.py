"""From raw stack config to validated Settings, with every problem named by key path."""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.addons import DevicePluginSettings
from eks_gpu_slicing.settings.base import ConfigError
from eks_gpu_slicing.settings.existing_cluster import static_problems as existing_cluster_problems
from eks_gpu_slicing.settings.karpenter import karpenter_pool_profiles, karpenter_reference_problems
from eks_gpu_slicing.settings.node_groups import GpuNodeGroupSettings
from eks_gpu_slicing.settings.secrets import HiddenSecrets, hide_secrets, is_secret
from eks_gpu_slicing.settings.sharing import DEFAULT_SHARING, FRACTIONAL_DEFAULT_PROFILE
from eks_gpu_slicing.settings.stack import Settings

# Namespaces of the providers this program uses (aws:region, kubernetes:..., eks:...) and
# Pulumi's own (pulumi:tags): config there is read by them, never reported here.
OTHER_CONFIG_NAMESPACES = frozenset({"aws", "awsx", "eks", "kubernetes", "pulumi"})

# --- Loading ----------------------------------------------------------------------------------


def load_settings(
    raw: Mapping[str, Any], *, stack: str, config_keys: Iterable[str] = ()
) -> Settings:
    """Validate a stack's raw configuration (config keys without the namespace prefix).

    Raises ConfigError listing every problem; structural problems (types, unknown keys,
    ranges) and references between sections (a group naming a missing profile) are
    reported together. `config_keys`: every key of the stack's config, namespaced, so a
    section under a misspelt namespace is reported rather than dropped.
    """
    # Secrets an offline tool could not decrypt: those it can show are taken out here and
    # shown as a mask once the rest is valid; the others are problems (settings/secrets.py).
    secrets = hide_secrets(raw)
    data = secrets.data
    # Checked before clusterName gets its default, so that a clusterName the file sets is told
    # apart from one it leaves out.
    problems: list[str] = config_namespace_problems(config_keys)
    problems.extend(existing_cluster_problems(data))
    existing = data.get("existingCluster")
    existing_name = existing.get("name") if isinstance(existing, Mapping) else None
    data.setdefault(
        "clusterName",
        existing_name if isinstance(existing_name, str) else f"{facts.PROJECT}-{stack}",
    )
    data, fractional_problems = fractional_default_profiles(data)
    problems.extend(fractional_problems)
    settings = None
    unknown_keys: list[tuple] = []
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        unknown_keys = [err["loc"] for err in errors if err["type"] == "extra_forbidden"]
        # An unreadable secret is one problem of its own, not a wrong type or format.
        problems.extend(
            _describe(err)
            for err in errors
            if err["type"] == "extra_forbidden" or not secrets.covers(err["loc"])
        )
    problems.extend(secrets.problems(unknown_keys))
    if not secrets.unreadable:
        # (With a value missing, they would judge a configuration that is not the stack's.)
        problems.extend(_gpu_capacity_problems(data))
        problems.extend(_reference_problems(data))
    problems.extend(_stack_tag_problems(data))
    if settings is not None and not problems:
        # Rules that need the whole, well-formed configuration (a profile on a given GPU).
        problems.extend(settings.combination_problems())
    if problems:
        raise ConfigError(problems)
    assert settings is not None
    if secrets.shown:
        settings = _with_secrets_shown(settings, secrets)
    return settings


def _with_secrets_shown(settings: Settings, secrets: HiddenSecrets) -> Settings:
    """The validated settings with each secret an offline tool can show put back as the
    mask, and notes saying so among the warnings."""
    update = {}
    for alias, value in secrets.shown_values().items():
        name = next(n for n, f in Settings.model_fields.items() if (f.alias or n) == alias)
        update[name] = value
    shown = settings.model_copy(update=update)
    shown._secret_notes = tuple(secrets.notes())
    return shown


def config_namespace_problems(keys: Iterable[str]) -> list[str]:
    """Config keys whose namespace is a near miss of this project's (`eks-gpu-slice:...`).
    Pulumi hands them to the program, but under a namespace nothing reads, so the whole
    section would silently fall back to its defaults."""
    problems = []
    for key in sorted(keys):
        namespace, colon, name = key.partition(":")
        if not colon or namespace == facts.CONFIG_NAMESPACE or namespace in OTHER_CONFIG_NAMESPACES:
            continue
        if difflib.get_close_matches(namespace, [facts.CONFIG_NAMESPACE], n=1):
            problems.append(
                f"{key}: namespace '{namespace}' is not this project's, so the program never "
                f"reads it; did you mean '{facts.CONFIG_NAMESPACE}:{name}'?"
            )
    return problems


def decode_config_value(key: str, value: Any) -> Any:
    """Turn one Pulumi config value (always a string from the engine) into data.

    Pulumi hands structured values over as JSON text. String-typed keys stay as written:
    decoding `1.35` as JSON would make the Kubernetes version a float.
    """
    if not isinstance(value, str):
        return value
    try:
        decoded = json.loads(value)
    except json.JSONDecodeError:
        return value
    if is_secret(decoded):
        # A secret the reader could not decrypt (the engine always does): a value it cannot
        # see, whatever the key's type, never its ciphertext as text.
        return decoded
    field = _field_by_alias(Settings, key)
    if field is not None and _is_string_field(field.annotation):
        return value
    return decoded


def fractional_default_profiles(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The raw config with FRACTIONAL_DEFAULT_PROFILE filled in, and why it cannot be.

    A node group of a fractional type (g6f, gr6f: facts.GpuInstance.gpu_fraction), or a
    Karpenter pool of only such types, that names no `sharing` profile gets one with strategy
    none, added to `sharing` unless the stack defines it (then it must be unshared): the
    device plugin's default profile would time-slice an already small hardware slice. A pool
    mixing fractional and whole-GPU types must name its profile."""
    data = dict(data)
    problems: list[str] = []
    groups_wanted: list[str] = []  # names that get the profile
    pools_wanted: list[str] = []

    def fractional(types: list[Any]) -> list[bool]:
        """Whether each known GPU type among `types` is fractional (unknown ones are
        reported by validation)."""
        return [
            facts.GPU_INSTANCES[t].fractional
            for t in types
            if isinstance(t, str) and t in facts.GPU_INSTANCES
        ]

    groups = data.get("gpuNodeGroups")
    if isinstance(groups, Mapping):
        for name, spec in groups.items():
            unnamed = isinstance(spec, Mapping) and "sharing" not in spec
            if unnamed and fractional([spec.get("instanceType")]) == [True]:
                groups_wanted.append(name)
    karpenter = data.get("karpenter")
    pools = karpenter.get("nodePools") if isinstance(karpenter, Mapping) else None
    if isinstance(pools, Mapping):
        for name, spec in pools.items():
            types = spec.get("instanceTypes") if isinstance(spec, Mapping) else None
            if not isinstance(types, list) or "sharing" in spec:
                continue
            kinds = fractional(types)
            if kinds and all(kinds):
                pools_wanted.append(name)
            elif any(kinds):
                problems.append(
                    f"karpenter.nodePools.{name}.sharing: the pool mixes fractional GPU types "
                    "(a vGPU slice, unshared unless a profile says otherwise) with whole GPUs "
                    "(shared per the device plugin's default profile): name its profile"
                )
    if not groups_wanted and not pools_wanted:
        return data, problems
    profiles = data.get("sharing", DEFAULT_SHARING)
    if not isinstance(profiles, Mapping):
        return data, problems  # reported by validation
    defined = profiles.get(FRACTIONAL_DEFAULT_PROFILE)
    if defined is None:
        data["sharing"] = {**profiles, FRACTIONAL_DEFAULT_PROFILE: {"strategy": "none"}}
    else:
        strategy = (
            defined.get("strategy")
            if isinstance(defined, Mapping)
            else getattr(defined, "strategy", None)
        )
        if strategy != "none":
            users = ", ".join(
                [f"gpuNodeGroups.{n}" for n in groups_wanted]
                + [f"karpenter.nodePools.{n}" for n in pools_wanted]
            )
            problems.append(
                f"sharing.{FRACTIONAL_DEFAULT_PROFILE}: fractional GPU groups and pools that "
                f"name no profile ({users}) use this one, so it must have strategy none; "
                "give them a sharing key or rename this profile"
            )
    if isinstance(groups, Mapping):
        data["gpuNodeGroups"] = {
            name: (
                {**spec, "sharing": FRACTIONAL_DEFAULT_PROFILE} if name in groups_wanted else spec
            )
            for name, spec in groups.items()
        }
    if isinstance(pools, Mapping) and isinstance(karpenter, Mapping):
        data["karpenter"] = {
            **karpenter,
            "nodePools": {
                name: (
                    {**spec, "sharing": FRACTIONAL_DEFAULT_PROFILE}
                    if name in pools_wanted
                    else spec
                )
                for name, spec in pools.items()
            },
        }
    return data, problems


def _gpu_capacity_problems(data: Mapping[str, Any]) -> list[str]:
    """A stack needs GPU nodes from somewhere: node groups, Karpenter pools, or both."""
    groups = data.get("gpuNodeGroups")
    karpenter = data.get("karpenter")
    pools = karpenter.get("nodePools") if isinstance(karpenter, Mapping) else None
    has_pools = isinstance(karpenter, Mapping) and karpenter.get("enabled") is True and bool(pools)
    if groups or ((groups is None or isinstance(groups, Mapping)) and has_pools):
        return []
    return [
        "gpuNodeGroups: at least one GPU node group is required "
        "(or Karpenter with karpenter.nodePools)"
    ]


def _reference_problems(data: Mapping[str, Any]) -> list[str]:
    """Cross-section references, checked on the raw data so they are reported even when
    other parts of the configuration fail to parse."""
    profiles = data.get("sharing", DEFAULT_SHARING)
    if not isinstance(profiles, Mapping):
        return []
    names = set(profiles)
    known = ", ".join(sorted(names)) or "none"
    problems = []
    groups = data.get("gpuNodeGroups")
    default_group_profile = GpuNodeGroupSettings.model_fields["sharing"].default
    used = set()
    if isinstance(groups, Mapping):
        for group, spec in groups.items():
            if not isinstance(spec, Mapping):
                continue
            profile = spec.get("sharing", default_group_profile)
            used.add(profile)
            if isinstance(profile, str) and profile not in names:
                problems.append(
                    f"gpuNodeGroups.{group}.sharing: no sharing profile '{profile}' "
                    f"(profiles: {known})"
                )
    problems.extend(karpenter_reference_problems(data, names))
    used |= karpenter_pool_profiles(data)
    plugin = data.get("devicePlugin", {})
    plugin = plugin if isinstance(plugin, Mapping) else {}
    default_profile = plugin.get(
        "defaultProfile", DevicePluginSettings.model_fields["default_profile"].default
    )
    if isinstance(default_profile, str) and default_profile not in names:
        where = "devicePlugin.defaultProfile" if "defaultProfile" in plugin else "sharing"
        problems.append(
            f"{where}: the device plugin's default profile '{default_profile}' is not "
            f"defined (profiles: {known})"
        )
    demo = data.get("demoWorkload", {})
    demo = demo if isinstance(demo, Mapping) else {}
    if demo.get("enabled") is True:
        profile = demo.get("profile") or default_profile
        if isinstance(profile, str) and profile in names and profile not in used:
            problems.append(
                f"demoWorkload.profile: no GPU node group uses profile '{profile}', "
                "so its pods could never be scheduled"
            )
        elif isinstance(profile, str) and profile not in names:
            problems.append(f"demoWorkload.profile: no sharing profile '{profile}'")
    bench_settings = data.get("benchmark", {})
    bench_settings = bench_settings if isinstance(bench_settings, Mapping) else {}
    chosen = bench_settings.get("nodeGroups")
    if isinstance(chosen, list) and isinstance(groups, Mapping):
        for name in chosen:
            if name not in groups:
                problems.append(f"benchmark.nodeGroups: no GPU node group '{name}'")
    return problems


def _stack_tag_problems(data: Mapping[str, Any]) -> list[str]:
    """`tags` keys that would replace the tags every resource of the stack carries."""
    tags = data.get("tags")
    if not isinstance(tags, Mapping):
        return []
    return [
        f"tags.{key}: set by the stack itself on every resource ({facts.PROJECT_TAG}: "
        f"{facts.PROJECT}, {facts.STACK_TAG}: <stack name>) and not replaceable; use another "
        "key, such as team or cost-center"
        for key in (facts.PROJECT_TAG, facts.STACK_TAG)
        if key in tags
    ]


def _describe(err: Mapping[str, Any]) -> str:
    path = ".".join(str(part) for part in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, key = err["loc"][:-1], str(err["loc"][-1])
        known = _known_keys(parent)
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
        if not known:  # under a free map, or a type the hint cannot see into: say no more
            hint = ""
        return f"{path}: unknown key{hint}"
    message = err["msg"]
    message = message.removeprefix("Value error, ")
    if kind == "missing":
        message = "required"
    return f"{path or '(root)'}: {message}"


def _known_keys(loc: tuple) -> list[str]:
    """The config keys allowed under a location, for did-you-mean hints."""
    model: Any = Settings
    for part in loc:
        model = _without_none(model)
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = _field_by_alias(model, str(part))
            model = field.annotation if field else None
        elif typing.get_origin(model) is dict:
            model = typing.get_args(model)[1]
        else:
            return []
    model = _without_none(model)
    if typing.get_origin(model) is dict:  # loc names the map itself, its keys are free
        return []
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(f.alias or name for name, f in model.model_fields.items())
    return []


def _without_none(annotation: Any) -> Any:
    """An optional field's type without its None (`MigSettings | None` -> MigSettings), so
    the keys of optional nested models are found too; other unions stay as they are."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _field_by_alias(model: type[BaseModel], alias: str):
    for name, field in model.model_fields.items():
        if (field.alias or name) == alias:
            return field
    return None


def _is_string_field(annotation: Any) -> bool:
    if annotation is str:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return str in typing.get_args(annotation)
    return False
