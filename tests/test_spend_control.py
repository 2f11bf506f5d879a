"""Spend control over a fake clock: budgets, pacing over a simulated day, frequency caps, duplicates."""

from __future__ import annotations

import numpy as np
import pytest

from personabid.index.campaigns import CampaignSpec, CampaignTable, Creative, build_table
from personabid.spend.control import Notification, SpendControl, SpendSettings
from personabid.spend.pacing import PacingParams, next_rates
from personabid.spend.store import MemoryStore
from tests.bid_records import bid_record

MIDNIGHT = 1_800_057_600.0  # a UTC midnight


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def table(budget: float = 100.0, cap: int = 0) -> CampaignTable:
    spec = CampaignSpec(
        id="c1", advertiser="a", adomain="a.example", category="IAB1", base_bid=2.0, max_bid=5.0,
        personas=np.eye(4, dtype=np.float32)[:1], creatives=(Creative("cr", 300, 250),),
        daily_budget=budget, frequency_cap=cap, frequency_window=3600.0,
    )  # fmt: skip
    return build_table([spec])[0]


ROWS = np.array([0], dtype=np.int32)


def control(clock: Clock, **settings: object) -> SpendControl:
    return SpendControl(MemoryStore(), SpendSettings(**settings), clock=clock, rng=np.random.default_rng(0))  # type: ignore[arg-type]


def win(spend: SpendControl, auction: str, price: float) -> str:
    return spend.apply(Notification("win", auction, "1", "b", "c1", price=price))[0]


def test_duplicate_win_is_spent_once() -> None:
    clock = Clock(MIDNIGHT + 3600)
    spend = control(clock)
    t = table()
    assert spend.reserve(t, 0, 4.0, "a1:1", bid_record("a1:1"))
    assert win(spend, "a1", 4.0) == "applied"
    assert win(spend, "a1", 4.0) == "duplicate"
    spend.refresh(t)
    assert spend.budget_left(t, ROWS)[0] == 100_000_000 - 4_000


def test_campaign_stops_bidding_when_its_budget_cannot_cover_the_bid() -> None:
    clock = Clock(MIDNIGHT + 3600)
    spend = control(clock)
    t = table(budget=0.01)  # 10,000 micros: two bids of 4 CPM (4,000 micros each), not three
    assert spend.reserve(t, 0, 4.0, "a1:1", bid_record("a1:1"))
    assert spend.reserve(t, 0, 4.0, "a2:1", bid_record("a2:1"))
    assert not spend.reserve(t, 0, 4.0, "a3:1", bid_record("a3:1"))


def test_spend_in_flight_stops_counting_after_its_timeout() -> None:
    clock = Clock(MIDNIGHT + 3600)
    spend = control(clock, inflight_seconds=30.0)
    t = table(budget=0.01)
    assert spend.reserve(t, 0, 8.0, "a1:1", bid_record("a1:1"))
    assert not spend.reserve(t, 0, 8.0, "a2:1", bid_record("a2:1"))
    clock.now += 31
    assert spend.reserve(t, 0, 8.0, "a3:1", bid_record("a3:1"))


def test_frequency_cap_holds() -> None:
    clock = Clock(MIDNIGHT + 3600)
    spend = control(clock)
    t = table(cap=3)
    for i in range(3):
        assert spend.under_cap(t, ROWS, "user-1")[0]
        spend.reserve(t, 0, 2.0, f"a{i}:1", bid_record(f"a{i}:1", user="user-1"))
        win(spend, f"a{i}", 2.0)
        clock.now += 60
    assert not spend.under_cap(t, ROWS, "user-1")[0]
    assert spend.under_cap(t, ROWS, "user-2")[0]


def test_frequency_cap_window_slides() -> None:
    clock = Clock(MIDNIGHT + 3600)
    spend = control(clock)
    t = table(cap=1)
    spend.reserve(t, 0, 2.0, "a0:1", bid_record("a0:1", user="user-1"))
    win(spend, "a0", 2.0)
    assert not spend.under_cap(t, ROWS, "user-1")[0]
    clock.now += 3601
    assert spend.under_cap(t, ROWS, "user-1")[0]


@pytest.mark.parametrize(("spent", "plan", "expected"), [(10.0, 0.5, 0.6), (60.0, 0.5, 0.4)])
def test_rate_rises_behind_the_plan_and_falls_ahead_of_it(spent: float, plan: float, expected: float) -> None:
    params = PacingParams(step=0.2)
    rates = next_rates(np.array([0.5]), np.array([spent]), np.array([100.0]), plan, params)
    assert rates[0] == pytest.approx(expected)


def simulate_day(paced: bool) -> list[float]:
    """Spend (USD) at the end of each hour of a day whose traffic could spend the budget in ~3 hours.

    Every minute 200 auctions are eligible; a bid wins 30 % of them at 2 CPM; the budget is 20 USD.
    """
    clock = Clock(MIDNIGHT)
    params = (
        PacingParams(interval=60.0) if paced else PacingParams(interval=60.0, initial_rate=1.0, min_rate=1.0)
    )
    spend = control(clock, pacing=params, inflight_seconds=5.0)
    t = table(budget=20.0)
    rng = np.random.default_rng(7)
    hourly = []
    for minute in range(24 * 60):
        clock.now = MIDNIGHT + minute * 60
        spend.refresh(t)
        for auction in range(200):
            if not spend.paced_in(t, ROWS)[0] or spend.budget_left(t, ROWS)[0] < 2_000:
                continue
            key = f"{minute}-{auction}"
            if spend.reserve(t, 0, 2.0, f"{key}:1", bid_record(f"{key}:1")) and rng.random() < 0.3:
                win(spend, key, 2.0)
            else:
                spend.apply(Notification("loss", key, "1", "b", "c1"))
        if minute % 60 == 59:
            hourly.append(20.0 - spend.budget_left(t, ROWS)[0] / 1e6)
    return hourly


def test_without_pacing_the_budget_is_gone_in_the_first_hours() -> None:
    assert simulate_day(paced=False)[3] >= 19.9


def test_pacing_spreads_the_budget_over_the_day() -> None:
    hourly = simulate_day(paced=True)
    assert hourly[0] < 2.0, "the first hour spends no more than a few hours' share"
    assert 8.0 <= hourly[11] <= 12.0, "half the budget by midday"
    assert hourly[23] >= 18.0, "most of the budget by the end of the day"
    assert hourly[23] <= 20.0 + 0.005, "never more than the budget and one bid"


def test_a_worker_without_shared_state_commits_only_its_share_of_a_budget() -> None:
    clock = Clock(MIDNIGHT + 3600)
    spend = SpendControl(MemoryStore(), SpendSettings(budget_share=0.5), clock=clock)
    t = table(budget=0.01)  # 10,000 micros, of which this worker may commit 5,000
    assert spend.reserve(t, 0, 4.0, "a1:1", bid_record("a1:1"))
    assert not spend.reserve(t, 0, 4.0, "a2:1", bid_record("a2:1"))


def test_refresh_picks_up_spend_made_by_another_process() -> None:
    clock = Clock(MIDNIGHT + 3600)
    store = MemoryStore()
    mine, other = (SpendControl(store, SpendSettings(), clock=clock) for _ in range(2))
    t = table(budget=0.01)
    mine.refresh(t)
    other.refresh(table(budget=0.01))
    assert other.reserve(other._view.table, 0, 4.0, "a1:1", bid_record("a1:1"))  # type: ignore[union-attr]
    clock.now += 1
    mine.refresh(t)
    assert mine.budget_left(t, ROWS)[0] == 10_000 - 4_000


def test_a_worker_that_does_not_lead_the_pacing_step_throttles_by_the_rates_the_leader_wrote() -> None:
    clock = Clock(MIDNIGHT + 3600)  # an hour into the day: the plan has spent 1/24 of the budget
    store = MemoryStore()
    leader, follower = (
        SpendControl(store, SpendSettings(), clock=clock, rng=np.random.default_rng(seed)) for seed in (1, 2)
    )
    t = table(budget=100.0)
    assert leader.reserve(t, 0, 50_000.0, "a1:1", bid_record("a1:1"))  # 50 USD: far ahead of the plan
    assert win(leader, "a1", 50_000.0) == "applied"
    leader.refresh(t)  # leads this interval's step: the rate falls
    follower.refresh(t)  # the same interval: reads the rate the leader wrote
    taken = sum(bool(follower.paced_in(t, ROWS)[0]) for _ in range(200))
    assert 0 < taken < 200
