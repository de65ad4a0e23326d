"""Weight norm's data-dependent init carried into the LSTM's recurrence (oplab.recurrent.NormLSTM.
data_dependent_init, reached through oplab.norms.data_dependent_init) against an independent
computation: the initialized weights copied into torch's nn.LSTM, the hidden states it computes on
the init batch, and from them every gate pre-activation z_t = W_x x_t + W_h h_(t-1) + b in float64
numpy, whose per-unit mean and variance over the batch and the steps must be the rule's targets."""

import numpy as np
import pytest
import torch
from torch import nn

from oplab import models, norms
from oplab.config import ModelConfig, NormConfig


def _wn_lstm(width: int, chunk: int, seed: int, norm: str = "none"):
    torch.manual_seed(seed)
    cfg = ModelConfig("norm_lstm", 1, width, "tanh", options={"chunk": chunk, "norm": norm})
    return norms.apply(models.build(cfg, (40,), 10), NormConfig("weight"))


def _independent_preactivations(model, x: torch.Tensor):
    """(z, u, r) as float64 arrays (batch, time, 4 width) from nn.LSTM's hidden states, and its output."""
    w_x, w_h, b = (t.detach().double().numpy() for t in (model.w_x.weight, model.w_h.weight, model.bias))
    lstm = nn.LSTM(w_x.shape[1], model.width, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(model.w_x.weight)
        lstm.weight_hh_l0.copy_(model.w_h.weight)
        lstm.bias_ih_l0.copy_(model.bias)
        lstm.bias_hh_l0.zero_()
        h, _ = lstm(x)
        out = model.readout(h[:, -1])
    hs = h.detach().double().numpy()
    xs = x.double().numpy()
    h_prev = np.concatenate([np.zeros_like(hs[:, :1]), hs[:, :-1]], axis=1)  # h_0 = 0
    u = xs @ w_x.T
    r = h_prev @ w_h.T
    return u + r + b, u, r[:, 1:], out


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread, as a trial has: ~100 passes of small products are slower with two on 2 cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("width,chunk,seed", [(64, 1, 0), (32, 4, 1), (6, 1, 2)])
def test_every_gate_unit_starts_at_mean_0_variance_1_with_the_split_on_the_init_batch(width, chunk, seed):
    model = _wn_lstm(width, chunk, seed)
    gen = torch.Generator().manual_seed(100 + seed)
    x = torch.randn(100, 40, generator=gen) * 1.7 + 0.4  # not standardized: the init must absorb scale and shift
    report = norms.data_dependent_init(model, x)
    gates, readout = report
    assert gates["converged"] and readout["layer"] == "readout"
    xs = x.reshape(100, 40 // chunk, chunk)
    z, u, r, out = _independent_preactivations(model, xs)
    target = np.zeros(4 * width)
    target[width : 2 * width] = 1.0  # the forget gate keeps its offset of 1 on top of the zero mean
    mean, var = z.mean(axis=(0, 1)), z.var(axis=(0, 1))
    np.testing.assert_allclose(mean, target, atol=0.011)
    np.testing.assert_allclose(var, 1.0, atol=0.011)
    np.testing.assert_allclose(r.var(axis=(0, 1)) / u.var(axis=(0, 1)), 1.0, atol=0.011)  # share 1/2
    # before the init the pre-activations were far from it (the rule did something)
    assert abs(gates["std"] - 1.0) > 0.1
    # the read-out: each logit mean 0, variance 1 on the batch (linear in its g and b: exact)
    logits = out.double().numpy()
    np.testing.assert_allclose(logits.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(logits.var(axis=0), 1.0, atol=1e-4)
    # the model computes what nn.LSTM and the read-out compute with the initialized weights (float32 kernels
    # differ in the last bits, and 40 steps at unit-variance gates amplify them a little)
    torch.testing.assert_close(model(x), out, rtol=1e-3, atol=1e-3)


def test_the_init_changes_only_g_and_b_and_keeps_every_direction():
    model = _wn_lstm(16, 4, 3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    norms.data_dependent_init(model, torch.randn(50, 40))
    for n, p in model.named_parameters():
        if n.endswith("original1"):  # v: the direction of every weight vector
            torch.testing.assert_close(p, before[n])
        elif n.endswith("original0") or n.endswith("bias"):
            assert not torch.allclose(p, before[n]), n


def test_the_init_refuses_the_bn_cell_and_a_cell_without_weight_norm():
    bn = _wn_lstm(8, 4, 4, norm="batch")
    with pytest.raises(ValueError, match="BN-LSTM"):
        norms.data_dependent_init(bn, torch.randn(20, 40))
    torch.manual_seed(4)
    plain = models.build(ModelConfig("norm_lstm", 1, 8, "tanh", options={"chunk": 4}), (40,), 10)
    with pytest.raises(ValueError, match="weight-normalized"):
        plain.data_dependent_init(torch.randn(20, 40))
