"""The experiment statistics by simulation: over many seeded experiments on the demo world's users, with
clicks drawn from its ground truth (World.true_ctr), an A/A test is called significant at about alpha,
an A/B test with a planted effect is found, its intervals cover the true lift at about their nominal rate,
and the always-valid interval keeps its coverage when read after every batch of users.

The planted effect is the one the issue names: ranking by a model against a constant pCTR. Each user has
the campaigns that match them best (cosine similarity of the user vector with the campaign's persona);
the control arm serves one of them at random (a constant pCTR ranks them alike), the treatment arm serves
the one with the highest true click probability in a share of the impressions (an imperfect model) and a
random one in the others. The users of one experiment are a sample (with replacement) of a fixed population
of world users, so the true lift is the population's, known exactly from the ground truth.

Everything is vectorised over the seeds (the stats functions broadcast), so the whole file takes seconds.
Run with `pytest -s` to see the measured rates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from personabid.training.reports import stats
from personabid.world import SIZES, World

ALPHA = 0.05
SEEDS = 800
USERS = 4000
POPULATION = 20_000
MATCHES = 5  # the campaigns a user matches best
MODEL_SHARE = 0.3  # the treatment's impressions that go to the truly best match
IMPRESSIONS = 8.0  # per user, on average


@dataclass(frozen=True)
class Population:
    control_ctr: np.ndarray  # float (POPULATION,): a user's click probability per impression in control
    treatment_ctr: np.ndarray

    @property
    def true_lift(self) -> float:
        """The relative lift of clicks per user and of CTR (impressions do not depend on the arm)."""
        return float(self.treatment_ctr.mean() / self.control_ctr.mean() - 1.0)


@pytest.fixture(scope="module")
def population() -> Population:
    world = World(seed=7)
    specs, quality = world.campaigns(80)
    personas = np.stack([spec.personas[0] for spec in specs])
    size = np.array([SIZES.index((spec.creatives[0].w, spec.creatives[0].h)) for spec in specs])
    users = world.users(POPULATION, np.random.default_rng(1))
    vectors = users.vectors / np.linalg.norm(users.vectors, axis=1, keepdims=True)
    similarity = vectors @ personas.T
    best = np.argsort(-similarity, axis=1)[:, :MATCHES]
    ctr = world.true_ctr(
        np.take_along_axis(similarity, best, 1).ravel(),
        quality[best].ravel(),
        np.repeat(users.devicetype, MATCHES),
        size[best].ravel(),
    ).reshape(POPULATION, MATCHES)
    control = ctr.mean(axis=1)
    return Population(control, MODEL_SHARE * ctr.max(axis=1) + (1 - MODEL_SHARE) * control)


@dataclass(frozen=True)
class Experiments:
    """SEEDS experiments of USERS users each: arm (bool, treatment), impressions and clicks per user."""

    treatment: np.ndarray  # bool (SEEDS, USERS)
    impressions: np.ndarray  # float (SEEDS, USERS)
    clicks: np.ndarray  # float (SEEDS, USERS)


@pytest.fixture(scope="module")
def aa(population: Population) -> Experiments:
    return simulate(population, planted=False, seed=11)


@pytest.fixture(scope="module")
def ab(population: Population) -> Experiments:
    return simulate(population, planted=True, seed=12)


def simulate(population: Population, planted: bool, seed: int) -> Experiments:
    rng = np.random.default_rng(seed)
    user = rng.integers(0, POPULATION, size=(SEEDS, USERS))
    treatment = rng.random((SEEDS, USERS)) < 0.5
    impressions = 1 + rng.poisson(IMPRESSIONS - 1.0, size=(SEEDS, USERS))
    ctr = np.where(treatment & planted, population.treatment_ctr[user], population.control_ctr[user])
    clicks = rng.binomial(impressions, ctr)
    return Experiments(treatment, impressions.astype(float), clicks.astype(float))


def _moments(y: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: count, mean and unbiased variance of y where mask."""
    n = mask.sum(axis=1).astype(float)
    mean = (y * mask).sum(axis=1) / n
    var = (((y - mean[:, None]) ** 2) * mask).sum(axis=1) / (n - 1)
    return n, mean, var


def clicks_per_user(e: Experiments) -> stats.Lift:
    return stats.welch_moments(*_moments(e.clicks, e.treatment), *_moments(e.clicks, ~e.treatment), ALPHA)


def ctr(e: Experiments) -> stats.Lift:
    estimates = []
    for mask in (e.treatment, ~e.treatment):
        n, mean_y, var_y = _moments(e.clicks, mask)
        _, mean_x, var_x = _moments(e.impressions, mask)
        cov = (((e.clicks - mean_y[:, None]) * (e.impressions - mean_x[:, None])) * mask).sum(axis=1) / (
            n - 1
        )
        estimates.append(stats.ratio_moments(n, mean_y, mean_x, var_y, var_x, cov))
    (r_t, v_t), (r_c, v_c) = estimates
    return stats.normal_lift(r_t, v_t, r_c, v_c, ALPHA)


METRICS = {"clicks per user (Welch)": clicks_per_user, "CTR (delta method)": ctr}


def binomial_band(rate: float, trials: int, z: float = 3.29) -> tuple[float, float]:
    """A 99.9 % normal band for an observed rate whose true value is `rate`."""
    half = z * math.sqrt(rate * (1 - rate) / trials)
    return rate - half, rate + half


@pytest.mark.parametrize("metric", list(METRICS))
def test_aa_experiment_is_called_significant_at_about_alpha(aa: Experiments, metric: str) -> None:
    lift = METRICS[metric](aa)
    rate = float(np.mean(lift.p < ALPHA))
    print(f"\nA/A {metric}: false-positive rate {rate:.3f} over {SEEDS} seeds (alpha {ALPHA})")
    low, high = binomial_band(ALPHA, SEEDS)
    assert low <= rate <= high


@pytest.mark.parametrize("metric", list(METRICS))
def test_ab_experiment_with_a_planted_lift_is_detected(
    population: Population, ab: Experiments, metric: str
) -> None:
    lift = METRICS[metric](ab)
    rate = float(np.mean((lift.p < ALPHA) & (lift.lift_rel > 0)))
    print(f"\nA/B {metric}: true lift {population.true_lift:+.2%}, detected in {rate:.3f} of {SEEDS} seeds")
    assert rate >= 0.8


@pytest.mark.parametrize("metric", list(METRICS))
@pytest.mark.parametrize("which", ["absolute", "relative"])
def test_ab_interval_covers_the_true_lift_at_its_nominal_rate(
    population: Population, ab: Experiments, metric: str, which: str
) -> None:
    lift = METRICS[metric](ab)
    if which == "relative":
        truth, (low, high) = population.true_lift, lift.lift_rel_ci
    else:
        base = population.control_ctr.mean() * (IMPRESSIONS if metric.startswith("clicks") else 1.0)
        truth, (low, high) = base * population.true_lift, lift.lift_abs_ci
    coverage = float(np.mean((low <= truth) & (truth <= high)))
    print(f"\nA/B {metric}: {which} lift interval covers the truth in {coverage:.3f} of {SEEDS} seeds")
    low_band, high_band = binomial_band(1 - ALPHA, SEEDS)
    assert low_band <= coverage <= high_band


def test_sequential_interval_covers_the_true_lift_when_read_after_every_batch(
    population: Population, ab: Experiments
) -> None:
    looks = np.arange(100, USERS + 1, 100) - 1  # read after every 100 users: 40 looks per experiment
    arms = []
    for mask in (ab.treatment, ~ab.treatment):  # running count, mean and variance per arm at each look
        n = np.cumsum(mask, axis=1)[:, looks].astype(float)
        total = np.cumsum(ab.clicks * mask, axis=1)[:, looks]
        squares = np.cumsum(ab.clicks**2 * mask, axis=1)[:, looks]
        arms.append((n, total / n, (squares - total**2 / n) / (n - 1)))
    lift = stats.welch_moments(*arms[0], *arms[1], ALPHA)
    truth = population.control_ctr.mean() * IMPRESSIONS * population.true_lift  # clicks per user, absolute
    variance = lift.treatment_var + lift.control_var
    known = variance > 0  # before the first clicks there is no variance: no interval yet, nothing claimed
    per_unit = variance / (1 / arms[0][0] + 1 / arms[1][0])
    tau2 = np.where(known, 0.05**2 * per_unit, 1.0)
    low, high = stats.sequential_interval(lift.lift_abs, np.where(known, variance, 1.0), tau2, ALPHA)
    covered_always = np.all(~known | ((low <= truth) & (truth <= high)), axis=1)
    fixed = lift.lift_abs_ci
    fixed_always = np.all(~known | ((fixed[0] <= truth) & (truth <= fixed[1])), axis=1)
    coverage = float(covered_always.mean())
    print(
        f"\nsequential: covered at all {len(looks)} looks in {coverage:.3f} of {SEEDS} seeds "
        f"(fixed-sample interval, same looks: {fixed_always.mean():.3f})"
    )
    assert coverage >= binomial_band(1 - ALPHA, SEEDS)[0]
