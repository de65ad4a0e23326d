"""oplab.critical against independent computations: the objective and its gradient against the module's
own loss, Hessian-vector products and the Hessian's extreme eigenvalues against the full Hessian
(torch.autograd.functional.hessian, numpy's eigvalsh), the L-BFGS search against Newton's method on a
convex problem, and the probe inside a training run (the model untouched, the record's columns)."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oplab import critical, plan
from oplab.config import CriticalConfig, DataConfig, ModelConfig, NormConfig, OptimConfig, Trial, key_dict
from oplab.train import train_model


def _net(seed=0, hidden=4, inputs=3, classes=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(inputs, hidden), nn.Tanh(), nn.Linear(hidden, classes))


def _data(n=20, inputs=3, classes=3, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, inputs, generator=g), torch.randint(0, classes, (n,), generator=g)


def test_objective_is_the_mean_loss_plus_half_wd_times_the_squared_norm():
    model, (x, y) = _net(), _data()
    f = critical.Objective(model, F.cross_entropy, x, y, weight_decay=0.1)
    theta = critical.Objective.flat(model)
    obj, loss, g = f.value_grad(theta)
    ref = model.double()
    ref_loss = F.cross_entropy(ref(x.double()), y)
    ref_obj = ref_loss + 0.05 * sum((p * p).sum() for p in ref.parameters())
    grads = torch.autograd.grad(ref_obj, list(ref.parameters()))
    assert loss == pytest.approx(float(ref_loss), rel=1e-12)
    assert obj == pytest.approx(float(ref_obj), rel=1e-12)
    assert torch.allclose(g, torch.cat([gi.flatten() for gi in grads]), rtol=1e-10, atol=1e-14)


def test_hvp_and_extreme_eigenvalues_match_the_full_hessian():
    model, (x, y) = _net(hidden=5), _data(n=30)
    f = critical.Objective(model, F.cross_entropy, x, y, weight_decay=0.01)
    theta = critical.Objective.flat(model) + 0.3  # off any special point
    hess = torch.autograd.functional.hessian(f, theta)
    v = torch.randn(theta.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(f.hvp(theta, v), hess @ v, rtol=1e-9, atol=1e-12)
    eig = np.linalg.eigvalsh(hess.numpy())
    got = critical.hessian_extremes(f, theta, tol=1e-10, maxiter=2000)
    assert got["min"] == pytest.approx(eig[0], abs=1e-7)
    assert got["max"] == pytest.approx(eig[-1], rel=1e-7)
    assert eig[0] < 0 < eig[-1]  # the test point is a saddle-like region: both signs are checked


def test_lbfgs_finds_the_minimum_newtons_method_finds_on_a_convex_problem():
    """Softmax regression with weight decay is strictly convex: L-BFGS from a random start must end at
    the unique minimum, which Newton's method with the full Hessian finds independently."""
    torch.manual_seed(3)
    model = nn.Linear(4, 3)
    x, y = _data(n=50, inputs=4)
    f = critical.Objective(model, F.cross_entropy, x, y, weight_decay=0.05)
    theta0 = critical.Objective.flat(model)
    found, path = critical.lbfgs(f, theta0, iters=200, tol=1e-12)
    newton = theta0.clone()
    for _ in range(30):
        _, _, g = f.value_grad(newton)
        newton = newton - torch.linalg.solve(torch.autograd.functional.hessian(f, newton), g)
    assert float(f.value_grad(newton)[2].norm()) < 1e-12
    assert torch.allclose(found, newton, atol=1e-8)
    assert path["step"] == list(range(len(path["step"])))
    assert path["grad_norm"][-1] < 1e-7 < path["grad_norm"][0]
    assert path["objective"][-1] < path["objective"][0]  # (line-search trial points may rise between)


def _trial(**kw):
    return Trial(data=DataConfig("mnist1d", n_train=60, n_test=40), model=ModelConfig("mlp", 1, 6, "tanh"),
                 optim=OptimConfig("sgd", lr=0.3, weight_decay=0.01), steps=12, batch_size=20, eval_every=4,
                 critical=CriticalConfig("lbfgs", options={"iters": 30}), **kw)


def test_a_trial_records_the_full_split_gradient_and_the_search_and_leaves_its_model_alone():
    rec, model = train_model(_trial(), 0)
    ev, final = rec.curves["eval"], rec.final
    assert len(ev["grad_norm_full"]) == len(ev["step"]) == 4
    # the last evaluation is at the trained weights: the same objective and gradient as the search's start
    assert ev["objective_full"][-1] == pytest.approx(final["end_objective"], rel=1e-12)
    assert ev["grad_norm_full"][-1] == pytest.approx(final["end_grad_norm"], rel=1e-12)
    assert rec.curves["search"]["grad_norm"][0] == pytest.approx(final["end_grad_norm"], rel=1e-12)
    assert final["cp_grad_norm"] < final["end_grad_norm"] and final["cp_objective"] <= final["end_objective"]
    assert final["cp_evals"] == len(rec.curves["search"]["step"])
    assert final["cp_min_eig"] <= final["cp_max_eig"]
    # the returned model is the trained one: its full-split objective is the end's, not the point found's
    from oplab import data as datalib
    d = datalib.load(_trial().data)
    f = critical.Objective(model, F.cross_entropy, d.x_train, d.y_train, 0.01)
    assert f.value_grad(critical.Objective.flat(model))[0] == pytest.approx(final["end_objective"], rel=1e-12)
    # and the same trial without the probe trains to the same weights (the probe draws no random numbers)
    plain, plain_model = train_model(dataclasses.replace(_trial(), critical=CriticalConfig()), 0)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), plain_model.parameters()))
    assert "search" not in plain.curves and "grad_norm_full" not in plain.curves["eval"]


def test_keys_of_trials_without_the_probe_are_unchanged_and_bad_settings_are_refused():
    assert "critical" not in key_dict(Trial())
    assert "critical" in key_dict(_trial())
    with pytest.raises(ValueError, match="unknown critical-point search 'newton'"):
        plan.check_trial(Trial(critical=CriticalConfig("newton")))
    with pytest.raises(ValueError, match="no option 'steps'"):
        plan.check_trial(Trial(critical=CriticalConfig("lbfgs", options={"steps": 3})))
    with pytest.raises(ValueError, match="batch or weight norm"):
        train_model(dataclasses.replace(_trial(), norm=NormConfig("batch")), 0)
