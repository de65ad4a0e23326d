import json
import subprocess
import sys
from pathlib import Path

import pytest

from oplab import cli, runner
from studies import all_studies, get

ROOT = Path(__file__).resolve().parents[1]
WN = get("wn_vs_bn")


@pytest.mark.parametrize("argv,expect", [
    (["--budget", "huge"], "invalid choice: huge (choose from smoke, quick, long, full)"),
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
        assert res.returncode == 0 and "--budget {smoke,quick,long,full}" in res.stdout
        assert "--report-only" in res.stdout


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


def _verdict(results: Path) -> dict:
    return json.loads((results / "tiny" / "verdict.json").read_text())


def test_a_run_into_the_default_folder_that_would_not_reproduce_the_committed_report_gets_its_own(
        tmp_path, capsys, monkeypatch):
    """The committed report in results/ is each study's default seeds with --replicate; a run at the
    default folder with other seeds, or without --replicate, writes to results/runs/<name>/ instead
    (starting from the records stored in results/), and says so in one line."""
    from tests import tinystudy

    monkeypatch.chdir(tmp_path)  # results/ here is "the committed report"
    quick = ["--jobs", "1", "--no-progress"]
    assert cli.main([tinystudy], [*quick, "--replicate"]) == 0  # the committed report's own command
    committed = {p.relative_to("results").as_posix(): p.read_bytes() for p in Path("results").rglob("*")
                 if p.is_file() and p.name != cli.LOCK_NAME}
    assert "note:" not in capsys.readouterr().err

    calls = []
    real = runner.run_spec
    monkeypatch.setattr(runner, "run_spec", lambda s, *a: calls.append(s.seed) or real(s, *a))
    assert cli.main([tinystudy], [*quick, "--seeds", "10-14", "--replicate"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    own = Path("results/runs/seeds-10-14")
    assert err == [f"python -m studies.tiny: note: with seeds 10-14 this run is not the committed report in results/, "
                   f"so it writes to {own}/ (starting from the records stored in results/); `--results results` "
                   "would rewrite the committed pages"]
    assert _verdict(own)["seeds"] == [10, 11, 12, 13, 14] and sorted(set(calls)) == [*range(10, 15), *range(110, 115)]

    calls.clear()  # without --replicate: its own folder, from the records already stored (nothing to train)
    assert cli.main([tinystudy], quick) == 0
    assert "writes to results/runs/no-replication/" in capsys.readouterr().err
    assert calls == [] and _verdict(Path("results/runs/no-replication"))["replication"] is None
    assert cli.main([tinystudy], [*quick, "--report-only", "--seeds", "0-1"]) == 0  # from results/' records
    assert "writes to results/runs/seeds-0-1-no-replication/" in capsys.readouterr().err and calls == []
    assert {p.relative_to("results").as_posix(): p.read_bytes() for p in Path("results").rglob("*")
            if p.is_file() and p.name != cli.LOCK_NAME and "runs" not in p.parts} == committed

    # a folder named on the command line is the user's choice, results/ included
    assert cli.main([tinystudy], [*quick, "--report-only", "--results", "results"]) == 0
    assert "note:" not in capsys.readouterr().err and _verdict(Path("results"))["replication"] is None
    assert "results/runs/" in (ROOT / ".gitignore").read_text().splitlines()
