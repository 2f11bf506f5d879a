"""The other bidders: what an impression clears at without us, and the auction that settles our bid.

The highest competing bid of an impression is lognormal, with a median and a spread per bucket of slot
size and country (big slots and rich countries cost more), drawn once from the seed. An exchange runs a
first-price auction (the winner pays its bid) or a second-price one (the winner pays the higher of the
competing bid and the floor), with a floor per bucket, and some exchanges tell a loser the price it
needed (OpenRTB's ${AUCTION_MIN_TO_WIN}).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from personabid.world import COUNTRIES, SIZES

FIRST_PRICE, SECOND_PRICE = 1, 2  # OpenRTB's BidRequest.at
LOSS_BELOW_FLOOR = 100  # OpenRTB loss reasons (${AUCTION_LOSS})
LOSS_HIGHER_BID = 102
AUCTIONS = ("first", "second", "mixed")
EXCHANGES = 10  # exchanges the traffic comes through, in equal shares

# The median highest competing CPM (USD) of a 300x250 in the richest markets, and the other sizes and
# countries relative to it: what display inventory roughly costs (bigger and taller slots more, mobile
# banners less).
SIZE_LEVEL = {
    (300, 250): 1.0,
    (728, 90): 0.7,
    (320, 50): 0.45,
    (160, 600): 0.8,
    (300, 600): 1.4,
    (970, 250): 1.7,
    (320, 480): 1.5,
}
COUNTRY_LEVEL = {
    **dict.fromkeys(("USA", "GBR", "CAN", "AUS", "DEU", "NLD", "SWE", "JPN", "KOR"), 1.0),
    **dict.fromkeys(("FRA", "ESP", "ITA", "POL"), 0.7),
    **dict.fromkeys(("MEX", "BRA", "ARG", "CHN", "ZAF"), 0.45),
    **dict.fromkeys(("IND", "IDN"), 0.3),
}


@dataclass(frozen=True)
class Bucket:
    """The competing price of one (slot size, country): lognormal(log(median), sigma), and the floor."""

    median: float  # USD CPM
    sigma: float
    floor: float  # USD CPM

    def __post_init__(self) -> None:
        for name in ("median", "sigma"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"bucket {name}={value!r}: expected a finite positive number")
        if not (math.isfinite(self.floor) and self.floor >= 0):
            raise ValueError(f"bucket floor={self.floor!r}: expected a finite number >= 0")


@dataclass(frozen=True)
class Exchange:
    name: str
    auction: int  # FIRST_PRICE or SECOND_PRICE
    tells_min_to_win: bool


@dataclass(frozen=True)
class Clearing:
    """How an auction ended for our bid."""

    won: bool
    price: float  # what the winner pays (USD CPM): ours when won, else the price that beat us
    loss_reason: int  # 0 when won
    min_to_win: float  # the lowest bid that would have won (USD CPM)


def clear(bid: float, competing: float, floor: float, auction: int) -> Clearing:
    """Settle `bid` against the highest other bid and the floor (all USD CPM). A tie goes to the other
    bidder, who was there first."""
    needed = max(competing, floor)
    if bid < floor:
        return Clearing(False, needed, LOSS_BELOW_FLOOR, needed)
    if bid <= competing:
        return Clearing(False, needed, LOSS_HIGHER_BID, needed)
    price = bid if auction == FIRST_PRICE else needed
    return Clearing(True, price, 0, needed)


def exchanges(auction: str, min_to_win_share: float) -> tuple[Exchange, ...]:
    """EXCHANGES exchanges: all first-price, all second-price, or ("mixed") half each; the first
    `min_to_win_share` of them tell losers the price to win."""
    if auction not in AUCTIONS:
        raise ValueError(f"auction={auction!r}: expected one of {list(AUCTIONS)}")
    if not 0.0 <= min_to_win_share <= 1.0:
        raise ValueError(f"min_to_win_share={min_to_win_share!r}: expected a share in [0, 1]")
    telling = round(min_to_win_share * EXCHANGES)
    out = []
    for i in range(EXCHANGES):
        kind = {"first": FIRST_PRICE, "second": SECOND_PRICE}.get(auction, FIRST_PRICE + i % 2)
        out.append(Exchange(f"exchange-{i}", kind, i < telling))
    return tuple(out)


class Market:
    """The buckets of a seed: median = level * SIZE_LEVEL * COUNTRY_LEVEL * a little noise per bucket,
    spread between `sigma_low` and `sigma_high`, floor = `floor_share` of the median."""

    def __init__(
        self,
        seed: int,
        level: float = 5.0,
        floor_share: float = 0.25,
        sigma_low: float = 0.5,
        sigma_high: float = 0.9,
    ) -> None:
        if not (math.isfinite(level) and level > 0):
            raise ValueError(f"market level={level!r}: expected a positive CPM")
        if not 0.0 <= floor_share < 1.0:
            raise ValueError(f"floor_share={floor_share!r}: expected a share in [0, 1)")
        if not 0.0 < sigma_low <= sigma_high:
            raise ValueError(f"sigma_low={sigma_low!r}, sigma_high={sigma_high!r}: expected 0 < low <= high")
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6D61726B]))
        noise = np.exp(rng.normal(0.0, 0.15, size=(len(SIZES), len(COUNTRIES))))
        spread = rng.uniform(sigma_low, sigma_high, size=(len(SIZES), len(COUNTRIES)))
        self.buckets: dict[tuple[tuple[int, int], str], Bucket] = {}
        for s, size in enumerate(SIZES):
            for c, country in enumerate(COUNTRIES):
                median = level * SIZE_LEVEL[size] * COUNTRY_LEVEL[country] * float(noise[s, c])
                self.buckets[size, country] = Bucket(median, float(spread[s, c]), floor_share * median)
        # A slot or a country the world does not know costs what the average bucket costs.
        medians = [b.median for b in self.buckets.values()]
        self.default = Bucket(float(np.median(medians)), (sigma_low + sigma_high) / 2, floor_share * level)

    def bucket(self, w: int, h: int, country: str) -> Bucket:
        return self.buckets.get(((w, h), country), self.default)

    @staticmethod
    def competing(bucket: Bucket, rng: np.random.Generator) -> float:
        """One draw of the highest other bid (USD CPM)."""
        return float(bucket.median * math.exp(bucket.sigma * rng.standard_normal()))
