"""Every arm of every study's `full` budget builds and trains for a couple of updates, on fake
data of the real shapes (no download), so that a run on a rented GPU does not discover a crash
at hour one. The configs are the full budget's own, with updates, evaluation sizes and stage
lengths cut to a minimum; models, widths, depths, batch sizes, initializers, normalizers,
optimizers and monitors are untouched."""

import dataclasses
import hashlib
import inspect
import os

import pytest
import torch

from oplab import data, tasks
from oplab import plan as planning
from oplab.dataset import Dataset
from oplab.train import Runtime, train_model
from studies import all_studies

FULL_BATCHES = os.environ.get("OPLAB_FULL_DRY_RUN") == "1"
SMALL_BATCH = 8  # enough for batch norm's statistics
SHAPES = {"cifar10": ((3, 32, 32), 10), "mnist": ((1, 28, 28), 10), "fashion_mnist": ((1, 28, 28), 10)}
real_load = data._load_full.__wrapped__


def fake_load(name, options, data_dir, download):
    if name not in SHAPES:
        return real_load(name, options, data_dir, download)
    shape, classes = SHAPES[name]
    g = torch.Generator().manual_seed(0)
    n_train, n_test = (256, 64) if FULL_BATCHES else (32, 16)
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
        elif not FULL_BATCHES and d.name not in tasks.STREAMS and {"n_train", "n_test"} <= set(
                inspect.signature(data.DATASETS[d.name]).parameters):  # a generated set: its shapes, fewer examples
            d = dataclasses.replace(d, n_train=0, n_test=0, options={**opts, "n_train": 32, "n_test": 16})
    init = trial.init
    if "epochs" in init.opts:
        init = dataclasses.replace(init, options={**init.opts, "epochs": 1})
    dist = trial.distill
    if dist.hint_steps:
        dist = dataclasses.replace(dist, hint_steps=1)
    teacher = shrink(trial.teacher) if trial.teacher is not None else None
    batch = trial.batch_size if FULL_BATCHES else min(trial.batch_size, SMALL_BATCH)
    growth = {"batch_every": 0.5} if trial.grows_batch else {}  # a grown batch within the two updates
    # scarce labels off: the fake split lacks some classes for a stratified draw (tests/test_labels.py covers it)
    scarce = {"labeled": 0, "val_labeled": 0}
    return dataclasses.replace(trial, data=d, init=init, distill=dist, teacher=teacher, batch_size=batch,
                               steps=0 if trial.grows_batch else 2, epochs=1, eval_every=1,
                               monitor_every=1 if trial.monitors else 0, **growth, **scarce)


def code_path(trial) -> str:
    """The shrunk trial with its optimizer's numbers at one value: arms equal under it run the same code."""
    optim = dataclasses.replace(trial.optim, lr=0.01, momentum=0.9 if trial.optim.momentum else 0.0,
                                weight_decay=0.0, clip_threshold=1.0, ema_decay=0.5 if trial.optim.ema_decay else 0.0)
    teacher = code_path(trial.teacher) if trial.teacher is not None else ""
    return repr(dataclasses.replace(trial, optim=optim)).replace(repr(trial.teacher), "") + teacher


def _arms():
    seen, out = set(), []
    for s in all_studies():
        for name, arm in planning.arms_of(s, "full").items():
            path = code_path(shrink(arm.trial))
            if FULL_BATCHES or path not in seen:
                seen.add(path)
                out.append((s, name, arm))
    return out


ARMS = _arms()


def _param(study, name, arm):
    """An arm with a teacher is in the xdist group of its teacher: one worker trains the teacher once."""
    teacher = shrink(arm.trial).teacher
    marks = [pytest.mark.xdist_group(f"teacher {teacher_key(teacher)}")] if teacher is not None else []
    return pytest.param(study, name, arm, id=f"{study.NAME}:{name}", marks=marks)


def teacher_key(teacher) -> str:
    return hashlib.sha1(repr(teacher).encode()).hexdigest()[:12]


_TEACHERS: dict[str, dict] = {}  # teacher_key -> the trained teacher's state


def trained_teacher(teacher) -> dict:
    """The state of the (shrunk) teacher trained for its two updates, once a process: the arms that
    share a teacher (fitnets' students and its net2net arms) train it once; a copy for each."""
    key = teacher_key(teacher)
    if key not in _TEACHERS:
        rec_t, model_t = train_model(teacher, 0, Runtime())
        assert rec_t.status == "ok", rec_t.error
        _TEACHERS[key] = model_t.state_dict()
    return {k: v.clone() for k, v in _TEACHERS[key].items()}


@pytest.mark.parametrize("study,name,arm", [_param(*a) for a in ARMS])
def test_full_budget_arm_trains(study, name, arm, monkeypatch):
    monkeypatch.setattr(data, "_load_full", fake_load)
    trial = shrink(arm.trial)
    planning.check_trial(trial)
    state = trained_teacher(trial.teacher) if trial.teacher is not None else None
    rec, _ = train_model(trial, 0, Runtime(), state)
    assert rec.status in ("ok", "diverged"), rec.error
    assert rec.final["steps"] >= 1 or rec.status == "diverged"


def test_every_study_has_a_full_budget_arm_in_the_dry_run():
    assert {s.NAME for s, _, _ in ARMS} == {s.NAME for s in all_studies()}
