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


# --- the second rule: training accuracy below its value five checks earlier (main.lua 285-287, 04a1659)


def _main_lua(val_accs, train_accs_seen, target, threshold=0.95):
    """A line-by-line transcription of main.lua's check (lines 285-298), its Lua table kept 1-indexed
    by a dummy entry at 0: the levels after each check and whether the rule fired."""
    train_accs = [None]  # Lua table; #train_accs == len(train_accs) - 1
    current, levels, fired = 1, [], []
    for val, train in zip(val_accs, train_accs_seen):
        n = len(train_accs) - 1
        f = (val > threshold) or (n >= 5 and train_accs[n - 4] > train)
        if f:
            if current < target:  # make_harder()
                current += 1
            train_accs = [None]
        train_accs.append(train)  # train_accs[#train_accs + 1] = state_train.acc
        levels.append(current)
        fired.append(f)
    return levels, fired


@pytest.mark.parametrize("seed", range(20))
def test_the_rule_is_main_luas(seed):
    """On random check sequences (training accuracy drifting up with noise, validation sometimes above
    0.95), every strategy's level and firing follow the transcription of the authors' code."""
    rng = np.random.default_rng(seed)
    n = 60
    train = np.clip(np.cumsum(rng.normal(0.005, 0.03, n)) + 0.3, 0, 1)
    val = np.where(rng.random(n) < 0.05, 0.97, rng.uniform(0.3, 0.95, n))
    want_levels, want_fired = _main_lua(val, train, target=6)
    for name in curriculum.CURRICULA.names():
        s = curriculum.build(name, 6)
        got_levels, got_fired = [], []
        for v, t in zip(val, train):
            before = s.level
            assert s.check(v, t) == (s.level == before + 1)
            got_levels.append(s.level)
            got_fired.append(s.fired)
        assert got_levels == want_levels and got_fired == want_fired
    assert any(f and v <= 0.95 for f, v in zip(want_fired, val))  # the second rule did fire on its own


def test_the_stagnation_rule_by_hand():
    s = curriculum.build("naive", 3)
    for acc in (0.50, 0.60, 0.70, 0.80, 0.90):  # rising: never fires, the history fills
        assert s.check(0.5, acc) is False and not s.fired
    assert s.check(0.5, 0.55) is False and s.level == 1  # 0.55 > 0.50, its value five checks earlier
    assert s.check(0.5, 0.59) is True and s.level == 2  # 0.59 < 0.60, five checks earlier
    assert s.train_accs == [0.59]  # the history starts afresh with the check that fired
    for acc in (0.1, 0.1, 0.1, 0.1):  # far below 0.59, but fewer than five checks since it fired
        assert s.check(0.5, acc) is False
    assert s.check(0.5, 0.58) is True and s.level == 3  # five checks later, against 0.59
    assert s.check(0.5, 0.0) is False and s.at_target  # at the target nothing rises ...
    for acc in (0.2, 0.2, 0.2):
        assert s.check(0.5, acc) is False and not s.fired
    assert s.check(0.5, 0.57) is False and s.fired  # ... but the rule fires (the loop decays the rate)
    assert s.train_accs == [0.57]


def test_the_stagnation_rule_off_and_validation_only():
    s = curriculum.build("combined", 3, patience=0)
    for acc in (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3):
        assert s.check(0.5, acc) is False and s.level == 1
    n = curriculum.build("naive", 3)
    for _ in range(7):  # without a training accuracy: the first rule only
        assert n.check(0.5) is False and n.level == 1
    assert n.check(0.5, None) is False and n.train_accs == []
    with pytest.raises(ValueError, match="patience"):
        curriculum.build("naive", 3, patience=-1)


@pytest.mark.parametrize("name", curriculum.CURRICULA.names())
@pytest.mark.parametrize("level", [1, 2, 5])
def test_probabilities_are_what_draw_draws(name, level):
    s = curriculum.build(name, 5)
    s.level = level
    p = s.probabilities()
    assert p.shape == (5,) and abs(p.sum() - 1) < 1e-12
    draws = s.draw(N, np.random.default_rng(4))
    if np.count_nonzero(p) == 1:
        assert (draws == np.argmax(p) + 1).all()
    else:
        assert _fits(draws, p)


def test_exposure_by_hand():
    """Mean difficulty and share at the target over the batches' levels, against the closed forms."""
    levels = [1, 1, 2, 3]  # target 3
    e = curriculum.exposure("combined", 3, levels)
    mean = np.mean([0.8 * lv + 0.2 * 2.0 for lv in levels])  # 4/5 at the level, 1/5 uniform on 1..3 (mean 2)
    share = np.mean([0.8 * (lv == 3) + 0.2 / 3 for lv in levels])
    assert np.isclose(e["mean_difficulty"], mean) and np.isclose(e["share_at_target"], share)
    assert curriculum.exposure("naive", 3, levels) == {"mean_difficulty": 1.75, "share_at_target": 0.25}
    assert curriculum.exposure("baseline", 3, levels) == {"mean_difficulty": 3.0, "share_at_target": 1.0}
    assert np.isclose(curriculum.exposure("mix", 3, levels)["share_at_target"], 1 / 3)
    assert np.isnan(curriculum.exposure("naive", 3, [])["mean_difficulty"])
