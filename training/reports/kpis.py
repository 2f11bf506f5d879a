"""KPIs per group over the event log (schema v2): the funnel from bid to conversion, its cost and its pace.

The log is read once into DuckDB and turned into the funnel's tables (funnel.py: bids weighted for their
sampling, won bids with their billing and clicks, conversions deduplicated and attributed last touch);
every figure is then a group-by over them, all dimensions but the arm in one pass (GROUPING SETS). Each
event counts in the day and hour of the auction that bought it, so that the funnel's rates within a group
compare like with like.

A group is a value of one dimension (DIMENSIONS); a bid in two experiments counts in both arms' groups.
Rates carry 95 % Wilson score intervals. Spend is the clearing price / 1000 in USD, against the daily
budgets of the index's campaign table (of the campaigns that ran), and its pace against the planned curve
(spend.pacing).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from personabid.errors import PersonabidError
from personabid.spend.pacing import DAY, planned_fraction
from personabid.training.reports import funnel
from personabid.training.reports.stats import wilson_interval

DIMENSIONS = ("campaign", "advertiser", "day", "hour", "arm", "country", "device", "source")
HOUR = 3_600.0
ALPHA = 0.05  # rates carry 95 % intervals

# The group of a row (any derived table has these columns), per dimension. Missing text is "unknown"; no
# experiment arm or no source is "none". The day and hour are UTC, of the auction, grouped as numbers
# (cheaper than as text) and named after (group_name).
GROUP_SQL = {
    "all": "'all'",
    "campaign": "coalesce(nullif(campaign, ''), 'unknown')",
    "advertiser": "coalesce(nullif(advertiser, ''), 'unknown')",
    "day": "CAST(floor(ts / 86400.0) AS BIGINT)",
    "hour": "CAST(floor((ts - floor(ts / 86400.0) * 86400.0) / 3600.0) AS INTEGER)",
    "arm": "unnest(CASE WHEN arms IS NULL THEN ['none'] ELSE string_split(arms, ',') END)",
    "country": "coalesce(nullif(country, ''), 'unknown')",
    "device": "coalesce(devicetype, -1)",
    "source": "source",
}
DAY_NUMBER = "CAST(floor(ts / 86400.0) AS BIGINT)"
HOUR_OF_DAY = "CAST(floor((ts - floor(ts / 86400.0) * 86400.0) / 3600.0) AS INTEGER)"

# Columns of kpis.csv and of every group's row in kpis.json, in this order.
FIELDS = (
    "dimension",
    "group",
    "bids",
    "wins",
    "win_rate",
    "win_rate_low",
    "win_rate_high",
    "impressions",
    "clicks",
    "ctr",
    "ctr_low",
    "ctr_high",
    "conversions",
    "conversions_post_click",
    "conversions_post_view",
    "cvr_post_click",
    "cvr_post_click_low",
    "cvr_post_click_high",
    "cvr",
    "cvr_low",
    "cvr_high",
    "users_reached",
    "converting_users",
    "purchase_rate",
    "purchase_rate_low",
    "purchase_rate_high",
    "repurchasing_users",
    "repurchase_rate",
    "repurchase_rate_low",
    "repurchase_rate_high",
    "revenue_usd",
    "aov",
    "spend",
    "ecpm",
    "ecpc",
    "ecpa",
    "roas",
    "budget",
    "budget_used",
    "pacing_error",
)


class KpiError(PersonabidError):
    """A KPI report that cannot be made as asked."""


@dataclass(frozen=True)
class KpiParams:
    """What a report covers: the window [since, until) in unix seconds (None: open), the attribution
    windows in seconds, and the dimensions to group by."""

    click_window: float
    view_window: float
    since: float | None = None
    until: float | None = None
    by: tuple[str, ...] = DIMENSIONS

    def __post_init__(self) -> None:
        unknown = [name for name in self.by if name not in DIMENSIONS]
        if unknown:
            raise KpiError(f"--by {unknown[0]!r}: not a dimension; choose from {', '.join(DIMENSIONS)}")
        for name in ("click_window", "view_window"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise KpiError(f"{name.replace('_', '-')}={value}: expected a positive number of seconds")


@dataclass(frozen=True)
class Budgets:
    """Daily budgets in USD by campaign, and each campaign's advertiser (from the index's campaign table).

    The budgets are the catalog's numbers as the spend control takes them (in USD: it bills USD prices
    against them); a campaign without a budget (0) is left out."""

    daily: Mapping[str, float] = field(default_factory=dict)
    advertiser: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, index: Path) -> Budgets:
        from personabid.artifact import resolve
        from personabid.index.campaigns import CampaignTable

        table = CampaignTable.load(resolve(index) / "campaigns.npz")
        daily = {
            str(c): float(b)
            for c, b in zip(table.campaign_id, table.daily_budget, strict=True)
            if float(b) > 0
        }
        owners = {str(c): str(a) for c, a in zip(table.campaign_id, table.advertiser, strict=True)}
        return cls(daily, owners)

    def of(self, dimension: str, group: str, days: int, running: Iterable[str] = ()) -> float | None:
        """The budget of `group` over `days` days: a campaign's; an advertiser's, a day's or all of them
        summed over the `running` campaigns (those in the report: a catalog's other campaigns did not
        run, and their budgets would dwarf the spend); None for the other dimensions, or with no budget."""
        if dimension == "campaign":
            one = self.daily.get(group)
            return one * days if one is not None else None
        if dimension not in ("advertiser", "day", "all"):
            return None
        total = sum(
            self.daily.get(c, 0.0)
            for c in set(running)
            if dimension != "advertiser" or self.advertiser.get(c) == group
        )
        return total * days if total > 0 else None


def wilson(successes: float, trials: float) -> tuple[float | None, float | None]:
    """The 95 % Wilson score interval of successes / trials; (None, None) with no trials. Successes above
    trials (wins over an estimated count of sampled bids) are taken as trials."""
    if trials <= 0:
        return None, None
    low, high = wilson_interval(min(max(successes, 0.0), trials), trials, ALPHA)
    return float(low), float(high)


def compute(
    files: Sequence[Path], params: KpiParams, budgets: Budgets | None = None, threads: int | None = None
) -> dict[str, Any]:
    """The report (what kpis.json holds): {"groups": {dimension: [row]}, "totals": row and counts,
    "hourly": [per day and hour], "notes": [str]}."""
    import duckdb

    config: dict[str, Any] = {} if threads is None else {"threads": threads}
    connection = duckdb.connect(config=config)
    try:
        funnel.load(connection, list(files))
        funnel.check_not_empty(connection, files, params.since, params.until)
        counts = funnel.derive(
            connection, params.since, params.until, params.click_window, params.view_window
        )
        return _report(connection, params, budgets or Budgets(), counts)
    finally:
        connection.close()


def group_name(dimension: str, key: Any) -> str:
    """A group's name from its key in GROUP_SQL: the day as YYYY-MM-DD, the hour as 00 to 23."""
    if dimension == "day":
        return _day_name(int(key))
    if dimension == "hour":
        return f"{int(key):02d}"
    if dimension == "device":
        return "unknown" if int(key) < 0 else str(int(key))
    return str(key)


def _grouped(connection: Any, table: str, dimensions: Sequence[str], aggregates: str, by: str = "") -> dict:
    """{dimension: {group: row of `aggregates`}} of `table`, grouped by each dimension's key (and the
    columns `by`: the group is then a tuple of the key and their values), in one pass for all but the arm."""
    found: dict[str, dict[Any, dict[str, Any]]] = {d: {} for d in dimensions}
    extra = [c.strip() for c in by.split(",") if c.strip()]
    plain = [d for d in dimensions if d != "arm"]
    queries = []
    if plain:
        keys = ", ".join(f"{GROUP_SQL[d]} AS g_{d}" for d in plain)
        sets = ", ".join("(" + ", ".join([f"g_{d}", *extra]) + ")" for d in plain)
        columns = ", ".join([*(f"g_{d}" for d in plain), *extra])
        query = f"SELECT {columns}, {aggregates} FROM (SELECT {keys}, * FROM {table}) "
        queries.append((plain, query + f"GROUP BY GROUPING SETS ({sets})"))
    if "arm" in dimensions:
        columns = ", ".join(["g_arm", *extra])
        query = f"SELECT {columns}, {aggregates} FROM (SELECT {GROUP_SQL['arm']} AS g_arm, * FROM {table}) "
        queries.append((["arm"], query + f"GROUP BY {columns}"))
    for named, query in queries:
        cursor = connection.execute(query)
        width = len(named) + len(extra)
        names = [d[0] for d in cursor.description][width:]
        for row in cursor.fetchall():
            keys, values = row[: len(named)], dict(zip(names, row[width:], strict=True))
            # Each grouping set leaves the other dimensions' keys NULL (a key itself is never NULL).
            dimension = next(d for d, key in zip(named, keys, strict=True) if key is not None)
            group = group_name(dimension, keys[named.index(dimension)])
            found[dimension][(group, *row[len(named) : width]) if extra else group] = values
    return found


TOUCH_AGGREGATES = """count(*) AS wins,
    count(*) FILTER (WHERE impression) AS impressions,
    count(*) FILTER (WHERE click_ts IS NOT NULL) AS clicks,
    coalesce(sum(price), 0) / 1000.0 AS spend"""
CONVERSION_AGGREGATES = """count(*) AS conversions,
    count(*) FILTER (WHERE kind = 'post_click') AS conversions_post_click,
    count(*) FILTER (WHERE kind = 'post_view') AS conversions_post_view,
    coalesce(sum(value_usd), 0) AS revenue_usd,
    count(DISTINCT user) AS converting_users"""


def _dimension_rows(
    connection: Any,
    dimensions: Sequence[str],
    params: KpiParams,
    budgets: Budgets,
    days: dict[int, tuple[int, int]],
) -> dict[str, list[dict[str, Any]]]:
    bids = _grouped(connection, "bids", dimensions, "sum(weight) AS bids")
    touches = _grouped(connection, "touches", dimensions, TOUCH_AGGREGATES)
    conversions = _grouped(connection, "attributed", dimensions, CONVERSION_AGGREGATES)
    reached = _users(connection, "touches", dimensions, "impression")
    for dimension, counted in reached.items():
        for group, users in counted.items():
            touches[dimension][group]["users_reached"] = users
    hours = _spend_hours(connection, [d for d in dimensions if d != "hour"])
    running = [
        str(c)
        for (c,) in connection.execute(
            "SELECT campaign FROM bids UNION SELECT campaign FROM touches"
        ).fetchall()
    ]
    found = {}
    for dimension in dimensions:
        again = _repurchasing(connection, dimension, params)
        listed: list[dict[str, Any]] = []
        groups = set(bids[dimension]) | set(touches[dimension]) | set(conversions[dimension])
        for group in sorted(groups):
            day_count = 1 if dimension == "day" else max(len(days), 1)
            row = _row(
                dimension,
                group,
                bids[dimension].get(group, {}),
                touches[dimension].get(group, {}),
                conversions[dimension].get(group, {}),
                int(again.get(group, 0)),
                budgets.of(dimension, group, day_count, running),
            )
            spend = hours.get(dimension, {}).get(group, {})
            row["pacing_error"] = None if dimension == "hour" else pacing_error(spend, days)
            listed.append(row)
        found[dimension] = listed
    return found


def _users(connection: Any, table: str, dimensions: Sequence[str], where: str) -> dict[str, dict[str, int]]:
    """{dimension: {group: distinct users}} of the rows of `table` that match `where`."""
    # Distinct (group, user) pairs counted per group: several times cheaper than count(DISTINCT) over
    # grouping sets.
    found: dict[str, dict[str, int]] = {d: {} for d in dimensions}
    plain = [d for d in dimensions if d != "arm"]
    queries = []
    if plain:
        keys = ", ".join(f"{GROUP_SQL[d]} AS g_{d}" for d in plain)
        columns = ", ".join(f"g_{d}" for d in plain)
        sets = ", ".join(f"(g_{d}, user)" for d in plain)
        pairs = (
            f"SELECT {columns}, user FROM (SELECT {keys}, user FROM {table} "
            f"WHERE {where} AND user IS NOT NULL) GROUP BY GROUPING SETS ({sets})"
        )
        queries.append((plain, f"SELECT {columns}, count(*) FROM ({pairs}) GROUP BY {columns}"))
    if "arm" in dimensions:
        pairs = (
            f"SELECT DISTINCT {GROUP_SQL['arm']} AS g_arm, user FROM {table} "
            f"WHERE {where} AND user IS NOT NULL"
        )
        queries.append((["arm"], f"SELECT g_arm, count(*) FROM ({pairs}) GROUP BY g_arm"))
    for named, query in queries:
        for *keys, count in connection.execute(query).fetchall():
            dimension = next(d for d, key in zip(named, keys, strict=True) if key is not None)
            found[dimension][group_name(dimension, keys[named.index(dimension)])] = int(count)
    return found


def _spend_hours(
    connection: Any, dimensions: Sequence[str]
) -> dict[str, dict[str, dict[int, dict[int, float]]]]:
    """{dimension: {group: {day: {hour: spend}}}} of the touches."""
    found: dict[str, dict[str, dict[int, dict[int, float]]]] = {}
    grouped = _grouped(
        connection,
        f"(SELECT *, {DAY_NUMBER} AS day_number, {HOUR_OF_DAY} AS hour_number FROM touches)",
        dimensions,
        "sum(price) / 1000.0 AS spend",
        by="day_number, hour_number",
    )
    for dimension, groups in grouped.items():
        table: dict[str, dict[int, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
        for (group, day, hour), values in groups.items():
            table[group][int(day)][int(hour)] = float(values["spend"] or 0.0)
        found[dimension] = table
    return found


def _repurchasing(connection: Any, dimension: str, params: KpiParams) -> dict[str, int]:
    """{group: users converting twice in the group with no more than the click window between}."""
    return {
        group_name(dimension, group): int(count)
        for group, count in connection.execute(
            f"""SELECT g, count(DISTINCT user) FROM (
                    SELECT g, user, conversion_ts - lag(conversion_ts) OVER (
                        PARTITION BY g, user ORDER BY conversion_ts) AS gap
                    FROM (SELECT {GROUP_SQL[dimension]} AS g, * FROM attributed WHERE user IS NOT NULL))
                WHERE gap <= {float(params.click_window)!r} GROUP BY g"""
        ).fetchall()
    }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


def _rate(row: dict[str, Any], name: str, successes: float, trials: float) -> None:
    row[name] = _ratio(successes, trials)
    row[f"{name}_low"], row[f"{name}_high"] = wilson(successes, trials)


def _row(
    dimension: str,
    group: str,
    bids: Mapping[str, Any],
    touches: Mapping[str, Any],
    conversions: Mapping[str, Any],
    repurchasing: int,
    budget: float | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"dimension": dimension, "group": group}
    row["bids"] = float(bids.get("bids") or 0.0)
    for name in ("wins", "impressions", "clicks", "users_reached"):
        row[name] = int(touches.get(name) or 0)
    spend = float(touches.get("spend") or 0.0)
    for name in ("conversions", "conversions_post_click", "conversions_post_view", "converting_users"):
        row[name] = int(conversions.get(name) or 0)
    revenue = float(conversions.get("revenue_usd") or 0.0)
    _rate(row, "win_rate", row["wins"], row["bids"])
    _rate(row, "ctr", row["clicks"], row["impressions"])
    _rate(row, "cvr_post_click", row["conversions_post_click"], row["clicks"])
    _rate(row, "cvr", row["conversions"], row["impressions"])
    _rate(row, "purchase_rate", row["converting_users"], row["users_reached"])
    row["repurchasing_users"] = repurchasing
    _rate(row, "repurchase_rate", repurchasing, row["converting_users"])
    row["revenue_usd"] = revenue
    row["aov"] = _ratio(revenue, row["conversions"])
    row["spend"] = spend
    row["ecpm"] = _ratio(spend * 1000.0, row["impressions"])
    row["ecpc"] = _ratio(spend, row["clicks"])
    row["ecpa"] = _ratio(spend, row["conversions"])
    row["roas"] = _ratio(revenue, spend)
    row["budget"] = budget
    row["budget_used"] = _ratio(spend, budget) if budget else None
    return {name: row.get(name) for name in FIELDS}


def planned_share(day: int, first: int, last: int, hour: int) -> float:
    """The planned curve's share of hours first..last of `day` (a UTC day number) spent by the end of
    `hour`: the plan (spend.pacing.planned_fraction) renormalised to the hours the log covers."""

    def plan(h: int) -> float:
        return 1.0 if h >= 24 else planned_fraction(day * DAY + h * HOUR)

    span = plan(last + 1) - plan(first)
    return (plan(hour + 1) - plan(first)) / span if span > 0 else 1.0


def pacing_error(
    spend: Mapping[int, Mapping[int, float]], days: Mapping[int, tuple[int, int]]
) -> float | None:
    """Mean over days with spend of the mean over the log's hours of that day of |actual cumulative share of
    the day's spend - planned share| (spend: day -> hour -> USD; days: day -> (first hour, last hour))."""
    errors = []
    for day, hours in sorted(spend.items()):
        total = sum(hours.values())
        if total <= 0 or day not in days:
            continue
        first, last = days[day]
        cumulative = np.cumsum([hours.get(h, 0.0) for h in range(first, last + 1)]) / total
        planned = np.array([planned_share(day, first, last, h) for h in range(first, last + 1)])
        errors.append(float(np.mean(np.abs(cumulative - planned))))
    return float(np.mean(errors)) if errors else None


def _report(connection: Any, params: KpiParams, budgets: Budgets, counts: dict[str, Any]) -> dict[str, Any]:
    window = funnel.window(params.since, params.until)
    # The hours the log covers, per day: the span a day's pace is judged over.
    days = {
        int(day): (int(first), int(last))
        for day, first, last in connection.execute(
            f"""SELECT {DAY_NUMBER} AS day, min({HOUR_OF_DAY}), max({HOUR_OF_DAY})
                FROM ev WHERE {window} AND event IN ('bid', 'win') GROUP BY ALL"""
        ).fetchall()
    }
    found = _dimension_rows(connection, [*params.by, "all"], params, budgets, days)
    groups = {dimension: found[dimension] for dimension in params.by}
    totals = found["all"][0] if found["all"] else _row("all", "all", {}, {}, {}, 0, None)
    hourly = _hourly(connection, days)
    notes = _notes(counts, budgets, params)
    summary = {key: value for key, value in counts.items()}
    summary["conversions_unattributed"] = (
        counts["conversions_deduplicated"] - counts["conversions_attributed"]
    )
    summary["duplicate_conversions"] = counts["conversion_lines"] - counts["conversions_deduplicated"]
    summary["days"] = len(days)
    return {
        "window": {"since": params.since, "until": params.until},
        "attribution": {"click_window": params.click_window, "view_window": params.view_window},
        "groups": groups,
        "totals": {**totals, "counts": summary},
        "hourly": hourly,
        "notes": notes,
    }


def _hourly(connection: Any, days: Mapping[int, tuple[int, int]]) -> list[dict[str, Any]]:
    """Per day and hour (of the auction): bids, wins, impressions, clicks, conversions, spend, and the
    cumulative share of the day's spend beside the planned one."""
    slots: dict[tuple[int, int], dict[str, float]] = defaultdict(dict)
    queries = (
        ("bids",),
        "SELECT {d}, {h}, sum(weight) FROM bids GROUP BY ALL",
        ("wins", "impressions", "clicks", "spend"),
        "SELECT {d}, {h}, count(*), count(*) FILTER (WHERE impression), "
        "count(*) FILTER (WHERE click_ts IS NOT NULL), sum(price) / 1000.0 FROM touches GROUP BY ALL",
        ("conversions",),
        "SELECT {d}, {h}, count(*) FROM attributed GROUP BY ALL",
    )
    for names, query in zip(queries[::2], queries[1::2], strict=True):
        for day, hour, *values in connection.execute(query.format(d=DAY_NUMBER, h=HOUR_OF_DAY)).fetchall():
            slots[(int(day), int(hour))].update(
                {name: float(value or 0.0) for name, value in zip(names, values, strict=True)}
            )
    rows = []
    for day, (first, last) in sorted(days.items()):
        total = sum(slots.get((day, h), {}).get("spend", 0.0) for h in range(first, last + 1))
        spent = 0.0
        for hour in range(first, last + 1):
            values = slots.get((day, hour), {})
            spent += values.get("spend", 0.0)
            rows.append(
                {
                    "day": _day_name(day),
                    "hour": hour,
                    "bids": values.get("bids", 0.0),
                    "wins": int(values.get("wins", 0)),
                    "impressions": int(values.get("impressions", 0)),
                    "clicks": int(values.get("clicks", 0)),
                    "conversions": int(values.get("conversions", 0)),
                    "spend": values.get("spend", 0.0),
                    "spend_share": spent / total if total > 0 else None,
                    "planned_share": planned_share(day, first, last, hour),
                }
            )
    return rows


def _day_name(day: int) -> str:
    return dt.datetime.fromtimestamp(day * DAY, dt.UTC).strftime("%Y-%m-%d")


def _notes(counts: Mapping[str, Any], budgets: Budgets, params: KpiParams) -> list[str]:
    notes = []
    if counts["unreadable_lines"] or counts["unusable_lines"]:
        notes.append(
            f"{counts['unreadable_lines']:,} lines were not JSON and {counts['unusable_lines']:,} had "
            f"no time or an unknown event: skipped (of {counts['lines']:,} lines)"
        )
    if not counts["billed_bids"]:
        notes.append("no billing lines in the log: impressions are counted as wins")
    if counts["sampled_bid_lines"]:
        notes.append(
            f"{counts['sampled_bid_lines']:,} bid lines were kept at a sample rate below 1: each counts as "
            "1/sample bids, so bids and win rates are estimates"
        )
    if counts["bid_lines_without_sample"]:
        notes.append(
            f"{counts['bid_lines_without_sample']:,} bid lines had no valid sample rate: counted as 1 bid"
        )
    duplicates = counts["conversion_lines"] - counts["conversions_deduplicated"]
    if duplicates:
        notes.append(
            f"{duplicates:,} conversions repeated an (advertiser, order_id): counted once, the earliest"
        )
    unattributed = counts["conversions_deduplicated"] - counts["conversions_attributed"]
    if unattributed:
        notes.append(
            f"{unattributed:,} conversions had no touch within the windows (click {params.click_window:g} s, "
            f"view {params.view_window:g} s): unattributed, left out of the groups"
        )
    if counts["conversions_without_order_id"]:
        notes.append(f"{counts['conversions_without_order_id']:,} conversion lines had no order_id: skipped")
    if counts["clicks_without_win"]:
        notes.append(
            f"{counts['clicks_without_win']:,} clicks name a bid with no win line in the window: left out"
        )
    if not budgets.daily:
        notes.append("no campaign budgets (no index): budget used is not computed")
    return notes


def rows(report: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """Every group's row, then the total's, as kpis.csv lists them."""
    for dimension_rows in report["groups"].values():
        yield from dimension_rows
    yield {name: report["totals"].get(name) for name in FIELDS}


def write(out: Path, report: Mapping[str, Any], source: str = "") -> list[Path]:
    """Write DIR/kpis.json, DIR/kpis.csv and DIR/report.html (each atomically); return their paths."""
    import csv
    import io
    import json

    from personabid.artifact import write_atomic

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "kpis.json", out / "kpis.csv", out / "report.html"]
    write_atomic(paths[0], (json.dumps(_plain(report), indent=2, allow_nan=False) + "\n").encode())
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows(report):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    write_atomic(paths[1], text.getvalue().encode())
    write_atomic(paths[2], render(report, source).encode())
    return paths


def _plain(value: Any) -> Any:
    """`value` for JSON: NaN and infinities (never expected) as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def render(report: Mapping[str, Any], source: str = "") -> str:
    """The report as a self-contained HTML page (kpi_page.py)."""
    from personabid.training.reports.kpi_page import render as page

    return page(report, source)


def brief(report: Mapping[str, Any], paths: Sequence[Path]) -> str:
    """The report in a few lines, for a person at a terminal (kpi_page.py)."""
    from personabid.training.reports.kpi_page import brief as lines

    return lines(report, paths)
