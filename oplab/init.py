"""Weight initializers: default, glorot, he, lecun, orthogonal, normal, standard, lsuv; and bias rules.

Each is `fn(model, batch, **options) -> report` and sets every Linear/Conv
weight (the direction v of a weight-normed layer, through its right-inverse)
and zeros the biases. The tensor rules are torch.nn.init's; `batch` is for
data-dependent schemes and ignored by the others; the report (a dict, stored
in the trial's record) says what a data-dependent scheme did.

Bias rules compose with every initializer registered here, as options of its InitConfig,
applied after the weights (all off by default, so a config without them initializes exactly
as before):
- `output_bias="log_prior"`: the read-out layer's bias (the last Linear/Conv) set to the log of
  the class frequencies of the training labels, so that a net whose read-out weights contribute
  nothing predicts the marginal distribution (initial loss = label entropy);
- `hidden_bias=v`: every other Linear/Conv layer's bias set to the constant v (e.g. 0.1 for ReLU units);
- `forget_bias=v`: every nn.LSTM's forget-gate bias: b_ih's forget slice = v and b_hh's = 0, so the
  effective bias b_ih + b_hh of the forget gate is v; the other gates are untouched.
E.g. `InitConfig("he", {"hidden_bias": 0.1, "output_bias": "log_prior"})`.

The `dead_units` monitor (the fraction of ReLU units that output 0 on a whole batch), the
diagnostic of the hidden-bias rule, is registered here into oplab.monitors.MONITORS.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable

import torch
from torch import nn

from oplab import seeds
from oplab.config import InitConfig
from oplab.models import forward_inputs, probing, weight_layers
from oplab.monitors import MONITORS
from oplab.registry import Registry

INITS = Registry("initializer")
OUTPUT_BIAS_RULES = ("log_prior",)


def with_bias_rules(fn: Callable) -> Callable:
    """The initializer `fn` with the bias-rule options (module docstring) added to its signature:
    it runs `fn`, then the rules given; with none given it is exactly `fn`."""
    inner = inspect.signature(fn)
    takes_train = "train" in inner.parameters

    @functools.wraps(fn)
    def wrapped(model, batch=None, *, output_bias: str | None = None, hidden_bias: float | None = None,
                forget_bias: float | None = None, train=None, **options):
        if takes_train:
            options["train"] = train
        report = fn(model, batch, **options)
        rules = {k: v for k, v in (("output_bias", output_bias), ("hidden_bias", hidden_bias),
                                   ("forget_bias", forget_bias)) if v is not None}
        if not rules:
            return report
        return {**(report or {}), "bias_rules": set_biases(model, train=train, **rules)}

    extra = [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None)
             for n in ("output_bias", "hidden_bias", "forget_bias") + (() if takes_train else ("train",))]
    params = list(inner.parameters.values())
    keyword = [p for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
    wrapped.__signature__ = inner.replace(parameters=[p for p in params if p not in keyword] + keyword + extra)
    return wrapped


def register(name: str) -> Callable:
    """Register an initializer under `name` with the bias rules added; the module-level name
    stays the plain function (what other initializers call)."""
    def deco(fn: Callable) -> Callable:
        INITS.register(name)(with_bias_rules(fn))
        return fn

    return deco


def log_priors(y: torch.Tensor, classes: int) -> torch.Tensor:
    """log of the class frequencies of integer labels `y` (ValueError if a class never occurs:
    its log prior would be -inf)."""
    if y.is_floating_point() or y.ndim != 1:
        raise ValueError("output_bias='log_prior' needs integer class labels (a classification task)")
    counts = torch.bincount(y.cpu(), minlength=classes).double()
    if len(counts) != classes:
        raise ValueError(f"labels go up to {len(counts) - 1}, but the read-out has {classes} outputs")
    if (counts == 0).any():
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"output_bias='log_prior': classes {missing} have no training example (log prior -inf)")
    return torch.log(counts / counts.sum())


@MONITORS.register("dead_units")
@torch.no_grad()
def dead_units(model: nn.Module, loss_fn, x, y) -> dict[str, float]:
    """The fraction of ReLU units that are dead on the batch: output 0 for every example (and, in
    a conv layer, every position), overall (`dead_frac`) and per ReLU layer (`relu{i}_dead`, 0 =
    first). The diagnostic of the `hidden_bias` rule (a positive bias keeps units alive)."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError("the dead_units monitor needs a model with nn.ReLU layers")
    outs = forward_inputs(model, x, relus)
    out: dict[str, float] = {}
    dead = total = 0
    for i, o in enumerate(outs):
        alive = (o > 0).transpose(0, 1).reshape(o.shape[1], -1).any(dim=1)
        out[f"relu{i}_dead"] = float((~alive).float().mean())
        dead, total = dead + int((~alive).sum()), total + len(alive)
    out["dead_frac"] = dead / total
    return out


@torch.no_grad()
def set_biases(model: nn.Module, *, output_bias: str | None = None, hidden_bias: float | None = None,
               forget_bias: float | None = None, train: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict:
    """Apply the bias rules (module docstring) to `model` in place; return what was set."""
    layers = weight_layers(model)
    report: dict = {}
    if hidden_bias is not None:
        hidden = [m for m in layers[:-1] if m.bias is not None]
        if not hidden:
            raise ValueError("hidden_bias: the model has no hidden Linear/Conv layer with a bias")
        for m in hidden:
            nn.init.constant_(m.bias, float(hidden_bias))
        report.update(hidden_bias=float(hidden_bias), hidden_layers=len(hidden))
    if output_bias is not None:
        if output_bias not in OUTPUT_BIAS_RULES:
            raise ValueError(f"output_bias {output_bias!r} is not valid; valid: {', '.join(OUTPUT_BIAS_RULES)}")
        if train is None:
            raise ValueError("output_bias='log_prior' needs the training labels (oplab.init.apply's `train`)")
        out = layers[-1] if layers else None
        if out is None or out.bias is None:
            raise ValueError("output_bias: the model's read-out (its last Linear/Conv layer) has no bias")
        prior = log_priors(train[1], out.bias.shape[0])
        out.bias.copy_(prior.to(out.bias))
        p = prior.exp()
        report.update(output_bias=output_bias, log_prior=prior.tolist(),
                      label_entropy=float(-(p * prior).sum()))
    if forget_bias is not None:
        lstms = [m for m in model.modules() if isinstance(m, nn.LSTM)]
        if not lstms:
            raise ValueError("forget_bias: the model has no nn.LSTM (e.g. the rnn model with cell 'lstm')")
        for m in lstms:
            h = m.hidden_size
            for name, p in m.named_parameters():  # gates i, f, g, o: the forget gate is rows h..2h
                if name.startswith("bias_ih"):
                    nn.init.constant_(p[h : 2 * h], float(forget_bias))
                elif name.startswith("bias_hh"):
                    nn.init.zeros_(p[h : 2 * h])
        report.update(forget_bias=float(forget_bias), lstm_layers=sum(m.num_layers for m in lstms))
    return report


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


@register("default")
def default(model: nn.Module, batch=None) -> dict:
    """PyTorch's own layer init (Kaiming-uniform with a=sqrt(5); biases uniform)."""
    return {}


@register("glorot")
def glorot(model: nn.Module, batch=None, *, gain: float = 1.0, bias: str = "zero") -> dict:
    """Glorot & Bengio's normalized init U(-u, u), u = gain * sqrt(6 / (fan_in + fan_out))."""
    return _each(model, lambda w: nn.init.xavier_uniform_(w, gain=gain), bias)


@register("he")
def he(model: nn.Module, batch=None, *, bias: str = "zero") -> dict:
    """He et al.: N(0, 2 / fan_in)."""
    return _each(model, lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"), bias)


@register("lecun")
def lecun(model: nn.Module, batch=None, *, bias: str = "zero") -> dict:
    """LeCun et al. 1998: N(0, 1 / fan_in) (torch's kaiming_normal_ with the linear gain 1): the
    variance-preserving "scaled Gaussian" init of a linear layer, as in Saxe et al. 2013."""
    return _each(model, lambda w: nn.init.kaiming_normal_(w, nonlinearity="linear"), bias)


@register("orthogonal")
def orthogonal(model: nn.Module, batch=None, *, gain: float = 1.0, bias: str = "zero") -> dict:
    """Saxe et al.: a (semi-)orthogonal matrix times `gain`."""
    return _each(model, lambda w: nn.init.orthogonal_(w, gain=gain), bias)


@register("normal")
def normal(model: nn.Module, batch=None, *, sigma: float = 0.01, bias: str = "zero") -> dict:
    """N(0, sigma^2), e.g. the old N(0, 0.01^2) rule."""
    return _each(model, lambda w: nn.init.normal_(w, 0.0, sigma), bias)


@register("standard")
def standard(model: nn.Module, batch=None, *, bias: str = "zero") -> dict:
    """The 'standard' heuristic of Glorot & Bengio: U(-1/sqrt(n), 1/sqrt(n)), n = fan-in."""

    def rule(w: torch.Tensor) -> torch.Tensor:
        u = 1.0 / math.sqrt(fan_in(w))
        return nn.init.uniform_(w, -u, u)

    return _each(model, rule, bias)


@register("lsuv")
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
    breaking noise (std = noise x the std of the new units' outgoing weights, added to those weights:
    the Keras example), drawn from a generator seeded by the trial's seed; the noise-free twin that
    measures preservation is grown from the same stream, so it copies the same units. `batch`
    sets an inserted batch norm to undo itself. Reports the ops and the measured preservation
    error max |f_grown(x) - f_teacher(x)| on the batch, in eval mode."""
    from oplab import net2net as n2n

    if teacher is None:
        raise ValueError("the net2net init grows a trained teacher: give the trial a teacher (Trial.teacher)")
    grown = _grow(teacher, ops, noise, seeds.generator(seed, "net2net"), batch)
    n2n.same_structure(grown, model, raise_error=True)
    model.load_state_dict(grown.state_dict())
    report = {"ops": [list(op) for op in ops], "noise": noise}
    if batch is not None:  # the measured preservation error, as trained and with the noise off
        exact = _grow(teacher, ops, 0.0, seeds.generator(seed, "net2net"), batch)
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
