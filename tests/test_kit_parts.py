"""The verdict kit's parts against independent computations: each kind (superiority,
non-inferiority, equivalence) gives each word on planted data; a failed trial never lands on the
passing side; the error rates the report states hold by simulation (TOST at its margin, the log
scale on skewed data, seeds as the unit of paired rates, the staged design); every undecided part
carries a computed reason; unequal compute is said."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from oplab import kit, stats
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial

SIMS = 4000


def two_arms(a, b, status_a=None, status_b=None, **extra):
    rows = []
    for arm, vals, sts in (("a", a, status_a), ("b", b, status_b)):
        for seed, v in enumerate(vals):
            rows.append({"arm": arm, "seed": seed, "m": arm, "x": v,
                         "status": (sts or ["ok"] * len(vals))[seed], **{k: w[arm] for k, w in extra.items()}})
    return pd.DataFrame(rows)


def diff_word(a, b, **kw):
    return kit.difference(two_arms(a, b), "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", **kw)


RNG = np.random.default_rng(5)
BASE = RNG.normal(0, 0.05, 8)


@pytest.mark.parametrize("kw,shift,word", [
    # superiority: beyond 0 (or a smallest effect that counts)
    ({"above": 0.0}, 1.0, "reproduced"), ({"above": 0.0}, -1.0, "not reproduced"),
    ({"above": 0.0}, 0.0, "inconclusive"), ({"above": 0.5}, 0.3, "not reproduced"),
    # non-inferiority: beyond -margin
    ({"above": -0.5}, 0.0, "reproduced"), ({"above": -0.5}, -1.0, "not reproduced"),
    ({"above": -0.5}, -0.5, "inconclusive"),
    # equivalence: inside (-0.5, 0.5)
    ({"within": (-0.5, 0.5)}, 0.0, "reproduced"), ({"within": (-0.5, 0.5)}, 1.0, "not reproduced"),
    ({"within": (-0.5, 0.5)}, -1.0, "not reproduced"), ({"within": (-0.5, 0.5)}, 0.5, "inconclusive"),
])
def test_each_kind_gives_each_word(kw, shift, word):
    v = diff_word(BASE + shift, np.zeros(8), **kw)
    assert v.word == word, v.evidence
    kind = "equivalence" if "within" in kw else "non-inferiority" if kw["above"] < 0 else "superiority"
    assert v.test["kind"] == kind and kind.split()[0] in v.rule


def test_a_test_refuses_a_threshold_on_the_wrong_side_of_its_kind():
    with pytest.raises(ValueError, match="non-inferiority"):
        stats.Test("superiority", above=-0.5)
    with pytest.raises(ValueError, match="superiority"):
        stats.Test("non-inferiority", above=0.5)
    with pytest.raises(ValueError, match="within"):
        stats.Test("equivalence", above=0.0)
    with pytest.raises(ValueError, match="positive"):
        stats.Test("superiority", above=0.0, scale="log")


def test_mean_and_ratio_on_the_log_scale():
    x = np.exp(RNG.normal(np.log(0.02), 0.3, 8))  # an error near 0: positive, right-skewed
    v = kit.mean(pd.DataFrame({"seed": range(8), "x": x, "status": "ok"}), "x", part="p", claim="c", unit="",
                 what="w", below=0.1, scale="log")
    assert v.method == "log-t" and v.word == "reproduced"
    assert v.effect == pytest.approx(np.exp(np.log(x).mean()))
    r = kit.ratio(two_arms(2.0 * np.exp(BASE), np.ones(8)), "x", {"m": "a"}, {"m": "b"}, part="p", claim="c",
                  within=(0.5, 1.5))
    assert r.word == "not reproduced" and r.test["scale"] == "log"


KINDS = [{"above": 0.0}, {"above": -0.3}, {"below": 0.0}, {"within": (-0.3, 0.3)}]


@pytest.mark.parametrize("kw", KINDS)
@pytest.mark.parametrize("worst", [None, -1e6, 1e6, 0.0])
def test_a_failed_seed_is_never_on_the_passing_side(kw, worst):
    """Whatever the study states for a failure, the seed's judged value is not on the passing side;
    and a part whose every trial failed reads 'not reproduced'."""
    test = stats.as_test(**kw)
    rng = np.random.default_rng(11)
    for _ in range(20):
        a, b = rng.normal(0, 1, 6), rng.normal(0, 1, 6)
        sa = ["diverged" if u < 0.3 else "ok" for u in rng.random(6)]
        v = kit.difference(two_arms(a, b, status_a=sa), "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u",
                           worst=worst, **kw)
        for seed, status in enumerate(sa):
            if status != "ok":
                assert not test.passes(v.details["per_seed"][seed]), (kw, worst, v.details["per_seed"])
    fail_all = ["diverged"] * 6
    for who in ("a", "b"):
        st = {"status_a": fail_all} if who == "a" else {"status_b": fail_all}
        v = kit.difference(two_arms(np.ones(6), np.zeros(6), **st), "x", {"m": "a"}, {"m": "b"}, part="p",
                           claim="c", unit="u", worst=worst, **kw)
        assert v.word == "not reproduced", (who, kw, worst, v.evidence)
        m = kit.mean(two_arms(np.ones(6), np.zeros(6), status_a=fail_all), "x", where={"m": "a"}, part="p",
                     claim="c", unit="u", what="w", worst=worst, **kw)
        assert m.word == "not reproduced"


def test_a_ratio_that_is_not_positive_is_a_failure_not_dropped():
    v = kit.ratio(two_arms([2.0, 2.1, -1.0, 1.9, 2.2, 2.0], np.ones(6)), "x", {"m": "a"}, {"m": "b"}, part="p",
                  claim="c", above=1.0)
    assert v.n == 6 and v.details["per_seed"][2] == 1.0 and "not positive" in v.evidence


def test_the_evidence_counts_trials_that_diverged_after_their_value_was_measured():
    t = two_arms(np.ones(6), np.zeros(6), status_a=["ok"] * 4 + ["diverged"] * 2)
    v = kit.difference(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", above=0.0,
                       diverged_fails=False)
    assert v.word == "reproduced" and "2 trials diverged after" in v.evidence


def test_tost_at_the_margin_keeps_false_equivalence_at_2_5_percent():
    """True difference exactly at the band's edge: the share of 'reproduced' (equivalent) is at most
    2.5% (+ simulation noise), at n = 5, 10 and 16 seeds."""
    for n in (5, 10, 16):
        x = np.random.default_rng(n).normal(0.5, 1.0, size=(SIMS, n))
        _, lo, hi = stats.t_bounds(x)
        words = [stats.decide((a, b), test=stats.Test("equivalence", within=(-0.5, 0.5))) for a, b in zip(lo, hi)]
        rate = np.mean([w == "reproduced" for w in words])
        assert rate <= 0.025 + 3 * np.sqrt(0.025 * 0.975 / SIMS), (n, rate)


@pytest.mark.parametrize("n", [5, 10])
def test_the_log_scale_keeps_the_false_positive_rate_of_a_below_claim_on_skewed_values(n):
    """Per-seed values lognormal (sigma 1) whose median is the threshold: "below" is false.
    Student t on the raw values says 'reproduced' more often than 2.5%; t on the logs does not."""
    x = np.random.default_rng(100 + n).lognormal(0.0, 1.0, size=(SIMS, n))
    _, lo, hi = stats.t_bounds(x)
    raw = np.mean(hi < np.exp(0.5))  # the arithmetic mean is exp(sigma^2 / 2): "below" is false there too
    _, llo, lhi = stats.t_bounds(np.log(x))
    log = np.mean(lhi < 0.0)
    assert raw > 0.04  # 7-18% in this setting
    assert log <= 0.025 + 3 * np.sqrt(0.025 * 0.975 / SIMS)


def test_paired_rates_take_the_seed_as_the_unit():
    """Two lengths per seed share the seed's init: a seed is one pair. Without a rule for a seed's
    several trials the part refuses to guess."""
    rows = [{"seed": s, "length": L, "m": m, "status": "ok", "e": float(m == "a" and s < 4)}
            for s in range(6) for L in (20, 40) for m in "ab"]
    t = pd.DataFrame(rows)
    with pytest.raises(ValueError, match="per_seed"):
        kit.paired_rates(t, "e", {"m": "a"}, {"m": "b"}, part="p", claim="c", what="w", above=0)
    v = kit.paired_rates(t, "e", {"m": "a"}, {"m": "b"}, part="p", claim="c", what="w", above=0, per_seed="any")
    assert v.n == 6 and v.details["pairs"] == 6
    assert v.ci == pytest.approx(stats.paired_rate_interval([1, 1, 1, 1, 0, 0], [0] * 6)[1])


def test_paired_rates_on_seeds_cover_when_lengths_are_correlated():
    """Each seed's two lengths have the same outcome (perfectly correlated): pairs on (length, seed)
    undercover; one pair a seed (per_seed='any') keeps Newcombe's >= 95%."""
    rng = np.random.default_rng(3)
    n, sims, truth = 8, 600, 0.3
    cover_seed = cover_flat = 0
    for _ in range(sims):
        a = (rng.random(n) < 0.5).astype(float)
        b = (rng.random(n) < 0.2).astype(float)
        lo, hi = stats.paired_rate_interval(a, b)[1]
        cover_seed += lo <= truth <= hi
        lo, hi = stats.paired_rate_interval(np.r_[a, a], np.r_[b, b])[1]
        cover_flat += lo <= truth <= hi
    assert cover_seed / sims >= 0.94 and cover_flat / sims < cover_seed / sims


def test_staged_levels_keep_the_false_positive_rate_by_simulation():
    """Looks at 10, 20 and 40 seeds, a part extended while undecided: with the staged level the
    chance of a false 'reproduced' over all looks is about 2.5%; with 95% at every look it is not."""
    level = stats.staged_level(3)
    assert 0.97 < level < 0.985  # about 98% intervals for three looks
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, size=(SIMS, 40))

    def false_rate(lv):
        hit = np.zeros(SIMS, dtype=bool)
        for n in (10, 20, 40):
            _, lo, _ = stats.t_bounds(x[:, :n], lv)
            hit |= lo > 0
        return hit.mean()

    se = np.sqrt(0.025 * 0.975 / SIMS)
    assert false_rate(level) <= 0.025 + 3 * se
    assert false_rate(0.95) > 0.025 + 3 * se  # 5.7-5.9% in theory
    assert stats.staged_level(1) == stats.LEVEL


def test_reasons_are_computed_from_the_data():
    under = diff_word(BASE * 10 + 0.3, np.zeros(8), above=0.0)
    assert under.word == "inconclusive" and under.reason.startswith("underpowered: about ")
    k = int(under.reason.split("about ")[1].split()[0])
    assert k > 8
    # at k seeds with the same effect and spread, the interval would clear 0 (as the formula says)
    d = np.array(list(under.details["per_seed"].values()))
    half = sps.t.ppf(0.975, k - 1) * d.std(ddof=1) / np.sqrt(k)
    assert half < d.mean() * 1.1
    small = diff_word(BASE + 0.3, np.zeros(8), above=0.5)
    assert small.word == "not reproduced" and "other side" in small.reason
    tiny = diff_word(BASE * 4 + 0.45, np.zeros(8), above=0.4)
    assert "smallest effect that counts" in tiny.reason
    none = kit.paired_rates(two_arms(np.zeros(6), np.zeros(6)), "x", {"m": "a"}, {"m": "b"}, part="p", claim="c",
                            what="w", above=0)
    assert none.word == "inconclusive"
    assert none.reason.startswith("no events in either arm; the effect sits on the threshold")
    halves = {"verdict": {"effect": 1.0}, "replication": {"effect": -1.0}}
    assert "halves disagree in sign" in stats.reason(under, halves)
    few = diff_word(BASE[:4] + 1, np.zeros(4), above=0.0)
    assert "only 4 seeds" in few.reason
    assert diff_word(BASE + 1, np.zeros(8), above=0.0).reason == ""


def test_expected_agreement_follows_the_power():
    strong = diff_word(BASE + 5, np.zeros(8), above=0.0)
    assert stats.expected_agreement(strong, 5, 5) == pytest.approx(1.0, abs=1e-6)
    weak = diff_word(BASE * 20 + 0.3, np.zeros(8), above=0.0)
    p = stats.half_probabilities(weak, 5)
    assert sum(p.values()) == pytest.approx(1.0) and p["inconclusive"] > 0.5


def test_a_part_says_when_its_arms_differ_in_compute():
    t = two_arms(np.ones(6), np.zeros(6), cost_updates={"a": 1520.0, "b": 800.0},
                 cost_flops={"a": 3e12, "b": 1.6e12})
    v = kit.difference(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", above=0.0)
    assert "Unequal compute" in v.evidence and v.details["cost"]["matched"] is False
    t = two_arms(np.ones(6), np.zeros(6), cost_updates={"a": 800.0, "b": 800.0},
                 cost_flops={"a": 1e12, "b": 1e12})
    v = kit.difference(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", above=0.0)
    assert "Unequal" not in v.evidence and v.details["cost"]["matched"] is True


def test_a_matched_control_gets_the_other_arms_updates():
    trial = Trial(data=DataConfig("mnist5k"), model=ModelConfig("mlp", 2, 8, "relu"), optim=OptimConfig("sgd", lr=0.1),
                  steps=800, batch_size=10)
    arm = kit.Arm(trial, {"method": "none"})
    m = kit.matched(arm, 1520, factors={"method": "none (matched)"})
    assert m.trial.steps == 1520 and m.factors["method"] == "none (matched)" and arm.trial.steps == 800


def test_an_arm_factor_that_restates_a_setting_must_agree_with_the_trial():
    trial = Trial(data=DataConfig("mnist5k"), model=ModelConfig("mlp", 2, 8, "relu"), optim=OptimConfig("sgd", lr=0.1),
                  steps=10, batch_size=10)
    kit.Arm(trial, {"lr": 0.1})
    with pytest.raises(ValueError, match="disagrees"):
        kit.Arm(trial, {"lr": 0.2})


@pytest.mark.parametrize("threshold", [100.0, 3.0, 0.1, 7.3])
@pytest.mark.parametrize("side", ["above", "below"])
def test_every_seed_failed_on_the_log_scale_is_never_reproduced(threshold, side):
    """Every seed failed, so every seed counts as the threshold; on the log scale the interval is
    exp(mean(log t)), which float rounding can put a hair past t (exp(log(100)) = 100.00000000000004):
    that must not read as clearing the threshold."""
    n = 6
    t = two_arms([1.0] * n, [1.0] * n, status_a=["diverged"] * n)
    r = kit.ratio(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", **{side: threshold})
    m = kit.mean(t[t["m"] == "a"], "x", part="p", claim="c", unit="u", what="w", scale="log",
                 **{side: threshold})
    for v in (r, m):
        assert v.word == "not reproduced", (v.effect, v.ci, v.word)
    assert stats.decide((np.exp(np.log(100.0)),) * 2, above=100.0) == "not reproduced"
    assert stats.decide((100.0 * (1 + 1e-6), 101.0), above=100.0) == "reproduced"


def test_a_part_whose_measure_found_nothing_is_inconclusive_not_refuted():
    """A finished trial without a finite value (a search that found nothing) counts at the threshold
    like any failure, but when fewer than MIN_SEEDS seeds measured anything the part cannot read
    "not reproduced" (its interval sits at the threshold by construction); diverged trials are
    evidence and keep the failing word; one unmeasured seed among many leaves a clear word alone."""
    n = 8
    nan = [float("nan")] * n
    t = two_arms(nan, [1.0] * n)
    for v in (kit.mean(t[t["m"] == "a"], "x", part="p", claim="c", unit="u", what="w", above=0.0),
              kit.difference(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", unit="u", above=0.0),
              kit.ratio(t, "x", {"m": "a"}, {"m": "b"}, part="p", claim="c", above=1.0),
              kit.rate(t[t["m"] == "a"], "x", part="p", claim="c", what="w", above=0.5)):
        assert v.word == "inconclusive" and v.note == f"0 of {n} seeds measured", (v.part, v.word, v.note)
        assert "measured" in v.reason and v.details["unmeasured_seeds"] == n
    diverged = two_arms(nan, [1.0] * n, status_a=["diverged"] * n)
    assert kit.mean(diverged[diverged["m"] == "a"], "x", part="p", claim="c", unit="u", what="w",
                    above=0.0).word == "not reproduced"
    # 4 of 8 measured (below MIN_SEEDS): inconclusive even though the measured four are far below
    half = two_arms([-5.0, -5.1, -4.9, -5.2] + nan[:4], [1.0] * n)
    assert kit.mean(half[half["m"] == "a"], "x", part="p", claim="c", unit="u", what="w", above=0.0).word \
        == "inconclusive"
    # 7 of 8 measured: the word stands (the unmeasured seed counts at the threshold)
    most = two_arms([-5.0, -5.1, -4.9, -5.2, -5.0, -5.3, -4.8, float("nan")], [1.0] * n)
    v = kit.mean(most[most["m"] == "a"], "x", part="p", claim="c", unit="u", what="w", above=0.0)
    assert v.word == "not reproduced" and v.details["unmeasured_seeds"] == 1


def test_every_seed_on_the_threshold_is_said_so():
    """Seeds that all sit exactly on the threshold read "not reproduced" (none is beyond it), and the
    reason says they sit on it rather than that the interval lies on the other side."""
    t = two_arms([0.0] * 6, [1.0] * 6)
    v = kit.mean(t[t["m"] == "a"], "x", part="p", claim="c", unit="u", what="w", above=0.0)
    assert v.word == "not reproduced" and "exactly on the threshold" in v.reason
    w = kit.mean(two_arms([-1.0, -1.1, -0.9, -1.2, -1.0, -0.8], [1.0] * 6).query("m == 'a'"), "x", part="p",
                 claim="c", unit="u", what="w", above=0.0)
    assert w.word == "not reproduced" and "other side" in w.reason
