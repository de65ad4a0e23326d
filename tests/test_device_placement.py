"""Every arm of every study, at every budget, builds with every parameter and buffer on the
requested device (checked on PyTorch's `meta` device, which needs no GPU): a normalizer or
other module built after the move would stay on the CPU and crash a GPU run."""

import pytest
import torch

from oplab import runner, tasks
from oplab.train import build_model
from studies import all_studies

SHAPES = {"cifar10": ((3, 32, 32), 10), "mnist": ((1, 28, 28), 10), "fashion_mnist": ((1, 28, 28), 10),
          "mnist5k": ((1, 28, 28), 10), "mnist1d": ((40,), 10)}


def shape_of(trial):
    d = trial.data
    if d.name in SHAPES:
        return SHAPES[d.name]
    if d.name in tasks.STREAMS or trial.model.name in ("char_lstm",):
        return None
    from oplab import data

    ds = data.load(d)
    return ds.input_shape, ds.out_dim


CASES = [(s, b, n, a) for s in all_studies() for b in ("smoke", "quick", "full")
         for n, a in runner.arms_of(s, b).items()]


@pytest.mark.parametrize("study,budget,name,arm", CASES, ids=[f"{s.NAME}:{b}:{n}" for s, b, n, _ in CASES])
def test_every_arm_builds_on_the_requested_device(study, budget, name, arm):
    shape = shape_of(arm.trial)
    if shape is None:
        pytest.skip("a stream task's sequence model has no normalizer; oplab.seqtrain builds it and moves it once")
    for trial in (arm.trial, arm.trial.teacher):
        if trial is None:
            continue
        model = build_model(trial, *shape, torch.device("meta"))
        tensors = list(model.parameters()) + list(model.buffers())
        assert tensors and all(t.device.type == "meta" for t in tensors), name

