"""The root of a stack's settings: every section, and the checks that span sections."""

from __future__ import annotations

import datetime as dt

from pydantic import Field, PrivateAttr, field_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.addons import (
    BenchmarkSettings,
    DemoWorkloadSettings,
    DevicePluginSettings,
)
from eks_gpu_slicing.settings.base import (
    _CLUSTER_NAME,
    _IAM_PRINCIPAL_ARN,
    _KUBERNETES_VERSION,
    _check_names,
    _Settings,
    listing,
    shown_default,
)
from eks_gpu_slicing.settings.existing_cluster import CREATED_CLUSTER_KEYS, ExistingClusterSettings
from eks_gpu_slicing.settings.gpu_metrics import GpuMetricsSettings
from eks_gpu_slicing.settings.karpenter import KarpenterNodePoolSettings, KarpenterSettings
from eks_gpu_slicing.settings.network import ClusterEndpointSettings, NetworkSettings
from eks_gpu_slicing.settings.node_groups import GpuNodeGroupSettings, SystemNodeGroupSettings
from eks_gpu_slicing.settings.sharing import (
    DEFAULT_SHARING,
    HamiSettings,
    MigSettings,
    SharingProfile,
    bottlerocket_problems,
)
from eks_gpu_slicing.settings.tenants import (
    TenantSettings,
    tenant_namespace,
    tenant_problems,
    tenant_warnings,
)

# --- The whole stack -------------------------------------------------------------------------

# EKS's calendar as the reference states it: fixed dates, so the generated text does not change
# from day to day; the warnings themselves follow the day validation runs (_support_warnings).
_STANDARD_SUPPORT_ENDS = [
    f"{v} {r.standard_support_ends.isoformat()}"
    for v, r in facts.KUBERNETES_RELEASES.items()
    if r.standard_support_ends
]


class Settings(_Settings):
    """Everything one stack (environment) configures, validated."""

    cluster_name: str = Field(
        description="EKS cluster name. Changing it replaces the cluster. With existingCluster it "
        "is taken from existingCluster.name.",
        json_schema_extra=shown_default(f"`{facts.PROJECT}-<stack>`"),
    )
    kubernetes_version: str = Field(
        default=facts.DEFAULT_KUBERNETES_VERSION,
        description=f"Kubernetes minor version of the control plane: "
        f"{listing(facts.KUBERNETES_RELEASES, last='or')}. EKS standard support ends: "
        f"{listing(_STANDARD_SUPPORT_ENDS)}; after that a version is in extended support for a "
        "year, billed at a higher hourly rate: validation warns from 60 days before the end of "
        "standard support, by the day it runs. Quote it: an unquoted 1.30 is YAML for 1.3. With "
        "existingCluster it must equal the cluster's version, and the cluster's own is used "
        "when it is left out.",
    )
    protect: bool = Field(
        default=False,
        description="Pulumi `protect` on the cluster and its KMS key, plus EKS deletion "
        "protection.",
    )
    cluster_log_retention_days: int = Field(
        default=90,
        description="Days CloudWatch keeps the control-plane log group "
        f"`{facts.CLUSTER_LOG_GROUP.format(cluster_name='<cluster>')}`, which the stack creates "
        "before the cluster (so `destroy` removes it); one of CloudWatch's retentions: "
        f"{', '.join(str(d) for d in facts.LOG_RETENTION_DAYS)}.",
    )
    admin_role_arns: list[str] = Field(
        default=[],
        description="IAM role or user ARNs given "
        f"`{facts.CLUSTER_ADMIN_ACCESS_POLICY}` through access entries. The identity running "
        "`pulumi up` is admin already (EKS's creator entry): if it is listed (an assumed-role "
        "session is matched to its role, path or not), it is skipped with a warning, since a "
        "second entry would fail with 409.",
    )
    tags: dict[str, str] = Field(
        default={},
        description="Extra AWS tags on every AWS resource the stack creates that takes tags "
        f"(`{facts.PROJECT_TAG}` and `{facts.STACK_TAG}` are always set, to the project and the "
        "stack name, and refused here: use another key, such as team or cost-center).",
    )
    network: NetworkSettings = Field(
        default=NetworkSettings(),
        description="The VPC: created here (the default), or an existing one given by vpcId "
        "and its subnets.",
    )
    cluster_endpoint: ClusterEndpointSettings = Field(
        default=ClusterEndpointSettings(),
        description="Who can reach the Kubernetes API. Private access from the VPC is always on.",
    )
    system_node_group: SystemNodeGroupSettings = Field(
        default=SystemNodeGroupSettings(),
        description="The CPU node group for cluster add-ons (CoreDNS, Karpenter's controller), "
        "which cannot run on the tainted GPU nodes.",
    )
    gpu_node_groups: dict[str, GpuNodeGroupSettings] = Field(
        default={},
        description="GPU managed node groups, keyed by a stable name (1–32 of `a-z0-9-`): adding "
        "one never renames another. Resource name `gpu-<name>`. At least one is required "
        "unless Karpenter node pools are configured.",
    )
    sharing: dict[str, SharingProfile] = Field(
        default=DEFAULT_SHARING,
        description="Sharing profiles by name; each becomes one entry of the device plugin's "
        "ConfigMap, and devicePlugin.defaultProfile must be one of them. Names: 1–32 of "
        "`a-z0-9-`, starting with a letter, and not a YAML keyword "
        f"({listing(sorted(k for k in facts.YAML_1_1_KEYWORDS if k.isalpha()))}): the chart "
        "writes the default profile's name unquoted into YAML.",
    )
    device_plugin: DevicePluginSettings = Field(
        default=DevicePluginSettings(),
        description="The NVIDIA device plugin Helm release and its sharing ConfigMap.",
    )
    demo_workload: DemoWorkloadSettings = Field(
        default=DemoWorkloadSettings(),
        description="A demo Deployment of pods that each ask for one virtual GPU.",
    )
    benchmark: BenchmarkSettings = Field(
        default=BenchmarkSettings(),
        description="The GPU sharing benchmark, as a Job on each chosen GPU node group.",
    )
    gpu_metrics: GpuMetricsSettings = Field(
        default=GpuMetricsSettings(),
        description="NVIDIA's DCGM exporter on every GPU node, with per-pod metrics on shared "
        "GPUs.",
    )
    karpenter: KarpenterSettings = Field(
        default=KarpenterSettings(),
        description="Karpenter: installed here with GPU node pools, or only pools added to a "
        "Karpenter that runs already.",
    )
    existing_cluster: ExistingClusterSettings | None = Field(
        default=None,
        description="Add GPU sharing to this EKS cluster instead of creating one: no VPC, "
        "cluster, KMS key, log group, system node group or CoreDNS add-on. "
        f"{listing(CREATED_CLUSTER_KEYS)} are refused beside it. See "
        "docs/existing-cluster.md.",
    )
    tenants: dict[str, TenantSettings] = Field(
        default={},
        description=(
            "Teams sharing the GPUs, keyed by a stable name (1-32 of a-z0-9-): each gets a "
            "namespace, a ResourceQuota of GPU slices, optional container defaults and "
            "namespace-scoped access for its IAM principals (docs/tenants.md)."
        ),
    )
    # What an offline tool shows in place of the secrets it cannot read (settings/secrets.py).
    _secret_notes: tuple[str, ...] = PrivateAttr(default=())

    @field_validator("cluster_name")
    @classmethod
    def _cluster_name(cls, name: str) -> str:
        if not _CLUSTER_NAME.match(name):
            raise ValueError(f"'{name}' is not a valid EKS cluster name")
        return name

    @field_validator("kubernetes_version")
    @classmethod
    def _supported_version(cls, version: str) -> str:
        supported = ", ".join(facts.KUBERNETES_RELEASES)
        if version not in facts.KUBERNETES_RELEASES:
            hint = ""
            if _KUBERNETES_VERSION.match(version) and version.endswith(".3"):
                hint = " (an unquoted 1.30 in YAML reads as 1.3: quote it)"
            raise ValueError(
                f"EKS does not offer Kubernetes {version}{hint}; supported: {supported}"
            )
        return version

    @field_validator("admin_role_arns")
    @classmethod
    def _arns(cls, arns: list[str]) -> list[str]:
        bad = [a for a in arns if not _IAM_PRINCIPAL_ARN.match(a)]
        if bad:
            raise ValueError(f"not IAM role or user ARNs: {', '.join(bad)}")
        return arns

    @field_validator("gpu_node_groups")
    @classmethod
    def _group_names(cls, groups: dict[str, GpuNodeGroupSettings]) -> dict:
        _check_names(groups, "node group")
        return groups

    @field_validator("tenants")
    @classmethod
    def _tenant_names(cls, tenants: dict[str, TenantSettings]) -> dict:
        # They become namespace names (by default) and resource names.
        _check_names(tenants, "tenant")
        return tenants

    @field_validator("sharing")
    @classmethod
    def _profile_names(cls, profiles: dict[str, SharingProfile]) -> dict:
        _check_names(profiles, "profile")
        # The chart writes config.default into an environment value unquoted, so a name
        # YAML reads as a number, boolean or null (10, on, no, null) breaks the release.
        unsafe = [
            name for name in profiles if not name[0].isalpha() or name in facts.YAML_1_1_KEYWORDS
        ]
        if unsafe:
            raise ValueError(
                "profile names must start with a lowercase letter and must not be a YAML "
                f"keyword such as true, on, no or null: {', '.join(unsafe)}"
            )
        return profiles

    @field_validator("cluster_log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in facts.LOG_RETENTION_DAYS:
            allowed = ", ".join(str(d) for d in facts.LOG_RETENTION_DAYS)
            raise ValueError(f"{days} is not a CloudWatch Logs retention; one of: {allowed}")
        return days

    @property
    def kubernetes_version_given(self) -> bool:
        """Whether the stack file sets kubernetesVersion (an existing cluster's own version
        stands in for the default)."""
        return "kubernetes_version" in self.model_fields_set

    @property
    def decides_kubernetes_version(self) -> bool:
        """Whether this stack's settings name the control plane's version: always for a
        cluster it creates; for an existing one, only when kubernetesVersion is given (and
        then checked against the cluster)."""
        return self.existing_cluster is None or self.kubernetes_version_given

    @property
    def karpenter_installs_here(self) -> bool:
        """Whether this stack installs Karpenter's controller (not only pools for one that
        runs already)."""
        return self.karpenter.enabled and self.karpenter.install

    @property
    def default_profile(self) -> SharingProfile:
        return self.sharing[self.device_plugin.default_profile]

    @property
    def demo_profile_name(self) -> str:
        return self.demo_workload.profile or self.device_plugin.default_profile

    @property
    def demo_instance(self) -> facts.GpuInstance | None:
        """The GPU instance the demo is sized for: the first node group's (then Karpenter
        pool's) that uses the demo profile."""
        return next(iter(self.profile_instances(self.demo_profile_name)), None)

    @property
    def demo_resource_name(self) -> str:
        """The resource each demo pod requests: the demo profile's, on the GPU of the first
        node group (then Karpenter pool) that uses it. Only MIG `mixed` depends on the GPU:
        the smallest slice type of the layout there."""
        profile = self.sharing[self.demo_profile_name]
        instance = self.demo_instance
        return profile.resource_name_on(instance) if instance else profile.resource_name

    def profile_instances(self, profile_name: str) -> list[facts.GpuInstance]:
        """The instance types whose nodes carry this profile: its node groups' (in order),
        then its Karpenter pools' (those that will be created)."""
        instances = [g.instance for g in self.gpu_node_groups.values() if g.sharing == profile_name]
        instances += [
            i
            for p in self.karpenter_pools.values()
            if p.sharing == profile_name
            for i in p.instances
        ]
        return instances

    def profile_resource_names(self, profile_name: str) -> list[str]:
        """The extended resources the nodes of this profile advertise, once each in the order
        met (SharingProfile.node_resources on each of its instance types): one for a
        time-sliced, MPS or unshared profile, one per slice type for MIG `mixed`, whatever a
        strategy's profile advertises. Empty for a profile no group or pool uses."""
        profile = self.sharing[profile_name]
        found: dict[str, None] = {}
        for instance in self.profile_instances(profile_name):
            found.update(dict.fromkeys(profile.node_resources(instance)))
        return list(found)

    @property
    def demo_namespace(self) -> str:
        """Where the demo runs: its tenant's namespace when it runs as one."""
        tenant = self.tenants.get(self.demo_workload.tenant or "")
        if tenant is not None and self.demo_workload.tenant is not None:
            return tenant_namespace(self.demo_workload.tenant, tenant)
        return self.demo_workload.namespace

    @property
    def demo_in_tenant(self) -> bool:
        """Whether the demo runs as a tenant (in a namespace the tenant's part creates)."""
        return self.demo_workload.tenant in self.tenants

    def profile_of(self, group: GpuNodeGroupSettings) -> SharingProfile:
        return self.sharing[group.sharing]

    @property
    def own_namespaces(self) -> dict[str, list[str]]:
        """Namespace -> the stack's own parts in it (built-in namespaces included; a demo
        that runs as a tenant is the tenant's, not here)."""
        placed = [(self.device_plugin.namespace, "device plugin")]
        if self.mig_layouts:
            placed.append((self.device_plugin.namespace, "MIG manager"))
        if self.demo_workload.enabled and not self.demo_in_tenant:
            placed.append((self.demo_workload.namespace, "demo"))
        if self.benchmark.enabled:
            placed.append((self.benchmark.namespace, "benchmark"))
        if self.gpu_metrics.enabled:
            placed.append((self.gpu_metrics.namespace, "GPU metrics exporter"))
        if self.karpenter_installs_here:
            placed.append((self.karpenter.namespace, "Karpenter controller"))
        if self.hami is not None:
            placed.append((facts.HAMI_NAMESPACE, "HAMi"))
        own: dict[str, list[str]] = {}
        for namespace, part in placed:
            own.setdefault(namespace, []).append(part)
        return own

    @property
    def namespaces(self) -> set[str]:
        """Every namespace this stack's own parts put objects in (built-in ones included);
        tenants' namespaces are created with their quotas, not here."""
        return set(self.own_namespaces)

    @property
    def hami_groups(self) -> dict[str, GpuNodeGroupSettings]:
        """GPU node groups whose profile is `hami` (HAMi's device plugin serves their nodes)."""
        return {
            name: group
            for name, group in self.gpu_node_groups.items()
            if self.profile_of(group).is_hami
        }

    @property
    def hami(self) -> HamiSettings | None:
        """What the one HAMi installation is set up with, when some node group uses a hami
        profile (every hami profile agrees on it: combination_problems); None: HAMi is not
        installed."""
        for group in self.hami_groups.values():
            return self.profile_of(group).hami
        return None

    @property
    def hami_on_bottlerocket(self) -> bool:
        """Whether HAMi's nodes run Bottlerocket (its paths differ; all of them or none)."""
        return any(group.bottlerocket for group in self.hami_groups.values())

    @property
    def benchmark_groups(self) -> dict[str, tuple[GpuNodeGroupSettings, SharingProfile]]:
        """GPU node groups that get a benchmark Job (none unless enabled), with profiles."""
        if not self.benchmark.enabled:
            return {}
        names = self.benchmark.node_groups or [
            name for name in self.gpu_node_groups if name not in self.unbenchmarkable_groups
        ]
        return {
            name: (self.gpu_node_groups[name], self.profile_of(self.gpu_node_groups[name]))
            for name in names
        }

    @property
    def unbenchmarkable_groups(self) -> dict[str, str]:
        """GPU node group -> why the benchmark Job cannot measure whole-GPU sharing there."""
        return {
            name: why
            for name, group in self.gpu_node_groups.items()
            if (why := _why_not_benchmarkable(group.sharing, self.profile_of(group)))
        }

    def combination_problems(self) -> list[str]:
        """Errors that only show when sections are combined: a profile on a given GPU and
        AMI. Each is 'key.path: why'."""
        problems = []
        if self.karpenter.enabled and self.decides_kubernetes_version:
            # A control-plane upgrade the pinned release does not carry would strand every
            # pool (Karpenter resolves the alias for the cluster's version). Managed node
            # groups are safe: EKS picks their AMI release for the cluster's version.
            ami_problem = self.karpenter.ami_release_problem(self.kubernetes_version)
            if ami_problem:
                problems.append(ami_problem)
        for name, group in self.gpu_node_groups.items():
            profile = self.profile_of(group)
            where = f"gpuNodeGroups.{name}"
            problems.extend(
                f"{where}.sharing: {p}"
                for p in _mig_problems(group.sharing, profile, group.instance)
                + _fractional_problems(group.sharing, profile, group.instance)
            )
            if profile.strategy == "mps":
                per_client = profile.gpu_memory_per_virtual_gpu_mib(group.instance.gpu_memory_mib)
                if per_client < facts.CUDA_CONTEXT_MIB:
                    problems.append(
                        f"{where}.sharing: profile '{group.sharing}' gives each of "
                        f"{profile.replicas} MPS clients {per_client} MiB of the "
                        f"{group.instance.gpu_model}'s {group.instance.gpu_memory_mib} MiB, less "
                        f"than a CUDA context needs (~{facts.CUDA_CONTEXT_MIB} MiB): lower replicas"
                    )
            if group.bottlerocket:
                problems.extend(
                    f"{where}: {p}"
                    for p in bottlerocket_problems(
                        group.sharing, profile, facts.mig_gpu(group.instance.name)
                    )
                )
        for name, pool in self.karpenter_pools.items():
            profile = self.sharing[pool.sharing]
            for instance in pool.instances:
                problems.extend(
                    f"karpenter.nodePools.{name}.sharing: {p}"
                    for p in _mig_problems(pool.sharing, profile, instance)
                    + _fractional_problems(pool.sharing, profile, instance)
                )
                driver_problem = self.karpenter.driver_problem(instance)
                if driver_problem:
                    problems.append(f"karpenter.nodePools.{name}.instanceTypes: {driver_problem}")
            if profile.strategy != "mps":
                continue
            for instance in pool.instances:
                per_client = profile.gpu_memory_per_virtual_gpu_mib(instance.gpu_memory_mib)
                if per_client < facts.CUDA_CONTEXT_MIB:
                    problems.append(
                        f"karpenter.nodePools.{name}.sharing: profile '{pool.sharing}' gives "
                        f"each MPS client {per_client} MiB on a {instance.name}, less than a "
                        f"CUDA context needs (~{facts.CUDA_CONTEXT_MIB} MiB): lower replicas"
                    )
        problems.extend(self._hami_problems())
        problems.extend(tenant_problems(self))
        if self.benchmark.enabled:
            unmeasurable = self.unbenchmarkable_groups
            problems.extend(
                f"benchmark.nodeGroups: {name}: {unmeasurable[name]}; list only groups with "
                "a time-slicing or unshared profile"
                for name in self.benchmark.node_groups or []
                if name in unmeasurable
            )
        return problems

    def _hami_problems(self) -> list[str]:
        """What one HAMi installation cannot serve: hami profiles that differ (its plugin's
        per-node configuration matches exact node names only, which managed node groups and
        Karpenter give at launch), Karpenter pools of a hami profile, and AL2023 and
        Bottlerocket hami groups together (one release has one set of host paths)."""
        problems = []
        hami = {name: p.hami for name, p in self.sharing.items() if p.hami is not None}
        if len(hami) > 1:
            first, *others = sorted(hami)
            reference = hami[first].per_node_values()
            for name in others:
                for key, value in hami[name].per_node_values().items():
                    if value != reference[key]:
                        problems.append(
                            f"sharing.{name}.hami.{key}: {value!r} differs from "
                            f"sharing.{first}.hami.{key} ({reference[key]!r}): one HAMi "
                            "installation serves every hami node of the stack (its device "
                            "plugin's per-node settings match exact node names only), so every "
                            "hami profile must set the same values"
                        )
        for name, pool in self.karpenter_pools.items():
            if self.sharing[pool.sharing].is_hami:
                problems.append(
                    f"karpenter.nodePools.{name}.sharing: profile '{pool.sharing}' is hami, "
                    "which Karpenter cannot provision for: only nvidia.com/gpu reaches a "
                    f"node's allocatable, never {facts.HAMI_MEMORY_RESOURCE} or "
                    f"{facts.HAMI_CORES_RESOURCE}, so a pod requesting them never fits an "
                    "instance type (kubernetes-sigs/karpenter v1.14.1 pkg/utils/resources "
                    "Fits), and with a NodeOverlay advertising them the node launches but its "
                    "NodeClaim never initialises (lifecycle/initialization.go, "
                    "RequestedResourcesRegistered); use a managed node group for the hami "
                    "profile and give the pool another profile"
                )
        groups = self.hami_groups
        bottlerocket = sorted(n for n, g in groups.items() if g.bottlerocket)
        al2023 = sorted(n for n, g in groups.items() if not g.bottlerocket)
        if bottlerocket and al2023:
            problems.append(
                f"gpuNodeGroups.{bottlerocket[0]}.amiType: hami groups "
                f"{', '.join(bottlerocket)} (Bottlerocket) and {', '.join(al2023)} (AL2023) "
                "cannot share one HAMi installation: its library path differs between the two "
                f"(global.gpuHookPath {facts.HAMI_HOOK_PATH['bottlerocket']} on Bottlerocket, "
                f"whose /usr/local is read-only); give every hami group the same amiType"
            )
        return problems

    @property
    def gpu_node_daemonsets(self) -> int:
        """DaemonSet pods on every GPU node, counted against its pod limit: the DCGM exporter
        is one more when GPU metrics are on."""
        return facts.GPU_NODE_DAEMONSET_PODS + int(self.gpu_metrics.enabled)

    @property
    def karpenter_pools(self):
        """Karpenter node pools that will be created (none while Karpenter is off)."""
        return self.karpenter.node_pools if self.karpenter.enabled else {}

    def virtual_gpu_capacity(self, profile_name: str) -> int | None:
        """The most virtual GPUs of a profile the stack can ever offer: its node groups at
        maxSize plus its Karpenter pools at their limits (an upper bound, see
        KarpenterNodePoolSettings.max_virtual_gpus). None when one of its pools has no
        limit we can count, so no number bounds it."""
        profile = self.sharing[profile_name]
        total = sum(
            g.max_size * g.instance.gpus * profile.devices_per_gpu(g.instance)
            for g in self.gpu_node_groups.values()
            if g.sharing == profile_name
        )
        for pool in self.karpenter_pools.values():
            if pool.sharing == profile_name:
                most = pool.max_virtual_gpus(profile.devices_per_gpu)
                if most is None:
                    return None
                total += most
        return total

    def resource_capacity(self, resource: str) -> int | None:
        """The most of one extended resource the stack can ever offer: its node groups at
        maxSize plus its Karpenter pools at their limits (an upper bound, as
        virtual_gpu_capacity), whichever profiles advertise it. None when a pool that
        advertises it has no limit we can count."""
        total = sum(
            g.max_size * self.profile_of(g).node_resources(g.instance).get(resource, 0)
            for g in self.gpu_node_groups.values()
        )
        for pool in self.karpenter_pools.values():
            profile = self.sharing[pool.sharing]
            if not any(resource in profile.node_resources(i) for i in pool.instances):
                continue
            most = pool.max_virtual_gpus(
                lambda i, p=profile: p.slice_resources_per_gpu(i).get(resource, 0)
            )
            if most is None:
                return None
            total += most
        return total

    def capacity_breakdown(self, resource: str) -> str:
        """Where resource_capacity's number comes from, for messages: each group at maxSize
        and each pool's bound."""
        parts = [
            f"gpuNodeGroups.{name}: maxSize {g.max_size} x {per_node} per node"
            for name, g in self.gpu_node_groups.items()
            if (per_node := self.profile_of(g).node_resources(g.instance).get(resource, 0))
        ]
        for name, pool in self.karpenter_pools.items():
            profile = self.sharing[pool.sharing]
            if any(resource in profile.node_resources(i) for i in pool.instances):
                most = pool.max_virtual_gpus(
                    lambda i, p=profile: p.slice_resources_per_gpu(i).get(resource, 0)
                )
                parts.append(f"karpenter.nodePools.{name}: at most {most}")
        return "; ".join(parts) or "no group or pool advertises it"

    def gpu_resource_names(self) -> set[str]:
        """The extended resources pods request on this stack's GPU nodes: the profile's
        resource (`nvidia.com/gpu`, or `nvidia.com/gpu.shared` when renamed) of every node
        group and of every Karpenter pool that will be created; for MIG, every slice resource
        of each instance type."""
        names: set[str] = set()
        for group in self.gpu_node_groups.values():
            names |= set(self.profile_of(group).node_resources(group.instance))
        for pool in self.karpenter_pools.values():
            for instance in pool.instances:
                names |= set(self.sharing[pool.sharing].node_resources(instance))
        return names

    @property
    def mig_layouts(self) -> dict[str, tuple[MigSettings, set[str]]]:
        """mig.config label value -> (layout, the MIG GPU models it is applied to), for every
        AL2023 group and Karpenter pool with a MIG profile (Bottlerocket partitions itself)."""
        used: dict[str, tuple[MigSettings, set[str]]] = {}
        instances = [
            (self.profile_of(g), g.instance)
            for g in self.gpu_node_groups.values()
            if not g.bottlerocket
        ]
        instances += [
            (self.sharing[p.sharing], i) for p in self.karpenter_pools.values() for i in p.instances
        ]
        for profile, instance in instances:
            gpu = facts.mig_gpu(instance.name)
            if profile.mig is None or gpu is None:
                continue
            entry = used.setdefault(profile.mig.layout_name, (profile.mig, set()))
            entry[1].add(gpu.name)
        return dict(sorted(used.items()))

    def _karpenter_warnings(self) -> list[str]:
        out = []
        if self.karpenter.enabled and self.karpenter.ami_release_unknown:
            out.append(
                f"karpenter.amiRelease {self.karpenter.ami_release} is newer than the newest "
                f"release this program knows ({facts.NEWEST_KNOWN_AMI_RELEASE}): check that it "
                "exists in awslabs/amazon-eks-ami's CHANGELOG.md and carries kubernetesVersion "
                f"{self.kubernetes_version}, or Karpenter reports AMINotFound and no pool node "
                "launches"
            )
        if self.karpenter.enabled and self.karpenter.version != facts.KARPENTER_VERSION:
            out.append(
                f"karpenter.version {self.karpenter.version}: the CRDs, values and IAM policy "
                f"this program emits are checked against {facts.KARPENTER_VERSION}"
            )
        for name, pool in self.karpenter_pools.items():
            out.extend(_unpriced_on_demand_warnings(name, pool))
            profile = self.sharing.get(pool.sharing)
            if profile is None:
                continue
            for instance in pool.instances:
                per_node = instance.gpus * profile.devices_per_gpu(instance)
                pods = min(instance.max_pods, pool.max_pods or instance.max_pods)
                room = pods - self.gpu_node_daemonsets
                if per_node > room:
                    out.append(
                        f"karpenter.nodePools.{name}: a {instance.name} advertises {per_node} "
                        f"virtual GPUs but runs at most {pods} pods ({room} after DaemonSets)"
                    )
        return out

    def _fractional_warnings(self) -> list[str]:
        """A fractional vGPU runs NVIDIA's GRID driver, which needs its licensing daemon
        (nvidia-gridd): bottlerocket-kernel-kit #285 and amazon-eks-ami #2450 both report an
        unlicensed vGPU failing CUDA work after 24 hours. The AL2023 NVIDIA AMI at v20260610
        builds the GRID kernel module only (facts.GPU_FAMILY_DRIVERS); whether a daemon runs
        is not confirmed, so every group and pool of them says so."""
        where = [
            (f"gpuNodeGroups.{name}", [group.instance])
            for name, group in self.gpu_node_groups.items()
        ] + [
            (f"karpenter.nodePools.{name}", pool.instances)
            for name, pool in self.karpenter_pools.items()
        ]
        out = []
        for path, instances in where:
            fractional = [i.name for i in instances if i.fractional]
            if fractional:
                out.append(
                    f"{path}: a fractional vGPU ({', '.join(fractional)}) runs NVIDIA's GRID "
                    "driver and fails CUDA work after 24 h unless its license daemon runs; "
                    "that the node image runs it is not confirmed: run a node for a day before "
                    "production"
                )
        return out

    def warnings(self, today: dt.date) -> list[str]:
        """Things that deploy but that a reviewer should hear about."""
        out = list(self._secret_notes)
        if self.decides_kubernetes_version:
            # (An existing cluster's owner decides its version and its support plan.)
            out.extend(_support_warnings(facts.KUBERNETES_RELEASES[self.kubernetes_version], today))
        if self.protect and self.cluster_endpoint.open_to_world:
            out.append("clusterEndpoint: a protected stack's API endpoint is open to 0.0.0.0/0")
        if self.device_plugin.chart_version != facts.DEVICE_PLUGIN_CHART_VERSION:
            out.append(
                f"devicePlugin.chartVersion {self.device_plugin.chart_version}: the values "
                f"this program sets are checked against {facts.DEVICE_PLUGIN_CHART_VERSION}"
            )
        metrics = self.gpu_metrics
        if metrics.enabled and metrics.chart_version != facts.DCGM_EXPORTER_CHART_VERSION:
            out.append(
                f"gpuMetrics.chartVersion {metrics.chart_version}: the values this program "
                f"sets are checked against {facts.DCGM_EXPORTER_CHART_VERSION}"
            )
        unused = sorted(
            set(self.sharing)
            - {g.sharing for g in self.gpu_node_groups.values()}
            - {p.sharing for p in self.karpenter_pools.values()}
            - {self.device_plugin.default_profile}
        )
        if unused:
            out.append(f"sharing profiles not used by any GPU node group: {', '.join(unused)}")
        for name, group in self.gpu_node_groups.items():
            profile = self.profile_of(group)
            # MIG: the smallest slice's own memory over its replicas (a whole slice, unshared,
            # has at least a 1g profile's memory).
            per_virtual = profile.memory_per_device_mib(group.instance)
            if profile.shared and per_virtual < facts.MIN_COMFORTABLE_GPU_MIB_PER_VIRTUAL_GPU:
                where = (
                    f"per device (its smallest MIG slice, time-sliced {profile.replicas} ways)"
                    if profile.is_mig
                    else "per virtual GPU"
                )
                out.append(
                    f"gpuNodeGroups.{name}: profile '{group.sharing}' leaves {per_virtual} MiB "
                    f"of GPU memory {where} on a {group.instance_type}; a CUDA context "
                    "alone takes about 0.7 GiB"
                )
            per_node = group.instance.gpus * profile.devices_per_gpu(group.instance)
            room = group.instance.max_pods - self.gpu_node_daemonsets
            if per_node > room:
                out.append(
                    f"gpuNodeGroups.{name}: {per_node} virtual GPUs per node, but a "
                    f"{group.instance_type} runs at most {group.instance.max_pods} pods "
                    f"({room} after DaemonSets): the rest can never be used"
                )
        out.extend(self._karpenter_warnings())
        out.extend(self._fractional_warnings())
        if self.demo_workload.enabled:
            capacity = self.virtual_gpu_capacity(self.demo_profile_name)
            if capacity is not None and self.demo_workload.replicas > capacity:
                out.append(
                    f"demoWorkload.replicas ({self.demo_workload.replicas}) exceeds the "
                    f"{capacity} virtual GPUs of profile '{self.demo_profile_name}' at maxSize "
                    "and Karpenter pool limits; the rest stay Pending"
                )
        out.extend(tenant_warnings(self))
        if self.benchmark.enabled and not self.benchmark.node_groups:
            left_out = sorted(self.unbenchmarkable_groups)
            kinds = "MPS, MIG or hami" if self.hami_groups else "MPS or MIG"
            if left_out:
                out.append(
                    f"benchmark: no Job on gpuNodeGroups {', '.join(left_out)}: their {kinds} "
                    "profile leaves no whole GPU to measure sharing on"
                    + ("" if self.benchmark_groups else "; no group is left to benchmark")
                )
        for name, (group, _) in self.benchmark_groups.items():
            if group.desired_size == 0:
                out.append(
                    f"benchmark: gpuNodeGroups.{name} has desiredSize 0; "
                    "its benchmark Job stays Pending until a node runs"
                )
        return out


def _unpriced_on_demand_warnings(name: str, pool: KarpenterNodePoolSettings) -> list[str]:
    """An on-demand pool listing a type EC2 sells without an on-demand price (p5e.48xlarge:
    Capacity Blocks only): Karpenter makes an on-demand offering available only when it has a
    price for it (karpenter-provider-aws v1.14.1, pkg/providers/instancetype/offering/
    base_resolver.go), so it silently never launches that type on-demand."""
    if "on-demand" not in pool.capacity_types:
        return []
    others = [t for t in pool.capacity_types if t != "on-demand"]
    return [
        f"karpenter.nodePools.{name}: {instance.name} has no on-demand price (EC2 sells it "
        "through Capacity Blocks only), and Karpenter never launches a type on-demand without "
        "one: "
        + (
            f"this pool launches it only as {' or '.join(others)}, if EC2 offers it so"
            if others
            else "this pool never launches it; take it out of instanceTypes"
        )
        for instance in pool.instances
        if instance.usd_per_hour is None
    ]


def _support_warnings(release: facts.KubernetesRelease, today: dt.date) -> list[str]:
    """What EKS's release calendar means for this version on `today`."""
    standard_ends, extended_ends = release.standard_support_ends, release.extended_support_ends
    phase = release.support_on(today)
    if phase == "ended":
        assert extended_ends is not None
        return [
            f"kubernetesVersion {release.version}: EKS support ended {extended_ends.isoformat()}; "
            "EKS creates no cluster on it and upgrades existing control planes on its own: "
            "upgrade to a newer version"
        ]
    if phase == "extended":
        assert standard_ends is not None
        until = f" until {extended_ends.isoformat()}" if extended_ends else ""
        return [
            f"kubernetesVersion {release.version} is in EKS extended support since "
            f"{standard_ends.isoformat()}{until}, which is billed at a higher hourly rate; "
            "plan the upgrade"
        ]
    if standard_ends and (standard_ends - today).days < 60:
        return [
            f"kubernetesVersion {release.version}: standard support ends "
            f"{standard_ends.isoformat()}; plan the upgrade"
        ]
    return []


def _why_not_benchmarkable(profile_name: str, profile: SharingProfile) -> str | None:
    """Why the benchmark Job measures nothing meaningful on a node of this profile."""
    if profile.strategy == "mps":
        # The plugin's MPS daemon puts the GPU in exclusive-process mode and makes the Job's
        # pod one MPS client with 1/replicas of the GPU: its "exclusive" and "time-slicing"
        # rows would measure a client's share, and its own MPS modes fail to start.
        return (
            f"profile '{profile_name}' is MPS: the pod would be one MPS client with "
            "1/replicas of the GPU, in exclusive-process mode, so it cannot measure "
            "whole-GPU sharing"
        )
    if profile.is_mig:
        return (
            f"profile '{profile_name}' is MIG: the pod gets one MIG slice, not the whole "
            "GPU, so it cannot measure whole-GPU sharing"
        )
    if profile.is_hami:
        # HAMi's device plugin allocates only for pods its scheduler placed, and the Job's
        # processes would share one container's HAMi-core cap. The benchmark's own hami mode
        # measures HAMi-core on a GPU machine (benchmarks/sharing/README.md).
        return (
            f"profile '{profile_name}' is hami: the pod would be one HAMi slice, every "
            "process of it under one memory cap, so it cannot measure whole-GPU sharing"
        )
    return None


def _fractional_problems(
    profile_name: str, profile: SharingProfile, instance: facts.GpuInstance
) -> list[str]:
    """Why a profile cannot share this fractional type's vGPU (MIG: _mig_problems). Time-
    slicing replicates whatever device NVML reports, vGPU or not (k8s-device-plugin v0.20.0
    has no vGPU-specific code outside GPU Feature Discovery's labels); whether its MPS control
    daemon works on a GRID vGPU is not confirmed anywhere this project looked, nor whether
    HAMi-core's memory accounting (NVML per-process usage) does."""
    if not instance.fractional or profile.strategy not in ("mps", "hami"):
        return []
    kind, what = (
        ("MPS", "the device plugin's MPS")
        if profile.strategy == "mps"
        else ("hami", "HAMi's memory cap")
    )
    return [
        f"profile '{profile_name}' is {kind}, but a {instance.name} has a {instance.gpu_fraction} "
        f"{instance.gpu_model} vGPU (NVIDIA GRID driver), on which {what} is "
        "not confirmed to work: use strategy none (the default there) or time-slicing"
    ]


def _mig_problems(
    profile_name: str, profile: SharingProfile, instance: facts.GpuInstance
) -> list[str]:
    """Why a MIG profile cannot partition this instance type's GPUs (empty when it can, or
    when the profile is not MIG)."""
    if not profile.is_mig or profile.mig is None:
        return []
    gpu = facts.mig_gpu(instance.name)
    if gpu is None:
        capable = ", ".join(facts.MIG_GPU_OF_INSTANCE)
        what = (
            f"the GPU of a {instance.name} is a {instance.gpu_fraction} vGPU of an "
            f"{instance.gpu_model}, already partitioned by the hypervisor, and"
            if instance.fractional
            else f"the {instance.gpu_model} of a {instance.name}"
        )
        return [
            f"profile '{profile_name}' is MIG, but {what} has no MIG; MIG-capable types: {capable}"
        ]
    return [
        f"profile '{profile_name}' mig.layout {profile.mig.layout_name} on a {instance.name}: "
        f"{problem}"
        for problem in profile.mig.problems_on(gpu)
    ]
