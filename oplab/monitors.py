"""Monitors: functions of (model, batch, loss function) returning dicts of scalars.

Curvature monitors use Hessian-vector products by double backward, so g^T H g
and the top Hessian eigenvalue cost a few gradient evaluations, never the
Hessian itself. Monitors leave the model's parameters and buffers unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from oplab.models import forward_inputs, probing, weight_layers
from oplab.norms import is_weight_normed
from oplab.registry import Registry

MONITORS = Registry("monitor")
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def as_double(t: torch.Tensor) -> torch.Tensor:
    """A floating tensor in float64 (the probes' and searches' precision); class labels unchanged."""
    return t.double() if t.is_floating_point() else t


def loss_and_grad(model: nn.Module, loss_fn: LossFn, x, y, create_graph: bool = False):
    params = _params(model)
    loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=create_graph)
    return loss, grads


def hvp(model: nn.Module, loss_fn: LossFn, x, y, v: list[torch.Tensor]) -> list[torch.Tensor]:
    """H v for the loss on (x, y), by double backward."""
    params = _params(model)
    _, grads = loss_and_grad(model, loss_fn, x, y, create_graph=True)
    dot = sum((g * vi).sum() for g, vi in zip(grads, v))
    return list(torch.autograd.grad(dot, params))


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> torch.Tensor:
    return sum((ai * bi).sum() for ai, bi in zip(a, b))


@MONITORS.register("curvature")
def curvature(model: nn.Module, loss_fn: LossFn, x, y, *, eps: float = 0.01) -> dict[str, float]:
    """g^T g, g^T H g, and the predicted vs measured loss change of a step -eps g.

    Taylor: L(theta - eps g) - L(theta) ~ 1/2 eps^2 g^T H g - eps g^T g (the notes
    drop the 1/2; the measured change decides)."""
    loss, grads = loss_and_grad(model, loss_fn, x, y)
    loss, grads = loss.detach(), [g.detach() for g in grads]
    hg = hvp(model, loss_fn, x, y, grads)
    gg, ghg = float(_dot(grads, grads)), float(_dot(grads, hg))
    params = _params(model)
    with torch.no_grad():
        saved = [p.detach().clone() for p in params]  # restored by copy: p - eps g + eps g is not p in floats
        for p, g in zip(params, grads):
            p.sub_(eps * g)
        new_loss = float(loss_fn(model(x), y))
        for p, s in zip(params, saved):
            p.copy_(s)
    return {
        "loss": float(loss), "gTg": gg, "gTHg": ghg, "grad_norm": gg ** 0.5,
        "predicted_change": 0.5 * eps**2 * ghg - eps * gg, "actual_change": new_loss - float(loss),
    }


@MONITORS.register("top_eigenvalue")
def top_eigenvalue(model: nn.Module, loss_fn: LossFn, x, y, *, iters: int = 20) -> dict[str, float]:
    """Largest-magnitude Hessian eigenvalue by power iteration on Hessian-vector products."""
    params = _params(model)
    gen = torch.Generator(device=params[0].device).manual_seed(0)
    v = [torch.randn(p.shape, generator=gen, device=p.device) for p in params]
    eig = 0.0
    for _ in range(iters):
        norm = float(_dot(v, v)) ** 0.5
        v = [vi / norm for vi in v]
        hv = hvp(model, loss_fn, x, y, v)
        eig = float(_dot(v, hv))
        v = [h.detach() for h in hv]
    return {"top_eigenvalue": eig}


@MONITORS.register("activations")
def activations(model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """Mean and std of each weight layer's output (pre-activation) on the batch."""
    with torch.no_grad():
        outs = forward_inputs(model, x, weight_layers(model))
    stats = {}
    for i, o in enumerate(outs):
        stats[f"layer{i}_mean"] = float(o.mean())
        stats[f"layer{i}_std"] = float(o.std())
    return stats


@MONITORS.register("activations_train")
def activations_train(model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """As `activations`, but with the model in training mode, so batch norm layers use the
    batch's statistics (the net SGD trains); running statistics are restored afterwards."""
    with probing(model, train=True):
        return activations(model, loss_fn, x, y)


def run(names: tuple[str, ...], model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """All named monitors on one batch, with the model in eval mode and its state restored."""
    out: dict[str, float] = {}
    # cuDNN's RNN kernels refuse a backward pass in eval mode and have no double backward (which the
    # curvature monitors need): around a recurrent model, monitors use PyTorch's own RNN kernels
    recurrent = any(isinstance(m, nn.RNNBase) for m in model.modules())
    cudnn = torch.backends.cudnn
    with probing(model, train=False), cudnn.flags(enabled=cudnn.enabled and not recurrent, benchmark=cudnn.benchmark,
                                                  deterministic=cudnn.deterministic, allow_tf32=cudnn.allow_tf32):
        for name in names:
            out.update(MONITORS.build(name, model, loss_fn, x, y))
    return out


@MONITORS.register("params")
def params(model: nn.Module, loss_fn: LossFn, x, y, *, max_scalars: int = 8) -> dict[str, float]:
    """The parameter values: each scalar parameter by name (e.g. a 2-parameter model's path
    through (w, b)); for a model with more than `max_scalars` scalar parameters, or for
    tensors, the norm of each parameter as `NAME.norm`."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    out = {}
    for name, p in named:
        if p.numel() == 1 and len(named) <= max_scalars:
            out[name] = float(p.detach())
        else:
            out[f"{name}.norm"] = float(p.detach().norm())
    return out


def _direction_params(model: nn.Module) -> list[torch.Tensor]:
    """The weight each Linear/Conv unit's direction lives in: the weight, or v for a weight-normed layer."""
    return [m.parametrizations.weight.original1 if is_weight_normed(m) else m.weight for m in weight_layers(model)]


@MONITORS.register("noise_alignment")
def noise_alignment(model: nn.Module, loss_fn: LossFn, x, y, *, splits: int = 5) -> dict[str, float]:
    """How parallel minibatch gradient noise is to each unit's own weight vector, per layer.

    The batch is split in `splits` sub-batches; noise = sub-batch gradient - whole-batch
    gradient, per unit (row of a weight matrix, a conv kernel flattened per output channel, or v
    of a weight-normed layer). Per weight layer i (0 = first; the last is the read-out):
    - `layer{i}_noise_cos`: mean |cos(noise_j, w_j)| over units j and sub-batches (matched);
    - `layer{i}_other_cos`: mean |cos(noise_j, w_k)| over pairs of distinct units j != k of the
      same layer and sub-batches: the baseline. Every row of a layer's gradient is a combination
      of the same inputs, and the weights share the inputs' dominant directions too, so noise
      lines up with *any* unit's weights above a random direction's level; only an excess of
      the matched over this baseline says the noise is parallel to the unit's own w;
    - `layer{i}_random_cos`: mean |cos(r_j, w_j)| for Gaussian directions r_j (chance level,
      about sqrt(2 / (pi fan_in))).
    `noise_cos`, `other_cos` and `random_cos` are the same means over all layers."""
    weights = _direction_params(model)
    with probing(model, train=True):  # the noise SGD sees: batch statistics in BN layers
        full = torch.autograd.grad(loss_fn(model(x), y), weights)
        gen = torch.Generator(device=x.device).manual_seed(0)
        sums = {k: [0.0] * len(weights) for k in ("noise", "other", "random")}
        chunks = list(zip(x.chunk(splits), y.chunk(splits)))
        for xs, ys in chunks:
            sub = torch.autograd.grad(loss_fn(model(xs), ys), weights)
            for i, (w, g_full, g_sub) in enumerate(zip(weights, full, sub)):
                rows = F.normalize(w.detach().flatten(1), dim=1, eps=1e-12)
                noise = F.normalize((g_sub - g_full).flatten(1), dim=1, eps=1e-12)
                cos = (noise @ rows.T).abs()  # [j, k] = |cos(noise_j, w_k)|
                units = cos.shape[0]
                matched = cos.diagonal()
                sums["noise"][i] += float(matched.mean())
                sums["other"][i] += float((cos.sum() - matched.sum()) / max(1, units * (units - 1)))
                r = F.normalize(torch.randn(rows.shape, generator=gen, device=rows.device), dim=1, eps=1e-12)
                sums["random"][i] += float((r * rows).sum(1).abs().mean())
    out: dict[str, float] = {}
    for k, per_layer in sums.items():
        vals = [v / len(chunks) for v in per_layer]
        out.update({f"layer{i}_{k}_cos": v for i, v in enumerate(vals)})
        out[f"{k}_cos"] = sum(vals) / len(vals)
    return out


class Recorder:
    """Runs a trial's monitors (Trial.monitors) on the task's probe batch: at step 0, then every
    `monitor_every` updates (0: at each evaluation) and at the last, unless `monitor_start_only`."""

    def __init__(self, trial, total_steps: int, eval_every: int, loss_fn, probe_x, probe_y):
        self.names, self.start_only = trial.monitors, trial.monitor_start_only
        self.every, self.total = trial.monitor_every or eval_every, total_steps
        self.loss_fn, self.x, self.y = loss_fn, probe_x, probe_y
        self.curve: dict[str, list] = {"step": []}

    def due(self, step: int) -> bool:
        return not self.start_only and (step % self.every == 0 or step == self.total)

    def record(self, step: int, model: nn.Module) -> None:
        values = run(self.names, model, self.loss_fn, self.x, self.y)
        self.curve["step"].append(step)
        for k, v in values.items():
            self.curve.setdefault(k, []).append(v)
