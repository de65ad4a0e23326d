"""Every registered study runs end to end at the smoke budget and writes its report."""

import json

import numpy as np
import pytest

from oplab import cli
from studies import all_studies

STUDIES = all_studies()


@pytest.mark.parametrize("study", STUDIES, ids=[s.NAME for s in STUDIES])
def test_study_smoke(study, tmp_path):
    code = cli.main([study], ["--budget", "smoke", "--jobs", "1", "--no-progress", "--results", str(tmp_path),
                              "--replicate"])
    assert code == 0
    out = tmp_path / study.NAME
    trials = list((out / "trials").glob("*.json"))
    arms = study.arms("smoke")
    tune = getattr(study, "TUNE", None)
    most = len(arms) * (2 * study.SEEDS["smoke"] + (tune.seeds["smoke"] if tune else 0))
    assert 1 <= len(trials) <= most
    for f in ("table.csv", "table.md", "README.md", "verdict.json"):
        assert (out / f).stat().st_size > 0, f
    v = json.loads((out / "verdict.json").read_text())
    assert v["study"] == study.NAME and v["budget"] == "smoke" and v["n_missing"] == 0
    assert v["figures"] and all((out / f).stat().st_size > 5000 for f in v["figures"])
    assert v["parts"], "a verdict needs at least one tested part"
    pooled = v["pooled_seeds"]
    assert pooled == v["seeds"] + [s + 100 for s in v["seeds"]]
    # a study whose independent unit is a block of seeds (SEEDS_PER_UNIT) has one value a block, named by its
    # first seed; every other study one value a seed
    size = getattr(study, "SEEDS_PER_UNIT", {}).get("smoke", 1)
    units = sorted({s // size * size for s in pooled})
    for p in v["parts"]:
        # smoke pools 2 + 2 seeds: no part may give a decisive word on them
        assert p["word"] == "inconclusive" and p["shown"] == "inconclusive (n < 5)"
        # ...but every part must have looked at real values: one finite value for every seed, no finished
        # trial without a finite value (a measure returning NaN), and an evidence sentence with numbers
        d = p["details"]
        # a part whose measure is a search may find nothing at smoke's size: the study names it and says why
        if p["part"] not in getattr(study, "SMOKE_UNMEASURED", {}):
            assert d.get("missing", 0) == 0, (p["part"], p["evidence"])
        if "per_seed" in d:
            assert sorted(map(int, d["per_seed"])) == units, p["part"]
            assert all(np.isfinite(x) for x in d["per_seed"].values()), (p["part"], d["per_seed"])
        else:  # a rate part: one event a seed
            assert p["n"] == len(units), p["part"]
        assert p["evidence"] and "—" not in p["evidence"].split(";")[0], p["evidence"]
        assert p["reason"].startswith(f"only {len(units)} seeds"), p["reason"]
        assert set(p["halves"]) == {"verdict", "replication"} and all(h["n"] == len(units) // 2
                                                                        for h in p["halves"].values())
        assert {"part", "claim", "effect", "ci", "unit", "rule", "evidence", "n", "method"} <= set(p)
        assert len(p["ci"]) == 2 and p["method"] and p["method"] in p["rule"] and "n >= 5" in p["rule"]
    assert v["word"] == "inconclusive"
    rep = v["replication"]
    assert rep["seeds"] == [s + 100 for s in v["seeds"]] and rep["of"] == len(v["parts"])
    assert "Halves:" in (out / "README.md").read_text()
    index = (tmp_path / "README.md").read_text()
    assert f"[{study.NAME}]" in index and "Scorecard" in index


def test_every_study_declares_its_contract():
    for s in STUDIES:
        assert s.CLAIM and s.SOURCE and s.TITLE and isinstance(s.VERSION, int)
        # long is optional (a study may declare long = quick): where declared, in SEEDS and SETUP both
        assert {"smoke", "quick", "full"} <= set(s.SEEDS) <= {"smoke", "quick", "long", "full"}
        assert set(s.SETUP) == set(s.SEEDS), s.NAME
        assert s.SEEDS["quick"] >= 5, "a quick verdict needs at least 5 seeds to give a decisive word"
        assert s.SEEDS.get("long", 5) >= 5, "a long verdict needs at least 5 seeds to give a decisive word"
        tune = getattr(s, "TUNE", None)
        for budget in s.SEEDS:
            assert s.arms(budget), (s.NAME, budget)
            assert tune is None or tune.seeds[budget] >= 1, (s.NAME, budget)


def test_no_study_reaches_into_private_names_of_the_core():
    import ast
    from pathlib import Path

    for s in STUDIES:
        tree = ast.parse(Path(s.__file__).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("oplab"):
                assert not any(a.name.startswith("_") for a in node.names), (s.NAME, ast.dump(node))
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                assert not (isinstance(base, ast.Name) and base.id in {"kit", "stats", "plots", "models", "cli",
                                                                       "data", "tasks", "report", "runner"}), \
                    (s.NAME, node.attr)
