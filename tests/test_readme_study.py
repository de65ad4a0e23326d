"""The README's "Adding a study" example is a complete study: it runs at the smoke
budget with replication and writes a report, so the README stays true."""

import importlib.util
import json
import re
from pathlib import Path

from oplab import cli

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_example_study_runs(tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text.split("## Adding a study", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "momentum.py"
    path.write_text(code)
    spec = importlib.util.spec_from_file_location("momentum", path)
    study = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(study)
    out = tmp_path / "results"
    assert cli.main([study], ["--budget", "smoke", "--jobs", "1", "--no-progress", "--results", str(out),
                              "--replicate"]) == 0
    v = json.loads((out / "momentum" / "verdict.json").read_text())
    assert [p["part"] for p in v["parts"]] == ["training loss"] and v["replication"]["of"] == 1
    assert (out / "momentum" / "training_loss.png").stat().st_size > 5000
