"""The sequence loop applies the authors' two-rule advance (oplab.curriculum, main.lua lines 285-287 at
commit 04a1659) to the accuracies it records: replaying its check curve through a transcription of
main.lua gives the recorded levels, and the rate decays exactly when the rule fires at the target."""

from __future__ import annotations

import numpy as np

from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial
from oplab.train import Runtime, train
from tests.test_curriculum import _main_lua


def _trial(strategy, target, steps=40, **options) -> Trial:
    opts = {"target": target, "curriculum": strategy, "check_every": 2, "n_val": 30, **options}
    return Trial(data=DataConfig("addition", n_test=30, options=opts), model=ModelConfig("char_lstm", 1, 16),
                 optim=OptimConfig("adam", lr=0.01, clip="norm", clip_threshold=5.0), steps=steps, batch_size=16,
                 eval_every=2, log_every=1)


def test_the_loop_follows_main_lua():
    """Rule (a) is kept from firing (threshold above 1), so every rise comes from rule (b) on the
    recorded training accuracies; the levels the loop trained at are the transcription's."""
    rec = train(_trial("naive", 4, threshold=1.01), 0, Runtime())
    c = rec.curves["check"]
    assert all(0 <= a <= 1 for a in c["train_acc"]) and len(c["train_acc"]) == 20
    levels, fired = _main_lua(c["val_acc"], c["train_acc"], target=4, threshold=1.01)
    assert c["level"] == [1] + levels[:-1]  # the check curve holds the level each check was made at
    assert rec.final["level"] == levels[-1] and sum(c["advanced"]) == levels[-1] - 1 >= 1  # rule (b) fired
    log = rec.curves["log"]
    assert log["mean_difficulty"] == [float(v) for v in log["level"]]
    for step, level in zip(log["step"], log["level"]):  # the update after check i trains at its new level
        assert level == ([1] + levels)[(step - 1) // 2]


def test_the_rate_decays_when_the_rule_fires_at_the_target():
    rec = train(_trial("baseline", 2, threshold=1.01, lr_decay=0.5), 1, Runtime())
    c, ev = rec.curves["check"], rec.curves["eval"]
    levels, fired = _main_lua(c["val_acc"], c["train_acc"], target=2, threshold=1.01)
    at_target = [f and lv == 2 for f, lv in zip(fired, [1] + levels[:-1])]
    assert sum(at_target) >= 1
    for step, lr in zip(ev["step"], ev["lr"]):  # a decay shows from the update after its check
        n = sum(a for a, s in zip(at_target, c["step"]) if s < step)
        assert np.isclose(lr, 0.01 * 0.5**n)
