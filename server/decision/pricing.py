"""Pricing: a CTR-weighted bid under each campaign's cap, which must clear the floor."""

from __future__ import annotations

import numba as nb
import numpy as np

from personabid.arrays import require


@nb.njit(cache=True)
def _price(
    base_bid: np.ndarray, max_bid: np.ndarray, pctr: np.ndarray, avg_ctr: float, floors: np.ndarray
) -> np.ndarray:
    out = np.empty(base_bid.shape[0], dtype=np.float64)
    for i in range(base_bid.shape[0]):
        bid = min(base_bid[i] * pctr[i] / avg_ctr, max_bid[i])
        # A bid must be positive and clear the floor; 0 marks a candidate that cannot bid.
        out[i] = bid if bid > 0.0 and bid >= floors[i] else 0.0
    return out


def price(
    base_bid: np.ndarray, max_bid: np.ndarray, pctr: np.ndarray, avg_ctr: float, floor: float | np.ndarray
) -> np.ndarray:
    """float64 (m,) CPM bids: base_bid * pctr / avg_ctr capped at max_bid, 0 where it misses the floor.

    `base_bid` and `max_bid` are float64 (m,), `pctr` float32 (m,); `avg_ctr` is the model's mean CTR, at
    which a campaign bids its base bid. `floor` is one CPM for every candidate or float64 (m,), one each
    (a candidate bidding through a deal has the deal's floor).
    """
    m = len(require("base_bid", base_bid, np.float64, 1))
    require("max_bid", max_bid, np.float64, 1, length=m)
    require("pctr", pctr, np.float32, 1, length=m)
    if isinstance(floor, np.ndarray):
        floors = require("floor", floor, np.float64, 1, length=m)
    else:
        floors = np.full(m, float(floor), dtype=np.float64)
    return _price(base_bid, max_bid, pctr, float(avg_ctr), floors)


def best(prices: np.ndarray, pctr: np.ndarray) -> int:
    """Index of the winning candidate (highest price, then highest pCTR, then first), or -1 if none bids."""
    if prices.size == 0 or prices.max() <= 0.0:
        return -1
    top = np.flatnonzero(prices == prices.max())
    return int(top[np.argmax(pctr[top])])
