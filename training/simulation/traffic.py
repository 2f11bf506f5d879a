"""Who arrives when: bid requests on the server's clock, with a daily and hourly pattern.

Arrivals are a Poisson process whose rate follows the time of day (UTC hour: quiet at night, a
lunchtime bump, an evening peak) and the day of the week, drawn by thinning: candidates at the peak rate,
each kept with the ratio of the rate at its moment to the peak. The pattern is normalised so that over a
whole week the rate averages the one asked for.

The people are the demo world's, with their ids. Some are far more active than others (a lognormal
activity weight each), so that a person comes back, sees ads again and can buy again. A share of the
requests carries no user id (an exchange that may not pass it on): the server answers them from the
context alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec
import numpy as np

from personabid.behaviour import Population
from personabid.client import exchange_auction
from personabid.openrtb.request import BidRequest, User
from personabid.world import World

HOUR, DAY = 3600, 86_400
# Relative traffic by UTC hour, 0 to 23.
HOURLY = (
    0.45, 0.32, 0.25, 0.22, 0.24, 0.32, 0.50, 0.75, 0.95, 1.05, 1.10, 1.15,
    1.25, 1.20, 1.10, 1.08, 1.10, 1.20, 1.40, 1.62, 1.75, 1.65, 1.30, 0.80,
)  # fmt: skip
# Relative traffic by day of the week, Monday first (unix day 0 was a Thursday).
DAILY = (1.0, 0.98, 0.98, 1.0, 1.02, 1.03, 0.99)
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday


@dataclass(frozen=True)
class Diurnal:
    """The shape of traffic: relative rates by UTC hour (24) and weekday (7), each normalised to mean 1."""

    hourly: tuple[float, ...] = HOURLY
    daily: tuple[float, ...] = DAILY

    def __post_init__(self) -> None:
        for name, values, count in (("hourly", self.hourly, 24), ("daily", self.daily, 7)):
            if len(values) != count:
                raise ValueError(f"diurnal {name}: {len(values)} values, expected {count}")
            if not all(math.isfinite(v) and v >= 0 for v in values) or not any(values):
                raise ValueError(f"diurnal {name}={values!r}: expected non-negative numbers, not all 0")

    def factor(self, t: float) -> float:
        """The rate at unix time `t` relative to the average."""
        hour = int(t // HOUR) % 24
        weekday = (int(t // DAY) + _EPOCH_WEEKDAY) % 7
        return (self.hourly[hour] / _mean(self.hourly)) * (self.daily[weekday] / _mean(self.daily))

    def peak(self) -> float:
        return (max(self.hourly) / _mean(self.hourly)) * (max(self.daily) / _mean(self.daily))

    @classmethod
    def flat(cls) -> Diurnal:
        """The same rate at every hour of every day."""
        return cls(hourly=(1.0,) * 24, daily=(1.0,) * 7)

    def hourly_shares(self) -> np.ndarray:
        """float64 (24,): the share of a day's traffic in each UTC hour."""
        hourly = np.asarray(self.hourly, dtype=np.float64)
        return hourly / hourly.sum()


def _mean(values: tuple[float, ...]) -> float:
    return sum(values) / len(values)


def arrivals(
    start: float,
    end: float,
    rate: float,
    rng: np.random.Generator,
    diurnal: Diurnal = Diurnal(),
    limit: int | None = None,
) -> Iterator[float]:
    """Arrival times in [start, end) (server clock, unix seconds), increasing: `rate` per second on
    average over a week, shaped by `diurnal`; at most `limit` of them."""
    if not (math.isfinite(rate) and rate >= 0):
        raise ValueError(f"rate={rate!r}: expected a finite rate >= 0 per second")
    if not (math.isfinite(start) and math.isfinite(end)):
        raise ValueError(f"window [{start!r}, {end!r}): expected finite times")
    if rate == 0 or end <= start or limit == 0:
        return
    peak = diurnal.peak()
    top = rate * peak
    t, kept = start, 0
    while True:
        t += rng.exponential(1.0 / top)
        if t >= end:
            return
        if rng.random() * peak < diurnal.factor(t):
            yield t
            kept += 1
            if limit is not None and kept >= limit:
                return


class Audience:
    """The world's people as an exchange sees them: who comes, and the request their visit makes."""

    def __init__(
        self,
        world: World,
        people: Population,
        seed: int,
        anonymous_share: float = 0.1,
        activity_sigma: float = 1.0,
    ) -> None:
        if not 0.0 <= anonymous_share <= 1.0:
            raise ValueError(f"anonymous_share={anonymous_share!r}: expected a share in [0, 1]")
        if not len(people.ids):
            raise ValueError("the population is empty: build the demo world with people (demo --people)")
        self.world, self.people, self.anonymous_share = world, people, anonymous_share
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x61756469]))
        activity = rng.lognormal(0.0, activity_sigma, size=len(people.ids))
        self._cumulative = np.cumsum(activity / activity.sum())
        norms = np.linalg.norm(people.users.vectors, axis=1, keepdims=True)
        self.unit_vectors = (people.users.vectors / np.maximum(norms, 1e-12)).astype(np.float32)

    def person(self, rng: np.random.Generator) -> int:
        """A person, by their activity."""
        found = int(np.searchsorted(self._cumulative, rng.random(), side="right"))
        return min(found, len(self.people.ids) - 1)

    def request(self, person: int, request_id: str, rng: np.random.Generator) -> tuple[BidRequest, bool]:
        """The person's bid request (a banner their device shows, the page they read), and whether it
        carries their id."""
        base = exchange_auction(self.world, self.people, rng, person)
        named = bool(rng.random() >= self.anonymous_share)
        return msgspec.structs.replace(base, id=request_id, user=base.user if named else User()), named


def at_auction(request: BidRequest, floor: float, auction: int) -> BidRequest:
    """`request` as an exchange sends it into its auction: the floor (USD CPM) and the auction type."""
    imps = tuple(msgspec.structs.replace(imp, bidfloor=floor, bidfloorcur="USD") for imp in request.imp)
    return msgspec.structs.replace(request, imp=imps, at=auction)
