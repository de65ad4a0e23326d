"""fitnets' verdict on synthetic records with known answers: each part must say reproduced,
not reproduced and inconclusive when the data say so; failures count against their arm."""

import pytest

from studies import fitnets as study
from tests.synthetic import PLANTED, words

PARTS = ["(0) thin student hard to train alone", "(1) hints vs scratch", "(2) kd vs scratch", "(3) hints vs kd",
         "(4a) Net2Net wider vs random init", "(4b) Net2Net wider vs teacher trained on",
         "(5a) Net2Net deeper vs random init", "(5b) Net2Net deeper vs teacher trained on"]

# planted test errors (pp): the student's per method, the shallow equal-parameter net's under "shallow"
ERR = {"yes": {"teacher": 4.0, "shallow": 8.0, "scratch": 10.0, "kd": 8.0, "hints": 7.5},
       "no": {"teacher": 4.0, "shallow": 12.0, "scratch": 8.0, "kd": 10.0, "hints": 12.0},
       "unclear": {"teacher": 4.0, "shallow": 10.0, "scratch": 10.0, "kd": 10.0, "hints": 10.5}}
# planted updates to a mark (the random-init net's best; the teacher trained on's best)
UPDATES = {"yes": {"net2net": 500.0, "random": 600.0, study.ON: 600.0},
           "no": {"net2net": 600.0, "random": 500.0, study.ON: 500.0},
           "unclear": {"net2net": 550.0, "random": 550.0, study.ON: 550.0}}
SPREAD = {"teacher": 0.0, "shallow": -0.5, "scratch": 1.0, "kd": -1.0, "hints": 0.5, "net2net": 1.0, "random": -1.0,
          study.ON: -1.0}


def _who(f):
    return "shallow" if f["net"] == "shallow" else f["method"]


def planted(effect: str):
    def values(f, seed, rng):
        who = _who(f)
        if effect == "unclear":  # alternating seed noise, different per arm: wide intervals around the planted mean
            noise = 4.0 * (-1) ** seed * SPREAD[who]
        else:
            noise = rng.normal(0, 0.1)
        upd = UPDATES[effect].get(f["method"], float("nan")) + 10 * noise
        return {"test_err_pp": ERR[effect].get(who, 5.0) + noise,
                "updates_to_random_best": upd if f["net"] in ("wider", "deeper") else float("nan"),
                "updates_to_trained_on_best": upd if f["method"] in ("net2net", study.ON) else float("nan")}

    return values


def test_a_diverged_arm_counts_against_itself():
    """A diverged student counts as chance error; a diverged grown net as never reaching the mark."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["method"] in ("hints", "net2net") and f["net"] in ("student", "wider"):
            v.update(status="diverged", test_err_pp=float("nan"), updates_to_random_best=float("nan"),
                     updates_to_trained_on_best=float("nan"))
        return v

    got = words(study, values, seeds=range(6))
    assert got["(1) hints vs scratch"] == "not reproduced"
    assert got["(3) hints vs kd"] == "not reproduced"
    assert got["(4a) Net2Net wider vs random init"] == "not reproduced"
    assert got["(4b) Net2Net wider vs teacher trained on"] == "not reproduced"
    assert got["(2) kd vs scratch"] == "reproduced" and got["(0) thin student hard to train alone"] == "reproduced"
    assert got["(5a) Net2Net deeper vs random init"] == "reproduced"


def test_an_easy_student_fails_the_regime_part_alone():
    """A student that trains as well as the shallow net fails (0) whatever hints and kd do."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["net"] == "shallow":
            v["test_err_pp"] = 12.0 + rng.normal(0, 0.1)
        return v

    got = words(study, values, seeds=range(6))
    assert got["(0) thin student hard to train alone"] == "not reproduced"
    assert all(w == "reproduced" for p, w in got.items() if not p.startswith("(0)"))


def test_a_teacher_trained_on_as_fast_fails_only_the_b_parts():
    """The grown net beats the random-init net but not the teacher trained on: (4b), (5b) fail alone."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["method"] == study.ON:
            v["updates_to_trained_on_best"] = 400.0 + rng.normal(0, 1)
        return v

    got = words(study, values, seeds=range(6))
    assert got["(4b) Net2Net wider vs teacher trained on"] == "not reproduced"
    assert got["(5b) Net2Net deeper vs teacher trained on"] == "not reproduced"
    assert got["(4a) Net2Net wider vs random init"] == "reproduced"


@pytest.mark.parametrize("effect,word", PLANTED)
def test_the_long_budget_gives_each_planted_word(effect, word):
    """The long budget's arms are judged by the same parts, each giving the planted word."""
    got = words(study, planted(effect), seeds=range(8), budget="long")
    assert list(got) == PARTS and set(got.values()) == {word}, got
