"""Check a stack offline: render it, then validate what it would send to the cluster.

    python -m eks_gpu_slicing.review.check dev      (or: make check STACK=dev)

- built-in Kubernetes objects against the OpenAPI schema of the stack's Kubernetes version;
- custom resources (Karpenter) against the pinned karpenter-crd chart's CRDs: their OpenAPI
  schemas and their CEL rules (x-kubernetes-validations); see karpenter_crds for where the
  CRDs come from (KARPENTER_CRD_DIR, the cache, or the chart's OCI registry);
- each device-plugin config entry against the plugin's own rules;
- Helm values against the value paths each pinned chart's templates read;
- the policy pack's rules over the rendered graph.

Exit 1 with every violation, each naming the resource and the rule; advisory rules and
things that could not be checked are printed as notices. Exit 1 with one line when the CRDs
cannot be had.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.device_plugin import check_device_plugin_config
from eks_gpu_slicing.review.helm import CHART_VALUE_PATHS, unknown_value_paths
from eks_gpu_slicing.review.karpenter_crds import CrdsUnavailable, karpenter_crd_dir
from eks_gpu_slicing.review.manifests import (
    builtin_problems,
    crd_versions,
    custom_resource_cel,
    custom_resource_problems,
    is_builtin_kind,
    is_helm_release,
)
from eks_gpu_slicing.review.policy_rules import Resource, evaluate
from eks_gpu_slicing.review.render import (
    BUILD_DIR,
    Rendered,
    WriteError,
    add_stack_arguments,
    helm_release,
    render,
    render_or_exit_code,
    summary,
    write,
)

# Per chart: the `.Values` paths its templates read (a misspelt value is ignored by Helm
# without a word). Charts whose paths are not encoded in facts are reported, not checked.


@dataclass
class Report:
    violations: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)  # what was checked, e.g. CEL rule counts

    def fail(self, resource: str, rule: str, message: str) -> None:
        self.violations.append(f"{resource}: [{rule}] {message}")


def check_rendered(rendered: Rendered, crd_dir: Path | None = None) -> Report:
    """Raises CrdsUnavailable when the stack has custom resources and the CRDs can be had
    neither from `crd_dir` nor as karpenter_crd_dir() finds them."""
    report = Report()
    deployment = rendered.deployment
    version = rendered.settings.kubernetes_version

    for urn, manifest in rendered.manifests.items():
        registration = deployment.resources[urn]
        where = f"{manifest['kind']} {registration.name}"
        if is_builtin_kind(registration.type):
            for problem in builtin_problems(manifest, version):
                report.fail(where, f"openapi-{version}", problem)
            continue
        if crd_dir is None:  # only a stack with custom resources needs the CRDs
            crd_dir = karpenter_crd_dir()
        problems = custom_resource_problems(manifest, crd_dir)
        if problems is None:
            group = manifest["apiVersion"].split("/")[0]
            if group in {api_version.split("/")[0] for api_version, _ in crd_versions(crd_dir)}:
                # The CRDs serve this group, but not this version or kind: the API server
                # would answer "no matches for kind".
                report.fail(where, "crd-schema", f"no CRD serves {manifest['apiVersion']}")
            else:
                report.notices.append(f"{where}: no CRD schema for {manifest['apiVersion']}")
            continue
        for problem in problems:
            report.fail(where, "crd-schema", problem)
        _check_cel_rules(manifest, crd_dir, report)

    config_maps = {
        (m["metadata"].get("namespace"), m["metadata"].get("name")): m
        for m in rendered.manifests.values()
        if m["kind"] == "ConfigMap"
    }
    for registration in deployment.resources.values():
        if not is_helm_release(registration.type):
            continue
        release = helm_release(registration)
        where = f"HelmRelease {registration.name}"
        if release["chart"] not in CHART_VALUE_PATHS:
            report.notices.append(f"{where}: no value paths known for chart {release['chart']}")
        else:
            for path in unknown_value_paths(release["chart"], release["values"]):
                report.fail(where, "helm-value-paths", f"{path}: not read by the chart")
        if release["chart"] == facts.DEVICE_PLUGIN_CHART:
            _check_device_plugin(release, config_maps, where, report)

    resources = [
        Resource(r.type, r.name, {**r.outputs, **r.inputs}, r.urn, r.protect)
        for r in deployment.resources.values()
    ]
    for violation in evaluate(resources):
        name = violation.resource.rsplit("::", 1)[-1]
        target = f"{violation.resource.split('::')[-2].rsplit('$', 1)[-1]} {name}"
        if violation.enforcement == "mandatory":
            report.fail(target, f"policy:{violation.rule}", violation.message)
        else:
            report.notices.append(f"{target}: [advisory:{violation.rule}] {violation.message}")
    return report


def _check_cel_rules(manifest: Mapping[str, Any], crd_dir: Path, report: Report) -> None:
    """The CRD's CEL rules, as the API server runs them on create: `<kind>/<name> <path>:
    <message>` for each broken (or unevaluable) rule."""
    result = custom_resource_cel(manifest, crd_dir)
    obj = f"{manifest['kind']}/{manifest['metadata'].get('name')}"
    report.violations.extend(f"{obj} {failure}" for failure in result.failures)
    skipped = f", {result.transition_skipped} transition rule(s) skipped"
    report.checked.append(
        f"{obj}: {result.evaluated} CEL rules evaluated, {len(result.failures)} failed"
        + (skipped if result.transition_skipped else "")
    )


def _check_device_plugin(
    release: Mapping[str, Any], config_maps: Mapping, where: str, report: Report
) -> None:
    """The ConfigMap the release names exists in its namespace, holds the default entry,
    and every entry is a config file the plugin accepts."""
    config = release["values"].get("config") or {}
    name = config.get("name")
    if not name:
        return
    config_map = config_maps.get((release["namespace"], name))
    if config_map is None:
        report.fail(
            where, "device-plugin-config", f"ConfigMap {release['namespace']}/{name} missing"
        )
        return
    data = config_map.get("data") or {}
    if config.get("default") and config["default"] not in data:
        report.fail(where, "device-plugin-config", f"default entry {config['default']!r} missing")
    for entry, text in sorted(data.items()):
        for problem in check_device_plugin_config(yaml.safe_load(text)):
            report.fail(f"ConfigMap {name}", "device-plugin-config", f"{entry}: {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_stack_arguments(parser)
    args = parser.parse_args(argv)
    rendered = render_or_exit_code(args, render)
    if isinstance(rendered, int):
        return rendered
    try:
        write(rendered, BUILD_DIR / args.stack)
    except WriteError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("\n".join(summary(rendered, dt.date.today())))
    try:
        report = check_rendered(rendered)
    except CrdsUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for line in report.checked:
        print(line)
    for notice in report.notices:
        print(f"notice: {notice}")
    if report.violations:
        print(f"{len(report.violations)} violation(s) in stack {args.stack}:", file=sys.stderr)
        for violation in report.violations:
            print(f"  {violation}", file=sys.stderr)
        return 1
    print(f"stack {args.stack}: {len(rendered.deployment.resources)} resources, no violations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
