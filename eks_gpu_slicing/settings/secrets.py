"""Secret config values as the offline tools see them: ciphertext they cannot read.

`pulumi config set --secret` writes a value to the stack file as `{secure: <ciphertext>}`,
under its key or, with `--path`, anywhere inside a structured value (a list entry, a map
value). The engine decrypts it before the program runs, so under `pulumi up` the settings
never see one. The offline tools (validate, render, check, verify) read the stack file
without the stack's secrets provider: for them a secret is a value that is there but cannot
be seen. It is never data: not a map with a key `secure`, not text to check as a cluster
name.

Where the stack only passes a value on (a name, a tag, a principal), the offline tools show
it as MASK and say so; where they need the value to know what the stack builds (an instance
type, a size, a profile), they say they cannot go on without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MASK = "[secret]"

# Top-level keys whose secrets the offline tools can show as MASK: what the stack only passes
# on to AWS. "value": the key itself; "list": the whole list (shown as one entry) or any
# entry; "map": any value (a whole map cannot be shown: its keys are secret too).
SHOWN = {"clusterName": "value", "adminRoleArns": "list", "tags": "map"}

Path = tuple[str | int, ...]


def is_secret(value: Any) -> bool:
    """Pulumi's own test for a secure value (sdk/go/common/resource/config/object.go,
    `isSecureValue`): a mapping of exactly one key, `secure`, whose value is a string.
    Pulumi reserves that shape, so no plain value has it."""
    return isinstance(value, Mapping) and len(value) == 1 and isinstance(value.get("secure"), str)


def secret_paths(value: Any, path: Path = ()) -> list[Path]:
    """Where the secrets are in a decoded config value, outermost first."""
    if is_secret(value):
        return [path]
    if isinstance(value, Mapping):
        return [p for key, item in value.items() for p in secret_paths(item, (*path, key))]
    if isinstance(value, list):
        return [p for i, item in enumerate(value) for p in secret_paths(item, (*path, i))]
    return []


def path_text(path: Path) -> str:
    """A key path as the settings' problems name it: `tags.team`, `adminRoleArns.0`."""
    return ".".join(str(part) for part in path)


class _Unreadable:
    """Stands in, while the settings are checked, for a secret they need and cannot read: no
    type accepts it, so its key is reported once, as this secret (or, under a misspelt key,
    as that key); and it is neither text nor a mapping nor a list, so nothing that reads the
    raw config takes it for one."""

    def __repr__(self) -> str:
        return MASK


UNREADABLE = _Unreadable()


def _replaced(value: Any, path: Path, new: Any) -> Any:
    """A copy of `value` with what is at `path` replaced by `new` (the original untouched)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, list):
        return [_replaced(v, rest, new) if i == head else v for i, v in enumerate(value)]
    return {k: _replaced(v, rest, new) if k == head else v for k, v in value.items()}


def _shown(path: Path) -> bool:
    kind = SHOWN.get(str(path[0]))
    return (kind == "value" and len(path) == 1) or (kind in ("list", "map") and len(path) <= 2)


@dataclass
class HiddenSecrets:
    """A stack's raw settings with the secrets the offline tools can show taken out (so
    that validation checks everything else), and what to say about all of them."""

    data: dict[str, Any]
    raw: Mapping[str, Any]
    shown: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)

    def covers(self, loc: tuple) -> bool:
        """Whether a validation error at `loc` is about an unreadable secret's value."""
        return any(tuple(loc[: len(p)]) == p for p in self.unreadable)

    def problems(self, unknown_keys: list[tuple]) -> list[str]:
        """One per secret the offline tools need and cannot read (except under a key that is
        unknown anyway: that is the problem to fix)."""
        return [
            f"{path_text(p)}: a secret (`secure:`) that offline tools cannot read, and they "
            "need its value to know what this stack builds; give it in plain text (pulumi "
            "config set without --secret), or review this stack with `pulumi preview`"
            for p in self.unreadable
            if not any(tuple(p[: len(loc)]) == tuple(loc) for loc in unknown_keys)
        ]

    def notes(self) -> list[str]:
        """What the offline tools show in place of each secret they can show."""
        out = []
        for p in self.shown:
            where = f"{path_text(p)} is a secret that offline tools cannot read"
            if SHOWN[str(p[0])] == "map" and len(p) == 1:
                out.append(f"{where}; rendered without those tags (their names are secret too)")
            elif SHOWN[str(p[0])] == "list" and len(p) == 1:
                out.append(f"{where}; rendered as one entry {MASK}, unchecked")
            else:
                out.append(f"{where}; rendered as {MASK}, unchecked")
        return out

    def shown_values(self) -> dict[str, Any]:
        """alias -> the value to show for each top-level key that held a shown secret."""
        values: dict[str, Any] = {}
        for p in self.shown:
            key, raw = str(p[0]), self.raw[str(p[0])]
            if is_secret(raw):
                values[key] = {"value": MASK, "list": [MASK], "map": {}}[SHOWN[key]]
            elif isinstance(raw, list):
                values[key] = [MASK if is_secret(v) else v for v in raw]
            elif isinstance(raw, Mapping):
                values[key] = {k: MASK if is_secret(v) else v for k, v in raw.items()}
        return values


def hide_secrets(raw: Mapping[str, Any]) -> HiddenSecrets:
    """Split a stack's secrets into those shown as MASK (taken out of `data`) and those the
    offline tools cannot do without (UNREADABLE in `data`, reported by `problems`)."""
    hidden = HiddenSecrets(data=dict(raw), raw=raw)
    for path in secret_paths(dict(raw)):
        if not _shown(path):
            hidden.unreadable.append(path)
            hidden.data = _replaced(hidden.data, path, UNREADABLE)
            continue
        hidden.shown.append(path)
        key = str(path[0])
        if len(path) == 1:
            del hidden.data[key]
        elif isinstance(hidden.data[key], list):
            hidden.data[key] = [v for v in hidden.data[key] if not is_secret(v)]
        else:
            hidden.data[key] = {k: v for k, v in hidden.data[key].items() if not is_secret(v)}
    return hidden
