"""oplab.secondorder against independent computations: the Gauss-Newton matrix against
torch.autograd.functional.hessian (softmax regression, where it is the Hessian) and against J^T A J
built from torch.autograd.functional.jacobian (a tanh MLP); the damped step against torch.linalg.solve;
the monitor's errors against a direct recomputation of its draws."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import hessian, jacobian
from torch.func import functional_call

from oplab import secondorder
from oplab.monitors import MONITORS


def _data(n=24, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, c, (n,), generator=g)


def _model(kind: str, d=5, c=3, seed=0) -> nn.Module:
    torch.manual_seed(seed)
    if kind == "linear":
        return nn.Sequential(nn.Flatten(), nn.Linear(d, c)).double()
    return nn.Sequential(nn.Flatten(), nn.Linear(d, 4), nn.Tanh(), nn.Linear(4, c)).double()


def _functional(model):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]

    def unflat(theta):
        out, i = {}, 0
        for n, s in zip(names, shapes):
            k = math.prod(s)
            out[n] = theta[i : i + k].view(s)
            i += k
        return out

    theta = torch.cat([p.detach().flatten() for p in model.parameters()])
    return theta, lambda th, x: functional_call(model, unflat(th), (x,))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_per_example_gradients_average_to_the_autograd_gradient(kind):
    model, (x, y) = _model(kind), _data()
    g, _ = secondorder.ggn_pieces(model, x, y)
    theta, f = _functional(model)
    want = torch.autograd.grad(F.cross_entropy(f(theta.requires_grad_(), x), y), theta)[0]
    torch.testing.assert_close(g.mean(0), want)


def test_ggn_is_the_hessian_for_softmax_regression_and_the_step_solves_it():
    """For a model linear in its parameters the GGN is the Hessian of the mean cross-entropy; the damped step
    is (H + lambda I)^{-1} g as torch.linalg.solve gives it."""
    model, (x, y) = _model("linear"), _data()
    g, m = secondorder.ggn_pieces(model, x, y)
    theta, f = _functional(model)
    h = hessian(lambda th: F.cross_entropy(f(th, x), y), theta)
    torch.testing.assert_close(secondorder.ggn(m), h)
    lam = 0.05
    want = torch.linalg.solve(h + lam * torch.eye(len(theta), dtype=h.dtype), g.mean(0))
    torch.testing.assert_close(secondorder.damped_step(secondorder.ggn(m), g.mean(0), lam), want)


def test_ggn_of_an_mlp_is_jacobian_transpose_output_hessian_jacobian():
    """For a tanh MLP: sum_i J_i^T H_z,i J_i / n with J from torch.autograd.functional.jacobian of the logits
    and H_z the Hessian of cross-entropy in the logits (torch.autograd.functional.hessian), on any subset;
    it differs from the full Hessian (the net is not linear in its parameters)."""
    model, (x, y) = _model("mlp"), _data()
    _, m = secondorder.ggn_pieces(model, x, y)
    theta, f = _functional(model)
    idx = torch.tensor([0, 3, 5, 7, 11])
    want = torch.zeros(len(theta), len(theta), dtype=torch.float64)
    for i in idx.tolist():
        j = jacobian(lambda th, i=i: f(th, x[i : i + 1]).squeeze(0), theta)  # (C, P)
        z = f(theta, x[i : i + 1]).detach().squeeze(0)
        hz = hessian(lambda zz, i=i: F.cross_entropy(zz.unsqueeze(0), y[i : i + 1]), z)
        want += j.T @ hz @ j
    torch.testing.assert_close(secondorder.ggn(m, idx), want / len(idx))
    full = hessian(lambda th: F.cross_entropy(f(th, x), y), theta)
    assert (secondorder.ggn(m) - full).abs().max() > 1e-6


def test_the_monitor_recomputes_its_draws_and_leaves_the_model_alone():
    """gn_noise's relative errors and the full-batch step's loss change, recomputed directly from its draws
    (the same generator), with torch.linalg.solve for every step; the model is not moved."""
    model, (x, y) = _model("mlp", d=5, c=3), _data(n=64)
    before = [p.detach().clone() for p in model.parameters()]
    out = MONITORS.build("gn_noise", model, F.cross_entropy, x, y)
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
    theta, f = _functional(model)
    loss = lambda th, idx=slice(None): F.cross_entropy(f(th, x[idx]), y[idx])  # noqa: E731
    grad = lambda idx=slice(None): torch.autograd.grad(loss(theta.requires_grad_(), idx), theta)[0]  # noqa: E731
    _, m = secondorder.ggn_pieces(model, x, y)
    g_n, big = grad(), secondorder.ggn(m)
    top = float(torch.linalg.eigvalsh(big)[-1])
    assert out["gn_top_eig"] == pytest.approx(top)
    eye = torch.eye(len(theta), dtype=torch.float64)
    c = secondorder.DAMPINGS[1]
    d_n = torch.linalg.solve(big + c * top * eye, g_n)
    assert out[secondorder.change_key(c)] == pytest.approx(float(loss(theta.detach() - d_n) - loss(theta.detach())))
    gen = torch.Generator().manual_seed(0)
    gerr, serr = [], []
    for _ in range(secondorder.DRAWS):  # the only size <= 64 / 4 is 8
        idx = torch.randperm(64, generator=gen)[:8]
        g_b = grad(idx)
        d_b = torch.linalg.solve(secondorder.ggn(m, idx) + c * top * eye, g_b)
        gerr.append(float(((g_b - g_n) ** 2).sum()))
        serr.append(float(((d_b - d_n) ** 2).sum()))
    assert out[secondorder.grad_key(8)] == pytest.approx(math.sqrt(sum(gerr) / len(gerr)) / float(g_n.norm()))
    assert out[secondorder.step_key(8, c)] == pytest.approx(math.sqrt(sum(serr) / len(serr)) / float(d_n.norm()))
    assert secondorder.grad_key(32) not in out  # above N / 4


def test_heavy_damping_makes_the_step_a_scaled_gradient():
    """As lambda grows, (G + lambda I)^{-1} g -> g / lambda: the step's relative error tends to the gradient's."""
    model, (x, y) = _model("mlp"), _data(n=64)
    out = secondorder.gn_noise(model, F.cross_entropy, x, y, dampings=(1e6,))
    assert out[secondorder.step_key(8, 1e6)] == pytest.approx(out[secondorder.grad_key(8)], rel=1e-3)
