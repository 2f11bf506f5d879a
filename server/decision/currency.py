"""Currencies: floors arrive in the exchange's, budgets and bids are reckoned in US dollars.

The table comes from configuration (`currencies`: the value of one unit of each currency in USD). A
currency missing from it is not an error in a request: the decision declines with no-bid reason 510.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

USD = "USD"


@dataclass(frozen=True)
class Currencies:
    usd_per_unit: Mapping[str, float] = field(default_factory=lambda: {USD: 1.0})

    def to_usd(self, amount: float, currency: str) -> float | None:
        """`amount` of `currency` in USD, None when the table has no rate for it."""
        rate = self.usd_per_unit.get(currency or USD)
        return None if rate is None else amount * rate

    def from_usd(self, amount: float, currency: str) -> float:
        return amount / self.usd_per_unit[currency]

    def for_bids(self, accepted: tuple[str, ...]) -> str | None:
        """The currency to bid in: USD when the exchange takes it (or names none), else the first it
        takes that has a rate; None when there is none."""
        if not accepted or USD in accepted:
            return USD
        return next((c for c in accepted if c in self.usd_per_unit), None)
