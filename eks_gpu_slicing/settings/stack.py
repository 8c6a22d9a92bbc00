"""The root of a stack's settings: every section, and the checks that span sections."""

from __future__ import annotations

import datetime as dt

from pydantic import field_validator

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
)
from eks_gpu_slicing.settings.existing_cluster import ExistingClusterSettings
from eks_gpu_slicing.settings.gpu_metrics import GpuMetricsSettings
from eks_gpu_slicing.settings.karpenter import KarpenterNodePoolSettings, KarpenterSettings
from eks_gpu_slicing.settings.network import ClusterEndpointSettings, NetworkSettings
from eks_gpu_slicing.settings.node_groups import GpuNodeGroupSettings, SystemNodeGroupSettings
from eks_gpu_slicing.settings.sharing import (
    DEFAULT_SHARING,
    MigSettings,
    SharingProfile,
    bottlerocket_problems,
)

# --- The whole stack -------------------------------------------------------------------------


class Settings(_Settings):
    """Everything one stack (environment) configures, validated."""

    cluster_name: str
    kubernetes_version: str = facts.DEFAULT_KUBERNETES_VERSION
    protect: bool = False
    # Days CloudWatch keeps the control-plane logs of the group the stack creates for them.
    cluster_log_retention_days: int = 90
    admin_role_arns: list[str] = []
    tags: dict[str, str] = {}
    network: NetworkSettings = NetworkSettings()
    cluster_endpoint: ClusterEndpointSettings = ClusterEndpointSettings()
    system_node_group: SystemNodeGroupSettings = SystemNodeGroupSettings()
    # With Karpenter pools, none is needed (load_settings checks there is GPU capacity).
    gpu_node_groups: dict[str, GpuNodeGroupSettings] = {}
    sharing: dict[str, SharingProfile] = DEFAULT_SHARING
    device_plugin: DevicePluginSettings = DevicePluginSettings()
    demo_workload: DemoWorkloadSettings = DemoWorkloadSettings()
    benchmark: BenchmarkSettings = BenchmarkSettings()
    gpu_metrics: GpuMetricsSettings = GpuMetricsSettings()
    karpenter: KarpenterSettings = KarpenterSettings()
    # Add GPU sharing to this cluster instead of creating one (docs/existing-cluster.md).
    existing_cluster: ExistingClusterSettings | None = None

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
    def demo_resource_name(self) -> str:
        """The resource each demo pod requests: the demo profile's, on the GPU of the first
        node group (then Karpenter pool) that uses it. Only MIG `mixed` depends on the GPU:
        the smallest slice type of the layout there."""
        name = self.demo_profile_name
        profile = self.sharing[name]
        instances = [g.instance for g in self.gpu_node_groups.values() if g.sharing == name]
        instances += [
            i for p in self.karpenter_pools.values() if p.sharing == name for i in p.instances
        ]
        return profile.resource_name_on(instances[0]) if instances else profile.resource_name

    def profile_of(self, group: GpuNodeGroupSettings) -> SharingProfile:
        return self.sharing[group.sharing]

    @property
    def namespaces(self) -> set[str]:
        """Every namespace this stack puts objects in (built-in ones included)."""
        used = {self.device_plugin.namespace}
        if self.demo_workload.enabled:
            used.add(self.demo_workload.namespace)
        if self.benchmark.enabled:
            used.add(self.benchmark.namespace)
        if self.gpu_metrics.enabled:
            used.add(self.gpu_metrics.namespace)
        if self.karpenter_installs_here:
            used.add(self.karpenter.namespace)
        return used

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
        if self.benchmark.enabled:
            unmeasurable = self.unbenchmarkable_groups
            problems.extend(
                f"benchmark.nodeGroups: {name}: {unmeasurable[name]}; list only groups with "
                "a time-slicing or unshared profile"
                for name in self.benchmark.node_groups or []
                if name in unmeasurable
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
        out = []
        release = facts.KUBERNETES_RELEASES[self.kubernetes_version]
        if not self.decides_kubernetes_version:
            pass  # the existing cluster's owner decides its version and its support plan
        elif release.support == "extended":
            out.append(
                f"kubernetesVersion {release.version} is in EKS extended support, "
                "which is billed at a higher hourly rate"
            )
        elif release.standard_support_ends and (release.standard_support_ends - today).days < 60:
            out.append(
                f"kubernetesVersion {release.version}: standard support ends "
                f"{release.standard_support_ends.isoformat()}; plan the upgrade"
            )
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
        if self.benchmark.enabled and not self.benchmark.node_groups:
            left_out = sorted(self.unbenchmarkable_groups)
            if left_out:
                out.append(
                    f"benchmark: no Job on gpuNodeGroups {', '.join(left_out)}: their MPS or "
                    "MIG profile leaves no whole GPU to measure sharing on"
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
    return None


def _fractional_problems(
    profile_name: str, profile: SharingProfile, instance: facts.GpuInstance
) -> list[str]:
    """Why a profile cannot share this fractional type's vGPU (MIG: _mig_problems). Time-
    slicing replicates whatever device NVML reports, vGPU or not (k8s-device-plugin v0.20.0
    has no vGPU-specific code outside GPU Feature Discovery's labels); whether its MPS control
    daemon works on a GRID vGPU is not confirmed anywhere this project looked."""
    if not instance.fractional or profile.strategy != "mps":
        return []
    return [
        f"profile '{profile_name}' is MPS, but a {instance.name} has a {instance.gpu_fraction} "
        f"{instance.gpu_model} vGPU (NVIDIA GRID driver), on which the device plugin's MPS is "
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
