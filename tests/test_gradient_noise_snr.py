"""The gradient-noise monitor's signal and signal-to-noise ratio (oplab.probes.grad_noise) against an
independent computation from per-example gradients, and its slope as a check of the estimator: any
population sampled without replacement gives -1/2 (random labels, duplicated examples), which is
why gradient_noise shows the slope and judges the signal-to-noise ratio instead."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from oplab import probes


def _per_example(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    params = {k: v.detach() for k, v in model.named_parameters()}

    def one(p, xi, yi):
        return F.cross_entropy(functional_call(model, p, (xi[None],)), yi[None])

    per = vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)
    return torch.cat([g.flatten(1) for g in per.values()], dim=1).double()


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))


def test_signal_and_snr_match_per_example_gradients():
    """noise_signal = ||mean_i g_i||^2; snr@B = signal / E||g_B - g_N||^2 with the exact expectation
    (N - B) / (N - 1) * sigma^2 / B of sampling without replacement (100 draws a size: within sampling error)."""
    model = _net()
    x, y = torch.randn(64, 5), torch.randint(0, 3, (64,))
    per = _per_example(model, x, y)
    mean = per.mean(0)
    signal = float(mean @ mean)
    sigma2 = float(((per - mean) ** 2).sum(1).mean())
    n = len(x)
    out = probes.grad_noise(model, F.cross_entropy, x, y, draws=100)
    assert out["noise_signal"] == pytest.approx(signal, rel=1e-5)
    for b in probes.batch_sizes(n):
        exact = signal / ((n - b) / (n - 1) * sigma2 / b)
        assert out[f"snr@{b}"] == pytest.approx(exact, rel=0.25), b
        assert out[f"snr@{b}"] == pytest.approx(out["noise_signal"] / out[f"noise_std@{b}"] ** 2)


def test_snr_is_small_where_the_examples_disagree_and_large_where_they_agree():
    """Labels at random: the per-example gradients cancel, SNR_1 << 1. One label for all: they agree,
    SNR_1 >> 1 (the monitor's SNR can land on either side of 1)."""
    model = _net(1)
    x = torch.randn(64, 5)
    noisy = probes.grad_noise(model, F.cross_entropy, x, torch.randint(0, 3, (64,)), draws=16)
    agreed = probes.grad_noise(model, F.cross_entropy, x * 0.01, torch.zeros(64, dtype=torch.long), draws=16)
    assert noisy["snr@1"] < 0.5
    assert agreed["snr@1"] > 2.0


@pytest.mark.parametrize("population", ["random labels", "ten examples duplicated"])
def test_the_slope_is_minus_a_half_for_any_population(population):
    """The B^-1/2 law (finite-population factor divided out) holds for populations with nothing to learn
    (random labels) and with ten distinct examples repeated: the slope checks the estimator, not the claim."""
    model = _net(2)
    g = torch.Generator().manual_seed(3)
    if population == "random labels":
        x, y = torch.randn(100, 5, generator=g), torch.randint(0, 3, (100,), generator=g)
    else:
        x0, y0 = torch.randn(10, 5, generator=g), torch.randint(0, 3, (10,), generator=g)
        x, y = x0.repeat(10, 1), y0.repeat(10)
    out = probes.grad_noise(model, F.cross_entropy, x, y, draws=100)
    assert out["noise_slope"] == pytest.approx(-0.5, abs=0.06)
