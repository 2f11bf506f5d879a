"""The live funnel in Prometheus: bids, wins, impressions, losses, clicks and conversions by experiment
arm with a bounded number of arm labels, spend and conversion value by arm, and the day's budget."""

from __future__ import annotations

import subprocess
from dataclasses import replace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from personabid.bidrecord import BidRecord
from personabid.decision.pipeline import Bid, Decision
from personabid.spend.control import Notification
from personabid.telemetry import MAX_ARMS, Metrics
from personabid.world import World
from tests.conftest import ThreadedServer, system_command
from tests.http import fetch
from tests.test_click_conversion import a_bid, convert, order
from tests.test_http_notices import substituted
from tests.test_metrics import scrape

ARM = "bid-multiplier:double"
RECORD = BidRecord(
    ts=1_800_000_000.0,
    request_id="r1",
    imp_id="1",
    user="u",
    campaign="cmp-1",
    advertiser="adv-1",
    category="IAB1",
    devicetype=4,
    os="ios",
    country="USA",
    w=300,
    h=250,
    match=0.5,
    price=2.0,
    arms=(ARM,),
)


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def funnel(metrics: Metrics, event: str, arm: str = ARM) -> float:
    sample = metrics.registry.get_sample_value("personabid_funnel_events_total", {"event": event, "arm": arm})
    return sample or 0.0


def note(kind: str, price: float = 0.0, auction: str = "r1") -> Notification:
    return Notification(kind, auction, "1", "1-cmp-1", "cmp-1", price=price, arrived=1_800_000_001.0)


def test_a_won_bid_counts_a_win_and_its_spend_under_its_arm(metrics: Metrics) -> None:
    metrics.observe_notice(note("win", 1.5), RECORD, "applied")
    spend = metrics.registry.get_sample_value("personabid_funnel_spend_usd_total", {"arm": ARM})
    assert (funnel(metrics, "win"), spend) == (1.0, 0.0015)


def test_a_billing_notice_after_the_win_counts_an_impression_under_the_wins_arm(metrics: Metrics) -> None:
    metrics.observe_notice(note("win", 1.5), RECORD, "applied")
    metrics.observe_notice(note("impression"), None, "billed already")
    assert (funnel(metrics, "win"), funnel(metrics, "impression")) == (1.0, 1.0)


def test_a_click_counts_under_the_arm_of_the_bid_it_won(metrics: Metrics) -> None:
    metrics.observe_notice(note("win", 1.5), RECORD, "applied")
    metrics.observe_notice(note("click"), None, "applied")
    assert funnel(metrics, "click") == 1.0


def test_a_click_on_a_bid_this_process_did_not_see_won_counts_under_none(metrics: Metrics) -> None:
    metrics.observe_notice(note("click", auction="elsewhere"), None, "applied")
    assert funnel(metrics, "click", "none") == 1.0


def test_a_loss_counts_under_its_arm(metrics: Metrics) -> None:
    metrics.observe_notice(note("loss"), RECORD, "applied")
    assert funnel(metrics, "loss") == 1.0


def test_a_bid_counts_under_the_arm_of_each_experiment_in_force(metrics: Metrics) -> None:
    bid = Bid("1-c", "1", 0, "c", 0, "cr", "a.example", 2.0, 0.01, 0.5, record=RECORD)
    decision = Decision("r1", bids=[bid], arms=(ARM, "strategy:ortb"))
    metrics.observe_decision("http", decision, 0.001)
    assert (funnel(metrics, "bid"), funnel(metrics, "bid", "strategy:ortb")) == (1.0, 1.0)


def test_a_decided_request_counts_its_assignment(metrics: Metrics) -> None:
    metrics.observe_decision("http", Decision("r1", arms=(ARM,)), 0.001)
    labels = {"experiment": "bid-multiplier", "arm": "double"}
    assert metrics.registry.get_sample_value("personabid_experiment_assignments_total", labels) == 1.0


def test_arms_past_the_bound_are_counted_as_other(metrics: Metrics) -> None:
    for i in range(MAX_ARMS + 5):
        metrics.observe_notice(note("loss", auction=f"r{i}"), replace(RECORD, arms=(f"e{i}:a",)), "applied")
    arms = {
        s.labels["arm"]
        for family in metrics.registry.collect()
        if family.name == "personabid_funnel_events"
        for s in family.samples
        if s.labels.get("event") == "loss"
    }
    assert len(arms - {"none"}) == MAX_ARMS + 1 and funnel(metrics, "loss", "other") == 5.0


def test_conversion_value_is_counted_under_the_users_arm(metrics: Metrics) -> None:
    metrics.observe_conversion((ARM,), 42.5)
    value = metrics.registry.get_sample_value("personabid_conversion_value_usd_total", {"arm": ARM})
    assert (funnel(metrics, "conversion"), value) == (1.0, 42.5)


def test_the_days_budget_spend_and_plan_are_exported(metrics: Metrics) -> None:
    summary = {"remaining": 6.0, "exhausted": 0.0, "pacing_rate": 1.0, "budget": 10.0, "spent": 3.0}
    metrics.observe_spend_summary(summary, True, 0.25)
    read = metrics.registry.get_sample_value
    assert (read("personabid_budget_today_usd"), read("personabid_spend_today_usd")) == (10.0, 3.0)
    assert read("personabid_budget_planned_fraction") == 0.25


def test_a_servers_funnel_follows_a_bid_through_win_click_and_conversion(
    server: ThreadedServer, world: World
) -> None:
    def counts() -> dict[str, float]:
        read = server.server.registry.get_sample_value
        return {
            e: read("personabid_funnel_events_total", {"event": e, "arm": "none"}) or 0.0
            for e in ("win", "impression", "click", "conversion")
        }

    before = counts()
    bid = a_bid(server, world)
    fetch(substituted(bid["nurl"], price=bid["price"]))
    fetch(substituted(bid["burl"], price=bid["price"]))
    fetch(bid["ext"]["clickurl"])
    convert(server.http_addr, **order())
    after = counts()
    assert {e: after[e] - before[e] for e in after} == {e: 1.0 for e in after}


def test_the_new_metrics_pass_promtool_check(server: ThreadedServer, world: World) -> None:
    bid = a_bid(server, world)
    fetch(substituted(bid["nurl"], price=bid["price"]))
    text = scrape(server)
    assert "personabid_funnel_events_total" in text and "personabid_budget_planned_fraction" in text
    promtool = system_command("promtool", "prometheus")
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_plan_is_the_share_of_the_servers_day_gone(server: ThreadedServer) -> None:
    planned = server.server.registry.get_sample_value("personabid_budget_planned_fraction")
    assert planned is not None and 0.0 < planned < 1.0
    assert np.isclose(planned, (server.server.clock.now() % 86_400) / 86_400, atol=0.01)
