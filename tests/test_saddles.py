"""oplab.saddles against independent computations: the full Hessian against
torch.autograd.functional.hessian, the index against numpy's eigenvalues, the damped Newton search on
a function whose critical points are known, the monitor (model untouched, weight-space symmetry),
and the downsampled digits against block means computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oplab import saddles
from oplab.config import DataConfig
from oplab.data import load
from oplab.dataset import DATASETS
from oplab.monitors import MONITORS


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    x = torch.randn(40, 3)
    y = torch.randint(0, 3, (40,))
    return model, x, y


@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_hessian_matches_autograd_functional_hessian(l2):
    model, x, y = _tiny()
    m64 = model.double()
    f, theta = saddles.flat_loss(m64, F.cross_entropy, x.double(), y, l2)
    # independent: autograd.functional on a hand-written forward pass of the same weights
    w1, b1, w2, b2 = (p.detach() for p in m64.parameters())
    sizes = [w1.numel(), b1.numel(), w2.numel(), b2.numel()]

    def loss(flat):
        a, b, c, d = flat.split(sizes)
        h = torch.tanh(x.double() @ a.view_as(w1).T + b)
        return F.cross_entropy(h @ c.view_as(w2).T + d, y) + 0.5 * l2 * (flat**2).sum()

    want = torch.autograd.functional.hessian(loss, theta)
    got = saddles.hessian(f, theta)
    assert torch.allclose(got, want, atol=1e-10)
    g, h = saddles.full_hessian(model, F.cross_entropy, x, y) if l2 == 0 else (None, None)
    if h is not None:
        assert torch.allclose(h, want, atol=1e-10)
        assert torch.allclose(g, torch.autograd.functional.jacobian(loss, theta), atol=1e-10)


def test_index_counts_negative_eigenvalues_beyond_the_tolerance():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    eigs = np.array([-3.0, -0.5, -1e-9, 0.0, 2.0, 4.0])  # -1e-9 is within 1e-6 x 4 of zero: not negative
    h = torch.tensor(q @ np.diag(eigs) @ q.T)
    got = saddles.index_of(torch.linalg.eigvalsh(h))
    assert got == pytest.approx(2 / 6)
    assert got == pytest.approx(np.mean(np.linalg.eigvalsh(h.numpy()) < -1e-6 * 4.0))


def _double_well(v: torch.Tensor) -> torch.Tensor:
    """x^4/4 - x^2/2 + y^2/2 + (z^2 - 1)^2: gradient (x^3 - x, y, 4 z (z^2 - 1)), so its critical points are
    x in {-1, 0, 1}, y = 0, z in {-1, 0, 1}; the Hessian is diag(3x^2 - 1, 1, 12 z^2 - 4)."""
    x, y, z = v
    return x**4 / 4 - x**2 / 2 + y**2 / 2 + (z**2 - 1) ** 2


@pytest.mark.parametrize("start,where,index", [((0.2, 0.5, 1.2), (0.0, 0.0, 1.0), 1 / 3),
                                               ((0.9, -0.4, 0.2), (1.0, 0.0, 0.0), 1 / 3),
                                               ((0.15, 0.3, 0.1), (0.0, 0.0, 0.0), 2 / 3),
                                               ((-1.2, 0.1, -0.8), (-1.0, 0.0, -1.0), 0.0)])
def test_damped_newton_finds_the_nearby_critical_point_of_any_index(start, where, index):
    found = saddles.critical_point(_double_well, torch.tensor(start, dtype=torch.float64))
    assert found["converged"] and found["grad_norm"] <= saddles.GTOL
    assert torch.allclose(found["theta"], torch.tensor(where, dtype=torch.float64), atol=1e-4)
    x, _, z = where
    assert saddles.index_of(found["eigs"]) == pytest.approx(index)
    assert sorted(found["eigs"].tolist()) == pytest.approx(sorted([3 * x**2 - 1, 1.0, 12 * z**2 - 4]), abs=1e-3)


def test_a_function_without_critical_points_is_never_reported_converged():
    def f(v):
        return torch.exp(v[0]) + v[1] ** 2  # the gradient's first component exp(x) never vanishes

    found = saddles.critical_point(f, torch.tensor([0.0, 1.0], dtype=torch.float64), iters=10)
    assert not found["converged"] and found["grad_norm"] > saddles.GTOL


def test_the_monitor_leaves_the_model_unchanged_and_permuted_points_are_copies():
    model, x, _ = _tiny(1)
    y = (x @ torch.randn(3, 3)).argmax(1)  # labels the net can learn: its minimum is not at the origin
    opt = torch.optim.SGD(model.parameters(), lr=0.5, weight_decay=saddles.SEARCH_L2)
    for _ in range(1000):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    before = [p.detach().clone() for p in model.parameters()]
    out = MONITORS.build("saddle_search", model, F.cross_entropy, x, y, iters=40)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert out["cp_converged"] == 1.0 and out["cp_grad_norm"] <= saddles.GTOL
    assert out["perm_loss"] == pytest.approx(out["cp_loss"], abs=1e-12)
    assert out["perm_index"] == out["cp_index"] and out["perm_grad_norm"] <= saddles.GTOL
    assert out["perm_distance"] > 1e-3  # another point of weight space
    f, theta = saddles.flat_loss(model.double(), F.cross_entropy, x.double(), y, saddles.SEARCH_L2)
    assert out["it_loss"] == pytest.approx(float(f(theta)))


def test_downsampled_digits_are_block_means_restandardized():
    full = load(DataConfig("mnist5k"))
    small = DATASETS.build("mnist5k_small", side=14)  # 28 / 14: exact 2 x 2 blocks
    x = full.x_train[:, 0].numpy()
    blocks = x.reshape(len(x), 14, 2, 14, 2).mean(axis=(2, 4))
    blocks = (blocks - blocks.mean()) / blocks.std(ddof=1)
    assert np.allclose(small.x_train[:, 0].numpy(), blocks, atol=1e-4)
    assert torch.equal(small.y_train, full.y_train) and small.x_test.shape == (1000, 1, 14, 14)
