"""Normalizers applied to a built model: none | batch | weight | weight_meanbn.

Batch norm and weight norm are torch's; mean-only batch norm (Salimans &
Kingma 2016, sec. 4) and the data-dependent init of weight-normed layers are
written here because no library has them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm

from oplab.config import NormConfig
from oplab.models import NormSlot, forward_inputs, probing, weight_layers
from oplab.registry import Registry

NORMS = Registry("norm")


class MeanOnlyBatchNorm(nn.Module):
    """Subtract the minibatch mean per feature (running mean at eval), add a learned bias.

    No division by the standard deviation: with weight norm the scale is already
    controlled by g, and the mean subtraction alone removes the shift noise."""

    def __init__(self, features: int, spatial: bool = False, momentum: float = 0.1):
        super().__init__()
        self.features, self.spatial, self.momentum = features, spatial, momentum
        self.bias = nn.Parameter(torch.zeros(features))
        self.register_buffer("running_mean", torch.zeros(features))

    def _shape(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, *([1] * (x.ndim - 2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            dims = [0] + list(range(2, x.ndim))
            mean = x.mean(dim=dims)
            with torch.no_grad():
                self.running_mean.lerp_(mean.detach(), self.momentum)
        else:
            mean = self.running_mean
        return x - self._shape(mean, x) + self._shape(self.bias, x)

    def extra_repr(self) -> str:
        return f"{self.features}, spatial={self.spatial}"


def _replace_slots(model: nn.Module, make) -> None:
    for name, child in model.named_children():
        if isinstance(child, NormSlot):
            setattr(model, name, make(child))
        else:
            _replace_slots(child, make)


def _batchnorm(slot: NormSlot) -> nn.Module:
    return (nn.BatchNorm2d if slot.spatial else nn.BatchNorm1d)(slot.features)


def _weight_norm_all(model: nn.Module) -> None:
    for m in weight_layers(model):
        weight_norm(m, name="weight", dim=0)  # g per output unit; v keeps the initial weight


@NORMS.register("none")
def none(model: nn.Module) -> nn.Module:
    return model


@NORMS.register("batch")
def batch(model: nn.Module) -> nn.Module:
    _replace_slots(model, _batchnorm)
    return model


@NORMS.register("weight")
def weight(model: nn.Module) -> nn.Module:
    _weight_norm_all(model)
    return model


@NORMS.register("weight_meanbn")
def weight_meanbn(model: nn.Module) -> nn.Module:
    _weight_norm_all(model)
    _replace_slots(model, lambda s: MeanOnlyBatchNorm(s.features, s.spatial))
    return model


def apply(model: nn.Module, cfg: NormConfig) -> nn.Module:
    """Apply the normalizer of a trial config to `model` in place."""
    return NORMS.build(cfg.name, model)


def is_weight_normed(module: nn.Module) -> bool:
    return parametrize.is_parametrized(module, "weight")


@torch.no_grad()
def data_dependent_init(model: nn.Module, x: torch.Tensor) -> list[dict[str, float]]:
    """Salimans & Kingma's init: layer by layer on the batch `x`, set g and b of each
    weight-normed layer so that its pre-activations have mean 0 and std 1 per unit.
    The read-out layer is included, as in the paper. Running statistics of
    normalization layers are left as they were. Returns per-layer (mean, std) before.
    A model that has its own `data_dependent_init(x)` (a recurrence written out step by step, whose
    recurrent weight is not called as a layer: oplab.recurrent.NormLSTM) is initialized by it."""
    if callable(getattr(model, "data_dependent_init", None)):
        return model.data_dependent_init(x)
    layers = [m for m in weight_layers(model) if is_weight_normed(m)]
    report = []
    with probing(model, train=True):
        for m in layers:
            (out,) = forward_inputs(model, x, [m])
            dims = [0] + list(range(2, out.ndim))
            mean, std = out.mean(dim=dims), out.std(dim=dims).clamp_min(1e-8)
            g = m.parametrizations.weight.original0
            shape = (-1,) + (1,) * (g.ndim - 1)
            g.div_(std.view(shape))
            if m.bias is not None:
                m.bias.sub_(mean).div_(std)
            report.append({"mean": float(mean.mean()), "std": float(std.mean())})
    return report
