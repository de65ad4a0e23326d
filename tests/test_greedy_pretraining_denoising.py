"""The denoising auto-associator stage (oplab.pretrain, corruption > 0), the greedy_pretraining
study's `denoising` arm, against an independent re-implementation: masking noise drawn from the
stage's generator after each epoch's permutation (one draw a batch, none without corruption), the
tied decoder W^T plus a bias, squared error against the clean input, plain SGD on the encoder and
the decoder bias."""

import pytest
import torch
import torch.nn.functional as F

from oplab import init as initlib
from oplab import models, pretrain
from oplab.config import InitConfig, ModelConfig


def _stage_by_hand(w, b, x, *, corruption, epochs, lr, batch_size, seed):
    w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    c = torch.zeros(x.shape[1], requires_grad=True)
    gen = torch.Generator().manual_seed(seed)
    n = len(x)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(n // batch_size):
            inp = x[perm[i * batch_size:(i + 1) * batch_size]]
            if corruption > 0:  # no mask is drawn without corruption: the plain stage's batches stay as they were
                inp_c = inp * (torch.rand(inp.shape, generator=gen) >= corruption)
            else:
                inp_c = inp
            code = torch.sigmoid(inp_c @ w.t() + b)
            loss = ((code @ w + c - inp) ** 2).mean()
            gw, gb, gc = torch.autograd.grad(loss, [w, b, c])
            with torch.no_grad():
                w -= lr * gw
                b -= lr * gb
                c -= lr * gc
    return w.detach(), b.detach()


@pytest.mark.parametrize("corruption", [0.0, 0.25])
def test_a_denoising_stage_is_masked_sgd_on_the_clean_reconstruction(corruption):
    torch.manual_seed(0)
    model = models.build(ModelConfig("mlp", 2, 8, "sigmoid"), (6,), 3)
    initlib.apply(model, InitConfig("standard"))
    _, blocks, _ = pretrain.mlp_parts(model)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    lin = blocks[0][0]
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    with torch.no_grad():  # the stage's loss before: squared error of the clean reconstruction
        before = float(F.mse_loss(torch.sigmoid(x @ w0.t() + b0) @ w0, x))
    rep = pretrain.train_stage(blocks[0], x, y, method="autoencoder", n_out=3, epochs=3, lr=0.5, batch_size=16,
                               corruption=corruption, generator=torch.Generator().manual_seed(7))
    w, b = _stage_by_hand(w0, b0, x, corruption=corruption, epochs=3, lr=0.5, batch_size=16, seed=7)
    assert rep["loss_before"] == pytest.approx(before, rel=1e-6)
    assert torch.allclose(lin.weight, w, atol=1e-5) and torch.allclose(lin.bias, b, atol=1e-5)
    assert rep["updates"] == 3 * (64 // 16)


def test_corruption_changes_the_stage_and_the_study_arm_uses_it():
    from studies import greedy_pretraining as study

    def stage(corruption):
        torch.manual_seed(0)
        model = models.build(ModelConfig("mlp", 1, 8, "sigmoid"), (6,), 3)
        initlib.apply(model, InitConfig("standard"))
        _, blocks, _ = pretrain.mlp_parts(model)
        x = torch.randn(64, 6, generator=torch.Generator().manual_seed(1))
        pretrain.train_stage(blocks[0], x, torch.zeros(64, dtype=torch.long), method="autoencoder", n_out=3,
                             epochs=2, lr=0.5, batch_size=16, corruption=corruption,
                             generator=torch.Generator().manual_seed(3))
        return blocks[0][0].weight.detach().clone()

    assert not torch.allclose(stage(0.0), stage(study.CORRUPTION))
    arms = study.arms("quick")
    opts = {m: arms[f"{m} depth=3 lr=2"].trial.init.opts for m in ("autoencoder", "denoising")}
    assert opts["denoising"]["corruption"] == study.CORRUPTION and opts["autoencoder"]["corruption"] == 0.0
    assert {k: v for k, v in opts["denoising"].items() if k != "corruption"} == \
        {k: v for k, v in opts["autoencoder"].items() if k != "corruption"}
