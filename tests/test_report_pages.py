"""The report's page logic on planted verdicts: the pooled headline with both halves beside it,
the expected agreement, the reason under a part that is not reproduced, the tuning grid's
edges, a study with unreadable records (no word on partial data), and stale page files."""

import numpy as np
import pandas as pd

from oplab import kit, report


def part(name, shift, seeds):
    rng = np.random.default_rng(len(seeds))
    rows = [{"seed": s, "m": m, "status": "ok", "x": (shift if m == "a" else 0.0) + rng.normal(0, 0.3)}
            for s in seeds for m in "ab"]
    return kit.difference(pd.DataFrame(rows), "x", {"m": "a"}, {"m": "b"}, part=name, claim="c", unit="u", above=0.0)


def test_the_headline_is_the_pooled_part_with_both_halves_beside_it():
    pooled = [part("p", 1.0, range(10)), part("q", 0.05, range(10))]
    halves = {"verdict": [part("p", 1.0, range(5)), part("q", 0.4, range(5))],
              "replication": [part("p", 1.0, range(100, 105)), part("q", -0.4, range(100, 105))]}
    parts = report.headline(pooled, halves)
    p, q = parts
    assert p["word"] == "reproduced" and p["halves"]["verdict"]["n"] == 5 and p["halves_agree"]
    assert p["expected_agreement"] > 0.9 and p["reason"] == ""
    assert q["word"] == "inconclusive" and "halves disagree in sign" in q["reason"]
    rep = report._replication(parts, halves, [0, 1, 2, 3, 4], [100, 101, 102, 103, 104])
    assert rep["of"] == 2 and rep["agree"] == sum(d["halves_agree"] for d in parts)
    assert rep["seeds"] == [100, 101, 102, 103, 104] and rep["verdict_seeds"] == [0, 1, 2, 3, 4]


def test_opposite_decisive_words_between_halves_are_flagged():
    pooled = [part("p", 0.0, range(10))]
    halves = {"verdict": [part("p", 2.0, range(5))], "replication": [part("p", -2.0, range(100, 105))]}
    (d,) = report.headline(pooled, halves)
    assert d["halves_opposite"] is True
    rep = report._replication([d], halves, list(range(5)), list(range(100, 105)))
    assert rep["opposite"] == 1 and "1 opposite" in report._replicated({"replication": rep})


def test_the_tuning_grid_says_where_the_chosen_level_sits():
    tune = kit.Tune("lr", within=("g",))
    df = pd.DataFrame({"g": ["a"] * 3 + ["b"] * 3, "lr": [0.1, 0.3, 1.0] * 2, "seed": 1000, "status": "ok",
                       "train_loss_full": [0.5, 0.2, 0.4, 0.5, 0.4, 0.1]})
    rows = report.tuning_bracket(kit.mark_chosen(df, tune), tune)
    assert [(r["group"]["g"], r["chosen"], r["where"]) for r in rows] == [("a", 0.3, "inside the grid"),
                                                                          ("b", 1.0, "at the high edge")]
    text = report._tuning_text({"tuning": rows})
    assert "not bracketed in 1 of 2" in text and "g=b: 1 at the high edge" in text


def test_a_page_drops_the_tables_and_figures_it_no_longer_writes(tmp_path):
    for name in ("table.csv", "table_old_grid.csv", "old_figure.png", "figure.png", "notes.txt"):
        (tmp_path / name).write_text("x")
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "k.json").write_text("{}")
    gone = report.remove_unwritten(tmp_path, {"table.csv", "figure.png"})
    assert gone == ["old_figure.png", "table_old_grid.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figure.png", "notes.txt", "table.csv", "trials"]
