"""clipping_cliffs' verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so; and its measure, on synthetic
curves: an explosion is a minibatch loss above EXPLODE x the initial loss (a finite one counts),
and a cliff start's offset from the wall is measured from its (w, b)."""

import numpy as np
import pandas as pd
import pytest

from oplab import kit, models
from studies import clipping_cliffs as study
from tests.synthetic import PLANTED, words

PARTS = ["cliff: error after the last update", "explosion (RNN, shared rate)", "success (RNN, own tuned rates)"]
PLANTED_SEEDS = range(6)  # seeds of the planted tables in tests/test_verdicts.py


def planted(effect: str):
    """Per-trial values. "yes": the unclipped cliff runs end at a higher error, every unclipped RNN
    run at the shared rate explodes (a finite loss above the threshold: status ok) and no clipped one
    does, and at the tuned rates only clipped runs succeed; "no": the reverse; "unclear": equal cliff
    errors with wide seed noise, no RNN run explodes, and each arm succeeds on half of the seeds, the
    other arm on the other half."""

    def values(f, seed, rng):
        if f["task"] == "cliff":
            high = {"yes": "none", "no": "norm"}.get(effect)
            mean = 0.09 if f["clip"] == high else 1e-3 if high else 0.05
            return {"final_error": mean + rng.normal(0, 0.05 if effect == "unclear" else 1e-4)}
        if effect == "unclear":
            return {"exploded": 0.0, "success": float((seed + (f["clip"] == "norm")) % 2)}
        bad = {"yes": "none", "no": "norm"}[effect]  # the clipping that explodes and never succeeds
        if f["regime"] == study.SHARED:
            return {"exploded": float(f["clip"] == bad), "success": 0.0}
        return {"exploded": 0.0, "success": float(f["clip"] != bad)}

    return values


def test_a_failed_cliff_run_never_counts_for_the_claim():
    """Unclipped cliff runs that fail (non-finite error) would count as E = max(target, 1 - target)^2,
    above every clipped run's error, which is on the claim's side: a failed seed counts at the
    threshold instead, so failures alone never reproduce the part."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["task"] == "cliff" and f["clip"] == "none":
            v.update(status="diverged", final_error=float("nan"))
        return v

    got = words(study, values, seeds=range(6))
    assert got["cliff: error after the last update"] == "not reproduced"


def test_a_diverged_trial_is_an_explosion_and_a_failure():
    """The status wins over stale columns: a diverged (non-finite) trial counts as exploded and as
    unsuccessful whatever its other columns say."""
    def values(f, seed, rng):
        v = planted("unclear")(f, seed, rng)
        if f["task"] == "rnn" and f["clip"] == "none":
            v.update(status="diverged", exploded=0.0, success=1.0)  # stale values: the status must win
        if f["task"] == "rnn" and f["clip"] == "norm":
            v.update(success=1.0)
        return v

    got = words(study, values, seeds=range(6))
    assert got["explosion (RNN, shared rate)"] == "reproduced"
    assert got["success (RNN, own tuned rates)"] == "reproduced"


def test_only_the_tuned_arms_decide_success_and_only_the_shared_rate_decides_explosions():
    """Unclipped runs explode only at the tuned rates and succeed only at the shared rate; clipped
    runs succeed only at the tuned rates. Neither part may read the other regime's trials."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["task"] == "rnn":
            tuned = f["regime"] == study.TUNED
            v = {"exploded": float(tuned and f["clip"] == "none"),
                 "success": float((f["clip"] == "norm") == tuned)}
        return v

    got = words(study, values, seeds=range(6))
    assert got["explosion (RNN, shared rate)"] == "inconclusive"  # no explosion at the shared rate in either arm
    assert got["success (RNN, own tuned rates)"] == "reproduced"  # at the tuned rates only norm succeeds


def _frame_and_curves(max_losses: dict[str, float]):
    """One RNN trial per arm name (status ok), its eval curve's initial loss ln 4 and a log curve
    whose largest minibatch loss is given."""
    rows, ev, lg = [], [], []
    for arm, peak in max_losses.items():
        rows.append({"arm": arm, "seed": 0, "task": "rnn", "regime": study.SHARED, "clip": "none", "length": 20,
                     "lr": 1.0, "status": "ok", "test_err": 0.5, "test_loss": 1.0, "steps": 10, "clipped_steps": 0})
        ev.append(pd.DataFrame({"arm": arm, "seed": 0, "task": "rnn", "step": [0, 10],
                                "test_loss": [np.log(4), 1.0]}))
        lg.append(pd.DataFrame({"arm": arm, "seed": 0, "task": "rnn", "step": [1, 2, 3],
                                "batch_loss": [np.log(4), peak, 1.0], "grad_norm": [1.0, 50.0, 1.0]}))
    return pd.DataFrame(rows), {"eval": pd.concat(ev, ignore_index=True), "log": pd.concat(lg, ignore_index=True)}


def test_an_explosion_is_a_finite_loss_above_the_threshold():
    """A run whose minibatch loss reached 2.5e27 finished with status "ok" and still exploded; one at
    9.9x its initial loss did not; the largest loss ratio is measured against the loss at step 0."""
    init = np.log(4)
    df, curves = _frame_and_curves({"huge": 2.5e27, "below": 9.9 * init, "above": 10.1 * init})
    ctx = kit.Context("quick", (0,), setup=study.SETUP["quick"])
    t = study.measure(df, curves, ctx).set_index("arm")
    assert t.loc["huge", "exploded"] == 1.0 and t.loc["above", "exploded"] == 1.0
    assert t.loc["below", "exploded"] == 0.0
    assert np.isclose(t.loc["below", "loss_ratio"], 9.9)


def test_a_diverged_run_is_an_explosion_in_the_measure():
    df, curves = _frame_and_curves({"a": 1.5})
    df["status"] = "diverged"
    t = study.measure(df, curves, kit.Context("quick", (0,), setup=study.SETUP["quick"]))
    assert t["exploded"].tolist() == [1.0] and t["success"].tolist() == [0.0]


def test_the_cliff_starts_spread_across_the_wall():
    """b0 is the wall of the centre w0; a start at w drawn from the spread lies off the wall by about
    sigmoid(x0) (w - w0) along b (the wall's b moves by -sigmoid(x0) per unit of w), on either side."""
    c = study.SETUP["quick"]["cliff"]
    arm = study.arms("quick")["cliff none"]
    b0 = arm.trial.model.opts["b0"]
    assert np.isclose(b0, models.single_unit_wall_b(c["w0"]))
    w = np.array([c["w0"] - 0.5, c["w0"], c["w0"] + 0.5])
    off = study.wall_offset(w, np.full(3, b0), c)
    s = 1 / (1 + np.exp(-c["x0"]))
    assert abs(off[1]) < 1e-4
    assert np.allclose(off[[0, 2]], [-0.5 * s, 0.5 * s], atol=0.02)


@pytest.mark.parametrize("effect,word", PLANTED)
def test_the_long_budget_gives_each_planted_word(effect, word):
    """The long budget's arms are judged by the same parts, each giving the planted word."""
    got = words(study, planted(effect), seeds=PLANTED_SEEDS, budget="long")
    assert list(got) == PARTS and set(got.values()) == {word}, got
