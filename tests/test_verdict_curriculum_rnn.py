"""curriculum_rnn's verdict on synthetic records with known answers: each part must say
reproduced, not reproduced and inconclusive when the data say so; a diverged trial counts as 0 %
accuracy against its arm; naive vs baseline is a finding in a table, not a part."""

import numpy as np
import pytest

from studies import curriculum_rnn as study
from tests.synthetic import PLANTED, context, table, words

PARTS = ["(1a) combined vs baseline, char", "(1b) combined vs baseline, seq", "(2a) combined vs mix, char",
         "(2b) combined vs mix, seq", "(3a) combined vs naive, char", "(3b) combined vs naive, seq"]

# planted accuracies (%) per effect: "yes" puts every part's true effect on its claimed side, "no" on the
# other side, "unclear" exactly at each threshold (0: every part is superiority)
ACC = {"yes": {"combined": 60.0, "baseline": 50.0, "mix": 55.0, "naive": 55.0},
       "no": {"combined": 40.0, "baseline": 50.0, "mix": 50.0, "naive": 50.0},
       "unclear": {"combined": 50.0, "baseline": 50.0, "mix": 50.0, "naive": 50.0}}
SPREAD = {"combined": 1.0, "baseline": -1.0, "mix": 0.5, "naive": -0.5}


def planted(effect: str):
    def values(f, seed, rng):
        if effect == "unclear":  # alternating-sign seed noise, different per arm: wide intervals centred on the
            noise = 6.0 * (-1) ** seed * SPREAD[f["strategy"]]  # planted difference
        else:
            noise = rng.normal(0, 0.5)
        level = ACC[effect][f["strategy"]] - 5.0 * (f["target"] - 2)  # harder targets score lower
        return {"char_pct": level + noise, "seq_pct": level / 2 + noise}

    return values


@pytest.mark.parametrize("budget", ["quick", "long"])
def test_a_diverged_combined_arm_counts_against_itself(budget):
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["strategy"] == "combined":
            v.update(status="diverged", char_pct=float("nan"), seq_pct=float("nan"))
        return v

    assert set(words(study, planted("yes"), seeds=range(6), budget=budget).values()) == {"reproduced"}
    got = words(study, values, seeds=range(6), budget=budget)
    assert set(got.values()) == {"not reproduced"}


def test_measure_reads_fractions_and_the_finding_table_reports_naive_vs_baseline():
    """Through measure(): accuracies as fractions become percent; naive planted 20 pp below baseline at
    one target is reported as 'below' there and 'not told apart' where they are equal (the full budget:
    quick and long have one target each)."""
    budget = "full"
    easy, hard = sorted(study.SETUP[budget]["targets"])

    def values(f, seed, rng):
        acc = 0.5 + rng.normal(0, 0.005) - (0.2 if f["strategy"] == "naive" and f["target"] == hard else 0.0)
        return {"char_acc": acc, "seq_acc": acc / 2, "target_step": 200.0 if f["strategy"] != "baseline" else None,
                "time_per_step_ms": 2.5}

    seeds = range(6)
    ctx = context(study, seeds, budget)
    t = study.measure(table(study, values, seeds, budget), {}, ctx)
    assert np.allclose(t["char_pct"], 100 * t["char_acc"]) and set(t["reached_target"]) == {0.0, 1.0}
    tabs = study.tables(t, {}, ctx)
    finding = tabs["finding, not a verdict part: naive minus baseline"]
    char = finding[finding["metric"].str.startswith("per-character")].set_index("target")
    assert char.loc[hard, "found"] == "below" and abs(char.loc[hard, "naive minus baseline (pp)"] + 20) < 1
    assert char.loc[easy, "found"] == "not told apart"
    beside = tabs["the paper's statements beside ours"]
    assert len(beside) == 3 and f"{hard} digits" in beside.iloc[2, 2]
    assert list(words(study, values, seeds, budget)) == PARTS  # naive vs baseline: a finding, never a part




SHIFT = {"yes": -10.0, "no": 10.0}  # the rival's value relative to combined's planted mean


@pytest.mark.parametrize("effect,word", PLANTED)
@pytest.mark.parametrize("part", range(len(PARTS)))
def test_each_part_gives_each_word_alone(part, effect, word):
    """Every part is its own comparison: the rival of one part on one metric planted above, below or
    level with combined (with wide alternating seed noise) moves that part's word only."""
    other, metric = ("baseline", "mix", "naive")[part // 2], ("char_pct", "seq_pct")[part % 2]

    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["strategy"] == other:
            combined = ACC["yes"]["combined"] - 5.0 * (f["target"] - 2)
            combined = combined if metric == "char_pct" else combined / 2
            v[metric] = combined + (SHIFT[effect] if effect in SHIFT else 8.0 * (-1) ** seed)
        return v

    got = words(study, values, seeds=range(8))
    assert got[PARTS[part]] == word, got
    assert all(w == "reproduced" for p, w in got.items() if p != PARTS[part]), got


@pytest.mark.parametrize("effect,word", PLANTED)
def test_the_long_budget_gives_each_planted_word(effect, word):
    """The long budget's arms are judged by the same parts, each giving the planted word."""
    got = words(study, planted(effect), seeds=range(8), budget="long")
    assert list(got) == PARTS and set(got.values()) == {word}, got
