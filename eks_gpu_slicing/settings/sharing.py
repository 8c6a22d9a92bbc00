"""Sharing profiles: how each physical GPU is advertised, the single source of truth."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import _Settings

SharingStrategy = Literal["time-slicing", "mps", "none"]

# --- Sharing profiles ---------------------------------------------------------------------


class SharingProfile(_Settings):
    """How each physical GPU on a node is advertised: one device, or `replicas` virtual ones."""

    strategy: SharingStrategy = "time-slicing"
    replicas: int | None = None
    rename_by_default: bool = False
    # Unset: the plugin's own default for the strategy (false for time-slicing, true for MPS).
    fail_requests_greater_than_one: bool | None = None

    @field_validator("replicas")
    @classmethod
    def _at_least_two(cls, replicas: int | None) -> int | None:
        if replicas is not None and replicas < facts.MIN_SHARING_REPLICAS:
            raise ValueError(
                f"replicas ({replicas}) must be an integer >= {facts.MIN_SHARING_REPLICAS}: "
                "the device plugin rejects fewer and crashes on the node; "
                "use strategy 'none' for unshared GPUs"
            )
        return replicas

    @model_validator(mode="after")
    def _replicas_match_strategy(self) -> SharingProfile:
        if self.strategy == "none" and self.replicas is not None:
            raise ValueError("replicas must be left out when strategy is 'none'")
        if self.strategy != "none" and self.replicas is None:
            raise ValueError(f"replicas is required when strategy is '{self.strategy}'")
        if self.strategy == "none" and (
            self.rename_by_default or self.fail_requests_greater_than_one is not None
        ):
            raise ValueError(
                "renameByDefault and failRequestsGreaterThanOne only apply to shared GPUs"
            )
        if (
            self.strategy == "mps"
            and self.replicas is not None
            and self.replicas > facts.MPS_MAX_CLIENTS_PER_GPU
        ):
            raise ValueError(
                f"replicas ({self.replicas}): an MPS server takes at most "
                f"{facts.MPS_MAX_CLIENTS_PER_GPU} clients per GPU"
            )
        return self

    @property
    def fail_requests_over_one(self) -> bool:
        """What the plugin will do with a request for more than one replica."""
        if self.fail_requests_greater_than_one is not None:
            return self.fail_requests_greater_than_one
        return self.strategy == "mps"

    def gpu_memory_per_virtual_gpu_mib(self, gpu_memory_mib: int) -> int:
        """Device memory each virtual GPU can count on: all of it shared (time-slicing), or
        the plugin's per-client limit, total / replicas (MPS)."""
        return gpu_memory_mib // self.virtual_gpus_per_gpu

    @property
    def shared(self) -> bool:
        return self.strategy != "none"

    @property
    def virtual_gpus_per_gpu(self) -> int:
        return self.replicas if self.shared and self.replicas else 1

    @property
    def resource_name(self) -> str:
        """The extended resource name pods must request on nodes with this profile."""
        if self.shared and self.rename_by_default:
            return facts.GPU_RESOURCE + facts.SHARED_RESOURCE_SUFFIX
        return facts.GPU_RESOURCE


DEFAULT_SHARING = {"default": SharingProfile(strategy="time-slicing", replicas=10)}


def bottlerocket_problems(profile_name: str, profile: SharingProfile) -> list[str]:
    """What a profile asks for that Bottlerocket's built-in plugin cannot be told.

    Its settings have replicas and rename-by-default for both strategies, but
    fail-requests-greater-than-one only for time-slicing (its MPS always fails them).
    """
    if profile.strategy == "mps" and profile.fail_requests_greater_than_one is False:
        return [
            f"profile '{profile_name}' sets failRequestsGreaterThanOne: false with MPS, which "
            "Bottlerocket's settings cannot express (its MPS always refuses requests for more "
            "than one replica): leave it unset or use the AL2023 NVIDIA AMI"
        ]
    return []
