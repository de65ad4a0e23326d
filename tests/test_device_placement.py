"""Every arm of every study, at every budget, builds with every parameter and buffer on the
requested device (checked on PyTorch's `meta` device, which needs no GPU): a normalizer or
other module built after the move would stay on the CPU and crash a GPU run."""

import pytest
import torch

from oplab import plan as planning
from oplab import tasks
from oplab.datatask import build_model
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
         for n, a in planning.arms_of(s, b).items()]


@pytest.mark.parametrize("study,budget,name,arm", CASES, ids=[f"{s.NAME}:{b}:{n}" for s, b, n, _ in CASES])
def test_every_arm_builds_on_the_requested_device(study, budget, name, arm):
    shape = shape_of(arm.trial)
    if shape is None:
        pytest.skip("a stream task's sequence model has no normalizer; oplab.streamtask builds it and moves it once")
    for trial in (arm.trial, arm.trial.teacher):
        if trial is None:
            continue
        model = build_model(trial, *shape, torch.device("meta"))
        tensors = list(model.parameters()) + list(model.buffers())
        assert tensors and all(t.device.type == "meta" for t in tensors), name



def test_monitors_around_a_recurrent_model_use_pytorch_kernels_not_cudnn(monkeypatch):
    """cuDNN's RNN backward refuses eval mode and double backward: monitors.run turns cuDNN off
    around recurrent models (and only them), and gives the setting back."""
    import torch.nn.functional as F

    from oplab import models, monitors
    from oplab.config import DataConfig, ModelConfig

    seen = {}

    def spy(model, loss_fn, x, y):
        seen[type(model).__name__] = torch.backends.cudnn.enabled
        return {}

    monkeypatch.setitem(monitors.MONITORS._items, "cudnn_spy", spy)
    from oplab import data

    d = data.load(DataConfig("temporal_order", 32, 8, options={"length": 10, "n_train": 32, "n_test": 8}))
    rnn = models.build(ModelConfig("rnn", 1, 8, "tanh", options={"cell": "lstm", "init": "torch"}), d.input_shape,
                       d.out_dim)
    mlp = models.build(ModelConfig("mlp", 1, 8), (6,), 3)
    before = torch.backends.cudnn.enabled
    out = monitors.run(("cudnn_spy", "curvature"), rnn, F.cross_entropy, d.x_train[:8], d.y_train[:8])
    monitors.run(("cudnn_spy",), mlp, F.cross_entropy, torch.randn(4, 6), torch.tensor([0, 1, 2, 0]))
    assert seen == {type(rnn).__name__: False, "Sequential": before} and torch.backends.cudnn.enabled == before
    assert out["gTHg"] == out["gTHg"]  # double backward through the recurrent model ran (a number, not NaN)
