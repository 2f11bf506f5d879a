"""The evaluation report of a trained model as files: report.json and a reliability diagram (PNG)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPORT = "report.json"
RELIABILITY = "reliability.png"


def write_json(path: Path, report: Mapping[str, Any]) -> None:
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")


def reliability_png(path: Path, bins: Sequence[Mapping[str, float]], title: str) -> None:
    """Plot predicted against actual CTR per bin (evaluate.reliability), with 95% intervals.

    A calibrated model's points lie on the diagonal; the bidder's prices are off by the same factor as
    a point is off it.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, whatever the environment says
    import matplotlib.pyplot as plt

    predicted = [b["predicted_ctr"] for b in bins]
    actual = [b["actual_ctr"] for b in bins]
    below = [b["actual_ctr"] - b["actual_low"] for b in bins]
    above = [b["actual_high"] - b["actual_ctr"] for b in bins]
    top = max([*predicted, *(b["actual_high"] for b in bins), 1e-4]) * 1.1
    figure, axes = plt.subplots(figsize=(5.5, 5.5), dpi=100)
    try:
        axes.plot([0, top], [0, top], color="0.6", linestyle="--", linewidth=1, label="calibrated")
        axes.errorbar(predicted, actual, yerr=[below, above], fmt="o", color="C0", capsize=3, label="bins")
        axes.set_xlim(0, top)
        axes.set_ylim(0, top)
        axes.set_xlabel("predicted CTR (bin mean)")
        axes.set_ylabel("actual CTR (95% interval)")
        axes.set_title(title, fontsize=10)
        axes.legend(loc="upper left")
        axes.grid(True, linewidth=0.3)
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
