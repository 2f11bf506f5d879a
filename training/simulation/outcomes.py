"""What happens after a win, drawn from the demo world's ground truth.

A won impression renders with a fixed probability (an ad the page never shows is billed nowhere). A
rendered one is clicked with the world's true click probability (World.true_ctr: the similarity of the
person's true tag weights to the campaign's personas, the campaign's quality, device, slot size), a few
seconds later. A click converts with the advertiser's post-click conversion rate, some minutes or hours
later; an impression that was not clicked converts, less often (in proportion to how relevant the ad
was), some hours later. An order has a lognormal value of the advertiser's own, and a buyer buys again
with some probability, again and again (a geometric number of repeat purchases).

Every draw of a bid is made at once, when its response arrives, from the auction's own random stream,
so that a seed gives the same outcomes whatever order the server's answers come back in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from personabid.world import SIZES, World


@dataclass(frozen=True)
class Behaviour:
    """How people respond to ads; delays in seconds of the server's clock."""

    render_rate: float = 0.92
    click_delay_mean: float = 20.0  # exponential, after the impression
    click_conversion_low: float = 0.02  # per advertiser, uniform between these
    click_conversion_high: float = 0.10
    view_conversion_factor: float = 0.1  # post-view conversion probability = factor * true CTR
    click_conversion_delay: float = 1800.0  # lognormal median after the click
    view_conversion_delay: float = 4 * 3600.0  # lognormal median after the impression
    repeat_rate: float = 0.25  # the chance that a buyer buys again, after each purchase
    repeat_delay: float = 8 * 3600.0  # lognormal median after the last purchase
    delay_sigma: float = 1.0
    order_value_median_low: float = 20.0  # USD, per advertiser, log-uniform between these
    order_value_median_high: float = 150.0
    order_value_sigma: float = 0.8
    duplicate_rate: float = 0.02  # a site that sends the same order twice
    conversion_scale: float = 1.0  # every conversion probability times this (capped at 1)

    def __post_init__(self) -> None:
        for name in ("render_rate", "click_conversion_low", "click_conversion_high", "repeat_rate",
                     "duplicate_rate"):  # fmt: skip
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 or (name == "repeat_rate" and value >= 1.0):
                raise ValueError(f"behaviour {name}={value!r}: expected a probability in [0, 1)")
        if self.click_conversion_low > self.click_conversion_high:
            raise ValueError("behaviour click_conversion_low is above click_conversion_high")
        if not (math.isfinite(self.conversion_scale) and self.conversion_scale >= 0):
            raise ValueError(f"behaviour conversion_scale={self.conversion_scale!r}: expected a number >= 0")


@dataclass(frozen=True)
class Purchase:
    delay: float  # seconds after the impression
    value: float  # USD
    post_click: bool
    duplicate: bool  # the site sends it twice


@dataclass(frozen=True)
class Story:
    """The drawn fate of a won bid."""

    rendered: bool
    click_delay: float | None  # seconds after the impression; None: no click
    purchases: tuple[Purchase, ...] = ()


@dataclass(frozen=True)
class Expectation:
    """Expected outcomes of one rendered impression under the ground truth."""

    clicks: float
    conversions: float  # first purchases and repeats
    revenue: float  # USD


@dataclass
class Advertisers:
    """Per advertiser: the post-click conversion rate and the lognormal order value."""

    click_conversion: dict[str, float] = field(default_factory=dict)
    value_mu: dict[str, float] = field(default_factory=dict)


class GroundTruth:
    """The world's campaigns as the truth knows them: quality, personas and advertiser."""

    def __init__(self, world: World, campaigns: int, seed: int, behaviour: Behaviour = Behaviour()) -> None:
        self.world, self.behaviour = world, behaviour
        specs, quality = world.campaigns(campaigns)
        self.row = {spec.id: i for i, spec in enumerate(specs)}
        self.quality = np.asarray(quality, dtype=np.float64)
        self.advertiser = [spec.advertiser for spec in specs]
        personas = [np.asarray(spec.personas, dtype=np.float32) for spec in specs]
        self._personas = [p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12) for p in personas]
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x61647673]))
        names = sorted(set(self.advertiser))
        rates = rng.uniform(behaviour.click_conversion_low, behaviour.click_conversion_high, len(names))
        medians = np.exp(
            rng.uniform(
                math.log(behaviour.order_value_median_low), math.log(behaviour.order_value_median_high),
                len(names),
            )
        )  # fmt: skip
        self.advertisers = Advertisers(
            dict(zip(names, rates.tolist(), strict=True)),
            dict(zip(names, np.log(medians).tolist(), strict=True)),
        )

    def knows(self, campaign: str) -> bool:
        return campaign in self.row

    def true_ctr(self, unit_vector: np.ndarray, devicetype: int, w: int, h: int, campaign: str) -> float:
        """The true click probability of `campaign`'s ad in a w x h slot on `devicetype` for a person of
        true tag weights `unit_vector` (float32 (dims,), unit length). 0 for a campaign the world does
        not know."""
        row = self.row.get(campaign)
        if row is None:
            return 0.0
        similarity = float(np.max(self._personas[row] @ unit_vector))
        size = SIZES.index((w, h)) if (w, h) in SIZES else 0
        return float(
            self.world.true_ctr(
                np.array([similarity]), self.quality[row : row + 1], np.array([devicetype]), np.array([size])
            )[0]
        )

    def expect(self, ctr: float, advertiser: str) -> Expectation:
        b = self.behaviour
        first = ctr * self.click_conversion(advertiser) + (1.0 - ctr) * self.view_conversion(ctr)
        conversions = first / (1.0 - b.repeat_rate)
        mean_value = math.exp(self.value_mu(advertiser) + b.order_value_sigma**2 / 2)
        return Expectation(ctr, conversions, conversions * mean_value)

    def click_conversion(self, advertiser: str) -> float:
        b = self.behaviour
        rate = self.advertisers.click_conversion.get(
            advertiser, (b.click_conversion_low + b.click_conversion_high) / 2
        )
        return min(1.0, rate * b.conversion_scale)

    def view_conversion(self, ctr: float) -> float:
        b = self.behaviour
        return min(1.0, b.view_conversion_factor * ctr * b.conversion_scale)

    def value_mu(self, advertiser: str) -> float:
        b = self.behaviour
        fallback = (math.log(b.order_value_median_low) + math.log(b.order_value_median_high)) / 2
        return self.advertisers.value_mu.get(advertiser, fallback)

    def story(self, ctr: float, advertiser: str, rng: np.random.Generator) -> Story:
        """Draw what becomes of a won impression whose true click probability is `ctr`. The draws are
        made in a fixed order and number, whatever their outcomes, so that one bid's story never shifts
        the next one's."""
        b = self.behaviour
        u_render, u_click, u_convert, u_dup = rng.random(4)
        click_delay = float(rng.exponential(b.click_delay_mean))
        click_conv_delay = b.click_conversion_delay * math.exp(b.delay_sigma * rng.standard_normal())
        view_conv_delay = b.view_conversion_delay * math.exp(b.delay_sigma * rng.standard_normal())
        if u_render >= b.render_rate:
            return Story(False, None)
        clicked = bool(u_click < ctr)
        if clicked:
            converts, at = u_convert < self.click_conversion(advertiser), click_delay + click_conv_delay
        else:
            converts, at = u_convert < self.view_conversion(ctr), view_conv_delay
        purchases: list[Purchase] = []
        if converts:
            mu = self.value_mu(advertiser)
            # The first order comes through the ad (and names the click when there was one); a repeat
            # is a visit of its own, known by the user only.
            through_click, duplicate = clicked, bool(u_dup < b.duplicate_rate)
            while True:
                value = round(math.exp(mu + b.order_value_sigma * rng.standard_normal()), 2)
                purchases.append(Purchase(at, value, through_click, duplicate))
                if rng.random() >= b.repeat_rate:
                    break
                at += b.repeat_delay * math.exp(b.delay_sigma * rng.standard_normal())
                through_click, duplicate = False, False
        return Story(True, click_delay if clicked else None, tuple(purchases))
