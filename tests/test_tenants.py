"""Tenants: quotas resolved from the sharing profiles, the objects the API server gets (and
accepts at the cluster's version), namespace-scoped access, each refusal and warning, the
chargeback report, and the example stack through the whole program and `make check`.

One render of examples/Pulumi.tenants.yaml serves the program-level tests; the rest work on
settings and builders, which need no program run.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

import kubernetes_validate
import pytest
from pydantic import BaseModel

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders import tenants as build
from eks_gpu_slicing.builders.pod_security import namespace_levels, workload_placements
from eks_gpu_slicing.builders.workloads import virtual_gpu_capacity
from eks_gpu_slicing.review import check, render
from eks_gpu_slicing.review.manifests import manifest_of, validate_builtin
from eks_gpu_slicing.review.mocks import MOCK_ACCOUNT, MOCK_CALLER_ROLE, Deployment, run_program
from eks_gpu_slicing.settings import ConfigError, Settings, load_settings
from eks_gpu_slicing.settings.existing_cluster import LookedUpCluster, existing_cluster_problems
from eks_gpu_slicing.settings.stack_files import ROOT
from eks_gpu_slicing.settings.tenants import (
    TenantDefaultsSettings,
    TenantSettings,
    quota_counts,
)
from tests.conftest import engine_config

EXAMPLES = ROOT / "examples"
TODAY = dt.date(2026, 12, 1)
QUOTA = "kubernetes:core/v1:ResourceQuota"
LIMIT_RANGE = "kubernetes:core/v1:LimitRange"
NAMESPACE = "kubernetes:core/v1:Namespace"
ENTRY = "aws:eks/accessEntry:AccessEntry"
ASSOCIATION = "aws:eks/accessPolicyAssociation:AccessPolicyAssociation"
ROLE = f"arn:aws:iam::{MOCK_ACCOUNT}:role/research-engineers"


def stack(tenants: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """Raw settings with one group per kind of profile: time-sliced (plain and renamed), MPS,
    unshared, and a MIG `mixed` custom layout."""
    raw: dict[str, Any] = {
        "sharing": {
            "notebooks": {"strategy": "time-slicing", "replicas": 10},
            "renamed": {"strategy": "time-slicing", "replicas": 4, "renameByDefault": True},
            "inference": {"strategy": "mps", "replicas": 4, "renameByDefault": True},
            "whole": {"strategy": "none"},
            "h100-mixed": {
                "strategy": "mig",
                "mig": {"layout": {"1g.10gb": 4, "3g.40gb": 1}, "strategy": "mixed"},
            },
        },
        "devicePlugin": {"defaultProfile": "notebooks"},
        "gpuNodeGroups": {
            "t4": group("g4dn.xlarge", "notebooks", 2),
            "l4": group("g6.xlarge", "renamed", 1),
            "a10g": group("g5.xlarge", "inference", 2),
            "h100": group("p5.48xlarge", "h100-mixed", 1),
        },
        "tenants": tenants,
    }
    raw.update(overrides)
    return raw


def group(instance_type: str, profile: str, max_size: int) -> dict[str, Any]:
    return {
        "instanceType": instance_type,
        "minSize": 0,
        "desiredSize": 0,
        "maxSize": max_size,
        "sharing": profile,
    }


def settings_of(raw: dict[str, Any]) -> Settings:
    return load_settings(copy.deepcopy(raw), stack="t")


def problems(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        settings_of(raw)
    return exc.value.problems


def hard_of(raw: dict[str, Any], tenant: str = "team") -> dict[str, str]:
    settings = settings_of(raw)
    counts = quota_counts(settings, settings.tenants[tenant])
    return build.resource_quota(tenant, tenant, counts)["spec"]["hard"]


# --- Settings ------------------------------------------------------------------------------


def test_a_tenant_defaults_to_its_own_restricted_namespace():
    settings = settings_of(stack({"team": {"quota": {"notebooks": 4}}}))
    tenant = settings.tenants["team"]
    assert (tenant.namespace, tenant.pod_security, tenant.principals) == (None, "restricted", [])
    assert build.namespace_metadata("team", tenant) == {
        "name": "team",
        "labels": {
            "app.kubernetes.io/part-of": facts.PROJECT,
            facts.TENANT_LABEL: "team",
            "pod-security.kubernetes.io/enforce": "restricted",
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        },
    }


@pytest.mark.parametrize("model", [TenantSettings, TenantDefaultsSettings])
def test_every_tenant_key_is_described_in_the_model(model: type[BaseModel]):
    # The component package's schema and the configuration reference are generated from these.
    for name, field in model.model_fields.items():
        assert field.description and len(field.description) > 20, name


# --- Quotas and their resource names -------------------------------------------------------


def test_a_time_sliced_profile_is_quotad_on_its_resource_and_every_other_at_zero():
    assert hard_of(stack({"team": {"quota": {"notebooks": 12}}})) == {
        "requests.nvidia.com/gpu": "12",
        "requests.nvidia.com/gpu.shared": "0",
        "requests.nvidia.com/mig-1g.10gb": "0",
        "requests.nvidia.com/mig-3g.40gb": "0",
    }


def test_renaming_a_profiles_resource_moves_its_quota_with_it():
    raw = stack({"team": {"quota": {"notebooks": 12}}})
    raw["sharing"]["notebooks"]["renameByDefault"] = True
    hard = hard_of(raw)
    assert hard["requests.nvidia.com/gpu.shared"] == "12"
    # No group advertises nvidia.com/gpu any more (the unshared profile is on none): gone.
    assert "requests.nvidia.com/gpu" not in hard


def test_a_renamed_time_sliced_profile_and_an_mps_profile_by_resource():
    hard = hard_of(stack({"team": {"quota": {"nvidia.com/gpu.shared": 6}}}))
    assert hard["requests.nvidia.com/gpu.shared"] == "6"
    assert hard["requests.nvidia.com/gpu"] == "0"


def test_an_unshared_profile_counts_whole_gpus_as_nvidia_com_gpu():
    raw = stack({"team": {"quota": {"whole": 2}}})
    raw["gpuNodeGroups"]["t4"]["sharing"] = "whole"
    assert hard_of(raw)["requests.nvidia.com/gpu"] == "2"


def test_mig_mixed_slices_are_quotad_per_slice_type():
    raw = stack({"team": {"quota": {"nvidia.com/mig-1g.10gb": 8, "nvidia.com/mig-3g.40gb": 2}}})
    hard = hard_of(raw)
    assert hard["requests.nvidia.com/mig-1g.10gb"] == "8"
    assert hard["requests.nvidia.com/mig-3g.40gb"] == "2"
    assert hard["requests.nvidia.com/gpu"] == "0"


def test_mig_single_slices_are_nvidia_com_gpu():
    raw = stack({"team": {"quota": {"a100-single": 10}}})
    raw["sharing"]["a100-single"] = {
        "strategy": "mig",
        "mig": {"layout": "all-1g.5gb", "strategy": "single"},
    }
    raw["gpuNodeGroups"] = {"a100": group("p4d.24xlarge", "a100-single", 1)}
    raw["devicePlugin"] = {"defaultProfile": "a100-single"}
    assert hard_of(raw) == {"requests.nvidia.com/gpu": "10"}


def test_only_requests_keys_of_extended_resources_are_written():
    hard = hard_of(stack({"team": {"quota": {"notebooks": 1}}}))
    assert all(key.startswith(facts.QUOTA_REQUESTS_PREFIX) for key in hard)
    for not_extended in ("cpu", "memory", "hugepages-2Mi", "example.kubernetes.io/thing"):
        with pytest.raises(ValueError, match="not extended resources"):
            build.quota_hard({not_extended: 1})


def test_limit_range_defaults_cpu_and_memory_only():
    defaults = TenantDefaultsSettings(cpuRequest="100m", cpuLimit=1, memoryLimit="1Gi")
    spec = build.limit_range("team", "team", defaults)["spec"]
    assert spec == {
        "limits": [
            {
                "type": "Container",
                "default": {"cpu": "1", "memory": "1Gi"},
                "defaultRequest": {"cpu": "100m"},
            }
        ]
    }


# --- Refusals, each naming its key ------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenants", "expected"),
    [
        (
            {"team": {"quota": {"notebook": 1}}},
            "tenants.team.quota.notebook: no sharing profile or resource 'notebook' "
            "(profiles: h100-mixed, inference, notebooks, renamed, whole; resources: "
            "nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-1g.10gb, "
            "nvidia.com/mig-3g.40gb)",
        ),
        (
            {"team": {"quota": {"nvidia.com/mig-1g.5gb": 1}}},
            "tenants.team.quota.nvidia.com/mig-1g.5gb: no GPU node group or pool of the stack "
            "advertises nvidia.com/mig-1g.5gb",
        ),
        (
            {"team": {"quota": {"whole": 1}}},
            "tenants.team.quota.whole: profile 'whole' is on no GPU node group or Karpenter "
            "pool, so none of its slices can ever exist",
        ),
        (
            {"team": {"quota": {"h100-mixed": 4}}},
            "tenants.team.quota.h100-mixed: profile 'h100-mixed' advertises several resources "
            "(nvidia.com/mig-1g.10gb, nvidia.com/mig-3g.40gb); a quota counts each on its own: "
            "give one entry per resource (tenants.team.quota.nvidia.com/mig-1g.10gb, "
            "tenants.team.quota.nvidia.com/mig-3g.40gb)",
        ),
        (
            {"team": {"quota": {"renamed": 2, "nvidia.com/gpu.shared": 3}}},
            "tenants.team.quota.nvidia.com/gpu.shared: renamed and nvidia.com/gpu.shared both "
            "count requests.nvidia.com/gpu.shared",
        ),
        (
            {"team": {"quota": {"notebooks": 21}}},
            "tenants.team.quota.notebooks: 21 nvidia.com/gpu, but the stack can never offer "
            "more than 20 (gpuNodeGroups.t4: maxSize 2 x 10 per node): the quota could never "
            "be used up",
        ),
        (
            {"a": {"quota": {"notebooks": 1}}, "b": {"namespace": "a", "quota": {"notebooks": 1}}},
            "tenants.b.namespace: 'a' is tenant a's namespace too",
        ),
        (
            {"team": {"namespace": "kube-system", "quota": {"notebooks": 1}}},
            "tenants.team.namespace: 'kube-system' is built into every cluster",
        ),
        (
            {"team": {"namespace": "gpu-monitoring", "quota": {"notebooks": 1}}},
            "tenants.team.namespace: 'gpu-monitoring' holds the stack's own GPU metrics "
            "exporter; a tenant's pods and principals must not share it",
        ),
        (
            {"team": {"quota": {"notebooks": 1}, "principals": [ROLE, ROLE]}},
            f"tenants.team.principals: listed more than once: {ROLE}",
        ),
        (
            {"team": {"quota": {"notebooks": 1}, "principals": ["research-engineers"]}},
            "tenants.team.principals: not IAM role or user ARNs: research-engineers",
        ),
        ({"team": {"quota": {}}}, "tenants.team.quota: "),
        ({"team": {"quota": {"notebooks": -1}}}, "tenants.team.quota.notebooks: "),
        ({"team": {"quota": {"notebooks": 100_001}}}, "tenants.team.quota.notebooks: "),
        ({"team": {"quota": {"notebooks": 1}, "podSecurity": "strict"}}, "podSecurity"),
        ({"Team": {"quota": {"notebooks": 1}}}, "tenant names must be 1-32 lowercase"),
        (
            {"team": {"quota": {"notebooks": 1}, "defaults": {"cpuRequest": "2", "cpuLimit": 1}}},
            "tenants.team.defaults: cpuRequest (2) is above cpuLimit (1)",
        ),
        (
            {"team": {"quota": {"notebooks": 1}, "defaults": {}}},
            "tenants.team.defaults: give at least one of cpuRequest",
        ),
        (
            {"team": {"quota": {"notebooks": 1}, "defaults": {"memoryLimit": "lots"}}},
            "tenants.team.defaults.memoryLimit: 'lots' is not a Kubernetes quantity",
        ),
    ],
)
def test_each_refusal_names_its_key(tenants, expected):
    raw = stack(tenants, gpuMetrics={"enabled": True})
    found = problems(raw)
    assert any(expected in p for p in found), found


def test_a_principal_that_is_an_admin_already_is_refused():
    raw = stack({"team": {"quota": {"notebooks": 1}, "principals": [ROLE]}}, adminRoleArns=[ROLE])
    assert any(
        p.startswith(f"tenants.team.principals[0]: {ROLE} is in adminRoleArns")
        for p in problems(raw)
    )


def test_the_demo_as_a_tenant_is_checked_against_the_tenant():
    raw = stack({"team": {"quota": {"notebooks": 2}}})
    raw["demoWorkload"] = {"enabled": True, "replicas": 3, "tenant": "team"}
    assert problems(raw) == [
        "demoWorkload.replicas: 3 pods of one nvidia.com/gpu each, but tenant team's quota "
        "allows 2: the API server would refuse the rest and `pulumi up` would wait for them; "
        "lower replicas or raise tenants.team.quota"
    ]
    raw["demoWorkload"] = {"enabled": True, "replicas": 1, "tenant": "team", "namespace": "x"}
    assert problems(raw) == [
        "demoWorkload.namespace: the demo runs in tenant team's namespace 'team'; leave "
        "namespace out"
    ]
    raw["demoWorkload"] = {"enabled": True, "tenant": "teams"}
    assert problems(raw) == ["demoWorkload.tenant: no tenant 'teams' (tenants: team)"]


def test_a_tenant_may_use_the_demos_namespace_only_when_the_demo_is_its_own():
    raw = stack({"team": {"namespace": "gpu-demo", "quota": {"notebooks": 5}}})
    raw["demoWorkload"] = {"enabled": True}
    assert any("'gpu-demo' holds the stack's own demo" in p for p in problems(raw))
    raw = stack({"team": {"quota": {"notebooks": 5}}})
    raw["demoWorkload"] = {"enabled": True, "tenant": "team"}
    settings = settings_of(raw)
    assert settings.demo_namespace == "team"
    # The tenant's part creates its namespace; the stack's own namespaces leave it out.
    assert "team" not in settings.namespaces and "gpu-demo" not in settings.namespaces
    assert "team" not in namespace_levels(workload_placements(settings))


def test_principals_are_refused_on_a_cluster_that_authenticates_with_config_map_only():
    raw = stack({"team": {"quota": {"notebooks": 1}, "principals": [ROLE]}})
    raw["existingCluster"] = {
        "name": "team-cluster",
        "privateSubnetIds": ["subnet-0123456789abcdef0"],
    }
    settings = settings_of(raw)
    cluster = LookedUpCluster(
        name="team-cluster",
        kubernetes_version=settings.kubernetes_version,
        authentication_mode="CONFIG_MAP",
        vpc_id="vpc-0123456789abcdef0",
        subnet_ids=("subnet-0123456789abcdef0",),
        cluster_security_group_id="sg-0123456789abcdef0",
    )
    found = existing_cluster_problems(settings, cluster)
    assert any(
        p.startswith(
            "tenants.team.principals: cluster 'team-cluster' authenticates with CONFIG_MAP only"
        )
        for p in found
    ), found
    for mode in facts.ACCESS_ENTRY_AUTHENTICATION_MODES:
        allowed = LookedUpCluster(**{**cluster.__dict__, "authentication_mode": mode})
        assert not any("tenants" in p for p in existing_cluster_problems(settings, allowed))


# --- Warnings --------------------------------------------------------------------------------


def test_a_profile_quota_whose_resource_another_profile_advertises_is_warned_about():
    settings = settings_of(stack({"team": {"quota": {"inference": 4}}}))
    assert (
        "tenants.team.quota.inference: counts nvidia.com/gpu.shared, which profile(s) renamed "
        "advertise too: a ResourceQuota counts a resource, not a profile, so pods on their "
        "nodes use up this quota as well"
    ) in settings.warnings(TODAY)


def test_quotas_adding_up_to_more_than_exists_are_warned_about_with_the_numbers():
    settings = settings_of(
        stack({"a": {"quota": {"notebooks": 15}}, "b": {"quota": {"nvidia.com/gpu": 10}}})
    )
    assert (
        "tenants: quotas of nvidia.com/gpu add up to 25 (a 15, b 10), but the stack offers at "
        "most 20: a quota caps a team, it reserves nothing; the first to schedule gets the "
        "slices"
    ) in settings.warnings(TODAY)


def test_a_karpenter_pools_bound_counts_toward_the_capacity():
    raw = stack({"team": {"quota": {"notebooks": 60}}})
    raw["karpenter"] = {
        "enabled": True,
        "nodePools": {
            "g6": {"instanceTypes": ["g6.xlarge"], "limits": {"cpu": 16}, "sharing": "notebooks"}
        },
    }
    settings = settings_of(raw)  # 20 from t4 at maxSize + 16 vCPU / 4 per g6.xlarge x 10
    assert settings.resource_capacity("nvidia.com/gpu") == 60
    raw["tenants"]["team"]["quota"]["notebooks"] = 61
    assert any("karpenter.nodePools.g6: at most 40" in p for p in problems(raw))
    raw["karpenter"]["nodePools"]["g6"]["limits"] = {"nvidia.com/gpu.shared": 4}
    assert settings_of(raw).resource_capacity("nvidia.com/gpu") is None  # nothing bounds it


# --- Chargeback --------------------------------------------------------------------------------


def test_a_tenants_cost_is_the_sum_of_its_slices_prices():
    raw = stack(
        {
            "team": {
                "quota": {
                    "notebooks": 12,
                    "nvidia.com/gpu.shared": 6,
                    "nvidia.com/mig-1g.10gb": 8,
                    "nvidia.com/mig-3g.40gb": 2,
                }
            }
        }
    )
    settings = settings_of(raw)
    (report,) = build.tenant_report(settings).values()
    # The per-slice prices the node groups' report states.
    groups = {
        name: virtual_gpu_capacity(g, settings.profile_of(g))
        for name, g in settings.gpu_node_groups.items()
    }
    t4, l4, a10g, h100 = (groups[n] for n in ("t4", "l4", "a10g", "h100"))
    shared = sorted([l4["usdPerVirtualGpuHour"], a10g["usdPerVirtualGpuHour"]])
    slices = {
        "nvidia.com/gpu": [t4["usdPerVirtualGpuHour"]] * 2,
        "nvidia.com/gpu.shared": shared,  # two instance types advertise it: a low and a high
        "nvidia.com/mig-1g.10gb": [h100["usdPerSliceHour"]["nvidia.com/mig-1g.10gb"]] * 2,
        "nvidia.com/mig-3g.40gb": [h100["usdPerSliceHour"]["nvidia.com/mig-3g.40gb"]] * 2,
    }
    counts = {"nvidia.com/gpu": 12, "nvidia.com/gpu.shared": 6}
    counts |= {"nvidia.com/mig-1g.10gb": 8, "nvidia.com/mig-3g.40gb": 2}
    for resource, (low, high) in slices.items():
        entry = report["quota"][resource]
        assert (entry["usdPerSliceHourMin"], entry["usdPerSliceHourMax"]) == (low, high)
        assert entry["usdPerHourMin"] == pytest.approx(counts[resource] * low)
        assert entry["usdPerHourMax"] == pytest.approx(counts[resource] * high)
    assert report["usdPerHourMin"] == pytest.approx(
        sum(counts[r] * s[0] for r, s in slices.items())
    )
    assert report["usdPerHourMax"] == pytest.approx(
        sum(counts[r] * s[1] for r, s in slices.items())
    )
    # Memory the same way: MIG slices at their own memory, time-slicing at the GPU's share.
    assert report["quota"]["nvidia.com/mig-3g.40gb"]["gpuMemoryGiBMax"] == pytest.approx(
        2 * h100["sliceMemoryGiB"]["nvidia.com/mig-3g.40gb"]
    )
    assert report["quota"]["nvidia.com/gpu"]["gpuMemoryGiBMin"] == pytest.approx(
        12 * t4["gpuMemoryPerVirtualGpuGiB"]
    )


def test_quota_totals_are_the_tenants_sum_against_the_capacity():
    settings = settings_of(
        stack({"a": {"quota": {"notebooks": 5}}, "b": {"quota": {"nvidia.com/gpu": 7}}})
    )
    totals = build.quota_totals(settings)
    assert totals["nvidia.com/gpu"] == {"quota": 12, "capacity": 20}
    assert totals["nvidia.com/mig-3g.40gb"] == {"quota": 0, "capacity": 8}


# --- The example stack through the program and `make check` ----------------------------------


@pytest.fixture(scope="module")
def example() -> render.Rendered:
    return render.render("tenants", EXAMPLES)


def test_the_example_renders_and_passes_make_check(example):
    report = check.check_rendered(example)
    assert report.violations == []
    kinds = {m["kind"] for m in example.manifests.values()}
    assert {"Namespace", "ResourceQuota", "LimitRange", "Deployment"} <= kinds


def test_every_tenant_object_is_valid_for_the_cluster_version(example):
    version = example.settings.kubernetes_version
    deployment = example.deployment
    objects = [*deployment.of_type(QUOTA), *deployment.of_type(LIMIT_RANGE)]
    objects += [r for r in deployment.of_type(NAMESPACE) if r.name.startswith("tenants-")]
    assert len(objects) == 5  # two namespaces and quotas, research's defaults
    for registration in objects:
        validate_builtin(manifest_of(registration), version)
    # ...and the check catches a quota the API server would refuse.
    quota = manifest_of(deployment.of_type(QUOTA)[0])
    quota["spec"]["hard"]["requests.nvidia.com/gpu"] = 2
    quota["spec"]["hards"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_builtin(quota, version)


def test_the_example_quotas_are_named_and_hold_every_gpu_resource(example):
    quotas = {r.inputs["metadata"]["namespace"]: r for r in example.deployment.of_type(QUOTA)}
    assert quotas["research"].inputs["spec"]["hard"] == {
        "requests.nvidia.com/gpu": "12",
        "requests.nvidia.com/gpu.shared": "0",
    }
    assert quotas["ml-serving"].inputs["spec"]["hard"] == {
        "requests.nvidia.com/gpu": "0",
        "requests.nvidia.com/gpu.shared": "6",
    }
    for quota in quotas.values():
        assert quota.inputs["metadata"]["name"] == facts.TENANT_QUOTA_NAME
        (namespace,) = [
            n
            for n in example.deployment.of_type(NAMESPACE)
            if n.inputs["metadata"]["name"] == quota.inputs["metadata"]["namespace"]
        ]
        assert namespace.urn in quota.dependencies
        assert example.deployment.ancestors(quota)[0].type == "eks-gpu-slicing:tenants:Tenants"


def test_access_is_an_edit_policy_scoped_to_the_tenants_namespace(example):
    deployment = example.deployment
    associations = {a.inputs["principalArn"]: a for a in deployment.of_type(ASSOCIATION)}
    entries = {e.inputs["principalArn"]: e for e in deployment.of_type(ENTRY)}
    assert (
        set(entries)
        == set(associations)
        == {
            ROLE,
            f"arn:aws:iam::{MOCK_ACCOUNT}:role/ml-serving-deployers",
        }
    )
    association = associations[ROLE]
    assert association.inputs["accessScope"] == {"type": "namespace", "namespaces": ["research"]}
    assert association.inputs["policyArn"] == (
        "arn:aws:eks::aws:cluster-access-policy/AmazonEKSEditPolicy"
    )
    assert association.delete_before_replace  # EKS keeps one association per principal
    assert entries[ROLE].urn in association.dependencies
    assert entries[ROLE].inputs["type"] == "STANDARD"
    # Entries wait for the cluster this stack creates.
    cluster = deployment.one("eks:index:Cluster")
    assert cluster.urn in entries[ROLE].dependencies


def test_the_demo_runs_as_its_tenant_after_the_quota(example):
    deployment = example.deployment
    demo = deployment.one("kubernetes:apps/v1:Deployment")
    assert demo.inputs["metadata"]["namespace"] == "research"
    (quota,) = [
        q for q in deployment.of_type(QUOTA) if q.inputs["metadata"]["namespace"] == "research"
    ]
    assert quota.urn in demo.dependencies
    # The stack's own namespaces do not include it: the tenant's part creates it, once.
    names = [n.inputs["metadata"]["name"] for n in deployment.of_type(NAMESPACE)]
    assert sorted(names) == sorted({"gpu-monitoring", "research", "ml-serving"})


def test_the_stack_exports_the_tenants_report_and_totals(example):
    outputs = example.deployment.outputs
    assert outputs["tenants"] == build.tenant_report(example.settings)
    assert outputs["tenantQuotaTotals"] == {
        "nvidia.com/gpu": {"quota": 12, "capacity": 20},
        "nvidia.com/gpu.shared": {"quota": 6, "capacity": 8},
    }


def test_a_principal_of_two_tenants_gets_one_entry_naming_both_and_the_caller_none():
    caller = f"arn:aws:iam::{MOCK_ACCOUNT}:role/{MOCK_CALLER_ROLE}"
    raw = stack(
        {
            "a": {"quota": {"notebooks": 1}, "principals": [ROLE, caller]},
            "b": {"quota": {"notebooks": 1}, "principals": [ROLE]},
        }
    )
    deployment: Deployment = run_program(engine_config(raw), stack="t")
    (entry,) = deployment.of_type(ENTRY)
    (association,) = deployment.of_type(ASSOCIATION)
    assert entry.inputs["principalArn"] == association.inputs["principalArn"] == ROLE
    assert association.inputs["accessScope"]["namespaces"] == ["a", "b"]
    # Named by the principal, so tenants coming and going never rename (replace) it.
    assert entry.name.endswith(build.access_key(ROLE))


def test_a_stack_without_tenants_registers_none_of_their_parts(minimal):
    deployment = run_program(engine_config(minimal), stack="t")
    assert not deployment.of_type(QUOTA) and not deployment.of_type(LIMIT_RANGE)
    assert not deployment.of_type("eks-gpu-slicing:tenants:Tenants")
    assert "tenants" not in deployment.outputs and "tenantQuotaTotals" not in deployment.outputs
