"""`personabid report experiment NAME`: each arm of an A/B experiment against its control, from the event log.

The unit of analysis is the unit of randomisation: the user (the pseudonym every line carries), or for
requests without one, the auction (its request id), as the server assigns them (server/experiments/).
A unit's arm is what its bid and win lines record for the experiment ("NAME:arm" in `arms`); a unit seen
in two arms (a salt changed mid-experiment) is left out and counted in the notes.

Per unit, over the window [since, until): bids (each bid line weighted by 1 / its sample rate), wins
(the first win line of each bid), impressions (wins with a billing line; every win when the log has no
billing line at all), clicks (joined onto their win), spend (clearing price / 1000), and conversions and
their value in USD, attributed last touch by the same tables as the KPI report (funnel.py): to the bid a
conversion names, else to the same user's last click on the advertiser's campaigns within the click window,
else to their last impression within the view window; a conversion counts for the unit and arm of the bid
it is attributed to; "post-click" conversions are those attributed through a click.

What is measured and tested per arm is in experiment_metrics.py (Welch's t for means, the delta method
for ratios, Holm's correction, the sample-ratio check against the planned shares), the planned shares and
the control come from the experiment's file (experiment_plan.py), and the files written are in
experiment_page.py.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from personabid.training.reports import experiment_plan, funnel
from personabid.training.reports.experiment_metrics import (
    METRICS,
    SEQUENTIAL_EFFECT_SD,
    SRM_ALPHA,
    UNIT_COLUMNS,
    by_arm,
    covariates_of,
    metrics_of,
    sample_ratio,
)
from personabid.training.reports.experiment_page import write
from personabid.training.reports.experiment_plan import ExperimentReportError, Plan
from personabid.training.reports.logfiles import check_window, event_files, parse_time

__all__ = ["METRICS", "ExperimentReportError", "Plan", "compute", "run"]

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")


def run(
    events: Path | str,
    name: str,
    out: Path | str,
    since: float | str | None = None,
    until: float | str | None = None,
    alpha: float = 0.05,
    sequential: bool = False,
    pre_since: float | str | None = None,
    pre_until: float | str | None = None,
    click_window: float | None = None,
    view_window: float | None = None,
    *,
    experiment_file: Path | str | None = None,
    experiments: Path | None = None,
) -> dict[str, Any]:
    """Compute the report of experiment `name` over the log at `events` and write DIR/experiment.json,
    DIR/experiment.csv and DIR/report.html; return the result (what experiment.json holds).

    Times are unix seconds or ISO-8601; the attribution windows default to the settings' (load_settings,
    honouring PERSONABID_CONFIG); the planned shares and the control come from `experiment_file`, else
    from the versions of the experiment in `experiments` (default settings.experiments) and its archive
    of ended ones (experiment_plan.py), else the shares are assumed equal (and the notes say so)."""
    if not NAME.fullmatch(name):
        raise ExperimentReportError(f"experiment={name!r}: expected a name matching {NAME.pattern}")
    if not 0.0 < alpha < 0.5:
        raise ExperimentReportError(f"alpha={alpha!r}: expected a number in (0, 0.5)")
    window = _times(since, until, "since", "until")
    pre = _times(pre_since, pre_until, "pre-since", "pre-until")
    if (pre_since is None) != (pre_until is None):
        raise ExperimentReportError(
            f"pre-since={pre_since!r}, pre-until={pre_until!r}: CUPED needs both ends of the pre-period"
        )
    click_window, view_window = _windows(click_window, view_window)
    files = event_files(events)
    if experiment_file is not None:
        plans = [experiment_plan.given(name, Path(experiment_file))]
    else:
        directory = experiments if experiments is not None else experiment_plan.default_directory()
        plans = experiment_plan.found(name, directory)
    result = compute(
        files,
        name,
        window,
        alpha=alpha,
        sequential=sequential,
        pre=pre if pre_since is not None else None,
        click_window=click_window,
        view_window=view_window,
        plans=plans,
    )
    write(Path(out), result, source=str(events))
    return result


def _times(
    since: float | str | None, until: float | str | None, low: str, high: str
) -> tuple[float | None, float | None]:
    bounds = tuple(
        None if value is None else parse_time(str(value), field)
        for value, field in ((since, low), (until, high))
    )
    check_window(*bounds)
    return bounds  # type: ignore[return-value]


def _windows(click_window: float | None, view_window: float | None) -> tuple[float, float]:
    if click_window is None or view_window is None:
        from personabid.config import load_settings

        settings = load_settings({})
        click_window = settings.attribution_click_seconds if click_window is None else click_window
        view_window = settings.attribution_view_seconds if view_window is None else view_window
    for field, value in (("click-window", click_window), ("view-window", view_window)):
        if not (math.isfinite(value) and value > 0):
            raise ExperimentReportError(f"{field}={value!r}: expected a positive number of seconds")
    return float(click_window), float(view_window)


# ---- reading: per-unit sums, from the funnel's tables --------------------------------------------------


def _arm_sql(name: str) -> str:
    """SQL: the arm of experiment `name` that a row's `arms` ("a:x,b:y", or NULL) records, else NULL."""
    return f"nullif(regexp_extract(arms, '(?:^|,){name}:([^,]*)', 1), '')"


def _unit_sql(user: str, auction: str) -> str:
    """SQL: the unit of randomisation, the user when there is one, else the auction."""
    return f"CASE WHEN {user} IS NOT NULL THEN 'user:' || {user} ELSE 'auction:' || {auction} END"


def unit_sums(
    connection: Any,
    name: str,
    window: tuple[float | None, float | None],
    click_window: float,
    view_window: float,
    arm_filter: bool = True,
) -> dict[str, np.ndarray]:
    """Per (unit, arm): UNIT_COLUMNS over the window, from the table `ev` (funnel.load) through the
    funnel's tables (funnel.derive). With `arm_filter` False (the pre-period) rows need no arm and `arm`
    is "". Columns as numpy arrays."""
    funnel.derive(connection, window[0], window[1], click_window, view_window)
    arm = _arm_sql(name) if arm_filter else "''"
    unit = _unit_sql("user", "auction")
    columns = ", ".join(f"sum({c})::DOUBLE AS {c}" for c in UNIT_COLUMNS)
    return connection.execute(
        f"""SELECT unit, arm, {columns} FROM (
                SELECT {unit} AS unit, {arm} AS arm, weight AS bids, 0 AS wins, 0 AS impressions,
                       0 AS clicks, 0 AS conversions, 0 AS conversions_post_click, 0.0 AS revenue,
                       0.0 AS spend
                FROM bids
                UNION ALL
                SELECT {unit}, {arm}, 0, 1, impression::INTEGER, (click_ts IS NOT NULL)::INTEGER, 0, 0, 0.0,
                       price / 1000.0
                FROM touches
                UNION ALL
                SELECT {_unit_sql("touch_user", "auction")}, {arm}, 0, 0, 0, 0, 1,
                       (kind = 'post_click')::INTEGER, value_usd, 0.0
                FROM attributed)
            WHERE arm IS NOT NULL
            GROUP BY unit, arm ORDER BY arm, unit"""
    ).fetchnumpy()


def _line_counts(connection: Any, name: str, window: tuple[float | None, float | None]) -> tuple[int, ...]:
    """Bid lines in the window, those of them in an arm of `name`, billing lines and sampled bid lines in
    the window (funnel.derive counts wins as impressions when the window has no billing line)."""
    inside = funnel.window(*window)
    row = connection.execute(
        f"""SELECT count(*) FILTER (WHERE event = 'bid' AND {inside}),
                   count(*) FILTER (WHERE event = 'bid' AND {inside} AND {_arm_sql(name)} IS NOT NULL),
                   count(*) FILTER (WHERE event = 'billing' AND {inside}),
                   count(*) FILTER (WHERE event = 'bid' AND {inside} AND sample < 1)
            FROM ev"""
    ).fetchone()
    return tuple(int(c or 0) for c in row or (0, 0, 0, 0))


# ---- the analysis --------------------------------------------------------------------------------------


def compute(
    files: Sequence[Path],
    name: str,
    window: tuple[float | None, float | None] = (None, None),
    *,
    alpha: float = 0.05,
    sequential: bool = False,
    pre: tuple[float | None, float | None] | None = None,
    click_window: float = 7 * 86_400.0,
    view_window: float = 86_400.0,
    plans: Sequence[Plan] = (),
) -> dict[str, Any]:
    """The result of experiment `name` over `files` (what experiment.json holds; module docstring), with
    the plan chosen out of `plans` (experiment_plan.choose; none: equal shares)."""
    import duckdb

    connection = duckdb.connect()
    connection.execute("SET enable_progress_bar = false")  # a report's output is its files
    try:
        funnel.load(connection, list(files))
        funnel.check_not_empty(connection, files, *window)
        sums = unit_sums(connection, name, window, click_window, view_window)
        prior = unit_sums(connection, name, pre, click_window, view_window, arm_filter=False) if pre else None
        bid_lines, armed_lines, billing_lines, sampled = _line_counts(connection, name, window)
    finally:
        connection.close()
    notes: list[str] = []
    if not len(sums["unit"]):
        raise ExperimentReportError(
            f"experiment={name!r}: none of the {bid_lines:,} bid lines in the window records an arm of it "
            f"(files: {', '.join(str(f) for f in files[:3])})"
        )
    units = by_arm(sums, notes)
    plan = experiment_plan.choose(name, plans, set(units))
    if plan is None:
        arms = tuple(sorted(units))
        control = "control" if "control" in units else arms[0]
        if control != arms[0]:
            arms = (control, *(a for a in arms if a != control))
        plan = Plan(arms, tuple(1.0 / len(arms) for _ in arms), control, "")
        notes.append(
            f"No file of experiment {name!r} was found (--experiment-file, the experiments directory or its "
            f"archive of ended ones): equal planned shares are assumed and {control!r} is the control."
        )
    notes.extend(plan.notes)
    arms = plan.arms + tuple(a for a in sorted(units) if a not in plan.arms)
    stray = [a for a in arms if a not in plan.arms]
    if stray:
        notes.append(f"Arms in the log but not in the experiment file: {', '.join(stray)}.")
    if plan.control not in units:
        raise ExperimentReportError(f"control={plan.control!r}: no unit of the log is in the control arm")
    empty = {c: np.zeros(0) for c in UNIT_COLUMNS} | {"unit": np.zeros(0, dtype=object)}
    per_arm = {a: units.get(a, empty) for a in arms}
    shares = [dict(zip(plan.arms, plan.shares, strict=True)).get(a, 0.0) for a in arms]
    srm = sample_ratio([len(per_arm[a]["unit"]) for a in arms], shares)
    if srm["verdict"] == "mismatch":
        notes.insert(
            0,
            f"Sample ratio mismatch (p = {srm['p']:.2g} < {SRM_ALPHA}): the split is not as planned, so the "
            "lifts below may be biased; find the cause before reading them.",
        )
    covariates = covariates_of(per_arm, prior) if prior is not None else None
    metrics = metrics_of(per_arm, plan.control, alpha, sequential, covariates)
    if sampled:
        notes.append(f"{sampled:,} bid lines were sampled: each counts 1/sample bids.")
    if not billing_lines:
        notes.append("The log has no billing line: every win counts as an impression.")
    auctions = sum(int(np.sum([u.startswith("auction:") for u in per_arm[a]["unit"]])) for a in arms)
    if auctions:
        notes.append(f"{auctions:,} units are auctions (requests without a user id, assigned per auction).")
    if covariates is not None and pre is not None:
        notes.append(
            "CUPED: per-user means are adjusted by the same metric in the pre-period "
            f"[{pre[0]}, {pre[1]}) (users without pre-period activity count 0)."
        )
    if sequential:
        notes.append(
            f"Always-valid intervals: normal mixture, tau = {SEQUENTIAL_EFFECT_SD} per-unit standard "
            "deviations; valid however often the report is read while the experiment runs. Significance "
            "uses their p-values (Holm-adjusted)."
        )
    return {
        "experiment": name,
        "control": plan.control,
        "alpha": alpha,
        "window": {"since": window[0], "until": window[1]},
        "attribution": {"click_window": click_window, "view_window": view_window},
        "shares_source": plan.source or "assumed equal",
        "version": plan.version or None,
        "arms": [
            {
                "name": a,
                "share": s,
                "units": len(per_arm[a]["unit"]),
                **{c: float(per_arm[a][c].sum()) for c in UNIT_COLUMNS},
            }
            for a, s in zip(arms, shares, strict=True)
        ],
        "srm": srm,
        "sequential": sequential,
        "cuped": covariates is not None,
        "metrics": metrics,
        "lines": {"bids": bid_lines, "bids_in_experiment": armed_lines},
        "notes": notes,
    }
