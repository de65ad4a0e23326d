"""momentum_plateau's verdict on synthetic records with known answers, its escape rule on synthetic
loss curves (a trial that never escapes, or diverges before it escapes, counts as the budget plus
one), and its refusal of an effective-step control that does not match momentum's chosen rate."""

import numpy as np
import pandas as pd
import pytest

from oplab import kit
from studies import momentum_plateau as study
from tests.synthetic import context, table, words

PARTS = ["(1) updates to escape, each arm at its tuned rate", "(2) beyond the bigger step"]


def planted(effect: str):
    """Momentum's escape against plain SGD's and the effective-step control's: faster ("yes"),
    slower ("no"), or 3x either way by seed ("unclear")."""

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


def _curves_and_table(diverge_at: dict[str, int], escape_at: dict[str, int]):
    """Per optimizer: a run that escapes at `escape_at` (plateau at 2.3, then 0.5) and stops at
    `diverge_at` (status "diverged") or runs the whole budget."""
    ctx = context(study, range(6))
    steps = ctx.setup["steps"]
    df = table(study, lambda f, seed, rng: {}, range(6))
    rows = []
    for i, r in df.iterrows():
        opt = r["optimizer"]
        n = diverge_at.get(opt, steps)
        loss = np.full(n, 2.3)
        loss[min(n, escape_at.get(opt, n)):] = 0.5
        rows.append(pd.DataFrame({"arm": r["arm"], "seed": r["seed"], "step": np.arange(1, n + 1), "batch_loss": loss}))
        if opt in diverge_at:
            df.loc[i, "status"] = "diverged"
    return study.measure(df, {"log": pd.concat(rows, ignore_index=True)}, ctx), ctx


def test_measure_censors_a_diverged_momentum_run_at_the_budget():
    """A momentum run that diverges on the plateau never escaped: the budget plus one, which makes
    momentum look worse, never better."""
    t, ctx = _curves_and_table({"momentum 0.9": 30}, {"plain SGD": 150, "plain SGD at momentum's step": 150})
    never = ctx.setup["steps"] + 1
    assert (t.loc[t["optimizer"] == "momentum 0.9", "escape_updates"] == never).all()
    # two losses of 0.5 bring the mean of the last 10 under 2.0
    assert (t.loc[t["optimizer"] == "plain SGD", "escape_updates"] == 150 + 2).all()
    assert [p.shown for p in study.verdict(t, ctx)] == ["not reproduced", "not reproduced"]


def test_a_control_that_escapes_then_diverges_keeps_its_escape():
    """The escape is measured before the divergence: a control that escapes at update 22 and blows up
    at 40 beats momentum's 62; one that blows up on the plateau never escaped."""
    t, ctx = _curves_and_table({"plain SGD at momentum's step": 40},
                               {"plain SGD at momentum's step": 20, "momentum 0.9": 60, "plain SGD": 120})
    assert (t.loc[t["optimizer"] == "plain SGD at momentum's step", "escape_updates"] == 22).all()
    words_ = {p.part: p.shown for p in study.verdict(t, ctx)}
    assert words_ == {PARTS[0]: "reproduced", PARTS[1]: "not reproduced"}
    t, ctx = _curves_and_table({"plain SGD at momentum's step": 15},
                               {"plain SGD at momentum's step": 20, "momentum 0.9": 60, "plain SGD": 120})
    never = ctx.setup["steps"] + 1
    assert (t.loc[t["optimizer"] == "plain SGD at momentum's step", "escape_updates"] == never).all()
    assert study.verdict(t, ctx)[1].shown == "reproduced"


def _tuning(momentum_lr: float) -> pd.DataFrame:
    rows = [{"task": "plateau", "optimizer": opt, "lr": lr, "seed": 1000, "status": "ok",
             "train_loss_full": 0.1 if lr in (0.2, momentum_lr, study.SETUP["quick"]["control_lr"]) else 0.5}
            for opt, grid in study.GRIDS.items() for lr in grid]
    rows.append({"task": "plateau", "optimizer": study.CONTROL, "lr": study.SETUP["quick"]["control_lr"],
                 "seed": 1000, "status": "ok", "train_loss_full": 3.0})
    return kit.mark_chosen(pd.DataFrame(rows), study.TUNE)


def test_the_control_must_sit_at_ten_times_momentums_chosen_rate():
    ctx = context(study, range(6))
    good = kit.Context(ctx.budget, ctx.seeds, "verdict", ctx.setup, _tuning(0.05), study.TUNE)
    study.check_control(good)  # 0.5 = 0.05 / (1 - 0.9)
    bad = kit.Context(ctx.budget, ctx.seeds, "verdict", ctx.setup, _tuning(0.03), study.TUNE)
    with pytest.raises(ValueError, match="control_lr"):
        study.verdict(table(study, planted("yes"), range(6)), bad)


def test_words_on_a_near_tie_are_not_decisive():
    def values(f, seed, rng):  # momentum 20% faster on even seeds, 20% slower on odd ones
        return {"escape_updates": 100.0 * (1.2 ** ((-1) ** seed) if f["optimizer"] == "momentum 0.9" else 1.0)}

    got = words(study, values, seeds=range(6))
    assert set(got.values()) == {"inconclusive"}
