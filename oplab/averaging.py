"""Polyak / EMA averaging of the iterates (OptimConfig.ema_decay > 0): the loop updates the average
after every update, and each evaluation measures the averaged model's test loss beside the model's.
"""

from __future__ import annotations

from torch import nn

from oplab import optim


class Averaging:
    def __init__(self, model: nn.Module, decay: float):
        self.model = optim.averaged(model, decay)  # torch's AveragedModel (a copy of the model)

    def update(self, model: nn.Module) -> None:  # after each update
        self.model.update_parameters(model)

    def eval_row(self, task) -> dict[str, float]:  # at each evaluation
        return {"ema_test_loss": task.evaluate(self.model.module)["loss"]}
