"""oplab.dynamics against independent computations: the scalar chain's function, the probe-step
loss change (redone with torch.optim.SGD on a deep copy), and the sigmoid-input percentiles
(redone by hand with numpy)."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from oplab import dynamics, models, monitors, norms
from oplab.config import ModelConfig, NormConfig
from oplab.dataset import DATASETS


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same_state(model, saved):
    return all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())


def test_scalar_chain_is_x_times_the_product_of_its_weights():
    torch.manual_seed(0)
    model = models.build(ModelConfig("scalar_chain", 5, 1, "linear", {"w0": 1.2, "spread": 0.3}), (1,), 1)
    w = [m.weight.item() for m in models.weight_layers(model)]
    assert len(w) == 5 and all(0.9 <= v <= 1.5 for v in w) and len(set(w)) == 5
    x = torch.randn(7, 1)
    assert torch.allclose(model(x), x * float(np.prod(w)), rtol=1e-6)
    assert models.n_params(model) == 5  # no biases


def test_scalar_chain_refuses_other_shapes_and_is_registered():
    with pytest.raises(ValueError, match="one input to one output"):
        models.build(ModelConfig("scalar_chain", 3, 1, "linear"), (2,), 1)
    with pytest.raises(KeyError, match="scalar_chain"):
        models.MODELS["scalar_chian"]


def test_standardized_chain_forgets_its_weights_and_depth():
    """With batch norm after every link, the output (training mode) is x standardized over the batch,
    times the sign of the product of the weights, whatever the weights and the depth."""
    x = torch.randn(64, 1)
    x_hat = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + 1e-5)
    for depth, w0 in ((1, 0.5), (6, 1.3), (12, -0.8)):
        model = models.build(ModelConfig("scalar_chain", depth, 1, "linear", {"w0": w0, "spread": 0.0}), (1,), 1)
        norms.apply(model, NormConfig("batch"))
        model.train()
        sign = float(np.sign(w0) ** depth)
        assert torch.allclose(model(x), sign * x_hat, atol=1e-4)


def test_scalar_regression_is_a_fixed_line_with_noise():
    d = DATASETS.build("scalar_regression", slope=3.0, noise=0.1, n_train=4000, n_test=100, seed=7)
    d2 = DATASETS.build("scalar_regression", slope=3.0, noise=0.1, n_train=4000, n_test=100, seed=7)
    assert torch.equal(d.x_train, d2.x_train) and torch.equal(d.y_test, d2.y_test)
    assert d.x_train.shape == (4000, 1) and d.y_test.shape == (100, 1) and d.task == "regression"
    fit = np.polyfit(d.x_train[:, 0].numpy(), d.y_train[:, 0].numpy(), 1)
    assert abs(fit[0] - 3.0) < 0.02 and abs(fit[1]) < 0.02
    resid = d.y_train - 3.0 * d.x_train
    assert abs(float(resid.std()) - 0.1) < 0.01


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_step_loss_change_matches_sgd_steps_on_copies(norm):
    torch.manual_seed(1)
    model = models.build(ModelConfig("mlp", 2, 8, "tanh"), (5,), 3)
    norms.apply(model, NormConfig(norm))
    model.eval()
    x, y = torch.randn(40, 5), torch.randint(0, 3, (40,))
    loss_fn = nn.functional.cross_entropy
    saved = _state(model)
    out = monitors.run(("step_loss_change",), model, loss_fn, x, y)
    assert _same_state(model, saved) and not model.training
    want = []
    for xs, ys in zip(x.chunk(4), y.chunk(4)):  # redo each probe step with torch's own SGD on a copy
        m = copy.deepcopy(model).train()  # training mode: BN uses batch statistics, running ones unused
        with torch.no_grad():
            before = float(loss_fn(m(x), y))
        opt = torch.optim.SGD(m.parameters(), lr=dynamics.PROBE_LR)
        loss_fn(m(xs), ys).backward()
        opt.step()
        with torch.no_grad():
            want.append(float(loss_fn(m(x), y)) - before)
    # the monitor's default is PROBE_SPLITS sub-batches; redo with 4 through its options
    got = dynamics.step_loss_change(model, loss_fn, x, y, splits=4)
    assert np.allclose(got["step_dloss_mean"], np.mean(want), atol=1e-6)
    assert np.allclose(got["step_dloss_var"], np.var(want, ddof=1), rtol=1e-4, atol=1e-12)
    assert out["step_dloss_var"] >= 0 and np.isfinite(out["probe_loss"])
    # the first-order prediction -lr g_sub . g_probe, redone with .backward() on copies
    m = copy.deepcopy(model).train()
    loss_fn(m(x), y).backward()
    g_full = torch.cat([p.grad.flatten() for p in m.parameters()]).double()
    first = []
    for xs, ys in zip(x.chunk(4), y.chunk(4)):
        m.zero_grad()
        loss_fn(m(xs), ys).backward()
        g = torch.cat([p.grad.flatten() for p in m.parameters()]).double()
        first.append(-dynamics.PROBE_LR * float(g @ g_full))
    resid = np.array(want) - np.array(first)
    assert np.allclose(got["step_dloss_first_var"], np.var(first, ddof=1), rtol=1e-4, atol=1e-14)
    assert np.allclose(got["step_dloss_resid_mean"], resid.mean(), atol=2e-6)
    assert np.allclose(got["step_dloss_resid_var"], np.var(resid, ddof=1), rtol=0.05, atol=1e-11)


def test_the_one_link_chain_leaves_exactly_the_second_order_term():
    """y = w x with mean squared error is quadratic in w: a step -lr g_i changes the loss by
    -lr g_i G + lr^2 g_i^2 mean(x^2) exactly (G the probe batch's gradient), so what the first order
    leaves over is lr^2 g_i^2 mean(x^2) (computed here in float64 from the closed form)."""
    torch.manual_seed(4)
    model = models.build(ModelConfig("scalar_chain", 1, 1, "linear", {"w0": 1.0, "spread": 0.1}), (1,), 1)
    w = float(models.weight_layers(model)[0].weight)
    x = torch.randn(200, 1)
    y = 2 * x + 0.5 * torch.randn(200, 1)
    lr = 0.05
    got = dynamics.step_loss_change(model, nn.functional.mse_loss, x, y, lr=lr, splits=10)
    xd, yd = x.double().flatten(), y.double().flatten()
    resid = []
    for xs, ys in zip(xd.chunk(10), yd.chunk(10)):
        g = float((2 * (w * xs - ys) * xs).mean())
        resid.append(lr ** 2 * g ** 2 * float((xd ** 2).mean()))
    assert got["step_dloss_resid_mean"] == pytest.approx(np.mean(resid), rel=1e-3)
    assert got["step_dloss_resid_var"] == pytest.approx(np.var(resid, ddof=1), rel=2e-2)
    assert got["step_dloss_resid_var"] < 0.05 * got["step_dloss_var"]  # the first order dominates here


def test_higher_order_noise_grows_along_the_chain_and_not_with_standardizing():
    """Independent of the monitor's code path: at w_i = 1 the chain's higher-order residual grows
    with depth; with batch norm after every link the loss depends on the last link's gain and shift
    only, so the residual is the same at every depth."""
    x = torch.randn(400, 1, generator=torch.Generator().manual_seed(5))
    y = 2 * x + 0.5 * torch.randn(400, 1, generator=torch.Generator().manual_seed(6))
    plain, bn = [], []
    for depth in (1, 4, 16):
        for norm, out in (("none", plain), ("batch", bn)):
            model = models.build(ModelConfig("scalar_chain", depth, 1, "linear", {"w0": 1.0, "spread": 0.0}), (1,), 1)
            norms.apply(model, NormConfig(norm))
            out.append(dynamics.step_loss_change(model, nn.functional.mse_loss, x, y)["step_dloss_resid_var"])
    assert plain[0] < plain[1] < plain[2] and plain[2] > 100 * plain[0]
    assert bn[0] == pytest.approx(bn[1], rel=1e-2) and bn[0] == pytest.approx(bn[2], rel=1e-2)


def test_unit_input_percentiles_match_numpy():
    torch.manual_seed(2)
    model = models.build(ModelConfig("mlp", 3, 12, "sigmoid"), (6,), 4)
    x = torch.randn(50, 6)
    lin = [m for m in model if isinstance(m, nn.Linear)]
    with torch.no_grad():  # by hand: the last hidden layer's pre-activation
        h = x
        for m in lin[:-1]:
            z = m(h)
            h = torch.sigmoid(z)
    out = monitors.run(("unit_input",), model, nn.functional.cross_entropy, x, torch.zeros(50, dtype=torch.long))
    assert len(out) == 3 * dynamics.UNIT_COUNT
    for j in range(dynamics.UNIT_COUNT):
        for q in dynamics.UNIT_PERCENTILES:
            assert out[f"unit{j}_p{q}"] == pytest.approx(float(np.percentile(z[:, j].numpy(), q)), abs=1e-5)


def test_unit_input_sees_batch_norms_output_and_leaves_its_statistics():
    torch.manual_seed(3)
    model = models.build(ModelConfig("mlp", 2, 12, "sigmoid"), (6,), 4)
    norms.apply(model, NormConfig("batch"))
    bn = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)][-1]
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    model.eval()
    saved = _state(model)
    x = torch.randn(80, 6)
    out = monitors.run(("unit_input",), model, nn.functional.cross_entropy, x, torch.zeros(80, dtype=torch.long))
    assert _same_state(model, saved) and not model.training
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
    with torch.no_grad():  # by hand: BN with the batch's statistics (biased variance), gain and shift
        z = torch.sigmoid(nn.functional.batch_norm(lin[0](x), None, None, model[2].weight, model[2].bias,
                                                   training=True))
        a = lin[1](z)
        a = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + bn.eps) * bn.weight + bn.bias
    for j in range(dynamics.UNIT_COUNT):
        assert out[f"unit{j}_p50"] == pytest.approx(float(np.percentile(a[:, j].numpy(), 50)), abs=1e-4)


def test_unit_input_needs_a_hidden_activation():
    chain = models.build(ModelConfig("scalar_chain", 2, 1, "linear"), (1,), 1)
    with pytest.raises(ValueError, match="hidden activation"):
        dynamics.unit_input(chain, nn.functional.mse_loss, torch.randn(4, 1), torch.randn(4, 1))


def test_step_loss_change_on_a_tiny_batch_keeps_two_examples_a_sub_batch():
    model = models.build(ModelConfig("scalar_chain", 3, 1, "linear"), (1,), 1)
    norms.apply(model, NormConfig("batch"))
    x = torch.randn(6, 1)
    out = dynamics.step_loss_change(model, nn.functional.mse_loss, x, 2 * x, splits=20)
    assert np.isfinite(out["step_dloss_var"])
