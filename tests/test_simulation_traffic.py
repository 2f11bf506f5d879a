"""The simulated traffic: arrivals follow the daily and hourly pattern, average the rate asked for, and
stay within the window and the count they are bounded by; the people who arrive are the world's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from personabid.demo import read_people
from personabid.training.simulation.traffic import DAY, HOUR, Audience, Diurnal, arrivals, at_auction
from personabid.world import World

MONDAY = 1_764_547_200  # 2025-12-01T00:00:00Z, a Monday
WEEK = 7 * DAY


@pytest.fixture(scope="module")
def week() -> np.ndarray:
    """A week of arrivals at 0.05 per second: about 30,000."""
    return np.fromiter(arrivals(MONDAY, MONDAY + WEEK, 0.05, np.random.default_rng(8)), dtype=np.float64)


def test_the_hourly_shares_of_arrivals_follow_the_daily_curve(week: np.ndarray) -> None:
    counts = np.bincount(((week - MONDAY) // HOUR).astype(np.int64) % 24, minlength=24)
    expected = Diurnal().hourly_shares() * len(week)
    # Each hour's count is about Poisson: within 5 standard deviations of its share of the total.
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (counts, expected.round())


def test_the_evening_peak_is_busier_than_the_night(week: np.ndarray) -> None:
    hours = ((week - MONDAY) // HOUR).astype(np.int64) % 24
    assert np.sum(hours == 20) > 3 * np.sum(hours == 3)


def test_over_a_week_the_arrivals_average_the_rate(week: np.ndarray) -> None:
    expected = 0.05 * WEEK
    assert abs(len(week) - expected) < 5 * math.sqrt(expected)


def test_arrivals_stay_in_their_window_and_in_order(week: np.ndarray) -> None:
    assert week.min() >= MONDAY and week.max() < MONDAY + WEEK and np.all(np.diff(week) > 0)


def test_arrivals_stop_at_their_limit() -> None:
    times = list(arrivals(MONDAY, MONDAY + WEEK, 10.0, np.random.default_rng(1), limit=250))
    assert len(times) == 250


def test_the_same_seed_gives_the_same_arrivals() -> None:
    first = list(arrivals(MONDAY, MONDAY + DAY, 0.01, np.random.default_rng(4)))
    assert first == list(arrivals(MONDAY, MONDAY + DAY, 0.01, np.random.default_rng(4)))


def test_a_rate_of_zero_brings_nobody() -> None:
    assert list(arrivals(MONDAY, MONDAY + DAY, 0.0, np.random.default_rng(1))) == []


def test_a_negative_rate_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="rate=-1"):
        list(arrivals(MONDAY, MONDAY + DAY, -1.0, np.random.default_rng(1)))


def test_a_curve_of_the_wrong_length_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="hourly"):
        Diurnal(hourly=(1.0,) * 23)


def test_the_busiest_hour_is_as_busy_as_the_pattern_says() -> None:
    diurnal = Diurnal()
    busiest = max(range(24), key=lambda h: diurnal.hourly[h])
    assert diurnal.factor(MONDAY + busiest * HOUR) <= diurnal.peak()


def test_requests_carry_the_id_of_a_person_of_the_world(demo_dir: Path, world: World) -> None:
    people = read_people(demo_dir, world)
    audience = Audience(world, people, seed=1, anonymous_share=0.0)
    request, named = audience.request(17, "r-1", np.random.default_rng(2))
    assert (named, request.user.buyeruid, request.id) == (True, people.ids[17], "r-1")


def test_an_anonymous_share_of_requests_carries_no_user_id(demo_dir: Path, world: World) -> None:
    audience = Audience(world, read_people(demo_dir, world), seed=1, anonymous_share=0.3)
    rng = np.random.default_rng(5)
    named = [
        audience.request(audience.person(rng), f"r-{i}", rng)[0].user.buyeruid != "" for i in range(2000)
    ]
    assert abs(named.count(False) / 2000 - 0.3) < 0.05


def test_active_people_come_back_more_often(demo_dir: Path, world: World) -> None:
    audience = Audience(world, read_people(demo_dir, world), seed=1)
    rng = np.random.default_rng(6)
    visits = np.bincount([audience.person(rng) for _ in range(20_000)])
    # Lognormal activity: the busiest tenth of the people make far more than a tenth of the visits.
    top = np.sort(visits)[::-1][: len(visits) // 10]
    assert top.sum() > 0.3 * visits.sum()


def test_an_auction_carries_the_floor_and_the_auction_type(demo_dir: Path, world: World) -> None:
    audience = Audience(world, read_people(demo_dir, world), seed=1)
    request, _ = audience.request(3, "r-1", np.random.default_rng(2))
    priced = at_auction(request, 0.75, 2)
    assert (priced.imp[0].bidfloor, priced.at) == (0.75, 2)
