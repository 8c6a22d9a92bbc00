"""Per-pod GPU metrics: settings, the dcgm-exporter release and its values (against the
chart's own value paths where the upstream reference is present), placement with real
scheduling semantics, and the committed Grafana dashboard."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import promql_parser
import pytest
import yaml

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.gpu_metrics import helm_values
from eks_gpu_slicing.review.helm import value_paths
from eks_gpu_slicing.review.mocks import Deployment, run_program
from eks_gpu_slicing.settings import ConfigError, GpuMetricsSettings, load_settings
from eks_gpu_slicing.settings.stack_files import ROOT, settings_of_stack
from tests.conftest import MINIMAL, engine_config
from tests.k8s_semantics import selector_matches, tolerates
from tests.test_program import NAMESPACE, NODE_GROUP, RELEASE, dev_settings

EXPORTER = "gpu-metrics"
COMPONENT = "eks-gpu-slicing:observability:GpuMetrics"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
# The reference data is of chart 4.8.2: the pinned 4.8.3 was checked against upstream by hand
# (facts.DCGM_EXPORTER_VALUE_PATHS says where), and no copy of it is kept here. What the
# tests below prove is that every value we set is one chart 4.8.2 reads, and that the paths
# facts lists are all among them: a value added to the builder without its path in facts, or
# a path facts lists that 4.8.2 never read, fails.
REFERENCE_CHART_VERSION = facts.DCGM_EXPORTER_REFERENCE_CHART_VERSION
CHART = REFERENCE / f"dcgm-exporter-{REFERENCE_CHART_VERSION}"
DASHBOARD = ROOT / "dashboards" / "gpu-sharing.json"

needs_reference = pytest.mark.skipif(not CHART.is_dir(), reason=f"no upstream reference at {CHART}")


@pytest.fixture(scope="module")
def dev(dev_deployment) -> Deployment:
    return dev_deployment  # shared by the session: read only


def env_of(values: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in values["extraEnv"]}


# --- Settings -----------------------------------------------------------------------------


def test_defaults_are_off_with_a_namespace_of_its_own(minimal):
    settings = load_settings(minimal, stack="t")
    metrics = settings.gpu_metrics
    assert metrics.enabled is False
    assert (metrics.chart_version, metrics.namespace) == (
        facts.DCGM_EXPORTER_CHART_VERSION,
        "gpu-monitoring",
    )
    assert (metrics.service_monitor, metrics.interval) == (False, "15s")
    assert "gpu-monitoring" not in settings.namespaces
    minimal["gpuMetrics"] = {"enabled": True}
    assert "gpu-monitoring" in load_settings(minimal, stack="t").namespaces


@pytest.mark.parametrize(
    ("duration", "seconds"), [("15s", 15), ("1m30s", 90), ("2m", 120), ("1h", 3600)]
)
def test_interval_is_a_prometheus_duration(duration, seconds):
    assert GpuMetricsSettings(interval=duration).interval_seconds == seconds


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"chartVersion": "latest"}, ["gpuMetrics.chartVersion", "latest"]),
        ({"namespace": "default"}, ["gpuMetrics.namespace", "hostPID"]),
        ({"namespace": "GPU_Metrics"}, ["gpuMetrics.namespace", "not a valid namespace"]),
        ({"interval": "15"}, ["gpuMetrics.interval", "Prometheus duration"]),
        ({"interval": "s15"}, ["gpuMetrics.interval", "Prometheus duration"]),
        ({"interval": "500ms"}, ["gpuMetrics.interval", "at least 1s"]),
        ({"serviceMonitor": "yes"}, ["gpuMetrics.serviceMonitor"]),
        ({"enabled": 1}, ["gpuMetrics.enabled"]),
        ({"servicemonitor": True}, ["gpuMetrics.servicemonitor", "serviceMonitor"]),
    ],
)
def test_bad_gpu_metrics_config_names_the_key(section, expected):
    raw = copy.deepcopy(MINIMAL)
    raw["gpuMetrics"] = {"enabled": True, **section}
    with pytest.raises(ConfigError) as caught:
        load_settings(raw, stack="t")
    assert any(all(s in p for s in expected) for p in caught.value.problems), caught.value.problems


def test_other_chart_versions_are_warned_about(minimal):
    minimal["gpuMetrics"] = {"enabled": True, "chartVersion": "4.9.0"}
    warnings = load_settings(minimal, stack="t").warnings(dt.date(2026, 11, 1))
    assert any("gpuMetrics.chartVersion 4.9.0" in w for w in warnings)


def test_the_chart_version_key_and_the_metrics_guide_agree_on_the_first_per_pod_version():
    """Per-pod attribution came with exporter 4.5.3-4.8.2 (upstream PR #594): the key's
    description (the configuration reference) names that version, not the pinned one, as
    docs/metrics.md does, whatever version the stack pins."""
    since = facts.DCGM_EXPORTER_PER_POD_SINCE
    description = GpuMetricsSettings.model_fields["chart_version"].description or ""
    assert f"per-pod attribution on shared GPUs needs {since} or later" in description
    assert "the first with per-pod" not in description
    assert f"-{since} or later**" in (ROOT / "docs" / "metrics.md").read_text()


def test_the_exporter_counts_against_a_gpu_nodes_pod_limit(minimal):
    # g4dn.xlarge: 29 pods. 3 DaemonSets leave 26, the exporter makes it 25.
    minimal["sharing"] = {"default": {"replicas": 26}}

    def pod_limit_warnings() -> list[str]:
        warnings = load_settings(minimal, stack="t").warnings(dt.date(2026, 11, 1))
        return [w for w in warnings if "after DaemonSets" in w]

    assert not pod_limit_warnings()
    minimal["gpuMetrics"] = {"enabled": True}
    (warning,) = pod_limit_warnings()
    assert "(25 after DaemonSets)" in warning


# --- Helm values --------------------------------------------------------------------------


def test_values_attribute_shared_gpus_to_pods():
    values = helm_values(GpuMetricsSettings(enabled=True), {"nvidia.com/gpu"})
    assert values["hostPID"] is True
    assert env_of(values) == {facts.DCGM_VIRTUAL_GPUS_ENV: "true"}
    assert facts.DCGM_VIRTUAL_GPUS_ENV == "KUBERNETES_VIRTUAL_GPUS"
    # The chart mounts the API token the pod-UID lookup needs only with pod labels (or UIDs).
    assert values["kubernetes"] == {"enablePodLabels": True, "rbac": {"create": True}}
    resources = values["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_renamed_shared_resources_are_attributed_too():
    values = helm_values(GpuMetricsSettings(), {"nvidia.com/gpu", "nvidia.com/gpu.shared"})
    assert env_of(values)[facts.DCGM_RESOURCE_NAMES_ENV] == "nvidia.com/gpu.shared"


def test_service_monitor_only_when_asked_for():
    # The chart's default is enabled: leaving it out would need the Operator's CRDs.
    assert helm_values(GpuMetricsSettings(), [])["serviceMonitor"] == {"enabled": False}
    monitor = helm_values(GpuMetricsSettings(serviceMonitor=True, interval="30s"), [])[
        "serviceMonitor"
    ]
    assert (monitor["enabled"], monitor["interval"], monitor["scrapeTimeout"]) == (
        True,
        "30s",
        "10s",
    )
    # The exporter's own pod/namespace/container labels must survive the scrape.
    (drop,) = monitor["relabelings"]
    assert drop["action"] == "labeldrop"
    assert {"pod", "namespace", "container"} == set(drop["regex"].split("|"))
    short = helm_values(GpuMetricsSettings(serviceMonitor=True, interval="5s"), [])
    assert short["serviceMonitor"]["scrapeTimeout"] == "5s"  # never longer than the interval


# --- The program under mocks --------------------------------------------------------------


def test_release_is_pinned_in_its_namespace(dev):
    release = dev.one(RELEASE, EXPORTER)
    inputs = release.inputs
    assert inputs["chart"] == "dcgm-exporter"
    assert inputs["version"] == settings_of_stack("dev").gpu_metrics.chart_version
    assert inputs["repositoryOpts"] == {
        "repo": "https://nvidia.github.io/dcgm-exporter/helm-charts"
    }
    assert inputs["namespace"] == "gpu-monitoring"
    assert dev.ancestors(release)[0].type == COMPONENT
    assert release.provider_urn == dev.one("pulumi:providers:kubernetes").urn
    values = inputs["values"]
    assert values["hostPID"] is True
    assert env_of(values)["KUBERNETES_VIRTUAL_GPUS"] == "true"
    assert values["serviceMonitor"] == {"enabled": False}


def test_release_waits_for_its_namespace_and_every_gpu_node_group(dev):
    release = dev.one(RELEASE, EXPORTER)
    namespace = dev.one(NAMESPACE, "namespaces-gpu-monitoring")
    assert namespace.inputs["metadata"]["name"] == "gpu-monitoring"
    assert namespace.urn in release.dependencies
    gpu_groups = [g for g in dev.of_type(NODE_GROUP) if g.name.startswith("gpu-")]
    assert len(gpu_groups) == 2
    # Components are depended on through their children.
    for group in gpu_groups:
        assert group.urn in release.dependencies, group.name


def test_exporter_runs_on_every_gpu_node_and_never_on_system_nodes(dev):
    values = dev.one(RELEASE, EXPORTER).inputs["values"]
    groups = dev.of_type(NODE_GROUP)
    for group in groups:
        fits = selector_matches(values["nodeSelector"], group.inputs.get("labels", {})) and (
            tolerates(values["tolerations"], group.inputs.get("taints", []))
        )
        assert fits == group.name.startswith("gpu-"), group.name
    assert {g.name for g in groups} >= {"system", "gpu-t4", "gpu-a10g"}


def test_service_monitor_switch_through_stack_config():
    raw = dev_settings()
    raw["gpuMetrics"] = {"enabled": True, "serviceMonitor": True, "interval": "30s"}
    values = run_program(engine_config(raw), stack="dev").one(RELEASE, EXPORTER).inputs["values"]
    assert values["serviceMonitor"]["enabled"] is True
    assert values["serviceMonitor"]["interval"] == "30s"


def pool_only_renamed_stack() -> dict:
    """The dev stack with its GPU nodes from the Karpenter pool alone, on a profile that
    renames the resource."""
    raw = dev_settings()
    del raw["gpuNodeGroups"]
    raw["karpenter"]["nodePools"]["g5"]["sharing"] = "mps-slices"
    raw["demoWorkload"]["profile"] = "mps-slices"
    return raw


def test_every_node_groups_and_pools_resource_name_is_collected():
    settings = load_settings(pool_only_renamed_stack(), stack="dev")
    renamed = settings.sharing["mps-slices"].resource_name
    assert renamed != facts.GPU_RESOURCE
    assert settings.gpu_resource_names() == {renamed}
    both = load_settings(dev_settings(), stack="dev")
    assert both.gpu_resource_names() == {
        both.sharing[name].resource_name for name in ("default", "mps-slices")
    }


def test_a_pools_renamed_resource_is_attributed_to_pods():
    raw = pool_only_renamed_stack()
    renamed = load_settings(raw, stack="dev").sharing["mps-slices"].resource_name
    values = run_program(engine_config(raw), stack="dev").one(RELEASE, EXPORTER).inputs["values"]
    assert env_of(values)[facts.DCGM_RESOURCE_NAMES_ENV] == renamed


def test_a_pool_of_a_disabled_karpenter_adds_no_resource_name(minimal):
    minimal["sharing"] = {
        "default": {"replicas": 4},
        "renamed": {"replicas": 4, "renameByDefault": True},
    }
    minimal["karpenter"] = {"enabled": False}
    assert load_settings(minimal, stack="dev").gpu_resource_names() == {facts.GPU_RESOURCE}


def test_off_means_no_release_and_no_namespace():
    deployment = run_program(engine_config(copy.deepcopy(MINIMAL)), stack="dev")
    assert not [r for r in deployment.of_type(RELEASE) if r.name == EXPORTER]
    assert not deployment.of_type(COMPONENT)
    assert not deployment.of_type(NAMESPACE)


# --- Against the chart's own values (../shared/reference) ----------------------------------


def chart_value_paths() -> set[str]:
    text = (CHART / "values-paths.txt").read_text()
    return {line.strip() for line in text.splitlines() if line.strip()}


@needs_reference
@pytest.mark.parametrize("service_monitor", [False, True])
def test_every_value_we_set_is_read_by_the_chart(service_monitor):
    values = helm_values(
        GpuMetricsSettings(serviceMonitor=service_monitor), {"nvidia.com/gpu.shared"}
    )
    assert set(value_paths(values, facts.DCGM_EXPORTER_VALUE_PATHS)) <= chart_value_paths()
    assert chart_value_paths() >= facts.DCGM_EXPORTER_VALUE_PATHS


@needs_reference
def test_chart_defaults_we_override():
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    assert REFERENCE_CHART_VERSION in defaults["image"]["tag"]  # 4.5.3-4.8.2
    assert defaults["hostPID"] is False
    assert defaults["serviceMonitor"]["enabled"] is True  # why we always set it
    assert defaults["kubernetes"]["enablePodLabels"] is False
    assert defaults["extraEnv"] == []  # a list of EnvVar objects, as we pass it
    # Its default tolerations would keep it off our tainted GPU nodes.
    taint = {"key": facts.GPU_TAINT_KEY, "value": facts.GPU_TAINT_VALUE, "effect": "NoSchedule"}
    assert not tolerates(defaults["tolerations"], [taint])


# --- The Grafana dashboard ----------------------------------------------------------------


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def exprs_of(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_dashboard_queries_use_the_per_pod_metrics(dashboard):
    exprs = exprs_of(dashboard)
    for metric in facts.DCGM_PER_POD_FIELDS:
        assert any(metric in e for e in exprs), metric
    per_pod = [e for e in exprs if re.search(r'\bpod!=""', e)]
    assert per_pod and any("by (" in e and "pod)" in e for e in per_pod)
    assert any("DCGM_FI_DEV_FB_FREE" in e for e in exprs)  # the GPU's total


def test_dashboard_has_no_hard_coded_datasource(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    sources = [n["datasource"] for n in walk(dashboard) if isinstance(n.get("datasource"), dict)]
    assert sources
    assert all(s["uid"] == "${datasource}" for s in sources)


def test_dashboard_variables_are_defined_and_used(dashboard):
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "cluster", "node", "namespace"} <= variables
    used = set()
    for expr in exprs_of(dashboard):
        used |= set(re.findall(r"\$([A-Za-z_]\w*)", expr))
    assert used == {"cluster", "node", "namespace"}


# Labels each metric the dashboard reads carries: the exporter's (facts), kube-state-metrics'
# (docs/metrics: node/nodes-metrics.md, policy/resourcequota-metrics.md) and the Prometheus-side
# `cluster` on all of them.
METRIC_LABELS = {
    "DCGM_": {facts.DCGM_NODE_LABEL} | facts.DCGM_GPU_LABELS | facts.DCGM_POD_LABELS,
    "kube_node_status_allocatable": {"node", "resource", "unit"},
    "kube_resourcequota": {"namespace", "resourcequota", "resource", "type"},
    # HAMi's monitor labels its series itself.
    "hami_": facts.HAMI_CONTAINER_METRIC_LABELS,
}


@dataclass
class Query:
    """What a parsed PromQL expression reads: its selectors (metric, matcher labels) and the
    labels it groups or matches on, besides those label_replace makes."""

    selectors: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)
    made: set[str] = field(default_factory=set)


def query_of(expr: str) -> Query:
    """Parse one expression (promql-parser, Prometheus' own grammar): a syntax error raises."""
    query = Query()

    def walk(node) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {m.name: m.value for m in node.matchers.matchers}
            query.selectors.append((node.name or matchers.get("__name__", ""), matchers))
        elif isinstance(node, promql_parser.AggregateExpr):
            query.grouping |= set(node.modifier.labels if node.modifier else ())
            walk(node.expr)
        elif isinstance(node, promql_parser.BinaryExpr):
            modifier = node.modifier
            if modifier is not None and modifier.matching is not None:
                query.grouping |= set(modifier.matching.labels)
            walk(node.lhs)
            walk(node.rhs)
        elif isinstance(node, promql_parser.Call):
            if node.func.name == "label_replace":
                query.made.add(node.args[1].val)
            for arg in node.args:
                walk(arg)
        elif isinstance(node, promql_parser.ParenExpr | promql_parser.UnaryExpr):
            walk(node.expr)
        elif not isinstance(node, promql_parser.StringLiteral | promql_parser.NumberLiteral):
            raise AssertionError(f"unexpected {type(node).__name__} in {expr}")

    walk(promql_parser.parse(expr))
    return query


def test_every_dashboard_expression_parses_and_reads_labels_its_metrics_carry(dashboard):
    for expr in exprs_of(dashboard):
        query = query_of(expr)  # ValueError on a syntax error
        carried = {"cluster"} | query.made
        for metric, matchers in query.selectors:
            (labels,) = [v for k, v in METRIC_LABELS.items() if metric.startswith(k)]
            carried |= labels
            assert set(matchers) <= labels | {"cluster"}, (metric, set(matchers) - labels, expr)
        assert query.grouping <= carried, (query.grouping - carried, expr)


def test_the_query_parser_catches_what_prometheus_would_refuse():
    with pytest.raises(ValueError):
        query_of('sum by (namespace (DCGM_FI_DEV_GPU_UTIL{pod!=""})')
    with pytest.raises(ValueError):
        query_of('DCGM_FI_DEV_GPU_UTIL{pod!=""')


def test_per_namespace_panels_show_slices_against_quota_and_use(dashboard):
    panels = {p["title"]: p for p in dashboard["panels"]}
    slices = [query_of(t["expr"]) for t in panels["GPU slices in use / quota"]["targets"]]
    types = set()
    for query in slices:
        ((metric, matchers),) = query.selectors
        assert metric == "kube_resourcequota"
        # The tenants' quota by its name; GPU resources as the quota names them.
        assert matchers["resourcequota"] == facts.TENANT_QUOTA_NAME
        assert re.fullmatch(matchers["resource"], "requests.nvidia.com/gpu.shared")
        assert re.fullmatch(matchers["resource"], "requests.nvidia.com/mig-1g.10gb")
        assert not re.fullmatch(matchers["resource"], "requests.cpu")
        assert {"namespace", "resource"} <= query.grouping
        types.add(matchers["type"])
    assert types == {"used", "hard"}
    for title, metric in (
        ("GPU utilisation per namespace", "DCGM_FI_DEV_GPU_UTIL"),
        ("Framebuffer used per namespace", "DCGM_FI_DEV_FB_USED"),
    ):
        ((target),) = panels[title]["targets"]
        query = query_of(target["expr"])
        ((read, matchers),) = query.selectors
        assert read == metric and matchers["pod"] == ""  # pod!="": the per-pod series only
        assert target["expr"].startswith("sum by (cluster, namespace) (")


def test_dashboard_shows_hami_slices_memory_against_its_cap(dashboard):
    """What DCGM cannot see on a hami node: each container's memory against its cap."""
    hami = [e for e in exprs_of(dashboard) if "hami_" in e]
    ratio = [e for e in hami if facts.HAMI_MEMORY_LIMIT_METRIC in e and " / " in e]
    assert ratio and facts.HAMI_MEMORY_USED_METRIC in ratio[0]
    ast = promql_parser.parse(ratio[0])
    assert isinstance(ast, promql_parser.BinaryExpr)
    for side in (ast.lhs, ast.rhs):
        assert isinstance(side, promql_parser.AggregateExpr)
        # Both sides keep the same labels, so each container's used bytes meet its own cap.
        assert set(side.modifier.labels) == set(ast.lhs.modifier.labels)
        assert {"namespace", "pod", "container"} <= set(side.modifier.labels)


def test_dashboard_panels_are_laid_out_once(dashboard):
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
