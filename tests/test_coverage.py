"""Do the verdict intervals cover as often as they say, at the seed counts studies use?

Measured on simulated data with a fixed generator (so the test is deterministic):
- the percentile bootstrap of the mean that verdicts used before covers the true mean
  of normal data about 76% of the time at n=3, 84% at n=5, 90% at n=10 (the check
  below fails it, by design);
- Student t covers 94-96% at n = 3, 5, 10;
- on lognormal per-seed values, t on log values covers the geometric mean 94-96%
  (which is why ratios use log-t), while t on the raw values covers their arithmetic
  mean about 92% at sigma = 0.5 and only about 83% at sigma = 1. The bound we defend
  for skewed raw values at n = 3 is >= 0.90 for sigma <= 0.5 (seeds within about a
  factor 1.6 of each other, as losses and errors are here); wider spreads should be
  analysed as ratios;
- Clopper-Pearson rate intervals cover >= 95% for every p and n (computed exactly
  by summing the binomial distribution), and Newcombe's paired interval covers >= 95%
  in the paired settings below (exactly, by summing the multinomial distribution).
"""

import itertools

import numpy as np
import pytest
from scipy import stats as sps

from oplab import stats

SIMS = 4000


def covered(lo, hi, truth) -> float:
    return float(np.mean((lo < truth) & (truth < hi)))


def percentile_bootstrap(x: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The old verdict interval, vectorized over experiments (rows)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.shape[1], size=(x.shape[0], n_boot, x.shape[1]))
    means = np.take_along_axis(np.repeat(x[:, None, :], n_boot, axis=1), idx, axis=2).mean(axis=2)
    return np.quantile(means, 0.025, axis=1), np.quantile(means, 0.975, axis=1)


@pytest.mark.parametrize("n", [3, 5, 10])
def test_student_t_covers_normal_means(n):
    x = np.random.default_rng(n).normal(1.0, 1.0, size=(SIMS, n))
    _, lo, hi = stats.t_bounds(x)
    assert 0.93 <= covered(lo, hi, 1.0) <= 0.97


@pytest.mark.parametrize("n", [3, 5, 10])
def test_the_old_percentile_bootstrap_fails_the_same_check(n):
    x = np.random.default_rng(n).normal(1.0, 1.0, size=(1000, n))
    lo, hi = percentile_bootstrap(x)
    assert covered(lo, hi, 1.0) < 0.93  # 0.76, 0.84, 0.90


@pytest.mark.parametrize("n", [3, 5, 10])
@pytest.mark.parametrize("sigma", [0.25, 0.5, 1.0])
def test_log_t_covers_lognormal_ratios(n, sigma):
    r = np.random.default_rng(10 * n + int(4 * sigma)).lognormal(0.0, sigma, size=(SIMS, n))
    _, lo, hi = stats.t_bounds(np.log(r))
    assert 0.93 <= covered(np.exp(lo), np.exp(hi), 1.0) <= 0.97
    geo, (a, b) = stats.log_t_interval(r[0])
    assert a < geo < b and geo == pytest.approx(np.exp(np.log(r[0]).mean()))


@pytest.mark.parametrize("sigma", [0.25, 0.5])
def test_t_on_skewed_raw_values_at_n3_keeps_the_stated_bound(sigma):
    x = np.random.default_rng(7).lognormal(0.0, sigma, size=(SIMS, 3))
    _, lo, hi = stats.t_bounds(x)
    assert covered(lo, hi, np.exp(sigma**2 / 2)) >= 0.90


@pytest.mark.parametrize("n", [5, 10, 20])
@pytest.mark.parametrize("p", [0.05, 0.5, 0.95])
def test_clopper_pearson_rates_cover_at_least_95(n, p):
    cover = sum(sps.binom.pmf(k, n, p) for k in range(n + 1)
                if stats.rate_interval(k, n)[1][0] <= p <= stats.rate_interval(k, n)[1][1])
    assert cover >= 0.95


def test_rate_intervals_are_never_zero_width():
    for k, n in [(0, 10), (10, 10), (5, 5), (0, 5)]:
        _, (lo, hi) = stats.rate_interval(k, n)
        assert hi - lo > 0.2, (k, n, lo, hi)
    _, (lo, hi) = stats.paired_rate_interval([0] * 10, [0] * 10)
    assert lo < 0 < hi  # no events in either arm: the difference is not known to be 0


@pytest.mark.parametrize("n", [10, 20])
@pytest.mark.parametrize("cells", [(0.3, 0.2, 0.1), (0.05, 0.05, 0.0), (0.45, 0.05, 0.05), (0.0, 0.7, 0.0),
                                   (0.1, 0.1, 0.1)])
def test_newcombe_paired_difference_covers_at_least_95(n, cells):
    """Exact coverage: sum over every table (both, a only, b only, neither) of n pairs."""
    p11, p10, p01 = cells
    probs = [p11, p10, p01, 1 - p11 - p10 - p01]
    truth = p10 - p01
    cover = 0.0
    for e, f, g in itertools.product(range(n + 1), repeat=3):
        h = n - e - f - g
        if h < 0:
            continue
        a = [1] * (e + f) + [0] * (g + h)
        b = [1] * e + [0] * f + [1] * g + [0] * h
        _, (lo, hi) = stats.paired_rate_interval(a, b)
        if lo <= truth <= hi:
            cover += sps.multinomial.pmf([e, f, g, h], n, probs)
    assert cover >= 0.95
