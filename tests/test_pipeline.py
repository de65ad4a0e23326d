"""A run driven from Python (oplab.pipeline.run), as run_all.py drives it: plan, tune, choose, train,
judge and report, with the same records and words as the command line."""

import json

import pytest

from oplab import pipeline
from oplab import plan as planning
from tests import tinystudy


def test_a_run_from_python_trains_judges_and_reports_then_reuses(tmp_path):
    seen = []
    out = pipeline.run([tinystudy], "smoke", tmp_path, replicate=True, progress=False,
                       on_study=lambda name, v, page: seen.append((name, v["word"], page.name)))
    n = 2 * (len(planning.default_seeds(tinystudy, "smoke")) * 2)  # two arms, verdict and replication seeds
    assert out.trained == n and out.reused == 0 and not out.errors and not out.unreadable
    v = json.loads((tmp_path / "tiny" / "verdict.json").read_text())
    assert seen == [("tiny", v["word"], "README.md")] and out.verdicts["tiny"]["word"] == v["word"]
    assert out.index == tmp_path / "README.md" and out.index.is_file()
    again = pipeline.run([tinystudy], "smoke", tmp_path, replicate=True, progress=False)
    assert again.trained == 0 and again.reused == n
    assert {k: r.final for k, r in again.records.items()} == {k: r.final for k, r in out.records.items()}
    rebuilt = pipeline.run([tinystudy], "smoke", tmp_path, replicate=True, report_only=True, progress=False)
    assert rebuilt.trained == 0 and rebuilt.verdicts["tiny"]["word"] == v["word"]


def test_a_report_only_run_with_nothing_stored_says_so(tmp_path):
    with pytest.raises(pipeline.NothingStored, match="no stored records"):
        pipeline.run([tinystudy], "smoke", tmp_path, report_only=True, progress=False)


def test_the_tuned_arms_are_chosen_by_the_one_rule():
    """best_levels: lowest mean fit per group, a failure (+inf) never chosen, ties to the smaller level."""
    rows = [(("a",), 0.1, 2.0), (("a",), 0.1, 2.0), (("a",), 0.01, 1.0), (("a",), 0.01, 3.0),
            (("b",), 0.1, 1.0), (("b",), 0.01, float("inf")), (("b",), 0.01, 0.0)]
    assert planning.best_levels(rows) == {("a",): 0.01, ("b",): 0.1}
    assert planning.fit("diverged", 0.5) == float("inf") and planning.fit("ok", None) == float("inf")


def test_long_is_quick_for_a_study_without_a_long_setup(tmp_path, capsys, monkeypatch):
    from oplab import cli

    monkeypatch.setattr(tinystudy, "SETUP", {k: v for k, v in tinystudy.SETUP.items() if k != "long"})
    monkeypatch.setattr(tinystudy, "SEEDS", {k: v for k, v in tinystudy.SEEDS.items() if k != "long"})
    assert not planning.has_budget(tinystudy, "long") and planning.has_budget(tinystudy, "quick")
    code = cli.main([tinystudy], ["--budget", "long", "--results", str(tmp_path / "long"), "--no-progress"])
    assert code == 0 and "tiny: long = quick" in capsys.readouterr().err
    assert not (tmp_path / "long" / "tiny").exists()  # nothing trained or written for it
