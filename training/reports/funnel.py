"""The event log (schema v2) as the funnel's tables, in DuckDB: what every report over the log counts.

`load` reads the files into one table, `ev`; `derive` builds from it, over a window of time:

- bids: the "bid" lines, each weighing 1 / its "sample" (the server keeps a sampled share of them, whole
  auctions at a time), so that their sum estimates every bid sent;
- touches: one row per won bid (the first "win" line of its (request_id, imp_id, campaign)), with whether it
  was billed (an impression; every win when the log has no billing line at all) and when it was first
  clicked;
- conversions: the "conversion" lines deduplicated by (advertiser, order_id), the earliest kept;
- attributed: each conversion attributed last touch (C1): to the bid it names; else to the same user's last
  click on the advertiser's campaigns within the click window ("post_click"); else to their last impression
  within the view window ("post_view"); else to nothing (left out). Its row carries the touch's
  dimensions and time, so that a conversion counts in the day and hour of the auction that bought it, and
  the touch's identity (k: its bid, auction: its request, touch_user: its user), so that a report by
  experiment arm credits the conversion to the unit whose bid bought it.

Every table keeps the dimensions of its bid: campaign, advertiser, user, devicetype, country, arms (the
experiment arms joined with ","; NULL for none), source (the match's sources joined with "+"; "none"), and
auction (the request's hash: the unit of an experiment for requests without a user).

`derive` replaces the tables it builds, so that one loaded log serves several windows (an experiment's
period and its pre-period).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from personabid.training.reports.logfiles import EventLogError, sources

EVENTS = ("bid", "win", "billing", "loss", "click", "conversion")


# The log as the report keeps it: only what a KPI needs, the long texts as 64-bit hashes (a bid's identity
# (request_id, imp_id, campaign), its auction (request_id) and the user's pseudonym are only ever compared
# and counted, and hashing
# them at once makes the load and every join several times cheaper; two of ten million colliding has odds
# of about 1e-5), the lists as texts. Rows keep the files' order, and the lines' (rowid), so that "first"
# means the earlier line when two lines have the same time.
LOADED = """CREATE TABLE ev (
    event VARCHAR, ts DOUBLE, notice_ts DOUBLE, k UBIGINT, auction UBIGINT, identified BOOLEAN,
    campaign VARCHAR, advertiser VARCHAR, user UBIGINT, devicetype INTEGER, country VARCHAR, price DOUBLE,
    sample DOUBLE, value_usd DOUBLE, order_id VARCHAR, arms VARCHAR, source VARCHAR, blank BOOLEAN)"""
# Lines before schema v2 carry no "event": they are the impressions (wins) training reads.
LOAD = """INSERT INTO ev SELECT
    CASE WHEN event IS NULL AND v IS NOT NULL AND v < 2 THEN 'win' ELSE event END,
    ts, notice_ts,
    hash(coalesce(request_id, ''), coalesce(imp_id, ''), coalesce(campaign, '')),
    hash(coalesce(request_id, '')),
    coalesce(request_id, '') <> '',
    coalesce(campaign, ''), coalesce(advertiser, ''),
    CASE WHEN coalesce(user, '') = '' THEN NULL ELSE hash(user) END,
    devicetype, country, price, sample, value_usd, order_id,
    CASE WHEN arms IS NULL OR len(arms) = 0 THEN NULL ELSE array_to_string(arms, ',') END,
    CASE WHEN sources IS NULL OR len(sources) = 0 THEN 'none' ELSE array_to_string(sources, '+') END,
    v IS NULL AND event IS NULL AND ts IS NULL
FROM {source}"""


def load(connection: Any, files: list[Path]) -> None:
    """Read `files` into the table `ev` (LOADED)."""
    connection.execute(LOADED)
    for source in sources(files):
        connection.execute(LOAD.format(source=source))


def check_not_empty(connection: Any, files: Sequence[Path], since: float | None, until: float | None) -> None:
    """EventLogError when the files hold no event, or none in the window: an empty report would look like a
    day without traffic."""
    named = ", ".join(str(p) for p in files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    lines, usable, inside = connection.execute(
        f"SELECT count(*), count(ts), count(*) FILTER (WHERE {window(since, until)}) FROM ev"
    ).fetchone()
    if not usable:
        raise EventLogError(f"--events {named}: no events ({lines:,} lines, none with a time)")
    if not inside:
        raise EventLogError(
            f"--since {since} --until {until}: none of the {usable:,} events of {named} is in the window"
        )


def window(since: float | None, until: float | None) -> str:
    """SQL: the row's time is in [since, until) (None: open)."""
    bounds = ["ts IS NOT NULL"]
    if since is not None:
        bounds.append(f"ts >= {float(since)!r}")
    if until is not None:
        bounds.append(f"ts < {float(until)!r}")
    return " AND ".join(bounds)


DIMENSION_COLUMNS = "campaign, advertiser, user, devicetype, country, arms, source, auction"


def derive(
    connection: Any, since: float | None, until: float | None, click_window: float, view_window: float
) -> dict[str, Any]:
    """Build the tables bids, touches, conversions and attributed (module docstring) from `ev` over the
    window [since, until); return the counts a report's notes need."""
    inside = window(since, until)
    sql = connection.execute
    sql(
        f"""CREATE OR REPLACE TEMP TABLE bids AS
            SELECT ts, {DIMENSION_COLUMNS},
                   CASE WHEN sample > 0 AND sample <= 1 THEN 1.0 / sample ELSE 1.0 END AS weight
            FROM ev WHERE event = 'bid' AND {inside}"""
    )
    wins = f"""SELECT rowid AS line, ts, coalesce(notice_ts, ts) AS seen, k, identified, {DIMENSION_COLUMNS},
                      coalesce(price, 0.0) AS price
               FROM ev WHERE event = 'win' AND {inside}"""
    repeated = sql(
        f"SELECT count(*) - count(DISTINCT k) FROM ev WHERE event = 'win' AND identified AND {inside}"
    ).fetchone()[0]
    if repeated:
        # The first line of a bid's wins (another worker's, a replay); lines without an identity stay apart.
        wins = f"""SELECT * EXCLUDE (n) FROM (
                       SELECT *, row_number() OVER (PARTITION BY k, CASE WHEN NOT identified THEN line END
                                                    ORDER BY ts, line) AS n
                       FROM ({wins}))
                   WHERE n = 1"""
    sql(f"CREATE OR REPLACE TEMP TABLE wins AS {wins}")
    sql(
        f"""CREATE OR REPLACE TEMP TABLE billed AS
            SELECT DISTINCT k FROM ev WHERE event = 'billing' AND {inside}"""
    )
    sql(
        f"""CREATE OR REPLACE TEMP TABLE clicks AS
            SELECT k, min(ts) AS ts FROM ev WHERE event = 'click' AND {inside} GROUP BY k"""
    )
    billed_bids = sql("SELECT count(*) FROM billed").fetchone()[0]
    # Without a single billing line, no exchange sent billing notices: a win is the impression.
    impression = "b.k IS NOT NULL" if billed_bids else "TRUE"
    sql(
        f"""CREATE OR REPLACE TEMP TABLE touches AS
            SELECT w.*, ({impression}) AS impression, c.ts AS click_ts
            FROM wins w
            LEFT JOIN billed b ON b.k = w.k AND w.identified
            LEFT JOIN clicks c ON c.k = w.k AND w.identified"""
    )
    sql(
        f"""CREATE OR REPLACE TEMP TABLE conversions AS
            SELECT * EXCLUDE (n) FROM (
                SELECT rowid AS line, ts, advertiser, user, order_id, coalesce(value_usd, 0.0) AS value_usd,
                       k, identified AND campaign <> '' AS named,
                       row_number() OVER (PARTITION BY advertiser, order_id ORDER BY ts, rowid) AS n
                FROM ev WHERE event = 'conversion' AND {inside} AND coalesce(order_id, '') <> '')
            WHERE n = 1"""
    )
    click_window, view_window = float(click_window), float(view_window)
    # Last touch: the bid a conversion names; else the user's last click on the advertiser's campaigns
    # within the click window; else their last impression (the win notice's time) within the view window.
    sql(
        f"""CREATE OR REPLACE TEMP TABLE attributed AS
            WITH named AS (
                SELECT v.line AS conversion, t.line AS touch,
                       CASE WHEN t.click_ts IS NOT NULL AND t.click_ts <= v.ts THEN 'post_click'
                            ELSE 'post_view' END AS kind
                FROM conversions v JOIN touches t ON t.k = v.k AND t.identified
                WHERE v.named
            ),
            anonymous AS (
                SELECT * FROM conversions WHERE NOT named AND user IS NOT NULL
            ),
            by_click AS (
                SELECT conversion, touch, 'post_click' AS kind FROM (
                    SELECT v.line AS conversion, t.line AS touch,
                           row_number() OVER (PARTITION BY v.line ORDER BY t.click_ts DESC, t.line DESC) AS n
                    FROM anonymous v JOIN touches t ON t.user = v.user AND t.advertiser = v.advertiser
                    WHERE t.click_ts IS NOT NULL AND t.click_ts <= v.ts
                      AND v.ts - t.click_ts <= {click_window!r})
                WHERE n = 1
            ),
            by_view AS (
                SELECT conversion, touch, 'post_view' AS kind FROM (
                    SELECT v.line AS conversion, t.line AS touch,
                           row_number() OVER (PARTITION BY v.line ORDER BY t.seen DESC, t.line DESC) AS n
                    FROM anonymous v JOIN touches t ON t.user = v.user AND t.advertiser = v.advertiser
                    WHERE t.impression AND t.seen <= v.ts AND v.ts - t.seen <= {view_window!r}
                      AND v.line NOT IN (SELECT conversion FROM by_click))
                WHERE n = 1
            ),
            chosen AS (
                SELECT * FROM named UNION ALL SELECT * FROM by_click UNION ALL SELECT * FROM by_view
            )
            SELECT t.ts, t.campaign, t.advertiser, t.country, t.devicetype, t.source, t.arms,
                   v.ts AS conversion_ts, v.value_usd, c.kind, coalesce(v.user, t.user) AS user,
                   t.k, t.auction, t.user AS touch_user
            FROM chosen c JOIN conversions v ON v.line = c.conversion JOIN touches t ON t.line = c.touch"""
    )
    known = ", ".join(f"'{e}'" for e in EVENTS)
    row = sql(
        f"""SELECT
              count(*) FILTER (WHERE blank),
              count(*) FILTER (WHERE NOT blank AND (ts IS NULL OR event IS NULL OR event NOT IN ({known}))),
              count(*),
              count(*) FILTER (WHERE event = 'conversion' AND {inside} AND coalesce(order_id, '') = ''),
              count(*) FILTER (WHERE event = 'conversion' AND {inside} AND coalesce(order_id, '') <> ''),
              count(*) FILTER (WHERE event = 'bid' AND {inside} AND sample IS NOT NULL AND sample < 1),
              count(*) FILTER (WHERE event = 'bid' AND {inside}
                               AND (sample IS NULL OR sample <= 0 OR sample > 1))
            FROM ev"""
    ).fetchone()
    names = (
        "unreadable_lines",
        "unusable_lines",
        "lines",
        "conversions_without_order_id",
        "conversion_lines",
        "sampled_bid_lines",
        "bid_lines_without_sample",
    )
    counts: dict[str, Any] = {name: int(value or 0) for name, value in zip(names, row, strict=True)}
    counts["conversions_deduplicated"] = sql("SELECT count(*) FROM conversions").fetchone()[0]
    counts["conversions_attributed"] = sql("SELECT count(*) FROM attributed").fetchone()[0]
    counts["clicks_without_win"] = sql(
        "SELECT count(*) FROM clicks c "
        "WHERE NOT EXISTS (SELECT 1 FROM wins w WHERE w.k = c.k AND w.identified)"
    ).fetchone()[0]
    counts["billed_bids"] = int(billed_bids)
    counts["events"] = dict(
        sql(f"SELECT event, count(*) FROM ev WHERE {inside} AND event IS NOT NULL GROUP BY event").fetchall()
    )
    return counts
