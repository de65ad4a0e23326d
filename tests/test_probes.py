"""Probe monitors (oplab.probes) and the curvature pieces they build on, against independent
computations: the full Hessian, its eigenvalues, an exact quadratic, and the sampling law of a
minibatch mean computed from per-example gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from oplab import monitors, probes, tasks
from oplab.monitors import MONITORS


def _tiny(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x = torch.randn(16, 3, dtype=torch.float64)
    y = torch.randint(0, 2, (16,))
    return model, x, y


def _flat_loss(model, x, y, loss_fn):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def f(flat):
        parts, i = {}, 0
        for n, s in zip(names, shapes):
            k = math.prod(s)
            parts[n] = flat[i : i + k].view(s)
            i += k
        return loss_fn(functional_call(model, parts, (x,)), y)

    return f, torch.cat([p.detach().flatten() for p in model.parameters()])


def test_hvp_matches_the_full_hessian():
    model, x, y = _tiny()
    f, flat = _flat_loss(model, x, y, F.cross_entropy)
    hess = torch.autograd.functional.hessian(f, flat)
    v = torch.randn(flat.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    shapes = [p.shape for p in model.parameters()]
    vs, i = [], 0
    for s in shapes:
        vs.append(v[i : i + math.prod(s)].view(s))
        i += math.prod(s)
    hv = torch.cat([h.flatten() for h in monitors.hvp(model, F.cross_entropy, x, y, vs)])
    torch.testing.assert_close(hv, hess @ v, rtol=1e-9, atol=1e-12)


def test_top_eigenvalue_matches_eigvalsh():
    # least squares: the Hessian 2/n X^T X (and the bias) with one direction 3x the others
    torch.manual_seed(0)
    x = torch.randn(200, 4) * torch.tensor([3.0, 1.0, 0.7, 0.5])
    y = torch.randn(200, 1)
    model = nn.Linear(4, 1)
    f, flat = _flat_loss(model, x, y, F.mse_loss)
    eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(f, flat))
    top = float(eig[eig.abs().argmax()])
    got = monitors.top_eigenvalue(model, F.mse_loss, x, y, iters=50)["top_eigenvalue"]
    assert got == pytest.approx(top, rel=1e-3)


def test_predicted_change_is_exact_on_a_quadratic():
    """A linear model under squared error is quadratic in its parameters: the 1/2 form is exact
    at every eps; the notes' form is off by 1/2 eps^2 g^T H g."""
    torch.manual_seed(0)
    x, y = torch.randn(64, 5), torch.randn(64, 1)
    model = nn.Linear(5, 1)
    out = probes.taylor_step(model, F.mse_loss, x, y)
    for e in probes.PROBE_EPS:
        actual = out[probes.eps_key("actual", e)]
        assert out[probes.eps_key("pred_half", e)] == pytest.approx(actual, rel=1e-9, abs=1e-12)
        gap = out[probes.eps_key("pred_nohalf", e)] - actual
        assert gap == pytest.approx(0.5 * e * e * out["taylor_gTHg"], rel=1e-9)


def test_taylor_terms_match_an_independent_computation():
    model, x, y = _tiny(3)
    f, flat = _flat_loss(model, x, y, F.cross_entropy)
    g = torch.autograd.functional.jacobian(f, flat)
    h = torch.autograd.functional.hessian(f, flat)
    out = probes.taylor_step(model, F.cross_entropy, x, y)
    assert out["taylor_gTg"] == pytest.approx(float(g @ g), rel=1e-9)
    assert out["taylor_gTHg"] == pytest.approx(float(g @ h @ g), rel=1e-9)
    e = 0.3
    assert out[probes.eps_key("actual", e)] == pytest.approx(float(f(flat - e * g) - f(flat)), rel=1e-9)


def _state(model, opt):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [None if p.grad is None else p.grad.clone() for p in model.parameters()],
            {k: {n: t.clone() for n, t in s.items()} for k, s in opt.state_dict()["state"].items()},
            model.training)


@pytest.mark.parametrize("name", ["taylor_step", "grad_noise"])
def test_probes_leave_model_and_optimizer_untouched(name):
    """Parameters, buffers (batch norm's running statistics), .grad, the optimizer's momentum and
    the train/eval mode are bit for bit as before, after a probe run through monitors.run."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):  # momentum buffers, running statistics and a .grad to protect
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    before = _state(model, opt)
    monitors.run((name,), model, F.cross_entropy, x, y)
    after = _state(model, opt)
    for k in before[0]:
        assert torch.equal(before[0][k], after[0][k]), k
    for a, b in zip(before[1], after[1]):
        assert torch.equal(a, b)
    for k in before[2]:
        for n in before[2][k]:
            assert torch.equal(before[2][k][n], after[2][k][n])
    assert before[3] == after[3]


def test_grad_noise_matches_the_sampling_law():
    """The monitor's std at each B (many draws) vs the exact expectation from per-example
    gradients: E||g_B - g_N||^2 = (N - B) / (N - 1) * sigma^2 / B, sigma^2 the per-example variance."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    params = dict(model.named_parameters())

    def one(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    per = vmap(grad(one), in_dims=(None, 0, 0))({k: v.detach() for k, v in params.items()}, x, y)
    flat = torch.cat([g.flatten(1) for g in per.values()], dim=1).double()
    sigma2 = float(((flat - flat.mean(0)) ** 2).sum(1).mean())
    n = len(x)
    out = probes.grad_noise(model, F.cross_entropy, x, y, draws=200)
    assert probes.batch_sizes(n) == [1, 2, 4, 8, 16]
    for b in probes.batch_sizes(n):
        exact = math.sqrt((n - b) / (n - 1) * sigma2 / b)
        assert out[f"noise_std@{b}"] == pytest.approx(exact, rel=0.08), b
    assert out["noise_slope"] == pytest.approx(-0.5, abs=0.04)
    assert out["noise_slope_raw"] < out["noise_slope"]  # the finite-population factor steepens the raw fit


def test_loglog_slope_recovers_a_power_law():
    b = np.array([1.0, 2, 4, 8, 16])
    assert probes.loglog_slope(b, 3 * b**-0.5) == pytest.approx(-0.5)
    assert math.isnan(probes.loglog_slope(b[:1], b[:1]))


def test_flat_params_and_the_least_squares_risk():
    torch.manual_seed(0)
    model = nn.Linear(10, 1)
    out = probes.flat_params(model, F.mse_loss, None, None)
    w, b = model.weight.detach().flatten().numpy(), float(model.bias)
    assert [out[f"theta_{i}"] for i in range(10)] == pytest.approx(w.tolist()) and out["theta_10"] == pytest.approx(b)
    with pytest.raises(ValueError, match="at most"):
        probes.flat_params(nn.Linear(100, 10), F.mse_loss, None, None)
    # the exact expected test error against a large test sample of the task
    d = tasks.least_squares(n_train=10, n_test=50_000)
    pred = d.x_test.double() @ torch.from_numpy(w).double() + b
    sample = float(((pred - d.y_test.double().flatten()) ** 2).mean())
    assert tasks.least_squares_risk(w, b) == pytest.approx(sample, rel=0.02)


def test_least_squares_task_is_a_function_of_its_options():
    a, b = tasks.least_squares(n_train=50, n_test=20), tasks.least_squares(n_train=50, n_test=20)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert a.task == "regression" and a.input_shape == (10,)
    assert tasks.least_squares_risk(tasks.least_squares_truth(), 0.0) == pytest.approx(1.0)


def test_probe_monitors_are_registered():
    for name in ("taylor_step", "grad_noise", "flat_params"):
        assert name in MONITORS
