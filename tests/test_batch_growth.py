"""Batch growth (Trial.batch_growth / batch_every, Smith et al. 2017) and the loop's index batches."""

import pytest
import torch

from oplab import data as datalib
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial, key_dict
from oplab.growth import batch_plan
from oplab.train import train

BASE = Trial(data=DataConfig("mnist5k", n_train=300, n_test=100), model=ModelConfig("mlp", 1, 16),
             optim=OptimConfig("sgd", lr=0.05), epochs=4, batch_size=10)


def test_batches_of_one_size_are_each_epochs_seeded_permutation_cut_in_order():
    b = datalib.batches(103, 10, torch.Generator().manual_seed(3))
    ref = torch.Generator().manual_seed(3)
    for _ in range(4):  # four epochs, across reshuffles: 10 full batches each, the last 3 indices dropped
        perm = torch.randperm(103, generator=ref)
        for i in range(10):
            assert torch.equal(next(b), perm[10 * i : 10 * i + 10])


def test_growing_batches_start_a_new_epoch_when_they_do_not_fit():
    b = datalib.batches(10, iter([4, 4, 4, 6, 3]), torch.Generator().manual_seed(1))
    ref = torch.Generator().manual_seed(1)
    p1, p2, p3 = (torch.randperm(10, generator=ref) for _ in range(3))
    expected = [p1[:4], p1[4:8], p2[:4], p2[4:10], p3[:3]]
    assert all(torch.equal(got, want) for got, want in zip(b, expected, strict=True))
    with pytest.raises(ValueError, match="batch size 11 is larger than the 10 training examples"):
        next(datalib.batches(10, iter([11]), torch.Generator()))


def test_batch_plan_multiplies_at_each_milestone_and_caps_at_the_split():
    trial = Trial(**{**BASE.__dict__, "batch_growth": 5.0, "batch_every": 0.25})
    sizes = batch_plan(trial, 300)
    total = 4 * 300
    seen, expected = 0, []
    for b in sizes:  # an independent reading of the rule: size from the examples seen before the update
        expected.append(min(300, 10 * 5 ** int(seen // (0.25 * total))))
        seen += b
    assert sizes == expected and sorted(set(sizes)) == [10, 50, 250, 300]
    assert total <= sum(sizes) < total + 300
    assert batch_plan(BASE, 300) is None


def test_a_growing_batch_trains_with_fewer_updates_and_evaluates_once_an_epoch():
    grow = Trial(**{**BASE.__dict__, "batch_growth": 2.0, "batch_every": 0.25})
    rec = train(grow, 0)
    plain = train(BASE, 0)
    sizes = batch_plan(grow, 300)
    assert rec.status == "ok" and rec.final["steps"] == len(sizes) < plain.final["steps"] == 4 * 30
    log = rec.curves["log"]
    assert log["batch_size"] == [sizes[s - 1] for s in log["step"]]
    epochs = rec.curves["eval"]["epoch"]
    assert epochs[0] == 0 and [int(e) for e in epochs[1:]] == [1, 2, 3, 4] and epochs[-1] >= 4
    assert "batch_size" not in plain.curves["log"]


def test_batch_growth_is_checked_and_left_out_of_old_keys():
    with pytest.raises(ValueError, match="batch_growth must be >= 1"):
        Trial(batch_growth=0.5)
    with pytest.raises(ValueError, match=r"batch_every must be in \[0, 1\]"):
        Trial(batch_every=1.5)
    with pytest.raises(ValueError, match="set steps = 0"):
        Trial(steps=10, batch_growth=2.0, batch_every=0.5)
    d = key_dict(BASE)
    assert "batch_growth" not in d and "batch_every" not in d
    assert key_dict(Trial(batch_growth=2.0, batch_every=0.5))["batch_growth"] == 2.0
