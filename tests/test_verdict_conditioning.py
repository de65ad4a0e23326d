"""conditioning's verdict on synthetic records with known answers."""

import pytest

from studies import conditioning as study
from tests.synthetic import words

PARTS = ["(a) gradient norm grows", "(b) test error falls", "(c) Taylor with 1/2 at eps = 0.01",
         "(d) 1/2 form beats the notes' form at eps = lr = 0.1"]
YES = {"gn_slope": 0.1, "err_slope": -1.0, "relerr_half_small": 0.001, "relerr_gap_lr": 0.2}
NO = {"gn_slope": -0.1, "err_slope": 1.0, "relerr_half_small": 0.2, "relerr_gap_lr": -0.2}
UNCLEAR = {"gn_slope": 0.0, "err_slope": 0.0, "relerr_half_small": 0.05, "relerr_gap_lr": 0.0}
SPREAD = {"gn_slope": 0.3, "err_slope": 3.0, "relerr_half_small": 0.04, "relerr_gap_lr": 0.5}


def planted(effect: str):
    base = {"yes": YES, "no": NO, "unclear": UNCLEAR}[effect]

    def values(f, seed, rng):
        if effect == "unclear":
            return {k: v + SPREAD[k] * (-1) ** seed for k, v in base.items()}
        return {k: v + rng.normal(0, abs(v) * 0.01) for k, v in base.items()}

    return values


def test_a_diverged_trial_counts_against_the_claim():
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if seed < 4:
            v.update(status="diverged")
        return v

    got = words(study, values, seeds=range(6))
    # the worst value seen in each part stands in: still on the claimed side here, so the words hold,
    # but no seed is dropped
    assert set(got) == set(PARTS)


def test_slopes_are_fitted_over_the_window():
    """measure() fits the gradient-norm and error slopes on synthetic curves with known trends."""
    import numpy as np
    import pandas as pd

    from oplab import kit

    s = study.SETUP["quick"]
    steps = np.arange(10, s["steps"] + 1, 10)
    log = pd.DataFrame({"arm": "SGD", "seed": 0, "step": steps, "grad_norm": np.exp(0.002 * steps)})
    ev_steps = np.arange(0, s["steps"] + 1, 50)
    ev = pd.DataFrame({"arm": "SGD", "seed": 0, "step": ev_steps, "test_acc": 0.5 + 0.0001 * ev_steps})
    df = pd.DataFrame([{"arm": "SGD", "seed": 0, "status": "ok", "method": "SGD"}])
    t = study.measure(df, {"log": log, "eval": ev}, kit.Context("quick", (0,), setup=s))
    assert t["gn_slope"].iloc[0] == pytest.approx(0.2)
    assert t["err_slope"].iloc[0] == pytest.approx(-1.0)
