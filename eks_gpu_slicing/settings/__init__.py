"""Typed stack settings: every configuration key, its default and its validation.

Stack YAML -> `load_settings()` -> one immutable `Settings` object handed to the components.
Nothing else reads `pulumi.Config`. Validation happens here, once, before any resource is
registered, and reports every problem with its key path at once.

One module per config section (as terraform-aws-eks keeps one unit per folder); `stack`
holds the root `Settings` and the checks that span sections, `loading` turns raw config
into it.
"""

from eks_gpu_slicing.settings.addons import (
    BenchmarkSettings,
    DemoWorkloadSettings,
    DevicePluginSettings,
)
from eks_gpu_slicing.settings.base import ConfigError, Namespace, PinnedImage
from eks_gpu_slicing.settings.gpu_metrics import GpuMetricsSettings
from eks_gpu_slicing.settings.karpenter import KarpenterNodePoolSettings, KarpenterSettings
from eks_gpu_slicing.settings.loading import decode_config_value, load_settings
from eks_gpu_slicing.settings.network import ClusterEndpointSettings, NetworkSettings
from eks_gpu_slicing.settings.node_groups import (
    GpuNodeGroupSettings,
    NodeGroupSettings,
    SystemNodeGroupSettings,
)
from eks_gpu_slicing.settings.sharing import (
    DEFAULT_SHARING,
    HamiSettings,
    SharingProfile,
    SharingStrategy,
)
from eks_gpu_slicing.settings.stack import Settings

__all__ = [
    "DEFAULT_SHARING",
    "BenchmarkSettings",
    "ClusterEndpointSettings",
    "ConfigError",
    "DemoWorkloadSettings",
    "DevicePluginSettings",
    "GpuMetricsSettings",
    "GpuNodeGroupSettings",
    "HamiSettings",
    "KarpenterNodePoolSettings",
    "KarpenterSettings",
    "Namespace",
    "NetworkSettings",
    "NodeGroupSettings",
    "PinnedImage",
    "Settings",
    "SharingProfile",
    "SharingStrategy",
    "SystemNodeGroupSettings",
    "decode_config_value",
    "load_settings",
]
