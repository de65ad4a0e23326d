"""The bias rules of oplab.init (output bias at the log priors, hidden bias, LSTM forget-gate
bias), the dead_units monitor, the rnn model's LSTM cell and mnist5k's imbalance option, each
against an independent computation; and that configs without the new options initialize,
build and load exactly as before."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oplab import data, models
from oplab import init as initlib
from oplab import plan as planning
from oplab.config import DataConfig, InitConfig, ModelConfig, Trial


def _lstm(depth=2, width=6, init="torch"):
    return models.build(ModelConfig("rnn", depth, width, "tanh", options={"cell": "lstm", "init": init}), (12, 3), 1)


# --- forget-gate bias


@pytest.mark.parametrize("value", [1.0, 0.0, 2.5])
def test_forget_bias_sets_the_effective_forget_gate_bias_and_nothing_else(value):
    torch.manual_seed(0)
    model = _lstm()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = initlib.apply(model, InitConfig("default", {"forget_bias": value}))
    h = 6
    for layer in range(2):
        b_ih, b_hh = model.rnn.state_dict()[f"bias_ih_l{layer}"], model.rnn.state_dict()[f"bias_hh_l{layer}"]
        # torch's gate order is input, forget, cell, output: rows h..2h are the forget gate
        assert torch.equal(b_ih[h : 2 * h] + b_hh[h : 2 * h], torch.full((h,), value))
        for gate in (0, 2, 3):  # the other gates keep their draws, in both bias vectors
            rows = slice(gate * h, (gate + 1) * h)
            assert torch.equal(b_ih[rows], before[f"rnn.bias_ih_l{layer}"][rows])
            assert torch.equal(b_hh[rows], before[f"rnn.bias_hh_l{layer}"][rows])
    for k, v in model.state_dict().items():  # every weight untouched
        if "bias" not in k:
            assert torch.equal(v, before[k]), k
    assert report == {"bias_rules": {"forget_bias": value, "lstm_layers": 2}}


def test_forget_bias_is_the_gate_bias_torch_computes_with():
    """Independent check through torch's own LSTM cell: with zero weights, the forget gate of the
    first step is sigmoid(b_ih + b_hh) = sigmoid(1), so c_1 = sigmoid(1) * c_0 + i * g."""
    torch.manual_seed(0)
    cell = nn.LSTM(2, 3, batch_first=True)
    model = nn.Sequential()
    model.add_module("lstm", cell)
    with torch.no_grad():
        for p in cell.parameters():
            p.zero_()
    initlib.set_biases(model, forget_bias=1.0)
    c0 = torch.ones(1, 1, 3)
    _, (_, c1) = cell(torch.zeros(1, 1, 2), (torch.zeros(1, 1, 3), c0))
    # i = sigmoid(0) = 0.5, g = tanh(0) = 0: c1 = sigmoid(1) * c0
    assert torch.allclose(c1, torch.sigmoid(torch.tensor(1.0)) * c0, atol=1e-7)


def test_forget_bias_needs_an_lstm():
    model = models.build(ModelConfig("mlp", 1, 4), (5,), 2)
    with pytest.raises(ValueError, match="no nn.LSTM"):
        initlib.apply(model, InitConfig("he", {"forget_bias": 1.0}))


# --- output bias at the log priors


def _imbalanced_labels(n_per_class=(50, 20, 10, 5, 3, 2, 1, 1, 4, 4)):
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(n_per_class)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(0))]


def test_log_prior_bias_gives_the_label_entropy_as_initial_loss():
    """A net whose read-out weights are zero outputs its bias: with the log priors, the training
    loss is the entropy of the labels, computed here independently with numpy."""
    torch.manual_seed(0)
    y = _imbalanced_labels()
    x = torch.randn(len(y), 7)
    model = models.build(ModelConfig("mlp", 2, 16), (7,), 10)
    report = initlib.apply(model, InitConfig("he", {"output_bias": "log_prior"}), x[:10], train=(x, y))
    with torch.no_grad():
        model[-1].weight.zero_()  # uniform logits from the weights: the output is the bias
    loss = float(F.cross_entropy(model(x).double(), y))
    counts = np.bincount(y.numpy(), minlength=10)
    p = counts / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    assert abs(loss - entropy) < 1e-6
    assert abs(report["bias_rules"]["label_entropy"] - entropy) < 1e-6
    assert np.allclose(model[-1].bias.detach().numpy(), np.log(p), atol=1e-6)
    assert entropy < math.log(10) - 0.2  # the imbalance makes the prior worth having


def test_zero_bias_gives_log_classes_on_the_same_net():
    torch.manual_seed(0)
    y = _imbalanced_labels()
    x = torch.randn(len(y), 7)
    model = models.build(ModelConfig("mlp", 2, 16), (7,), 10)
    initlib.apply(model, InitConfig("he"), x[:10], train=(x, y))
    with torch.no_grad():
        model[-1].weight.zero_()
    assert abs(float(F.cross_entropy(model(x).double(), y)) - math.log(10)) < 1e-6


def test_output_bias_errors():
    y = _imbalanced_labels()
    x = torch.randn(len(y), 7)
    model = models.build(ModelConfig("mlp", 1, 4), (7,), 10)
    with pytest.raises(ValueError, match="valid: log_prior"):
        initlib.apply(model, InitConfig("he", {"output_bias": "marginal"}), train=(x, y))
    with pytest.raises(ValueError, match="needs the training labels"):
        initlib.set_biases(model, output_bias="log_prior")
    with pytest.raises(ValueError, match=r"classes \[9\] have no training example"):
        initlib.apply(model, InitConfig("he", {"output_bias": "log_prior"}), train=(x, y.clamp(max=8)))
    with pytest.raises(ValueError, match="integer class labels"):
        initlib.apply(model, InitConfig("he", {"output_bias": "log_prior"}), train=(x, y.float()))


# --- hidden bias, composed with a weight initializer


def test_hidden_bias_sets_hidden_layers_and_leaves_weights_and_readout():
    torch.manual_seed(3)
    a = models.build(ModelConfig("mlp", 3, 8), (5,), 4)
    b = models.build(ModelConfig("mlp", 3, 8), (5,), 4)
    torch.manual_seed(7)
    initlib.apply(a, InitConfig("standard"))
    torch.manual_seed(7)
    report = initlib.apply(b, InitConfig("standard", {"hidden_bias": 0.1}))
    la, lb = models.weight_layers(a), models.weight_layers(b)
    for i, (ma, mb) in enumerate(zip(la, lb)):
        assert torch.equal(ma.weight, mb.weight)  # the rule draws nothing: same weights
        want = torch.full_like(mb.bias, 0.1 if i < len(lb) - 1 else 0.0)
        assert torch.equal(mb.bias, want)
    assert report == {"bias_rules": {"hidden_bias": 0.1, "hidden_layers": 3}}


# --- existing initializers are unchanged


@pytest.mark.parametrize("name,opts", [("default", {}), ("glorot", {"gain": 2.0}), ("he", {}), ("orthogonal", {}),
                                       ("normal", {"sigma": 0.1}), ("standard", {}), ("lsuv", {}),
                                       ("he", {"bias": "keep"})])
def test_registered_initializers_without_bias_rules_equal_the_plain_functions(name, opts):
    """The registry's initializer (with the bias-rule options added) and the module's plain
    function give the same weights, biases and report from the same seed."""
    x = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(5)
    a = models.build(ModelConfig("mlp", 2, 8), (6,), 3)
    b = models.build(ModelConfig("mlp", 2, 8), (6,), 3)
    b.load_state_dict(a.state_dict())
    torch.manual_seed(11)
    ra = initlib.apply(a, InitConfig(name, opts), x, train=(x, torch.zeros(32, dtype=torch.long)), seed=0)
    torch.manual_seed(11)
    rb = getattr(initlib, name)(b, x, **opts)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    assert ra == rb


def test_bias_rule_options_are_checked_before_training():
    base = Trial(data=DataConfig("mnist1d", n_train=100), model=ModelConfig("mlp", 1, 8), steps=1)
    planning.check_trial(base.__class__(**{**base.__dict__, "init": InitConfig("he", {"hidden_bias": 0.1})}))
    bad = base.__class__(**{**base.__dict__, "init": InitConfig("he", {"hiden_bias": 0.1})})
    with pytest.raises(ValueError, match="hidden_bias"):
        planning.check_trial(bad)


# --- the dead_units monitor


def test_dead_units_counts_units_off_for_every_example():
    torch.manual_seed(0)
    model = models.build(ModelConfig("mlp", 2, 5), (4,), 3)
    x = torch.randn(20, 4)
    with torch.no_grad():
        model[1].bias[:2] = -100.0  # first hidden layer: units 0 and 1 are off for every example
        model[1].bias[2:] = 100.0
    out = initlib.dead_units(model, None, x, None)
    # independently: the hidden activations by hand
    h1 = torch.relu(x @ model[1].weight.T + model[1].bias)
    h2 = torch.relu(h1 @ model[4].weight.T + model[4].bias)
    dead = [(h == 0).all(dim=0) for h in (h1, h2)]
    assert out["relu0_dead"] == pytest.approx(float(dead[0].float().mean()))
    assert out["relu0_dead"] == pytest.approx(0.4)
    assert out["relu1_dead"] == pytest.approx(float(dead[1].float().mean()))
    assert out["dead_frac"] == pytest.approx(float(torch.cat(dead).float().mean()))


# --- the rnn model's LSTM cell


def test_rnn_default_cell_is_unchanged_and_lstm_checks_its_options():
    torch.manual_seed(0)
    a = models.build(ModelConfig("rnn", 1, 8, "tanh"), (10, 2), 1)
    torch.manual_seed(0)
    b = models.build(ModelConfig("rnn", 1, 8, "tanh", options={"cell": "rnn"}), (10, 2), 1)
    assert isinstance(a.rnn, nn.RNN)
    for va, vb in zip(a.state_dict().values(), b.state_dict().values()):
        assert torch.equal(va, vb)
    lstm = _lstm(1, 8, "basic_tanh")
    assert isinstance(lstm.rnn, nn.LSTM) and lstm(torch.randn(3, 12, 3)).shape == (3, 1)
    assert all(float(p.abs().max()) == 0 for n, p in lstm.rnn.named_parameters() if n.startswith("bias"))
    with pytest.raises(ValueError, match="smart_tanh"):
        _lstm(1, 8, "smart_tanh")
    with pytest.raises(ValueError, match="tanh"):
        models.build(ModelConfig("rnn", 1, 8, "relu", options={"cell": "lstm", "init": "torch"}), (10, 2), 1)
    with pytest.raises(ValueError, match="valid: lstm, rnn"):
        models.build(ModelConfig("rnn", 1, 8, "tanh", options={"cell": "gru"}), (10, 2), 1)


# --- mnist5k's imbalance option


def test_imbalance_keeps_the_requested_class_proportions_of_the_same_digits():
    p = [0.6**c for c in range(10)]
    full = data.load(DataConfig("mnist5k"))
    imb = data.load(DataConfig("mnist5k", options={"imbalance": p}))
    for split, per_class in (("train", 400), ("test", 100)):
        y = getattr(imb, f"y_{split}").numpy()
        want = [max(1, round(per_class * q / max(p))) for q in p]
        assert np.bincount(y, minlength=10).tolist() == want
        # every kept digit is a digit of the full split with the same label and the same pixels
        fx, fy = getattr(full, f"x_{split}"), getattr(full, f"y_{split}")
        rows = {(bytes(fx[i].numpy().tobytes()), int(fy[i])) for i in range(len(fx))}
        ix = getattr(imb, f"x_{split}")
        assert all((bytes(ix[i].numpy().tobytes()), int(y[i])) in rows for i in range(len(ix)))
        assert len({bytes(ix[i].numpy().tobytes()) for i in range(len(ix))}) == len(ix)  # no digit twice


def test_imbalance_is_seeded_and_checked_and_the_default_is_unchanged():
    p = [1.0] * 5 + [0.5] * 5
    a = data.mnist5k(imbalance=p)
    b = data.mnist5k(imbalance=p)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    plain, default = data.mnist5k(), data.load(DataConfig("mnist5k"))
    assert torch.equal(plain.x_train, default.x_train) and torch.equal(plain.y_train, default.y_train)
    assert len(plain.y_train) == 4000 and len(plain.y_test) == 1000
    with pytest.raises(ValueError, match="10 positive class proportions"):
        data.mnist5k(imbalance=[1.0, 0.5])
    with pytest.raises(ValueError, match="10 positive class proportions"):
        data.mnist5k(imbalance=[1.0] * 9 + [0.0])
