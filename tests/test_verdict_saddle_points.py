"""saddle_points' verdict on synthetic records with known answers, and its measure (distinct
critical points, the per-seed slope, the plateau rule) on a hand-made monitor table."""

import numpy as np
import pandas as pd
import pytest

from oplab import kit
from studies import saddle_points as study
from tests.synthetic import context, table

PARTS = ["(a) loss rises with index", "(b) GD's plateau is at a saddle"]


def planted(effect: str):
    """A per-seed slope above 0 and every plateau at a saddle ("yes"), a slope below 0 and no plateau
    at a saddle ("no"), or a slope around 0 with wide seed noise and half the plateaus at saddles
    ("unclear")."""

    def values(f, seed, rng):
        if effect == "yes":
            return {"slope": 5.0 + rng.normal(0, 0.5), "plateau_saddle": 1.0}
        if effect == "no":
            return {"slope": -5.0 + rng.normal(0, 0.5), "plateau_saddle": 0.0}
        return {"slope": 5.0 * (-1) ** seed, "plateau_saddle": float(seed % 2)}

    return values


def test_a_seed_without_a_slope_counts_at_the_threshold():
    def values(f, seed, rng):
        return {"slope": np.nan if seed < 2 else 5.0 + rng.normal(0, 0.5), "plateau_saddle": 1.0}

    part = study.verdict(table(study, values, range(8)), context(study, range(8)))[0]
    assert part.details["failed"] == 2
    assert [part.details["per_seed"][s] for s in (0, 1)] == [0.0, 0.0]  # at the threshold, not dropped


def _frame(rows):
    """A monitor table of one trial (arm GD, seed 0) from (step, it_loss, it_grad_norm, converged,
    cp_loss, cp_index) tuples."""
    cols = ["step", "it_loss", "it_grad_norm", "cp_converged", "cp_loss", "cp_index"]
    mon = pd.DataFrame(rows, columns=cols).assign(arm="GD", seed=0)
    return {"monitor": mon, "log": pd.DataFrame({"arm": ["GD"], "seed": [0], "step": [1], "batch_loss": [2.3]})}


def test_measure_counts_distinct_points_fits_the_slope_and_finds_the_plateau():
    curves = _frame([(0, 2.30, 0.05, 1, 2.29, 0.20),      # the start's saddle
                     (100, 2.00, 0.01, 1, 1.90, 0.10),    # the slowest iterate in the middle: a saddle
                     (200, 1.50, 0.20, 0, 1.40, 0.05),    # did not converge: not a critical point
                     (300, 1.30, 0.03, 1, 1.2950, 0.0),   # a minimum
                     (400, 1.29, 0.02, 1, 1.29504, 0.0)])  # the same minimum again (within SAME_LOSS)
    df = pd.DataFrame([{"arm": "GD", "seed": 0, "status": "ok"}])
    t = study.measure(df, curves, kit.Context("quick", (0,), "verdict", study.SETUP["quick"]))
    row = t.iloc[0]
    assert row["n_points"] == 3 and row["n_searches"] == 5 and row["converged_share"] == pytest.approx(0.8)
    idx, loss = np.array([0.0, 0.10, 0.20]), np.array([1.2950, 1.90, 2.29])
    want = np.sum((idx - idx.mean()) * (loss - loss.mean())) / np.sum((idx - idx.mean()) ** 2)  # OLS by hand
    assert row["slope"] == pytest.approx(want)
    # update 100 is slower than 200 and 300 and lies between the start (2.29 - DELTA) and the end (1.29 + DELTA)
    assert row["plateau_step"] == 100 and row["plateau_saddle"] == 1.0 and row["plateau_index"] == pytest.approx(0.1)


def test_a_plateau_whose_search_ends_at_a_minimum_is_no_event_and_one_that_did_not_converge_is_unmeasured():
    base = [(0, 2.30, 0.05, 1, 2.29, 0.20), (100, 2.00, 0.01, 0, 1.90, 0.10), (200, 1.50, 0.20, 1, 1.40, 0.05),
            (300, 1.29, 0.02, 1, 1.29, 0.0)]
    df = pd.DataFrame([{"arm": "GD", "seed": 0, "status": "ok"}])
    ctx = kit.Context("quick", (0,), "verdict", study.SETUP["quick"])
    assert np.isnan(study.measure(df, _frame(base), ctx).iloc[0]["plateau_saddle"])  # measured nothing
    minimum = [r if r[0] != 100 else (100, 2.00, 0.01, 1, 1.90, 0.0) for r in base]
    assert study.measure(df, _frame(minimum), ctx).iloc[0]["plateau_saddle"] == 0.0
    # one index among the critical points: no slope (the kit counts it at the threshold 0)
    flat = [(0, 2.3, 0.05, 1, 2.29, 0.0), (100, 2.0, 0.01, 1, 1.9, 0.0)]
    assert np.isnan(study.measure(df, _frame(flat), ctx).iloc[0]["slope"])


def test_searches_that_found_nothing_on_every_seed_read_inconclusive():
    """Every seed's searches stalled (no slope, no converged plateau search): the parts cannot read
    "not reproduced", since their intervals would sit at the thresholds by construction."""
    def values(f, seed, rng):
        return {"slope": np.nan, "plateau_saddle": np.nan}

    for part in study.verdict(table(study, values, range(8)), context(study, range(8))):
        assert part.word == "inconclusive" and "seeds measured" in part.note, (part.part, part.word)
