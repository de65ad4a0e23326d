"""critical_points' verdict on synthetic records with known answers, and its window trends on synthetic
curves (a planted gradient-norm factor and objective fall are read back)."""

import numpy as np
import pandas as pd
import pytest

from studies import critical_points as study
from tests.synthetic import context, table

PARTS = ["(a) not at a critical point: gradient >= 100x the nearby one's", "(b) a critical point is near in loss",
         "(c) the gradient norm does not shrink over the last half", "(d) while the objective still falls"]


def planted(effect: str):
    """Each part's value on its claimed side ("yes"), on the other ("no"), or straddling its threshold
    seed by seed ("unclear")."""

    def values(f, seed, rng):
        noise = float(np.exp(rng.normal(0, 0.05)))
        swing = 4.0 ** ((-1) ** seed)
        if effect == "unclear":
            return {"grad_ratio": 100 * swing * noise, "loss_gap": 0.1 * swing * noise,
                    "grad_change": 0.5 * swing * noise, "objective_drop": 0.02 * (-1) ** seed + rng.normal(0, 1e-3)}
        yes = effect == "yes"
        return {"grad_ratio": (1e4 if yes else 3.0) * noise, "loss_gap": (0.02 if yes else 0.5) * noise,
                "grad_change": (1.0 if yes else 0.1) * noise, "objective_drop": (0.03 if yes else -0.03) * noise}

    return values


def test_a_failed_search_counts_against_part_a():
    """A trial whose search gave no finite point (its grad_ratio is NaN) never passes part (a): one such
    seed among many counts at the threshold, and with every trial so the part measured nothing and
    reads inconclusive (the kit's rule), never reproduced."""
    t = table(study, lambda f, seed, rng: {**planted("yes")(f, seed, rng), "grad_ratio": np.nan}, range(8))
    parts = study.verdict(t, context(study, range(8)))
    assert parts[0].word == "inconclusive" and parts[0].note == "0 of 8 seeds measured"
    assert all(p.word == "reproduced" for p in parts[1:])
    one = table(study, lambda f, seed, rng: {**planted("yes")(f, seed, rng),
                                             **({"grad_ratio": np.nan} if seed == 0 else {})}, range(8))
    part = study.verdict(one, context(study, range(8)))[0]
    assert part.details["per_seed"][0] <= 100.0 and part.details["unmeasured_seeds"] == 1 and not part.note


def _curves(arms_seeds, steps, gfactor, drop):
    """Eval curves over `steps` updates: the full-split gradient norm changing by `gfactor` and the
    objective falling by `drop` over the last half, linearly in log g and in the objective; flat before."""
    rows = []
    half = steps // 2
    for arm, seed in arms_seeds:
        x = np.arange(0, steps + 1, 50)
        frac = np.clip((x - half) / (steps - half), 0, 1)
        rows.append(pd.DataFrame({"arm": arm, "seed": seed, "step": x,
                                  "grad_norm_full": 0.08 * gfactor ** frac, "objective_full": 2.0 - drop * frac}))
    return {"eval": pd.concat(rows, ignore_index=True)}


@pytest.mark.parametrize("gfactor,drop", [(1.0, 0.03), (0.25, 0.1), (3.0, -0.02)])
def test_window_trends_read_back_the_planted_change(gfactor, drop):
    ctx = context(study, range(6))
    t = table(study, lambda f, seed, rng: {"end_grad_norm": 0.08, "cp_grad_norm": 1e-6, "end_objective": 1.6,
                                           "cp_objective": 1.55, "cp_distance": 2.0, "train_distance": 5.0},
              range(6))
    curves = _curves(list(zip(t["arm"], t["seed"])), ctx.setup["steps"], gfactor, drop)
    m = study.measure(t, curves, ctx)
    assert np.allclose(m["grad_change"], gfactor, rtol=1e-9)
    assert np.allclose(m["objective_drop"], drop, atol=1e-12)
    assert np.allclose(m["grad_ratio"], 0.08 / 1e-6)
    # init objective 2.0 (update 0), end 1.6, found 1.55: the search gains 0.05 of training's 0.4
    assert np.allclose(m["loss_gap"], 0.05 / 0.4) and np.allclose(m["distance_ratio"], 0.4)
