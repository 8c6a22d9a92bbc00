"""A CRD's CEL validation rules (`x-kubernetes-validations`), evaluated offline the way the
API server does on create: nulls pruned and defaults applied first, each rule run at its
schema node with `self` bound to the value there (rules under `items`/`additionalProperties`
once per element; never at a null value), transition rules (`oldSelf`) skipped, since there
is no old object. The steps follow k8s.io/apiextensions-apiserver v0.35.7 (Kubernetes 1.35):
pkg/apiserver/schema/defaulting/{prunenulls,algorithm}.go and
pkg/apiserver/schema/cel/validation.go.

The API server's CEL environment adds Kubernetes libraries to standard CEL; cel-python has
the standard part. Of the rest, exactly the functions Karpenter's CRDs call are supplied
below; a rule calling anything else is reported as unevaluable, never passed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import celpy
import celpy.evaluation
import lark
import re2
from celpy import celtypes
from celpy.adapter import json_to_cel


def _find(text: celtypes.StringType, pattern: celtypes.StringType) -> celtypes.StringType:
    """`<string>.find(<regex>)`: the leftmost match, '' if none (k8s.io/apiserver
    pkg/cel/library/regex.go: Go regexp FindString; RE2 has Go's syntax and semantics)."""
    match = re2.search(str(pattern), str(text))
    return celtypes.StringType(match.group(0) if match else "")


def _split(text: celtypes.StringType, separator: celtypes.StringType) -> celtypes.ListType:
    """`<string>.split(<string>)` (cel-go ext/strings.go: Go strings.Split, which splits
    into characters on an empty separator)."""
    parts = list(text) if separator == "" else str(text).split(str(separator))
    return celtypes.ListType([celtypes.StringType(p) for p in parts])


KUBERNETES_FUNCTIONS = {"find": _find, "split": _split}
# Macros the parser expands; cel-python implements them (has() included).
_MACROS = frozenset({"has", "all", "exists", "exists_one", "map", "filter"})
SUPPORTED_FUNCTIONS = (
    frozenset(n for n in celpy.evaluation.base_functions if n.isidentifier())
    | _MACROS
    | frozenset(KUBERNETES_FUNCTIONS)
)
_OLD_SELF = re.compile(r"\boldSelf\b")
# The longest message a messageExpression may give (k8s.io/apiserver v0.35.7
# pkg/apis/cel/config.go MaxEvaluatedMessageExpressionSizeBytes).
MAX_MESSAGE_EXPRESSION_BYTES = 5 * 1024


@dataclass(frozen=True)
class Rule:
    """One x-kubernetes-validations entry."""

    rule: str
    message: str = ""
    message_expression: str = ""
    field_path: str = ""

    @property
    def is_transition(self) -> bool:
        return bool(_OLD_SELF.search(self.rule))

    @property
    def default_message(self) -> str:
        # apiextensions-apiserver's ruleMessageOrDefault
        return self.message.strip() or f"failed rule: {self.rule.strip()}"


@dataclass
class CelResult:
    evaluated: int = 0
    transition_skipped: int = 0
    failures: list[str] = field(default_factory=list)  # "<path>: <message>"


def rules_of(schema: Mapping[str, Any]) -> list[Rule]:
    return [
        Rule(
            rule=r["rule"],
            message=r.get("message", ""),
            message_expression=r.get("messageExpression", ""),
            field_path=r.get("fieldPath", ""),
        )
        for r in schema.get("x-kubernetes-validations") or []
    ]


def all_rules(schema: Mapping[str, Any], path: str = "") -> Iterator[tuple[str, Rule]]:
    """Every rule in a schema with the schema path it sits at (`[*]` for elements)."""
    for rule in rules_of(schema):
        yield path or "<root>", rule
    for name, sub in (schema.get("properties") or {}).items():
        yield from all_rules(sub, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), Mapping):
        yield from all_rules(schema["items"], f"{path}[*]")
    if isinstance(schema.get("additionalProperties"), Mapping):
        yield from all_rules(schema["additionalProperties"], f"{path}[*]")


def called_functions(expression: str) -> set[str]:
    """The names of the functions and macros an expression calls."""
    names = set()
    for node in _compile(expression).iter_subtrees():
        if node.data in ("ident_arg", "member_dot_arg", "dot_ident_arg"):
            names.update(
                str(c) for c in node.children if isinstance(c, lark.Token) and c.type == "IDENT"
            )
    return names


def evaluate_object(schema: Mapping[str, Any], manifest: Mapping[str, Any]) -> CelResult:
    """Every non-transition rule that applies to `manifest` (a custom resource) under its
    version's openAPIV3Schema."""
    result = CelResult()
    obj = copy.deepcopy(dict(manifest))
    prune_nulls(schema, obj)
    apply_defaults(schema, obj)
    _walk(schema, obj, "", result)
    return result


def _field_schema(schema: Mapping[str, Any] | None, name: str) -> Mapping[str, Any] | None:
    """The schema of an object's field: its property's, else additionalProperties'."""
    if not schema:
        return None
    properties = schema.get("properties") or {}
    if name in properties:
        return properties[name]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, Mapping) else None


def _non_nullable_null(value: Any, schema: Mapping[str, Any] | None) -> bool:
    return value is None and schema is not None and not schema.get("nullable", False)


def prune_nulls(schema: Mapping[str, Any] | None, value: Any) -> None:
    """What the API server does as it decodes an object (PruneNonNullableNullsWithoutDefaults):
    an object's field that is null, whose schema is neither `nullable` nor has a `default`, is
    dropped, so a rule on the object sees it absent (`has()` is false). Nulls in lists stay;
    a null with a default is left for defaulting."""
    if isinstance(value, dict):
        for name in list(value):
            sub = _field_schema(schema, name)
            if _non_nullable_null(value[name], sub) and "default" not in sub:
                del value[name]
            else:
                prune_nulls(sub, value[name])
    elif isinstance(value, list):
        items = schema.get("items") if schema else None
        for item in value:
            prune_nulls(items if isinstance(items, Mapping) else None, item)


def apply_defaults(schema: Mapping[str, Any], value: Any) -> None:
    """Structural defaulting, which the API server does before it validates: a field that is
    absent, or null where its schema is not `nullable`, gets its schema's default."""
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            if "default" in sub and (name not in value or _non_nullable_null(value[name], sub)):
                value[name] = copy.deepcopy(sub["default"])
        extra = schema.get("additionalProperties")
        for name in list(value):
            if name in properties:
                apply_defaults(properties[name], value[name])
            elif isinstance(extra, Mapping):
                if "default" in extra and _non_nullable_null(value[name], extra):
                    value[name] = copy.deepcopy(extra["default"])
                apply_defaults(extra, value[name])
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        items = schema["items"]
        for index, item in enumerate(value):
            if "default" in items and _non_nullable_null(item, items):
                value[index] = copy.deepcopy(items["default"])
            apply_defaults(items, value[index])


def _walk(schema: Mapping[str, Any], value: Any, path: str, result: CelResult) -> None:
    if value is None:
        # The API server runs no rule at a null value (a nullable field, a null list item):
        # a rule that cares about nulls sits on the object or list around it.
        return
    for rule in rules_of(schema):
        if rule.is_transition:
            result.transition_skipped += 1
            continue
        result.evaluated += 1
        problem = check_rule(rule, value)
        if problem:
            result.failures.append(f"{(path or '<root>') + rule.field_path}: {problem}")
    if isinstance(value, dict):
        properties = schema.get("properties") or {}
        for name, sub in properties.items():
            if name in value:
                _walk(sub, value[name], f"{path}.{name}" if path else name, result)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for name, item in value.items():
                if name not in properties:
                    _walk(extra, item, f"{path}[{name}]", result)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{index}]", result)


def check_rule(rule: Rule, value: Any) -> str | None:
    """None when the rule holds; else the API server's message for it, or why it could not
    be evaluated (which the API server would reject too, or which this tool cannot judge)."""
    try:
        outcome = _program(rule.rule).evaluate({"self": json_to_cel(value)})
    except (celpy.CELEvalError, celpy.CELParseError) as exc:
        return f"rule could not be evaluated ({_short(exc)}): {rule.rule.strip()}"
    if not isinstance(outcome, (celtypes.BoolType, bool)):
        return f"rule did not evaluate to a bool ({outcome!r}): {rule.rule.strip()}"
    if outcome:
        return None
    if rule.message_expression:
        try:
            text = _program(rule.message_expression).evaluate({"self": json_to_cel(value)})
        except (celpy.CELEvalError, celpy.CELParseError):
            text = None
        # A messageExpression that fails, or yields no string, an empty one, one with a line
        # break or one over the size limit (each after trimming), falls back to message.
        if isinstance(text, str):
            text = str(text).strip()
            if text and "\n" not in text and len(text.encode()) <= MAX_MESSAGE_EXPRESSION_BYTES:
                return text
    return rule.default_message


@cache
def _compile(expression: str) -> lark.Tree:
    return _ENVIRONMENT.compile(expression)


@cache
def _program(expression: str) -> celpy.Runner:
    unsupported = called_functions(expression) - SUPPORTED_FUNCTIONS
    if unsupported:
        raise celpy.CELEvalError(f"unsupported function {', '.join(sorted(unsupported))}")
    return _ENVIRONMENT.program(_compile(expression), functions=KUBERNETES_FUNCTIONS)


def _short(exc: Exception) -> str:
    detail = exc.args[0] if exc.args else str(exc)
    return str(detail).split(" (in activation")[0]


_ENVIRONMENT = celpy.Environment()
