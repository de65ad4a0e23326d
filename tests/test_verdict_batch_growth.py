"""batch_growth's verdict on synthetic records with known answers (equivalence of batch growth
and lr decay within the margin; lr decay ahead of a constant rate by more than the margin), and
its updates demonstration from the schedule itself."""

import pytest

from oplab import plan as planning
from oplab.growth import batch_plan
from studies import batch_growth as study
from tests.synthetic import words

PARTS = ["(1) test accuracy, batch growth vs lr decay", "(2) the schedule matters: lr decay vs constant"]


def planted(effect: str):
    def values(f, seed, rng):
        growth = f["schedule"] == "batch growth"
        constant = {"yes": 91.0, "no": 93.0, "unclear": 93.0 - study.MARGIN_PP + 2.0 * (-1) ** seed}[effect]
        acc = {"lr decay": 93.0, "constant": constant, "batch growth": {
            "yes": 93.0, "no": 93.0 - 3 * study.MARGIN_PP,
            "unclear": 93.0 - study.MARGIN_PP + 2.0 * (-1) ** seed}[effect]}[f["schedule"]]
        return {"test_acc_pp": acc + rng.normal(0, 0.1), "updates": 298.0 if growth else 720.0}

    return values


def test_a_diverged_growth_run_counts_as_chance():
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["schedule"] == "batch growth":
            v.update(status="diverged", test_acc_pp=float("nan"))
        return v

    assert words(study, values)["(1) test accuracy, batch growth vs lr decay"] == "not reproduced"


@pytest.mark.parametrize("budget", ["quick", "full"])
def test_batch_growth_makes_at_least_2x_fewer_updates_by_construction(budget):
    """The demonstration: the schedule alone fixes the updates, whatever the seed."""
    arms = planning.arms_of(study, budget)
    n = {"quick": 4000, "full": 60000}[budget]
    growth, decay = arms["batch growth"].trial, arms["lr decay"].trial
    sizes = batch_plan(growth, n)
    decay_updates = decay.epochs * (n // decay.batch_size)
    assert sizes[0] == growth.batch_size and max(sizes) == round(growth.batch_size * study.FACTOR ** 2)
    assert abs(sum(sizes) - growth.epochs * n) < max(sizes)  # the same examples, to within one batch
    assert decay_updates / len(sizes) >= 2
