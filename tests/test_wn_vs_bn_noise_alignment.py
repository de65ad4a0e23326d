"""The noise-alignment monitor (wn_vs_bn part d) against an independent computation: per-example
gradients by hand, cosines by explicit loops in numpy; and the study's reading of it."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oplab.monitors import noise_alignment
from studies import wn_vs_bn as study


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))


def _cos(a, b):
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return 0.0 if na == 0 or nb == 0 else abs(float(a @ b) / (na * nb))


def test_matches_loops_over_units_and_sub_batches():
    model = _mlp()
    x, y = torch.randn(20, 6), torch.randint(0, 3, (20,))
    got = noise_alignment(model, F.cross_entropy, x, y, splits=4)
    layers = [m for m in model if isinstance(m, nn.Linear)]

    def grads(xs, ys):
        model.zero_grad()
        F.cross_entropy(model(xs), ys).backward()
        return [m.weight.grad.detach().numpy().copy() for m in layers]

    full = grads(x, y)
    own = np.zeros(len(layers))
    other = np.zeros(len(layers))
    for xs, ys in zip(x.chunk(4), y.chunk(4)):
        sub = grads(xs, ys)
        for i, m in enumerate(layers):
            w = m.weight.detach().numpy()
            noise = sub[i] - full[i]
            units = w.shape[0]
            own[i] += np.mean([_cos(noise[j], w[j]) for j in range(units)]) / 4
            other[i] += np.mean([_cos(noise[j], w[k]) for j in range(units) for k in range(units) if k != j]) / 4
    for i in range(len(layers)):
        assert got[f"layer{i}_noise_cos"] == pytest.approx(own[i], rel=1e-4)
        assert got[f"layer{i}_other_cos"] == pytest.approx(other[i], rel=1e-4)
        assert 0 < got[f"layer{i}_random_cos"] < 1
    assert got["noise_cos"] == pytest.approx(own.mean(), rel=1e-4)
    assert got["other_cos"] == pytest.approx(other.mean(), rel=1e-4)


def test_identical_units_give_no_excess_over_the_other_units():
    """When every unit of a layer has the same incoming weights, its own and the other units'
    weights are the same direction: the matched / other ratio is exactly 1."""
    model = _mlp(1)
    with torch.no_grad():
        model[2].weight.copy_(model[2].weight[:1].expand_as(model[2].weight))
    out = noise_alignment(model, F.cross_entropy, torch.randn(30, 6), torch.randint(0, 3, (30,)), splits=3)
    assert out["layer1_noise_cos"] == pytest.approx(out["layer1_other_cos"], rel=1e-5)


def test_a_single_layer_matches_its_closed_form_gradient():
    """For the loss mean ||W x||^2 the gradient is 2 W E[x x^T] on each (sub-)batch: the monitor's
    matched cosine equals the one computed from that formula."""
    torch.manual_seed(2)
    lin = nn.Linear(8, 6, bias=False)
    model = nn.Sequential(lin)
    x = torch.randn(40, 8)
    out = noise_alignment(model, lambda o, y: (o ** 2).sum(1).mean(), x, torch.zeros(40), splits=4)
    full = 2 * lin.weight.detach() @ (x.T @ x / 40)
    own = []
    for xs in x.chunk(4):
        n = 2 * lin.weight.detach() @ (xs.T @ xs / len(xs)) - full
        own.append(F.cosine_similarity(n, lin.weight.detach(), dim=1).abs().mean())
    assert out["layer0_noise_cos"] == pytest.approx(float(torch.stack(own).mean()), rel=1e-4)


def test_the_study_judges_hidden_layers_only():
    """noise_ratio is the geometric mean of own / other over the hidden layers and the monitored
    steps after the start; the read-out, however aligned, does not enter."""
    rows = []
    for step, (r1, r2) in zip((0, 100, 200), ((9.0, 9.0), (1.0, 4.0), (4.0, 1.0))):
        rows.append({"arm": "a", "seed": 0, "step": step,
                     "layer0_noise_cos": 0.2 * r1, "layer0_other_cos": 0.2, "layer0_random_cos": 0.1,
                     "layer1_noise_cos": 0.1 * r2, "layer1_other_cos": 0.1, "layer1_random_cos": 0.1,
                     "layer2_noise_cos": 0.9, "layer2_other_cos": 0.1, "layer2_random_cos": 0.1})
    al = study.alignment({"monitor": pd.DataFrame(rows)})
    assert set(al["step"]) == {100, 200} and al.loc[al["layer"] == 3, "read_out"].all()
    ratio = study.noise_ratio(al)
    assert ratio[("a", 0)] == pytest.approx(2.0)  # (1 * 4 * 4 * 1) ** (1/4)


def test_early_loss_is_the_mean_of_the_curve_up_to_the_window():
    df = pd.DataFrame({"arm": ["a"], "seed": [0], "test_err": [0.1]})
    ev = pd.DataFrame({"arm": "a", "seed": 0, "step": [0, 40, 80, 120], "epoch": [0.0, 1.0, 2.0, 3.0],
                       "train_loss_running": [np.nan, 1.0, 0.5, 0.1]})
    ctx = type("C", (), {"setup": {"early_epochs": 2}})()
    t = study.measure(df, {"eval": ev}, ctx)
    assert t["early_loss"].iloc[0] == pytest.approx(0.75)
    assert np.isnan(t["noise_ratio"].iloc[0])
