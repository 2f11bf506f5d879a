"""The fused pricing pass (BidStrategy.priced_pick) against the plain steps it replaces: the strategy's
price, a fixed-price deal bought at its floor, no bid a campaign's budget cannot cover, then the winner."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.decision.pricing import BidStrategy, best
from personabid.spend.store import MICROS_PER_CPM

STRATEGIES = st.sampled_from(
    [
        BidStrategy(),
        BidStrategy("constant"),
        BidStrategy("ortb", (("c", 2.0), ("lambda", 0.5))),
        BidStrategy("linear", (), 3.5),
        BidStrategy("ortb", (("c", 1e6), ("lambda", 1e-6)), 1000.0),
    ]
)
# Floors reach past every max bid; weights and budgets span their whole range.
CANDIDATE = st.tuples(
    st.floats(0.01, 1e4),  # base bid
    st.floats(0.01, 1e4),  # max bid
    st.floats(0, 1, width=32),  # pctr
    st.one_of(st.just(0.0), st.floats(0, 2e4)),  # floor
    st.booleans(),  # through a fixed-price deal
    st.integers(-10, 10**12),  # budget left, micros
)


def reference(
    strategy: BidStrategy, candidates: list[tuple[float, float, float, float, bool, int]], avg_ctr: float,
    budgeted: bool,
) -> tuple[list[float], int, bool]:  # fmt: skip
    base = np.array([c[0] for c in candidates], dtype=np.float64)
    cap = np.array([c[1] for c in candidates], dtype=np.float64)
    pctr = np.array([c[2] for c in candidates], dtype=np.float32)
    floors = np.array([c[3] for c in candidates], dtype=np.float64)
    fixed = np.array([c[4] for c in candidates], dtype=bool)
    prices = strategy.price(base, cap, pctr, avg_ctr, floors)
    prices = np.where(fixed & (prices > 0), floors, prices)
    short_of_budget = False
    if budgeted:
        left = np.array([c[5] for c in candidates], dtype=np.int64)
        short = left < np.round(prices * MICROS_PER_CPM)
        short_of_budget = bool(np.any(short & (prices > 0)))
        prices[short] = 0.0
    return prices.tolist(), best(prices, pctr), short_of_budget


@settings(max_examples=400, deadline=None)
@given(STRATEGIES, st.lists(CANDIDATE, max_size=40), st.floats(0.001, 0.5), st.booleans())
def test_one_pass_prices_and_picks_as_the_plain_steps_do(
    strategy: BidStrategy,
    candidates: list[tuple[float, float, float, float, bool, int]],
    avg_ctr: float,
    budgeted: bool,
) -> None:
    # The candidates sit at scattered rows of a larger table, as matched campaigns do.
    n = len(candidates)
    rows = np.random.default_rng(n).permutation(3 * n + 1)[:n].astype(np.int32)
    table_base = np.zeros(3 * n + 1)
    table_cap = np.zeros(3 * n + 1)
    table_base[rows] = [c[0] for c in candidates]
    table_cap[rows] = [c[1] for c in candidates]
    got = strategy.priced_pick(
        table_base,
        table_cap,
        rows,
        np.array([c[2] for c in candidates], dtype=np.float32),
        avg_ctr,
        np.array([c[3] for c in candidates], dtype=np.float64),
        np.array([c[4] for c in candidates], dtype=bool),
        np.array([c[5] for c in candidates], dtype=np.int64) if budgeted else None,
    )
    prices, winner, short = reference(strategy, candidates, avg_ctr, budgeted)
    assert (got[0].tolist(), got[1], got[2]) == (prices, winner, short)
