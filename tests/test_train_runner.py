import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oplab import plan as planning
from oplab import records, runner
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial, override
from oplab.records import Record
from oplab.store import Store
from oplab.train import Runtime, train
from tests.conftest import tiny_trial
from tests.fresh import run_in_fresh_process

ROOT = Path(__file__).resolve().parents[1]


def test_same_trial_twice_gives_identical_numbers(trial):
    a, b = train(trial, 3), train(trial, 3)
    assert a.curves == b.curves and a.final == b.final
    c = train(trial, 4)
    assert c.curves["eval"]["test_loss"] != a.curves["eval"]["test_loss"]


def test_record_contents(trial):
    rec = train(override(trial, {"optim.ema_decay": 0.9, "monitors": ["curvature"]}), 0)
    assert rec.status == "ok" and rec.final["steps"] == 12  # 2 epochs x 120 / 20
    ev = rec.curves["eval"]
    assert ev["step"] == [0, 6, 12] and ev["epoch"] == [0.0, 1.0, 2.0]
    assert len(ev["test_acc"]) == 3 and len(ev["ema_test_loss"]) == 3
    assert len(rec.curves["log"]["grad_norm"]) == 12 and all(g > 0 for g in rec.curves["log"]["grad_norm"])
    assert rec.curves["monitor"]["step"] == [0, 6, 12] and len(rec.curves["monitor"]["gTHg"]) == 3
    assert rec.final["test_err"] == pytest.approx(1 - rec.final["test_acc"])
    for k in ("python", "torch", "numpy", "device", "git_commit", "date", "torch_threads"):
        assert k in rec.provenance
    assert rec.timings["time_per_step_ms"] > 0 and rec.extra["n_params"] == 784 * 16 + 16 + 16 * 16 + 16 + 16 * 10 + 10


def test_training_losses_are_named_for_what_they_are(trial):
    """train_loss_running: the mean minibatch loss since the previous evaluation (none at step 0);
    train_loss_full: the whole training split, measured independently here."""
    rec = train(trial, 0)
    ev = rec.curves["eval"]
    assert ev["train_loss_running"][0] is None and rec.final["train_loss_running"] == ev["train_loss_running"][-1]
    # the last evaluation interval's running loss is the mean of its logged batch losses
    log = rec.curves["log"]
    tail = [b for s, b in zip(log["step"], log["batch_loss"]) if s > ev["step"][-2]]
    assert rec.final["train_loss_running"] == pytest.approx(sum(tail) / len(tail))
    assert "train_loss" not in rec.final and rec.final["train_loss_full"] > 0


def test_monitors_can_run_once_at_the_start_on_a_probe_batch(trial):
    rec = train(override(trial, {"monitors": ["activations_train"], "monitor_start_only": True}), 0)
    assert rec.curves["monitor"]["step"] == [0]


def test_lsuv_is_measured_on_a_batch_it_was_not_fitted_on():
    """On its own init batch LSUV's output variance is within tol of 1 by construction; the
    monitor's probe batch is another batch, so the two measurements differ."""
    t = tiny_trial(**{"init.name": "lsuv", "init.options": {"tol": 0.1, "tmax": 10},
                      "monitors": ["activations_train"], "monitor_start_only": True})
    rec = train(t, 0)
    fitted = [layer["var"] for layer in rec.extra["init"]["layers"]]
    probed = [rec.curves["monitor"][f"layer{i}_std"][0] ** 2 for i in range(len(fitted))]
    assert all(abs(v - 1) < 0.1 for v in fitted)
    assert max(abs(a - b) for a, b in zip(fitted, probed)) > 1e-3


def test_divergence_is_a_status_not_a_crash(trial):
    rec = train(override(trial, {"optim.lr": 1e6, "optim.momentum": 0.0}), 0)
    assert rec.status == "diverged" and rec.diverged_step is not None and rec.diverged_step <= 12
    assert "test_loss" not in rec.final and rec.final["steps"] == rec.diverged_step - 1


def test_atomic_write_survives_a_crash_mid_write(tmp_path, monkeypatch, trial):
    rec = train(trial, 0)
    path = tmp_path / "r.json"
    records.save(rec, path)
    good = path.read_text()
    changed = Record(**{**rec.__dict__, "seed": 99})

    def crash(src, dst):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        records.save(changed, path)
    assert path.read_text() == good and list(tmp_path.iterdir()) == [path]  # old file intact, no temp left
    monkeypatch.undo()
    assert records.load(path).seed == 0


def spec(arm="a", seed=0, **changes):
    return planning.TrialSpec("teststudy", arm, seed, "smoke", 1, tiny_trial(**changes))


def test_runner_skips_stored_trials_and_recomputes_invalid_ones(tmp_path, monkeypatch):
    # the last spec shares a's config, so it shares a's stored trial
    specs = [spec("a", 0), spec("b", 0, **{"optim.lr": 0.1}), spec("a", 1), spec("same-as-a", 0)]
    recs = runner.run(specs, tmp_path, Runtime(), jobs=1, progress=False)
    assert len(recs) == 3 and len(list((tmp_path / "teststudy" / "trials").glob("*.json"))) == 3

    calls = []
    real = runner.run_spec
    monkeypatch.setattr(runner, "run_spec", lambda s, *a: calls.append(s) or real(s, *a))
    again = runner.run(specs, tmp_path, Runtime(), jobs=1, progress=False)
    assert calls == [] and {k: r.curves for k, r in again.items()} == {k: r.curves for k, r in recs.items()}

    # a truncated record is treated as missing, with a warning, and recomputed
    path = Store(tmp_path, "teststudy").path(specs[1].key)
    path.write_text(path.read_text()[:100])
    with pytest.warns(UserWarning, match="invalid record"):
        fixed = runner.run(specs, tmp_path, Runtime(), jobs=1, progress=False)
    assert [c.arm for c in calls] == ["b"] and fixed[specs[1].key].curves == recs[specs[1].key].curves


def test_jobs_do_not_change_numbers(tmp_path):
    specs = [spec("a", s) for s in range(3)]
    one = run_in_fresh_process(specs, tmp_path / "one", Runtime())  # as `--jobs 1` runs: a fresh process
    two = runner.run(specs, tmp_path / "two", Runtime(), jobs=2, progress=False)
    assert one.keys() == two.keys()
    for k in one:
        assert one[k].curves == two[k].curves and one[k].final == two[k].final


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_interrupted_run_keeps_finished_trials(tmp_path, jobs):
    cmd = [sys.executable, "-m", "studies.wn_vs_bn", "--budget", "smoke", "--jobs", jobs, "--no-progress",
           "--results", str(tmp_path)]
    # a shell that starts a job in the background makes it ignore SIGINT, and children inherit that:
    # the child gets Ctrl-C's default back, as a terminal would give it
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    trials = tmp_path / "wn_vs_bn" / "trials"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(trials.glob("*.json"))) < 2:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "rerun the same command" in err
    kept = list(trials.glob("*.json"))
    assert not list(trials.glob("*.tmp"))
    for f in kept:
        assert json.loads(f.read_text())["status"] in ("ok", "diverged")
    assert not (tmp_path / "wn_vs_bn" / "verdict.json").exists()
    # the same command continues: it trains only what is missing, and finishes
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    total = json.loads((tmp_path / "wn_vs_bn" / "verdict.json").read_text())["n_trials"]
    assert 2 <= len(kept) < total == len(list(trials.glob("*.json")))


def test_threads_are_fixed_per_trial():
    assert runner.THREADS_PER_TRIAL == 1
    assert math.isfinite(train(tiny_trial(), 0, Runtime(threads=1)).final["test_loss"])


def test_dask_executor_returns_records_the_client_writes(tmp_path):
    pytest.importorskip("dask.distributed")
    specs = [spec("a", 0), spec("a", 1)]
    local = runner.run(specs, tmp_path / "local", Runtime(), jobs=1, progress=False)
    remote = runner.run(specs, tmp_path / "dask", Runtime(), executor="dask", progress=False)
    assert {k: r.curves for k, r in remote.items()} == {k: r.curves for k, r in local.items()}
    assert len(list((tmp_path / "dask" / "teststudy" / "trials").glob("*.json"))) == 2


@pytest.mark.parametrize("lr", [0.05, 40.0])
def test_deferred_checks_write_the_record_a_per_update_check_would(monkeypatch, lr):
    """The loop checks losses and gradient norms in groups (train.SYNC_EVERY); checking after every
    update gives the same record, for a trial that trains and for one that diverges mid-group."""
    from oplab import train as trainlib

    trial = Trial(data=DataConfig("mnist5k", n_train=400, n_test=100), model=ModelConfig("mlp", 2, 32),
                  optim=OptimConfig("sgd", lr=lr, momentum=0.9), epochs=3, batch_size=20, eval_every=50,
                  log_every=3)
    grouped = train(trial, 0)
    monkeypatch.setattr(trainlib, "SYNC_EVERY", 1)
    single = train(trial, 0)
    assert grouped.status == single.status and grouped.diverged_step == single.diverged_step
    assert grouped.final == single.final and grouped.curves == single.curves
    if lr > 1:  # the point of the second case: a divergence inside the first group of deferred checks
        # (updates 1-50, checked together at the first evaluation)
        assert grouped.status == "diverged" and 1 < grouped.diverged_step < 50


def test_deterministic_runtime_is_marked_restored_and_changes_nothing_on_the_cpu(trial):
    import torch

    plain = train(trial, 0)
    det = train(trial, 0, Runtime(deterministic=True))
    assert det.extra.get("deterministic") is True and "deterministic" not in plain.extra
    assert det.final == plain.final and det.curves == plain.curves
    assert not torch.are_deterministic_algorithms_enabled()  # the process's setting is given back
