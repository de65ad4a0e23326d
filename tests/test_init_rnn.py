"""oplab.init_rnn (RNN orthogonal, Glorot and LSUV initializers; the rnn_variance monitor) checked
against computations made here: the Elman recurrence unrolled in numpy (float64), the weights'
orthogonality and Glorot bounds in numpy, and the spectral radius by numpy's eigenvalues."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from oplab import init as initlib
from oplab.config import InitConfig, ModelConfig
from oplab.models import build
from oplab.monitors import MONITORS
from oplab.tasks import temporal_order_arrays

HIDDEN, LENGTH = 50, 20


def _rnn(activation: str = "tanh", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(ModelConfig("rnn", 1, HIDDEN, activation, options={"init": "torch"}), (LENGTH, 6), 4)


def _batch(n: int, seed: int, length: int = LENGTH) -> torch.Tensor:
    x, _ = temporal_order_arrays(n, length, np.random.RandomState(seed))
    return torch.from_numpy(x)


def _numpy_terms(model: nn.Module, x: torch.Tensor, activation: str = "tanh") -> dict[str, np.ndarray]:
    """The input term, the recurrent term (steps 1..T-1) and the pre-activation by an explicit numpy
    unroll of h_t = f(W_xh x_t + b_ih + W_hh h_(t-1) + b_hh), h_(-1) = 0 (not nn.RNN's kernel)."""
    r = model.rnn
    wx, wh = (r.weight_ih_l0.detach().double().numpy(), r.weight_hh_l0.detach().double().numpy())
    bi, bh = r.bias_ih_l0.detach().double().numpy(), r.bias_hh_l0.detach().double().numpy()
    f = np.tanh if activation == "tanh" else (lambda a: np.maximum(a, 0.0))
    xs = x.double().numpy()
    n, T, _ = xs.shape
    h = np.zeros((n, HIDDEN))
    us, rs, as_ = [], [], []
    for t in range(T):
        u = xs[:, t] @ wx.T + bi
        rec = h @ wh.T + bh
        a = u + rec
        if t > 0:
            rs.append(rec)
        us.append(u)
        as_.append(a)
        h = f(a)
    return {"u": np.stack(us, 1), "r": np.stack(rs, 1), "a": np.stack(as_, 1), "h_last": h}


def test_registry_lists_the_rnn_initializers_and_the_monitor():
    for name in ("rnn_orthogonal", "rnn_glorot", "rnn_lsuv"):
        assert name in initlib.INITS.names()
    assert "rnn_variance" in MONITORS


def test_rnn_orthogonal_sets_every_weight_orthogonal_and_biases_zero():
    model = _rnn()
    initlib.apply(model, InitConfig("rnn_orthogonal"))
    wh = model.rnn.weight_hh_l0.detach().double().numpy()
    wx = model.rnn.weight_ih_l0.detach().double().numpy()  # 50 x 6: orthonormal columns
    wo = model.readout.weight.detach().double().numpy()  # 4 x 50: orthonormal rows
    np.testing.assert_allclose(wh.T @ wh, np.eye(HIDDEN), atol=1e-5)
    np.testing.assert_allclose(wx.T @ wx, np.eye(6), atol=1e-5)
    np.testing.assert_allclose(wo @ wo.T, np.eye(4), atol=1e-5)
    for name, p in model.named_parameters():
        if "bias" in name:
            assert torch.count_nonzero(p) == 0, name


def test_rnn_glorot_draws_within_the_glorot_bound_with_its_variance():
    model = _rnn()
    initlib.apply(model, InitConfig("rnn_glorot"))
    for w in (model.rnn.weight_hh_l0, model.rnn.weight_ih_l0, model.readout.weight):
        fan_out, fan_in = w.shape
        u = np.sqrt(6.0 / (fan_in + fan_out))
        v = w.detach().double().numpy()
        assert np.abs(v).max() <= u + 1e-7
        # the uniform's variance u^2 / 3 = 2 / (fan_in + fan_out), within sampling error
        assert abs(v.var() / (u * u / 3) - 1) < 4 * np.sqrt(0.8 / v.size) + 0.05, w.shape
    assert torch.count_nonzero(model.rnn.bias_hh_l0) == 0 and torch.count_nonzero(model.readout.bias) == 0


@pytest.mark.parametrize("share", [0.5, 0.3])
def test_rnn_lsuv_meets_its_targets_on_its_batch_and_on_a_fresh_batch(share):
    """After rnn_lsuv on one batch of 100 sequences, the terms computed by the numpy unroll meet the
    targets within tol on that batch, and within tol plus sampling (0.15 relative) on a fresh batch of
    200 sequences; the pre-activation's variance is then near 1 and W_hh's gain has moved off 1."""
    model, fit, fresh = _rnn(), _batch(100, 1), _batch(200, 2)
    report = initlib.apply(model, InitConfig("rnn_lsuv", {"input_share": share}), fit)
    assert all(t["converged"] for t in report["terms"]) and all(x["converged"] for x in report["layers"])
    on_fit = _numpy_terms(model, fit)
    assert abs(on_fit["u"].var() / share - 1) < 0.1
    assert abs(on_fit["r"].var() / (1 - share) - 1) < 0.1
    on_fresh = _numpy_terms(model, fresh)
    assert abs(on_fresh["u"].var() / share - 1) < 0.15
    assert abs(on_fresh["r"].var() / (1 - share) - 1) < 0.15
    assert abs(on_fresh["a"].var() - 1) < 0.2
    gain = np.linalg.norm(model.rnn.weight_hh_l0.detach().double().numpy(), 2)
    assert np.isclose(gain, report["whh_gain"], rtol=1e-5) and gain > 1.02  # the orthogonal start's gain is 1
    with torch.no_grad():
        out = model(fit).double().numpy()
    assert abs(out.var() - 1) < 0.1  # the read-out's own LSUV step, absolute tol as oplab.init.lsuv


def test_rnn_lsuv_keeps_the_orthogonal_directions():
    """LSUV only rescales: W_hh / its gain and W_xh / its norm are the orthogonal start's."""
    a, b = _rnn(seed=3), _rnn(seed=3)
    x = _batch(50, 4)
    torch.manual_seed(7)
    initlib.apply(a, InitConfig("rnn_orthogonal"))
    torch.manual_seed(7)
    initlib.apply(b, InitConfig("rnn_lsuv"), x)
    for name in ("weight_hh_l0", "weight_ih_l0"):
        wa, wb = getattr(a.rnn, name).detach().double(), getattr(b.rnn, name).detach().double()
        scale = float((wb * wa).sum() / (wa * wa).sum())
        assert scale > 0 and torch.allclose(wb, scale * wa, atol=1e-6), name


def test_the_monitor_measures_the_numpy_terms_and_radius():
    model, x = _rnn(), _batch(60, 5)
    initlib.apply(model, InitConfig("rnn_lsuv"), _batch(40, 6))
    out = MONITORS["rnn_variance"](model, None, x, None)
    ref = _numpy_terms(model, x)
    assert np.isclose(out["rnn_u_var"], ref["u"].var(ddof=1), rtol=1e-4)
    assert np.isclose(out["rnn_r_var"], ref["r"].var(ddof=1), rtol=1e-4)
    assert np.isclose(out["rnn_a_var"], ref["a"].var(ddof=1), rtol=1e-4)
    assert np.isclose(out["rnn_h_last_var"], ref["h_last"].var(ddof=1), rtol=1e-4)
    wh = model.rnn.weight_hh_l0.detach().double().numpy()
    assert np.isclose(out["whh_radius"], np.abs(np.linalg.eigvals(wh)).max(), rtol=1e-6)
    assert np.isclose(out["whh_norm"], np.linalg.svd(wh, compute_uv=False)[0], rtol=1e-6)


def test_relu_rnn_is_supported():
    model, x = _rnn("relu"), _batch(100, 8)
    initlib.apply(model, InitConfig("rnn_lsuv"), x)
    t = _numpy_terms(model, x, "relu")
    assert abs(t["u"].var() / 0.5 - 1) < 0.1 and abs(t["r"].var() / 0.5 - 1) < 0.1


def test_bad_models_and_options_raise():
    x = _batch(10, 0)
    lstm = build(ModelConfig("rnn", 1, 8, "tanh", options={"init": "torch", "cell": "lstm"}), (LENGTH, 6), 4)
    with pytest.raises(ValueError, match="not an LSTM"):
        initlib.apply(lstm, InitConfig("rnn_orthogonal"))
    deep = build(ModelConfig("rnn", 2, 8, "tanh", options={"init": "torch"}), (LENGTH, 6), 4)
    with pytest.raises(ValueError, match="one-layer"):
        initlib.apply(deep, InitConfig("rnn_lsuv"), x)
    mlp = build(ModelConfig("mlp", 2, 8, "tanh"), (1, 4, 4), 4)
    with pytest.raises(ValueError, match="need a model with an nn.RNN"):
        initlib.apply(mlp, InitConfig("rnn_glorot"))
    with pytest.raises(ValueError, match="data-dependent"):
        initlib.apply(_rnn(), InitConfig("rnn_lsuv"))
    with pytest.raises(ValueError, match="input_share"):
        initlib.apply(_rnn(), InitConfig("rnn_lsuv", {"input_share": 1.0}), x)
