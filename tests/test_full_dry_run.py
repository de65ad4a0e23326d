"""Every arm of every study's `full` budget builds and trains for a couple of updates, on fake
data of the real shapes (no download), so that a run on a rented GPU does not discover a crash
at hour one. The configs are the full budget's own, with updates, evaluation sizes and stage
lengths cut to a minimum; models, widths, depths, batch sizes, initializers, normalizers,
optimizers and monitors are untouched."""

import dataclasses
import os

import pytest
import torch

from oplab import data, runner
from oplab.dataset import Dataset
from oplab.train import Runtime, train_model
from studies import all_studies

SHAPES = {"cifar10": ((3, 32, 32), 10), "mnist": ((1, 28, 28), 10), "fashion_mnist": ((1, 28, 28), 10)}
real_load = data._load_full.__wrapped__


def fake_load(name, options, data_dir, download):
    if name not in SHAPES:
        return real_load(name, options, data_dir, download)
    shape, classes = SHAPES[name]
    g = torch.Generator().manual_seed(0)
    n_train, n_test = 256, 64
    return Dataset(f"fake {name}", torch.randn(n_train, *shape, generator=g),
                   torch.randint(0, classes, (n_train,), generator=g), torch.randn(n_test, *shape, generator=g),
                   torch.randint(0, classes, (n_test,), generator=g), "classification", classes)


def shrink(trial):
    """The same trial with two updates and minimal evaluation; a stage before the loop cut to one
    update (hints) or one epoch (greedy pre-training)."""
    d = trial.data
    if d.name in SHAPES:
        d = dataclasses.replace(d, n_train=0, n_test=0)
    else:
        opts = d.opts
        if "n_val" in opts:
            d = dataclasses.replace(d, n_test=20, options={**opts, "n_val": 10, "check_every": 1})
    init = trial.init
    if "epochs" in init.opts:
        init = dataclasses.replace(init, options={**init.opts, "epochs": 1})
    dist = trial.distill
    if dist.hint_steps:
        dist = dataclasses.replace(dist, hint_steps=1)
    teacher = shrink(trial.teacher) if trial.teacher is not None else None
    return dataclasses.replace(trial, data=d, init=init, distill=dist, teacher=teacher, steps=2, epochs=1,
                               eval_every=1, monitor_every=1 if trial.monitors else 0)


ARMS = [(s, name, arm) for s in all_studies() for name, arm in runner.arms_of(s, "full").items()]


# the full budget's models are paper-sized (a 16M-parameter convnet among them): on a 2-core CPU the
# whole dry run takes about 15 minutes, so it runs on request (`make dry-run`), not in `make test`
@pytest.mark.skipif(os.environ.get("OPLAB_FULL_DRY_RUN") != "1", reason="run with `make dry-run`")
@pytest.mark.parametrize("study,name,arm", ARMS, ids=[f"{s.NAME}:{n}" for s, n, _ in ARMS])
def test_full_budget_arm_trains(study, name, arm, monkeypatch):
    monkeypatch.setattr(data, "_load_full", fake_load)
    trial = shrink(arm.trial)
    runner.check_trial(trial)
    state = None
    if trial.teacher is not None:
        rec_t, model_t = train_model(trial.teacher, 0, Runtime())
        assert rec_t.status == "ok", rec_t.error
        state = model_t.state_dict()
    rec, _ = train_model(trial, 0, Runtime(), state)
    assert rec.status in ("ok", "diverged"), rec.error
    assert rec.final["steps"] >= 1 or rec.status == "diverged"
