"""A results CSV as a PNG: aggregate throughput and ratio to exclusive over N, per model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .cases import sort_results
from .records import RATIO_INTERLEAVED, STATUS_OK, STATUS_OOM, Result

MODE_LABEL = {
    "mps-limited": "mps-limited (device-plugin limits)",
    "hami": "hami (HAMi-core memory cap)",
}
MODE_STYLE = {
    "time-slicing": ("tab:red", "o"),
    "mps": ("tab:blue", "s"),
    "mps-limited": ("tab:green", "^"),
    "hami": ("tab:purple", "D"),
}


def plot_results(results: Sequence[Result], out_png: Path | str) -> Path:
    """One row per model: throughput vs exclusive, and p99 latency, against N; one line per
    mode. The time-slicing line starts at the exclusive point (one time-sliced process is
    exclusive use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = sort_results(results)
    if not results:
        raise ValueError("nothing to plot")
    models = list(dict.fromkeys(r.model for r in results))
    modes = [m for m in dict.fromkeys(r.mode for r in results) if m != "exclusive"]
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 3.6 * len(models)), squeeze=False)
    all_n = sorted({r.clients for r in results})
    for row, model in enumerate(models):
        ax_tp, ax_lat = axes[row]
        rows = [r for r in results if r.model == model]
        base = next((r for r in rows if r.mode == "exclusive" and r.status == STATUS_OK), None)
        for mode in modes:
            color, marker = MODE_STYLE.get(mode, ("tab:gray", "x"))
            pts = [r for r in rows if r.mode == mode and r.status == STATUS_OK]
            if mode == "time-slicing" and base is not None:
                pts = [base, *pts]
            pts.sort(key=lambda r: r.clients)
            xs = [r.clients for r in pts]
            if pts and all(r.ratio_vs_exclusive is not None for r in pts):
                ratios = [r.ratio_vs_exclusive for r in pts]
                ax_tp.plot(xs, ratios, marker=marker, color=color, label=MODE_LABEL.get(mode, mode))
                if all(r.ratio_low is not None for r in pts):
                    # The shaded band reaches down to the low end the planner uses.
                    lows = [r.ratio_low for r in pts]
                    ax_tp.fill_between(xs, lows, ratios, color=color, alpha=0.15, linewidth=0)
            if pts:
                ax_lat.plot(
                    xs,
                    [r.p99_ms for r in pts],
                    marker=marker,
                    color=color,
                    label=MODE_LABEL.get(mode, mode),
                )
        if base is not None:
            star = {"marker": "*", "markersize": 13, "color": "black", "linestyle": "none"}
            ax_tp.plot([1], [1.0], label="exclusive", **star)
            ax_lat.plot([1], [base.p99_ms], label="exclusive", **star)
        for r in rows:
            if r.status == STATUS_OOM:  # failed cases are marked, never silently left out
                color = MODE_STYLE.get(r.mode, ("black", ""))[0]
                for ax in (ax_tp, ax_lat):
                    ax.annotate(
                        f"{r.mode} OOM",
                        (r.clients, 0.05),
                        xycoords=("data", "axes fraction"),
                        color=color,
                        rotation=90,
                        ha="center",
                        fontsize=8,
                    )
        ax_tp.axhline(1.0, color="gray", linestyle="--", linewidth=0.8)
        title = f"{model}: aggregate throughput / exclusive"
        if base is not None and base.baseline_spread_pct is not None:
            runs, spread = base.baseline_runs, base.baseline_spread_pct
            if base.ratio_method == RATIO_INTERLEAVED and base.reference_launch_ms is not None:
                title += (
                    f"\n(at a host launching one iteration in {base.reference_launch_ms:g} ms; "
                    f"{runs} interleaved baseline windows)"
                )
            elif base.ratio_method == RATIO_INTERLEAVED:
                title += f"\n(baseline: mean of {runs} interleaved windows; thirds {spread:.1f}%)"
            else:
                title += f"\n(baseline: median of {runs} runs, spread {spread:.1f}%)"
        ax_tp.set_title(title)
        ax_tp.set_ylabel("× exclusive (N=1)")
        ax_tp.set_ylim(bottom=0)
        ax_lat.set_title(f"{model}: p99 latency per process")
        ax_lat.set_ylabel("ms")
        ax_lat.set_ylim(bottom=0)
        for ax in (ax_tp, ax_lat):
            ax.set_xlabel("concurrent processes N")
            ax.set_xticks(all_n)
            ax.set_xlim(0.5, max(all_n) + 0.5)
            ax.grid(True, alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
    first = results[0]
    if first.ratio_method == RATIO_INTERLEAVED:
        shared = [
            r.repetitions
            for r in results
            if r.ratio_method == RATIO_INTERLEAVED and r.mode != "exclusive"
        ]
        rounds = max(shared, default=first.repetitions)
        how = f"interleaved: {rounds} rounds of {first.duration_s:g} s windows"
    else:
        how = f"median of {first.repetitions} × {first.duration_s:g} s"
    fig.suptitle(
        f"GPU sharing benchmark: {first.gpu}, driver {first.driver}, torch {first.torch}, "
        f"{first.date} ({how})",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
