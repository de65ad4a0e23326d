"""batchnorm_sigmoid's verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so; a diverged BN net counts as
chance accuracy."""

import numpy as np

from studies import batchnorm_sigmoid as study
from tests.synthetic import words

PARTS = ["(a) BN ahead after warm-up", "(b) sigmoid-input drift", "(c) higher-order update noise grows with depth"]


def planted(effect: str):
    """Per-trial values: every part's effect on the claimed side ("yes"), on the other side ("no"),
    or at the threshold with seed noise alternating in sign ("unclear")."""

    def values(f, seed, rng):
        alt = (-1) ** seed
        if f["task"] == "mnist":
            bn = f["norm"] == "BN"
            acc = {"yes": 92.0 if bn else 90.0, "no": 88.0 if bn else 91.0,
                   "unclear": 90.0 + (2.0 * alt if bn else 0.0)}[effect]
            drift = {"yes": 0.7 if bn else 2.0, "no": 1.5 if bn else 0.6,
                     "unclear": 1.0 if bn else 2.0 ** alt}[effect]
            return {"acc_late_pp": acc + rng.normal(0, 0.1), "drift": drift * float(2 ** rng.normal(0, 0.02)),
                    "resid_slope": float("nan")}
        slope = 0.0 if f["norm"] == "BN" else {"yes": 0.3, "no": -0.3, "unclear": 0.3 * alt}[effect]
        # one slope per (seed, norm), the same on each depth's row, as measure() writes it
        return {"acc_late_pp": float("nan"), "drift": float("nan"),
                "resid_slope": slope + np.random.default_rng(seed).normal(0, 0.01)}

    return values


def test_a_diverged_bn_net_counts_as_chance():
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["task"] == "mnist" and f["norm"] == "BN":
            v.update(status="diverged", acc_late_pp=float("nan"))
        return v

    got = words(study, values, seeds=range(6))
    assert got["(a) BN ahead after warm-up"] == "not reproduced"
    assert got["(c) higher-order update noise grows with depth"] == "reproduced"


def test_the_standardized_chain_is_not_a_part():
    """Its slope is zero by construction: shown in the evidence, never judged."""
    parts = study.verdict(*_table_and_ctx())
    assert [p.part for p in parts] == PARTS
    assert "standardized chain" in parts[2].evidence


def _table_and_ctx():
    from tests.synthetic import context, table
    return table(study, planted("yes"), range(6)), context(study, range(6))


def test_measure_takes_the_first_order_growth_out_of_c():
    """A chain whose loss-change variance grows with depth only through its first-order term (the
    residual flat) has a positive total slope but a zero slope in (c); a residual that grows 10x a
    link gives ln 10 a link."""
    import pandas as pd

    from tests.synthetic import context, table
    ctx = context(study, range(6))
    df = table(study, lambda f, seed, rng: {}, range(6))
    ch = df[df["task"] == "chain"]
    mon = pd.DataFrame({"arm": ch["arm"], "seed": ch["seed"], "task": "chain", "step": 0,
                        "step_dloss_var": 1e-4 * ch["depth"] ** 2.0, "step_dloss_first_var": 1e-4 * ch["depth"] ** 2.0,
                        "step_dloss_resid_var": np.where(ch["norm"] == "BN", 1e-7, 1e-7 * 10.0 ** ch["depth"])})
    t = study.measure(df, {"monitor": mon}, ctx)
    one = t[(t["task"] == "chain") & (t["depth"] == 1)].set_index("norm")
    assert np.allclose(one.loc["plain", "resid_slope"], np.log(10.0))
    assert np.allclose(one.loc["BN", "resid_slope"], 0.0, atol=1e-9)
    assert (one["chain_slope"] > 0.1).all()
    mon["step_dloss_resid_var"] = 1e-7
    t = study.measure(df, {"monitor": mon}, ctx)
    assert np.allclose(t.loc[t["task"] == "chain", "resid_slope"], 0.0, atol=1e-9)
    assert np.allclose(t.loc[t["task"] == "chain", "first_share"], 1 - 1e-7 / (1e-4 * t.loc[t["task"] == "chain",
                                                                                             "depth"] ** 2))
