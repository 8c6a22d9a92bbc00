"""Resource URNs as the Pulumi engine makes them, and which old URN an alias adopts.

The mock monitor's URNs are not the engine's (it prefixes top-level resources with
`pulumi:pulumi:Stack$` and names only the parent's own type), so a refactor that moves
resources under a new component is checked here with the engine's rules
(pkg/resource/deploy: generateURN, collapseAliasToUrn, inheritedChildAlias):

- a URN's type part is the parent's qualified type chain, `$`, then the resource's type; a
  child of the root stack has no chain;
- an alias spec replaces name, type or parent (noParent: the root stack);
- a child of a resource that was adopted through an alias also gets its parent's old
  chain as an alias, so moving a component moves its whole subtree.
"""

from __future__ import annotations

from collections.abc import Iterable

from eks_gpu_slicing.review.mocks import Deployment, Registration

ROOT_STACK_TYPE = "pulumi:pulumi:Stack"


def make_urn(stack: str, project: str, parent_type: str, type_: str, name: str) -> str:
    chain = f"{parent_type}${type_}" if parent_type else type_
    return f"urn:pulumi:{stack}::{project}::{chain}::{name}"


def qualified_type(urn: str) -> str:
    return urn.split("::")[2]


def engine_urns(deployment: Deployment, stack: str, project: str) -> dict[str, str]:
    """{mock URN: the engine's URN} for every registered resource."""
    resources = deployment.resources
    out: dict[str, str] = {}

    def urn_of(registration: Registration) -> str:
        if registration.urn not in out:
            parent = resources.get(registration.parent)
            parent_type = qualified_type(urn_of(parent)) if parent is not None else ""
            out[registration.urn] = make_urn(
                stack, project, parent_type, registration.type, registration.name
            )
        return out[registration.urn]

    for registration in resources.values():
        urn_of(registration)
    return out


def adopted(
    deployment: Deployment, old_urns: Iterable[str], stack: str, project: str
) -> dict[str, str]:
    """{engine URN of a resource now: the old URN it takes over} for every resource whose
    own URN or one of its aliases is an old one."""
    old = set(old_urns)
    resources = deployment.resources
    urns = engine_urns(deployment, stack, project)
    matched: dict[str, str] = {}  # mock URN -> old URN

    def match(registration: Registration) -> str | None:
        if registration.urn in matched:
            return matched[registration.urn]
        candidates = [urns[registration.urn]]
        parent = resources.get(registration.parent)
        parent_type = qualified_type(urns[parent.urn]) if parent is not None else ""
        for alias in registration.aliases:
            if "urn" in alias:
                candidates.append(alias["urn"])
                continue
            alias_parent = parent_type
            if alias["noParent"]:
                alias_parent = ""
            elif alias["parentUrn"]:
                alias_parent = qualified_type(alias["parentUrn"])
            candidates.append(
                make_urn(
                    stack,
                    project,
                    alias_parent,
                    alias["type"] or registration.type,
                    alias["name"] or registration.name,
                )
            )
        parent_old = match(parent) if parent is not None else None
        if parent_old is not None:
            candidates.append(
                make_urn(
                    stack,
                    project,
                    qualified_type(parent_old),
                    registration.type,
                    registration.name,
                )
            )
        found = next((c for c in candidates if c in old), None)
        if found is not None:
            matched[registration.urn] = found
        return found

    for registration in resources.values():
        match(registration)
    return {urns[mock]: old_urn for mock, old_urn in matched.items()}
