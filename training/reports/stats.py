"""The statistics of the reports: intervals, tests and their distribution functions, in numpy alone.

Everything works on arrays and broadcasts, so a simulation can test many experiments in one call; the
`*_moments` forms take per-arm summaries (count, means, variances), the others per-unit arrays.

- Wilson score interval for a proportion (Wilson 1927).
- Welch's t test for a difference of means, with the absolute lift's t interval (Welch-Satterthwaite
  degrees of freedom) and the relative lift's interval by the delta method.
- The delta method for a ratio of means when the unit of randomisation is the unit of the sums (clicks per
  impression with users randomised: Deng, Knoblich and Lu 2018, "Applying the delta method in metric
  analytics"), its lift and a z test.
- The sample-ratio-mismatch chi-square test against planned shares.
- Holm-Bonferroni adjusted p-values (Holm 1979).
- Always-valid confidence intervals (a normal-mixture sequential probability ratio test: Robbins 1970,
  Johari, Pekelis and Walsh 2017, Howard et al. 2021).
- CUPED (Deng, Xu, Kohavi and Walker 2013): a pre-period covariate that removes variance, not bias.

The Student t, chi-square and normal distribution functions are implemented here (regularized incomplete
beta and gamma functions by continued fractions, as in Numerical Recipes ch. 6.2 and 6.4), so that the
reports need no scipy; the tests check them against scipy over wide ranges.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITERATIONS = 100_000

_lgamma = np.vectorize(math.lgamma, otypes=[float])
_erfc = np.vectorize(math.erfc, otypes=[float])


def _array(value: object) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------------
# Distribution functions


def _beta_fraction(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The continued fraction of I_x(a, b) (modified Lentz), converging fast for x < (a+1)/(a+b+2);
    elements leave the loop as they converge."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = np.ones_like(x)
    d = 1.0 - qab * x / qap
    d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
    h = d.copy()
    result = np.empty_like(x)
    active = np.arange(len(x))
    for m in range(1, _MAX_ITERATIONS):
        m2 = 2.0 * m
        for aa in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + aa * d
            d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
            c = 1.0 + aa / c
            c = np.where(np.abs(c) < _TINY, _TINY, c)
            delta = d * c
            h = h * delta
        done = np.abs(delta - 1.0) < _EPS
        if done.any():
            result[active[done]] = h[done]
            keep = ~done
            if not keep.any():
                return result
            active, a, b, x, c, d, h = active[keep], a[keep], b[keep], x[keep], c[keep], d[keep], h[keep]
            qab, qap, qam = qab[keep], qap[keep], qam[keep]
    raise ArithmeticError("incomplete beta: the continued fraction did not converge")


def _stirling_tail(x: np.ndarray) -> np.ndarray:
    """lgamma(x) - ((x - 1/2) log x - x + log(2 pi)/2) for x >= 10, to machine precision."""
    r = 1.0 / (x * x)
    return (1.0 / 12.0 - r * (1.0 / 360.0 - r * (1.0 / 1260.0 - r / 1680.0))) / x


def _log_beta(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log B(a, b); for a large parameter without the cancellation of lgamma(a) - lgamma(a + b)."""
    big, small = np.maximum(a, b), np.minimum(a, b)
    direct = _lgamma(a) + _lgamma(b) - _lgamma(a + b)
    safe = np.maximum(big, 10.0)
    # lgamma(big) - lgamma(big + small) by Stirling's series, the large terms combined exactly
    ratio = (
        -(safe - 0.5) * np.log1p(small / safe)
        - small * np.log(safe + small)
        + small
        + _stirling_tail(safe)
        - _stirling_tail(safe + small)
    )
    return np.where(big >= 10.0, _lgamma(small) + ratio, direct)


def betainc_pair(a: object, b: object, x: object, y: object | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The regularized incomplete beta function I_x(a, b) and its complement 1 - I_x(a, b) = I_y(b, a).

    `y` = 1 - x may be given separately when it is known more exactly than 1 - x (a tail probability).
    Arrays broadcast; a > 0, b > 0, 0 <= x <= 1.
    """
    a, b, x = np.broadcast_arrays(_array(a), _array(b), _array(x))
    y = 1.0 - x if y is None else np.broadcast_to(_array(y), x.shape)
    lower = np.zeros(x.shape)
    upper = np.zeros(x.shape)
    inner = (x > 0) & (y > 0)
    lower[y <= 0] = 1.0
    upper[x <= 0] = 1.0
    if inner.any():
        ai, bi, xi, yi = a[inner], b[inner], x[inner], y[inner]
        with np.errstate(divide="ignore"):  # np.where evaluates both sides; the chosen one is finite
            log_x = np.where(xi > 0.5, np.log1p(-yi), np.log(xi))
            log_y = np.where(yi > 0.5, np.log1p(-xi), np.log(yi))
        log_front = ai * log_x + bi * log_y - _log_beta(ai, bi)
        direct = xi < (ai + 1.0) / (ai + bi + 2.0)
        small = np.empty(xi.shape)  # the side computed directly: I_x(a, b) or I_y(b, a)
        if direct.any():
            small[direct] = (
                np.exp(log_front[direct]) * _beta_fraction(ai[direct], bi[direct], xi[direct]) / ai[direct]
            )
        flipped = ~direct
        if flipped.any():
            small[flipped] = (
                np.exp(log_front[flipped])
                * _beta_fraction(bi[flipped], ai[flipped], yi[flipped])
                / bi[flipped]
            )
        lower[inner] = np.where(direct, small, 1.0 - small)
        upper[inner] = np.where(direct, 1.0 - small, small)
    return lower, upper


def gammainc_pair(a: object, x: object) -> tuple[np.ndarray, np.ndarray]:
    """The regularized incomplete gamma functions P(a, x) and Q(a, x) = 1 - P(a, x); a > 0, x >= 0."""
    a, x = np.broadcast_arrays(_array(a), _array(x))
    lower = np.zeros(x.shape)
    upper = np.ones(x.shape)
    inner = x > 0
    if not inner.any():
        return lower, upper
    ai, xi = a[inner], x[inner]
    log_front = -xi + ai * np.log(xi) - _lgamma(ai)
    series = xi < ai + 1.0
    small = np.empty(xi.shape)
    if series.any():  # P(a, x) = e^-x x^a / Gamma(a+1) * sum_n x^n / ((a+1)...(a+n))
        s_a, s_x = ai[series], xi[series]
        term = 1.0 / s_a
        total = term.copy()
        ap = s_a.copy()
        for _ in range(_MAX_ITERATIONS):
            ap = ap + 1.0
            term = term * s_x / ap
            total = total + term
            if np.all(np.abs(term) < np.abs(total) * _EPS):
                break
        else:
            raise ArithmeticError("incomplete gamma: the series did not converge")
        small[series] = total * np.exp(log_front[series])
    fraction = ~series
    if fraction.any():  # Q(a, x) by its continued fraction (modified Lentz)
        f_a, f_x = ai[fraction], xi[fraction]
        b = f_x + 1.0 - f_a
        c = np.full(f_x.shape, 1.0 / _TINY)
        d = 1.0 / b
        h = d.copy()
        for i in range(1, _MAX_ITERATIONS):
            an = -i * (i - f_a)
            b = b + 2.0
            d = an * d + b
            d = 1.0 / np.where(np.abs(d) < _TINY, _TINY, d)
            c = b + an / c
            c = np.where(np.abs(c) < _TINY, _TINY, c)
            delta = d * c
            h = h * delta
            if np.all(np.abs(delta - 1.0) < _EPS):
                break
        else:
            raise ArithmeticError("incomplete gamma: the continued fraction did not converge")
        small[fraction] = np.exp(log_front[fraction]) * h
    lower[inner] = np.where(series, small, 1.0 - small)
    upper[inner] = np.where(series, 1.0 - small, small)
    return lower, upper


def normal_sf(z: object) -> np.ndarray:
    """P(Z > z) for a standard normal Z: erfc(z / sqrt 2) / 2, exact in both tails."""
    return 0.5 * _erfc(_array(z) / math.sqrt(2.0))


_ACKLAM_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
             -3.066479806614716e01, 2.506628277459239e00)  # fmt: skip
_ACKLAM_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
             -1.328068155288572e01)  # fmt: skip
_ACKLAM_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
             4.374664141464968e00, 2.938163982698783e00)  # fmt: skip
_ACKLAM_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def normal_ppf(q: object) -> np.ndarray:
    """The standard normal quantile: Acklam's rational approximation (relative error 1e-9), then one
    Halley step on the exact erfc, which brings it to machine precision. q in (0, 1)."""
    q = _array(q)
    lower = np.minimum(q, 1.0 - q)  # solve in the lower tail, where erfc keeps full precision
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(-2.0 * np.log(lower))
        tail = (((((_ACKLAM_C[0] * r + _ACKLAM_C[1]) * r + _ACKLAM_C[2]) * r + _ACKLAM_C[3]) * r
                 + _ACKLAM_C[4]) * r + _ACKLAM_C[5]) / ((((_ACKLAM_D[0] * r + _ACKLAM_D[1]) * r
                 + _ACKLAM_D[2]) * r + _ACKLAM_D[3]) * r + 1.0)  # fmt: skip
        s = lower - 0.5
        t = s * s
        central = ((((((_ACKLAM_A[0] * t + _ACKLAM_A[1]) * t + _ACKLAM_A[2]) * t + _ACKLAM_A[3]) * t
                    + _ACKLAM_A[4]) * t + _ACKLAM_A[5]) * s) / (((((_ACKLAM_B[0] * t + _ACKLAM_B[1]) * t
                    + _ACKLAM_B[2]) * t + _ACKLAM_B[3]) * t + _ACKLAM_B[4]) * t + 1.0)  # fmt: skip
        x = np.where(lower < 0.02425, tail, central)
        error = 0.5 * _erfc(-x / math.sqrt(2.0)) - lower
        u = error * math.sqrt(2.0 * math.pi) * np.exp(0.5 * x * x)
        x = x - u / (1.0 + 0.5 * x * u)
    x = np.where(lower <= 0, -np.inf, x)
    return np.where(q > 0.5, -x, x)


def student_t_sf(t: object, df: object) -> np.ndarray:
    """P(T > t) for Student's t with `df` degrees of freedom (df > 0, real):
    for t > 0 it is I_{df/(df+t^2)}(df/2, 1/2) / 2."""
    t, df = np.broadcast_arrays(_array(t), _array(df))
    t2 = t * t
    with np.errstate(over="ignore", invalid="ignore"):
        x = df / (df + t2)
        y = t2 / (df + t2)
    x = np.where(np.isinf(t), 0.0, x)
    y = np.where(np.isinf(t), 1.0, y)
    tail, _ = betainc_pair(0.5 * df, 0.5, x, y)  # P(|T| > |t|)
    return np.where(t >= 0, 0.5 * tail, 1.0 - 0.5 * tail)


def student_t_pdf(t: object, df: object) -> np.ndarray:
    t, df = np.broadcast_arrays(_array(t), _array(df))
    log_norm = _lgamma(0.5 * (df + 1.0)) - _lgamma(0.5 * df) - 0.5 * np.log(df * math.pi)
    return np.exp(log_norm - 0.5 * (df + 1.0) * np.log1p(t * t / df))


def student_t_ppf(q: object, df: object) -> np.ndarray:
    """The quantile of Student's t: a Cornish-Fisher start from the normal quantile (the exact forms for
    df = 1 and 2), then Newton's method on log P(T > t) against log t, which stays stable far in the tails.
    q in (0, 1), df > 0."""
    q, df = np.broadcast_arrays(_array(q), _array(df))
    upper = np.minimum(q, 1.0 - q)  # solve P(T > t) = upper for t > 0, then restore the sign
    z = -normal_ppf(upper)
    start = z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
    start = np.where(df <= 1.0, 1.0 / np.tan(math.pi * upper), start)
    start = np.where(
        (df > 1.0) & (df <= 2.0), (1 - 2 * upper) / np.sqrt(np.maximum(2 * upper * (1 - upper), _TINY)), start
    )
    u = np.log(np.maximum(start, 1e-300))
    target = np.log(upper)
    # The log sf is exact to about 1e-11 relative at a million degrees of freedom (1e-15 at a few
    # thousand): steps below that are noise, and the quantile is as exact as the tail it inverts.
    for _ in range(60):
        t = np.exp(u)
        sf = student_t_sf(t, df)
        # d log sf / d log t = -pdf(t) t / sf(t)
        slope = -student_t_pdf(t, df) * t / sf
        step = (np.log(sf) - target) / slope
        step = np.clip(np.nan_to_num(step, nan=0.0), -2.0, 2.0)
        u = u - step
        if np.all(np.abs(step) < 1e-11):
            break
    t = np.where(upper >= 0.5, 0.0, np.exp(u))
    return np.where(q < 0.5, -t, t)


def chi2_sf(x: object, df: object) -> np.ndarray:
    """P(X > x) for a chi-square X with `df` degrees of freedom: Q(df/2, x/2)."""
    x, df = np.broadcast_arrays(_array(x), _array(df))
    _, upper = gammainc_pair(0.5 * df, 0.5 * np.maximum(x, 0.0))
    return upper


# ---------------------------------------------------------------------------------------------------------
# Intervals and tests


def wilson_interval(successes: object, trials: object, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a proportion k/n (arrays broadcast):
    (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z the normal 1 - alpha/2 quantile.
    (0, 1) where n = 0: no trial, no information."""
    k, n = np.broadcast_arrays(_array(successes), _array(trials))
    if np.any(k < 0) or np.any(k > n):
        raise ValueError(f"successes={successes!r}, trials={trials!r}: expected 0 <= successes <= trials")
    z = float(normal_ppf(1.0 - alpha / 2.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At k = 0 and k = n a bound is exactly 0 or 1; rounding must not move it past the observed rate.
    low = np.where(k == 0, 0.0, np.clip(np.minimum(centre - half, p), 0.0, 1.0))
    high = np.where(k == n, 1.0, np.clip(np.maximum(centre + half, p), 0.0, 1.0))
    return low, high


@dataclass(frozen=True)
class Lift:
    """A treatment arm against control: the arms' estimates, the lift and its test. Fields are arrays
    of the broadcast shape of the inputs (0-d for one comparison)."""

    treatment: np.ndarray  # the treatment arm's estimate
    control: np.ndarray
    treatment_var: np.ndarray  # the variance of the treatment's estimate
    control_var: np.ndarray
    lift_abs: np.ndarray  # treatment - control
    lift_abs_ci: tuple[np.ndarray, np.ndarray]
    lift_rel: np.ndarray  # treatment / control - 1
    lift_rel_ci: tuple[np.ndarray, np.ndarray]
    statistic: np.ndarray  # t (Welch) or z (delta method)
    df: np.ndarray  # degrees of freedom of the statistic; inf for z
    p: np.ndarray  # two-sided, of the hypothesis of no difference


def _relative_lift(
    treatment: np.ndarray, control: np.ndarray, treatment_var: np.ndarray, control_var: np.ndarray, z: float
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """t/c - 1 and its normal interval by the delta method: Var(t/c) ~ Var(t)/c^2 + t^2 Var(c)/c^4."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = treatment / control - 1.0
        se = np.sqrt(treatment_var / control**2 + treatment**2 * control_var / control**4)
    return rel, (rel - z * se, rel + z * se)


def welch_moments(
    n_t: object,
    mean_t: object,
    var_t: object,
    n_c: object,
    mean_c: object,
    var_c: object,
    alpha: float = 0.05,
) -> Lift:
    """Welch's t test from per-arm counts, means and unbiased variances (ddof 1), arrays broadcast.

    t = (m_t - m_c) / sqrt(s_t^2/n_t + s_c^2/n_c), df by Welch-Satterthwaite:
    (s_t^2/n_t + s_c^2/n_c)^2 / ((s_t^2/n_t)^2/(n_t-1) + (s_c^2/n_c)^2/(n_c-1)); the absolute lift's
    interval is m_t - m_c -+ t_{1-alpha/2, df} se, the relative lift's the delta method's (normal)."""
    n_t, mean_t, var_t, n_c, mean_c, var_c = (_array(v) for v in (n_t, mean_t, var_t, n_c, mean_c, var_c))
    with np.errstate(divide="ignore", invalid="ignore"):
        vt, vc = var_t / n_t, var_c / n_c
        se = np.sqrt(vt + vc)
        diff = mean_t - mean_c
        t = diff / se
        df = (vt + vc) ** 2 / (vt**2 / (n_t - 1) + vc**2 / (n_c - 1))
    valid = np.isfinite(t) & np.isfinite(df) & (df > 0)
    safe_df = np.where(valid, df, 1.0)
    p = np.where(valid, 2.0 * student_t_sf(np.abs(np.where(valid, t, 0.0)), safe_df), np.nan)
    quantile = np.where(
        valid, student_t_ppf(np.broadcast_to(1.0 - alpha / 2.0, safe_df.shape), safe_df), np.nan
    )
    z = float(normal_ppf(1.0 - alpha / 2.0))
    rel, rel_ci = _relative_lift(mean_t, mean_c, vt, vc, z)
    return Lift(
        treatment=mean_t,
        control=mean_c,
        treatment_var=vt,
        control_var=vc,
        lift_abs=diff,
        lift_abs_ci=(diff - quantile * se, diff + quantile * se),
        lift_rel=rel,
        lift_rel_ci=rel_ci,
        statistic=t,
        df=df,
        p=p,
    )


def welch_test(treatment: np.ndarray, control: np.ndarray, alpha: float = 0.05) -> Lift:
    """Welch's t test of two samples (float (n_t,), (n_c,)): the per-unit values of a mean metric."""
    y_t, y_c = _array(treatment), _array(control)
    return welch_moments(len(y_t), _mean(y_t), _var(y_t), len(y_c), _mean(y_c), _var(y_c), alpha)


def _mean(y: np.ndarray) -> float:
    return float(y.mean()) if len(y) else math.nan


def _var(y: np.ndarray) -> float:
    return float(y.var(ddof=1)) if len(y) > 1 else math.nan


def mean_interval(values: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """The mean of `values` (float (n,)) and its t interval (n - 1 degrees of freedom)."""
    y = _array(values)
    mean, n = _mean(y), len(y)
    if n < 2:
        return mean, math.nan, math.nan
    half = float(student_t_ppf(1.0 - alpha / 2.0, n - 1)) * math.sqrt(_var(y) / n)
    return mean, mean - half, mean + half


def ratio_moments(
    n: object, mean_num: object, mean_den: object, var_num: object, var_den: object, cov: object
) -> tuple[np.ndarray, np.ndarray]:
    """A ratio of means R = mean(num) / mean(den) over n units, and its variance by the delta method:
    Var(R) ~ (Var(num) - 2 R Cov(num, den) + R^2 Var(den)) / (n mean(den)^2), per-unit (co)variances."""
    n, mn, md, vn, vd, c = (_array(v) for v in (n, mean_num, mean_den, var_num, var_den, cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = mn / md
        variance = (vn - 2.0 * ratio * c + ratio**2 * vd) / (n * md**2)
    return ratio, variance


def ratio_estimate(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """R = sum(numerator) / sum(denominator) over units (float (n,) each) and Var(R) (delta method)."""
    y, x = _array(numerator), _array(denominator)
    if len(y) < 2:
        return (float(y.sum() / x.sum()) if len(y) and x.sum() else math.nan), math.nan
    cov = np.cov(y, x, ddof=1)
    ratio, variance = ratio_moments(len(y), y.mean(), x.mean(), cov[0, 0], cov[1, 1], cov[0, 1])
    return float(ratio), float(variance)


def normal_lift(
    treatment: object, treatment_var: object, control: object, control_var: object, alpha: float = 0.05
) -> Lift:
    """The lift of two independent, asymptotically normal estimates (each with the variance of the
    estimate): z = (t - c) / sqrt(Var t + Var c), normal intervals, relative lift by the delta method."""
    est_t, v_t, est_c, v_c = (_array(v) for v in (treatment, treatment_var, control, control_var))
    z = float(normal_ppf(1.0 - alpha / 2.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        diff = est_t - est_c
        se = np.sqrt(v_t + v_c)
        statistic = diff / se
    p = np.where(np.isfinite(statistic), 2.0 * normal_sf(np.abs(np.nan_to_num(statistic))), np.nan)
    rel, rel_ci = _relative_lift(est_t, est_c, v_t, v_c, z)
    return Lift(
        treatment=est_t,
        control=est_c,
        treatment_var=v_t,
        control_var=v_c,
        lift_abs=diff,
        lift_abs_ci=(diff - z * se, diff + z * se),
        lift_rel=rel,
        lift_rel_ci=rel_ci,
        statistic=statistic,
        df=np.full(np.shape(diff), np.inf),
        p=p,
    )


def ratio_test(
    num_t: np.ndarray, den_t: np.ndarray, num_c: np.ndarray, den_c: np.ndarray, alpha: float = 0.05
) -> Lift:
    """A ratio metric's lift (per-unit numerators and denominators of each arm) by the delta method."""
    r_t, v_t = ratio_estimate(num_t, den_t)
    r_c, v_c = ratio_estimate(num_c, den_c)
    return normal_lift(r_t, v_t, r_c, v_c, alpha)


# ---------------------------------------------------------------------------------------------------------
# Experiment checks


@dataclass(frozen=True)
class SampleRatio:
    chi2: float
    df: int
    p: float
    expected: tuple[float, ...]


def sample_ratio_test(counts: Sequence[float], shares: Sequence[float]) -> SampleRatio:
    """Pearson's chi-square test of units per arm against the planned shares (normalised to sum 1):
    chi2 = sum (observed - N share)^2 / (N share), k - 1 degrees of freedom over arms of positive share."""
    observed, planned = _array(counts), _array(shares)
    if observed.shape != planned.shape or observed.ndim != 1 or len(observed) < 2:
        raise ValueError(f"counts={list(counts)!r}, shares={list(shares)!r}: expected two or more arms each")
    if np.any(planned < 0) or planned.sum() <= 0:
        raise ValueError(f"shares={list(shares)!r}: expected non-negative shares with a positive sum")
    live = planned > 0
    expected = observed.sum() * planned / planned.sum()
    stray = float(observed[~live].sum())
    if stray > 0:  # units in an arm planned to get none: the split is certainly not as planned
        return SampleRatio(math.inf, int(live.sum()) - 1, 0.0, tuple(expected.tolist()))
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = float(np.sum((observed[live] - expected[live]) ** 2 / expected[live]))
    df = int(live.sum()) - 1
    p = float(chi2_sf(chi2, df)) if df > 0 and math.isfinite(chi2) else math.nan
    return SampleRatio(chi2, df, p, tuple(expected.tolist()))


def holm(pvalues: object) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and does not count as a test): with the m p-values
    sorted p_(1) <= ... <= p_(m), adjusted p_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))."""
    shape = _array(pvalues).shape
    p = _array(pvalues).ravel()
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if len(finite):
        order = finite[np.argsort(p[finite], kind="stable")]
        m = len(order)
        scaled = (m - np.arange(m)) * p[order]
        adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted.reshape(shape)


# The mixing variance of the always-valid interval, as a multiple of the estimate's variance at the sample
# size where the interval should be tightest: (1 + 1/r)(2 log(1/alpha) + log(1 + r)), the squared half-width
# in units of that variance, is least near r = 8 for alpha = 0.05 (about 1.55 times the fixed-sample z's).
SEQUENTIAL_TIGHTEST_RATIO = 8.0


def sequential_interval(
    estimate: object, variance: object, tau2: object, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """An always-valid confidence interval for a difference of means (or any asymptotically normal
    estimate with variance V): the normal-mixture SPRT with mixing distribution N(0, tau2) over the
    effect (Robbins 1970; Johari et al. 2017, section 4; Howard et al. 2021, eq. 14). Its likelihood ratio
    against effect theta0 is sqrt(V/(V+tau2)) exp(tau2 (est - theta0)^2 / (2 V (V + tau2))); the interval
    is the set of theta0 it keeps below 1/alpha:

        est -+ sqrt( V (V + tau2) / tau2 * (2 log(1/alpha) + log((V + tau2) / V)) ).

    Looked at after every unit, it covers the effect at all times at once with probability >= 1 - alpha.
    `tau2` must be fixed before the data are seen; it sets where the interval is tightest (V = tau2 / 8
    at alpha 0.05; SEQUENTIAL_TIGHTEST_RATIO)."""
    est, v, t2 = (_array(x) for x in (estimate, variance, tau2))
    if np.any(t2 <= 0):
        raise ValueError(f"tau2={tau2!r}: expected a positive mixing variance")
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + np.log((v + t2) / v)))
    return est - half, est + half


def sequential_p(estimate: object, variance: object, tau2: object) -> np.ndarray:
    """The always-valid p-value of "no effect" under the same normal mixture: min(1, 1 / likelihood
    ratio at theta0 = 0); it is below alpha exactly when the sequential interval excludes 0."""
    est, v, t2 = (_array(x) for x in (estimate, variance, tau2))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log_ratio = 0.5 * np.log(v / (v + t2)) + t2 * est**2 / (2.0 * v * (v + t2))
        return np.minimum(1.0, np.exp(-log_ratio))


def cuped(outcomes: Sequence[np.ndarray], covariates: Sequence[np.ndarray]) -> tuple[list[np.ndarray], float]:
    """CUPED: each arm's outcome y (float (n_arm,)) adjusted by its pre-period covariate x (same shape):
    y - theta (x - mean x), theta = Cov(y, x) / Var(x) pooled over all arms, mean x over all arms. The
    adjusted means estimate the same lifts with less variance. theta = 0 when x does not vary."""
    if len(outcomes) != len(covariates):
        raise ValueError(f"outcomes: {len(outcomes)} arms, covariates: {len(covariates)} arms")
    for i, (y, x) in enumerate(zip(outcomes, covariates, strict=True)):
        if np.shape(y) != np.shape(x):
            raise ValueError(f"arm {i}: outcome shape {np.shape(y)} != covariate shape {np.shape(x)}")
    y_all = np.concatenate([_array(y) for y in outcomes])
    x_all = np.concatenate([_array(x) for x in covariates])
    if len(x_all) < 2 or float(x_all.var()) == 0.0:
        return [_array(y) for y in outcomes], 0.0
    theta = float(np.cov(y_all, x_all, ddof=1)[0, 1] / x_all.var(ddof=1))
    x_mean = float(x_all.mean())
    return [
        _array(y) - theta * (_array(x) - x_mean) for y, x in zip(outcomes, covariates, strict=True)
    ], theta
