"""Sharing profiles: how each physical GPU is advertised, the single source of truth."""

from __future__ import annotations

from typing import Literal

from pydantic import field_validator, model_validator

from eks_gpu_slicing import facts
from eks_gpu_slicing.settings.base import _Settings

SharingStrategy = Literal["time-slicing", "none"]

# --- Sharing profiles ---------------------------------------------------------------------


class SharingProfile(_Settings):
    """How each physical GPU on a node is advertised: one device, or `replicas` virtual ones."""

    strategy: SharingStrategy = "time-slicing"
    replicas: int | None = None
    rename_by_default: bool = False
    fail_requests_greater_than_one: bool = False

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
            self.rename_by_default or self.fail_requests_greater_than_one
        ):
            raise ValueError(
                "renameByDefault and failRequestsGreaterThanOne only apply to shared GPUs"
            )
        return self

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
