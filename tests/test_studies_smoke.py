"""Every registered study runs end to end at the smoke budget and writes its report."""

import json

import pytest

from oplab import cli, stats
from studies import all_studies

STUDIES = all_studies()


@pytest.mark.parametrize("study", STUDIES, ids=[s.NAME for s in STUDIES])
def test_study_smoke(study, tmp_path):
    code = cli.main([study], ["--budget", "smoke", "--jobs", "1", "--no-progress", "--results", str(tmp_path)])
    assert code == 0
    out = tmp_path / study.NAME
    trials = list((out / "trials").glob("*.json"))
    arms = study.arms("smoke")
    assert len(trials) >= 1 and len(trials) <= len(arms) * study.SEEDS["smoke"]
    for f in ("table.csv", "table.md", "README.md", "verdict.json"):
        assert (out / f).stat().st_size > 0, f
    v = json.loads((out / "verdict.json").read_text())
    assert v["study"] == study.NAME and v["budget"] == "smoke" and v["n_missing"] == 0
    assert v["figures"] and all((out / f).stat().st_size > 5000 for f in v["figures"])
    assert v["parts"], "a verdict needs at least one tested part"
    for p in v["parts"]:
        assert p["word"] in stats.WORDS
        assert {"part", "claim", "effect", "ci", "unit", "rule", "evidence", "n"} <= set(p)
        assert len(p["ci"]) == 2
    assert v["word"].split(" (")[0] in stats.WORDS + ("partly reproduced",)
    index = (tmp_path / "README.md").read_text()
    assert f"[{study.NAME}]" in index and "Scorecard" in index


def test_every_study_declares_its_contract():
    for s in STUDIES:
        assert s.CLAIM and s.SOURCE and s.TITLE and isinstance(s.VERSION, int)
        assert set(s.SEEDS) == {"smoke", "quick", "full"}
        for budget in ("smoke", "quick", "full"):
            assert s.arms(budget), (s.NAME, budget)
