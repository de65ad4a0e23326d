import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from oplab import kit, stats


def test_t_interval_matches_scipy():
    x = [1.0, 2.5, 0.5, 3.0, 1.5]
    m, (lo, hi) = stats.t_interval(x)
    ref = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert m == pytest.approx(np.mean(x)) and (lo, hi) == pytest.approx(ref)
    assert all(np.isnan(stats.t_interval([2.0])[1]))  # one value: no interval, never a zero-width one
    assert np.isnan(stats.t_interval([])[0])


def test_rate_interval_is_clopper_pearson():
    p, (lo, hi) = stats.rate_interval(3, 10)
    assert p == 0.3
    assert lo == pytest.approx(sps.beta.ppf(0.025, 3, 8)) and hi == pytest.approx(sps.beta.ppf(0.975, 4, 7))


def test_paired_rates_with_no_correlation_match_the_unpaired_newcombe_interval():
    # a and b arranged so the 2x2 table is e=f=g=h=5: phi = 0 (no correction applies when ad - bc = 0)
    a = [1] * 10 + [0] * 10
    b = [1] * 5 + [0] * 5 + [1] * 5 + [0] * 5
    d, (lo, hi) = stats.paired_rate_interval(a, b)
    l1, u1 = stats.wilson(10, 20)
    l2, u2 = stats.wilson(10, 20)
    assert d == 0.0
    assert lo == pytest.approx(-np.hypot(0.5 - l1, u2 - 0.5)) and hi == pytest.approx(np.hypot(u1 - 0.5, 0.5 - l2))


def test_word_rules():
    assert stats.decide((0.1, 0.3), above=0) == "reproduced"
    assert stats.decide((-0.3, -0.1), above=0) == "not reproduced"
    assert stats.decide((-0.1, 0.3), above=0) == "inconclusive"
    assert stats.decide((0.6, 0.9), below=0.5) == "not reproduced"
    assert stats.decide((float("nan"), 1), above=0) == "inconclusive"
    assert stats.word_for((0.1, 0.3), 4, above=0) == ("inconclusive", "n < 5")
    assert stats.word_for((0.1, 0.3), 5, above=0) == ("reproduced", "")


def test_overall_shows_refutations():
    v = lambda w: stats.Verdict("p", "c", 0.0, (0, 0), "u", "r", w, "e")  # noqa: E731
    assert stats.overall([v("reproduced")] * 2) == "reproduced"
    assert stats.overall([v("not reproduced")] * 2) == "not reproduced"
    assert stats.overall([v("inconclusive")] * 2) == "inconclusive"
    assert stats.overall([v("reproduced"), v("not reproduced")]) == "mixed (1 reproduced, 1 not reproduced)"
    assert stats.overall([v("inconclusive"), v("not reproduced")]) == "mixed (1 not reproduced, 1 inconclusive)"
    with pytest.raises(ValueError):
        v("sort of")


def frame(values_a, values_b, status_a=None, status_b=None, extra=None):
    rows = []
    for arm, vals, sts in (("a", values_a, status_a), ("b", values_b, status_b)):
        for seed, v in enumerate(vals):
            rows.append({"arm": arm, "seed": seed, "m": arm, "status": (sts or ["ok"] * len(vals))[seed], "x": v,
                         **(extra or {})})
    return pd.DataFrame(rows)


def test_difference_part_effect_interval_and_n_come_from_the_same_values():
    t = frame([2.0, 3.0, 2.5, 2.2, 2.8], [1.0, 1.5, 1.2, 1.0, 1.4])
    v = kit.difference(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", above=0)
    d = np.array([1.0, 1.5, 1.3, 1.2, 1.4])
    assert v.effect == pytest.approx(d.mean()) and v.ci == pytest.approx(stats.t_interval(d)[1])
    assert v.n == 5 and v.word == "reproduced" and v.method == "Student t"
    assert "+1.28" in v.evidence and "n=5 seeds" in v.evidence


def test_a_failed_trial_keeps_its_seed_and_never_lands_on_the_passing_side():
    t = frame([1.0, 1.1, 0.9, 1.0, 1.05], [2.0, 2.1, np.nan, 1.9, 2.0], status_b=["ok", "ok", "diverged", "ok", "ok"])
    v = kit.difference(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", below=0)
    assert v.n == 5  # the diverged seed is not dropped
    assert v.details["failed"] == 1 and "counts as the threshold (0)" in v.rule
    # the failed seed's difference counts at the threshold, 0 (no stated value for a failure)
    assert v.effect == pytest.approx(np.mean([1.0 - 2.0, 1.1 - 2.1, 0.0, 1.0 - 1.9, 1.05 - 2.0]))
    # a stated value for b's failure (100) would put that seed far on the passing side: the threshold wins
    w = kit.difference(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", below=0, worst=100.0)
    assert w.effect == pytest.approx(v.effect)
    # a stated value on the not-reproduced side is kept (stricter than the threshold)
    t2 = frame([1.0, 1.1, np.nan, 1.0, 1.05], [2.0, 2.1, 2.0, 1.9, 2.0], status_a=["ok", "ok", "diverged", "ok", "ok"])
    u = kit.difference(t2, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", below=0, worst=100.0)
    assert u.details["per_seed"][2] == pytest.approx(100.0 - 2.0)


def test_ratio_averages_within_a_seed_first():
    rows = [{"seed": s, "m": m, "setting": k, "status": "ok", "ms": (2.0 if m == "a" else 1.0) * (1 + k)}
            for s in range(5) for m in "ab" for k in range(3)]
    v = kit.ratio(pd.DataFrame(rows), "ms", {"m": "a"}, {"m": "b"}, part="p", claim="c", above=1)
    assert v.n == 5 and v.effect == pytest.approx(2.0) and v.method == "log-t"


def test_paired_rates_count_a_trial_that_raised_against_the_claim():
    t = frame([1] * 6, [0] * 6, status_a=["ok"] * 5 + ["error"])
    v = kit.paired_rates(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", what="w", above=0)
    assert v.effect == pytest.approx(5 / 6) and v.n == 6 and v.word == "reproduced"
    # a diverged trial's event is the study's to define: it counts as given
    d = frame([1] * 6, [0] * 6, status_a=["ok"] * 5 + ["diverged"])
    assert kit.paired_rates(d, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", what="w", above=0).effect == 1.0
    # b's error counts as an event of b (against "a's rate is higher")
    e = frame([1] * 6, [0] * 6, status_b=["ok"] * 5 + ["error"])
    assert kit.paired_rates(e, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", what="w", above=0).effect == \
        pytest.approx(5 / 6)


def test_rate_part_uses_clopper_pearson():
    t = frame([1, 1, 0, 1, 1], [0] * 5)
    v = kit.rate(t, "x", where={"m": "a"}, part="p", claim="c", what="w", above=0.1)
    assert v.effect == 0.8 and v.ci == pytest.approx(stats.rate_interval(4, 5)[1])


def test_choose_uses_training_score_and_counts_failures_as_infinite():
    df = pd.DataFrame({
        "g": ["a"] * 4 + ["b"] * 4, "lr": [0.1, 0.1, 0.3, 0.3] * 2, "seed": [1000, 1001] * 4,
        "status": ["ok", "ok", "ok", "diverged", "ok", "ok", "ok", "ok"],
        "train_loss_full": [0.5, 0.7, 0.1, np.nan, 0.4, 0.4, 0.2, 0.2],
    })
    tune = kit.Tune("lr", within=("g",))
    assert kit.choose(df, tune) == {("a",): 0.1, ("b",): 0.3}
    assert kit.mark_chosen(df, tune)["chosen"].tolist() == [True, True, False, False, False, False, True, True]


def test_summary_gives_t_intervals_and_counts_failures():
    t = frame([1.0, 2.0, 3.0], [1.0, np.nan, 1.0], status_b=["ok", "diverged", "ok"])
    s = kit.summary(t, "x", ["m"]).set_index("m")
    assert s.loc["a", "x (mean)"] == 2.0 and s.loc["b", "failed"] == 1 and s.loc["b", "seeds"] == 3
    lo, hi = stats.t_interval([1.0, 2.0, 3.0])[1]
    assert s.loc["a", "95% CI (t)"] == stats.interval_text((lo, hi))
