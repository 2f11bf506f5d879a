"""The KPI report as people read it: the marketer's HTML page and the terminal's few lines.

The page is built from training/reports/html.py's and charts.py's primitives (inline CSS and SVG, nothing
fetched): headline tiles, the report's notes, the day's curves (volumes, spend, the spend's share against
the planned curve, broken between days), the funnel to post-click conversions with post-view ones beside
it, spend against budget, the best and worst campaigns by ROAS and CTR (bars and tables), a table per
dimension.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from personabid.training.reports import charts, html

TABLE_COLUMNS = {
    "group": "group",
    "bids": "bids",
    "wins": "wins",
    "win_rate": "win rate",
    "impressions": "impressions",
    "clicks": "clicks",
    "ctr": "CTR",
    "conversions": "conversions",
    "cvr": "conv. rate",
    "spend": "spend",
    "ecpm": "eCPM",
    "ecpc": "eCPC",
    "ecpa": "eCPA",
    "revenue_usd": "revenue",
    "roas": "ROAS",
    "budget_used": "budget used",
    "pacing_error": "pacing error",
}
TABLE_FORMATS = {
    "bids": "int",
    "win_rate": ".2%",
    "ctr": ".2%",
    "cvr": ".2%",
    "spend": "usd",
    "ecpm": "usd",
    "ecpc": "usd",
    "ecpa": "usd",
    "revenue_usd": "usd",
    "roas": ".2f",
    "budget_used": ".1%",
    "pacing_error": ".3f",
}
RANKED = 5  # campaigns shown as the best and the worst
RANKED_COLUMNS = {
    name: TABLE_COLUMNS[name]
    for name in ("group", "impressions", "clicks", "ctr", "conversions", "spend", "revenue_usd", "roas")
}


def render(report: Mapping[str, Any], source: str = "") -> str:
    """The marketer's page: headline numbers, the day's curves, the funnel, spend against budget, the best
    and worst campaigns by ROAS and CTR, and a table per dimension. Self-contained (reports/html.py,
    charts.py)."""
    totals = report["totals"]
    groups = report["groups"]
    sections = [
        html.tiles(
            [
                ("spend", totals["spend"], "usd"),
                ("impressions", totals["impressions"], "int"),
                ("clicks", totals["clicks"], "int"),
                ("CTR", totals["ctr"], ".2%"),
                ("conversions", totals["conversions"], "int"),
                ("revenue", totals["revenue_usd"], "usd"),
                ("ROAS", totals["roas"], ".2f"),
                ("eCPA", totals["ecpa"], "usd"),
                ("budget used", totals["budget_used"], ".1%"),
                ("pacing error", totals["pacing_error"], ".3f"),
            ]
        )
    ]
    sections += [html.callout("Read with care", note, level="warn") for note in report["notes"]]
    sections.append(_curves(report["hourly"]))
    funnel = [
        ("bids", totals["bids"]),
        ("wins", totals["wins"]),
        ("impressions", totals["impressions"]),
        ("clicks", totals["clicks"]),
        # Post-view conversions follow no click: in this step they would make its rate over 100% of clicks.
        ("post-click conversions", totals["conversions_post_click"]),
    ]
    sections.append(
        html.section(
            "Funnel",
            charts.funnel("From bid to post-click conversion", funnel),
            html.tiles(
                [
                    ("post-click conversions", totals["conversions_post_click"], "int"),
                    ("post-view conversions", totals["conversions_post_view"], "int"),
                ]
            ),
            note="Conversions attributed last touch: post-click after a click on the campaign, post-view "
            "after an impression without a click (outside the funnel's last step). Bids estimated from "
            "sampled bid lines where sampled.",
        )
    )
    campaigns = groups.get("campaign", [])
    if campaigns:
        sections.append(_budgets(campaigns))
        sections.append(_ranked(campaigns))
    for dimension, dimension_rows in groups.items():
        ordered = sorted(dimension_rows, key=lambda r: (-(r["spend"] or 0.0), r["group"]))
        sections.append(
            html.section(
                f"By {dimension}",
                html.table(
                    ordered,
                    columns=TABLE_COLUMNS,
                    formats=TABLE_FORMATS,
                    max_rows=50,
                    csv_name=f"kpis-{dimension}.csv",
                ),
            )
        )
    window = report.get("window", {})
    bounds = (
        "the whole log"
        if window.get("since") is None and window.get("until") is None
        else " to ".join(
            "open" if window.get(k) is None else _iso(float(window[k])) for k in ("since", "until")
        )
    )
    return html.page("KPI report", sections, source=source or None, subtitle=f"window: {bounds}")


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _curves(hourly: Sequence[Mapping[str, Any]]) -> str:
    days = {r["day"] for r in hourly}
    x: list[object] = (
        [r["hour"] for r in hourly] if len(days) == 1 else [f"{r['day']} {r['hour']:02d}h" for r in hourly]
    )
    label = "hour of the day (UTC)" if len(days) == 1 else "day and hour (UTC)"
    column = {name: [r[name] for r in hourly] for name in hourly[0]} if hourly else {}
    # Both shares restart at 0 each day: joined across midnight they would draw a drop that is no event.
    new_days = [i for i in range(1, len(hourly)) if hourly[i]["day"] != hourly[i - 1]["day"]]
    return html.section(
        "The day's curves",
        charts.line_chart(
            "Bids, wins and clicks per hour",
            x,
            {name: column.get(name, []) for name in ("bids", "wins", "impressions", "clicks")},
            x_label=label,
        ),
        charts.line_chart(
            "Spend per hour", x, {"spend": column.get("spend", [])}, x_label=label, y_format="usd"
        ),
        charts.line_chart(
            "Pacing: share of the day's spend",
            x,
            {"actual": column.get("spend_share", []), "planned": column.get("planned_share", [])},
            x_label=label,
            y_format=".0%",
            dashed=("planned",),
            breaks=new_days,
        ),
        note="Each event counts at the hour of the auction that bought it.",
    )


def _budgets(campaigns: Sequence[Mapping[str, Any]]) -> str:
    budgeted = sorted(
        (r for r in campaigns if r["budget_used"] is not None), key=lambda r: (-r["spend"], r["group"])
    )[:20]
    if not budgeted:
        return html.section("Spend against budget", html.paragraph("No campaign budgets are known."))
    return html.section(
        "Spend against budget",
        charts.bar_chart(
            "Budget used (top campaigns by spend)",
            [(r["group"], r["budget_used"]) for r in budgeted],
            value_format=".1%",
        ),
        note="Spend over the campaign's daily budget times the days of the report.",
    )


def _ranked(campaigns: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for metric, title in (("roas", "ROAS"), ("ctr", "CTR")):
        scored = [r for r in campaigns if r[metric] is not None]
        best = sorted(scored, key=lambda r: (-r[metric], r["group"]))[:RANKED]
        worst = sorted(scored, key=lambda r: (r[metric], r["group"]))[:RANKED]
        for name, chosen in (("Best", best), ("Worst", worst)):
            parts.append(
                charts.bar_chart(
                    f"{name} campaigns by {title}",
                    [(r["group"], r[metric]) for r in chosen],
                    value_format=TABLE_FORMATS[metric],
                )
            )
            parts.append(
                html.table(
                    chosen,
                    columns=RANKED_COLUMNS,
                    formats=TABLE_FORMATS,
                    title=f"{name} campaigns by {title}",
                )
            )
    return html.section("Best and worst campaigns", *parts)


def brief(report: Mapping[str, Any], paths: Sequence[Path]) -> str:
    """The report in a few lines, for a person at a terminal."""
    t = report["totals"]

    def show(value: Any, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    lines = [
        f"bids {t['bids']:,.0f}, wins {t['wins']:,} (win rate {show(t['win_rate'], '.2%')}), impressions "
        f"{t['impressions']:,}, clicks {t['clicks']:,} (CTR {show(t['ctr'], '.2%')}), conversions "
        f"{t['conversions']:,} ({t['conversions_post_click']:,} post-click, {t['conversions_post_view']:,} "
        "post-view)",
        f"spend ${t['spend']:,.2f}, revenue ${t['revenue_usd']:,.2f}, ROAS {show(t['roas'], '.2f')}, eCPM "
        f"{show(t['ecpm'], ',.2f')}, eCPC {show(t['ecpc'], ',.2f')}, eCPA {show(t['ecpa'], ',.2f')}, budget "
        f"used {show(t['budget_used'], '.1%')}, pacing error {show(t['pacing_error'], '.3f')}",
        *(f"note: {note}" for note in report["notes"]),
        *(f"wrote {path}" for path in paths),
    ]
    return "\n".join(lines)
