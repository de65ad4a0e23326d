"""momentum_plateau's verdict on synthetic records with known answers, and its escape rule on
synthetic loss curves (a trial that never escapes counts as the budget plus one)."""

import numpy as np
import pandas as pd

from studies import momentum_plateau as study
from tests.synthetic import context, table, words

PARTS = ["(1) updates to escape"]


def planted(effect: str):
    def values(f, seed, rng):
        mom = f["optimizer"] == "momentum 0.9"
        updates = {"yes": 60.0 if mom else 240.0, "no": 240.0 if mom else 60.0,
                   "unclear": 100.0 * (3.0 ** ((-1) ** seed) if mom else 1.0)}[effect]
        return {"escape_updates": updates * float(2 ** rng.normal(0, 0.05))}

    return values


def test_escape_is_the_first_window_below_the_mark():
    steps = np.arange(1, 101)
    losses = np.full(100, 2.3)
    losses[40:] = 1.0  # the mean of the last 10 losses falls below 2.0 once 3 of them are 1.0: update 43
    assert study.escape_step(steps, losses, never=101) == 43
    assert study.escape_step(steps, np.full(100, 2.3), never=101) == 101
    assert study.escape_step(steps[:5], np.full(5, 0.1), never=101) == 101  # fewer losses than the window


def test_measure_censors_a_diverged_momentum_run_at_the_budget():
    """A momentum run that diverges on the plateau never escaped: the budget plus one, which makes
    momentum look worse, never better."""
    ctx = context(study, range(6))
    never = ctx.setup["steps"] + 1
    df = table(study, lambda f, seed, rng: {}, range(6))
    rows = []
    for _, r in df.iterrows():
        mom = r["optimizer"] == "momentum 0.9"
        n = 30 if mom else ctx.setup["steps"]  # momentum diverged at update 31, still on the plateau
        loss = np.full(n, 2.3) if mom else np.r_[np.full(150, 2.3), np.full(n - 150, 0.5)]
        rows.append(pd.DataFrame({"arm": r["arm"], "seed": r["seed"], "step": np.arange(1, n + 1),
                                  "batch_loss": loss}))
    df.loc[df["optimizer"] == "momentum 0.9", "status"] = "diverged"
    t = study.measure(df, {"log": pd.concat(rows, ignore_index=True)}, ctx)
    assert (t.loc[t["optimizer"] == "momentum 0.9", "escape_updates"] == never).all()
    # two losses of 0.5 bring the mean of the last 10 under 2.0
    assert (t.loc[t["optimizer"] == "plain SGD", "escape_updates"] == 150 + 2).all()
    (part,) = study.verdict(t, ctx)
    assert part.shown == "not reproduced"


def test_words_on_a_near_tie_are_not_decisive():
    got = words(study, lambda f, seed, rng: {"escape_updates": 100.0 + rng.normal(0, 10)}, seeds=range(6))
    assert got["(1) updates to escape"] == "inconclusive"
