"""second_order_batch's verdict on synthetic records with known answers, and its measure on planted
monitor curves (the step's error falling like the gradient's must not read reproduced)."""

import numpy as np
import pandas as pd
import pytest

from oplab import kit
from oplab.secondorder import DAMPINGS, grad_key, step_key
from studies import second_order_batch as study
from tests.synthetic import words

PARTS = ["(a1) step's / gradient's relative error > 1 at each B", "(a2) step's error falls with B more slowly"]
YES = {"ratio_min": 3.0, "slope_gap": 0.3}
NO = {"ratio_min": 0.3, "slope_gap": -0.3}


def planted(effect: str):
    """yes: the step's error 3x the gradient's at every B and falling 0.3 slower in log-log; no: a third of it
    and falling 0.3 faster; unclear: each at its threshold (ratio 1, gap 0) with seeds alternating either side."""
    def values(f, seed, rng):
        if effect == "unclear":
            return {"ratio_min": 3.0 ** ((-1) ** seed), "slope_gap": 0.3 * (-1) ** seed}
        base = YES if effect == "yes" else NO
        return {"ratio_min": base["ratio_min"] * np.exp(rng.normal(0, 0.05)),
                "slope_gap": base["slope_gap"] + rng.normal(0, 0.02)}

    return values


def _monitor(step_err, grad_err, sizes=(8, 32, 128), states=(0, 100, 200), seed=0):
    """A monitor curve whose errors at B are grad_err(B) and step_err(B) at every state and damping."""
    rows = []
    for s in states:
        row = {"arm": "GD", "seed": seed, "step": s}
        for b in sizes:
            row[grad_key(b)] = grad_err(b)
            for c in DAMPINGS:
                row[step_key(b, c)] = step_err(b)
        rows.append(row)
    return pd.DataFrame(rows)


def _measure(mon, seeds=(0,)):
    s = study.SETUP["quick"]
    df = pd.DataFrame([{"arm": "GD", "seed": sd, "status": "ok", "method": "GD", "lr": s["lr"]} for sd in seeds])
    return study.measure(df, {"monitor": mon}, kit.Context("quick", tuple(seeds), setup=s))


def test_measure_reads_ratio_and_slopes_from_the_curves():
    """Errors planted as power laws: the ratio's minimum over B and the slopes come out as planted."""
    row = _measure(_monitor(step_err=lambda b: 5.0 * b**-0.2, grad_err=lambda b: 4.0 * b**-0.5)).iloc[0]
    assert row["slope_step"] == pytest.approx(-0.2)
    assert row["slope_grad"] == pytest.approx(-0.5)
    assert row["slope_gap"] == pytest.approx(0.3)
    assert row["ratio_min"] == pytest.approx(5.0 / 4.0 * 8**0.3)  # smallest at the smallest B


def test_a_step_whose_error_falls_like_the_gradients_is_not_reproduced():
    """Measured from planted curves: the step's error a fixed multiple (1 or less) of the gradient's at every
    B, falling at the same rate, gives neither part as reproduced, over seeds with noise."""
    rng = np.random.default_rng(0)
    mons = []
    for seed in range(8):
        k, e = np.exp(rng.normal(0, 0.1)), rng.normal(0, 0.02)
        mons.append(_monitor(step_err=lambda b, k=k, e=e: k * 3.0 * b ** (-0.5 + e),
                             grad_err=lambda b: 3.0 * b**-0.5, seed=seed))
    t = _measure(pd.concat(mons, ignore_index=True), seeds=range(8))
    ctx = kit.Context("quick", tuple(range(8)), setup=study.SETUP["quick"])
    got = {p.part: p.shown for p in study.verdict(t, ctx)}
    assert all(w != "reproduced" for w in got.values()), got


def test_the_init_state_is_not_judged():
    """A state at update 0 with a huge ratio does not move (a1): only the states after it count."""
    base = _monitor(step_err=lambda b: 0.5 * b**-0.5, grad_err=lambda b: b**-0.5)
    init = base["step"] == 0
    for b in (8, 32, 128):
        for c in DAMPINGS:
            base.loc[init, step_key(b, c)] = 100.0
    row = _measure(base).iloc[0]
    assert row["ratio_min"] == pytest.approx(0.5)
    assert row["ratio_init_min"] > 10


def test_a_diverged_trial_never_counts_for_the_claim():
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if seed < 5:
            v = {"ratio_min": float("nan"), "slope_gap": float("nan"), "status": "diverged"}
        return v

    got = words(study, values, seeds=range(8))
    assert all(w != "reproduced" for w in got.values()), got
