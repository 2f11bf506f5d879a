"""Slow, plain-Python references for the reports over the event log, from the definitions, one line at a time:
what `report kpis` (training/reports/kpis.py) and `report experiment` (training/reports/experiment.py) must
compute from the same lines. The tests of each report and the end-to-end test of the measurement loop hold
the reports to them.

- `read_back`: the lines of the log's files, as the reports read them;
- `attributed`: the funnel of a window: bid lines, won bids (touches) with their billing and first click, and
  the deduplicated conversions attributed last touch (C1);
- `kpi_reference`: every group's KPIs; `check_against_reference` compares a KPI report with it;
- `experiment_units`: an experiment's per-arm, per-unit sums; `experiment_reference`: its metrics, lifts,
  p-values (scipy on the per-unit arrays, Holm by statsmodels) and sample-ratio test (scipy's chi-square).
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats.multitest import multipletests  # type: ignore[import-untyped]

from personabid.training.reports import kpis

DAY = 86_400.0
HOUR = 3_600.0

Line = dict[str, Any]


def read_back(files: Sequence[Path]) -> list[Line]:
    """Every readable line of the files, in the order the report reads them."""
    lines = []
    for path in files:
        for text in path.read_text().splitlines():
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue
    return lines


# ---- the funnel, attributed ---------------------------------------------------------------------------


def identity(line: Line) -> tuple[str, str, str]:
    return (line.get("request_id", ""), line.get("imp_id", ""), line.get("campaign", ""))


@dataclass
class Funnel:
    inside: list[tuple[int, Line]]  # (position in the log, line) of every line in the window
    bids: list[Line]
    # One per won bid: its win line with "line", "seen", "impression", "click_ts" and "spend".
    touches: list[Line]
    conversions: list[Line]  # attributed ones: the touch with "kind", "value", "when", "buyer"


def attributed(
    lines: Sequence[Line],
    click_window: float,
    view_window: float,
    since: float = -math.inf,
    until: float = math.inf,
    kept: Callable[[Line], bool] = lambda line: True,
) -> Funnel:
    """The funnel of the lines in [since, until); `kept` chooses the bid and win lines that count (an
    experiment counts only those recording one of its arms)."""
    inside = [(i, line) for i, line in enumerate(lines) if since <= line["ts"] < until]
    bids = [line for _, line in inside if line["event"] == "bid" and kept(line)]
    wins: dict[Any, tuple[int, Line]] = {}
    for i, line in inside:
        if line["event"] == "win" and kept(line):
            k = identity(line) if line.get("request_id") else i
            if k not in wins or (line["ts"], i) < (wins[k][1]["ts"], wins[k][0]):
                wins[k] = (i, line)
    billed = {identity(line) for _, line in inside if line["event"] == "billing"}
    clicked: dict[tuple[str, str, str], float] = {}
    for _, line in inside:
        if line["event"] == "click":
            clicked[identity(line)] = min(clicked.get(identity(line), math.inf), line["ts"])
    touches = []
    for i, line in wins.values():
        touches.append(
            {
                **line,
                "line": i,
                "seen": line.get("notice_ts", line["ts"]),
                "impression": identity(line) in billed or not billed,
                "click_ts": clicked.get(identity(line)),
                "spend": line["price"] / 1000.0,
            }
        )
    firsts: dict[tuple[str, str], tuple[int, Line]] = {}
    for i, line in inside:
        if line["event"] == "conversion" and line.get("order_id"):
            order = (line["advertiser"], line["order_id"])
            if order not in firsts or (line["ts"], i) < (firsts[order][1]["ts"], firsts[order][0]):
                firsts[order] = (i, line)
    conversions = []
    for _, c in firsts.values():
        chosen, kind = None, None
        if c.get("request_id") and c.get("campaign"):
            named = [t for t in touches if identity(t) == identity(c)]
            if named:
                chosen = named[0]
                kind = (
                    "post_click"
                    if chosen["click_ts"] is not None and chosen["click_ts"] <= c["ts"]
                    else "post_view"
                )
        elif c["user"]:
            mine = [t for t in touches if t["user"] == c["user"] and t["advertiser"] == c["advertiser"]]
            by_click = [
                t
                for t in mine
                if t["click_ts"] is not None
                and t["click_ts"] <= c["ts"]
                and c["ts"] - t["click_ts"] <= click_window
            ]
            by_view = [
                t
                for t in mine
                if t["impression"] and t["seen"] <= c["ts"] and c["ts"] - t["seen"] <= view_window
            ]
            if by_click:
                chosen, kind = max(by_click, key=lambda t: (t["click_ts"], t["line"])), "post_click"
            elif by_view:
                chosen, kind = max(by_view, key=lambda t: (t["seen"], t["line"])), "post_view"
        if chosen is not None:
            conversions.append(
                {
                    **chosen,
                    "kind": kind,
                    "value": c["value_usd"],
                    "when": c["ts"],
                    "buyer": c["user"] or chosen["user"],
                }
            )
    return Funnel(inside, bids, touches, conversions)


# ---- KPIs ---------------------------------------------------------------------------------------------


def day_of(ts: float) -> str:
    return kpis._day_name(int(ts // DAY))


def groups_of(dimension: str, fact: Line) -> list[str]:
    if dimension == "all":
        return ["all"]
    if dimension == "arm":
        return list(fact.get("arms") or []) or ["none"]
    if dimension == "source":
        return ["+".join(fact["sources"])] if fact.get("sources") else ["none"]
    if dimension == "day":
        return [day_of(fact["ts"])]
    if dimension == "hour":
        return [f"{int((fact['ts'] % DAY) // HOUR):02d}"]
    if dimension == "device":
        return [str(fact["devicetype"])] if fact.get("devicetype") is not None else ["unknown"]
    return [fact.get(dimension) or "unknown"]


def kpi_reference(
    lines: list[Line],
    click_window: float,
    view_window: float,
    budgets: kpis.Budgets,
    since: float = -math.inf,
    until: float = math.inf,
) -> dict[tuple[str, str], dict[str, Any]]:
    """Every group's KPIs, from the definitions, one line at a time."""
    funnel = attributed(lines, click_window, view_window, since, until)
    bids, touches, conversions = funnel.bids, funnel.touches, funnel.conversions
    days = defaultdict(list)
    for _, line in funnel.inside:
        if line["event"] in ("bid", "win"):
            days[int(line["ts"] // DAY)].append(int((line["ts"] % DAY) // HOUR))
    spans = {d: (min(h), max(h)) for d, h in days.items()}

    out: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(float))
    hourly: dict[tuple[str, str], dict[tuple[int, int], float]] = defaultdict(lambda: defaultdict(float))
    reached: dict[tuple[str, str], set[str]] = defaultdict(set)
    buyers: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    out[("all", "all")]["bids"] = 0.0  # the total is there even for a log without a bid
    for dimension in (*kpis.DIMENSIONS, "all"):
        for b in bids:
            for g in groups_of(dimension, b):
                out[(dimension, g)]["bids"] += 1.0 / b["sample"]
        for t in touches:
            for g in groups_of(dimension, t):
                o = out[(dimension, g)]
                o["wins"] += 1
                o["impressions"] += t["impression"]
                o["clicks"] += t["click_ts"] is not None
                o["spend"] += t["spend"]
                if t["impression"] and t["user"]:
                    reached[(dimension, g)].add(t["user"])
                hourly[(dimension, g)][(int(t["ts"] // DAY), int((t["ts"] % DAY) // HOUR))] += t["spend"]
        for c in conversions:
            for g in groups_of(dimension, c):
                o = out[(dimension, g)]
                o["conversions"] += 1
                o[f"conversions_{c['kind']}"] += 1
                o["revenue_usd"] += c["value"]
                if c["buyer"]:
                    buyers[(dimension, g)][c["buyer"]].append(c["when"])
    result = {}
    for (dimension, g), o in out.items():
        o["users_reached"] = len(reached[(dimension, g)])
        o["converting_users"] = len(buyers[(dimension, g)])
        o["repurchasing_users"] = sum(
            1
            for times in buyers[(dimension, g)].values()
            if any(b - a <= click_window for a, b in zip(sorted(times), sorted(times)[1:], strict=False))
        )
        o["win_rate"] = o["wins"] / o["bids"] if o["bids"] else None
        o["ctr"] = o["clicks"] / o["impressions"] if o["impressions"] else None
        o["roas"] = o["revenue_usd"] / o["spend"] if o["spend"] else None
        o["ecpa"] = o["spend"] / o["conversions"] if o["conversions"] else None
        o["aov"] = o["revenue_usd"] / o["conversions"] if o["conversions"] else None
        n_days = 1 if dimension == "day" else len(spans)
        running = {line["campaign"] for line in bids} | {t["campaign"] for t in touches}
        budget = None
        if dimension == "campaign" and g in budgets.daily:
            budget = budgets.daily[g] * n_days
        elif dimension == "advertiser":
            budget = (
                sum(budgets.daily.get(c, 0) for c in running if budgets.advertiser.get(c) == g) * n_days
                or None
            )
        elif dimension in ("day", "all"):
            budget = sum(budgets.daily.get(c, 0) for c in running) * n_days or None
        o["budget_used"] = o["spend"] / budget if budget else None
        o["pacing_error"] = None if dimension == "hour" else reference_pacing(hourly[(dimension, g)], spans)
        result[(dimension, g)] = dict(o)
    return result


def reference_pacing(spend: dict[tuple[int, int], float], spans: dict[int, tuple[int, int]]) -> float | None:
    """The uniform plan: by the end of hour h of hours first..last, (h + 1 - first) / (last + 1 - first)."""
    errors = []
    for day, (first, last) in spans.items():
        total = sum(spend.get((day, h), 0.0) for h in range(first, last + 1))
        if total <= 0:
            continue
        cumulative, gaps = 0.0, []
        for h in range(first, last + 1):
            cumulative += spend.get((day, h), 0.0)
            gaps.append(abs(cumulative / total - (h + 1 - first) / (last + 1 - first)))
        errors.append(sum(gaps) / len(gaps))
    return sum(errors) / len(errors) if errors else None


def row(result: Mapping[str, Any], dimension: str, group: str) -> dict[str, Any]:
    """The KPI report's row of one group ("all", "all": the totals)."""
    if dimension == "all":
        return dict(result["totals"])
    found = [r for r in result["groups"][dimension] if r["group"] == group]
    assert len(found) == 1, f"{dimension}={group}: {[r['group'] for r in result['groups'][dimension]]}"
    return dict(found[0])


def assert_close(got: Any, expected: Any, what: str) -> None:
    if expected is None or got is None or isinstance(expected, str):
        assert got == expected, what
    else:
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), what


def check_against_reference(
    result: Mapping[str, Any], expected: dict[tuple[str, str], dict[str, Any]], fields: tuple[str, ...]
) -> None:
    """Every group of `expected` (and no other) is in the report, with the reference's `fields`."""
    listed = {(r["dimension"], r["group"]) for rows in result["groups"].values() for r in rows}
    assert listed | {("all", "all")} == set(expected)
    check_groups(result, expected, fields)


def check_groups(
    result: Mapping[str, Any], expected: dict[tuple[str, str], dict[str, Any]], fields: tuple[str, ...]
) -> None:
    """The groups of `expected` have the reference's `fields` in the report."""
    for (dimension, g), values in expected.items():
        got = row(result, dimension, g)
        for name in fields:
            assert_close(got[name], values.get(name, 0), f"{dimension}={g} {name}")


# ---- experiments --------------------------------------------------------------------------------------

UNIT_SUMS = (
    "bids",
    "wins",
    "impressions",
    "clicks",
    "conversions",
    "conversions_post_click",
    "revenue",
    "spend",
)
# name: (kind, numerator, denominator): a mean per unit, or a ratio of the sums over the arm's units.
EXPERIMENT_METRICS = {
    "win_rate": ("ratio", "wins", "bids"),
    "ctr": ("ratio", "clicks", "impressions"),
    "clicks_per_user": ("mean", "clicks", ""),
    "conversions_per_user": ("mean", "conversions", ""),
    "revenue_per_user": ("mean", "revenue", ""),
    "spend_per_user": ("mean", "spend", ""),
    "conversion_rate": ("ratio", "conversions_post_click", "clicks"),
    "cpc": ("ratio", "spend", "clicks"),
    "roas": ("ratio", "revenue", "spend"),
}


def arm_of(line: Line, experiment: str) -> str | None:
    """The line's arm in `experiment` ("NAME:arm" in its arms), None when it records none."""
    found = [a.split(":", 1)[1] for a in line.get("arms") or [] if a.startswith(f"{experiment}:")]
    return found[0] if found else None


def unit_of(line: Line) -> str:
    """The unit of randomisation: the user, or the auction of a request without one."""
    return f"user:{line['user']}" if line.get("user") else f"auction:{line['request_id']}"


Units = dict[str, dict[str, dict[str, float]]]  # arm -> unit -> UNIT_SUMS


def experiment_units(
    lines: list[Line],
    experiment: str,
    click_window: float,
    view_window: float,
    since: float = -math.inf,
    until: float = math.inf,
) -> Units:
    """Per arm, per unit: bids (1 / sample each), wins, impressions, clicks, conversions (post-click among
    them), attributed revenue and spend, over the window; a unit seen in two arms is left out."""
    funnel = attributed(
        lines, click_window, view_window, since, until, kept=lambda line: arm_of(line, experiment) is not None
    )
    sums: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: dict.fromkeys(UNIT_SUMS, 0.0))
    for b in funnel.bids:
        sums[(arm_of(b, experiment), unit_of(b))]["bids"] += 1.0 / b["sample"]  # type: ignore[index]
    for t in funnel.touches:
        s = sums[(arm_of(t, experiment), unit_of(t))]  # type: ignore[index]
        s["wins"] += 1
        s["impressions"] += t["impression"]
        s["clicks"] += t["click_ts"] is not None
        s["spend"] += t["spend"]
    for c in funnel.conversions:
        s = sums[(arm_of(c, experiment), unit_of(c))]  # type: ignore[index]
        s["conversions"] += 1
        s["conversions_post_click"] += c["kind"] == "post_click"
        s["revenue"] += c["value"]
    arms_of_unit: dict[str, set[str]] = defaultdict(set)
    for arm, unit in sums:
        arms_of_unit[unit].add(arm)
    units: Units = defaultdict(dict)
    for (arm, unit), s in sums.items():
        if len(arms_of_unit[unit]) == 1:
            units[arm][unit] = s
    return dict(units)


def column(units: Mapping[str, Mapping[str, float]], name: str) -> np.ndarray:
    """One sum of every unit of an arm, in the units' order."""
    return np.array([u[name] for _, u in sorted(units.items())], dtype=np.float64)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """sum(num) / sum(den) and its variance by the delta method on the per-unit linearisation."""
    ratio = numerator.sum() / denominator.sum()
    linear = (numerator - ratio * denominator) / denominator.mean()
    return float(ratio), float(linear.var(ddof=1) / len(linear))


def experiment_reference(
    units: Units, control: str, shares: Mapping[str, float], alpha: float = 0.05
) -> dict[str, Any]:
    """The experiment's numbers from per-unit arrays: per (metric, arm) the value; per treatment arm the
    absolute and relative lift, the absolute lift's interval and the p-value (Welch's t by scipy for means,
    a z test on delta-method variances for ratios), Holm's adjusted p-values (statsmodels) over every
    comparison; and the sample-ratio test (scipy's chi-square) of units per arm against `shares`.

    A number that cannot be computed (an arm without clicks has no cost per click; two arms without any
    variance have no test) is NaN or infinite, which the reports write as null."""
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's on samples without variance
        metrics = _compared(units, control, alpha)
    # A comparison without a p-value is no test: it does not count in Holm's correction, nor is significant.
    tested = [key for key in metrics if key[1] != control and math.isfinite(metrics[key]["p"])]
    holm = multipletests([metrics[key]["p"] for key in tested], method="holm")[1]
    for key in metrics:
        if key[1] != control:
            metrics[key].update(p_holm=math.nan, significant=False)
    for key, adjusted in zip(tested, holm, strict=True):
        metrics[key]["p_holm"] = float(adjusted)
        metrics[key]["significant"] = bool(adjusted < alpha)
    observed = [len(units.get(arm, {})) for arm in shares]
    expected = [sum(observed) * share / sum(shares.values()) for share in shares.values()]
    srm = scipy.stats.chisquare(observed, expected)
    return {
        "units": {arm: len(u) for arm, u in units.items()},
        "metrics": metrics,
        "srm": {"chi2": float(srm.statistic), "p": float(srm.pvalue), "ok": bool(srm.pvalue >= 0.001)},
    }


def _compared(units: Units, control: str, alpha: float) -> dict[tuple[str, str], dict[str, Any]]:
    z = scipy.stats.norm.ppf(1 - alpha / 2)
    metrics: dict[tuple[str, str], dict[str, Any]] = {}
    for name, (kind, numerator, denominator) in EXPERIMENT_METRICS.items():
        for arm in units:
            if kind == "mean":
                value = column(units[arm], numerator).mean()
            else:
                value = _ratio(column(units[arm], numerator), column(units[arm], denominator))[0]
            metrics[(name, arm)] = {"value": float(value)}
            if arm == control:
                continue
            if kind == "mean":
                treated, base = column(units[arm], numerator), column(units[control], numerator)
                test = scipy.stats.ttest_ind(treated, base, equal_var=False)
                interval = test.confidence_interval(1 - alpha)
                lift, low, high, p = treated.mean() - base.mean(), interval.low, interval.high, test.pvalue
                reference = base.mean()
            else:
                (r_t, v_t), (r_c, v_c) = (
                    _ratio(column(units[a], numerator), column(units[a], denominator)) for a in (arm, control)
                )
                lift, se = np.float64(r_t - r_c), np.sqrt(np.float64(v_t + v_c))
                statistic = lift / se
                p = 2 * scipy.stats.norm.sf(abs(statistic)) if np.isfinite(statistic) else math.nan
                low, high, reference = lift - z * se, lift + z * se, np.float64(r_c)
            metrics[(name, arm)].update(
                lift_abs=float(lift),
                lift_abs_ci=[float(low), float(high)],
                lift_rel=float(lift / reference),
                p=float(p),
            )
    return metrics
