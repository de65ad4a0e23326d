"""oplab.recurrent against independent computations: per-step batch norm against torch's BatchNorm1d
applied step by step (training statistics, running estimates, test-time population statistics, the
last step's statistics beyond the training length), the plain cell against torch's nn.LSTM, the
BN-LSTM against a reference loop built from BatchNorm1d modules, its gradients against finite
differences, and weight normalization through oplab.norms."""

import copy

import pytest
import torch
from torch import nn

from oplab import models, norms
from oplab.config import ModelConfig, NormConfig
from oplab.recurrent import NormLSTM, StepBatchNorm


def _reference_norms(features: int, steps: int, gamma: float, shift: bool) -> list[nn.BatchNorm1d]:
    """One torch BatchNorm1d per step, all with the same scale (and shift or none)."""
    out = []
    for _ in range(steps):
        bn = nn.BatchNorm1d(features)
        with torch.no_grad():
            bn.weight.fill_(gamma)
            bn.bias.zero_()
        bn.bias.requires_grad_(shift)
        out.append(bn)
    return out


def test_step_batch_norm_matches_batchnorm1d_per_step_in_training_and_at_test_time():
    torch.manual_seed(0)
    steps, f = 5, 7
    ours = StepBatchNorm(f, steps, gamma=0.3)
    ref = _reference_norms(f, steps, 0.3, True)
    for _ in range(4):  # several training batches: every step's running estimates move
        x = torch.randn(32, steps, f) * torch.arange(1, steps + 1).view(1, -1, 1) + 2.0
        for t in range(steps):
            torch.testing.assert_close(ours(x[:, t], t), ref[t](x[:, t]))
    for t in range(steps):
        torch.testing.assert_close(ours.running_mean[t], ref[t].running_mean)
        torch.testing.assert_close(ours.running_var[t], ref[t].running_var)
    assert not torch.allclose(ours.running_mean[0], ours.running_mean[-1])  # separate statistics per step
    ours.eval()
    for r in ref:
        r.eval()
    x = torch.randn(3, steps + 2, f)  # test time: a small batch, and steps beyond the training length
    for t in range(steps + 2):
        torch.testing.assert_close(ours(x[:, t], t), ref[min(t, steps - 1)](x[:, t]))


def test_forward_all_equals_the_step_by_step_norm_and_its_updates():
    torch.manual_seed(1)
    steps, f = 6, 4
    a, b = StepBatchNorm(f, steps, gamma=0.1, shift=False), StepBatchNorm(f, steps, gamma=0.1, shift=False)
    x = torch.randn(16, steps, f) * 3 + 1
    y_all = a.forward_all(x)
    y_step = torch.stack([b(x[:, t], t) for t in range(steps)], dim=1)
    torch.testing.assert_close(y_all, y_step)
    torch.testing.assert_close(a.running_mean, b.running_mean)
    torch.testing.assert_close(a.running_var, b.running_var)
    a.eval()
    b.eval()
    x = torch.randn(5, steps + 3, f)
    torch.testing.assert_close(a.forward_all(x), torch.stack([b(x[:, t], t) for t in range(steps + 3)], dim=1))


def test_training_beyond_the_kept_steps_is_refused():
    bn = StepBatchNorm(3, 2)
    with pytest.raises(ValueError, match="beyond"):
        bn(torch.randn(4, 3), 2)


def test_plain_cell_equals_torch_lstm():
    torch.manual_seed(2)
    n_in, width, steps = 3, 8, 6
    ours = NormLSTM(n_in, width, 5, steps, norm="none", forget_bias=1.0)
    lstm = nn.LSTM(n_in, width, batch_first=True)
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(ours.w_x.weight)
        lstm.weight_hh_l0.copy_(ours.w_h.weight)
        lstm.bias_ih_l0.copy_(ours.bias)
        lstm.bias_hh_l0.zero_()
    x = torch.randn(10, steps, n_in)
    h, _ = lstm(x)
    torch.testing.assert_close(ours(x), ours.readout(h[:, -1]))
    assert torch.all(ours.bias[width : 2 * width] == 1.0) and torch.all(ours.bias[:width] == 0.0)  # forget gate: 1


def _reference_bn_lstm(model: NormLSTM, x: torch.Tensor, ref_x, ref_h, ref_c) -> torch.Tensor:
    """The paper's equations, written again with one torch BatchNorm1d per step and term."""
    h = torch.zeros(x.shape[0], model.width)
    c = torch.zeros_like(h)
    for t in range(x.shape[1]):
        z = ref_x[t](x[:, t] @ model.w_x.weight.T) + model.bias
        if t > 0:
            z = z + ref_h[t](h @ model.w_h.weight.T)
        i, f, g, o = z.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(ref_c[t](c))
    return model.readout(h)


def test_bn_lstm_equals_a_reference_built_from_batchnorm1d_in_training_and_at_test_time():
    torch.manual_seed(3)
    n_in, width, steps = 2, 6, 5
    model = NormLSTM(n_in, width, 4, steps, norm="batch", gamma=0.1)
    with torch.no_grad():  # a shift of the cell's norm that is not 0, as after training
        model.bn_c.bias.uniform_(-0.5, 0.5)
    ref_x = _reference_norms(4 * width, steps, 0.1, False)
    ref_h = _reference_norms(4 * width, steps, 0.1, False)
    ref_c = _reference_norms(width, steps, 0.1, True)
    for r in ref_c:
        with torch.no_grad():
            r.bias.copy_(model.bn_c.bias)
    for _ in range(3):
        x = torch.randn(20, steps, n_in)
        torch.testing.assert_close(model(x), _reference_bn_lstm(model, x, ref_x, ref_h, ref_c))
    for t in range(1, steps):  # step 0's recurrent term is 0 (h_0 = 0) and is not normalized
        torch.testing.assert_close(model.bn_h.running_mean[t], ref_h[t].running_mean)
        torch.testing.assert_close(model.bn_h.running_var[t], ref_h[t].running_var)
    model.eval()
    for r in ref_x + ref_h + ref_c:
        r.eval()
    x = torch.randn(2, steps, n_in)  # population statistics: two examples give the same answer as alone
    out = model(x)
    torch.testing.assert_close(out, _reference_bn_lstm(model, x, ref_x, ref_h, ref_c))
    torch.testing.assert_close(out[:1], model(x[:1]))


def test_bn_lstm_gradients_match_finite_differences():
    torch.manual_seed(4)
    model = NormLSTM(2, 2, 2, 3, norm="batch", gamma=0.5).double()
    x = torch.randn(5, 3, 2, dtype=torch.double)
    params = [p for p in model.parameters()]

    def f(*ps):
        state = {n: p for (n, _), p in zip(model.named_parameters(), ps)}
        return torch.func.functional_call(model, {**state, **dict(model.named_buffers())}, (x,)).sum()

    # batch statistics only: the running estimates are updated in place, not differentiated
    assert torch.autograd.gradcheck(f, tuple(p.detach().clone().requires_grad_(True) for p in params), eps=1e-6,
                                    atol=1e-5)


def test_registered_model_reads_mnist1d_as_chunks_and_weight_norm_keeps_the_function_at_init():
    cfg = ModelConfig("norm_lstm", 1, 8, "tanh", options={"chunk": 4})
    torch.manual_seed(5)
    plain = models.build(cfg, (40,), 10)
    assert plain.steps == 10 and plain.w_x.in_features == 4
    torch.manual_seed(5)
    wn = norms.apply(models.build(cfg, (40,), 10), NormConfig("weight", data_init=False))
    assert all(norms.is_weight_normed(m) for m in (wn.w_x, wn.w_h, wn.readout))
    x = torch.randn(7, 40)
    torch.testing.assert_close(wn(x), plain(x))  # g = ||v|| at init: the same function, other parameters
    wn(x).sum().backward()
    g = wn.w_h.parametrizations.weight.original0
    assert g.grad is not None and torch.isfinite(g.grad).all()
    torch.manual_seed(5)
    bn = models.build(ModelConfig("norm_lstm", 1, 8, "tanh", options={"chunk": 4, "norm": "batch"}), (40,), 10)
    torch.testing.assert_close(bn.w_h.weight, plain.w_h.weight)  # same seed, same starting weights
    with pytest.raises(ValueError, match="divide"):
        models.build(ModelConfig("norm_lstm", 1, 8, "tanh", options={"chunk": 3}), (40,), 10)
    with pytest.raises(ValueError, match="norm"):
        models.build(ModelConfig("norm_lstm", 1, 8, "tanh", options={"norm": "layer"}), (40,), 10)


def test_eval_mode_does_not_move_the_population_statistics():
    model = NormLSTM(1, 4, 3, 5, norm="batch")
    model(torch.randn(8, 5, 1))
    before = copy.deepcopy(model.state_dict())
    model.eval()
    model(torch.randn(8, 5, 1))
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
