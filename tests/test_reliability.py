"""Reliability: a trial that raises is stored as an error and the rest go on; bad input is one
line with exit 2 and nothing written; unreadable verdicts show in the scorecard; budgets keep to
their own folders; a lock serializes runs on one folder; a killed run loses no finished trial;
a Dask worker that dies does not lose trials."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from filelock import FileLock

from oplab import cli, job, runner
from oplab import plan as planning
from oplab.config import override
from oplab.train import Runtime
from tests import tinystudy
from tests.conftest import kill_mid_run, tiny_trial

ROOT = Path(__file__).resolve().parents[1]


def run_cli(argv, results, study=tinystudy):
    return cli.main([study], ["--budget", "smoke", "--jobs", "1", "--no-progress", "--results", str(results), *argv])


def records(results: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((results / "tiny" / "trials").glob("*.json"))}


def test_a_trial_that_raises_is_an_error_the_others_go_on_and_the_next_run_retries_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TINY_BAD", "1")
    out = tmp_path / "r"
    assert run_cli([], out) == 1
    err = capsys.readouterr().err
    assert "5 trials failed with an error" in err and str(out / "tiny" / "errors.md") in err
    recs = [json.loads(b) for b in records(out).values()]
    assert sorted(r["status"] for r in recs) == ["error"] * 5 + ["ok"] * 5
    bad = next(r for r in recs if r["status"] == "error")
    assert bad["error"]["type"] == "ValueError" and "tmax" in bad["error"]["message"]
    assert "Traceback" in bad["error"]["traceback"]
    page = (out / "tiny" / "README.md").read_text()
    assert "5 failed with an error" in page and "errors.md" in page
    assert "tmax" in (out / "tiny" / "errors.md").read_text()
    v = json.loads((out / "tiny" / "verdict.json").read_text())
    assert v["n_errors"] == 5 and v["parts"][0]["details"]["failed"] == 5  # counted against the arm, not dropped

    monkeypatch.setenv("TINY_BAD", "0")  # fixed: the next run trains the errored trials again, and only those
    calls = []
    real = runner.run_spec
    monkeypatch.setattr(runner, "run_spec", lambda s, *a: calls.append(s.arm) or real(s, *a))
    # arm b without the bad init is another config (another key): the errored records stay, unused
    assert run_cli([], out) == 0
    assert calls == ["b"] * 5 and not (out / "tiny" / "errors.md").exists()


def test_errored_records_are_retried_but_divergences_are_not(tmp_path, monkeypatch):
    ok = planning.TrialSpec("t", "ok", 0, "smoke", 1, tiny_trial())
    div = planning.TrialSpec("t", "div", 0, "smoke", 1, override(tiny_trial(), {"optim.lr": 1e12}))
    real = job._run_spec

    def flaky(s, *a):
        if s.arm == "ok":
            raise RuntimeError("boom")
        return real(s, *a)

    monkeypatch.setattr(job, "_run_spec", flaky)
    recs = runner.run([ok, div], tmp_path, Runtime(), progress=False)
    assert recs[ok.key].status == "error" and recs[ok.key].error["message"] == "boom"
    assert recs[div.key].status == "diverged"
    calls = []
    monkeypatch.setattr(job, "_run_spec", lambda s, *a: calls.append(s.arm) or real(s, *a))
    again = runner.run([ok, div], tmp_path, Runtime(), progress=False)
    assert calls == ["ok"] and again[ok.key].status == "ok" and again[div.key].status == "diverged"


@pytest.mark.parametrize("argv,expect", [
    (["--only", ""], "unknown study (none)"),
    (["--seeds", "5000"], "at most 1000"),
    (["--seeds", "0-5000"], "at most 1000 seeds"),
    (["--seeds", "99999999999"], "too many"),
    (["--executor", "dask", "--scheduler", "tcp://127.0.0.1:9"], "cannot reach the Dask scheduler"),
])
def test_more_bad_input_is_one_line_exit_2_nothing_written(argv, expect, tmp_path, capsys):
    out = tmp_path / "r"
    assert run_cli(argv, out) == 2
    err = capsys.readouterr().err
    assert expect in err and err.count("\n") == 1 and not out.exists()


def test_results_that_is_a_file_or_holds_another_budget(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert run_cli([], f) == 2 and "is a file" in capsys.readouterr().err
    out = tmp_path / "r"
    (out / "wn").mkdir(parents=True)
    (out / "wn" / "verdict.json").write_text(json.dumps({"budget": "quick"}))
    assert run_cli([], out) == 2
    err = capsys.readouterr().err
    assert "holds the quick report" in err and "results/smoke" in err and not (out / "tiny").exists()


def test_dask_without_dask_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)
    assert run_cli(["--executor", "dask"], tmp_path / "r") == 2
    assert "pip install 'oplab[cluster]'" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_an_arm_with_a_typo_is_refused_before_training(tmp_path, capsys, monkeypatch):
    real = tinystudy.arms

    def arms(budget):
        a = real(budget)
        a["b"] = type(a["b"])(override(a["b"].trial, {"model.activation": "rellu"}), a["b"].factors)
        return a

    monkeypatch.setattr(tinystudy, "arms", arms)
    assert run_cli([], tmp_path / "r") == 2
    err = capsys.readouterr().err
    assert "bad arm: tiny: arm 'b': unknown activation 'rellu'; valid:" in err and not (tmp_path / "r").exists()


def test_negative_counts_are_refused_by_the_config():
    for change in ({"steps": -1}, {"eval_every": -5}, {"monitor_every": -1}, {"data.n_train": -3}):
        with pytest.raises(ValueError, match="must be >= 0"):
            override(tiny_trial(), change)


def test_an_unreadable_verdict_is_shown_in_the_scorecard(tmp_path):
    out = tmp_path / "r"
    assert run_cli([], out) == 0
    (out / "tiny" / "verdict.json").write_text('{"study": "tiny", "trunc')
    from oplab import report

    index = report.write_index(out).read_text()
    assert "| tiny |" in index and "unreadable verdict.json" in index


def _cmd(out: Path, *extra) -> list[str]:
    return [sys.executable, "-m", "tests.tinystudy", "--budget", "smoke", "--jobs", "1", "--results", str(out),
            *extra]


def test_a_second_run_on_the_same_folder_waits_for_the_lock(tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    lock = FileLock(str(out / cli.LOCK_NAME))
    lock.acquire()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [subprocess.Popen(_cmd(out), cwd=ROOT, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             text=True) for _ in range(2)]
    errs = [[] for _ in runs]
    readers = [threading.Thread(target=lambda r=r, e=e: e.extend(r.stderr), daemon=True) for r, e in zip(runs, errs)]
    for t in readers:
        t.start()
    deadline = time.time() + 180  # both start, check their input, and say that they wait for the lock
    while not all(any("another run is using" in line for line in e) for e in errs):
        assert time.time() < deadline and all(r.poll() is None for r in runs), errs
        time.sleep(0.1)
    time.sleep(1)
    assert not list(out.glob("tiny/trials/*.json")), "nothing trains while another run holds the lock"
    lock.release()
    assert [r.wait(timeout=240) for r in runs] == [0, 0]
    for t in readers:
        t.join(timeout=30)
    errs = ["".join(e) for e in errs]
    # exactly one of the two trained (its progress bar counts the trials); the other found them stored
    assert sum("trials: 100%" in e or "10/10" in e for e in errs) == 1, errs
    assert len(records(out)) == 10


def test_a_killed_run_keeps_every_finished_trial_and_ends_with_the_same_verdict(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TINY_EPOCHS": "6"}
    ref, out = tmp_path / "ref", tmp_path / "killed"
    subprocess.run(_cmd(ref, "--no-progress"), cwd=ROOT, env=env, check=True, capture_output=True)
    kill_mid_run(_cmd(out, "--no-progress"), out, env, ROOT, timeout=120)
    kept = records(out)
    assert 3 <= len(kept) < 10
    assert all(json.loads(data)["status"] == "ok" for data in kept.values())  # every record whole, none half-written
    # a kill during a record's write can leave its temp file (never a .json); the next run removes it
    subprocess.run(_cmd(out, "--no-progress"), cwd=ROOT, env=env, check=True, capture_output=True)
    assert not list(out.rglob("*.tmp"))
    after = records(out)
    assert {k: after[k] for k in kept} == kept  # finished trials untouched, byte for byte
    strip = ("timings", "provenance")
    for name, data in records(ref).items():
        a, b = json.loads(data), json.loads(after[name])
        assert {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}
    va, vb = (json.loads((d / "tiny" / "verdict.json").read_text()) for d in (ref, out))
    assert va["word"] == vb["word"] and va["parts"][0]["effect"] == vb["parts"][0]["effect"]


def test_temp_files_of_writes_cut_short_are_removed_by_the_next_run_and_never_read(tmp_path):
    out = tmp_path / "r"
    assert run_cli([], out) == 0
    trials = out / "tiny" / "trials"
    before = records(out)
    left = [trials / (next(iter(before)) + "k3j9.tmp"), out / "tiny" / "README.mdx1.tmp", out / "README.mdq.tmp"]
    for p in left:
        p.write_bytes(b'{"half": ')  # what a write killed midway leaves
    assert run_cli([], out) == 0
    assert not any(p.exists() for p in left)
    assert records(out) == before  # the stored records untouched, nothing retrained or added


def test_a_dask_worker_killed_mid_trial_loses_no_trial(tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    specs = [planning.TrialSpec("t", "a", s, "smoke", 1, override(tiny_trial(), {"epochs": 15})) for s in range(6)]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        import threading

        result = {}
        t = threading.Thread(daemon=True, target=lambda: result.update(
            runner.run(specs, tmp_path, Runtime(device="cpu"), executor="dask", scheduler=cluster.scheduler_address,
                       progress=False)))
        t.start()
        with Client(cluster.scheduler_address) as client:
            deadline = time.time() + 60
            while not client.processing() or not any(client.processing().values()):
                assert time.time() < deadline
                time.sleep(0.05)
            busy = next(w for w, tasks in client.processing().items() if tasks)
            pid = client.run(os.getpid, workers=[busy])[busy]
            os.kill(pid, signal.SIGKILL)  # the nanny restarts it; the scheduler reschedules its task
        t.join(timeout=240)
    assert not t.is_alive()
    assert len(result) == 6 and all(r.status == "ok" for r in result.values())
    assert len(list((tmp_path / "t" / "trials").glob("*.json"))) == 6


def test_records_from_another_environment_are_flagged_and_recomputed_on_request(tmp_path, monkeypatch):
    out = tmp_path / "r"
    assert run_cli([], out) == 0
    path = sorted((out / "tiny" / "trials").glob("*.json"))[0]
    rec = json.loads(path.read_text())
    rec["provenance"]["torch"] = "0.0.1"
    path.write_text(json.dumps(rec))
    assert run_cli(["--report-only"], out) == 0
    page = (out / "tiny" / "README.md").read_text()
    assert "1 of 10 records come from another environment (torch 0.0.1 ->" in page and "--recompute-stale" in page
    calls = []
    real = runner.run_spec
    monkeypatch.setattr(runner, "run_spec", lambda s, *a: calls.append(s.key) or real(s, *a))
    assert run_cli([], out) == 0 and calls == []  # without the flag a stale record is reported, not retrained
    assert run_cli(["--recompute-stale"], out) == 0 and calls == [rec["key"]]
    assert json.loads(path.read_text())["provenance"]["torch"] != "0.0.1"
    assert "another environment" not in (out / "tiny" / "README.md").read_text()


def test_a_page_built_from_the_same_inputs_is_kept_and_a_changed_input_rebuilds_it(tmp_path):
    """A cached rerun does not redraw a study's page whose records, seeds and code are unchanged
    (verdict.json's `inputs`); a retrained record, a missing figure or other seeds rebuild it."""
    out = tmp_path / "r"
    assert run_cli([], out) == 0
    page = out / "tiny"
    first = {f.name: f.stat().st_mtime_ns for f in page.iterdir() if f.is_file()}
    assert run_cli([], out) == 0
    assert {f.name: f.stat().st_mtime_ns for f in page.iterdir() if f.is_file()} == first  # nothing rewritten
    (page / "error.png").unlink()
    assert run_cli([], out) == 0
    assert (page / "error.png").is_file() and (page / "README.md").stat().st_mtime_ns != first["README.md"]
    inputs = json.loads((page / "verdict.json").read_text())["inputs"]
    rec_file = sorted((page / "trials").glob("*.json"))[0]
    rec = json.loads(rec_file.read_text())
    rec["timings"]["wall_s"] += 1.0  # as if the trial had been trained again
    rec_file.write_text(json.dumps(rec))
    assert run_cli([], out) == 0
    assert json.loads((page / "verdict.json").read_text())["inputs"] != inputs
