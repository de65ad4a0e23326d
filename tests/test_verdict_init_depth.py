"""init_depth's verdict on synthetic records with known answers, and its measure (updates to the
criterion, censoring, the per-seed slope) against an independent computation."""

import numpy as np
import pandas as pd
import pytest

from oplab import kit
from studies import init_depth as study

PARTS = ["(a) orthogonal: flat in depth", "(b) Gaussian grows faster than orthogonal", "(c) Gaussian: grows with depth"]


def planted(effect: str):
    """Per-trial values whose per-seed slope is on the claimed side of every part ("yes"), on the
    other side ("no"), or at the thresholds with wide seed noise ("unclear"). A slope is a
    property of (init, seed): every depth of a seed gets the same one."""

    def values(f, seed, rng):
        g = np.random.default_rng([seed, 0 if f["init"] == "orthogonal" else 1])
        if effect == "yes":
            k = {"orthogonal": 0.05, "Gaussian": 0.5}[f["init"]] + g.normal(0, 0.02)
        elif effect == "no":
            k = {"orthogonal": 0.6, "Gaussian": -0.3}[f["init"]] + g.normal(0, 0.02)
        else:
            k = {"orthogonal": study.SLOPE_MAX, "Gaussian": 0.1}[f["init"]] + g.normal(0, 1.0)
        return {"slope": k, "reached": True, "updates": 40.0 * f["depth"] ** k}

    return values


def _frame(steps_to_hit: dict, status: dict | None = None):
    """A per-trial frame and eval curves in which trial (init, depth) first reaches the
    criterion at `steps_to_hit[(init, depth)]` (None: never)."""
    s = study.SETUP["quick"]
    rows, curves = [], []
    for (init, depth), hit in steps_to_hit.items():
        arm = f"{init} depth={depth}"
        rows.append({"arm": arm, "seed": 0, "init": init, "depth": depth,
                     "status": (status or {}).get((init, depth), "ok")})
        for step in range(0, s["steps"] + 1, s["eval_every"]):
            loss = None if step == 0 else (0.1 if hit is not None and step >= hit else 1.0)
            curves.append({"arm": arm, "seed": 0, "step": step, "train_loss_running": loss})
    ctx = kit.Context("quick", (0,), "verdict", s)
    return study.measure(pd.DataFrame(rows), {"eval": pd.DataFrame(curves)}, ctx)


def test_measure_counts_updates_censors_misses_and_fits_the_log_log_slope():
    s = study.SETUP["quick"]
    never = s["steps"] + s["eval_every"]
    hits = {("orthogonal", 2): 20, ("orthogonal", 4): 20, ("orthogonal", 8): 40, ("orthogonal", 16): None,
            ("Gaussian", 2): 20, ("Gaussian", 4): 40, ("Gaussian", 8): 80, ("Gaussian", 16): 40}
    # a trial that diverged after reaching the criterion keeps its crossing (its curve stops at the divergence)
    t = _frame(hits, status={("Gaussian", 16): "diverged"})
    got = t.set_index(["init", "depth"])["updates"]
    want = {k: (never if v is None else v) for k, v in hits.items()}
    assert {k: got[k] for k in want} == want
    for init in ("orthogonal", "Gaussian"):
        d = np.array([2, 4, 8, 16], dtype=float)
        u = np.array([want[(init, int(x))] for x in d], dtype=float)
        slope = np.cov(np.log2(d), np.log2(u), bias=True)[0, 1] / np.var(np.log2(d))  # least squares by hand
        assert t.loc[t["init"] == init, "slope"].iloc[0] == pytest.approx(slope)
    assert not t.loc[(t["init"] == "orthogonal") & (t["depth"] == 16), "reached"].item()
