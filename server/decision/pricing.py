"""Pricing: a bid strategy turns each candidate's pCTR into a CPM bid, a multiplier scales it, each
campaign's max bid caps it, and it must clear the floor.

Strategies (all bids in USD CPM):
- linear: base_bid * pctr / avg_ctr. A campaign bids its base bid at the model's mean CTR, more on users
  the model rates above it. The default.
- constant: base_bid, as if every pCTR were the model's mean: the bid a model-free buyer makes, the
  baseline an experiment measures the model against.
- ortb: sqrt(c / lambda * pctr * 1000 + c^2) - c, the concave bid of Zhang, Yuan and Wang, "Optimal
  real-time bidding for display advertising" (KDD 2014, ORTB1). The paper prices one impression; bids
  here are per thousand, so the expected clicks per impression (pctr) are scaled by 1000. Params:
  `c` (USD CPM), the bid at which the winning-rate curve w(b) = b / (c + b) wins half the auctions;
  `lambda` (clicks per USD), the Lagrange multiplier of the budget constraint: 1 / lambda is what a
  click is worth at the margin. Derivation: maximise pctr * w(b) - lambda * (b / 1000) * w(b) over b;
  the optimum solves b^2 + 2cb = 1000 c pctr / lambda.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numba as nb
import numpy as np

from personabid.arrays import require
from personabid.spend.store import MICROS_PER_CPM

# Each strategy's parameters, all required; none takes any other.
STRATEGIES: dict[str, tuple[str, ...]] = {"linear": (), "constant": (), "ortb": ("c", "lambda")}
# A bid multiplier is a share of the strategy's bid; beyond this it is a typing mistake, not a test.
MAX_MULTIPLIER = 1000.0


# A strategy's code in the kernels.
_CODES = {"linear": 0, "constant": 1, "ortb": 2}


@nb.njit(cache=True, inline="always")
def _strategy_bid(strategy: int, c: float, lam: float, avg_ctr: float, base_bid: float, pctr: float) -> float:
    """The strategy's CPM bid for one candidate, before the multiplier and the cap."""
    if strategy == 0:
        return base_bid * pctr / avg_ctr
    if strategy == 1:
        return base_bid
    # In float64: run as plain Python (NUMBA_DISABLE_JIT), a float times a float32 stays float32.
    return math.sqrt(c / lam * float(pctr) * 1000.0 + c * c) - c


@nb.njit(cache=True, inline="always")
def _settled(raw: float, multiplier: float, max_bid: float, floor: float) -> float:
    bid = min(raw * multiplier, max_bid)
    # A bid must be positive and clear the floor; 0 marks a candidate that cannot bid.
    return bid if bid > 0.0 and bid >= floor else 0.0


@nb.njit(cache=True)
def _prices(
    strategy: int,
    c: float,
    lam: float,
    avg_ctr: float,
    multiplier: float,
    base_bid: np.ndarray,
    max_bid: np.ndarray,
    pctr: np.ndarray,
    floors: np.ndarray,
) -> np.ndarray:
    out = np.empty(base_bid.shape[0], dtype=np.float64)
    for i in range(base_bid.shape[0]):
        raw = _strategy_bid(strategy, c, lam, avg_ctr, base_bid[i], pctr[i])
        out[i] = _settled(raw, multiplier, max_bid[i], floors[i])
    return out


@nb.njit(cache=True)
def _priced_pick(
    strategy: int,
    c: float,
    lam: float,
    avg_ctr: float,
    multiplier: float,
    base_bid: np.ndarray,
    max_bid: np.ndarray,
    rows: np.ndarray,
    pctr: np.ndarray,
    floors: np.ndarray,
    fixed: np.ndarray,
    budget_left: np.ndarray,
    check_budget: bool,
) -> tuple[np.ndarray, int, bool]:
    m = rows.shape[0]
    prices = np.empty(m, dtype=np.float64)
    winner = -1
    short = False
    for i in range(m):
        r = rows[i]
        raw = _strategy_bid(strategy, c, lam, avg_ctr, base_bid[r], pctr[i])
        price = _settled(raw, multiplier, max_bid[r], floors[i])
        if fixed[i] and price > 0.0:
            price = floors[i]  # a fixed-price deal is bought at its floor, by any bid that reaches it
        if check_budget and price > 0.0 and budget_left[i] < np.rint(price * MICROS_PER_CPM):
            short = True  # the campaign's remaining budget cannot cover the bid's cost: no bid
            price = 0.0
        prices[i] = price
        if price > 0.0 and (
            winner < 0 or price > prices[winner] or (price == prices[winner] and pctr[i] > pctr[winner])
        ):
            winner = i
    return prices, winner, short


def check_strategy(name: str, params: Mapping[str, float], multiplier: float = 1.0) -> None:
    """ValueError naming the strategy, parameter or multiplier that cannot price a bid."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy={name!r}: expected one of {sorted(STRATEGIES)}")
    wanted = STRATEGIES[name]
    for key in params:
        if key not in wanted:
            raise ValueError(
                f"strategy_params.{key}: strategy {name!r} takes "
                + (", ".join(wanted) if wanted else "no parameters")
            )
    for key in wanted:
        if key not in params:
            raise ValueError(f"strategy_params.{key}: strategy {name!r} needs it")
        value = params[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"strategy_params.{key}={value!r}: expected a number")
        if not (math.isfinite(value) and 0.0 < value <= 1e6):
            raise ValueError(f"strategy_params.{key}={value!r}: expected a number in (0, 1e6]")
    if isinstance(multiplier, bool) or not isinstance(multiplier, int | float):
        raise ValueError(f"bid_multiplier={multiplier!r}: expected a number")
    if not (math.isfinite(multiplier) and 0.0 < multiplier <= MAX_MULTIPLIER):
        raise ValueError(f"bid_multiplier={multiplier!r}: expected a number in (0, {MAX_MULTIPLIER:g}]")


@dataclass(frozen=True)
class BidStrategy:
    """How a variant prices: the strategy, its parameters (sorted (name, value) pairs) and a multiplier."""

    name: str = "linear"
    params: tuple[tuple[str, float], ...] = ()
    multiplier: float = 1.0

    def __post_init__(self) -> None:
        check_strategy(self.name, dict(self.params), self.multiplier)

    def price(
        self,
        base_bid: np.ndarray,
        max_bid: np.ndarray,
        pctr: np.ndarray,
        avg_ctr: float,
        floor: float | np.ndarray,
    ) -> np.ndarray:
        """float64 (m,) CPM bids: the strategy's bid times the multiplier, capped at max_bid, 0 where it
        misses the floor.

        `base_bid` and `max_bid` are float64 (m,), `pctr` float32 (m,); `avg_ctr` is the model's mean CTR.
        `floor` is one CPM for every candidate or float64 (m,), one each (a deal's floor).
        """
        m = len(require("base_bid", base_bid, np.float64, 1))
        require("max_bid", max_bid, np.float64, 1, length=m)
        require("pctr", pctr, np.float32, 1, length=m)
        if isinstance(floor, np.ndarray):
            floors = require("floor", floor, np.float64, 1, length=m)
        else:
            floors = np.full(m, float(floor), dtype=np.float64)
        c, lam = self._check(avg_ctr)
        return _prices(
            _CODES[self.name], c, lam, float(avg_ctr), float(self.multiplier), base_bid, max_bid, pctr, floors
        )

    def _check(self, avg_ctr: float) -> tuple[float, float]:
        """The ortb parameters (c, lambda; placeholders for the other strategies), once avg_ctr is known to
        serve the linear strategy."""
        if self.name == "linear" and not 0.0 < avg_ctr < 1.0:
            raise ValueError(f"avg_ctr={avg_ctr}: expected a mean CTR in (0, 1)")
        params = dict(self.params)
        return float(params.get("c", 0.0)), float(params.get("lambda", 1.0))

    def priced_pick(
        self,
        table_base_bid: np.ndarray,
        table_max_bid: np.ndarray,
        rows: np.ndarray,
        pctr: np.ndarray,
        avg_ctr: float,
        floors: np.ndarray,
        fixed: np.ndarray,
        budget_left: np.ndarray | None,
    ) -> tuple[np.ndarray, int, bool]:
        """One pass over the candidates `rows`: each one's price (as `price`, then a fixed-price deal's
        floor for a bid that reaches it, then 0 where the campaign's `budget_left`, int64 micros per
        candidate, cannot cover it), the winner (as `best`: -1 for none) and whether a budget stopped some
        bid. The campaign columns are the whole table's, read at `rows`; `floors` float64 and `fixed` bool
        are per candidate; `budget_left` None: no budget applies (a test auction)."""
        c, lam = self._check(avg_ctr)
        return _priced_pick(
            _CODES[self.name],
            c,
            lam,
            float(avg_ctr),
            float(self.multiplier),
            table_base_bid,
            table_max_bid,
            rows,
            pctr,
            floors,
            fixed,
            budget_left if budget_left is not None else _NO_BUDGET,
            budget_left is not None,
        )


LINEAR = BidStrategy()
_NO_BUDGET = np.zeros(0, dtype=np.int64)


def price(
    base_bid: np.ndarray, max_bid: np.ndarray, pctr: np.ndarray, avg_ctr: float, floor: float | np.ndarray
) -> np.ndarray:
    """float64 (m,) CPM bids of the linear strategy: base_bid * pctr / avg_ctr capped at max_bid, 0 where
    it misses the floor (shapes as BidStrategy.price)."""
    return LINEAR.price(base_bid, max_bid, pctr, avg_ctr, floor)


def best(prices: np.ndarray, pctr: np.ndarray) -> int:
    """Index of the winning candidate (highest price, then highest pCTR, then first), or -1 if none bids."""
    if prices.size == 0 or prices.max() <= 0.0:
        return -1
    top = np.flatnonzero(prices == prices.max())
    return int(top[np.argmax(pctr[top])])
