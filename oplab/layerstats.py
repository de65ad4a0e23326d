"""Per-layer activation and back-propagated gradient statistics (forward and backward hooks),
registered as monitors in oplab.monitors.MONITORS.

Every statistic is per weight layer, in `oplab.models.weight_layers` order (layer 0 = the first;
the last is the read-out). A layer's *activation* is the output of its block: for a hidden
layer, the output of the first nonlinearity that follows it (`weight -> NormSlot -> activation`
in oplab's MLP and convnet: post-nonlinearity, after any normalizer); for the read-out, which has
no nonlinearity, the layer's own output (the logits).

- `layer_stats`: mean and std (over the batch and the units) of each layer's activation
  (`layer{i}_act_mean`, `layer{i}_act_std`) and of the gradient of the batch-mean loss with
  respect to that activation, the back-propagated gradient (`layer{i}_grad_mean`,
  `layer{i}_grad_std`). Glorot & Bengio 2010's Figs. 6-7 quantities.
- `weight_rank`: each layer's weight matrix (rows = units, a conv kernel flattened per output
  channel): its numerical rank (`torch.linalg.matrix_rank`, default tolerance) and the spread
  between its units, sqrt(mean_j ||w_j - mean w||^2) / sqrt(mean_j ||w_j||^2) (0 when every unit
  has the same incoming weights, about 1 for independent zero-mean rows).
- `layer_norms`: the mean over the batch of the per-example L2 norm of the input and of each
  layer's activation, each layer's spectral and Frobenius weight norms and bias norm, and the
  running product of spectral norms; in a ReLU net whose biases are 0,
  ||activation_i|| <= ||x|| prod_{j <= i} ||W_j||_2.
- `output_variance`: each weight layer's own output (before any normalizer or nonlinearity), with
  the model in training mode (batch statistics in BN layers, as LSUV fits): its variance over
  every element (LSUV's Var, `layer{i}_var`) and that estimate's standard error from the batch's
  examples (`layer{i}_var_se`), so that a deviation from a target can be set against the spread a
  batch of that size gives by sampling alone.

The monitors run through `oplab.monitors.run`, which puts the model in eval mode and restores
its mode and buffers; they take gradients with `torch.autograd.grad` with respect to the
activations only, so no parameter's `.grad` is touched, and every hook is removed afterwards.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from oplab.models import ACTIVATIONS, NormSlot, forward_inputs, probing, weight_layers
from oplab.monitors import MONITORS, LossFn


def _nonlinearity_types() -> tuple[type, ...]:
    """The module classes of oplab's activations (a NormSlot is an Identity too: left out)."""
    return tuple({ACTIVATIONS[name] for name in ACTIVATIONS if isinstance(ACTIVATIONS[name], type)})


def activation_modules(model: nn.Module) -> list[nn.Module]:
    """Per weight layer, the module whose output is that layer's activation: the first
    nonlinearity after the weight layer and before the next one, or the weight layer itself
    when none follows (the read-out)."""
    layers = weight_layers(model)
    ids = {id(m): i for i, m in enumerate(layers)}
    kinds = _nonlinearity_types()
    out: list[nn.Module] = list(layers)
    current, found = None, set()
    for m in model.modules():
        if id(m) in ids:
            current = ids[id(m)]
        elif (current is not None and current not in found and isinstance(m, kinds)
              and not isinstance(m, NormSlot) and not list(m.children())):
            out[current] = m
            found.add(current)
    return out


@contextlib.contextmanager
def capture(model: nn.Module) -> Iterator[list]:
    """Forward hooks that collect each weight layer's activation (see `activation_modules`),
    attached to the graph, in layer order; removed on exit."""
    mods = activation_modules(model)
    acts: list = [None] * len(mods)
    hooks = [m.register_forward_hook(lambda mod, inp, out, i=i: acts.__setitem__(i, out))
             for i, m in enumerate(mods)]
    try:
        yield acts
    finally:
        for h in hooks:
            h.remove()


def activations_and_grads(model: nn.Module, loss_fn: LossFn, x: torch.Tensor, y: torch.Tensor
                          ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each weight layer's activation on the batch and the gradient of loss_fn(model(x), y) with
    respect to it (detached); parameters' gradients are not touched."""
    with torch.enable_grad(), capture(model) as acts:
        loss = loss_fn(model(x), y)
    if any(a is None for a in acts):
        raise RuntimeError("layer_stats: a weight layer's activation was not produced by the forward pass")
    if not all(a.requires_grad for a in acts):
        grads = [torch.zeros_like(a) for a in acts]
    else:
        grads = list(torch.autograd.grad(loss, acts, allow_unused=True))
        grads = [torch.zeros_like(a) if g is None else g for a, g in zip(acts, grads)]
    return [a.detach() for a in acts], [g.detach() for g in grads]


@MONITORS.register("layer_stats")
def layer_stats(model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """Mean and std of each weight layer's activation and of the back-propagated gradient of the
    batch-mean loss with respect to it (see the module docstring for which output is used)."""
    acts, grads = activations_and_grads(model, loss_fn, x, y)
    out: dict[str, float] = {}
    for i, (a, g) in enumerate(zip(acts, grads)):
        out[f"layer{i}_act_mean"] = float(a.mean())
        out[f"layer{i}_act_std"] = float(a.std())
        out[f"layer{i}_grad_mean"] = float(g.mean())
        out[f"layer{i}_grad_std"] = float(g.std())
    return out


def unit_spread(w: torch.Tensor) -> float:
    """sqrt(mean_j ||w_j - mean w||^2) / sqrt(mean_j ||w_j||^2) over the rows (units) of w;
    0 for a zero matrix."""
    rows = w.detach().flatten(1)
    den = float(rows.pow(2).sum(1).mean().sqrt())
    if den == 0.0:
        return 0.0
    return float((rows - rows.mean(0, keepdim=True)).pow(2).sum(1).mean().sqrt()) / den


@MONITORS.register("weight_rank")
def weight_rank(model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """Numerical rank of each weight layer's weight matrix and the spread between its units."""
    out: dict[str, float] = {}
    for i, m in enumerate(weight_layers(model)):
        w = m.weight.detach().flatten(1)
        out[f"layer{i}_rank"] = float(torch.linalg.matrix_rank(w.double()))
        out[f"layer{i}_spread"] = unit_spread(w)
    return out


@MONITORS.register("layer_norms")
def layer_norms(model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """Per-example L2 norms of the input and of each layer's activation (means over the batch),
    each layer's spectral, Frobenius and bias norms, and the running product of spectral norms."""
    with torch.no_grad(), capture(model) as acts:
        model(x)
    out = {"input_norm": float(x.flatten(1).norm(dim=1).mean())}
    prod = 1.0
    for i, (m, a) in enumerate(zip(weight_layers(model), acts)):
        w = m.weight.detach().flatten(1).double()
        spec = float(torch.linalg.matrix_norm(w, ord=2))
        prod *= spec
        out[f"layer{i}_act_norm"] = float(a.detach().flatten(1).norm(dim=1).mean())
        out[f"layer{i}_spectral"] = spec
        out[f"layer{i}_frobenius"] = float(w.norm())
        out[f"layer{i}_bias_norm"] = float(m.bias.detach().norm()) if m.bias is not None else 0.0
        out[f"layer{i}_spectral_prod"] = prod
    return out


def variance_and_se(out: torch.Tensor) -> tuple[float, float]:
    """The variance over every element of a layer's output `out` (examples along dim 0; LSUV's
    Var) and its standard error from the examples: with s_e the mean over example e's elements of
    (o - mean)^2, Var ~ mean_e s_e, so SE = std_e(s_e) / sqrt(n) (examples independent: true
    without batch norm before the layer; the mean's own estimation error is O(1/n) and ignored)."""
    o = out.detach().double().flatten(1)
    n, k = o.shape
    var = float(o.var())  # unbiased, over all n * k elements
    if n < 2:
        return var, float("nan")
    per_example = (o - o.mean()).pow(2).mean(1) * (n * k / (n * k - 1))
    return var, float(per_example.std() / n ** 0.5)


@MONITORS.register("output_variance")
def output_variance(model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """Each weight layer's output variance on the batch (training mode: batch statistics in BN
    layers; running statistics restored) and its standard error from the batch's examples."""
    with probing(model, train=True), torch.no_grad():
        outs = forward_inputs(model, x, weight_layers(model))
    out: dict[str, float] = {}
    for i, o in enumerate(outs):
        out[f"layer{i}_var"], out[f"layer{i}_var_se"] = variance_and_se(o)
    return out
