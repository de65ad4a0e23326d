"""The long budget resumes: a long run (tuning-free tiny study, with its replication block) that is
interrupted, by lost records or by a SIGKILL mid-run, and then run again gives the same records
(finals, curves, status, configs) and the same verdict as one uninterrupted run into another
folder. The long tier is built over several sittings, so this is what makes its records one run's."""

import json
import os
import subprocess
import sys
from pathlib import Path

from oplab import cli
from tests import tinystudy
from tests.conftest import kill_mid_run

ROOT = Path(__file__).resolve().parents[1]
SAME = ("config", "seed", "budget", "study", "version", "key", "status", "diverged_step", "final", "curves", "extra")


def long_args(out: Path) -> list[str]:
    return ["--budget", "long", "--replicate", "--jobs", "1", "--no-progress", "--results", str(out)]


def trials(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "tiny" / "trials").glob("*.json"))}


def assert_same_run(a: Path, b: Path) -> None:
    ra, rb = trials(a), trials(b)
    n = 2 * tinystudy.SEEDS["long"] * len(tinystudy.arms("long"))  # verdict + replication seeds, every arm
    assert len(ra) == n and sorted(ra) == sorted(rb)
    for name, rec in ra.items():
        assert rec["budget"] == "long"
        # bit for bit: JSON floats are written with repr, so equal dicts mean equal numbers
        assert {k: rec[k] for k in SAME} == {k: rb[name][k] for k in SAME}, name
    va, vb = (json.loads((d / "tiny" / "verdict.json").read_text()) for d in (a, b))
    assert va["budget"] == vb["budget"] == "long"
    assert [(p["part"], p["word"], p["effect"], p["ci"]) for p in va["parts"]] == \
        [(p["part"], p["word"], p["effect"], p["ci"]) for p in vb["parts"]]
    assert va["replication"] == vb["replication"]


def test_a_long_run_resumed_after_lost_records_matches_an_uninterrupted_one(tmp_path):
    ref, out = tmp_path / "ref", tmp_path / "resumed"
    assert cli.main([tinystudy], long_args(ref)) == 0
    assert cli.main([tinystudy], long_args(out)) == 0
    # lose part of the second run (as if it stopped there): every other record, and a temp file that a
    # kill during a write leaves behind
    folder = out / "tiny" / "trials"
    lost = sorted(folder.glob("*.json"))[::2]
    kept = {p.name: p.read_bytes() for p in sorted(folder.glob("*.json")) if p not in lost}
    for p in lost:
        p.unlink()
    (folder / "half-written.json.tmp").write_text('{"trunc')
    assert cli.main([tinystudy], long_args(out)) == 0
    assert not list(out.rglob("*.tmp"))
    assert {p.name: p.read_bytes() for p in sorted(folder.glob("*.json")) if p.name in kept} == kept  # untouched
    assert_same_run(ref, out)


def test_a_long_run_killed_mid_run_and_started_again_matches_an_uninterrupted_one(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TINY_EPOCHS": "6"}  # trials long enough to kill one mid-run
    ref, out = tmp_path / "ref", tmp_path / "killed"
    cmd = [sys.executable, "-m", "tests.tinystudy"]
    subprocess.run([*cmd, *long_args(ref)], cwd=ROOT, env=env, check=True, capture_output=True)
    kill_mid_run([*cmd, *long_args(out)], out, env, ROOT, timeout=180)
    n = 2 * tinystudy.SEEDS["long"] * len(tinystudy.arms("long"))
    assert 3 <= len(trials(out)) < n, "the kill must land mid-run"
    assert not (out / "tiny" / "verdict.json").exists()
    subprocess.run([*cmd, *long_args(out)], cwd=ROOT, env=env, check=True, capture_output=True)
    assert_same_run(ref, out)

