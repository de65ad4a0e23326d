"""Synthetic tasks, the single recurrent unit, the RNN model, and gradient clipping,
checked against independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oplab import data, models, monitors, optim, tasks
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial
from oplab.train import train


def _load(name: str, **options) -> data.Dataset:
    return data.load(DataConfig(name, options=options))


# --- temporal order


def test_temporal_order_shapes_and_labels():
    length, n = 30, 64
    d = _load("temporal_order", length=length, n_train=n, n_test=16, seed=7)
    assert d.task == "classification" and d.out_dim == 4
    assert d.x_train.shape == (n, length, 6) and d.x_train.dtype == torch.float32
    assert d.y_train.shape == (n,) and d.y_train.dtype == torch.int64
    x = d.x_train.numpy()
    assert np.all(x.sum(axis=2) == 1.0)  # one-hot at every step
    symbols = x.argmax(axis=2)
    for i in range(n):
        pos = np.flatnonzero(symbols[i] < 2)  # A or B
        assert len(pos) == 2
        assert 3 <= pos[0] < 6 and 15 <= pos[1] < 18  # [0.1 L, 0.2 L) and [0.5 L, 0.6 L)
        first, second = symbols[i, pos[0]], symbols[i, pos[1]]
        assert int(d.y_train[i]) == first + 2 * second


def test_temporal_order_deterministic_by_seed():
    a = _load("temporal_order", length=20, n_train=50, n_test=10, seed=3)
    b = tasks.temporal_order(length=20, n_train=50, n_test=10, seed=3)
    c = _load("temporal_order", length=20, n_train=50, n_test=10, seed=4)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not torch.equal(a.x_train, c.x_train)
    assert not torch.equal(a.x_train[:10], a.x_test)  # test is a separate draw


def test_unknown_task_option_is_refused():
    with pytest.raises(ValueError, match="length"):
        _load("temporal_order", lenght=20)


# --- adding problem


def test_adding_shapes_and_targets():
    length, n = 40, 50
    d = _load("adding", length=length, n_train=n, n_test=5, seed=11)
    assert d.task == "regression" and d.out_dim == 1
    assert d.x_train.shape == (n, length, 2) and d.y_train.shape == (n, 1)
    x = d.x_train.numpy()
    assert np.all((x[:, :, 1] >= 0) & (x[:, :, 1] < 1))
    for i in range(n):
        marks = np.flatnonzero(x[i, :, 0] == 1.0)
        assert len(marks) == 2 and set(np.unique(x[i, :, 0])) <= {0.0, 1.0}
        assert marks[0] < 4 and 4 <= marks[1] < 20  # [0, 0.1 L) and [0.1 L, 0.5 L)
        assert d.y_train[i, 0].item() == pytest.approx(x[i, marks, 1].mean(), abs=1e-6)


def test_adding_deterministic_by_seed():
    a = tasks.adding(length=20, n_train=30, n_test=5, seed=1)
    b = tasks.adding(length=20, n_train=30, n_test=5, seed=1)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_train, b.y_train)


# --- the single recurrent unit


def _loop_loss(w: float, b: float) -> float:
    x = 0.5
    for _ in range(50):
        x = w / (1 + math.exp(-x)) + b
    return (1 / (1 + math.exp(-x)) - 0.7) ** 2


POINTS = [(1.0, 0.0), (3.0, -1.0), (5.0, -2.5), (-2.0, 1.5), (4.6, models.single_unit_wall_b(4.6))]


@pytest.mark.parametrize("w,b", POINTS)
def test_single_unit_grid_matches_autograd(w, b):
    g = models.single_unit_grid(w, b)
    assert float(g["loss"]) == pytest.approx(_loop_loss(w, b), rel=1e-9, abs=1e-15)
    model = models.single_unit(input_shape=(1,), out_dim=1, depth=1, width=1, activation="sigmoid", w0=w, b0=b)
    out = model(torch.zeros(1, 1))
    loss = (out[0, 0] - 0.7) ** 2
    loss.backward()
    assert loss.item() == pytest.approx(float(g["loss"]), rel=1e-9, abs=1e-15)
    assert model.w.grad.item() == pytest.approx(float(g["dw"]), rel=1e-6, abs=1e-12)
    assert model.b.grad.item() == pytest.approx(float(g["db"]), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("w,b", POINTS[:4])
def test_single_unit_grid_matches_finite_differences(w, b):
    g = models.single_unit_grid(w, b)
    h = 1e-6
    fd_w = (_loop_loss(w + h, b) - _loop_loss(w - h, b)) / (2 * h)
    fd_b = (_loop_loss(w, b + h) - _loop_loss(w, b - h)) / (2 * h)
    assert float(g["dw"]) == pytest.approx(fd_w, rel=1e-4, abs=1e-9)
    assert float(g["db"]) == pytest.approx(fd_b, rel=1e-4, abs=1e-9)


def test_single_unit_grid_is_vectorized_and_has_a_wall():
    w, b = np.meshgrid(np.linspace(3, 7, 201), np.linspace(-4.5, -0.5, 201))
    g = models.single_unit_grid(w, b)
    assert g["loss"].shape == w.shape
    assert float(g["loss"][17, 33]) == pytest.approx(_loop_loss(w[17, 33], b[17, 33]), rel=1e-9, abs=1e-15)
    assert models.wall_ratio(g) > 1e3
    # on the wall the gradient is far larger than a little off it
    bw = models.single_unit_wall_b(5.0)
    on, off = models.single_unit_grid(5.0, bw)["grad_norm"], models.single_unit_grid(5.0, bw + 0.05)["grad_norm"]
    assert on > 1e3 * off


def test_single_unit_start_is_drawn_from_the_seed():
    def start(seed):
        torch.manual_seed(seed)
        m = models.single_unit(input_shape=(1,), out_dim=1, depth=1, width=1, activation="sigmoid", w0=5.0,
                               w0_spread=0.5)
        return m.w.item(), m.b.item()

    assert start(1) == start(1) and start(1) != start(2)
    w, b = start(1)
    assert 4.5 <= w <= 5.5 and b == models.single_unit_wall_b(w)


def test_single_unit_math_lives_beside_its_model():
    moved = ("single_unit_grid", "wall_ratio", "single_unit_wall_b", "SINGLE_UNIT_T", "SINGLE_UNIT_X0",
             "SINGLE_UNIT_TARGET")
    assert all(hasattr(models, n) for n in moved)
    assert not any(hasattr(tasks, n) for n in moved)  # no aliases left behind in tasks
    d = tasks.single_unit_target()
    assert float(d.y_train[0, 0]) == models.SINGLE_UNIT_TARGET == 0.7
    assert (models.SINGLE_UNIT_T, models.SINGLE_UNIT_X0) == (50, 0.5)


def test_single_unit_dataset_error_is_the_papers():
    d = tasks.single_unit_target()
    model = models.build(ModelConfig("single_unit", 1, 1, "sigmoid", options={"w0": 3.0, "b0": -1.0}), (1,), 1)
    err = torch.nn.functional.mse_loss(model(d.x_train), d.y_train)
    assert float(err.detach()) == pytest.approx(_loop_loss(3.0, -1.0), rel=1e-9)


# --- clipping


def _params_with_grads(grads: list[list[float]]) -> list[torch.Tensor]:
    ps = []
    for g in grads:
        p = torch.zeros(len(g), requires_grad=True)
        p.grad = torch.tensor(g)
        ps.append(p)
    return ps


def test_norm_clipping_bounds_the_update_and_keeps_the_direction():
    ps = _params_with_grads([[3.0, 4.0], [12.0]])  # norm 13
    before = torch.cat([p.grad for p in ps]).clone()
    norm, clipped = optim.clip_gradients(ps, OptimConfig(clip="norm", clip_threshold=1.0))
    after = torch.cat([p.grad for p in ps])
    assert norm == pytest.approx(13.0) and clipped
    assert float(after.norm()) == pytest.approx(1.0, rel=1e-5)
    assert torch.allclose(after, before / 13.0, rtol=1e-5)
    # below the threshold nothing changes
    ps = _params_with_grads([[0.3, 0.4]])
    norm, clipped = optim.clip_gradients(ps, OptimConfig(clip="norm", clip_threshold=1.0))
    assert norm == pytest.approx(0.5) and not clipped and torch.allclose(ps[0].grad, torch.tensor([0.3, 0.4]))


def test_value_clipping_bounds_components():
    ps = _params_with_grads([[3.0, -0.5], [-12.0]])
    norm, clipped = optim.clip_gradients(ps, OptimConfig(clip="value", clip_threshold=1.0))
    assert norm == pytest.approx(math.sqrt(9 + 0.25 + 144)) and clipped
    assert torch.equal(ps[0].grad, torch.tensor([1.0, -0.5])) and torch.equal(ps[1].grad, torch.tensor([-1.0]))


@pytest.mark.parametrize("clip", ["none", "norm"])
def test_trained_step_off_the_wall(clip):
    """Through the training loop: the logged gradient norm is the one before clipping, the
    norm-clipped step is lr * threshold long, the unclipped one lr * |grad|."""
    w0 = 5.0
    b0 = models.single_unit_wall_b(w0)
    trial = Trial(data=DataConfig("single_unit_target"),
                  model=ModelConfig("single_unit", 1, 1, "sigmoid", options={"w0": w0, "b0": b0}),
                  init=InitConfig("default"), optim=OptimConfig("sgd", lr=0.1, clip=clip, clip_threshold=1.0),
                  steps=3, batch_size=1, eval_every=1, monitors=("params",), monitor_every=1)
    rec = train(trial, seed=0)
    g0 = models.single_unit_grid(w0, b0)
    logged = rec.curves["log"]["grad_norm"][0]
    assert logged == pytest.approx(float(g0["grad_norm"]), rel=1e-6) and logged > 100
    mon = rec.curves["monitor"]
    assert mon["w"][0] == w0 and mon["b"][0] == b0
    step = math.hypot(mon["w"][1] - w0, mon["b"][1] - b0)
    assert step == pytest.approx(0.1 * (1.0 if clip == "norm" else logged), rel=1e-6)
    assert rec.final["clipped_steps"] >= 1 if clip == "norm" else rec.final["clipped_steps"] == 0


# --- the RNN and the params monitor


def test_rnn_smart_tanh_init_and_forward():
    torch.manual_seed(0)
    m = models.build(ModelConfig("rnn", 1, 50, "tanh", options={"init": "smart_tanh"}), (30, 6), 4)
    w = m.rnn.weight_hh_l0.detach()
    assert torch.linalg.eigvals(w.double()).abs().max().item() == pytest.approx(0.95, rel=1e-5)
    assert int((w != 0).sum(dim=1).max()) <= 15
    assert float(m.rnn.bias_hh_l0.detach().abs().sum()) == 0.0 and float(m.readout.bias.detach().abs().sum()) == 0.0
    assert m.rnn.weight_ih_l0.std().item() == pytest.approx(0.01, rel=0.3)
    assert m(torch.zeros(5, 30, 6)).shape == (5, 4)
    with pytest.raises(ValueError, match="smart_tanh"):
        models.build(ModelConfig("rnn", 1, 8, "tanh", options={"init": "bogus"}), (10, 6), 4)


def test_params_monitor_reports_scalars_and_norms():
    m = models.single_unit(input_shape=(1,), out_dim=1, depth=1, width=1, activation="sigmoid", w0=2.0, b0=-1.0)
    assert monitors.params(m, None, None, None) == {"w": 2.0, "b": -1.0}
    lin = torch.nn.Linear(3, 2)
    out = monitors.params(lin, None, None, None)
    assert set(out) == {"weight.norm", "bias.norm"}
    assert out["weight.norm"] == pytest.approx(float(lin.weight.norm()))
