"""oplab.layerstats against independent computations: hook-based activation and back-propagated
gradient statistics vs a hand-written forward and autograd; rank, spread and norm monitors;
symmetry under training and the positive homogeneity of a ReLU net."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from oplab import init, layerstats, models, monitors, norms
from oplab.config import DataConfig, InitConfig, ModelConfig, NormConfig, OptimConfig, Trial
from oplab.train import train


def tiny_mlp(activation="tanh", depth=2, width=5, n_in=6, out=3, seed=0):
    torch.manual_seed(seed)
    model = models.mlp(input_shape=(n_in,), out_dim=out, depth=depth, width=width, activation=activation)
    x, y = torch.randn(12, n_in), torch.randint(0, out, (12,))
    return model, x, y


def manual(model, x, y, act):
    """Each weight layer's activation and d loss / d activation, written out by hand."""
    lins = [m for m in model if isinstance(m, nn.Linear)]
    h, acts = x, []
    for i, lin in enumerate(lins):
        z = h @ lin.weight.T + lin.bias
        h = act(z) if i < len(lins) - 1 else z
        acts.append(h)
    grads = torch.autograd.grad(F.cross_entropy(h, y), acts)
    return [a.detach() for a in acts], grads


@pytest.mark.parametrize("activation,fn", [("tanh", torch.tanh), ("relu", torch.relu), ("sigmoid", torch.sigmoid)])
def test_layer_stats_match_a_manual_forward_and_autograd(activation, fn):
    model, x, y = tiny_mlp(activation)
    acts, grads = manual(model, x, y, fn)
    got = monitors.run(("layer_stats",), model, F.cross_entropy, x, y)
    assert len([k for k in got if k.endswith("_act_std")]) == 3
    for i, (a, g) in enumerate(zip(acts, grads)):
        assert got[f"layer{i}_act_mean"] == pytest.approx(float(a.mean()), rel=1e-5, abs=1e-7)
        assert got[f"layer{i}_act_std"] == pytest.approx(float(a.std()), rel=1e-5)
        assert got[f"layer{i}_grad_mean"] == pytest.approx(float(g.mean()), rel=1e-4, abs=1e-9)
        assert got[f"layer{i}_grad_std"] == pytest.approx(float(g.std()), rel=1e-5)


def test_monitors_leave_the_model_untouched():
    model, x, y = tiny_mlp("tanh")
    norms.apply(model, NormConfig("batch"))
    model.train()
    model(torch.randn(12, 6))  # move the running statistics off their start
    before = {k: v.clone() for k, v in model.state_dict().items()}
    out = monitors.run(("layer_stats", "weight_rank", "layer_norms"), model, F.cross_entropy, x, y)
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(not m._forward_hooks for m in model.modules())
    assert all(math.isfinite(v) for v in out.values())


def test_activation_modules_are_the_nonlinearities_then_the_readout():
    model, _, _ = tiny_mlp("relu", depth=3)
    mods = layerstats.activation_modules(model)
    assert [type(m) for m in mods] == [nn.ReLU, nn.ReLU, nn.ReLU, nn.Linear]
    assert mods[-1] is models.weight_layers(model)[-1]
    lin, _, _ = tiny_mlp("linear", depth=2)  # the 'linear' activation is an Identity, a NormSlot is not
    assert [type(m) for m in layerstats.activation_modules(lin)] == [nn.Identity, nn.Identity, nn.Linear]
    conv = models.convnet(input_shape=(1, 8, 8), out_dim=3, depth=2, width=4, activation="tanh")
    assert [type(m) for m in layerstats.activation_modules(conv)] == [nn.Tanh, nn.Tanh, nn.Linear]
    got = layerstats.layer_stats(conv, F.cross_entropy, torch.randn(5, 1, 8, 8), torch.randint(0, 3, (5,)))
    assert set(got) == {f"layer{i}_{k}" for i in range(3) for k in ("act_mean", "act_std", "grad_mean", "grad_std")}


def test_weight_rank_and_spread():
    model, x, y = tiny_mlp("tanh", width=5)
    first = models.weight_layers(model)[0]
    with torch.no_grad():
        first.weight.copy_(torch.randn(1, 6).expand(5, 6))  # five identical units
    got = layerstats.weight_rank(model, F.cross_entropy, x, y)
    assert got["layer0_rank"] == 1.0 and got["layer0_spread"] == pytest.approx(0.0, abs=1e-7)
    assert got["layer1_rank"] == 5.0 and 0.5 < got["layer1_spread"] < 1.5
    with torch.no_grad():
        first.weight.zero_()
    assert layerstats.weight_rank(model, F.cross_entropy, x, y)["layer0_rank"] == 0.0
    w = torch.randn(4, 3)
    spread = math.sqrt(((w - w.mean(0)) ** 2).sum(1).mean() / (w**2).sum(1).mean())
    assert layerstats.unit_spread(w) == pytest.approx(spread, rel=1e-5)


def test_zero_init_keeps_sigmoid_units_identical_under_training():
    """Symmetry: identical units get identical gradients, so they stay identical; random init does not."""
    def trial(init):
        return Trial(data=DataConfig("mnist5k", n_train=200, n_test=100), model=ModelConfig("mlp", 2, 8, "sigmoid"),
                     init=init, optim=OptimConfig("sgd", lr=0.5), steps=30, batch_size=20, eval_every=10,
                     monitors=("weight_rank",), monitor_every=10)

    sym = train(trial(InitConfig("normal", {"sigma": 0.0})), 0).curves["monitor"]
    assert sym["layer0_rank"][0] == 0.0 and sym["layer0_rank"][-1] == 1.0 and sym["layer1_rank"][-1] == 1.0
    assert max(sym["layer0_spread"] + sym["layer1_spread"]) < 1e-5
    rnd = train(trial(InitConfig("glorot")), 0).curves["monitor"]
    assert min(rnd["layer0_rank"]) == 8.0 and min(rnd["layer0_spread"]) > 0.5


def test_layer_norms_bound_and_homogeneity_of_a_bias_free_relu_net():
    x = torch.randn(10, 1, 6, 6)
    outs = {}
    for gain in (0.5, 1.0, 3.0):
        torch.manual_seed(3)
        model = models.mlp(input_shape=(1, 6, 6), out_dim=4, depth=3, width=7, activation="relu")
        init.apply(model, InitConfig("orthogonal", {"gain": gain}))  # biases 0
        got = layerstats.layer_norms(model, F.cross_entropy, x, torch.zeros(10, dtype=torch.long))
        for i in range(4):
            assert got[f"layer{i}_bias_norm"] == 0.0
            assert got[f"layer{i}_spectral"] == pytest.approx(gain, rel=1e-5)  # orthogonal rows: spectral norm = gain
            assert got[f"layer{i}_act_norm"] <= got["input_norm"] * got[f"layer{i}_spectral_prod"] * (1 + 1e-5)
        assert got["input_norm"] == pytest.approx(float(x.flatten(1).norm(dim=1).mean()), rel=1e-6)
        with torch.no_grad():
            assert got["layer3_act_norm"] == pytest.approx(float(model(x).norm(dim=1).mean()), rel=1e-5)
        outs[gain] = got["layer3_act_norm"]
    for gain in (0.5, 3.0):  # 4 weight layers: the output scales as gain^4
        assert outs[gain] / outs[1.0] == pytest.approx(gain**4, rel=1e-4)


def test_layer_stats_is_a_registered_monitor_usable_from_a_trial():
    assert {"layer_stats", "weight_rank", "layer_norms"} <= set(monitors.MONITORS.names())
    rec = train(Trial(data=DataConfig("mnist5k", n_train=100, n_test=50), model=ModelConfig("mlp", 2, 4, "tanh"),
                      steps=4, batch_size=20, eval_every=2, monitors=("layer_stats",), monitor_every=2), 0)
    mon = rec.curves["monitor"]
    assert mon["step"] == [0, 2, 4] and len(mon["layer2_grad_std"]) == 3
