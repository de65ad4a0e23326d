"""Net2Net transforms: function preservation (no noise), structure, refusals, noise."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oplab import models, norms
from oplab.config import ModelConfig, NormConfig
from oplab.net2net import deeper, hidden_blocks, same_structure, structure_mismatch, wider

SHAPE = (1, 28, 28)
TOL = 1e-5
ARCH = {"mlp": (3, 16), "convnet": (4, 8)}  # depth, width


def make(name: str, norm: str = "none", activation: str = "relu", seed: int = 0) -> nn.Module:
    """A model whose batch norms (if any) have non-trivial running statistics, in eval mode."""
    torch.manual_seed(seed)
    depth, width = ARCH[name]
    m = models.build(ModelConfig(name=name, depth=depth, width=width, activation=activation), SHAPE, 10)
    norms.apply(m, NormConfig(norm))
    if norm == "batch":
        m.train()
        with torch.no_grad():
            for _ in range(3):
                m(torch.randn(32, *SHAPE) * 2.0 + 0.5)
        bns = [b for b in m.modules() if isinstance(b, nn.BatchNorm1d | nn.BatchNorm2d)]
        assert bns and all(b.running_mean.abs().max() > 1e-3 for b in bns)
        assert all((b.running_var - 1).abs().max() > 1e-3 for b in bns)
        with torch.no_grad():  # non-trivial affine parameters too
            for b in bns:
                b.weight.uniform_(0.5, 1.5)
                b.bias.uniform_(-0.5, 0.5)
    return m.eval()


def max_err(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float((a(x) - b(x)).abs().max())


def snapshot(m: nn.Module) -> dict:
    return {k: v.clone() for k, v in m.state_dict().items()}


def unchanged(m: nn.Module, snap: dict) -> bool:
    sd = m.state_dict()
    return sd.keys() == snap.keys() and all(torch.equal(sd[k], snap[k]) for k in snap)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(24, *SHAPE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", ["mlp", "convnet"])
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_transforms_preserve_function(name, norm, x):
    m = make(name, norm)
    snap = snapshot(m)
    depth, width = ARCH[name]
    gen = torch.Generator().manual_seed(0)
    errs = []
    for layer, b in enumerate(hidden_blocks(m)):
        cur = m[b.weight].weight.shape[0]  # units or channels (the convnet doubles them)
        w = wider(m, layer, cur * 2 + 3, generator=gen)
        assert hidden_blocks(w) == hidden_blocks(m)
        errs.append(max_err(w, m, x))
        d = deeper(m, layer, batch=x)
        assert len(hidden_blocks(d)) == depth + 1
        errs.append(max_err(d, m, x))
        errs.append(max_err(deeper(m, layer), m, x))  # no batch: running stats (0, 1)
        chained = deeper(wider(m, layer, cur + 5, generator=gen), layer, batch=x)  # wider then deeper
        errs.append(max_err(chained, m, x))
    both = wider(wider(m, 0, width + 4, generator=gen), 1, width * 3, generator=gen)  # neighbours widened
    errs.append(max_err(both, m, x))
    with torch.no_grad():
        assert float(m(x).abs().max()) > 1e-2  # the outputs are not trivially small
    assert max(errs) < TOL, errs
    assert unchanged(m, snap) and not m.training


@pytest.mark.parametrize("name", ["mlp", "convnet"])
def test_deeper_batchnorm_is_identity_in_train_mode_on_its_batch(name, x):
    m = make(name, "batch")
    d = deeper(m, 1, batch=x)
    d.train(), m.train()
    with torch.no_grad():
        err = float((d(x) - m(x)).abs().max())
    assert err < 1e-4


def test_wider_copies_units_and_splits_outgoing_weights():
    m = make("mlp")
    w = wider(m, 1, 40, generator=torch.Generator().manual_seed(3))
    old_in, new_in = m[4], w[4]  # hidden layer 1
    old_out, new_out = m[7], w[7]  # its next layer
    assert torch.equal(new_in.weight[:16], old_in.weight)
    src = [next(j for j in range(16) if torch.equal(new_in.weight[i], old_in.weight[j])) for i in range(40)]
    counts = torch.bincount(torch.tensor(src), minlength=16)
    assert counts.sum() == 40 and (counts >= 1).all() and counts.max() > 1
    for i, j in enumerate(src):
        assert torch.equal(new_in.bias[i], old_in.bias[j])
        assert torch.allclose(new_out.weight[:, i], old_out.weight[:, j] / counts[j])
    # the copies' outgoing weights add up to the original unit's
    summed = torch.zeros_like(old_out.weight).index_add_(1, torch.tensor(src), new_out.weight.detach())
    assert torch.allclose(summed, old_out.weight, atol=1e-7)


def test_wider_is_reproducible_from_its_generator():
    m = make("convnet")
    a = wider(m, 2, 30, noise=0.1, generator=torch.Generator().manual_seed(5))
    b = wider(m, 2, 30, noise=0.1, generator=torch.Generator().manual_seed(5))
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("name", ["mlp", "convnet"])
def test_noise_changes_function_a_little_and_breaks_symmetry(name, x):
    """The Keras example's rule: the new units' incoming weights are exact copies, their outgoing
    weights (the next layer's columns for them) carry the noise, the originals' outgoing weights none."""
    m = make(name, "batch")
    depth, width = ARCH[name]
    w = wider(m, 1, width * 2, noise=0.05, generator=torch.Generator().manual_seed(2))
    twin = wider(m, 1, width * 2, noise=0.0, generator=torch.Generator().manual_seed(2))
    i, j = hidden_blocks(m)[1].weight, hidden_blocks(m)[2].weight
    assert torch.equal(w[i].weight, twin[i].weight) and torch.equal(w[i].bias, twin[i].bias)  # same units drawn
    out, exact = w[j].weight, twin[j].weight
    assert torch.equal(out[:, :width], exact[:, :width])  # the originals' outgoing weights: no noise
    assert (out[:, width:] != exact[:, width:]).all()  # every new unit's outgoing weights moved
    err = max_err(w, m, x)
    with torch.no_grad():
        scale = float(m(x).abs().max())
    assert TOL < err < 0.1 * scale
    assert max_err(twin, m, x) < TOL


def test_noise_std_is_a_fraction_of_the_new_outgoing_weights_std():
    """An independent computation of the example's rule: noise = grown - twin on the new columns,
    its std 0.05 x the population std of the twin's new columns (large layer: within 5%)."""
    torch.manual_seed(0)
    m = models.build(ModelConfig(name="mlp", depth=2, width=50, activation="relu"), SHAPE, 10).eval()
    lin = m[hidden_blocks(m)[1].weight]
    with torch.no_grad():
        lin.weight.copy_(torch.randn(50, 50))
        m[hidden_blocks(m)[1].weight + 3].weight.copy_(torch.randn(10, 50) * 3.0)
    grown = wider(m, 1, 2000, noise=0.05, generator=torch.Generator().manual_seed(9))
    twin = wider(m, 1, 2000, noise=0.0, generator=torch.Generator().manual_seed(9))
    k = hidden_blocks(m)[1].weight + 3  # the read-out after hidden layer 1
    new, ref = grown[k].weight[:, 50:].detach().numpy(), twin[k].weight[:, 50:].detach().numpy()
    import numpy as np

    assert abs(np.std(new - ref) / (0.05 * np.std(ref)) - 1) < 0.05
    assert np.isclose(np.mean(new - ref), 0, atol=0.2 * 0.05 * np.std(ref))


def test_the_generator_advances_alike_with_and_without_noise():
    """A chain of widenings from equal generators draws the same units with the noise on or off."""
    m = make("mlp")
    ga, gb = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    a = wider(wider(m, 0, 30, noise=0.05, generator=ga), 1, 30, noise=0.05, generator=ga)
    b = wider(wider(m, 0, 30, noise=0.0, generator=gb), 1, 30, noise=0.0, generator=gb)
    i0, i1 = hidden_blocks(a)[0].weight, hidden_blocks(a)[1].weight
    assert torch.equal(a[i0].weight, b[i0].weight)  # layer 1's incoming weights carry layer 0's noise
    assert torch.equal(a[i0].bias, b[i0].bias) and torch.equal(a[i1].bias, b[i1].bias)  # the same units copied
    assert torch.equal(ga.get_state(), gb.get_state())


def test_mlp_structure_matches_build():
    base = models.mlp(input_shape=SHAPE, out_dim=10, depth=1, width=400, activation="relu")
    w800 = models.mlp(input_shape=SHAPE, out_dim=10, depth=1, width=800, activation="relu")
    d2 = models.mlp(input_shape=SHAPE, out_dim=10, depth=2, width=400, activation="relu")
    grown = wider(base, 0, 800, generator=torch.Generator().manual_seed(0))
    assert same_structure(grown, w800)
    assert same_structure(deeper(base, 0), d2)
    assert not same_structure(grown, base)
    with pytest.raises(ValueError, match="state_dict entry"):
        same_structure(grown, base, raise_error=True)
    assert "modules" in structure_mismatch(deeper(base, 0), base)
    w800.load_state_dict(grown.state_dict())
    xin = torch.randn(8, *SHAPE)
    assert max_err(w800, base, xin) < TOL


def test_mlp_structure_matches_build_with_batchnorm(x):
    def built(depth, width):
        m = models.mlp(input_shape=SHAPE, out_dim=10, depth=depth, width=width, activation="relu")
        return norms.apply(m, NormConfig("batch")).eval()

    m = make("mlp", "batch")  # depth 3, width 16
    grown = deeper(wider(m, 2, 16, generator=torch.Generator()), 2, batch=x)
    target = built(4, 16)
    assert same_structure(grown, target, raise_error=True)
    target.load_state_dict(grown.state_dict())
    assert max_err(target, m, x) < TOL


def test_convnet_deeper_keeps_spatial_size(x):
    m = make("convnet")
    d = deeper(m, 1)  # inserted before the max-pool that follows block 1
    ins = d[hidden_blocks(d)[2].weight]
    assert isinstance(ins, nn.Conv2d) and ins.kernel_size == (3, 3) and ins.padding == (1, 1)
    assert ins.in_channels == ins.out_channels == 8
    assert max_err(d, m, x) < TOL


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softsign"])
def test_deeper_refuses_non_idempotent_activations(act):
    m = make("mlp", activation=act)
    with pytest.raises(ValueError, match=f"f\\(f\\(x\\)\\) = f\\(x\\) such as relu; got {act}"):
        deeper(m, 0)


def test_deeper_on_linear_activation_preserves(x):
    m = make("mlp", activation="linear")
    assert max_err(deeper(m, 1), m, x) < TOL


def test_refusals():
    m = make("mlp")
    with pytest.raises(ValueError, match="width >= the layer's current width 16"):
        wider(m, 0, 8)
    with pytest.raises(ValueError, match="out of range; valid: 0 to 2"):
        wider(m, 3, 32)
    with pytest.raises(ValueError, match="out of range; valid: 0 to 2"):
        deeper(m, -1)
    with pytest.raises(ValueError, match="noise must be >= 0"):
        wider(m, 0, 32, noise=-1.0)
    for norm in ("weight", "weight_meanbn"):
        wn = norms.apply(models.build(ModelConfig(name="mlp", depth=2, width=8), SHAPE, 10), NormConfig(norm))
        with pytest.raises(ValueError, match="weight-normalized.*valid norms: none, batch"):
            wider(wn, 0, 16)
        with pytest.raises(ValueError, match="weight-normalized.*valid norms: none, batch"):
            deeper(wn, 0)
    with pytest.raises(ValueError, match="nn.Sequential"):
        wider(nn.Linear(3, 3), 0, 4)


def test_input_model_untouched_in_train_mode(x):
    m = make("convnet", "batch").train()
    snap = snapshot(m)
    wider(m, 3, 20, noise=0.1, generator=torch.Generator().manual_seed(0))
    d = deeper(m, 2, batch=x)
    assert unchanged(m, snap) and m.training and d.training


def test_the_noise_free_twin_is_grown_from_the_same_stream():
    """init.net2net measures preservation with a twin grown without noise from the same generator as
    the trained net: with noise 0 both are the same net, so the two errors are equal."""
    import torch

    from oplab import init

    torch.manual_seed(0)
    teacher = models.build(ModelConfig(name="mlp", depth=2, width=6, activation="relu"), SHAPE, 10).eval()
    student = models.build(ModelConfig(name="mlp", depth=2, width=9, activation="relu"), SHAPE, 10)
    x = torch.randn(16, *SHAPE)
    report = init.net2net(student, x, ops=[["wider", 0, 9], ["wider", 1, 9]], noise=0.0, teacher=teacher, seed=3)
    assert report["preservation_error"] == report["preservation_error_no_noise"]
    noisy = models.build(ModelConfig(name="mlp", depth=2, width=9, activation="relu"), SHAPE, 10)
    r2 = init.net2net(noisy, x, ops=[["wider", 0, 9], ["wider", 1, 9]], noise=0.5, teacher=teacher, seed=3)
    assert r2["preservation_error_no_noise"] == report["preservation_error"]  # the same twin
