"""The output_variance monitor (lsuv_vs_bn part a): its variance against numpy, its standard error
against the spread of the variance over many batches, and the study's noise-corrected statistic."""

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oplab.layerstats import output_variance, variance_and_se
from studies import lsuv_vs_bn as study


def test_variance_matches_numpy_over_every_element():
    o = torch.randn(50, 7) * 2 + 1
    var, se = variance_and_se(o)
    assert var == pytest.approx(np.var(o.numpy().astype(float), ddof=1), rel=1e-9)
    assert se > 0


def test_standard_error_matches_the_spread_over_batches():
    """Draw many batches of 100 from one population through a fixed layer: the std of the
    per-batch variances matches the mean reported SE (within 10%)."""
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(12, 20, generator=gen) / 20 ** 0.5
    mix = torch.randn(20, 20, generator=gen)  # correlated inputs, so units share directions
    vars_, ses = [], []
    for _ in range(1000):
        x = torch.relu(torch.randn(100, 20, generator=gen) @ mix)
        v, s = variance_and_se(x @ w.T)
        vars_.append(v)
        ses.append(s)
    assert np.mean(ses) == pytest.approx(np.std(vars_, ddof=1), rel=0.1)


def test_monitor_reports_each_weight_layer_and_leaves_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(64, 5)
    out = output_variance(model, F.cross_entropy, x, torch.zeros(64, dtype=torch.long))
    assert set(out) == {"layer0_var", "layer0_var_se", "layer1_var", "layer1_var_se"}
    for k, v in model.state_dict().items():  # running statistics restored
        assert torch.equal(v, before[k]), k
    assert out["layer0_var"] == pytest.approx(float(model[0](x).var()), rel=1e-5)
    with torch.no_grad():
        model.train()
        h = model[2](model[1](model[0](x)))
        assert out["layer1_var"] == pytest.approx(float(model[3](h).var()), rel=1e-5)


def test_the_study_subtracts_the_probes_sampling_variance():
    """var_msd = mean over layers of (Var - 1)^2 - SE^2; the read-out is the last layer."""
    mon = pd.DataFrame([{"arm": "a", "seed": 0, "setting": "s", "init": "LSUV", "step": 0,
                         "layer0_var": 1.1, "layer0_var_se": 0.1, "layer1_var": 0.7, "layer1_var_se": 0.1,
                         "layer2_var": 1.0, "layer2_var_se": 0.05}])
    df = pd.DataFrame({"arm": ["a"], "seed": [0], "test_acc": [0.9], "extra": [{}]})
    t = study.measure(df, {"monitor": mon}, None)
    want = np.mean([0.1 ** 2 - 0.01, 0.3 ** 2 - 0.01, 0.0 - 0.0025])
    assert t["var_msd"].iloc[0] == pytest.approx(want)
    assert t["init_var_dev"].iloc[0] == pytest.approx(0.3)
    assert t["noise_dev"].iloc[0] == pytest.approx(0.2)
    assert t["readout_var"].iloc[0] == pytest.approx(1.0)
