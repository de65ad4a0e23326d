"""The quick and the long budget side by side (report side): each scorecard has a column with the other
budget's word (linked where that page exists, "not run" where it does not, "= quick" where a study declares
no long setup), the long index links back to the quick pages, and the forest plots draw both budgets on a
part's line. Two small results folders from planted verdicts, and one from tiny trials at both budgets."""

import json

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from oplab import forest, kit, report

INDEX_FIELDS = dict(title="T", claim="C", source="S", seeds=[0, 1, 2, 3, 4], pooled_seeds=list(range(10)),
                    replication=None, protocol="Intervals are 95%.", figures=[], compute_s=1.0)


def part(name, shift, seeds, seed=0):
    rng = np.random.default_rng(seed)
    rows = [{"seed": s, "m": m, "status": "ok", "x": (shift if m == "a" else 0.0) + rng.normal(0, 0.3)}
            for s in seeds for m in "ab"]
    return kit.difference(pd.DataFrame(rows), "x", {"m": "a"}, {"m": "b"}, part=name, claim="c", unit="u", above=0.0)


def verdict(study, budget, shift, long_setup=True, figures=()):
    parts = report.headline([part("(1) p", shift, range(10)), part("(2) q", shift, range(10), 1)], {})
    return {**INDEX_FIELDS, "study": study, "budget": budget, "parts": parts, "word": report.stats.overall(parts),
            "long_setup": long_setup, "figures": list(figures)}


def plant(folder, v):
    (folder / v["study"]).mkdir(parents=True, exist_ok=True)
    (folder / v["study"] / "verdict.json").write_text(json.dumps(v))


def test_the_scorecards_show_the_long_word_not_run_and_equal_to_quick(tmp_path):
    quick, long = tmp_path / "results", tmp_path / "results" / "long"
    (tmp_path / "README.md").write_text("# p\n\n<!-- scorecard:start -->\nold\n<!-- scorecard:end -->\n")
    plant(quick, verdict("alpha", "quick", 0.0))  # inconclusive at quick
    plant(quick, verdict("beta", "quick", 1.0))  # declares a long setup, no long report yet
    plant(quick, verdict("gamma", "quick", 1.0, long_setup=False))  # its long budget is its quick one
    plant(long, verdict("alpha", "long", 1.5))  # decided at long
    index = report.write_index(quick).read_text()
    row = {line.split("|")[1].strip(): line for line in index.splitlines() if line.startswith("| [")}
    assert "| at long |" in index
    assert "**inconclusive** | [reproduced](long/alpha/README.md) |" in row["[alpha](alpha/README.md)"]
    assert "| not run |" in row["[beta](beta/README.md)"] and "| = quick |" in row["[gamma](gamma/README.md)"]
    top = (tmp_path / "README.md").read_text()
    assert "| at long |" in top and "[reproduced](results/long/alpha/README.md)" in top
    assert "| not run |" in top and "| = quick |" in top
    # the long index, rebuilt with it, links back to the quick pages
    back = (long / "README.md").read_text()
    assert "| at quick |" in back and "[inconclusive](../alpha/README.md)" in back and "../README.md" in back


def test_a_missing_long_report_reads_not_run_everywhere(tmp_path):
    plant(tmp_path, verdict("alpha", "quick", 1.0))
    index = report.write_index(tmp_path).read_text()
    assert "| not run |" in index and "has not been built yet" in index
    assert not (tmp_path / "long").exists()  # nothing written for a report that is not there


def test_the_forest_draws_both_budgets_on_a_part_s_line(tmp_path):
    q, lg = verdict("alpha", "quick", 0.0), verdict("alpha", "long", 1.5)
    rows = forest.rows([q, lg])
    assert {(r["part"], r["budget"]) for r in rows} == {(p, b) for p in ("(1) p", "(2) q") for b in ("quick", "long")}
    fig = report.page_forest(q, lg)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["(1) p", "(2) q"]  # one line a part, not a budget
    markers = [line.get_marker() for line in ax.get_lines() if isinstance(line, Line2D)]
    assert markers.count(forest.BUDGET_MARKERS["quick"]) == 2 and markers.count(forest.BUDGET_MARKERS["long"]) == 2
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("quick budget") for t in legend) and any(t.startswith("long budget") for t in legend)
    single = report.page_forest(q, None).axes[0]
    assert not any(t.get_text().startswith("long") for t in single.get_legend().get_texts())


def test_the_suite_forest_and_the_page_forests_follow_the_other_budget(tmp_path):
    quick, long = tmp_path / "results", tmp_path / "results" / "long"
    plant(quick, {**verdict("alpha", "quick", 0.0, figures=["forest.png"]), "forest_other": ""})
    report.write_index(quick)
    mark = (quick / ".forest_inputs").read_text()
    assert (quick / "forest.png").is_file() and not (quick / "alpha" / "forest.png").exists()  # nothing to redraw
    plant(long, {**verdict("alpha", "long", 1.5, figures=["forest.png"]), "forest_other": ""})
    report.write_index(long)  # a long run's index: it refreshes the quick index and page forests too
    page = json.loads((quick / "alpha" / "verdict.json").read_text())
    assert page["forest_other"] == report.parts_key(json.loads((long / "alpha" / "verdict.json").read_text()))
    assert (quick / "alpha" / "forest.png").is_file() and (quick / ".forest_inputs").read_text() != mark
    assert json.loads((long / "alpha" / "verdict.json").read_text())["forest_other"] == report.parts_key(page)
    assert (long / "forest.png").is_file()
    before = (quick / "alpha" / "forest.png").stat().st_mtime_ns
    report.write_index(quick)  # nothing moved: the page forest stands
    assert (quick / "alpha" / "forest.png").stat().st_mtime_ns == before


def test_a_tiny_study_at_quick_and_long_shows_both_budgets(tmp_path, capsys):
    import types

    from oplab import cli
    from tests import tinystudy

    tiny = types.ModuleType("tiny_long")
    tiny.__dict__.update({k: v for k, v in vars(tinystudy).items() if not k.startswith("__")})
    tiny.__file__ = tinystudy.__file__
    tiny.SEEDS = {**tinystudy.SEEDS, "long": 5}
    tiny.SETUP = {**tinystudy.SETUP, "long": {}}
    results = tmp_path / "results"
    common = ["--seeds", "2", "--jobs", "1", "--no-progress"]
    assert cli.main([tiny], ["--budget", "quick", "--results", str(results), *common]) == 0
    assert "| not run |" in (results / "README.md").read_text()
    assert cli.main([tiny], ["--budget", "long", "--results", str(results / "long"), *common]) == 0
    capsys.readouterr()
    quick_v = json.loads((results / "tiny" / "verdict.json").read_text())
    long_v = json.loads((results / "long" / "tiny" / "verdict.json").read_text())
    assert quick_v["long_setup"] and long_v["budget"] == "long"
    assert quick_v["forest_other"] == report.parts_key(long_v) and long_v["forest_other"] == report.parts_key(quick_v)
    assert f"[{long_v['word']}](long/tiny/README.md)" in (results / "README.md").read_text()
    assert f"[{quick_v['word']}](../tiny/README.md)" in (results / "long" / "README.md").read_text()


def test_a_long_report_outside_a_long_folder_is_not_paired(tmp_path):
    """--results DIR at the long budget: the folder above it is not taken for its quick report."""
    plant(tmp_path, verdict("alpha", "quick", 1.0))
    plant(tmp_path / "elsewhere", verdict("alpha", "long", 1.0))
    index = report.write_index(tmp_path / "elsewhere").read_text()
    assert "at quick" not in index and "../alpha/README.md" not in index
