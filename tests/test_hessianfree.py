"""oplab.hessianfree against independent computations: the Gauss-Newton-vector product against the
explicit GGN (oplab.secondorder, itself checked against torch.autograd.functional) and against
J^T A J from torch.autograd.functional.jacobian; conjugate gradient against torch.linalg.solve; one
Hessian-free update with enough CG iterations against the exact damped Gauss-Newton step; the
optimizer in the training loop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.functional import jacobian

from oplab import hessianfree, optim, secondorder
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial
from oplab.train import train


def _setup(n=12, d=5, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, c, (n,), generator=g)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(d, 4), nn.Tanh(), nn.Linear(4, c)).double()
    return model, x, y


def _flat(vs):
    return torch.cat([v.reshape(-1) for v in vs])


def _split(vec, params):
    out, i = [], 0
    for p in params:
        out.append(vec[i : i + p.numel()].view_as(p))
        i += p.numel()
    return out


def test_gauss_newton_product_is_the_explicit_ggn_times_v():
    model, x, y = _setup()
    params = list(model.parameters())
    gn = hessianfree.GaussNewton(params, model(x), lambda z: F.cross_entropy(z, y))
    _, m = secondorder.ggn_pieces(model, x, y)
    big = secondorder.ggn(m)
    v = torch.randn(big.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_flat(gn(_split(v, params))), big @ v)


def test_gauss_newton_product_for_squared_error_is_jt_a_j_from_autograd_jacobian():
    """Another loss (mean squared error, A = 2 I / (n outputs)) and J from torch.autograd.functional.jacobian."""
    model, x, _ = _setup()
    target = torch.randn(len(x), 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    params = list(model.parameters())
    theta = _flat([p.detach() for p in params])

    def outputs(th):
        w1, b1, w2, b2 = _split(th, params)
        return (torch.tanh(x @ w1.T + b1) @ w2.T + b2).reshape(-1)

    jac = jacobian(outputs, theta)  # (n * c, P)
    want = jac.T @ jac * (2.0 / jac.shape[0])
    gn = hessianfree.GaussNewton(params, model(x), lambda z: F.mse_loss(z, target))
    v = torch.randn(len(theta), dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(_flat(gn(_split(v, params))), want @ v)


def test_cg_solves_a_positive_definite_system_and_stops_at_its_tolerance():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, dtype=torch.float64, generator=g)
    a = a @ a.T + 0.5 * torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64, generator=g)
    (x,), iters = hessianfree.cg(lambda v: [a @ v[0]], [b], iters=50, tol=1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(a, b))
    assert iters <= 7  # exact in n steps in exact arithmetic
    (x1,), one = hessianfree.cg(lambda v: [a @ v[0]], [b], iters=1)
    assert one == 1
    torch.testing.assert_close(x1, (b @ b) / (b @ a @ b) * b)  # the first CG iterate: steepest descent's exact step


@pytest.mark.parametrize("lr", [0.3, 3.0])
def test_one_update_with_enough_cg_iterations_is_the_exact_damped_gauss_newton_step(lr):
    model, x, y = _setup()
    params = list(model.parameters())
    before = _flat([p.detach().clone() for p in params])
    g_all, m = secondorder.ggn_pieces(model, x, y)
    want = secondorder.damped_step(secondorder.ggn(m), g_all.mean(0), 1.0 / lr)
    opt = optim.OPTIMIZERS.build("hf", params, lr=lr, momentum=0.0, weight_decay=0.0, cg_iters=200, cg_tol=1e-13)
    opt.zero_grad()
    loss = F.cross_entropy(model(x), y)
    cfg = OptimConfig("hf", lr=lr)
    optim.step(loss, params, opt, cfg, lambda: (model(x), lambda z: F.cross_entropy(z, y)))
    after = _flat([p.detach() for p in params])
    torch.testing.assert_close(before - after, want)


def test_truncated_cg_is_a_shorter_step_toward_the_same_solution():
    """A few CG iterations from 0: the step's norm grows with the iterations toward the exact step's."""
    model, x, y = _setup()
    params = list(model.parameters())
    loss = F.cross_entropy(model(x), y)
    grads = list(torch.autograd.grad(loss, params))
    gn = hessianfree.GaussNewton(params, model(x), lambda z: F.cross_entropy(z, y))
    norms = [float(_flat(hessianfree.cg(gn.damped(0.01), grads, k)[0]).norm()) for k in (1, 3, 10, 60)]
    assert norms == sorted(norms)


def test_other_optimizers_never_call_the_outputs_closure():
    model, x, y = _setup()
    params = list(model.parameters())
    opt = optim.OPTIMIZERS.build("sgd", params, lr=0.1, momentum=0.0, weight_decay=0.0)

    def boom():
        raise AssertionError("called")

    optim.step(F.cross_entropy(model(x), y), params, opt, OptimConfig("sgd", lr=0.1), boom)


def test_hf_refuses_momentum_and_a_missing_closure():
    model, _, _ = _setup()
    with pytest.raises(ValueError, match="momentum"):
        optim.OPTIMIZERS.build("hf", model.parameters(), lr=1.0, momentum=0.9, weight_decay=0.0)
    opt = optim.OPTIMIZERS.build("hf", model.parameters(), lr=1.0, momentum=0.0, weight_decay=0.0)
    with pytest.raises(ValueError, match="closure"):
        opt.step()


def test_hf_trains_in_the_loop_and_lowers_the_training_loss():
    trial = Trial(data=DataConfig("mnist1d", n_train=256, n_test=100), model=ModelConfig("mlp", 1, 16, "tanh"),
                  optim=OptimConfig("hf", lr=1.0, options={"cg_iters": 5}), steps=20, batch_size=128, eval_every=10)
    rec = train(trial, 0)
    assert rec.status == "ok", rec.error
    loss = rec.curves["eval"]["train_loss_running"]
    assert loss[-1] < loss[1] < 2.3
