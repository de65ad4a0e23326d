"""Reliability, round two (issue 24): a damaged, NaN or edited record never changes a verdict
silently; written files keep the umask's mode; the remaining bad inputs are one line with exit 2;
the checks that protect a run's output (read-only folders, an empty --report-only, the committed
report) come before any training; with Dask, staleness compares records with the workers'
environment."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from oplab import cli, pipeline, records, runner, staleness
from oplab import plan as planning
from tests import tinystudy

ROOT = Path(__file__).resolve().parents[1]


def run_cli(argv, results, study=tinystudy):
    return cli.main([study], ["--budget", "smoke", "--jobs", "1", "--no-progress", "--results", str(results), *argv])


def trials(results: Path) -> list[Path]:
    return sorted((results / "tiny" / "trials").glob("*.json"))


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> Path:
    """A results folder with the tiny study trained at the smoke budget (copied by the tests that change it)."""
    out = tmp_path_factory.mktemp("stored") / "r"
    assert run_cli([], out) == 0
    return out


@pytest.fixture
def copy(stored, tmp_path) -> Path:
    out = tmp_path / "r"
    shutil.copytree(stored, out)
    (out / cli.LOCK_NAME).unlink(missing_ok=True)
    return out


def verdict(results: Path) -> dict:
    return json.loads((results / "tiny" / "verdict.json").read_text())


# --- a record with NaN where finite numbers are required --------------------------------------


def test_an_ok_record_with_nan_in_its_finals_is_invalid_and_report_only_names_it(copy, capsys, monkeypatch):
    path = trials(copy)[0]
    rec = json.loads(path.read_text())
    assert rec["status"] == "ok"
    rec["final"]["test_err"] = float("nan")
    path.write_text(json.dumps(rec))  # json writes NaN, and reads it back
    calls = []
    monkeypatch.setattr(runner, "run_spec", lambda *a: calls.append(a))
    assert run_cli(["--report-only"], copy) == 1
    captured = capsys.readouterr()
    err = lines(captured.err)
    assert err == [f"python -m studies.tiny: 1 records unreadable in {copy / 'tiny' / 'trials'}: {path.name}; "
                   "rerun without --report-only to retrain them"], err
    assert "recomputed" not in captured.err and "UserWarning" not in captured.err and calls == []


def test_a_training_run_says_in_one_line_that_it_trains_a_nan_record_again(copy, capsys):
    path = trials(copy)[0]
    before = json.loads(path.read_text())
    rec = json.loads(path.read_text())
    rec["final"]["test_loss"] = float("inf")
    path.write_text(json.dumps(rec))
    assert run_cli([], copy) == 0
    err = capsys.readouterr().err
    warned = [line for line in lines(err) if "invalid record" in line]
    assert warned == [f"python -m studies.tiny: warning: ignoring invalid record {path} (status 'ok' with non-finite "
                      f"final test_loss=inf); its trial is trained again"], err
    assert "UserWarning" not in err and "warnings.warn" not in err
    after = json.loads(path.read_text())
    assert after["final"] == before["final"]  # trained again: the same numbers on the same machine


def test_nan_rules(tmp_path):
    base = json.loads(records.Record(config={}, seed=0, status="ok", curves={}, final={"test_err": 0.1, "steps": 3,
                                                                                        "steps_to_target": None},
                                     timings={"time_per_step_ms": math.nan}, provenance={}, key="k").to_json())
    path = tmp_path / "r.json"
    path.write_text(json.dumps(base))
    assert records.load(path, "k") is not None  # None finals (a target never reached), NaN timings: valid
    for status, ok in (("ok", False), ("diverged", True)):  # a divergence's finals may be anything numeric
        path.write_text(json.dumps({**base, "status": status, "final": {"test_loss": math.nan}}))
        found = []
        assert (records.load(path, "k", on_invalid=lambda p, why, found=found: found.append(why)) is not None) == ok
        assert found == ([] if ok else ["status 'ok' with non-finite final test_loss=nan"])


# --- an edited record rebuilds its page ------------------------------------------------------


def test_a_record_edited_in_place_rebuilds_the_page(copy):
    before = verdict(copy)
    path = next(p for p in trials(copy) if json.loads(p.read_text())["final"]["test_err"] < 0.99)
    rec = json.loads(path.read_text())
    rec["final"]["test_err"] = 0.999  # the same key, status, date and wall time: only the number changed
    path.write_text(json.dumps(rec, indent=1, sort_keys=True))
    assert run_cli(["--report-only"], copy) == 0
    after = verdict(copy)
    assert after["inputs"] != before["inputs"] and after["parts"][0]["effect"] != before["parts"][0]["effect"]


def test_the_record_digest_is_the_files_and_what_save_writes(tmp_path):
    rec = records.Record(config={"a": 1}, seed=0, status="ok", curves={}, final={}, timings={}, provenance={}, key="k")
    fresh = records.digest(rec)
    records.save(rec, tmp_path / "k.json")
    assert records.digest(records.load(tmp_path / "k.json")) == fresh == records.digest(rec)


# --- file modes ------------------------------------------------------------------------------


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize("mask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_get_the_mode_of_the_umask(mask, mode, umask, tmp_path):
    umask(mask)
    assert records.umask() == mask
    records.atomic_write(tmp_path / "f.txt", b"x")
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == mode


def test_every_file_a_run_writes_is_0644_under_umask_022(umask, tmp_path):
    umask(0o022)
    out = tmp_path / "r"
    assert run_cli([], out) == 0
    files = [p for p in out.rglob("*") if p.is_file() and p.name != cli.LOCK_NAME]
    assert {"README.md", "manifest.json", "verdict.json", "error.png"} <= {p.name for p in files}
    assert len(trials(out)) == 10
    assert {p.relative_to(out).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
            if stat.S_IMODE(p.stat().st_mode) != 0o644} == {}


# --- bad input: one line, exit 2, nothing written --------------------------------------------


@pytest.mark.parametrize("argv,expect", [
    (["--results", ""], "argument --results: empty"),
    (["--seed", "3"], "unrecognized arguments: --seed 3 (did you mean --seeds?)"),
    (["--rep"], "did you mean --replicate or --report-only?"),
    (["--seed=3", "--jbos", "2"], "did you mean --seeds for --seed; --jobs for --jbos?"),
    (["--report-only", "--estimate"], "argument --estimate: not with --report-only"),
    (["--seeds", "3-1"], "'3-1' is a reversed range; write it low to high: 1-3"),
])
def test_bad_input_round_two(argv, expect, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default folder would be tmp_path/results
    code = cli.main([tinystudy], ["--budget", "smoke", "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and expect in err and len(lines(err)) == 1, err
    assert list(tmp_path.iterdir()) == []  # nothing written, no fall-back to the default folder


def test_results_under_a_file_is_one_line(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert run_cli([], f / "sub") == 2
    err = capsys.readouterr().err
    assert f"argument --results: {f} is a file; give a folder" in err and len(lines(err)) == 1
    assert f.read_text() == "x"


def test_seed_ranges():
    assert cli.parse_seeds("1-3") == [1, 2, 3] and cli.parse_seeds("4-4") == [4]
    with pytest.raises(cli.UsageError, match="reversed range"):
        cli.parse_seeds("14-10")


def test_only_with_a_study_twice_runs_it_once(tmp_path, capsys):
    out = tmp_path / "r"
    assert run_cli(["--only", "tiny,tiny, tiny"], out) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("tiny ")]
    assert len(printed) == 1 and verdict(out)["n_trials"] == 10


def test_jobs_beyond_the_cores_are_capped_with_a_note(tmp_path, capsys, monkeypatch):
    seen = []
    real = runner.run
    monkeypatch.setattr(runner, "run", lambda *a, **k: seen.append(k["jobs"]) or real(*a, **{**k, "jobs": 1}))
    cores = runner.default_jobs()
    assert run_cli(["--jobs", str(cores + 998)], tmp_path / "r") == 0
    note = [line for line in capsys.readouterr().err.splitlines() if "--jobs" in line]
    assert note == [f"python -m studies.tiny: note: --jobs {cores + 998} is more than the {cores} cores here; "
                    f"running {cores} workers (more would only share the cores and run slower)"]
    assert seen == [cores]


# --- folders that cannot be written: refused before training ---------------------------------


def test_a_read_only_trials_folder_is_refused_before_training(copy, capsys, monkeypatch):
    """The check itself (root may write anywhere, so os.access is made to say no for trials/)."""
    trials_dir = copy / "tiny" / "trials"
    real = os.access
    monkeypatch.setattr(cli.os, "access", lambda p, mode: Path(p) != trials_dir and real(p, mode))
    monkeypatch.setattr(runner, "run_spec", lambda *a: pytest.fail("trained"))
    trials(copy)[0].unlink()  # a trial to train
    assert run_cli([], copy) == 2
    err = capsys.readouterr().err
    assert f"argument --results: {trials_dir} is not writable, and the run writes its records there" in err
    assert len(lines(err)) == 1
    assert run_cli(["--report-only"], copy) == 0  # a report-only run writes no record there


def _as_nobody(tmp_path: Path) -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root, to run a command as the unprivileged user nobody")
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    cmd = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--"]
    probe = subprocess.run([*cmd, "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot switch to nobody here: {probe.stderr.decode().strip()}")
    # the checkout must be readable by nobody (a clone inside a private 0700 folder, e.g. mktemp -d, is not)
    reach = subprocess.run([*cmd, sys.executable, "-c", "import tests.tinystudy"], cwd=ROOT, capture_output=True,
                           env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"})
    if reach.returncode != 0:
        pytest.skip(f"the user nobody cannot read this checkout ({ROOT}): it sits in a private folder")
    return cmd


def test_a_read_only_trials_folder_as_an_unprivileged_user(tmp_path):
    """As the user nobody: a results folder nobody may write, holding a trials/ folder it may not."""
    cmd = _as_nobody(tmp_path)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"oplab-nobody-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    try:
        (work / "r" / "tiny" / "trials").mkdir(parents=True)  # root's, 0755: not nobody's to write
        for d in (work, work / "r", work / "r" / "tiny"):
            d.chmod(0o777)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(work), "MPLCONFIGDIR": str(work / "mpl"),
               "PYTHONDONTWRITEBYTECODE": "1"}
        res = subprocess.run([*cmd, sys.executable, "-m", "tests.tinystudy", "--budget", "smoke", "--jobs", "1",
                              "--no-progress", "--results", str(work / "r")], cwd=ROOT, env=env, capture_output=True,
                             text=True, timeout=300)
        assert res.returncode == 2, res.stderr
        assert f"{work / 'r' / 'tiny' / 'trials'} is not writable" in res.stderr and len(lines(res.stderr)) == 1
        assert list((work / "r" / "tiny" / "trials").iterdir()) == [] and not (work / "r" / "tiny" / "weights").exists()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- --report-only on an empty or missing folder leaves nothing behind --------------------------


def test_report_only_on_an_empty_or_missing_folder_leaves_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    for out in (empty, tmp_path / "missing"):
        assert run_cli(["--report-only"], out) == 2
        err = capsys.readouterr().err
        assert f"no stored records under {out} for tiny; run without --report-only first" in err
        assert len(lines(err)) == 1
    assert list(empty.iterdir()) == [] and not (tmp_path / "missing").exists()


# --- the damaged records of a report-only run -------------------------------------------------


def test_unreadable_records_lists_the_damaged_files_per_study(copy):
    files = trials(copy)
    files[1].write_text(files[1].read_text()[:50])
    plan = planning.plan(tinystudy, "smoke", planning.default_seeds(tinystudy, "smoke"))
    assert pipeline.unreadable_records(copy, plan.trials) == {"tiny": [files[1].name]}


def test_every_record_unreadable_is_still_named(copy, capsys):
    for p in trials(copy):
        p.write_text("{")
    assert run_cli(["--report-only"], copy) == 1
    err = lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("python -m studies.tiny: 10 records unreadable in ")
    assert all(p.name in err[0] for p in trials(copy))


def _corrupt(path: Path, kind: str, rng: random.Random) -> None:
    text = path.read_text()
    d = json.loads(text)
    if kind == "truncate":
        path.write_text(text[:rng.randrange(1, len(text) - 1)])
        return
    if kind == "duplicated key":
        name = rng.choice(["seed", "status", "final", "key"])
        path.write_text("{" + f'"{name}": {json.dumps(d[name] if rng.random() < 0.5 else 7)}, ' + text.lstrip()[1:])
        return
    if kind == "wrong type":
        name, value = rng.choice([("seed", "0"), ("status", 1), ("final", []), ("curves", {"eval": 3}),
                                  ("timings", {"wall_s": "slow"}), ("final", {"test_err": "0.1"}), ("key", None),
                                  ("provenance", "cpu")])
        d[name] = value
    elif kind == "nan":
        d["final"][rng.choice(sorted(k for k, v in d["final"].items() if isinstance(v, float)))] = rng.choice(
            [math.nan, math.inf, -math.inf])
    elif kind == "missing field":
        del d[rng.choice(["config", "seed", "status", "curves", "final", "timings", "provenance"])]
    else:
        raise ValueError(kind)
    path.write_text(json.dumps(d))


KINDS = ("truncate", "wrong type", "nan", "missing field", "duplicated key")


@pytest.mark.parametrize("round_", range(8))
def test_fuzz_damaged_records_never_change_a_verdict_silently(round_, stored, tmp_path, capsys):
    """Random records of a stored study damaged at random (truncated, a field of the wrong type, NaN,
    a field missing, a key given twice): --report-only names every damaged file in one line and
    exits 1, no traceback reaches the user, and a training run trains them again to the same verdict."""
    rng = random.Random(round_)
    out = tmp_path / "r"
    shutil.copytree(stored, out)
    before = verdict(out)
    files = trials(out)
    damaged = rng.sample(files, rng.randint(1, 3))
    for path in damaged:
        _corrupt(path, KINDS[round_ % len(KINDS)] if path is damaged[0] else rng.choice(KINDS), rng)
    code = run_cli(["--report-only"], out)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    err = lines(captured.err)
    names = sorted(p.name for p in damaged)
    assert code == 1 and err == [f"python -m studies.tiny: {len(names)} records unreadable in "
                                 f"{out / 'tiny' / 'trials'}: {', '.join(names)}; rerun without --report-only to "
                                 "retrain them"], err
    after = verdict(out)  # the page: the word it had, or none ("incomplete"), never one from partial data
    assert after["word"] == before["word"] or after["word"].startswith("incomplete"), after["word"]
    if round_ % 4 == 0:  # a training run replaces them: the same trials, the same verdict
        assert run_cli([], out) == 0
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err and len(
            [line for line in lines(captured.err) if "ignoring invalid record" in line]) == len(damaged)
        after = verdict(out)
        assert after["word"] == before["word"] and after["parts"][0]["effect"] == before["parts"][0]["effect"]


# --- with Dask, staleness compares with the workers' environment ------------------------------


def test_staleness_against_several_environments():
    base = staleness.worker_environment("cpu", 1)
    gpu = {**base, "device": "NVIDIA H200", "torch": "9.9.9"}
    rec = {**gpu, "date": "2026-01-01"}
    assert staleness.differences(rec, base, code=False) == {"torch": ("9.9.9", base["torch"]),
                                                            "device": ("NVIDIA H200", base["device"])}
    assert staleness.differences(rec, [base, gpu], code=False) == {}  # it matches one of the workers
    assert not staleness.is_stale(rec, [gpu, base]) and staleness.is_stale(rec, [base])
    assert staleness.stale_line([rec], [base, {**base, "torch": "9.9.9"}]) == \
        f"1 of 1 records come from another environment (device NVIDIA H200 -> {base['device']}: 1)"


def test_with_dask_the_page_compares_records_with_the_workers_environment(copy, monkeypatch):
    worker = {**staleness.worker_environment("cpu", 1), "torch": "9.9.9-worker"}
    asked = []
    monkeypatch.setattr(runner, "check_scheduler", lambda address: None)
    monkeypatch.setattr(staleness, "worker_environments",
                        lambda scheduler, device, threads: asked.append((scheduler, device, threads)) or [worker])
    assert "another environment" not in (copy / "tiny" / "README.md").read_text()
    assert run_cli(["--report-only", "--executor", "dask", "--scheduler", "tcp://cluster:8786"], copy) == 0
    assert asked == [("tcp://cluster:8786", "auto", 1)]  # the workers resolve "auto" themselves
    page = (copy / "tiny" / "README.md").read_text()
    assert "10 of 10 records come from another environment (torch" in page and "-> 9.9.9-worker: 10)" in page


def test_worker_environments_are_asked_of_the_workers(tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        envs = staleness.worker_environments(cluster.scheduler_address, "auto", 1)
    here = staleness.worker_environment("auto", 1)
    assert len(envs) == 1 and staleness.differences(envs[0], here) == {}
    assert envs[0]["cpu"] == here["cpu"] and envs[0]["torch"] == here["torch"]


def test_seeds_slugs():
    assert cli.seeds_slug([10, 11, 12, 13, 14]) == "10-14" and cli.seeds_slug([3, 1, 9]) == "3_1_9"
    assert cli.seeds_slug([0]) == "0" and cli.seeds_slug(list(range(0, 40, 2))).startswith("0-38-20seeds-")


def test_temp_files_of_a_results_folder_inside_another_are_left_to_it(tmp_path):
    """results/runs/<run>/ and results/smoke/ are other runs' folders: a run in results/ leaves their temp
    files (maybe being written now) alone."""
    inner = tmp_path / "runs" / "x"
    (inner / "tiny").mkdir(parents=True)
    (inner / records.LOCK_NAME).touch()
    theirs = inner / "tiny" / "README.mdab.tmp"
    mine = tmp_path / "README.mdcd.tmp"
    for p in (theirs, mine, inner / "README.mdef.tmp"):
        p.write_text("x")
    assert records.remove_partial_writes(tmp_path) == 1 and theirs.exists() and not mine.exists()
