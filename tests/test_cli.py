import json
import subprocess
import sys
from pathlib import Path

import pytest

from oplab import cli
from studies import all_studies, get

ROOT = Path(__file__).resolve().parents[1]
WN = get("wn_vs_bn")


@pytest.mark.parametrize("argv,expect", [
    (["--budget", "huge"], "invalid choice: huge (choose from smoke, quick, full)"),
    (["--only", "wn_vs_bm"], "unknown study wn_vs_bm; valid: "),
    (["--seeds", "many"], "argument --seeds"),
    (["--seeds", "0"], "argument --seeds"),
    (["--seeds", "1,1"], "distinct"),
    (["--jobs", "0"], "--jobs: must be >= 1"),
    (["--device", "tpu"], "choose from auto, cpu, cuda"),
    (["--executor", "slurm"], "choose from local, dask"),
    (["--seeds", "1000-1004"], "verdict and tuning seeds overlap at [1000"),
    (["--seeds", "0,100", "--replicate"], "verdict and replication seeds overlap at [100]"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(argv, expect, tmp_path, capsys):
    out = tmp_path / "res"
    code = cli.main(all_studies(), argv + ["--results", str(out)], prog="run_all.py")
    err = capsys.readouterr().err
    assert code == 2
    assert expect in err.replace("'", "") and err.count("\n") == 1 and err.startswith("run_all.py: error:")
    assert not out.exists()


def test_missing_dataset_is_a_usage_error(tmp_path, capsys, monkeypatch):
    code = cli.main([WN], ["--budget", "full", "--results", str(tmp_path / "r"),
                           "--data-dir", str(tmp_path / "nodata")])
    err = capsys.readouterr().err
    assert code == 2 and "dataset 'cifar10' is not in" in err and "--download" in err
    assert not (tmp_path / "r").exists()


def test_list_and_report_only_without_records(tmp_path, capsys):
    assert cli.main(all_studies(), ["--list"]) == 0
    out = capsys.readouterr().out
    assert all(s.NAME in out for s in all_studies())
    code = cli.main([WN], ["--report-only", "--budget", "smoke", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no stored" in err and "run without --report-only" in err and err.count("\n") == 1


def test_seed_syntax():
    assert cli.parse_seeds("3") == 3
    assert cli.parse_seeds("10,11,12") == [10, 11, 12]
    assert cli.parse_seeds("10-12") == [10, 11, 12]


def test_help_of_a_study_and_of_the_suite():
    for cmd in ([sys.executable, "run_all.py", "--help"], [sys.executable, "-m", "studies.wn_vs_bn", "--help"]):
        res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0 and "--budget {smoke,quick,full}" in res.stdout and "--report-only" in res.stdout


def test_report_only_rebuilds_the_same_report(tmp_path):
    args = ["--budget", "smoke", "--jobs", "1", "--no-progress", "--results", str(tmp_path), "--seeds", "2",
            "--replicate"]
    assert cli.main([WN], args) == 0
    verdict = (tmp_path / "wn_vs_bn" / "verdict.json").read_text()
    table = (tmp_path / "wn_vs_bn" / "table.csv").read_text()
    figures = {f.name: f.read_bytes() for f in (tmp_path / "wn_vs_bn").glob("*.png")}
    (tmp_path / "wn_vs_bn" / "verdict.json").unlink()
    (tmp_path / "README.md").unlink()
    assert cli.main([WN], args + ["--report-only"]) == 0
    assert (tmp_path / "wn_vs_bn" / "verdict.json").read_text() == verdict
    assert (tmp_path / "wn_vs_bn" / "table.csv").read_text() == table
    assert figures and {f.name: f.read_bytes() for f in (tmp_path / "wn_vs_bn").glob("*.png")} == figures
    assert "wn_vs_bn" in (tmp_path / "README.md").read_text()
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    # tuning: every arm on the tuning seeds; then the chosen rate's arms on 2 verdict + 2 replication seeds
    per_rate = len(WN.arms("smoke")) // len(WN.LRS)
    assert manifest["wn_vs_bn"]["n_trials"] == len(WN.arms("smoke")) * WN.TUNE.seeds["smoke"] + per_rate * 4
    rep = json.loads(verdict)["replication"]
    assert rep["seeds"] == [100, 101] and rep["of"] == len(json.loads(verdict)["parts"])
    assert manifest["wn_vs_bn"]["provenance"]["torch"]


def test_a_run_into_results_with_other_seeds_says_it_rewrote_the_committed_report(tmp_path, capsys, monkeypatch):
    from tests import tinystudy

    monkeypatch.chdir(tmp_path)  # the default folder, results/, is the committed report
    assert cli.main([tinystudy], ["--jobs", "1", "--no-progress", "--seeds", "10-14", "--replicate"]) == 0
    err = capsys.readouterr().err
    note = [line for line in err.splitlines() if line.startswith("note: results/ now reports tiny")]
    assert len(note) == 1 and "seeds 10-14" in note[0] and "--only tiny --replicate" in note[0], err
    assert json.loads((tmp_path / "results/tiny/verdict.json").read_text())["seeds"][:1] == [10]
    # the default seeds with --replicate are the committed report: no note
    assert cli.main([tinystudy], ["--jobs", "1", "--no-progress", "--replicate"]) == 0
    assert "note:" not in capsys.readouterr().err
    # without --replicate, or into a folder of one's own, as the note advises
    assert cli.main([tinystudy], ["--jobs", "1", "--no-progress", "--report-only"]) == 0
    assert "default seeds without replication" in capsys.readouterr().err
    assert cli.main([tinystudy], ["--jobs", "1", "--no-progress", "--seeds", "20-24",
                                  "--results", str(tmp_path / "mine")]) == 0
    assert "note:" not in capsys.readouterr().err
