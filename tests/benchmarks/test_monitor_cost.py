"""Cost of each registered monitor, as a ratio to one plain training step (forward, backward,
SGD update) of the same MLP on a batch of the same size; never asserted in tests.

Run: `.venv/bin/python -m pytest tests/benchmarks/test_monitor_cost.py --benchmark-only -p no:cacheprovider
--override-ini addopts=`. Read the ratios printed at the end (`extra_info`): a monitor of ratio r run every
k updates adds about r / k to the training time. The machine may be shared: ratios, not absolute times.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import oplab  # noqa: F401  registers every monitor
from oplab import data, models, monitors
from oplab.config import DataConfig, ModelConfig

MODEL = ModelConfig("mlp", 3, 256)  # the MLP of test_speed.py
BATCH = 100
RESULTS: dict[str, float] = {}


@pytest.fixture(scope="module")
def setup():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    d = data.load(DataConfig("mnist5k", n_train=1000, n_test=100))
    model = models.build(MODEL, d.input_shape, d.out_dim)
    x, y = d.x_train[:BATCH], d.y_train[:BATCH]
    yield model, x, y
    torch.set_num_threads(prev)
    if "train_step" in RESULTS:
        print("\nratios to one training step:",
              {k: round(v / RESULTS["train_step"], 2) for k, v in RESULTS.items() if k != "train_step"})


def test_plain_training_step(benchmark, setup):
    model, x, y = setup
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: the model stays the same for the monitors

    def step():
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    benchmark.pedantic(step, rounds=20, iterations=5, warmup_rounds=2)
    RESULTS["train_step"] = benchmark.stats["median"]


@pytest.mark.parametrize("name", monitors.MONITORS.names())
def test_monitor(benchmark, setup, name):
    model, x, y = setup
    try:
        monitors.run((name,), model, F.cross_entropy, x, y)
    except (ValueError, TypeError, RuntimeError) as e:  # a monitor made for other models (e.g. flat_params)
        pytest.skip(f"{name} does not apply to this MLP: {e}")
    benchmark.pedantic(monitors.run, args=((name,), model, F.cross_entropy, x, y), rounds=5, warmup_rounds=1)
    RESULTS[name] = benchmark.stats["median"]
    if "train_step" in RESULTS:
        benchmark.extra_info["ratio_to_training_step"] = RESULTS[name] / RESULTS["train_step"]
