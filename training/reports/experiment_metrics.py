"""What `personabid report experiment` measures per arm, and how each treatment arm is compared with the
control (the statistics themselves are in stats.py).

Every metric is computed from per-unit sums (UNIT_COLUMNS; the unit is the user, or the auction for
requests without one): per-unit means (clicks, conversions, revenue, spend per user), tested with Welch's
t, and ratios of per-unit sums (win rate, CTR, conversions per click, CPC, ROAS), whose variance comes from
the delta method because the impressions of one user are not independent. Every p-value of every
treatment arm and metric goes through Holm's correction; `significant` is p_holm < alpha. With a
pre-period the per-unit means are CUPED-adjusted; with `sequential` the intervals are always valid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from personabid.training.reports import stats
from personabid.training.reports.experiment_page import plain

SRM_ALPHA = 0.001
# The always-valid intervals' mixing distribution, N(0, tau2), in units of the comparison's per-unit
# variance (tau2 = SEQUENTIAL_EFFECT_SD^2 * Var(estimate) / (1/n_t + 1/n_c)): effects of about 5 % of a
# standard deviation per user, which makes the interval tightest near 6,400 users per arm (stats.py).
SEQUENTIAL_EFFECT_SD = 0.05

# The per-unit sums `unit_sums` computes, in this order.
UNIT_COLUMNS = (
    "bids",
    "wins",
    "impressions",
    "clicks",
    "conversions",
    "conversions_post_click",
    "revenue",
    "spend",
)


@dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # "mean" (per unit) or "ratio" (of per-unit sums)
    numerator: str  # a UNIT_COLUMNS name
    denominator: str = ""  # ratio only
    label: str = ""
    fmt: str = ".4g"


METRICS = (
    Metric("win_rate", "ratio", "wins", "bids", "win rate", ".2%"),
    Metric("ctr", "ratio", "clicks", "impressions", "CTR", ".3%"),
    Metric("clicks_per_user", "mean", "clicks", label="clicks per user"),
    Metric("conversions_per_user", "mean", "conversions", label="conversions per user"),
    Metric("revenue_per_user", "mean", "revenue", label="revenue per user (USD)"),
    Metric("spend_per_user", "mean", "spend", label="spend per user (USD)"),
    Metric("conversion_rate", "ratio", "conversions_post_click", "clicks", "conversions per click", ".2%"),
    Metric("cpc", "ratio", "spend", "clicks", "CPC (USD)"),
    Metric("roas", "ratio", "revenue", "spend", "ROAS"),
)


def by_arm(sums: Mapping[str, np.ndarray], notes: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """The per-unit sums split by arm, without the units seen in more than one arm."""
    unit = sums["unit"].astype(object)
    seen, count = np.unique(unit, return_counts=True)
    conflicted = set(seen[count > 1].tolist())
    keep = np.array([u not in conflicted for u in unit], dtype=bool)
    if conflicted:
        notes.append(f"{len(conflicted):,} units were seen in more than one arm and are left out.")
    arm = sums["arm"].astype(object)
    return {
        str(a): {c: np.asarray(sums[c][keep & (arm == a)]) for c in ("unit", *UNIT_COLUMNS)}
        for a in np.unique(arm[keep])
    }


def sample_ratio(users: Sequence[int], shares: Sequence[float]) -> dict[str, Any]:
    test = stats.sample_ratio_test(users, shares)
    return {
        "chi2": test.chi2,
        "df": test.df,
        "p": test.p,
        "expected": list(test.expected),
        "observed": list(users),
        "verdict": "mismatch" if test.p < SRM_ALPHA else "ok",
        "alpha": SRM_ALPHA,
    }


def covariates_of(
    per_arm: Mapping[str, Mapping[str, np.ndarray]], prior: Mapping[str, np.ndarray]
) -> dict[str, dict[str, np.ndarray]]:
    """Per arm and unit column: the same unit's pre-period sum (0 without one), aligned with per_arm."""
    index = {u: i for i, u in enumerate(prior["unit"].tolist())}
    aligned = {}
    for arm, columns in per_arm.items():
        rows = np.array([index.get(u, -1) for u in columns["unit"].tolist()], dtype=np.int64)
        aligned[arm] = {
            c: np.where(rows >= 0, np.asarray(prior[c], dtype=np.float64)[np.maximum(rows, 0)], 0.0)
            if len(prior[c])
            else np.zeros(len(rows))
            for c in UNIT_COLUMNS
        }
    return aligned


def metrics_of(
    per_arm: Mapping[str, Mapping[str, np.ndarray]],
    control: str,
    alpha: float,
    sequential: bool,
    covariates: Mapping[str, Mapping[str, np.ndarray]] | None,
) -> list[dict[str, Any]]:
    z = float(stats.normal_ppf(1.0 - alpha / 2.0))
    rows: list[dict[str, Any]] = []
    for metric in METRICS:
        adjusted = None
        if metric.kind == "mean" and covariates is not None:
            names = list(per_arm)
            outcomes, theta = stats.cuped(
                [per_arm[a][metric.numerator] for a in names],
                [covariates[a][metric.numerator] for a in names],
            )
            adjusted = dict(zip(names, outcomes, strict=True))
        for arm, columns in per_arm.items():
            row: dict[str, Any] = {
                "name": metric.name,
                "label": metric.label or metric.name,
                "kind": metric.kind,
                "arm": arm,
            }
            if metric.kind == "mean":
                value, low, high = stats.mean_interval(columns[metric.numerator], alpha)
            else:
                value, variance = stats.ratio_estimate(columns[metric.numerator], columns[metric.denominator])
                half = z * math.sqrt(variance) if variance >= 0 else math.nan
                low, high = value - half, value + half
            row.update(value=value, ci=[low, high])
            if arm != control:
                row.update(
                    _lift(metric, columns, per_arm[control], alpha, sequential, adjusted, arm, control)
                )
                if adjusted is not None:
                    row["cuped_theta"] = theta
            rows.append(row)
    treated = [r for r in rows if r["arm"] != control]
    key = "p_seq" if sequential else "p"
    adjusted_p = stats.holm([r[key] for r in treated])
    for r, p_holm in zip(treated, adjusted_p.tolist(), strict=True):
        r["p_holm"] = p_holm
        r["significant"] = bool(p_holm < alpha)
    for r in rows:
        if r["arm"] == control:
            r.update(
                lift_abs=None,
                lift_abs_ci=None,
                lift_rel=None,
                lift_rel_ci=None,
                p=None,
                p_holm=None,
                significant=None,
            )
    return [plain(r) for r in rows]


def _lift(
    metric: Metric,
    treatment: Mapping[str, np.ndarray],
    control: Mapping[str, np.ndarray],
    alpha: float,
    sequential: bool,
    adjusted: Mapping[str, np.ndarray] | None,
    arm: str,
    control_arm: str,
) -> dict[str, Any]:
    if metric.kind == "mean":
        y_t = adjusted[arm] if adjusted is not None else treatment[metric.numerator]
        y_c = adjusted[control_arm] if adjusted is not None else control[metric.numerator]
        lift = stats.welch_test(y_t, y_c, alpha)
    else:
        lift = stats.ratio_test(
            treatment[metric.numerator],
            treatment[metric.denominator],
            control[metric.numerator],
            control[metric.denominator],
            alpha,
        )
    row: dict[str, Any] = {
        "lift_abs": lift.lift_abs,
        "lift_abs_ci": list(lift.lift_abs_ci),
        "lift_rel": lift.lift_rel,
        "lift_rel_ci": list(lift.lift_rel_ci),
        "p": lift.p,
    }
    if sequential:
        n_t, n_c = len(treatment["unit"]), len(control["unit"])
        scale = SEQUENTIAL_EFFECT_SD**2 / (1.0 / n_t + 1.0 / n_c) if n_t and n_c else math.nan
        variance = float(lift.treatment_var + lift.control_var)
        z = float(stats.normal_ppf(1.0 - alpha / 2.0))
        rel_variance = ((float(lift.lift_rel_ci[1]) - float(lift.lift_rel_ci[0])) / (2 * z)) ** 2
        if math.isfinite(variance * scale) and variance > 0:
            row["lift_abs_ci_seq"] = list(
                stats.sequential_interval(lift.lift_abs, variance, variance * scale, alpha)
            )
            row["p_seq"] = stats.sequential_p(lift.lift_abs, variance, variance * scale)
        else:
            row["lift_abs_ci_seq"], row["p_seq"] = [math.nan, math.nan], math.nan
        if math.isfinite(rel_variance * scale) and rel_variance > 0:
            row["lift_rel_ci_seq"] = list(
                stats.sequential_interval(lift.lift_rel, rel_variance, rel_variance * scale, alpha)
            )
        else:
            row["lift_rel_ci_seq"] = [math.nan, math.nan]
    return row
