"""The GPU sharing benchmark, run in the cluster: one Job per chosen GPU node group."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from eks_gpu_slicing import facts
from eks_gpu_slicing.builders.workloads import (
    BENCHMARK_APP_LABEL,
    benchmark_job,
    benchmark_package_data,
    benchmark_run_args,
    benchmark_sizing,
)
from eks_gpu_slicing.settings import BenchmarkSettings, GpuNodeGroupSettings, SharingProfile
from eks_gpu_slicing.settings.stack_files import ROOT

BENCHMARK_PACKAGE_DIR = ROOT / "benchmarks" / "sharing" / "bench"


def read_benchmark_package() -> dict[str, str]:
    """The benchmark package's modules as ConfigMap data (file name -> source)."""
    return benchmark_package_data(
        {path.name: path.read_text() for path in BENCHMARK_PACKAGE_DIR.glob("*.py")}
    )


@dataclass(frozen=True)
class SharingBenchmarkArgs:
    provider: k8s.Provider
    settings: BenchmarkSettings
    # group name -> (group, its profile)
    groups: Mapping[str, tuple[GpuNodeGroupSettings, SharingProfile]]
    depends_on: Sequence[pulumi.Resource] = ()


class SharingBenchmark(pulumi.ComponentResource):
    """The benchmark package (benchmarks/sharing/bench), mounted from a ConfigMap into a
    pinned PyTorch image and run by its own entry point; results end up in each Job's log
    in the committed CSV format."""

    def __init__(
        self, name: str, args: SharingBenchmarkArgs, opts: pulumi.ResourceOptions | None = None
    ):
        super().__init__(f"{facts.COMPONENT_PACKAGE}:workloads:SharingBenchmark", name, None, opts)
        # Everything waits for the namespace (when created) and the GPU nodes.
        k8s_opts = pulumi.ResourceOptions(
            parent=self, provider=args.provider, depends_on=list(args.depends_on)
        )
        package = read_benchmark_package()
        script = k8s.core.v1.ConfigMap(
            f"{name}-script",
            metadata={"namespace": args.settings.namespace, "labels": {"app": BENCHMARK_APP_LABEL}},
            data=package,
            opts=k8s_opts,
        )
        script_name = script.metadata.apply(lambda m: m["name"])
        s = args.settings
        self.jobs = {}
        for group_name, (group, profile) in args.groups.items():
            sizing = benchmark_sizing(group.instance, profile, s.models, s.modes)
            manifest = benchmark_job(
                group_name=group_name,
                group=group,
                profile=profile,
                image=s.image,
                namespace=args.settings.namespace,
                package_config_map=script_name,
                modules=list(package),
                sizing=sizing,
                run_args=benchmark_run_args(
                    clients=sizing.clients,
                    models=s.models,
                    modes=s.modes,
                    duration_s=s.duration_seconds,
                    repetitions=s.repetitions,
                ),
            )
            # Auto-named and replaced on any change: a new script or setting re-runs it.
            self.jobs[group_name] = k8s.batch.v1.Job(
                f"{name}-{group_name}",
                metadata=manifest["metadata"],
                spec=manifest["spec"],
                opts=k8s_opts,
            )
        self.job_names = {
            group: job.metadata.apply(lambda m: m["name"]) for group, job in self.jobs.items()
        }
        self.register_outputs({"jobNames": self.job_names})
