"""The deep_linear model and the lecun initializer, against independent computations."""

import pytest
import torch
from torch import nn

from oplab import init as initlib
from oplab import models
from oplab.config import InitConfig, ModelConfig
from oplab.registry import UnknownNameError


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_deep_linear_computes_the_product_of_its_matrices(depth):
    torch.manual_seed(0)
    model = models.build(ModelConfig("deep_linear", depth, 7), (1, 4, 4), 3)
    layers = models.weight_layers(model)
    assert len(layers) == depth and all(isinstance(m, nn.Linear) and m.bias is None for m in layers)
    assert [m.in_features for m in layers] == [16] + [7] * (depth - 1)
    assert [m.out_features for m in layers] == [7] * (depth - 1) + [3]
    x = torch.randn(5, 1, 4, 4)
    product = torch.eye(16)
    for m in layers:
        product = m.weight.detach() @ product
    assert torch.allclose(model(x), x.flatten(1) @ product.T, atol=1e-5)
    assert not any(isinstance(m, nn.ReLU | nn.Tanh | nn.Sigmoid | models.NormSlot) for m in model.modules())


def test_deep_linear_options():
    with_bias = models.build(ModelConfig("deep_linear", 3, 5, options={"bias": True}), (4,), 2)
    assert all(m.bias is not None for m in models.weight_layers(with_bias))
    with pytest.raises(ValueError, match="depth >= 1"):
        models.build(ModelConfig("deep_linear", 0, 5), (4,), 2)
    with pytest.raises(UnknownNameError, match="deep_linear"):  # listed among the valid names
        models.build(ModelConfig("deep_lin", 2, 5), (4,), 2)


def test_orthogonal_init_keeps_the_hidden_product_an_isometry_and_lecun_does_not():
    """Saxe et al.'s point: a product of orthogonal square matrices is orthogonal (all singular
    values 1); a product of N(0, 1/n) matrices spreads its singular values with depth."""
    torch.manual_seed(0)
    model = models.build(ModelConfig("deep_linear", 12, 32), (32,), 32)
    initlib.apply(model, InitConfig("orthogonal"))
    prod = torch.eye(32, dtype=torch.float64)
    for m in models.weight_layers(model):
        prod = m.weight.detach().double() @ prod
    sv = torch.linalg.svdvals(prod)
    assert torch.allclose(sv, torch.ones_like(sv), atol=1e-4)
    initlib.apply(model, InitConfig("lecun"))
    prod = torch.eye(32, dtype=torch.float64)
    for m in models.weight_layers(model):
        w = m.weight.detach().double()
        assert abs(float(w.var()) * 32 - 1.0) < 0.15  # N(0, 1 / fan_in)
        prod = w @ prod
    sv = torch.linalg.svdvals(prod)
    assert float(sv.max() / sv.min()) > 100
