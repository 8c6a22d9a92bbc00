"""Pulumi ComponentResources: each turns typed settings into one part of the graph."""

from components.addons import ClusterAddons, ClusterAddonsArgs
from components.benchmark import SharingBenchmark, SharingBenchmarkArgs
from components.cluster import GpuCluster, GpuClusterArgs
from components.demo_workload import DemoWorkload, DemoWorkloadArgs
from components.device_plugin import DevicePlugin, DevicePluginArgs
from components.gpu_metrics import GpuMetrics, GpuMetricsArgs
from components.hami import Hami, HamiArgs
from components.karpenter import Karpenter, KarpenterArgs
from components.namespaces import Namespaces, NamespacesArgs
from components.network import Network, NetworkArgs
from components.node_group import NodeGroup, NodeGroupArgs

__all__ = [
    "ClusterAddons",
    "ClusterAddonsArgs",
    "DemoWorkload",
    "DemoWorkloadArgs",
    "DevicePlugin",
    "DevicePluginArgs",
    "GpuCluster",
    "GpuClusterArgs",
    "GpuMetrics",
    "GpuMetricsArgs",
    "Hami",
    "HamiArgs",
    "Karpenter",
    "KarpenterArgs",
    "Namespaces",
    "NamespacesArgs",
    "Network",
    "NetworkArgs",
    "NodeGroup",
    "NodeGroupArgs",
    "SharingBenchmark",
    "SharingBenchmarkArgs",
]
