"""Curriculum schedules draw the difficulties they claim, and advance only by their rule.

Distribution checks use a fixed seed and a chi-square goodness-of-fit test at the 0.001 level:
deterministic here, and a correct schedule would fail it for only 1 seed in 1,000."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from oplab import curriculum

N = 50_000
ALPHA = 1e-3


def _counts(draws: np.ndarray, target: int) -> np.ndarray:
    assert draws.dtype == np.int64 and draws.min() >= 1 and draws.max() <= target
    return np.bincount(draws, minlength=target + 1)[1:]


def _fits(draws: np.ndarray, probs: np.ndarray) -> bool:
    counts = _counts(draws, len(probs))
    return stats.chisquare(counts, N * probs).pvalue > ALPHA


def test_baseline_and_naive_are_constant():
    b = curriculum.build("baseline", 7)
    n = curriculum.build("naive", 7)
    n.level = 3
    rng = np.random.default_rng(0)
    assert (b.draw(1000, rng) == 7).all() and (n.draw(1000, rng) == 3).all()


@pytest.mark.parametrize("level", [1, 4])
def test_mix_is_uniform_up_to_the_target_whatever_the_level(level):
    """Mix samples 1..target, not 1..level (a known reimplementation mistake)."""
    m = curriculum.build("mix", 9)
    m.level = level
    draws = m.draw(N, np.random.default_rng(1))
    assert _fits(draws, np.full(9, 1 / 9))
    assert draws.max() == 9


@pytest.mark.parametrize("level", [1, 3, 6])
def test_combined_is_its_level_with_one_fifth_mixed_in(level):
    """P(d = level) = 4/5 + 1/5 * 1/T; P(d = k) = 1/5 * 1/T for every other k in 1..T."""
    c = curriculum.build("combined", 6)
    c.level = level
    draws = c.draw(N, np.random.default_rng(2))
    probs = np.full(6, 0.2 / 6)
    probs[level - 1] += 0.8
    assert _fits(draws, probs)
    # and it would not fit a wrong mixing rate (1/3 instead of 1/5): the test has power
    wrong = np.full(6, (1 / 3) / 6)
    wrong[level - 1] += 2 / 3
    assert not _fits(draws, wrong)


def test_a_wrong_distribution_is_detected():
    """The chi-square check rejects mix sampled only up to the current level."""
    rng = np.random.default_rng(3)
    capped = rng.integers(1, 4, size=N, endpoint=True)  # 1..4 at level 4 of target 9
    assert not _fits(capped, np.full(9, 1 / 9))


@pytest.mark.parametrize("name", curriculum.CURRICULA.names())
def test_the_advance_rule(name):
    s = curriculum.build(name, 3, threshold=0.95)
    assert s.level == 1
    assert s.check(0.95) is False and s.level == 1  # strictly above the threshold
    assert s.check(0.951) is True and s.level == 2
    assert s.check(0.5) is False and s.level == 2
    assert s.check(1.0) is True and s.level == 3 and s.at_target
    assert s.check(1.0) is False and s.level == 3  # never beyond the target


def test_unknown_schedule_lists_the_valid_ones():
    with pytest.raises(KeyError, match="baseline, combined, mix, naive"):
        curriculum.build("reverse", 3)
    with pytest.raises(ValueError, match=">= 1"):
        curriculum.build("naive", 0)
