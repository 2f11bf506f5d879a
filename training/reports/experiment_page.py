"""The files of `personabid report experiment`: DIR/experiment.json (the result as computed),
DIR/experiment.csv (one row per metric and arm) and DIR/report.html, the page a marketer opens: the
sample-ratio verdict on top, the units per arm, each treatment arm's relative lift per metric as interval
bars, and the table of every number (self-contained, from reports/html.py's and charts.py's primitives).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """`value` for JSON: numpy numbers as Python's, NaN and infinities as null."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


CSV_FIELDS = (
    "metric",
    "kind",
    "arm",
    "value",
    "ci_low",
    "ci_high",
    "lift_abs",
    "lift_abs_low",
    "lift_abs_high",
    "lift_rel",
    "lift_rel_low",
    "lift_rel_high",
    "p",
    "p_holm",
    "significant",
    "lift_abs_seq_low",
    "lift_abs_seq_high",
    "lift_rel_seq_low",
    "lift_rel_seq_high",
    "p_seq",
)


def csv_rows(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (metric, arm), as experiment.csv lists them."""

    def end(pair: Sequence[Any] | None, i: int) -> Any:
        return None if pair is None else pair[i]

    return [
        {
            "metric": m["name"],
            "kind": m["kind"],
            "arm": m["arm"],
            "value": m["value"],
            "ci_low": end(m["ci"], 0),
            "ci_high": end(m["ci"], 1),
            "lift_abs": m["lift_abs"],
            "lift_abs_low": end(m["lift_abs_ci"], 0),
            "lift_abs_high": end(m["lift_abs_ci"], 1),
            "lift_rel": m["lift_rel"],
            "lift_rel_low": end(m["lift_rel_ci"], 0),
            "lift_rel_high": end(m["lift_rel_ci"], 1),
            "p": m["p"],
            "p_holm": m["p_holm"],
            "significant": m["significant"],
            "lift_abs_seq_low": end(m.get("lift_abs_ci_seq"), 0),
            "lift_abs_seq_high": end(m.get("lift_abs_ci_seq"), 1),
            "lift_rel_seq_low": end(m.get("lift_rel_ci_seq"), 0),
            "lift_rel_seq_high": end(m.get("lift_rel_ci_seq"), 1),
            "p_seq": m.get("p_seq"),
        }
        for m in result["metrics"]
    ]


def write(out: Path, result: Mapping[str, Any], source: str = "") -> list[Path]:
    """Write DIR/experiment.json, DIR/experiment.csv and DIR/report.html (each atomically)."""
    from personabid.artifact import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "experiment.json", out / "experiment.csv", out / "report.html"]
    write_atomic(paths[0], (json.dumps(plain(dict(result)), indent=2, allow_nan=False) + "\n").encode())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in csv_rows(result):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    write_atomic(paths[1], text.getvalue().encode())
    write_atomic(paths[2], render(result, source).encode())
    return paths


def render(result: Mapping[str, Any], source: str = "") -> str:
    """The report page: the sample-ratio verdict on top, then units per arm, each treatment arm's relative
    lift per metric as interval bars, and the table of every number. Self-contained (reports/html.py,
    charts.py)."""
    from personabid.training.reports import charts, html

    srm, arms, window = result["srm"], result["arms"], result["window"]
    observed = ", ".join(f"{a['name']} {a['units']:,} ({a['share']:.0%} planned)" for a in arms)
    check = html.verdict(
        srm["verdict"] == "ok",
        f"Sample ratio {'as planned' if srm['verdict'] == 'ok' else 'MISMATCH: do not trust the lifts'}",
        f"units per arm: {observed}; chi-square {_number(srm['chi2'])}, p = {_number(srm['p'])} "
        f"(a mismatch is p < {srm['alpha']}); planned shares: {result['shares_source']}.",
    )
    interval = "lift_rel_ci_seq" if result["sequential"] else "lift_rel_ci"
    bars = [
        {
            "metric": m.get("label") or m["name"],
            "arm": m["arm"],
            "estimate": m["lift_rel"],
            "low": (m.get(interval) or [None, None])[0],
            "high": (m.get(interval) or [None, None])[1],
            "significant": m["significant"],
            "p_value": m["p_holm"],
        }
        for m in result["metrics"]
        if m["arm"] != result["control"]
    ]
    kind = "always-valid" if result["sequential"] else f"{1 - result['alpha']:.0%}"
    table_rows = [
        {
            "metric": m.get("label") or m["name"],
            "arm": m["arm"],
            "value": m["value"],
            "CI": _pair(m["ci"]),
            "lift": m["lift_rel"],
            "lift CI": _pair(m.get(interval) if m["lift_rel"] is not None else None, percent=True),
            "p": m["p"],
            "p (Holm)": m["p_holm"],
            "significant": "yes" if m["significant"] else ("" if m["significant"] is None else "no"),
        }
        for m in result["metrics"]
    ]
    sections = [
        check,
        html.section(
            "Arms",
            html.tiles([(a["name"], a["units"], "int") for a in arms]),
            html.table(
                arms,
                columns=ARM_COLUMNS,
                formats={"share": ".0%", "revenue": "usd", "spend": "usd", "bids": ",.0f"},
                title="Units and totals per arm",
                csv_name="arms.csv",
            ),
        ),
        html.section(
            f"Relative lift against {result['control']}",
            charts.interval_bars(
                f"Relative lift with {kind} intervals", bars, value_format=".1%", x_label="relative lift"
            ),
            note=f"Significant: Holm-adjusted p < {result['alpha']} over all {len(bars)} comparisons.",
        ),
        html.section(
            "Metrics",
            html.table(
                table_rows,
                formats={
                    "lift": ".2%",
                    "p": ".3g",
                    "p (Holm)": ".3g",
                    "value": ".4g",
                },
                csv_name="metrics.csv",
            ),
        ),
        html.section("Notes", *(html.paragraph(n) for n in result["notes"] or ["None."])),
    ]
    return html.page(
        f"Experiment {result['experiment']}",
        sections,
        source=source or None,
        subtitle=f"control: {result['control']}; "
        + (
            f"from {_when(window['since'])} to {_when(window['until'])}"
            if window["since"] is not None or window["until"] is not None
            else "the whole log"
        ),
    )


ARM_COLUMNS = {
    "name": "arm",
    "share": "share",
    "units": "units",
    "bids": "bids",
    "wins": "wins",
    "impressions": "impressions",
    "clicks": "clicks",
    "conversions": "conversions",
    "revenue": "revenue",
    "spend": "spend",
}


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "open"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: Any) -> str:
    return "n/a" if value is None or not math.isfinite(float(value)) else f"{float(value):.3g}"


def _pair(pair: Sequence[Any] | None, percent: bool = False) -> str:
    if not pair or pair[0] is None or pair[1] is None:
        return ""
    if percent:
        return f"[{pair[0]:.2%}, {pair[1]:.2%}]"
    return f"[{pair[0]:.4g}, {pair[1]:.4g}]"
