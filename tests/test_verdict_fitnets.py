"""fitnets' verdict on synthetic records with known answers: each part must say reproduced,
not reproduced and inconclusive when the data say so; failures count against their arm."""

from studies import fitnets as study
from tests.synthetic import words

PARTS = ["(1) hints vs scratch", "(2) kd vs scratch", "(3) hints vs kd", "(4a) Net2Net wider", "(4b) Net2Net deeper"]

# planted student test errors (pp) and updates to the random-init net's final accuracy
ERR = {"yes": {"teacher": 4.0, "scratch": 10.0, "kd": 8.0, "hints": 7.5},
       "no": {"teacher": 4.0, "scratch": 8.0, "kd": 10.0, "hints": 12.0},
       "unclear": {"teacher": 4.0, "scratch": 10.0, "kd": 10.0, "hints": 10.5}}
UPDATES = {"yes": {"net2net": 100.0, "random": 300.0}, "no": {"net2net": 300.0, "random": 100.0},
           "unclear": {"net2net": 200.0, "random": 200.0}}
SPREAD = {"teacher": 0.0, "scratch": 1.0, "kd": -1.0, "hints": 0.5, "net2net": 1.0, "random": -1.0}


def planted(effect: str):
    def values(f, seed, rng):
        if effect == "unclear":  # alternating seed noise, different per arm: wide intervals around the planted mean
            noise = 4.0 * (-1) ** seed * SPREAD[f["method"]]
        else:
            noise = rng.normal(0, 0.1)
        return {"test_err_pp": ERR[effect].get(f["method"], 5.0) + noise,
                "updates_to_random_final": UPDATES[effect].get(f["method"], float("nan")) + 25 * noise}

    return values


def test_a_diverged_arm_counts_against_itself():
    """A diverged student counts as chance error; a diverged grown net as never reaching the mark."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["method"] in ("hints", "net2net") and f["net"] in ("student", "wider"):
            v.update(status="diverged", test_err_pp=float("nan"), updates_to_random_final=float("nan"))
        return v

    got = words(study, values, seeds=range(6))
    assert got["(1) hints vs scratch"] == "not reproduced"
    assert got["(3) hints vs kd"] == "not reproduced"
    assert got["(4a) Net2Net wider"] == "not reproduced"
    assert got["(2) kd vs scratch"] == "reproduced" and got["(4b) Net2Net deeper"] == "reproduced"
