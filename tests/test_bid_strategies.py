"""Bid strategies and the bid multiplier against plain-Python references, at the edges: floors above every
max bid, huge multipliers, pCTR 0 and 1."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.decision.pipeline import DecisionSettings
from personabid.decision.pricing import MAX_MULTIPLIER, BidStrategy, check_strategy, price


def reference_bid(
    strategy: BidStrategy, base: float, cap: float, pctr: float, avg_ctr: float, floor: float
) -> float:
    """One candidate's bid, computed the obvious way."""
    params = dict(strategy.params)
    if strategy.name == "linear":
        raw = base * pctr / avg_ctr
    elif strategy.name == "constant":
        raw = base
    else:
        c, lam = params["c"], params["lambda"]
        raw = math.sqrt(c / lam * pctr * 1000.0 + c * c) - c
    bid = min(raw * strategy.multiplier, cap)
    return bid if bid > 0 and bid >= floor else 0.0


PCTR = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0, 1, width=32))
ROWS = st.lists(st.tuples(st.floats(0.01, 50), st.floats(0.01, 100), PCTR), max_size=40)
MULTIPLIER = st.one_of(st.sampled_from([1.0, 2.0, MAX_MULTIPLIER]), st.floats(0.01, MAX_MULTIPLIER))
STRATEGY = st.one_of(
    st.builds(BidStrategy, st.just("linear"), st.just(()), MULTIPLIER),
    st.builds(BidStrategy, st.just("constant"), st.just(()), MULTIPLIER),
    st.builds(
        lambda c, lam, m: BidStrategy("ortb", (("c", c), ("lambda", lam)), m),
        st.floats(0.01, 100),
        st.floats(1e-5, 10),
        MULTIPLIER,
    ),
)


def columns(rows: list[tuple[float, float, float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    base = np.array([r[0] for r in rows], dtype=np.float64)
    cap = np.array([r[1] for r in rows], dtype=np.float64)
    pctr = np.array([r[2] for r in rows], dtype=np.float32)
    return base, cap, pctr


@given(STRATEGY, ROWS, st.floats(0.001, 0.5), st.floats(0, 20))
@settings(max_examples=300, deadline=None)
def test_every_strategy_matches_the_reference(
    strategy: BidStrategy, rows: list[tuple[float, float, float]], avg_ctr: float, floor: float
) -> None:
    base, cap, pctr = columns(rows)
    expected = [
        reference_bid(strategy, b, c, float(p), avg_ctr, floor)
        for b, c, p in zip(base, cap, pctr, strict=True)
    ]
    np.testing.assert_allclose(strategy.price(base, cap, pctr, avg_ctr, floor), expected, rtol=1e-12)


@given(STRATEGY, ROWS, st.floats(0.001, 0.5), st.floats(1e-9, 100))
@settings(max_examples=200, deadline=None)
def test_floors_above_every_max_bid_price_no_bid(
    strategy: BidStrategy, rows: list[tuple[float, float, float]], avg_ctr: float, margin: float
) -> None:
    base, cap, pctr = columns(rows)
    floors = cap + margin
    assert not np.any(strategy.price(base, cap, pctr, avg_ctr, floors))


@given(st.sampled_from(["linear", "constant", "ortb"]), ROWS, st.floats(0.001, 0.5))
@settings(max_examples=200, deadline=None)
def test_a_huge_multiplier_bids_the_max_bid_wherever_the_strategy_bids(
    name: str, rows: list[tuple[float, float, float]], avg_ctr: float
) -> None:
    params = (("c", 5.0), ("lambda", 0.001)) if name == "ortb" else ()
    plain = BidStrategy(name, params)
    huge = BidStrategy(name, params, MAX_MULTIPLIER)
    base, cap, pctr = columns(rows)
    bids = plain.price(base, cap, pctr, avg_ctr, 0.0)
    # Bids above a thousandth of the cap reach it at 1000x; bids of nothing stay nothing.
    reaching = bids * MAX_MULTIPLIER >= cap
    np.testing.assert_array_equal(huge.price(base, cap, pctr, avg_ctr, 0.0)[reaching], cap[reaching])
    assert not np.any(huge.price(base, cap, pctr, avg_ctr, 0.0)[bids == 0.0])


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (BidStrategy("linear"), 0.0),
        (BidStrategy("ortb", (("c", 5.0), ("lambda", 0.001))), 0.0),
        (BidStrategy("constant"), 2.0),
    ],
)
def test_a_pctr_of_zero_bids_only_under_the_constant_strategy(strategy: BidStrategy, expected: float) -> None:
    out = strategy.price(np.array([2.0]), np.array([10.0]), np.array([0.0], dtype=np.float32), 0.01, 0.0)
    assert out[0] == expected


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (BidStrategy("linear"), 100.0),  # 2 * 1 / 0.01 = 200, capped at the max bid
        (BidStrategy("ortb", (("c", 5.0), ("lambda", 1.0))), math.sqrt(5.0 * 1000.0 + 25.0) - 5.0),
        (BidStrategy("constant"), 2.0),
    ],
)
def test_a_pctr_of_one(strategy: BidStrategy, expected: float) -> None:
    out = strategy.price(np.array([2.0]), np.array([100.0]), np.array([1.0], dtype=np.float32), 0.01, 0.0)
    assert out[0] == pytest.approx(expected, rel=1e-12)


def test_the_constant_strategy_bids_the_base_bid_whatever_the_pctr() -> None:
    pctr = np.array([0.0, 0.001, 0.02, 0.5, 1.0], dtype=np.float32)
    base = np.full(5, 1.5)
    out = BidStrategy("constant").price(base, np.full(5, 10.0), pctr, 0.02, 0.0)
    np.testing.assert_array_equal(out, base)


def test_a_multiplier_of_two_doubles_a_bid_under_the_max_bid() -> None:
    args = (np.array([1.0, 3.0]), np.array([10.0, 4.0]), np.array([0.02, 0.02], dtype=np.float32), 0.02, 0.0)
    plain, doubled = BidStrategy().price(*args), BidStrategy(multiplier=2.0).price(*args)
    assert doubled[0] == 2.0 * plain[0]
    assert doubled[1] == 4.0  # 6 capped at the max bid


@pytest.mark.parametrize(("pctr", "c", "lam"), [(0.001, 5.0, 0.002), (0.02, 1.0, 0.01), (0.3, 20.0, 0.5)])
def test_ortb_bids_the_cpm_that_maximises_clicks_less_their_shadow_cost(
    pctr: float, c: float, lam: float
) -> None:
    """Zhang et al.'s objective for one impression, with the bid b in CPM (an impression costs b / 1000)
    and w(b) = b / (c + b) the chance of winning: the kernel's bid is its maximum on a fine grid."""
    served = float(np.float32(pctr))  # the pCTR the kernel is given
    grid = np.linspace(0.0, 200.0, 2_000_001)  # steps of 1e-4 CPM
    wins = grid / (c + grid)
    surplus = served * wins - lam * grid / 1000.0 * wins
    best_on_grid = grid[np.argmax(surplus)]
    bid = BidStrategy("ortb", (("c", c), ("lambda", lam))).price(
        np.array([1.0]), np.array([1e6]), np.array([pctr], dtype=np.float32), 0.01, 0.0
    )[0]
    assert 0.0 < bid < 200.0
    assert abs(bid - best_on_grid) <= 1e-4


def test_ortb_in_cpm_is_a_thousand_times_the_papers_bid_per_impression() -> None:
    c, lam, pctr = 4.0, 0.003, 0.01
    c_impression = c / 1000.0
    per_impression = math.sqrt(c_impression / lam * pctr + c_impression**2) - c_impression
    bid = BidStrategy("ortb", (("c", c), ("lambda", lam))).price(
        np.array([1.0]), np.array([1e6]), np.array([pctr], dtype=np.float32), 0.01, 0.0
    )[0]
    assert bid == pytest.approx(1000.0 * per_impression, rel=1e-6)


def test_price_is_the_linear_strategy() -> None:
    args = (np.array([1.0, 2.0]), np.array([5.0, 5.0]), np.array([0.01, 0.05], dtype=np.float32), 0.02, 0.5)
    np.testing.assert_array_equal(price(*args), BidStrategy().price(*args))


@pytest.mark.parametrize(
    ("name", "params", "multiplier", "named"),
    [
        ("second-price", {}, 1.0, "strategy='second-price'"),
        ("ortb", {"c": 5.0}, 1.0, "strategy_params.lambda"),
        ("ortb", {"c": 5.0, "lambda": -1.0}, 1.0, "strategy_params.lambda=-1.0"),
        ("linear", {"c": 5.0}, 1.0, "strategy_params.c"),
        ("linear", {}, 0.0, "bid_multiplier=0.0"),
        ("linear", {}, float("inf"), "bid_multiplier=inf"),
    ],
)
def test_a_strategy_that_cannot_price_is_refused_naming_what(
    name: str, params: dict[str, float], multiplier: float, named: str
) -> None:
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("(", r"\(")):
        check_strategy(name, params, multiplier)


def test_decision_settings_refuse_an_unknown_strategy() -> None:
    with pytest.raises(ValueError, match="strategy='flat'"):
        DecisionSettings(strategy="flat")


def test_pctr_of_the_wrong_dtype_is_refused() -> None:
    with pytest.raises(ValueError, match="pctr: expected a C-contiguous float32"):
        BidStrategy("constant").price(np.array([1.0]), np.array([2.0]), np.array([0.1]), 0.01, 0.0)
