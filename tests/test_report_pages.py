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


def test_a_study_whose_every_trial_fails_still_gets_its_page(tmp_path, capsys):
    """Every trial raises: the page and errors.md are written, the study reads inconclusive with the
    failures counted, and the run exits 1 with one line (no traceback)."""
    import json
    import types

    from oplab import cli
    from oplab.config import InitConfig
    from tests import tinystudy

    broken = types.ModuleType("broken")
    broken.__dict__.update({k: v for k, v in vars(tinystudy).items() if not k.startswith("__")})
    broken.__file__ = tinystudy.__file__
    broken.NAME = "broken"

    def arms(budget):
        out = tinystudy.arms(budget)
        bad = InitConfig("lsuv", {"tmax": -1})  # raises at run time; the arm checks cannot see it
        return {n: kit.Arm(a.trial.__class__(**{**a.trial.__dict__, "init": bad}), a.factors) for n, a in out.items()}

    broken.arms = arms
    code = cli.main([broken], ["--budget", "smoke", "--seeds", "2", "--jobs", "1", "--no-progress", "--results",
                               str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert len([line for line in err.splitlines() if "failed with an error" in line]) == 1
    v = json.loads((tmp_path / "broken" / "verdict.json").read_text())
    assert v["word"].startswith("inconclusive") and v["n_errors"] == 4
    assert (tmp_path / "broken" / "errors.md").is_file() and (tmp_path / "broken" / "README.md").is_file()


def test_a_study_whose_measures_need_the_failed_trials_values_reads_inconclusive(tmp_path, capsys):
    import json
    import types

    from oplab import cli
    from oplab.config import InitConfig
    from tests import tinystudy

    broken = types.ModuleType("broken2")
    broken.__dict__.update({k: v for k, v in vars(tinystudy).items() if not k.startswith("__")})
    broken.__file__ = tinystudy.__file__
    broken.NAME = "broken2"
    bad = InitConfig("lsuv", {"tmax": -1})
    broken.arms = lambda budget: {n: kit.Arm(a.trial.__class__(**{**a.trial.__dict__, "init": bad}), a.factors)
                                  for n, a in tinystudy.arms(budget).items()}
    # n_params is in a record's extra only if its trial trained
    broken.measure = lambda df, curves, ctx: df.assign(per_step=df["extra"].map(lambda e: e["n_params"]))
    code = cli.main([broken], ["--budget", "smoke", "--seeds", "2", "--jobs", "1", "--no-progress", "--results",
                               str(tmp_path)])
    assert code == 1 and "Traceback" not in capsys.readouterr().err
    v = json.loads((tmp_path / "broken2" / "verdict.json").read_text())
    assert v["word"] == "inconclusive (4 trials failed with an error)" and v["parts"] == []
    assert "no part could be judged: 4 of 4 trials failed" in (tmp_path / "broken2" / "README.md").read_text()


def test_the_end_of_a_run_counts_trained_reused_and_failed(tmp_path, capsys):
    from oplab import cli
    from tests import tinystudy

    args = ["--budget", "smoke", "--seeds", "2", "--jobs", "1", "--no-progress", "--results", str(tmp_path)]
    assert cli.main([tinystudy], args) == 0
    first = [line for line in capsys.readouterr().out.splitlines() if "trials:" in line]
    assert first and first[0].startswith("4 trials: 4 trained in this run, 0 reused from the store, 0 failed")
    assert cli.main([tinystudy], args) == 0
    again = [line for line in capsys.readouterr().out.splitlines() if "trials:" in line]
    assert again[0].startswith("4 trials: 0 trained in this run, 4 reused from the store, 0 failed")
