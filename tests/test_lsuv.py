"""LSUV init (oplab.init.lsuv) checked against computations made here, not by the initializer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from oplab import init as initlib
from oplab import norms
from oplab.config import InitConfig, ModelConfig, NormConfig
from oplab.models import build, weight_layers
from oplab.registry import UnknownNameError

TOL = 0.1


def _net(name: str, norm: str, activation: str = "relu") -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    if name == "mlp":
        model = build(ModelConfig("mlp", 8, 24, activation), (1, 8, 8), 10)
    else:
        model = build(ModelConfig("convnet", 4, 6, activation), (1, 8, 8), 10)
    norms.apply(model, NormConfig(norm))
    x = 3.0 * torch.randn(64, 1, 8, 8) + 0.5  # far from unit variance on purpose
    return model, x


def _layer_variances(model: nn.Sequential, x: torch.Tensor) -> list[float]:
    """Var of every weight layer's output on x, by running the Sequential one module at a time
    (training mode, as LSUV measures), without hooks."""
    was = model.training
    model.train()
    out, h = [], x
    with torch.no_grad():
        for m in model:
            h = m(h)
            if isinstance(m, nn.Linear | nn.Conv2d):
                out.append(float(h.var()))
    model.train(was)
    return out


def _bn_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.detach().clone() for n, m in model.named_modules()
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d) for k, v in {**dict(m.named_parameters()),
                                                                          **dict(m.named_buffers())}.items()}


def test_registry_lists_lsuv():
    assert "lsuv" in initlib.INITS.names()
    with pytest.raises(UnknownNameError, match="valid: .*lsuv"):
        initlib.INITS["lsvu"]


@pytest.mark.parametrize("name", ["mlp", "convnet"])
@pytest.mark.parametrize("norm", ["none", "batch"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_unit_variance_after_lsuv(name, norm, activation):
    model, x = _net(name, norm, activation)
    before = _layer_variances(model, x)
    report = initlib.apply(model, InitConfig("lsuv", {"tol": TOL, "tmax": 10}), x)
    after = _layer_variances(model, x)
    assert len(after) == len(weight_layers(model)) == len(report["layers"])
    assert any(abs(v - 1) >= TOL for v in before)  # the test is not vacuous
    for i, v in enumerate(after):
        assert abs(v - 1) < TOL, f"layer {i}: Var = {v}"
    # the report agrees with the independent measurement
    for rep, v in zip(report["layers"], after):
        assert rep["var"] == pytest.approx(v, rel=1e-4)
        assert rep["converged"] and 0 <= rep["iters"] <= 10


def test_weights_are_orthonormal_up_to_scale_and_biases_zero():
    model, x = _net("mlp", "none")
    initlib.apply(model, InitConfig("lsuv"), x)
    for m in weight_layers(model):
        w = m.weight.detach().reshape(m.weight.shape[0], -1)
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        scale = gram.diagonal().mean()
        assert torch.allclose(gram / scale, torch.eye(len(gram)), atol=1e-4)
        assert torch.count_nonzero(m.bias) == 0


def test_structure_unchanged_and_hooks_removed():
    model, x = _net("convnet", "batch")
    shapes = {n: p.shape for n, p in model.named_parameters()}
    buffers = {n: b.shape for n, b in model.named_buffers()}
    kinds = [type(m) for m in model.modules()]
    model.eval()
    initlib.apply(model, InitConfig("lsuv"), x)
    assert {n: p.shape for n, p in model.named_parameters()} == shapes
    assert {n: b.shape for n, b in model.named_buffers()} == buffers
    assert [type(m) for m in model.modules()] == kinds
    assert not model.training  # mode restored
    assert all(not m._forward_hooks for m in model.modules())


@pytest.mark.parametrize("name", ["mlp", "convnet"])
def test_batchnorm_parameters_and_buffers_untouched(name):
    model, x = _net(name, "batch")
    with torch.no_grad():  # non-default BN state, so that a reset would show
        for m in model.modules():
            if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
                m.running_mean.uniform_(-1, 1)
                m.running_var.uniform_(0.5, 2)
    state = _bn_state(model)
    assert state
    initlib.apply(model, InitConfig("lsuv"), x)
    after = _bn_state(model)
    for k, v in state.items():
        assert torch.equal(after[k], v), k


def test_weight_normed_layers():
    model, x = _net("mlp", "weight")
    initlib.apply(model, InitConfig("lsuv"), x)
    for v in _layer_variances(model, x):
        assert abs(v - 1) < TOL


def test_variance_that_scaling_cannot_fix_is_reported_not_converged():
    model, x = _net("mlp", "none")
    with torch.no_grad():
        model[1].bias.fill_(-1e6)  # layer 0 dead after ReLU; layer 1's output is its own (nonzero) bias
    report = initlib.lsuv(model, x, bias="keep", tmax=3)
    assert report["layers"][1]["iters"] == 3 and not report["layers"][1]["converged"]
    assert abs(_layer_variances(model, x)[2] - 1) < TOL  # later layers are still rescaled


def test_tmax_zero_only_orthonormalizes():
    model, x = _net("mlp", "none")
    report = initlib.apply(model, InitConfig("lsuv", {"tmax": 0}), x)
    assert all(r["iters"] == 0 for r in report["layers"])
    assert [r["var"] for r in report["layers"]] == pytest.approx(_layer_variances(model, x), rel=1e-4)


@pytest.mark.parametrize("n", [0, 1])
def test_too_small_batch_is_a_clear_error(n):
    model, x = _net("mlp", "none")
    with pytest.raises(ValueError, match="at least 2 examples"):
        initlib.apply(model, InitConfig("lsuv"), x[:n])


def test_needs_a_batch_and_valid_options():
    model, x = _net("mlp", "none")
    with pytest.raises(ValueError, match="needs a batch"):
        initlib.apply(model, InitConfig("lsuv"), None)
    with pytest.raises(ValueError, match="tol > 0"):
        initlib.apply(model, InitConfig("lsuv", {"tol": 0.0}), x)
    with pytest.raises(ValueError, match="no option .margin.; valid: .*tol, tmax, bias"):
        initlib.apply(model, InitConfig("lsuv", {"margin": 0.02}), x)


def test_dead_layer_is_a_clear_error():
    model, x = _net("mlp", "none")
    with torch.no_grad():
        for m in weight_layers(model):
            m.bias.zero_()
        model[1].bias.fill_(-1e6)  # every unit of layer 0 dead after ReLU: layer 1's output is all zeros
    with pytest.raises(RuntimeError, match="layer 1 .* cannot be rescaled"):
        initlib.lsuv(model, x, bias="keep")
