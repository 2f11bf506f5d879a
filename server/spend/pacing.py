"""Budget pacing: a throttle on the share of eligible auctions a campaign bids in, so that its daily
budget lasts the day instead of going in the first hour of traffic.

The controller follows Agarwal et al., "Budget Pacing for Targeted Online Advertisements at LinkedIn"
(KDD 2014): each campaign has a throttle rate r in [min_rate, 1], the probability that it takes part in an
auction it is eligible for. Every interval the spend so far is compared with the planned curve, here
uniform over the UTC day (planned(t) = budget * t / day): ahead of the plan, r falls by a factor
(1 - step); behind it, r rises by (1 + step). Multiplicative steps adapt as fast to a campaign that needs
1 % of its traffic as to one that needs 90 %. A campaign starts the day unthrottled (initial_rate 1):
ahead of the plan after the first interval, it then falls geometrically, so what the first minutes can
spend before the controller catches up is bounded by a few intervals of full traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DAY = 86_400.0


@dataclass(frozen=True)
class PacingParams:
    interval: float = 60.0  # seconds between adjustments
    step: float = 0.2
    min_rate: float = 0.001
    initial_rate: float = 1.0


def planned_fraction(now: float) -> float:
    """Share of the UTC day gone by at unix time `now`: the uniform plan's share of the budget."""
    return (now % DAY) / DAY


def next_rates(
    rates: np.ndarray, spent: np.ndarray, budgets: np.ndarray, plan: float, params: PacingParams
) -> np.ndarray:
    """float64 (n,) new throttle rates from the current ones, spend so far and daily budgets (micros, (n,)).

    Campaigns without a budget (0) are not throttled.
    """
    ahead = spent > budgets * plan
    adjusted = np.where(ahead, rates * (1.0 - params.step), rates * (1.0 + params.step))
    return np.where(budgets > 0, np.clip(adjusted, params.min_rate, 1.0), 1.0)
