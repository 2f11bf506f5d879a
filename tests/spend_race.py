"""Several processes racing for one campaign's last dollars through a real Redis (used by the tests and
by benchmarks/spend_race.py), each with a Redis call per bid or spending leases (spend/lease.py)."""

from __future__ import annotations

import multiprocessing
import time

import numpy as np

from personabid.index.campaigns import CampaignSpec, CampaignTable, Creative, build_table
from personabid.spend.control import Notification, SpendControl, SpendSettings
from personabid.spend.flusher import Keeper
from personabid.spend.redis_store import RedisStore
from personabid.spend.store import utc_day
from tests.bid_records import bid_record

MAX_BID = 5.0  # CPM
ROWS = np.array([0], dtype=np.int32)


def _table(campaign: str, budget: float) -> CampaignTable:
    spec = CampaignSpec(
        id=campaign, advertiser="a", adomain="a.example", category="IAB1", base_bid=1.0, max_bid=MAX_BID,
        personas=np.eye(4, dtype=np.float32)[:1], creatives=(Creative("cr", 300, 250),), daily_budget=budget,
    )  # fmt: skip
    return build_table([spec])[0]


def _worker(url: str, campaign: str, budget: float, worker: int, seconds: float, leases: bool) -> int:
    settings = SpendSettings(inflight_seconds=30.0, leases=leases, lease_share=0.25 / 4)
    spend = SpendControl(RedisStore(url, timeout=1.0), settings)
    # With leases the keeper writes bids and tops leases up in its thread, as in the server.
    keeper = Keeper(spend).start() if leases else None
    table = _table(campaign, budget)
    rng = np.random.default_rng(worker)
    refused = wins = 0
    deadline = time.monotonic() + seconds
    try:
        for i in range(100_000):  # bounded in count and in time
            if refused >= 50 or time.monotonic() > deadline:
                break
            bid = float(rng.uniform(1.0, MAX_BID))
            auction = f"{campaign}-{worker}-{i}"
            spend.budget_left(table, ROWS)  # a decision asks first: what it asks about is leased
            if not spend.reserve(table, 0, bid, f"{auction}:1", bid_record(f"{auction}:1")):
                refused += 1
                if leases:
                    spend.keep()  # the keeper's turn, now: a top-up if anything is free
                continue
            if rng.random() < 0.8:
                # Second-price clearing: at most the bid.
                spend.apply(
                    Notification("win", auction, "1", "b", campaign, price=bid * float(rng.uniform(0.5, 1.0)))
                )
                wins += 1
            else:
                spend.apply(Notification("loss", auction, "1", "b", campaign))
    finally:
        if keeper is not None:
            keeper.stop()  # writes what is queued and gives the leases back
    return wins


def race(
    url: str, campaign: str, budget: float, workers: int = 4, seconds: float = 20.0, leases: bool = False
) -> tuple[float, int]:
    """Race `workers` processes for `budget` USD; returns (overspend in USD, wins)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        wins = pool.starmap(_worker, [(url, campaign, budget, w, seconds, leases) for w in range(workers)])
    store = RedisStore(url, timeout=1.0)
    day = utc_day(time.time())
    spent, inflight = store.spent(day, [campaign], time.time())[0]
    held = store.leases(day, campaign)
    store.close()
    assert inflight == 0, "every reservation was settled or released"
    assert held == {}, "every lease was given back"
    return spent / 1e6 - budget, sum(wins)
