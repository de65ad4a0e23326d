import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from oplab import monitors, optim
from oplab.config import OptimConfig


def tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    return model, x, y


def full_hessian(model, x, y):
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])

    def loss_of(theta):
        params, i = {}, 0
        for n, s in zip(names, shapes):
            k = math.prod(s)
            params[n] = theta[i : i + k].view(s)
            i += k
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss_of, flat), flat


def test_hvp_matches_autograd_hessian():
    model, x, y = tiny()
    H, flat = full_hessian(model, x, y)
    v = [torch.randn_like(p) for p in model.parameters()]
    hv = torch.cat([t.flatten() for t in monitors.hvp(model, F.cross_entropy, x, y, v)])
    assert torch.allclose(hv, H @ torch.cat([t.flatten() for t in v]), atol=1e-5)


def test_curvature_and_top_eigenvalue_match_the_hessian():
    model, x, y = tiny()
    H, _ = full_hessian(model, x, y)
    g = torch.cat([t.flatten() for t in torch.autograd.grad(F.cross_entropy(model(x), y), model.parameters())])
    out = monitors.curvature(model, F.cross_entropy, x, y, eps=1e-3)
    assert out["gTg"] == pytest.approx(float(g @ g), rel=1e-5)
    assert out["gTHg"] == pytest.approx(float(g @ H @ g), rel=1e-4)
    # at a small step the second-order prediction (with the Taylor 1/2) matches the measured change
    assert out["actual_change"] == pytest.approx(out["predicted_change"], rel=1e-2)
    eigs = torch.linalg.eigvalsh(H)
    top = eigs[eigs.abs().argmax()]
    assert monitors.top_eigenvalue(model, F.cross_entropy, x, y, iters=200)["top_eigenvalue"] == pytest.approx(
        float(top), rel=1e-3)
    # monitors leave the parameters as they found them
    before = [p.clone() for p in model.parameters()]
    monitors.run(("curvature", "activations"), model, F.cross_entropy, x, y)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    for eps in (0.1, 0.37, 3.0):  # bit for bit, at steps where p - eps g + eps g would round off p
        monitors.curvature(model, F.cross_entropy, x, y, eps=eps)
        assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_clipping_by_norm_and_value_reports_the_norm_before():
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])  # norm 5
    norm, clipped = optim.clip_gradients([p], OptimConfig(clip="norm", clip_threshold=1.0))
    assert norm == pytest.approx(5.0) and clipped
    assert float(p.grad.norm()) == pytest.approx(1.0, rel=1e-5)
    p.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    norm, clipped = optim.clip_gradients([p], OptimConfig(clip="value", clip_threshold=1.0))
    assert norm == pytest.approx(math.sqrt(25.25)) and clipped
    assert p.grad.tolist() == [1.0, -1.0, 0.5, 0.0]
    p.grad = torch.tensor([0.3, 0.4, 0.0, 0.0])
    norm, clipped = optim.clip_gradients([p], OptimConfig(clip="norm", clip_threshold=1.0))
    assert norm == pytest.approx(0.5) and not clipped and p.grad.tolist() == pytest.approx([0.3, 0.4, 0, 0])


def test_schedules():
    f = optim.SCHEDULES.build("linear_decay", 100, start=0.5)
    assert [f(0), f(49), f(50), f(75), f(100)] == [1.0, 1.0, 1.0, 0.5, 0.0]
    g = optim.SCHEDULES.build("step", 90, every=1 / 3, factor=0.1)
    assert [g(0), g(29), g(30), g(60)] == pytest.approx([1.0, 1.0, 0.1, 0.01])
    with pytest.raises(ValueError, match="clip 'global' is not valid; valid: none, norm, value"):
        optim.build([nn.Parameter(torch.zeros(1))], OptimConfig(clip="global"), 10)


def test_ema_average_matches_the_formula():
    model = nn.Linear(2, 1, bias=False)
    ema = optim.averaged(model, 0.9)
    expected = None
    for _ in range(5):
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update_parameters(model)
        # torch's average starts at the first update's iterate
        w = model.weight.detach()
        expected = w.clone() if expected is None else 0.9 * expected + 0.1 * w
    assert torch.allclose(ema.module.weight, expected, atol=1e-6)
