"""The README's "Adding a study" example is a complete study: it runs at the smoke
budget with replication and writes a report, and its verdict-test file gives every planted word,
so the README stays true."""

import importlib.util
import json
import re
from pathlib import Path

from oplab import cli

ROOT = Path(__file__).resolve().parents[1]


def _blocks() -> list[str]:
    section = (ROOT / "README.md").read_text().split("## Adding a study", 1)[1]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _study(tmp_path):
    code = _blocks()[0]
    path = tmp_path / "momentum.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("momentum", path)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    return study


def test_the_readme_example_study_runs(tmp_path):
    study = _study(tmp_path)
    out = tmp_path / "results"
    assert cli.main([study], ["--budget", "smoke", "--jobs", "1", "--no-progress", "--results", str(out),
                              "--replicate"]) == 0
    v = json.loads((out / "momentum" / "verdict.json").read_text())
    assert [p["part"] for p in v["parts"]] == ["training loss"] and v["replication"]["of"] == 1
    assert (out / "momentum" / "training_loss.png").stat().st_size > 5000


def test_the_readme_example_verdict_test_gives_every_planted_word(tmp_path, monkeypatch):
    import sys

    import studies
    from tests.synthetic import PLANTED, check_planted, check_too_few_seeds

    study = _study(tmp_path)
    monkeypatch.setitem(sys.modules, "studies.momentum", study)
    monkeypatch.setattr(studies, "momentum", study, raising=False)
    namespace: dict = {}
    exec(compile(_blocks()[1], "test_verdict_momentum.py", "exec"), namespace)
    for effect, word in PLANTED:
        check_planted(study, namespace["planted"], namespace["PARTS"], effect, word)
    check_too_few_seeds(study, namespace["planted"])
