"""A tiny study for the tests of runs, failures and reports (it lives in tests/, so the suite
does not register it). Two arms on a slice of mnist5k; with the environment variable
TINY_BAD=1, arm "b" raises at run time (an LSUV init with tmax -1), which the arm checks
cannot see."""

from __future__ import annotations

import os
import sys

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "tiny"
TITLE = "A tiny study"
CLAIM = "A larger learning rate lowers the test error of a small MLP after a few updates."
SOURCE = "none (a test fixture)"
VERSION = 1
SEEDS = {"smoke": 5, "quick": 5, "long": 5, "full": 5}
SETUP = {b: {} for b in ("smoke", "quick", "long", "full")}
EPOCHS = int(os.environ.get("TINY_EPOCHS", "2"))


def arms(budget: str) -> dict[str, kit.Arm]:
    base = dict(data=DataConfig("mnist5k", n_train=200, n_test=100), model=ModelConfig("mlp", 1, 16),
                epochs=EPOCHS, batch_size=20)
    bad = os.environ.get("TINY_BAD") == "1"
    return {"a": kit.Arm(Trial(optim=OptimConfig("sgd", lr=0.1), **base), {"lr": "0.1"}),
            "b": kit.Arm(Trial(optim=OptimConfig("sgd", lr=0.02), init=InitConfig("lsuv", {"tmax": -1}) if bad
                               else InitConfig("default"), **base), {"lr": "0.02"})}


def verdict(t, ctx):
    return [kit.difference(t, "test_err", {"lr": "0.02"}, {"lr": "0.1"}, part="lr", above=0.0, unit="",
                           claim="test error at lr 0.02 minus at lr 0.1 > 0")]


def tables(t, curves, ctx):
    return {"test error per arm": kit.summary(t, "test_err", ["lr"])}


def figures(t, curves, ctx):
    fig, (ax,) = plots.figure(1)
    plots.points(ax, t, "lr", "test_err", "lr", "test error", "Test error")
    return {"error": fig}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
