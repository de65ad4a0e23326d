"""FitNets primitives: KD loss and its schedule, hint regressor and loss, hidden-block access."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oplab import models, norms
from oplab.config import ModelConfig, NormConfig
from oplab.distill import HintRegressor, block_shape, forward_to, hint_loss, kd_lambda, kd_loss, middle_block, n_blocks
from oplab.net2net import hidden_blocks


def logits(seed: int, n: int = 16, k: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, k, generator=g) * 3, torch.randn(n, k, generator=g) * 3,
            torch.randint(k, (n,), generator=g))


def np_log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_kd_with_lambda_zero_is_cross_entropy():
    s, t, y = logits(0)
    assert torch.equal(kd_loss(s, t, y, lam=0.0), F.cross_entropy(s, y))


@pytest.mark.parametrize("lam,tau", [(4.0, 3.0), (1.0, 3.0), (2.5, 1.0), (0.7, 7.0)])
def test_kd_matches_numpy(lam, tau):
    s, t, y = logits(1)
    sn, tn, yn = s.double().numpy(), t.double().numpy(), y.numpy()
    ce = -np_log_softmax(sn)[np.arange(len(yn)), yn].mean()
    p_t = np.exp(np_log_softmax(tn / tau))
    soft = -(p_t * np_log_softmax(sn / tau)).sum(axis=1).mean()
    want = ce + lam * soft
    assert float(kd_loss(s, t, y, lam=lam, tau=tau)) == pytest.approx(want, rel=1e-5)


def test_kd_has_no_tau_squared_factor():
    s, t, y = logits(2)
    tau, lam = 3.0, 2.0
    soft = float(kd_loss(s, t, y, lam=lam, tau=tau) - F.cross_entropy(s, y)) / lam
    expected = float(-(F.softmax(t / tau, 1) * F.log_softmax(s / tau, 1)).sum(1).mean())
    assert soft == pytest.approx(expected, rel=1e-5)
    assert abs(soft - tau**2 * expected) > 1.0  # a tau^2 factor would be caught


def test_kd_detaches_teacher_and_trains_student():
    s, t, y = logits(3)
    s.requires_grad_(True)
    t.requires_grad_(True)
    kd_loss(s, t, y, lam=4.0).backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0


def test_kd_refusals():
    s, t, y = logits(4)
    with pytest.raises(ValueError, match="tau must be > 0"):
        kd_loss(s, t, y, lam=1.0, tau=0.0)
    with pytest.raises(ValueError, match="differ in shape"):
        kd_loss(s, t[:, :5], y, lam=1.0)


def test_kd_lambda_schedule():
    assert kd_lambda(0, 100) == 4.0
    assert kd_lambda(100, 100) == 1.0
    assert kd_lambda(250, 100) == 1.0  # held at the end
    assert kd_lambda(50, 100) == pytest.approx(2.5)
    vals = [kd_lambda(s, 10) for s in range(11)]
    assert np.allclose(np.diff(vals), -0.3)  # linear
    assert kd_lambda(5, 10, start=4.0, end=0.0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="total must be > 0"):
        kd_lambda(0, 0)


@pytest.mark.parametrize("guided,hint,kernel", [((16, 14, 14), (32, 7, 7), (8, 8)),
                                               ((8, 28, 28), (16, 28, 28), (1, 1)),
                                               ((4, 10, 12), (6, 3, 5), (8, 8))])
def test_conv_regressor_shape_and_kernel(guided, hint, kernel):
    r = HintRegressor(guided, hint, "relu")
    conv = r.regressor
    assert isinstance(conv, nn.Conv2d) and conv.kernel_size == kernel and conv.padding == (0, 0)
    assert isinstance(r.activation, nn.ReLU)
    out = r(torch.randn(3, *guided))
    assert out.shape == (3, *hint) and (out >= 0).all()


@pytest.mark.parametrize("guided,hint", [((30,), (400,)), ((16, 7, 7), (64,)), ((50,), (4, 3, 3))])
def test_flat_regressor_shape(guided, hint):
    r = HintRegressor(guided, hint, "tanh")
    assert isinstance(r.activation, nn.Tanh)
    assert r(torch.randn(5, *guided)).shape == (5, *hint)


def test_regressor_refuses_small_guided_map():
    with pytest.raises(ValueError, match="smaller than the hint map"):
        HintRegressor((16, 7, 7), (32, 14, 14), "relu")
    with pytest.raises(ValueError, match="expects"):
        HintRegressor((30,), (40,), "relu")(torch.randn(2, 31))


def test_hint_loss_matches_manual():
    g = torch.Generator().manual_seed(5)
    h, r = torch.randn(4, 3, 5, 5, generator=g), torch.randn(4, 3, 5, 5, generator=g)
    d = (h - r).double().numpy()
    want = np.mean([0.5 * (d[i] ** 2).sum() for i in range(4)])
    assert float(hint_loss(h, r)) == pytest.approx(want, rel=1e-6)
    hf, rf = h.flatten(1), r.flatten(1)
    assert float(hint_loss(hf, rf)) == pytest.approx(want, rel=1e-6)
    assert float(hint_loss(h, h)) == 0.0
    h.requires_grad_(True)
    rr = r.clone().requires_grad_(True)
    hint_loss(h, rr).backward()
    assert h.grad is None and torch.allclose(rr.grad, (r - h.detach()) / 4)
    with pytest.raises(ValueError, match="differ in shape"):
        hint_loss(h, r[:, :2])


@pytest.mark.parametrize("name,depth,norm", [("mlp", 5, "none"), ("mlp", 4, "batch"), ("convnet", 4, "batch"),
                                             ("convnet", 3, "weight")])
def test_forward_to_equals_slicing(name, depth, norm):
    torch.manual_seed(0)
    m = models.build(ModelConfig(name=name, depth=depth, width=8), (1, 28, 28), 10)
    norms.apply(m, NormConfig(norm))
    m.eval()
    x = torch.randn(6, 1, 28, 28)
    assert n_blocks(m) == depth and middle_block(m) == depth // 2
    for k, b in enumerate(hidden_blocks(m)):
        with torch.no_grad():
            got, want = forward_to(m, x, k), m[:b.act + 1](x)
        assert torch.equal(got, want)
        assert isinstance(m[b.act], nn.ReLU)
        assert block_shape(m, (1, 28, 28), k) == tuple(want.shape[1:])
    with pytest.raises(ValueError, match="out of range"):
        forward_to(m, x, depth)


def test_regressor_between_convnets_end_to_end():
    torch.manual_seed(0)
    teacher = models.build(ModelConfig(name="convnet", depth=5, width=16), (1, 28, 28), 10)
    student = models.build(ModelConfig(name="convnet", depth=6, width=8), (1, 28, 28), 10)
    kh, ks = middle_block(teacher), middle_block(student)
    hint_shape, guided_shape = block_shape(teacher, (1, 28, 28), kh), block_shape(student, (1, 28, 28), ks)
    assert hint_shape == (32, 14, 14) and guided_shape == (16, 14, 14)
    r = HintRegressor(guided_shape, hint_shape, "relu")
    assert r.regressor.kernel_size == (1, 1)
    x = torch.randn(4, 1, 28, 28)
    loss = hint_loss(forward_to(teacher, x, kh), r(forward_to(student, x, ks)))
    loss.backward()
    assert loss > 0 and student[0].weight.grad is not None and teacher[0].weight.grad is None
