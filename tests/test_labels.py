"""oplab.labels (scarce labels) against independent counts, and the dataset task that uses it: the loop
trains on the seed's labeled digits less the validation ones, an initializer sees the whole split with
every other label hidden, the validation split is evaluated beside the test split."""

import numpy as np
import pytest
import torch

from oplab import data as datalib
from oplab import labels, seeds
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial, key_dict
from oplab.train import train


def _data():
    return datalib.load(DataConfig("mnist5k"))


def test_stratified_counts_and_determinism():
    y = torch.tensor(np.repeat(np.arange(10), 40))[torch.randperm(400, generator=torch.Generator().manual_seed(3))]
    for n in (10, 37, 100, 400):
        idx = labels.stratified(y, n, torch.Generator().manual_seed(0), 10)
        counts = np.bincount(y[idx].numpy(), minlength=10)
        assert len(idx) == n and len(set(idx.tolist())) == n  # distinct
        assert counts.min() == n // 10 and counts.max() == n // 10 + (n % 10 > 0)  # stratified
        assert int((counts > n // 10).sum()) == n % 10
        again = labels.stratified(y, n, torch.Generator().manual_seed(0), 10)
        assert torch.equal(idx, again)
    other = labels.stratified(y, 100, torch.Generator().manual_seed(1), 10)
    assert not torch.equal(labels.stratified(y, 100, torch.Generator().manual_seed(0), 10), other)
    with pytest.raises(ValueError, match="cannot draw 500"):
        labels.stratified(y, 500, torch.Generator().manual_seed(0), 10)
    short = torch.cat([y[y != 0], torch.zeros(3, dtype=y.dtype)])  # class 0: 3 examples, a draw of 100 needs 10
    with pytest.raises(ValueError, match="class 0 has 3"):
        labels.stratified(short, 100, torch.Generator().manual_seed(0), 10)
    plain = labels.stratified(y, 50, torch.Generator().manual_seed(0), None)  # regression: a plain subset
    assert len(set(plain.tolist())) == 50


def test_split_is_per_seed_disjoint_and_hides_other_labels():
    d = _data()
    a, b = labels.split(d, 100, 20, seed=0), labels.split(d, 100, 20, seed=1)
    assert not torch.equal(a.labeled_idx, b.labeled_idx)
    again = labels.split(d, 100, 20, seed=0)
    assert torch.equal(a.labeled_idx, again.labeled_idx) and torch.equal(a.val_idx, again.val_idx)
    assert len(a.train.x_train) == 80 and len(a.val[0]) == 20
    val, lab = set(a.val_idx.tolist()), set(a.labeled_idx.tolist())
    assert val <= lab
    assert np.bincount(d.y_train[a.val_idx].numpy(), minlength=10).tolist() == [2] * 10
    # the training examples are exactly the labeled ones outside validation, in the split's order
    train_idx = sorted(lab - val)
    assert torch.equal(a.train.x_train, d.x_train[train_idx]) and torch.equal(a.train.y_train, d.y_train[train_idx])
    assert torch.equal(a.val[0], d.x_train[sorted(val)])
    assert a.train.x_test is d.x_test
    x_pool, y_pool = a.pool
    assert x_pool is d.x_train and len(y_pool) == len(d.y_train) == 4000
    shown = torch.nonzero(y_pool != labels.IGNORE).flatten()
    assert shown.tolist() == sorted(lab)
    assert torch.equal(y_pool[shown], d.y_train[shown])
    assert seeds.derive(0, "labels") not in {seeds.derive(0, p) for p in seeds.OFFSETS if p != "labels"}


def test_trial_fields_are_checked_and_left_out_of_old_keys():
    assert "labeled" not in key_dict(Trial()) and "val_labeled" not in key_dict(Trial())
    assert key_dict(Trial(labeled=300, val_labeled=60, batch_size=20))["labeled"] == 300
    with pytest.raises(ValueError, match="val_labeled < labeled"):
        Trial(labeled=10, val_labeled=10, batch_size=1)
    with pytest.raises(ValueError, match="val_labeled < labeled"):
        Trial(val_labeled=5)
    with pytest.raises(ValueError, match="larger than the 8 labeled"):
        Trial(labeled=10, val_labeled=2, batch_size=20)


def test_the_loop_trains_on_the_labeled_digits_and_pretraining_sees_all():
    base = dict(data=DataConfig("mnist5k"), model=ModelConfig("mlp", 1, 16, "relu"),
                optim=OptimConfig("sgd", lr=0.1), steps=6, batch_size=10, eval_every=3, labeled=50, val_labeled=10)
    rec = train(Trial(init=InitConfig("greedy", {"method": "autoencoder", "base": "he", "epochs": 1, "lr": 0.5,
                                                   "batch_size": 200}), **base), seed=0)
    assert rec.status == "ok"
    assert rec.final["pretrain_updates"] == 4000 // 200  # one epoch of the whole split, not of the 40 labeled
    ev = rec.curves["eval"]
    assert len(ev["val_loss"]) == len(ev["test_loss"]) == 3 and ev["step"] == [0, 3, 6]
    assert rec.final["val_loss"] == ev["val_loss"][-1] and rec.final["val_loss_min"] == min(ev["val_loss"])
    assert rec.final["val_acc"] == ev["val_acc"][-1]
    # the full-split training loss is the labeled training digits' (an independent forward pass on them)
    plain = Trial(init=InitConfig("he"), **base)
    from oplab.train import train_model
    rec2, model = train_model(plain, seed=0)
    s = labels.split(datalib.load(DataConfig("mnist5k")), 50, 10, seed=0)
    with torch.no_grad():
        want = torch.nn.functional.cross_entropy(model.eval()(s.train.x_train), s.train.y_train).item()
        val = torch.nn.functional.cross_entropy(model(s.val[0]), s.val[1]).item()
    assert rec2.final["train_loss_full"] == pytest.approx(want, rel=1e-5)
    assert rec2.final["val_loss"] == pytest.approx(val, rel=1e-5)
