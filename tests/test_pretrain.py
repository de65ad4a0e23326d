"""Greedy layer-wise pre-training (oplab.pretrain): each stage trains only its own block,
an autoencoder stage lowers its own reconstruction error, the fine-tuned net starts from
exactly the stacked weights, and pre-training compute is recorded apart."""

import pytest
import torch
import torch.nn.functional as F

from oplab import data as datalib
from oplab import init as initlib
from oplab import models, norms, pretrain
from oplab.config import InitConfig, ModelConfig, override
from oplab.train import train
from tests.conftest import tiny_trial


def mlp(depth=3, width=8, n_in=6, n_out=3):
    torch.manual_seed(0)
    m = models.build(ModelConfig("mlp", depth, width, "sigmoid"), (n_in,), n_out)
    initlib.apply(m, InitConfig("standard"))
    return m


def toy(n=64, n_in=6, n_out=3):
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, n_in, generator=g), torch.randint(0, n_out, (n,), generator=g)


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("method", pretrain.METHODS)
@pytest.mark.parametrize("k", [0, 1, 2])
def test_a_stage_changes_only_its_own_block(method, k):
    model = mlp()
    lead, blocks, readout = pretrain.mlp_parts(model)
    x, y = toy()
    h = pretrain.run_blocks(lead + [m for b in blocks[:k] for m in b], x)  # the stage's input
    before = snapshot(model)
    pretrain.train_stage(blocks[k], h, y, method=method, n_out=3, epochs=2, lr=0.5, batch_size=16)
    after = snapshot(model)
    own = {id(p) for p in blocks[k][0].parameters()}
    for name, p in model.named_parameters():  # earlier (frozen), later (not yet built) and read-out: unchanged
        assert (not torch.equal(before[name], after[name])) == (id(p) in own), name


def test_an_autoencoder_stage_lowers_its_reconstruction_error():
    model = mlp(depth=2)
    _, blocks, _ = pretrain.mlp_parts(model)
    x, y = toy()
    lin = blocks[0][0]

    def recon_error(bias):  # tied decoder W^T, computed here independently of the stage
        with torch.no_grad():
            return float(F.mse_loss(F.linear(torch.sigmoid(lin(x)), lin.weight.t(), bias), x))

    start = recon_error(torch.zeros(6))
    rep = pretrain.train_stage(blocks[0], x, y, method="autoencoder", n_out=3, epochs=20, lr=0.5, batch_size=16)
    assert rep["loss_before"] == pytest.approx(start)
    assert rep["loss_after"] < 0.9 * rep["loss_before"]
    assert rep["updates"] == 20 * (64 // 16)


def test_denoising_corrupts_inputs_and_untied_decoders_leave_the_encoder_shape():
    model = mlp(depth=2)
    _, blocks, _ = pretrain.mlp_parts(model)
    x, y = toy()
    rep = pretrain.train_stage(blocks[0], x, y, method="autoencoder", n_out=3, epochs=5, lr=0.5, batch_size=16,
                               corruption=0.3, tied=False)
    assert rep["loss_after"] < rep["loss_before"]


def test_the_fine_tuned_net_starts_from_exactly_the_stacked_weights():
    """The record's step-0 test loss equals the test loss of a net built and pre-trained here
    by hand with the same seed: fine-tuning starts from the stacked weights, untouched."""
    t = tiny_trial(**{"model.activation": "sigmoid", "init.name": "greedy",
                      "init.options": {"method": "supervised", "epochs": 2, "lr": 0.3, "batch_size": 20}})
    rec = train(t, 5)
    torch.manual_seed(5)
    d = datalib.load(t.data, torch.device("cpu"))
    model = models.build(t.model, d.input_shape, d.out_dim)
    norms.apply(model, t.norm)
    n = len(d.x_train)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(5 + 10_007))
    rep = initlib.apply(model, t.init, d.x_train[perm[: t.batch_size]], train=(d.x_train, d.y_train), seed=5)
    model.eval()
    with torch.no_grad():
        loss = float(F.cross_entropy(model(d.x_test), d.y_test, reduction="sum")) / len(d.x_test)
    assert rec.curves["eval"]["test_loss"][0] == pytest.approx(loss, rel=1e-6)
    assert rec.extra["init"]["stages"] == rep["stages"]
    # compute is accounted apart: 2 hidden layers x 2 epochs x (120 / 20) pre-training updates
    assert rec.final["pretrain_updates"] == 2 * 2 * 6 and rec.final["finetune_updates"] == rec.final["steps"] == 12


def test_pre_training_changes_the_start_and_plain_trials_record_no_pretraining():
    plain = train(tiny_trial(**{"init.name": "standard"}), 0)
    assert "pretrain_updates" not in plain.final
    pre = train(tiny_trial(**{"init.name": "greedy", "init.options": {"epochs": 1, "lr": 0.1}}), 0)
    assert pre.curves["eval"]["test_loss"][0] != plain.curves["eval"]["test_loss"][0]
    assert [s["layer"] for s in pre.extra["init"]["stages"]] == [0, 1]


@pytest.mark.parametrize("options,match", [
    ({"method": "rbm"}, "valid: supervised, autoencoder"),
    ({"epochs": 0}, "epochs >= 1"),
    ({"corruption": 1.0}, "corruption < 1"),
    ({"base": "greedy"}, "base initializer"),
])
def test_bad_options_are_clear_errors(options, match):
    with pytest.raises(ValueError, match=match):
        train(tiny_trial(**{"init.name": "greedy", "init.options": options}), 0)


def test_only_mlps_can_be_pre_trained_greedily():
    t = override(tiny_trial(), {"model.name": "convnet", "model.depth": 2, "model.width": 4, "init.name": "greedy"})
    with pytest.raises(ValueError, match="needs an MLP"):
        train(t, 0)
