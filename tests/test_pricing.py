"""The pricing kernel and winner selection against plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.decision.pricing import best, price


def reference_price(base: float, cap: float, pctr: float, avg_ctr: float, floor: float) -> float:
    bid = min(base * pctr / avg_ctr, cap)
    return bid if bid > 0 and bid >= floor else 0.0


@given(
    st.lists(
        st.tuples(st.floats(0.01, 50), st.floats(0.01, 100), st.floats(0, 1, width=32)),
        max_size=40,
    ),
    st.floats(0.001, 0.5),
    st.floats(0, 20),
)
@settings(max_examples=200, deadline=None)
def test_price_matches_reference(
    rows: list[tuple[float, float, float]], avg_ctr: float, floor: float
) -> None:
    base = np.array([r[0] for r in rows], dtype=np.float64)
    cap = np.array([r[1] for r in rows], dtype=np.float64)
    pctr = np.array([r[2] for r in rows], dtype=np.float32)
    expected = [
        reference_price(b, c, float(p), avg_ctr, floor) for b, c, p in zip(base, cap, pctr, strict=True)
    ]
    np.testing.assert_allclose(price(base, cap, pctr, avg_ctr, floor), expected, rtol=1e-12)


def test_bid_is_capped_at_max_bid() -> None:
    out = price(np.array([2.0]), np.array([3.0]), np.array([0.5], dtype=np.float32), 0.01, 0.0)
    assert out[0] == 3.0


def test_bid_below_floor_is_zero() -> None:
    out = price(np.array([2.0]), np.array([10.0]), np.array([0.01], dtype=np.float32), 0.01, 2.5)
    assert out[0] == 0.0


def test_empty_candidates_price_to_empty() -> None:
    assert price(np.array([]), np.array([]), np.array([], dtype=np.float32), 0.01, 0.0).shape == (0,)


@pytest.mark.parametrize(
    ("prices", "pctr", "winner"),
    [
        ([0.0, 0.0], [0.1, 0.2], -1),
        ([1.0, 3.0, 2.0], [0.1, 0.1, 0.9], 1),
        ([3.0, 3.0], [0.1, 0.2], 1),
        ([3.0, 3.0], [0.2, 0.2], 0),
        ([], [], -1),
    ],
)
def test_best_picks_highest_price_then_pctr_then_first(
    prices: list[float], pctr: list[float], winner: int
) -> None:
    assert best(np.array(prices), np.array(pctr, dtype=np.float32)) == winner
