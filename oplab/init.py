"""Weight initializers: default, glorot, he, orthogonal, normal, standard.

Each is `fn(model, batch, **options) -> report` and sets every Linear/Conv
weight (the direction v of a weight-normed layer, through its right-inverse)
and zeros the biases. The tensor rules are torch.nn.init's; `batch` is for
data-dependent schemes and ignored by the others; the report (a dict, stored
in the trial's record) says what a data-dependent scheme did.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from oplab.config import InitConfig
from oplab.models import weight_layers
from oplab.registry import Registry

INITS = Registry("initializer")


@torch.no_grad()
def set_weight(module: nn.Module, w: torch.Tensor) -> None:
    """Assign a weight; for a weight-normed layer this sets g = ||w|| and v = w."""
    from torch.nn.utils import parametrize

    if parametrize.is_parametrized(module, "weight"):
        module.weight = w
    else:
        module.weight.copy_(w)


def current_weight(module: nn.Module) -> torch.Tensor:
    return module.weight.detach().clone()


def fan_in(w: torch.Tensor) -> int:
    return w.shape[1] * (w[0, 0].numel() if w.ndim > 2 else 1)


def _each(model: nn.Module, rule: Callable[[torch.Tensor], torch.Tensor], bias: str) -> dict:
    if bias not in ("zero", "keep"):
        raise ValueError(f"bias rule {bias!r} is not valid; valid: zero, keep")
    for m in weight_layers(model):
        w = torch.empty_like(current_weight(m))
        set_weight(m, rule(w))
        if bias == "zero" and m.bias is not None:
            with torch.no_grad():
                m.bias.zero_()
    return {}


@INITS.register("default")
def default(model: nn.Module, batch=None) -> dict:
    """PyTorch's own layer init (Kaiming-uniform with a=sqrt(5); biases uniform)."""
    return {}


@INITS.register("glorot")
def glorot(model: nn.Module, batch=None, *, gain: float = 1.0, bias: str = "zero") -> dict:
    """Glorot & Bengio's normalized init U(-u, u), u = gain * sqrt(6 / (fan_in + fan_out))."""
    return _each(model, lambda w: nn.init.xavier_uniform_(w, gain=gain), bias)


@INITS.register("he")
def he(model: nn.Module, batch=None, *, bias: str = "zero") -> dict:
    """He et al.: N(0, 2 / fan_in)."""
    return _each(model, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), bias)


@INITS.register("orthogonal")
def orthogonal(model: nn.Module, batch=None, *, gain: float = 1.0, bias: str = "zero") -> dict:
    """Saxe et al.: a (semi-)orthogonal matrix times `gain`."""
    return _each(model, lambda w: nn.init.orthogonal_(w, gain=gain), bias)


@INITS.register("normal")
def normal(model: nn.Module, batch=None, *, sigma: float = 0.01, bias: str = "zero") -> dict:
    """N(0, sigma^2), e.g. the old N(0, 0.01^2) rule."""
    return _each(model, lambda w: nn.init.normal_(w, 0.0, sigma), bias)


@INITS.register("standard")
def standard(model: nn.Module, batch=None, *, bias: str = "zero") -> dict:
    """The 'standard' heuristic of Glorot & Bengio: U(-1/sqrt(n), 1/sqrt(n)), n = fan-in."""

    def rule(w: torch.Tensor) -> torch.Tensor:
        u = 1.0 / math.sqrt(fan_in(w))
        return nn.init.uniform_(w, -u, u)

    return _each(model, rule, bias)


def apply(model: nn.Module, cfg: InitConfig, batch: torch.Tensor | None = None) -> dict:
    """Initialize `model` in place as the trial config says; return the initializer's report."""
    return INITS.build(cfg.name, model, batch, **cfg.opts)
