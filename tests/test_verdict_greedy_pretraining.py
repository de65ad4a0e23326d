"""greedy_pretraining's verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so; failures count against their arm."""

import numpy as np
import pandas as pd
import pytest

from studies import greedy_pretraining as study
from tests.synthetic import PLANTED, context, table, words

PARTS = ["(1a) autoencoder vs none", "(1b) denoising vs none", "(2) supervised vs none",
         "(3) autoencoder vs supervised", "(4a) modern vs autoencoder", "(4b) modern vs supervised",
         "(5a) pre-trained error does not rise with depth", "(5b) rises less than without"]

# planted depth-3 test errors (pp) and depth slopes (pp / layer) per effect
# (5a) is the autoencoder's own slope against +0.5 pp / layer, (5b) none's minus the autoencoder's slope
ERR = {"yes": {"none": 10.0, "supervised": 8.0, "autoencoder": 7.0, "denoising": 7.5, "modern": 6.5, "shallow": 9.0},
       "no": {"none": 10.0, "supervised": 11.0, "autoencoder": 12.0, "denoising": 12.5, "modern": 14.0,
              "shallow": 9.0},
       "unclear": {"none": 10.0, "supervised": 10.0, "autoencoder": 10.0, "denoising": 10.0, "modern": 10.5,
                   "shallow": 9.0}}
SLOPE = {"yes": {"none": 3.0, "autoencoder": 0.0}, "no": {"none": 0.0, "autoencoder": 3.0},
         "unclear": {"none": 0.5, "autoencoder": 0.5}}
SPREAD = {"none": 1.0, "supervised": -1.0, "autoencoder": 0.5, "denoising": 1.5, "modern": -0.5, "shallow": 0.0}


def planted(effect: str):
    """Per-trial values where every part's true effect is on the claimed side ("yes"), on the
    other side ("no"), or at the threshold with wide seed noise ("unclear")."""

    def values(f, seed, rng):
        if effect == "unclear":  # seed noise of alternating sign, different per arm: every paired difference
            noise = 4.0 * (-1) ** seed * SPREAD[f["method"]]  # is wide and centred on its planted mean
        else:
            noise = rng.normal(0, 0.1)
        return {"test_err_pp": ERR[effect][f["method"]] + noise,
                "depth_slope": SLOPE[effect].get(f["method"], np.nan) + noise}

    return values


def test_a_diverged_arm_counts_against_itself():
    """A diverged trial counts as chance error (90 %): the arm that failed looks worse, never better."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["method"] in ("autoencoder", "modern") and f["depth"] == 3:
            v.update(status="diverged", test_err_pp=float("nan"))
        return v

    got = words(study, values, seeds=range(6))
    assert got["(1a) autoencoder vs none"] == "not reproduced"
    assert got["(3) autoencoder vs supervised"] == "not reproduced"
    assert got["(4b) modern vs supervised"] == "not reproduced"
    assert got["(2) supervised vs none"] == "reproduced"


def _measured(err_of, seeds=range(6), budget="quick"):
    """The synthetic table through the study's measure(): test_err (a fraction) per trial, NaN if diverged."""
    def values(f, seed, rng):
        e = err_of(f, seed, rng)
        v = {"steps": 800, "test_err": e / 100 if np.isfinite(e) else float("nan")}
        return v if np.isfinite(e) else {**v, "status": "diverged"}

    ctx = context(study, seeds, budget)
    return study.measure(table(study, values, seeds, budget), {}, ctx), ctx


def rising_without(f, seed, rng):
    """Without pre-training error rises 3 pp a layer; with it, it stays flat."""
    rise = 3.0 if f["method"] in ("none", "shallow") else 0.0
    return 5.0 + rise * (f["depth"] - 1) + rng.normal(0, 0.1)


@pytest.mark.parametrize("budget", ["quick", "long"])  # depths 1, 3 at quick; 1, 3, 4 at long
def test_depth_slope_is_a_least_squares_fit_per_seed(budget):
    t, ctx = _measured(rising_without, budget=budget)
    assert sorted(t["depth"].unique()) == sorted({*study.SETUP[budget]["depths"], study.MAIN_DEPTH})
    none = t[t["method"] == "none"].groupby("seed")["depth_slope"]
    assert np.allclose(none.mean(), 3.0, atol=0.2) and (none.nunique() == 1).all()
    assert np.allclose(t[t["method"] == "autoencoder"]["depth_slope"], 0.0, atol=0.2)
    assert t[t["method"] == "supervised"]["depth_slope"].isna().all()
    assert (t["total_updates"] == 800).all()  # no pre-training updates in these synthetic records
    got = words_of(t, ctx)
    assert got["(5a) pre-trained error does not rise with depth"] == got["(5b) rises less than without"] == "reproduced"


def test_a_diverged_deep_autoencoder_counts_against_its_depth_trend():
    """The autoencoder's 4-layer net diverging enters its fit at 90 %: its slope becomes steep (the
    least-squares slope of (5, 5, 90) at depths (1, 3, 4): Sxy / Sxx = (340 / 3) / (14 / 3) = 24.29; the
    long budget's depth series)."""
    def err(f, seed, rng):
        return float("nan") if f["method"] == "autoencoder" and f["depth"] == 4 else rising_without(f, seed, rng)

    t, ctx = _measured(err, budget="long")
    assert np.allclose(t[t["method"] == "autoencoder"]["depth_slope"], 340 / 14, atol=0.2)
    got = words_of(t, ctx)
    assert got["(5a) pre-trained error does not rise with depth"] == got["(5b) rises less than without"] \
        == "not reproduced"


def words_of(t, ctx):
    return {p.part: p.shown for p in study.verdict(t, ctx)}


MATCHED_PARTS = ["(1a) autoencoder vs none", "(1b) denoising vs none", "(2) supervised vs none",
                 "(5b) rises less than without"]


def _with_cost(values):
    """values, plus each arm's cost as the report's frame carries it (report.frame: cost_ + the keys of
    oplab.estimate.record_cost, counted from its config)."""
    from oplab import estimate
    from oplab import plan as planning

    cost = {tuple(sorted(a.factors.items())): {f"cost_{k}": v for k, v in estimate.record_cost(a.trial).items()}
            for a in planning.arms_of(study, "quick").values()}

    def with_cost(f, seed, rng):
        return {**values(f, seed, rng), **cost[tuple(sorted(f.items()))]}

    return with_cost


def test_a_part_judged_against_the_matched_arm_can_fail():
    """The pre-trained arms beat none's former 800-update value (read off its curve) but not the
    compute-matched none at the end: the parts judged against the matched arm are not reproduced,
    and they compare arms of equal compute (no "Unequal compute" in their evidence)."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["method"] == "none":  # better than every pre-trained arm at the end, worse at update 800
            v.update(test_err_pp=5.0 + rng.normal(0, 0.1), test_err_ft_pp=12.0, depth_slope=-1.0 + rng.normal(0, 0.1))
        return v

    t = table(study, _with_cost(values), seeds=range(6))
    parts = {p.part: p for p in study.verdict(t, context(study, range(6)))}
    for name in MATCHED_PARTS:
        assert parts[name].shown == "not reproduced", name
        assert parts[name].details["cost"]["matched"] and "Unequal compute" not in parts[name].evidence, name
    assert "Unequal compute" in parts["(4a) modern vs autoencoder"].evidence  # modern keeps 800 updates


def test_the_matched_none_runs_the_pre_trained_arms_total_updates():
    """none's steps = the pre-trained arm's pre-training + fine-tuning updates, as the cost model counts
    them (oplab.estimate) and as a real pre-training run records them (smoke budget, trained here)."""
    from oplab import estimate
    from oplab import plan as planning
    from oplab.train import train

    for budget in study.SEEDS:
        arms = planning.arms_of(study, budget).values()
        for d in study.SETUP[budget]["depths"]:
            nones = [a for a in arms if a.factors["method"] == "none" and a.factors["depth"] == d]
            aes = [a for a in arms if a.factors["method"] == "autoencoder" and a.factors["depth"] == d]
            assert nones and aes, (budget, d)
            for none in nones:  # every rate of none's grid, against every rate of the autoencoder's
                for ae in aes:
                    assert none.trial.steps == estimate.record_cost(ae.trial)["updates"] == \
                        estimate.record_cost(none.trial)["updates"], (budget, d)
    arms = planning.arms_of(study, "smoke")
    rec = train(arms["autoencoder depth=3 lr=2"].trial, 0)
    assert rec.final["pretrain_updates"] + rec.final["finetune_updates"] == arms["none depth=3 lr=2"].trial.steps
    assert arms["shallow depth=1 lr=2"].trial == arms["none depth=1 lr=2"].trial  # stored once


def test_the_former_control_is_read_off_the_matched_curve_at_the_fine_tuning_updates():
    """measure() reads each trial's test error after the pre-trained arms' fine-tuning updates (quick:
    10 epochs of 2,000 digits at batch 50 = 400) from its eval curve: for the matched none, the former
    control's value."""
    seeds = range(2)
    ft = study.finetune_updates(study.SETUP["quick"])
    assert ft == 10 * 2000 // 50
    t = table(study, lambda f, seed, rng: {"steps": ft, "test_err": 0.05}, seeds)
    rows = t[["arm", "seed"]].drop_duplicates()
    steps = [0, ft - 80, ft, ft + 80]
    ev = pd.DataFrame([{"arm": a, "seed": s, "step": k, "test_acc": 1 - (0.2 + k / 10_000 + s / 100)}
                       for a, s in rows.itertuples(index=False) for k in steps])
    m = study.measure(t, {"eval": ev}, context(study, seeds))
    assert np.allclose(m["test_err_ft_pp"], 100 * (0.2 + ft / 10_000 + m["seed"] / 100))


@pytest.mark.parametrize("effect,word", PLANTED)
def test_the_long_budget_judges_the_same_parts(effect, word):
    """The long budget (depths 1, 3, 4; longer training) gives the same parts, each the planted word."""
    got = words(study, planted(effect), seeds=range(8), budget="long")
    assert list(got) == PARTS and all(w == word for w in got.values()), got
