"""init_biases' verdict on synthetic records with known answers, and its measure of updates to
the target (censoring) against a hand count."""

import numpy as np
import pandas as pd

from oplab import kit
from studies import init_biases as study
from tests.synthetic import context, table

PARTS = ["(1) output bias at the log priors", "(2) ReLU bias 0.1", "(3) LSTM forget-gate bias 1"]
BASE = {"output bias": "zero", "ReLU bias": "0", "forget gate": "0"}  # each setting's baseline arm


def planted(effect: str):
    """Per-trial values where each part's true effect is on the claimed side ("yes"), on the
    other side ("no"), or at the threshold with wide seed noise ("unclear")."""

    def values(f, seed, rng):
        base = f["bias"] == BASE[f["setting"]]
        big = effect == "unclear"
        sign = {"yes": 1, "no": -1, "unclear": 0}[effect]
        sd = lambda small, large: rng.normal(0, large if big else small)  # noqa: E731
        loss = 1.0 + (0.3 * sign if base else 0.0) + sd(0.02, 0.5)
        dead = 0.1 + (0.1 * sign if base else 0.0) + sd(0.005, 0.2)
        ups = 200.0 * (1.5 ** sign if base else 1.0) * float(2 ** sd(0.02, 1.0))
        return {"first_epoch_loss": loss, "dead_early": dead,
                "updates_to_target": ups if f["setting"] == "forget gate" else np.nan}

    return values


def test_a_diverged_prior_arm_counts_against_itself():
    """The bias arm diverging on every seed must not make it look better: its value counts as the
    worst value seen in the part, so the difference is <= 0 and the part cannot be reproduced."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["setting"] == "output bias" and f["bias"] == "log prior":
            v.update(status="diverged", first_epoch_loss=float("nan"))
        if f["setting"] == "ReLU bias" and f["bias"] == "0.1":
            v.update(status="diverged", dead_early=float("nan"))
        return v

    parts = {p.part: p for p in study.verdict(table(study, values, range(6)), context(study, range(6)))}
    for name in ("(1) output bias at the log priors", "(2) ReLU bias 0.1"):
        assert parts[name].effect <= 0 and parts[name].word != "reproduced", parts[name]


def test_measure_counts_updates_to_the_target_and_censors_misses():
    s = study.SETUP["quick"]
    c = s["forget gate"]
    never = c["steps"] + c["eval_every"]
    hits = {("0", 0): 300, ("1", 0): 150, ("0", 1): None, ("1", 1): 100}
    rows, curves = [], []
    for (bias, seed), hit in hits.items():
        arm = f"forget gate | {bias}"
        rows.append({"arm": arm, "seed": seed, "setting": "forget gate", "bias": bias,
                     "status": "diverged" if (bias, seed) == ("1", 1) else "ok", "extra": {}})
        for step in range(0, c["steps"] + 1, c["eval_every"]):
            loss = None if step == 0 else (0.001 if hit is not None and step >= hit else 0.04)
            curves.append({"arm": arm, "seed": seed, "step": step, "epoch": step / 40, "train_loss_running": loss,
                           "test_loss": 0.04})
    t = study.measure(pd.DataFrame(rows), {"eval": pd.DataFrame(curves)}, kit.Context("quick", (0, 1), "verdict", s))
    got = {(b, sd): u for b, sd, u in zip(t["bias"], t["seed"], t["updates_to_target"])}
    assert got == {("0", 0): 300, ("1", 0): 150, ("0", 1): never, ("1", 1): never}  # a diverged trial is censored
