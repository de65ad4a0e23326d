"""wn_vs_bn's verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so."""

import numpy as np

from studies import wn_vs_bn as study
from tests.synthetic import words

PARTS = ["early training (MLP)", "early training (convnet)", "WN+MOBN vs BN", "cost per step (convnet)",
         "noise parallel to w"]


def planted(effect: str):
    """Per-trial values where every part's true effect is on the claimed side ("yes"), on the
    other side ("no"), or at the threshold with wide seed noise ("unclear")."""

    def values(f, seed, rng):
        big = effect == "unclear"
        noise = lambda sd: rng.normal(0, sd)  # noqa: E731
        sign = {"yes": 1, "no": -1, "unclear": 0}[effect]
        base_loss = 1.0 + (0.2 * sign if f["norm"] == "plain" else 0.0)
        bn_err = 5.0
        err = {"BN": bn_err, "WN+MOBN": bn_err + {"yes": -0.5, "no": 2.0, "unclear": 0.5}[effect]}.get(f["norm"], 6.0)
        ms = {"BN": 1.0 + 0.3 * sign, "WN": 1.0}.get(f["norm"], 1.1)
        return {"early_loss": base_loss + noise(1.0 if big else 0.02),
                "test_err_pp": err + noise(2.0 if big else 0.1),
                "time_per_step_ms": ms * float(2 ** noise(0.5 if big else 0.02)),
                "noise_ratio": float(np.exp(0.4 * sign + noise(1.0 if big else 0.02)))}

    return values


def test_a_diverged_arm_counts_against_itself():
    """WN diverging on every seed must not make WN look better: it takes the worst value."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["norm"] == "WN" and f["net"] == "MLP":
            v.update(status="diverged", early_loss=float("nan"))
        if f["norm"] == "WN+MOBN":
            v.update(status="diverged", test_err_pp=float("nan"))
        return v

    got = words(study, values, seeds=range(6))
    assert got["early training (MLP)"] == "not reproduced"
    assert got["WN+MOBN vs BN"] == "not reproduced"  # a diverged trial counts as 100% error
    assert got["early training (convnet)"] == "reproduced"
