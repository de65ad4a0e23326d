"""Speed, as ratios measured in one run (`make bench`); never asserted in tests.

- oplab's training loop vs a plain PyTorch loop on the same model, data and steps:
  the overhead of records, gradient-norm logging and evaluation bookkeeping.
- per-update cost of each normalizer relative to the plain MLP.
Read the ratios printed at the end (`extra_info`), not absolute times: the
machine may be shared.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from oplab import data, init, models, norms
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial
from oplab.train import train

STEPS = 80
TRIAL = Trial(data=DataConfig("mnist5k", n_train=4000, n_test=200), model=ModelConfig("mlp", 3, 256),
              init=InitConfig("he"), optim=OptimConfig("sgd", lr=0.05, momentum=0.9), steps=STEPS,
              batch_size=100, eval_every=STEPS)
RESULTS: dict[str, float] = {}


def plain_loop(trial: Trial) -> None:
    torch.manual_seed(0)
    d = data.load(trial.data)
    model = models.build(trial.model, d.input_shape, d.out_dim)
    norms.apply(model, trial.norm)
    init.apply(model, trial.init)
    opt = torch.optim.SGD(model.parameters(), lr=trial.optim.lr, momentum=trial.optim.momentum)
    gen = torch.Generator().manual_seed(0)
    it = data.batches(len(d.x_train), trial.batch_size, gen)
    for _ in range(trial.steps):
        idx = next(it)
        opt.zero_grad()
        F.cross_entropy(model(d.x_train[idx]), d.y_train[idx]).backward()
        opt.step()


@pytest.fixture(autouse=True, scope="module")
def _threads():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
    if RESULTS:
        print("\nratios:", {k: round(v / RESULTS["plain_loop"], 3) for k, v in RESULTS.items()})


def test_plain_pytorch_loop(benchmark):
    benchmark.pedantic(plain_loop, args=(TRIAL,), rounds=5, warmup_rounds=1)
    RESULTS["plain_loop"] = benchmark.stats["median"]


@pytest.mark.parametrize("norm", ["none", "batch", "weight", "weight_meanbn"])
def test_oplab_train(benchmark, norm):
    from oplab.config import override

    trial = override(TRIAL, {"norm.name": norm})
    benchmark.pedantic(train, args=(trial, 0), rounds=5, warmup_rounds=1)
    RESULTS[f"oplab_{norm}"] = benchmark.stats["median"]
    if "plain_loop" in RESULTS:
        benchmark.extra_info["ratio_to_plain_pytorch_loop"] = RESULTS[f"oplab_{norm}"] / RESULTS["plain_loop"]
