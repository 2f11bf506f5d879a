"""The simulated market's other bidders and its auctions: who wins, what the winner pays, the floor, and
the competing prices' medians per bucket of slot size and country."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from personabid.training.simulation.market import (
    EXCHANGES,
    FIRST_PRICE,
    LOSS_BELOW_FLOOR,
    LOSS_HIGHER_BID,
    SECOND_PRICE,
    Bucket,
    Market,
    clear,
    exchanges,
)

cpm = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
auction = st.sampled_from((FIRST_PRICE, SECOND_PRICE))


def test_a_first_price_winner_pays_its_bid() -> None:
    clearing = clear(bid=3.0, competing=2.0, floor=0.5, auction=FIRST_PRICE)
    assert (clearing.won, clearing.price) == (True, 3.0)


def test_a_second_price_winner_pays_the_competing_bid() -> None:
    clearing = clear(bid=3.0, competing=2.0, floor=0.5, auction=SECOND_PRICE)
    assert (clearing.won, clearing.price) == (True, 2.0)


def test_a_second_price_winner_pays_the_floor_when_the_competition_bid_under_it() -> None:
    clearing = clear(bid=3.0, competing=0.2, floor=0.5, auction=SECOND_PRICE)
    assert (clearing.won, clearing.price) == (True, 0.5)


def test_a_bid_under_the_floor_loses_below_floor() -> None:
    clearing = clear(bid=0.4, competing=0.1, floor=0.5, auction=FIRST_PRICE)
    assert (clearing.won, clearing.loss_reason) == (False, LOSS_BELOW_FLOOR)


def test_a_bid_under_the_competing_bid_loses_to_a_higher_bid_and_learns_the_price_to_win() -> None:
    clearing = clear(bid=1.0, competing=2.0, floor=0.5, auction=SECOND_PRICE)
    assert (clearing.won, clearing.loss_reason, clearing.min_to_win) == (False, LOSS_HIGHER_BID, 2.0)


@given(bid=cpm, competing=cpm, floor=cpm, kind=auction)
def test_a_winner_never_pays_under_the_floor_nor_over_its_bid(
    bid: float, competing: float, floor: float, kind: int
) -> None:
    clearing = clear(bid, competing, floor, kind)
    if clearing.won:
        assert floor <= clearing.price <= bid


@given(bid=cpm, competing=cpm, floor=cpm, kind=auction)
def test_a_bid_wins_exactly_when_it_beats_both_the_competition_and_the_floor(
    bid: float, competing: float, floor: float, kind: int
) -> None:
    assert clear(bid, competing, floor, kind).won == (bid > competing and bid >= floor)


@given(bid=cpm, competing=cpm, floor=cpm)
def test_second_price_never_costs_more_than_first_price(bid: float, competing: float, floor: float) -> None:
    first = clear(bid, competing, floor, FIRST_PRICE)
    second = clear(bid, competing, floor, SECOND_PRICE)
    assert first.won == second.won
    if first.won:
        assert second.price <= first.price


@settings(max_examples=25, deadline=None)
@given(
    median=st.floats(min_value=0.05, max_value=50.0),
    sigma=st.floats(min_value=0.1, max_value=2.0),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_the_competing_prices_of_a_bucket_have_its_median(median: float, sigma: float, seed: int) -> None:
    bucket = Bucket(median, sigma, 0.0)
    rng = np.random.default_rng(seed)
    draws = np.array([Market.competing(bucket, rng) for _ in range(4001)])
    # The sample median of n lognormal draws: log-scale standard error about 1.2533 sigma / sqrt(n).
    standard_error = 1.2533 * sigma / math.sqrt(len(draws))
    assert abs(math.log(float(np.median(draws))) - math.log(median)) < 5 * standard_error


def test_big_slots_in_rich_countries_cost_more_than_small_ones_in_poor_countries() -> None:
    market = Market(seed=3)
    assert market.bucket(970, 250, "USA").median > 3 * market.bucket(320, 50, "IND").median


def test_each_bucket_has_its_own_median() -> None:
    medians = {bucket.median for bucket in Market(seed=3).buckets.values()}
    assert len(medians) == len(Market(seed=3).buckets)


def test_the_floor_is_the_share_of_the_bucket_median() -> None:
    bucket = Market(seed=3, floor_share=0.2).bucket(300, 250, "DEU")
    assert bucket.floor == pytest.approx(0.2 * bucket.median)


def test_the_same_seed_gives_the_same_market() -> None:
    assert Market(seed=5).buckets == Market(seed=5).buckets


def test_a_slot_the_world_does_not_know_costs_the_default_bucket() -> None:
    market = Market(seed=3)
    assert market.bucket(1, 1, "USA") == market.default


def test_the_share_of_exchanges_that_tell_the_price_to_win() -> None:
    assert sum(e.tells_min_to_win for e in exchanges("mixed", 0.3)) == round(0.3 * EXCHANGES)


def test_a_mixed_market_runs_both_auctions() -> None:
    assert {e.auction for e in exchanges("mixed", 0.5)} == {FIRST_PRICE, SECOND_PRICE}


def test_an_unknown_auction_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="auction='third'"):
        exchanges("third", 0.5)


def test_a_negative_median_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="median=-1"):
        Bucket(-1.0, 0.5, 0.0)
