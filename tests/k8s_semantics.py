"""Kubernetes scheduling rules, written out so tests can check placement the way the
scheduler would (k8s.io/api core/v1 Toleration.ToleratesTaint; nodeSelector is an exact
match on every key)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# EKS's node group API spells taint effects in upper case; nodes get the Kubernetes form.
EKS_EFFECTS = {
    "NO_SCHEDULE": "NoSchedule",
    "NO_EXECUTE": "NoExecute",
    "PREFER_NO_SCHEDULE": "PreferNoSchedule",
}


def toleration_tolerates(toleration: Mapping[str, str], taint: Mapping[str, str]) -> bool:
    effect = EKS_EFFECTS.get(taint["effect"], taint["effect"])
    if toleration.get("effect") and toleration["effect"] != effect:
        return False
    key = toleration.get("key", "")
    operator = toleration.get("operator", "Equal")
    if not key:  # an empty key with Exists tolerates everything
        return operator == "Exists"
    if key != taint["key"]:
        return False
    if operator == "Exists":
        return True
    return toleration.get("value", "") == taint.get("value", "")


def tolerates(
    tolerations: Iterable[Mapping[str, str]], taints: Iterable[Mapping[str, str]]
) -> bool:
    """True when every NoSchedule/NoExecute taint is tolerated by some toleration."""
    tolerations = list(tolerations)
    return all(
        any(toleration_tolerates(t, taint) for t in tolerations)
        for taint in taints
        if EKS_EFFECTS.get(taint["effect"], taint["effect"]) != "PreferNoSchedule"
    )


def selector_matches(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def affinity_matches(affinity: Mapping, labels: Mapping[str, str]) -> bool:
    """requiredDuringScheduling node affinity: terms are ORed, expressions ANDed."""
    terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    return any(all(_expression(e, labels) for e in t["matchExpressions"]) for t in terms)


def _expression(expression: Mapping, labels: Mapping[str, str]) -> bool:
    value = labels.get(expression["key"])
    operator = expression["operator"]
    if operator == "In":
        return value in expression["values"]
    if operator == "NotIn":
        return value not in expression["values"]
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    raise ValueError(f"operator {operator} not modelled")
