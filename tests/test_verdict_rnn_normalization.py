"""rnn_normalization's verdict on synthetic records with known answers, and its measure of updates to
the target (first crossing, censoring, failed trials) against a hand count."""

import pandas as pd

from oplab import kit
from studies import rnn_normalization as study
from tests.synthetic import context, table

PARTS = ["(1) BN-LSTM vs plain LSTM", "(2) WN-LSTM vs plain LSTM"]


def planted(effect: str):
    """Updates to the target: the plain arm's 1.5x the normalized arms' ("yes"), 1/1.5x ("no"), or
    level with wide seed noise ("unclear")."""

    def values(f, seed, rng):
        plain = f["norm"] == "plain"
        if effect == "unclear":  # plain 2x or 1/2x the others, alternating by seed: ratio 1 on average, wide
            return {"updates_to_target": 50.0 * (2.0 ** (-1) ** seed if plain else 1.0)}
        factor = 1.5 if effect == "yes" else 1 / 1.5
        return {"updates_to_target": 50.0 * (factor if plain else 1.0) * float(2 ** rng.normal(0, 0.02))}

    return values


def test_a_normalized_arm_that_diverges_counts_against_itself():
    """BN diverging on every seed must not make it look fast: its value counts as the censored value
    (or the threshold), so the part cannot be reproduced."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["norm"] == "BN":
            v.update(status="diverged", updates_to_target=float("nan"))
        return v

    parts = {p.part: p for p in study.verdict(table(study, values, range(6)), context(study, range(6)))}
    bn = parts["(1) BN-LSTM vs plain LSTM"]
    assert bn.word != "reproduced" and bn.effect <= 1.0, bn
    assert parts["(2) WN-LSTM vs plain LSTM"].word == "reproduced"


def test_measure_times_the_first_crossing_and_censors_misses_and_failures():
    s = study.SETUP["quick"]
    cens = s["steps"] + s["eval_every"]
    target = s["target"]
    # per (arm, seed): the step at which the running loss first dips to the target (then rises again), or None
    hits = {("plain lr=0.1", 0): 60, ("BN lr=0.1", 0): 30, ("plain lr=0.1", 1): None, ("BN lr=0.1", 1): 20}
    rows, curves = [], []
    for (arm, seed), hit in hits.items():
        status = "diverged" if (arm, seed) == ("BN lr=0.1", 1) else "ok"
        rows.append({"arm": arm, "seed": seed, "norm": arm.split()[0], "status": status, "test_err": 0.5})
        for step in range(0, s["steps"] + 1, s["eval_every"]):
            loss = None if step == 0 else (target if step == hit else target + 0.2)
            curves.append({"arm": arm, "seed": seed, "step": step, "train_loss_running": loss})
    ctx = kit.Context("quick", (0, 1), "verdict", s)
    t = study.measure(pd.DataFrame(rows), {"eval": pd.DataFrame(curves)}, ctx)
    got = {(a, sd): u for a, sd, u in zip(t["arm"], t["seed"], t["updates_to_target"])}
    assert got == {("plain lr=0.1", 0): 60, ("BN lr=0.1", 0): 30, ("plain lr=0.1", 1): cens,
                   ("BN lr=0.1", 1): cens}  # a diverged trial is censored whatever its curve says
    assert list(t["test_err_pct"]) == [50.0] * 4
