"""Weight initializers: default, glorot, he, orthogonal, normal, standard, lsuv.

Each is `fn(model, batch, **options) -> report` and sets every Linear/Conv
weight (the direction v of a weight-normed layer, through its right-inverse)
and zeros the biases. The tensor rules are torch.nn.init's; `batch` is for
data-dependent schemes and ignored by the others; the report (a dict, stored
in the trial's record) says what a data-dependent scheme did.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import torch
from torch import nn

from oplab.config import InitConfig
from oplab.models import forward_inputs, probing, weight_layers
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


@INITS.register("lsuv")
@torch.no_grad()
def lsuv(model: nn.Module, batch: torch.Tensor | None = None, *, tol: float = 0.1, tmax: int = 10,
         bias: str = "zero") -> dict:
    """Mishkin & Matas's layer-sequential unit-variance init (arXiv 1511.06422, Algorithm 1).

    Orthonormal init of every Linear/Conv weight (biases per `bias`); then, from the first
    layer to the last, forward the batch and divide the layer's weight by sqrt(Var(output))
    until |Var - 1| < tol or `tmax` rescalings. Var is over every element of the layer's
    output (the paper's Var(B_L) of the whole output blob). The read-out layer is included,
    as in the authors' Caffe script and PyTorch port, which visit every conv/inner-product
    layer. Defaults tol 0.1, tmax 10 are the authors' PyTorch port; their Caffe script uses
    margin 0.02 and 20 iterations. The forwards run in training mode, as the Caffe script's
    train net does, so a batch-norm layer normalizes with the batch's statistics; its
    parameters are never touched and its running statistics are restored afterwards.
    Returns per-layer variance before and after, rescalings used and whether |Var - 1| < tol."""
    if batch is None:
        raise ValueError("lsuv is data-dependent: it needs a batch of training inputs")
    if len(batch) < 2:
        raise ValueError(f"lsuv needs a batch of at least 2 examples to estimate an output variance; "
                         f"got {len(batch)}")
    if not tol > 0 or tmax < 0:
        raise ValueError(f"lsuv needs tol > 0 and tmax >= 0; got tol={tol}, tmax={tmax}")
    orthogonal(model, bias=bias)
    layers = weight_layers(model)

    def variance(i: int, m: nn.Module) -> float:
        (out,) = forward_inputs(model, batch, [m])
        var = float(out.var())
        if not math.isfinite(var):  # NaN compares False with everything: the loop below would accept it
            raise RuntimeError(f"lsuv: layer {i} ({type(m).__name__}) has output variance {var} on the batch "
                               "(non-finite inputs, weights or activations); it cannot be rescaled to 1")
        return var

    report = []
    with probing(model, train=True):  # BN in training mode; its running statistics untouched
        for i, m in enumerate(layers):
            var = before = variance(i, m)
            tries = 0
            while abs(var - 1.0) >= tol and tries < tmax:
                if not (math.isfinite(var) and var > 0):
                    raise RuntimeError(f"lsuv: layer {i} ({type(m).__name__}) has output variance {var} on the "
                                       "batch; it cannot be rescaled to 1")
                set_weight(m, current_weight(m) / math.sqrt(var))
                tries += 1
                var = variance(i, m)
            report.append({"layer": i, "var_before": before, "var": var, "iters": tries,
                           "converged": abs(var - 1.0) < tol})
    return {"tol": tol, "tmax": tmax, "layers": report}


@INITS.register("net2net")
@torch.no_grad()
def net2net(model: nn.Module, batch: torch.Tensor | None = None, *, ops: list, noise: float = 0.0,
            teacher: nn.Module | None = None, seed: int = 0) -> dict:
    """Net2Net (Chen, Goodfellow & Shlens 2016): grow the trained teacher (Trial.teacher) by
    function-preserving transforms (oplab.net2net) into the trial's architecture, and copy the
    grown weights into `model`. `ops`: a list of ["wider", layer, width] and ["deeper", layer]
    applied in order (layer: 0-based hidden weight layer); `noise`: Net2WiderNet's symmetry-
    breaking noise (std = noise x the layer's weight std), drawn from a generator seeded by the
    trial's seed. `batch` sets an inserted batch norm to undo itself. Reports the ops and the
    measured preservation error max |f_grown(x) - f_teacher(x)| on the batch, in eval mode."""
    from oplab import net2net as n2n

    if teacher is None:
        raise ValueError("the net2net init grows a trained teacher: give the trial a teacher (Trial.teacher)")
    grown = _grow(teacher, ops, noise, torch.Generator().manual_seed(seed + 30_011), batch)
    n2n.same_structure(grown, model, raise_error=True)
    model.load_state_dict(grown.state_dict())
    report = {"ops": [list(op) for op in ops], "noise": noise}
    if batch is not None:  # the measured preservation error, as trained and with the noise off
        exact = _grow(teacher, ops, 0.0, torch.Generator().manual_seed(seed), batch)
        with probing(model, train=False), probing(exact, train=False):
            ref = teacher(batch)
            report["preservation_error"] = float((model(batch) - ref).abs().max())
            report["preservation_error_no_noise"] = float((exact(batch) - ref).abs().max())
    return report


def _grow(teacher: nn.Module, ops: list, noise: float, generator: torch.Generator,
          batch: torch.Tensor | None) -> nn.Module:
    """The teacher grown by the Net2Net `ops` in order (oplab.net2net; the input is not changed)."""
    from oplab import net2net as n2n

    grown = teacher
    for op in ops:
        kind, args = op[0], list(op[1:])
        if kind == "wider":
            grown = n2n.wider(grown, int(args[0]), int(args[1]), noise=noise, generator=generator)
        elif kind == "deeper":
            grown = n2n.deeper(grown, int(args[0]), batch=batch)
        else:
            raise ValueError(f"net2net op {kind!r} is not valid; valid: wider, deeper")
    return grown


def apply(model: nn.Module, cfg: InitConfig, batch: torch.Tensor | None = None,
          train: tuple[torch.Tensor, torch.Tensor] | None = None, seed: int = 0,
          teacher: nn.Module | None = None) -> dict:
    """Initialize `model` in place as the trial config says; return the initializer's report.
    Initializers that train (oplab.pretrain's greedy) also get the training split and the seed;
    an initializer that grows a teacher (net2net) gets the teacher's trained model."""
    params = inspect.signature(INITS[cfg.name]).parameters
    given = {k: v for k, v in (("train", train), ("seed", seed), ("teacher", teacher)) if k in params}
    return INITS.build(cfg.name, model, batch, **cfg.opts, **given)
