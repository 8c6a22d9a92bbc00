"""The CrossGuard side of the policy rules: each rule in policy_rules as a pulumi-policy
policy. `policy/__main__.py` serves these (`pulumi preview --policy-pack policy`); the tests
call them with synthetic resources. Constructing a PolicyPack starts its server, so that
stays in policy/__main__.py.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from eks_gpu_slicing.review.policy_rules import GRAPH_RULES, RULES, GraphRule, Resource, Rule

PACK_NAME = "eks-gpu-slicing"
LEVELS = {"mandatory": EnforcementLevel.MANDATORY, "advisory": EnforcementLevel.ADVISORY}


def _resource(r) -> Resource:
    """ResourceValidationArgs and PolicyResource as the rules see them.

    The properties go through unchanged: in a preview they are pulumi-policy's unknown-checking
    proxy, which raises its UnknownValueError only when a rule reads a value that is not known
    yet, and the analyzer then reports that one rule as not run. Copying them (`dict()`) would
    read every field, so one unknown the rule never needs (a role ARN, subnet IDs) would skip
    it on every first preview.
    """
    opts = getattr(r, "opts", None)
    return Resource(
        type=r.resource_type,
        name=r.name,
        props=r.props if r.props is not None else {},
        urn=r.urn,
        protect=bool(getattr(opts, "protect", False)),
    )


def resource_policy(rule: Rule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        for message in rule.check(_resource(args)):
            report_violation(message, None)

    return ResourceValidationPolicy(
        name=rule.name,
        description=" ".join((rule.description or rule.name).split()),
        validate=validate,
        enforcement_level=LEVELS[rule.enforcement],
    )


def stack_policy(rule: GraphRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        for urn, message in rule.check([_resource(r) for r in args.resources]):
            report_violation(message, urn)

    return StackValidationPolicy(
        name=rule.name,
        description=" ".join((rule.description or rule.name).split()),
        validate=validate,
        enforcement_level=LEVELS[rule.enforcement],
    )


def policies() -> list:
    return [*(resource_policy(r) for r in RULES), *(stack_policy(r) for r in GRAPH_RULES)]
