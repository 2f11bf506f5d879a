"""PNG plots of a suite's results: the latency CDFs (gRPC unary and stream, HTTP), and p99 against offered
load.

The CDF's vertical axis is the HDR convention: percentiles spaced by their nines (50, 90, 99, 99.9),
because the tail is what is compared. matplotlib draws off-screen (Agg): the suite runs headless.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

LATENCY_CDF = "latency_cdf.png"
P99_VS_LOAD = "p99_vs_offered_load.png"
# Each panel of the CDFs: (rpc, the service of its floor, the floor's label, the panel's title)
CDF_PANELS = (
    ("unary", "echo", "gRPC echo (floor)", "gRPC unary, closed loop"),
    ("stream", "echo", "gRPC echo (floor)", "gRPC stream, closed loop"),
    ("http", "http-echo", "HTTP echo (floor)", "HTTP (OpenRTB JSON), closed loop"),
)


def write_plots(results: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    figure = _latency_cdf(plt, results["runs"])
    figure.savefig(out / LATENCY_CDF, dpi=110)
    plt.close(figure)
    written.append(LATENCY_CDF)
    figure = _p99_vs_load(plt, results["summary"]["sweep"]["curves"], results["plan"]["sweep_size"])
    figure.savefig(out / P99_VS_LOAD, dpi=110)
    plt.close(figure)
    written.append(P99_VS_LOAD)
    return written


def _nines(percentile: float) -> float:
    return -math.log10(max(1e-6, 1.0 - percentile / 100.0))


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The run with the median p99 among repeats, so that the curve drawn is a typical one."""
    ranked = sorted((r for r in runs if r["cdf"]), key=lambda r: r["latency"]["p99_us"])
    return ranked[len(ranked) // 2] if ranked else None


def _latency_cdf(plt: Any, runs: list[dict[str, Any]]) -> Any:
    figure, axes = plt.subplots(1, len(CDF_PANELS), figsize=(18, 5), sharey=True)
    for axis, (rpc, floor, floor_label, title) in zip(axes, CDF_PANELS, strict=True):
        chosen = [r for r in runs if r["block"] == "catalog" and r["rpc"] == rpc and r["mode"] == "closed"]
        sizes = sorted({r["campaigns"] for r in chosen})
        lines: list[tuple[str, list[dict[str, Any]], str | None]] = [
            (floor_label, [r for r in chosen if r["service"] == floor], "black")
        ]
        lines += [
            (
                f"bidder, {c:,} campaigns",
                [r for r in chosen if r["service"] == "bidder" and r["campaigns"] == c],
                None,
            )
            for c in sizes
        ]
        for label, group, colour in lines:
            run = _median_run(group)
            if run is None:
                continue
            xs = [latency / 1000.0 for _, latency in run["cdf"]]
            ys = [_nines(p) for p, _ in run["cdf"]]
            axis.plot(xs, ys, label=label, color=colour, linestyle="--" if colour else "-")
        axis.set_xscale("log")
        axis.set_xlabel("latency (ms, log)")
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=8)
    ticks = [50, 90, 99, 99.9, 99.99]
    axes[0].set_yticks([_nines(p) for p in ticks], [f"{p:g}%" for p in ticks])
    axes[0].set_ylabel("percentile")
    figure.suptitle("Latency distribution: bidder against the echo floor (same run)")
    figure.tight_layout()
    return figure


def _p99_vs_load(plt: Any, curves: dict[str, list[dict[str, Any]]], campaigns: int) -> Any:
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for name, colour in (("echo", "black"), ("bidder", "tab:blue")):
        points = [p for p in curves.get(name, []) if p["p99_us"] is not None]
        if not points:
            continue
        offered = [p["offered_rps"] for p in points]
        left.plot(
            offered, [p["p99_us"] / 1000.0 for p in points], marker="o", color=colour, label=f"{name} p99"
        )
        left.plot(
            offered, [p["p50_us"] / 1000.0 for p in points], marker=".", linestyle=":", color=colour,
            label=f"{name} p50",
        )  # fmt: skip
        right.plot(offered, [p["throughput_rps"] for p in points], marker="o", color=colour, label=name)
    left.set_yscale("log")
    left.set_xlabel("offered load (requests/s, Poisson arrivals)")
    left.set_ylabel("latency (ms, log)")
    left.set_title(f"Latency against offered load ({campaigns:,} campaigns, unary)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(fontsize=8)
    top = max([p["offered_rps"] for c in curves.values() for p in c] or [1.0])
    right.plot([0, top], [0, top], color="grey", linestyle=":", label="answered = offered")
    right.set_xlabel("offered load (requests/s)")
    right.set_ylabel("answered (requests/s)")
    right.set_title("Throughput against offered load")
    right.grid(True, alpha=0.3)
    right.legend(fontsize=8)
    figure.tight_layout()
    return figure
