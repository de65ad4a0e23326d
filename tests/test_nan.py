"""Non-finite values are caught where they enter: data with NaN is refused at load (naming the
dataset and split), a last update that sends the weights to infinity is a divergence rather than
"ok" with NaN metrics, and LSUV refuses a NaN output variance instead of accepting it."""

from __future__ import annotations

import math

import pytest
import torch

from oplab import data as datalib
from oplab import init as initlib
from oplab import models, optim
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial
from oplab.dataset import DATASETS, Dataset
from oplab.train import Runtime, train
from tests.conftest import tiny_trial


@pytest.fixture
def nan_dataset():
    """A registered dataset whose test inputs hold one NaN (removed from the registry afterwards)."""
    name = "nan_inputs_for_test"

    def build() -> Dataset:
        x_train, x_test = torch.randn(40, 4), torch.randn(20, 4)
        x_test[3, 1] = float("nan")
        return Dataset(name, x_train, torch.zeros(40, dtype=torch.long), x_test, torch.zeros(20, dtype=torch.long),
                       "classification", 2)

    DATASETS.register(name)(build)
    yield name
    del DATASETS._items[name]
    datalib._load_full.cache_clear()


def test_nan_data_is_refused_at_load_naming_dataset_and_split(nan_dataset):
    with pytest.raises(ValueError, match=r"dataset 'nan_inputs_for_test'.*x_test.*1 non-finite"):
        datalib.load(DataConfig(nan_dataset, n_train=10, n_test=5))


def test_nan_data_fails_the_trial_clearly_not_as_a_divergence(nan_dataset):
    t = Trial(data=DataConfig(nan_dataset), model=ModelConfig("mlp", 1, 8), optim=OptimConfig("sgd", lr=0.1),
              steps=4, batch_size=10)
    with pytest.raises(ValueError, match="nan_inputs_for_test"):
        train(t, 0)


def test_infinite_targets_are_refused():
    d = Dataset("inf_targets", torch.zeros(4, 2), torch.tensor([0.0, 1.0, float("inf"), 0.0]), torch.zeros(2, 2),
                torch.zeros(2), "regression", 1)
    with pytest.raises(ValueError, match="'inf_targets'.*y_train"):
        d.check_finite()
    assert Dataset("ok", torch.zeros(2, 2), torch.zeros(2, dtype=torch.long), torch.zeros(1, 2),
                   torch.zeros(1, dtype=torch.long), "classification", 2).check_finite() is not None


def _poison_last_update(monkeypatch, total_steps: int) -> None:
    """optim.step (the main loop's update) and optim.update (the stream loop's) as usual, but the
    last update leaves an infinite weight behind (the loss and the gradient it saw were finite, so
    the loop's own check cannot see it)."""
    calls = []

    def poisoned(real):
        def fn(loss, params, opt, cfg, *outputs):  # optim.step also takes the minibatch's outputs closure
            out = real(loss, params, opt, cfg, *outputs)
            calls.append(1)
            if out is not None and len(calls) == total_steps:
                with torch.no_grad():
                    params[0].view(-1)[0] = float("inf")
            return out
        return fn

    monkeypatch.setattr(optim, "update", poisoned(optim.update))
    monkeypatch.setattr(optim, "step", poisoned(optim.step))


def test_a_last_update_to_infinite_weights_is_a_divergence(monkeypatch):
    trial = tiny_trial()  # 2 epochs of 120 examples in batches of 20: 12 updates
    _poison_last_update(monkeypatch, 12)
    rec = train(trial, 0)
    assert rec.status == "diverged" and rec.diverged_step == 12
    assert rec.final["steps"] == 11 and "test_loss" not in rec.final and "test_acc" not in rec.final


def test_a_last_update_to_infinite_weights_is_a_divergence_in_the_stream_loop(monkeypatch):
    t = Trial(data=DataConfig("addition", n_test=20, options={"target": 2, "n_val": 20}),
              model=ModelConfig("char_lstm", 1, 8), optim=OptimConfig("adam", lr=0.01), steps=5, batch_size=8,
              eval_every=5)
    _poison_last_update(monkeypatch, 5)
    rec = train(t, 0, Runtime())
    assert rec.status == "diverged" and rec.diverged_step == 5
    assert rec.final["steps"] == 4 and "char_acc" not in rec.final and "test_loss" not in rec.final


def test_finite_trials_stay_ok():
    rec = train(tiny_trial(), 0)
    assert rec.status == "ok" and rec.diverged_step is None and math.isfinite(rec.final["test_loss"])


def test_lsuv_refuses_a_nan_variance():
    torch.manual_seed(0)
    model = models.build(ModelConfig("mlp", 2, 8), (6,), 3)
    x = torch.randn(16, 6)
    x[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match=r"lsuv: layer 0 \(Linear\) has output variance nan"):
        initlib.lsuv(model, x)


def test_lsuv_refuses_an_infinite_variance_in_a_later_layer():
    torch.manual_seed(0)
    model = models.build(ModelConfig("mlp", 2, 8), (6,), 3)
    with torch.no_grad():
        initlib.weight_layers(model)[1].bias.fill_(float("inf"))  # kept by bias="keep"
    with pytest.raises(RuntimeError, match=r"lsuv: layer 1 \(Linear\) has output variance (nan|inf)"):
        initlib.lsuv(model, torch.randn(16, 6), bias="keep")
