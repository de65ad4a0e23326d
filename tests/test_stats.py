import numpy as np
import pandas as pd
import pytest

from oplab import stats


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small, large = rng.normal(1, 1, 5), rng.normal(1, 1, 500)
    lo, hi = stats.bootstrap_ci(small)
    assert lo < small.mean() < hi
    lo2, hi2 = stats.bootstrap_ci(large)
    assert lo2 < 1 < hi2 and (hi2 - lo2) < (hi - lo)
    assert stats.bootstrap_ci([2.0]) == (2.0, 2.0)
    assert np.isnan(stats.bootstrap_ci([])[0])


def test_decide_and_overall():
    assert stats.decide((0.1, 0.3), above=0) == "reproduced"
    assert stats.decide((-0.3, -0.1), above=0) == "not reproduced"
    assert stats.decide((-0.1, 0.3), above=0) == "inconclusive"
    assert stats.decide((0.1, 0.3), below=0.5) == "reproduced"
    assert stats.decide((0.6, 0.9), below=0.5) == "not reproduced"
    assert stats.decide((float("nan"), 1), above=0) == "inconclusive"
    v = lambda w: stats.Verdict("p", "c", 0.0, (0, 0), "u", "r", w, "e")  # noqa: E731
    assert stats.overall([v("reproduced")] * 2) == "reproduced"
    assert stats.overall([v("not reproduced")] * 2) == "not reproduced"
    assert stats.overall([v("reproduced"), v("inconclusive")]) == "partly reproduced (1/2 parts)"
    assert stats.overall([v("inconclusive"), v("not reproduced")]) == "inconclusive"
    with pytest.raises(ValueError):
        v("sort of")


def test_paired_differences_and_summary():
    df = pd.DataFrame({"arm": ["a", "a", "b", "b", "b"], "seed": [0, 1, 0, 1, 2], "x": [3.0, 5.0, 1.0, 2.0, 9.0]})
    assert stats.paired_differences(df, "x", "a", "b").tolist() == [2.0, 3.0]
    s = stats.summarize(df, "x").set_index("arm")
    assert s.loc["b", "mean"] == 4.0 and s.loc["b", "n"] == 3 and s.loc["a", "std"] == pytest.approx(np.sqrt(2))
    ver = stats.effect_verdict("p", "c", [1.0, 2.0, 3.0], "u", "r", "mean {effect:.1f}", above=0)
    assert ver.word == "reproduced" and ver.evidence == "mean 2.0" and ver.n == 3


def test_best_setting_picks_the_lowest_mean_training_score():
    df = pd.DataFrame({
        "arm": ["a"] * 4 + ["b"] * 4, "lr": [0.1, 0.1, 0.3, 0.3] * 2, "seed": [0, 1] * 4,
        "status": ["ok", "ok", "ok", "diverged", "ok", "ok", "ok", "ok"],
        "train_loss": [0.5, 0.7, 0.1, np.nan, 0.4, 0.4, 0.2, 0.2],
    })
    best = stats.best_setting(df, ["arm"], "lr")
    assert best == {("a",): 0.1, ("b",): 0.3}  # a diverged trial makes its rate lose


def test_rows_at_best_keeps_every_seed_of_the_chosen_rate():
    df = pd.DataFrame({"arm": ["a"] * 4, "lr": [0.1, 0.1, 0.3, 0.3], "seed": [0, 1, 0, 1],
                       "status": ["ok"] * 4, "train_loss": [0.5, 0.7, 0.1, 0.2]})
    rows = stats.rows_at_best(df, ["arm"], "lr")
    assert rows["lr"].tolist() == [0.3, 0.3] and rows["seed"].tolist() == [0, 1]
