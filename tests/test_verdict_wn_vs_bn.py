"""wn_vs_bn's verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so."""

import numpy as np
import pytest

from studies import wn_vs_bn as study
from tests.synthetic import PLANTED, words

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


@pytest.mark.parametrize("effect,word", PLANTED)
def test_the_long_budget_judges_the_same_parts_on_the_convnet(effect, word):
    """At the long budget the convnet is the main net (WN+MOBN vs BN and the noise part move to it); the
    parts keep their names, so the two budgets compare part by part."""
    assert study.SETUP["long"]["main"] == "convnet"
    got = words(study, planted(effect), seeds=range(8), budget="long")
    assert list(got) == PARTS and all(w == word for w in got.values()), got


def test_every_quick_and_long_group_tunes_over_three_rates():
    for budget in ("quick", "long"):
        groups = {}
        for a in study.arms(budget).values():
            groups.setdefault((a.factors["net"], a.factors["norm"]), []).append(a.factors["lr"])
        assert all(len(v) == 3 for v in groups.values()), (budget, groups)
        main = study.SETUP[budget]["main"]
        assert {n for n, m in groups if m == "WN+MOBN"} == {main}  # WN+MOBN on the main net only
