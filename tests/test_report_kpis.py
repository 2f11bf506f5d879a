"""The KPI report (training/reports/kpis.py) against a slow reference in plain Python from the same lines
(tests/report_reference.py), and one behaviour per test on logs built by hand (tests/kpi_logs.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from personabid.training.reports import kpis
from personabid.training.reports.logfiles import event_files
from tests.kpi_logs import BUDGETS, CAMPAIGNS, DAY, DAY0, Log, random_log, write_days, write_lines
from tests.report_reference import assert_close, check_against_reference, kpi_reference, read_back, row

HOUR = 3_600.0
CLICK_WINDOW = 7 * DAY
VIEW_WINDOW = DAY
BUDGET_TABLE = kpis.Budgets(daily=BUDGETS, advertiser=CAMPAIGNS)
COUNTS = (
    "bids",
    "wins",
    "impressions",
    "clicks",
    "conversions",
    "conversions_post_click",
    "conversions_post_view",
    "users_reached",
    "converting_users",
    "repurchasing_users",
)


def report(
    tmp_path: Path,
    lines: list[dict[str, Any]],
    *,
    click_window: float = CLICK_WINDOW,
    view_window: float = VIEW_WINDOW,
    budgets: kpis.Budgets | None = None,
    since: float | None = None,
    until: float | None = None,
) -> dict[str, Any]:
    files = write_days(tmp_path / "log", lines)
    params = kpis.KpiParams(click_window=click_window, view_window=view_window, since=since, until=until)
    return kpis.compute(files, params, budgets, threads=1)


# ---- every KPI against the reference ------------------------------------------------------------------

EVERY = (*COUNTS, "spend", "revenue_usd", "ctr", "roas", "ecpa", "aov", "budget_used", "pacing_error")


def test_every_kpi_of_every_group_equals_the_reference(tmp_path: Path) -> None:
    lines = random_log(7, 400, days=2.0, users=15)
    result = report(tmp_path, lines, budgets=BUDGET_TABLE)
    expected = kpi_reference(
        read_back(event_files(tmp_path / "log")), CLICK_WINDOW, VIEW_WINDOW, BUDGET_TABLE
    )
    check_against_reference(result, expected, EVERY)


def test_a_window_keeps_the_events_inside_it(tmp_path: Path) -> None:
    lines = random_log(8, 300, days=2.0)
    since, until = DAY0 + 6 * HOUR, DAY0 + DAY + 3 * HOUR
    result = report(tmp_path, lines, budgets=BUDGET_TABLE, since=since, until=until)
    expected = kpi_reference(
        read_back(event_files(tmp_path / "log")), CLICK_WINDOW, VIEW_WINDOW, BUDGET_TABLE, since, until
    )
    check_against_reference(result, expected, EVERY)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**31),
    auctions=st.integers(1, 120),
    sample=st.sampled_from([1.0, 0.5, 0.1]),
    billing=st.booleans(),
    view_hours=st.sampled_from([0.5, 24.0, 48.0]),
)
def test_counts_equal_the_reference_on_generated_logs(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    auctions: int,
    sample: float,
    billing: bool,
    view_hours: float,
) -> None:
    lines = random_log(seed, auctions, days=1.5, sample=sample, billing=billing, users=6)
    directory = tmp_path_factory.mktemp("generated")
    result = report(directory, lines, view_window=view_hours * HOUR, click_window=max(view_hours * HOUR, DAY))
    expected = kpi_reference(
        read_back(event_files(directory / "log")),
        max(view_hours * HOUR, DAY),
        view_hours * HOUR,
        kpis.Budgets(),
    )
    check_against_reference(result, expected, COUNTS)


# ---- one behaviour each -------------------------------------------------------------------------------


def won(
    log: Log, ts: float, campaign: str = "c1", *, clearing: float = 1.0, billed: bool = True, **bid: Any
) -> dict:
    record = log.bid(ts, campaign, **bid)
    log.win(record, clearing)
    if billed:
        log.billing(record)
    return record


def test_a_repeated_order_id_counts_once_with_the_earliest_value(tmp_path: Path) -> None:
    log = Log()
    bid = won(log, DAY0 + HOUR, user="p1")
    log.click(bid)
    log.conversion(DAY0 + 2 * HOUR, "adv-a", "order-1", 40.0, user="p1")
    log.conversion(DAY0 + 2 * HOUR + 5, "adv-a", "order-1", 99.0, user="p1")
    totals = report(tmp_path, log.lines)["totals"]
    assert (totals["conversions"], totals["revenue_usd"]) == (1, 40.0)


def test_the_same_order_id_of_two_advertisers_is_two_conversions(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0 + HOUR, "c1", user="p1")
    won(log, DAY0 + HOUR, "c3", user="p1")
    log.conversion(DAY0 + 2 * HOUR, "adv-a", "order-1", 10.0, user="p1")
    log.conversion(DAY0 + 2 * HOUR, "adv-b", "order-1", 10.0, user="p1")
    assert report(tmp_path, log.lines)["totals"]["conversions"] == 2


@pytest.mark.parametrize(
    ("clicked", "after_hours", "kind"),
    [
        (True, 30.0, "conversions_post_click"),  # within the 2-day click window
        (False, 5.0, "conversions_post_view"),  # within the 6-hour view window
        (False, 30.0, None),  # a view too long ago
        (True, 60.0, None),  # a click too long ago, and no view either
    ],
)
def test_attribution_follows_the_windows(
    tmp_path: Path, clicked: bool, after_hours: float, kind: str | None
) -> None:
    log = Log()
    bid = won(log, DAY0 + HOUR, user="p1")
    if clicked:
        log.click(bid, delay=10.0)
    log.conversion(DAY0 + HOUR + after_hours * HOUR, "adv-a", "o1", 25.0, user="p1")
    totals = report(tmp_path, log.lines, click_window=2 * DAY, view_window=6 * HOUR)["totals"]
    found = {name: totals[name] for name in ("conversions_post_click", "conversions_post_view")}
    assert found == {name: int(name == kind) for name in found}


def test_the_last_click_wins_over_an_earlier_one(tmp_path: Path) -> None:
    log = Log()
    first = won(log, DAY0 + HOUR, "c1", user="p1")
    log.click(first)
    second = won(log, DAY0 + 2 * HOUR, "c2", user="p1")
    log.click(second)
    log.conversion(DAY0 + 3 * HOUR, "adv-a", "o1", 25.0, user="p1")
    result = report(tmp_path, log.lines)
    assert [(r["group"], r["conversions"]) for r in result["groups"]["campaign"]] == [("c1", 0), ("c2", 1)]


def test_a_conversion_naming_its_bid_goes_to_that_bid(tmp_path: Path) -> None:
    log = Log()
    named = won(log, DAY0 + HOUR, "c1", user="p1")
    later = won(log, DAY0 + 2 * HOUR, "c2", user="p1")
    log.click(later)
    log.conversion(DAY0 + 3 * HOUR, "adv-a", "o1", 25.0, user="", bid=named)
    result = report(tmp_path, log.lines)
    assert (
        row(result, "campaign", "c1")["conversions_post_view"],
        row(result, "campaign", "c2")["conversions"],
    ) == (
        1,
        0,
    )


def test_a_conversion_of_another_advertiser_is_not_attributed(tmp_path: Path) -> None:
    log = Log()
    bid = won(log, DAY0 + HOUR, "c3", user="p1")  # adv-b
    log.click(bid)
    log.conversion(DAY0 + 2 * HOUR, "adv-a", "o1", 25.0, user="p1")
    assert report(tmp_path, log.lines)["totals"]["conversions"] == 0


def test_each_bid_line_weighs_one_over_its_sample_rate(tmp_path: Path) -> None:
    log = Log()
    for i in range(3):
        log.bid(DAY0 + i, "c1", sample=0.25)
    log.bid(DAY0 + 5, "c2", sample=1.0)
    result = report(tmp_path, log.lines)
    assert (row(result, "campaign", "c1")["bids"], result["totals"]["bids"]) == (12.0, 13.0)


@pytest.mark.parametrize(("successes", "trials"), [(0, 10), (3, 10), (10, 10), (57, 1_000), (1, 3)])
def test_rate_intervals_are_wilson_score_intervals(successes: int, trials: int) -> None:
    interval = binomtest(successes, trials).proportion_ci(confidence_level=0.95, method="wilson")
    assert kpis.wilson(successes, trials) == pytest.approx((interval.low, interval.high), rel=1e-9, abs=1e-12)


def test_a_rate_with_no_trials_has_no_interval(tmp_path: Path) -> None:
    log = Log()
    log.bid(DAY0, "c1")
    totals = report(tmp_path, log.lines)["totals"]
    assert (totals["ctr"], totals["ctr_low"], totals["ctr_high"]) == (None, None, None)


def test_a_user_converting_again_within_the_click_window_repurchases(tmp_path: Path) -> None:
    log = Log()
    for user in ("p1", "p2"):
        bid = won(log, DAY0 + HOUR, user=user)
        log.click(bid)
    log.conversion(DAY0 + 2 * HOUR, "adv-a", "o1", 10.0, user="p1")
    log.conversion(DAY0 + 20 * HOUR, "adv-a", "o2", 10.0, user="p1")  # again, 18 h later
    log.conversion(DAY0 + 2 * HOUR, "adv-a", "o3", 10.0, user="p2")
    log.conversion(DAY0 + 2 * HOUR + 2 * DAY + 1, "adv-a", "o4", 10.0, user="p2")  # again, past 2 days
    totals = report(tmp_path, log.lines, click_window=2 * DAY, view_window=HOUR)["totals"]
    assert (totals["converting_users"], totals["repurchasing_users"], totals["repurchase_rate"]) == (
        2,
        1,
        0.5,
    )


def test_a_bid_in_two_experiments_counts_in_both_arms_and_none_without(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0, arms=("bidmult:double", "model:new"))
    won(log, DAY0 + 1, arms=())
    arms = {r["group"]: r["wins"] for r in report(tmp_path, log.lines)["groups"]["arm"]}
    assert arms == {"bidmult:double": 1, "model:new": 1, "none": 1}


def test_sources_group_joined_with_plus(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0, sources=("segments", "context"))
    won(log, DAY0 + 1, sources=())
    sources = {r["group"]: r["wins"] for r in report(tmp_path, log.lines)["groups"]["source"]}
    assert sources == {"segments+context": 1, "none": 1}


def test_day_and_hour_are_those_of_the_auction_in_utc(tmp_path: Path) -> None:
    log = Log()
    bid = won(log, DAY0 + 23 * HOUR + 3_500, user="p1")
    log.click(bid, delay=600.0)  # clicked the next day
    result = report(tmp_path, log.lines)
    assert [(r["group"], r["clicks"]) for r in result["groups"]["day"]] == [("2024-10-04", 1)]
    assert [(r["group"], r["clicks"]) for r in result["groups"]["hour"]] == [("23", 1)]


def test_daily_files_are_read_together_as_one_log(tmp_path: Path) -> None:
    lines = random_log(3, 200, days=2.0)
    files = write_days(tmp_path / "days", lines)
    (tmp_path / "one").mkdir()
    single = write_lines(tmp_path / "one" / "events.jsonl", lines)
    params = kpis.KpiParams(click_window=CLICK_WINDOW, view_window=VIEW_WINDOW)
    rotated = kpis.compute(event_files(tmp_path / "days"), params)
    whole = kpis.compute([single], params)
    assert len(files) > 1
    # The same rows, to the rounding of sums taken in another order.
    pairs = [
        (a, b) for d in kpis.DIMENSIONS for a, b in zip(rotated["groups"][d], whole["groups"][d], strict=True)
    ]
    assert len(pairs) == sum(len(rows) for rows in whole["groups"].values())
    for a, b in pairs:
        for name in kpis.FIELDS:
            assert_close(a[name], b[name], f"{a['dimension']}={a['group']} {name}")


def test_wins_count_as_impressions_when_no_billing_line_exists(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0, billed=False)
    won(log, DAY0 + 1, billed=False)
    result = report(tmp_path, log.lines)
    assert result["totals"]["impressions"] == 2
    assert any("impressions are counted as wins" in note for note in result["notes"])


def test_a_won_bid_without_billing_is_no_impression_when_others_are_billed(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0, billed=True)
    won(log, DAY0 + 1, billed=False)
    assert report(tmp_path, log.lines)["totals"]["impressions"] == 1


def test_unreadable_lines_are_skipped_and_counted(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0)
    path = write_lines(tmp_path / "events.jsonl", log.lines)
    path.write_text(path.read_text() + "{not json\n" + '{"v":2,"event":"win"}\n')
    params = kpis.KpiParams(click_window=CLICK_WINDOW, view_window=VIEW_WINDOW)
    result = kpis.compute([path], params)
    counts = result["totals"]["counts"]
    assert (result["totals"]["wins"], counts["unreadable_lines"], counts["unusable_lines"]) == (1, 1, 1)


def test_budget_used_is_spend_over_the_daily_budget(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0 + HOUR, "c1", clearing=25_000.0)  # $25 of c1's $100
    log.bid(DAY0 + 2 * HOUR, "c2")  # ran, without a win
    result = report(tmp_path, log.lines, budgets=BUDGET_TABLE)
    assert (
        row(result, "campaign", "c1")["budget_used"],
        row(result, "advertiser", "adv-a")["budget_used"],
    ) == (
        0.25,
        25.0 / 150.0,
    )


def test_the_total_budget_is_that_of_the_campaigns_that_ran(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0 + HOUR, "c1", clearing=25_000.0)
    assert report(tmp_path, log.lines, budgets=BUDGET_TABLE)["totals"]["budget"] == BUDGETS["c1"]


def test_pacing_error_compares_the_spend_curve_with_the_plan(tmp_path: Path) -> None:
    log = Log()
    won(log, DAY0 + 0.5 * HOUR, "c1", clearing=1_000.0)  # all of the spend in the first of four hours
    log.bid(DAY0 + 3.5 * HOUR, "c2")  # the log covers hours 0 to 3
    result = report(tmp_path, log.lines)
    # Actual shares 1, 1, 1, 1 against planned 1/4, 2/4, 3/4, 1.
    assert row(result, "campaign", "c1")["pacing_error"] == pytest.approx((0.75 + 0.5 + 0.25 + 0) / 4)


def test_an_unknown_dimension_is_named(tmp_path: Path) -> None:
    with pytest.raises(kpis.KpiError, match="'colour'"):
        kpis.KpiParams(click_window=1.0, view_window=1.0, by=("campaign", "colour"))


def test_the_report_writes_json_csv_and_html(tmp_path: Path) -> None:
    result = report(tmp_path, random_log(4, 60))
    paths = kpis.write(tmp_path / "out", result)
    header = paths[1].read_text().splitlines()[0].split(",")
    assert [p.name for p in paths] == ["kpis.json", "kpis.csv", "report.html"] and header == list(kpis.FIELDS)
