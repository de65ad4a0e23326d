"""polyak_averaging's verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so; failures count against the claim."""

from studies import polyak_averaging as study
from tests.synthetic import words

PARTS = ["(a) EMA vs last iterate, classifier", "(b) tail average vs last iterate, least squares"]
GAIN = {"yes": 0.1, "no": -0.1, "unclear": 0.0}


def planted(effect: str):
    def values(f, seed, rng):
        noise = 0.3 * (-1) ** seed if effect == "unclear" else rng.normal(0, 0.01)
        return {"gain": GAIN[effect] + noise, "last_loss": 1.2, "avg_loss": 1.2 - GAIN[effect] - noise}

    return values


def test_a_diverged_trial_counts_at_the_threshold():
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["problem"] == "classifier" and seed < 3:
            v.update(status="diverged", gain=float("nan"))
        return v

    got = words(study, values, seeds=range(6))
    assert got["(b) tail average vs last iterate, least squares"] == "reproduced"
    # the diverged seeds are not dropped (n stays 6): each counts at the threshold, never for the claim
    parts = study.verdict(__import__("tests.synthetic", fromlist=["table"]).table(study, values, range(6)),
                          __import__("tests.synthetic", fromlist=["context"]).context(study, range(6)))
    assert parts[0].n == 6 and parts[0].details["failed"] == 3
    assert [parts[0].details["per_seed"][s] for s in range(3)] == [0.0, 0.0, 0.0]


def test_the_risk_of_many_iterates_is_least_squares_risk_to_the_last_bit():
    """study.risks (w* drawn once for all rows) gives tasks.least_squares_risk of each row exactly, so the
    faster path changes no number of the page."""
    import numpy as np

    from oplab import tasks

    rows = np.random.default_rng(0).normal(size=(200, study.LS["dim"] + 1))
    want = [tasks.least_squares_risk(r[:-1], r[-1], **study.LS) for r in rows]
    assert study.risks(rows).tolist() == want
