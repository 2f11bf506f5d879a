"""The report statistics (training/reports/stats.py) against scipy and statsmodels on fixed data, and the
distribution functions they rest on over wide ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests  # type: ignore[import-untyped]
from statsmodels.stats.proportion import proportion_confint  # type: ignore[import-untyped]

from personabid.training.reports import stats

DFS = np.array([0.5, 1, 1.5, 2, 3, 5, 10, 30, 100, 1e3, 1e4, 1e5, 1e6])
TS = np.array([0.0, 1e-8, 1e-3, 0.1, 0.5, 1.0, 1.96, 2.5, 4.0, 10.0, 40.0, 1e3, 1e6])


def _sample(seed: int, n: int, mean: float, sd: float) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


def test_student_t_tail_matches_scipy_over_degrees_of_freedom_and_tails() -> None:
    # df = 1 is left to the closed form below: near t = 0 scipy's Cauchy tail is off by 1e-8 relative.
    t, df = np.meshgrid(np.concatenate([-TS, TS]), DFS[DFS != 1])
    expected = scipy.stats.t.sf(t, df)
    assert np.allclose(stats.student_t_sf(t, df), expected, rtol=1e-9, atol=0)


def test_student_t_tail_matches_the_closed_forms_of_one_and_two_degrees_of_freedom() -> None:
    t = np.concatenate([-TS, TS])
    cauchy = 0.5 - np.arctan(t) / np.pi
    two = 0.5 - t / (2 * np.sqrt(t * t + 2))
    upper = t > 10  # there the closed forms cancel; their tails are 1/(pi t) and 1/(2 t^2)
    cauchy[upper], two[upper] = np.arctan(1 / t[upper]) / np.pi, np.nan
    assert np.allclose(stats.student_t_sf(t, 1.0), cauchy, rtol=1e-12, atol=0)
    known = ~np.isnan(two)
    assert np.allclose(stats.student_t_sf(t[known], 2.0), two[known], rtol=1e-12, atol=0)


def test_student_t_quantile_matches_scipy_from_far_tail_to_far_tail() -> None:
    q = np.array([1e-12, 1e-6, 1e-3, 0.025, 0.2, 0.5, 0.8, 0.975, 0.999, 1 - 1e-6, 1 - 1e-10])
    q, df = np.meshgrid(q, DFS)
    assert np.allclose(stats.student_t_ppf(q, df), scipy.stats.t.ppf(q, df), rtol=1e-9, atol=1e-12)


def test_chi_square_tail_matches_scipy_over_degrees_of_freedom_and_tails() -> None:
    x, df = np.meshgrid(
        np.array([0.0, 1e-6, 0.01, 0.5, 1, 2, 5, 10, 30, 100, 500, 2000, 1e4]),
        np.array([1, 2, 3, 4, 5, 7, 10, 30, 100, 1000, 5000]),
    )
    expected = scipy.stats.chi2.sf(x, df)
    assert np.allclose(stats.chi2_sf(x, df), expected, rtol=1e-10, atol=1e-300)


def test_normal_quantile_matches_scipy_in_both_tails() -> None:
    q = np.array([1e-300, 1e-100, 1e-12, 1e-3, 0.02, 0.3, 0.5, 0.7, 0.975, 1 - 1e-9])
    assert np.allclose(stats.normal_ppf(q), scipy.stats.norm.ppf(q), rtol=1e-12, atol=1e-15)


def test_normal_tail_matches_scipy() -> None:
    z = np.array([-30.0, -5.0, -1.0, 0.0, 0.5, 1.96, 8.0, 37.0])
    assert np.allclose(stats.normal_sf(z), scipy.stats.norm.sf(z), rtol=1e-12, atol=0)


def test_incomplete_beta_matches_scipy_for_large_and_small_parameters() -> None:
    import scipy.special

    a, b, x = np.meshgrid(
        [0.2, 1.0, 7.5, 300.0, 5e4], [0.5, 2.0, 40.0, 2e3], [1e-9, 0.01, 0.3, 0.5, 0.9, 0.999]
    )
    lower, upper = stats.betainc_pair(a, b, x)
    assert np.allclose(lower, scipy.special.betainc(a, b, x), rtol=1e-8, atol=1e-300)
    assert np.allclose(upper, scipy.special.betaincc(a, b, x), rtol=1e-8, atol=1e-300)


def test_welch_matches_scipy_ttest_with_unequal_variances() -> None:
    treatment, control = _sample(1, 40, 1.3, 2.0), _sample(2, 75, 0.8, 0.7)
    lift = stats.welch_test(treatment, control)
    expected = scipy.stats.ttest_ind(treatment, control, equal_var=False)
    assert float(lift.statistic) == pytest.approx(expected.statistic, rel=1e-12)
    assert float(lift.p) == pytest.approx(expected.pvalue, rel=1e-9)


def test_welch_interval_matches_scipy_confidence_interval() -> None:
    treatment, control = _sample(3, 25, 5.0, 3.0), _sample(4, 60, 4.0, 1.0)
    lift = stats.welch_test(treatment, control, alpha=0.1)
    low, high = scipy.stats.ttest_ind(treatment, control, equal_var=False).confidence_interval(0.9)
    assert [float(v) for v in lift.lift_abs_ci] == pytest.approx([low, high], rel=1e-9)


def test_relative_lift_interval_is_the_delta_methods() -> None:
    treatment, control = _sample(5, 500, 2.2, 1.0), _sample(6, 400, 2.0, 1.0)
    lift = stats.welch_test(treatment, control)
    m_t, m_c = treatment.mean(), control.mean()
    v_t, v_c = treatment.var(ddof=1) / 500, control.var(ddof=1) / 400
    se = math.sqrt(v_t / m_c**2 + m_t**2 * v_c / m_c**4)
    z = scipy.stats.norm.ppf(0.975)
    assert [float(v) for v in lift.lift_rel_ci] == pytest.approx(
        [m_t / m_c - 1 - z * se, m_t / m_c - 1 + z * se], rel=1e-12
    )


def test_mean_interval_matches_scipy_t_interval() -> None:
    values = _sample(7, 30, 10.0, 4.0)
    _, low, high = stats.mean_interval(values)
    expected = scipy.stats.t.interval(0.95, 29, loc=values.mean(), scale=scipy.stats.sem(values))
    assert (low, high) == pytest.approx(expected, rel=1e-10)


def test_ratio_variance_is_the_delta_methods_by_hand() -> None:
    rng = np.random.default_rng(8)
    impressions = rng.poisson(5, 300).astype(float) + 1
    clicks = rng.binomial(impressions.astype(int), 0.1).astype(float)
    ratio, variance = stats.ratio_estimate(clicks, impressions)
    n, r = len(clicks), clicks.sum() / impressions.sum()
    # The linearised per-unit values (y - r x) / mean(x): their mean's variance is the delta method's.
    linear = (clicks - r * impressions) / impressions.mean()
    assert ratio == pytest.approx(r, rel=1e-14)
    assert variance == pytest.approx(linear.var(ddof=1) / n, rel=1e-10)


def test_ratio_test_p_value_is_the_normal_tail_of_its_z() -> None:
    rng = np.random.default_rng(9)
    den_t, den_c = rng.poisson(4, 400) + 1.0, rng.poisson(4, 420) + 1.0
    num_t, num_c = rng.binomial(den_t.astype(int), 0.12) * 1.0, rng.binomial(den_c.astype(int), 0.1) * 1.0
    lift = stats.ratio_test(num_t, den_t, num_c, den_c)
    (r_t, v_t), (r_c, v_c) = stats.ratio_estimate(num_t, den_t), stats.ratio_estimate(num_c, den_c)
    z = (r_t - r_c) / math.sqrt(v_t + v_c)
    assert float(lift.p) == pytest.approx(2 * scipy.stats.norm.sf(abs(z)), rel=1e-12)


def test_sample_ratio_test_matches_scipy_chisquare() -> None:
    counts, shares = [5_120, 4_880, 2_600], [0.4, 0.4, 0.2]
    result = stats.sample_ratio_test(counts, shares)
    expected = scipy.stats.chisquare(counts, np.array(shares) * sum(counts))
    assert (result.chi2, result.p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-10)


def test_sample_ratio_test_flags_units_in_an_arm_planned_to_get_none() -> None:
    assert stats.sample_ratio_test([500, 500, 3], [0.5, 0.5, 0.0]).p == 0.0


def test_sample_ratio_test_rejects_mismatched_arms() -> None:
    with pytest.raises(ValueError, match="shares"):
        stats.sample_ratio_test([10, 20], [0.5, 0.3, 0.2])


def test_holm_matches_statsmodels() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, 0.04, 0.9])
    assert np.allclose(stats.holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)


def test_holm_leaves_missing_p_values_out_of_the_count() -> None:
    adjusted = stats.holm([0.01, math.nan, 0.02])
    assert math.isnan(adjusted[1]) and adjusted[[0, 2]].tolist() == pytest.approx([0.02, 0.02])


@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_holm_is_at_least_the_raw_p_and_keeps_its_order(p: list[float]) -> None:
    raw = np.array(p)
    adjusted = stats.holm(raw)
    order = np.argsort(raw, kind="stable")
    assert np.all(adjusted >= raw) and np.all(adjusted <= 1.0)
    assert np.all(np.diff(adjusted[order]) >= 0)


def test_wilson_matches_statsmodels() -> None:
    k, n = np.array([0, 1, 17, 50, 99, 100]), np.array([100, 100, 100, 100, 100, 100])
    low, high = stats.wilson_interval(k, n, alpha=0.05)
    expected = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert np.allclose(low, expected[0], atol=1e-12) and np.allclose(high, expected[1], atol=1e-12)


@given(st.integers(1, 10**9).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_bounds_lie_in_the_unit_interval_around_the_observed_rate(kn: tuple[int, int]) -> None:
    k, n = kn
    low, high = stats.wilson_interval(k, n)
    assert 0.0 <= float(low) <= k / n <= float(high) <= 1.0


def test_wilson_rejects_more_successes_than_trials() -> None:
    with pytest.raises(ValueError, match="successes"):
        stats.wilson_interval(5, 4)


def test_sequential_interval_excludes_zero_exactly_when_its_p_value_is_below_alpha() -> None:
    estimates = np.linspace(-0.5, 0.5, 101)
    low, high = stats.sequential_interval(estimates, 0.01, 0.08)
    p = stats.sequential_p(estimates, 0.01, 0.08)
    assert np.array_equal((low > 0) | (high < 0), p < 0.05)


def test_sequential_interval_is_wider_than_the_fixed_sample_interval() -> None:
    _, high = stats.sequential_interval(0.0, 0.01, 0.08)
    assert float(high) > scipy.stats.norm.ppf(0.975) * 0.1


def test_cuped_theta_is_the_pooled_regression_slope() -> None:
    rng = np.random.default_rng(10)
    x = [rng.normal(0, 1, 200), rng.normal(0, 1, 250)]
    y = [2 * x[0] + rng.normal(0, 1, 200), 2 * x[1] + 0.3 + rng.normal(0, 1, 250)]
    adjusted, theta = stats.cuped(y, x)
    slope = scipy.stats.linregress(np.concatenate(x), np.concatenate(y)).slope
    assert theta == pytest.approx(slope, rel=1e-10)
    assert adjusted[1].var() < y[1].var() / 2


def test_cuped_keeps_the_difference_of_means_when_the_covariate_is_balanced() -> None:
    x = [np.array([0.0, 1.0, 2.0]), np.array([2.0, 1.0, 0.0])]
    y = [np.array([1.0, 2.0, 4.0]), np.array([5.0, 3.0, 2.0])]
    adjusted, _ = stats.cuped(y, x)
    assert adjusted[1].mean() - adjusted[0].mean() == pytest.approx(y[1].mean() - y[0].mean())
