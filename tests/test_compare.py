"""`oplab compare A B`: two real result folders compared part by part (a differing word flagged, a
part in one folder only listed), and bad input as one line with exit status 2."""

import json
import shutil
from pathlib import Path

from oplab import compare

REPO = Path(__file__).resolve().parent.parent


def _copy(study: str, dest: Path) -> Path:
    (dest / study).mkdir(parents=True)
    shutil.copy(REPO / "results" / study / "verdict.json", dest / study / "verdict.json")
    return dest / study / "verdict.json"


def test_two_folders_side_by_side(tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    _copy("init_biases", a)
    _copy("momentum_plateau", a)
    vb = _copy("init_biases", b)
    v = json.loads(vb.read_text())
    first = v["parts"][0]
    first["word"] = "not reproduced" if first["word"] == "reproduced" else "reproduced"
    v["parts"] = v["parts"][:-1]  # B lacks the last part
    vb.write_text(json.dumps(v))
    assert compare.main([str(a), str(b)]) == 0
    out = capsys.readouterr().out
    n_parts = len(json.loads((a / "init_biases" / "verdict.json").read_text())["parts"])
    assert f"{n_parts - 1} parts in both, 1 with a different word" in out
    row = next(line for line in out.splitlines() if f"| {first['part']} |" in line)
    assert row.endswith("| **yes** |")
    assert sum("only in A" in line for line in out.splitlines()) == 1 + len(
        json.loads((a / "momentum_plateau" / "verdict.json").read_text())["parts"])
    assert out.count("\n| ") >= n_parts  # a Markdown table, a row a part


def test_a_folder_compared_with_itself_differs_nowhere(capsys):
    assert compare.main([str(REPO / "results"), str(REPO / "results")]) == 0
    out = capsys.readouterr().out
    assert "with a different word (0 opposite" in out.splitlines()[0] and "**yes**" not in out


def test_bad_folders_are_one_line_and_exit_2(tmp_path, capsys):
    assert compare.main([str(tmp_path / "missing"), str(REPO / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a folder" in err[0]
    assert compare.main([str(tmp_path), str(REPO / "results")]) == 2
    assert "holds no study verdicts" in capsys.readouterr().err


def test_run_all_dispatches_compare(capsys):
    import run_all

    assert run_all.main(["compare", str(REPO / "results"), str(REPO / "results")]) == 0
    assert capsys.readouterr().out.startswith("Comparing A = ")


def test_estimate_prints_cpu_time_from_the_stored_records(capsys):
    from oplab import cli
    from studies import init_biases

    assert cli.main([init_biases], ["--estimate", "--replicate", "--results", str(REPO / "results")]) == 0
    out = capsys.readouterr().out
    cpu = next(line for line in out.splitlines() if line.startswith("CPU"))
    assert "CPU-minutes" in cpu and "trials measured" in cpu and "min with --jobs" in cpu
