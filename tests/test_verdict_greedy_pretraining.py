"""greedy_pretraining's verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so; failures count against their arm."""

import numpy as np

from studies import greedy_pretraining as study
from tests.synthetic import context, table, words

PARTS = ["(1) autoencoder vs none", "(2) supervised vs none", "(3) autoencoder vs supervised",
         "(4a) modern vs autoencoder", "(4b) modern vs supervised", "(5) depth trend"]

# planted depth-3 test errors (pp) and depth slopes (pp / layer) per effect
ERR = {"yes": {"none": 10.0, "supervised": 8.0, "autoencoder": 7.0, "modern": 6.5, "shallow": 9.0},
       "no": {"none": 10.0, "supervised": 11.0, "autoencoder": 12.0, "modern": 14.0, "shallow": 9.0},
       "unclear": {"none": 10.0, "supervised": 10.0, "autoencoder": 10.0, "modern": 10.5, "shallow": 9.0}}
SLOPE = {"yes": {"none": 3.0, "autoencoder": 0.0}, "no": {"none": 0.0, "autoencoder": 3.0},
         "unclear": {"none": 1.0, "autoencoder": 1.0}}
SPREAD = {"none": 1.0, "supervised": -1.0, "autoencoder": 0.5, "modern": -0.5, "shallow": 0.0}


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
    assert got["(1) autoencoder vs none"] == "not reproduced"
    assert got["(3) autoencoder vs supervised"] == "not reproduced"
    assert got["(4b) modern vs supervised"] == "not reproduced"
    assert got["(2) supervised vs none"] == "reproduced"


def _measured(err_of, seeds=range(6)):
    """The synthetic table through the study's measure(): test_err (a fraction) per trial, NaN if diverged."""
    def values(f, seed, rng):
        e = err_of(f, seed, rng)
        v = {"steps": 800, "test_err": e / 100 if np.isfinite(e) else float("nan")}
        return v if np.isfinite(e) else {**v, "status": "diverged"}

    ctx = context(study, seeds)
    return study.measure(table(study, values, seeds), {}, ctx), ctx


def rising_without(f, seed, rng):
    """Without pre-training error rises 3 pp a layer; with it, it stays flat."""
    rise = 3.0 if f["method"] in ("none", "shallow") else 0.0
    return 5.0 + rise * (f["depth"] - 1) + rng.normal(0, 0.1)


def test_depth_slope_is_a_least_squares_fit_per_seed():
    t, ctx = _measured(rising_without)
    none = t[t["method"] == "none"].groupby("seed")["depth_slope"]
    assert np.allclose(none.mean(), 3.0, atol=0.2) and (none.nunique() == 1).all()
    assert np.allclose(t[t["method"] == "autoencoder"]["depth_slope"], 0.0, atol=0.2)
    assert t[t["method"] == "supervised"]["depth_slope"].isna().all()
    assert (t["total_updates"] == 800).all()  # no pre-training updates in these synthetic records
    assert words_of(t, ctx)["(5) depth trend"] == "reproduced"


def test_a_diverged_deep_autoencoder_counts_against_its_depth_trend():
    """The autoencoder's 4-layer net diverging enters its fit at 90 %: its slope becomes steep."""
    def err(f, seed, rng):
        return float("nan") if f["method"] == "autoencoder" and f["depth"] == 4 else rising_without(f, seed, rng)

    t, ctx = _measured(err)
    assert np.allclose(t[t["method"] == "autoencoder"]["depth_slope"], 25.5, atol=0.2)  # fit of (5, 5, 5, 90)
    assert words_of(t, ctx)["(5) depth trend"] == "not reproduced"


def words_of(t, ctx):
    return {p.part: p.shown for p in study.verdict(t, ctx)}
