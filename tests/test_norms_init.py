import math

import pytest
import torch
from torch import nn

from oplab import init, models, norms
from oplab.config import InitConfig, ModelConfig, NormConfig


def build(name="mlp", norm="none", depth=3, width=24, shape=(1, 8, 8)):
    torch.manual_seed(0)
    m = models.build(ModelConfig(name, depth, width), shape, 10)
    return norms.apply(m, NormConfig(norm))


def test_weight_norm_weight_is_g_v_over_norm_v():
    m = build(norm="weight")
    layer = models.weight_layers(m)[1]
    g = layer.parametrizations.weight.original0
    v = layer.parametrizations.weight.original1
    with torch.no_grad():
        g.mul_(torch.linspace(0.5, 2.0, g.shape[0]).view(-1, 1))
    expected = g * v / v.norm(dim=1, keepdim=True)
    assert torch.allclose(layer.weight, expected, atol=1e-6)


@pytest.mark.parametrize("name,shape", [("mlp", (1, 8, 8)), ("convnet", (1, 8, 8))])
@pytest.mark.parametrize("norm", ["weight", "weight_meanbn"])
def test_data_dependent_init_standardizes_preactivations(name, shape, norm):
    m = build(name, norm, depth=4, width=8, shape=shape)
    x = torch.randn(64, *shape) * 3 + 1
    norms.data_dependent_init(m, x)
    outs = models.forward_inputs(m.train(), x, models.weight_layers(m))
    for o in outs[:-1] if norm == "weight_meanbn" else outs:
        dims = [0] + list(range(2, o.ndim))
        assert torch.allclose(o.mean(dim=dims), torch.zeros(o.shape[1]), atol=1e-4)
        assert torch.allclose(o.std(dim=dims), torch.ones(o.shape[1]), atol=1e-3)


def test_data_dependent_init_keeps_running_statistics():
    m = build(norm="weight_meanbn")
    before = {k: v.clone() for k, v in m.state_dict().items() if "running" in k}
    norms.data_dependent_init(m, torch.randn(32, 1, 8, 8))
    after = {k: v for k, v in m.state_dict().items() if "running" in k}
    assert before and all(torch.equal(before[k], after[k]) for k in before)


def test_mean_only_batch_norm():
    mobn = norms.MeanOnlyBatchNorm(5)
    with torch.no_grad():
        mobn.bias.copy_(torch.arange(5.0))
    x = torch.randn(50, 5) * 4 + 7
    y = mobn.train()(x)
    assert torch.allclose(y.mean(0), torch.arange(5.0), atol=1e-5)  # zero batch mean, plus the bias
    assert torch.allclose((y - torch.arange(5.0)).std(0), x.std(0), atol=1e-5)  # no rescaling
    assert torch.allclose(mobn.running_mean, 0.1 * x.mean(0), atol=1e-5)
    x2 = torch.randn(4, 5, 3, 3)
    y2 = norms.MeanOnlyBatchNorm(5, spatial=True).train()(x2)
    assert torch.allclose(y2.mean(dim=(0, 2, 3)), torch.zeros(5), atol=1e-5)
    ev = mobn.eval()(x)
    assert torch.allclose(ev, x - mobn.running_mean + torch.arange(5.0))


def test_norms_put_layers_where_the_slots_are():
    assert sum(isinstance(m, nn.BatchNorm1d) for m in build(norm="batch").modules()) == 3
    assert sum(isinstance(m, nn.BatchNorm2d) for m in build("convnet", "batch", 4, 8).modules()) == 4
    assert sum(isinstance(m, norms.MeanOnlyBatchNorm) for m in build(norm="weight_meanbn").modules()) == 3
    plain = build(norm="none")
    assert not any(isinstance(m, nn.BatchNorm1d) for m in plain.modules())
    assert all(norms.is_weight_normed(m) for m in models.weight_layers(build(norm="weight")))
    with pytest.raises(KeyError, match="valid: batch, none, weight, weight_meanbn"):
        norms.apply(plain, NormConfig("layer"))


def test_initializers_follow_their_rules():
    m = build(depth=2, width=300, shape=(1, 20, 20))
    init.apply(m, InitConfig("glorot"))
    w = models.weight_layers(m)[0].weight.detach()
    u = math.sqrt(6 / (400 + 300))
    assert float(w.abs().max()) <= u and float(w.abs().max()) > 0.95 * u
    init.apply(m, InitConfig("standard"))
    w = models.weight_layers(m)[0].weight.detach()
    assert float(w.abs().max()) <= 1 / math.sqrt(400) and float(w.abs().max()) > 0.95 / math.sqrt(400)
    init.apply(m, InitConfig("normal", {"sigma": 0.05}))
    assert abs(float(models.weight_layers(m)[0].weight.detach().std()) - 0.05) < 0.002
    init.apply(m, InitConfig("orthogonal", {"gain": 2.0}))
    w = models.weight_layers(m)[1].weight  # 300 x 300
    assert torch.allclose(w @ w.T, 4 * torch.eye(300), atol=1e-4)
    init.apply(m, InitConfig("he"))
    assert abs(float(models.weight_layers(m)[1].weight.detach().std()) - math.sqrt(2 / 300)) < 0.003
    assert all(float(layer.bias.detach().abs().max()) == 0 for layer in models.weight_layers(m))


def test_initializer_sets_weight_norm_direction_and_scale():
    m = build(norm="weight")
    init.apply(m, InitConfig("orthogonal"))
    layer = models.weight_layers(m)[1]
    w = layer.weight
    assert torch.allclose(w @ w.T, torch.eye(w.shape[0]), atol=1e-5)  # g = ||v|| keeps the function


def test_probing_restores_mode_and_running_statistics():
    m = build(norm="batch").eval()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with models.probing(m, train=True):
        assert m.training
        m(torch.randn(16, 1, 8, 8) * 5 + 3)  # would move the running statistics
    assert not m.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
