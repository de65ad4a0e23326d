"""Critical points of the training objective around a training run (Trial.critical), for the claim
that training does not arrive at a critical point of any kind (Goodfellow et al. 2016, sec. 8.2.7):

- at each evaluation, the objective over the whole training split and the norm of its gradient
  (`objective_full`, `grad_norm_full` in the eval curve): the book's test for critical points, "plotting
  the norm of the gradient over time" (sec. 8.2.2), without the minibatch noise of the loop's logged
  gradient norm;
- after the last update, a search for a critical point that starts from the trained weights (a search
  of SEARCHES, e.g. L-BFGS): its path (the `search` curve: the objective and its gradient norm at each
  of the search's function evaluations) and what it found (final metrics: the objective, training loss
  and gradient norm there, its distance from the trained weights, and the Hessian's extreme eigenvalues
  there, by Lanczos on Hessian-vector products), beside the trained weights' own (`end_*`).

The objective is the one the trial's optimizer follows: the mean loss over the training split plus
wd/2 ||theta||^2 for the optimizer's weight decay wd (torch's SGD, Adam and RMSprop add wd * theta to
every parameter's gradient, biases included). It is computed in float64 on a functional copy of the
model (torch.func.functional_call on one flat parameter vector), in eval mode, so the model is never
moved and roundoff does not pass for a gradient. A batch-normed model is refused: its objective would
depend on the batch.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch import nn
from torch.func import functional_call

from oplab.monitors import as_double
from oplab.registry import Registry

SEARCHES = Registry("critical-point search")


class Objective:
    """f(theta) = mean loss over (x, y) + wd/2 ||theta||^2, theta one flat float64 vector of the
    model's trainable parameters (in model.parameters() order)."""

    def __init__(self, model: nn.Module, loss_fn, x: torch.Tensor, y: torch.Tensor, weight_decay: float = 0.0):
        self.model = copy.deepcopy(model).double().eval()  # structure and buffers; parameters come from theta
        named = [(k, p) for k, p in self.model.named_parameters() if p.requires_grad]
        self.names = [k for k, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.loss_fn, self.x, self.y, self.wd = loss_fn, as_double(x), as_double(y), float(weight_decay)

    @staticmethod
    def flat(model: nn.Module) -> torch.Tensor:
        """A model's trainable parameters as one flat float64 vector (a copy)."""
        return torch.cat([p.detach().double().flatten() for p in model.parameters() if p.requires_grad])

    def parts(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(objective, mean loss) at theta, differentiable in theta."""
        params = {k: t.view(s) for k, t, s in zip(self.names, theta.split(self.sizes), self.shapes)}
        loss = self.loss_fn(functional_call(self.model, params, (self.x,)), self.y)
        return loss + 0.5 * self.wd * theta.dot(theta), loss

    def __call__(self, theta: torch.Tensor) -> torch.Tensor:
        return self.parts(theta)[0]

    def value_grad(self, theta: torch.Tensor) -> tuple[float, float, torch.Tensor]:
        """(objective, mean loss, gradient of the objective) at theta."""
        th = theta.detach().requires_grad_(True)
        obj, loss = self.parts(th)
        (g,) = torch.autograd.grad(obj, th)
        return float(obj.detach()), float(loss.detach()), g

    def hvp(self, theta: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """H v, the objective's Hessian at theta times v (double backward)."""
        th = theta.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(self(th), th, create_graph=True)
        (hv,) = torch.autograd.grad(g.dot(v.to(g)), th)
        return hv.detach()


@SEARCHES.register("lbfgs")
def lbfgs(f: Objective, theta0: torch.Tensor, *, iters: int = 500, history: int = 20,
          tol: float = 1e-10) -> tuple[torch.Tensor, dict[str, list]]:
    """torch.optim.LBFGS with a strong-Wolfe line search, from theta0, for at most `iters` iterations
    (about 1.25 function evaluations each); it stops early once every component of the gradient is
    below `tol` in magnitude, or when a step no longer moves theta. A descent method: it finds a
    minimum (or stalls where the gradient is flat), not a saddle. Returns the last iterate and the path:
    the objective and the gradient norm at every function evaluation (`step`: its count, from 0, the
    start)."""
    theta = theta0.detach().clone().requires_grad_(True)
    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=iters, history_size=history, tolerance_grad=tol,
                            tolerance_change=0.0, line_search_fn="strong_wolfe")
    path: dict[str, list] = {"step": [], "objective": [], "grad_norm": []}

    def closure():
        opt.zero_grad()
        obj = f(theta)
        obj.backward()
        path["step"].append(len(path["step"]))
        path["objective"].append(float(obj.detach()))
        path["grad_norm"].append(float(theta.grad.norm()))
        return obj

    opt.step(closure)
    return theta.detach(), path


def hessian_extremes(f: Objective, theta: torch.Tensor, tol: float = 1e-6, maxiter: int = 300) -> dict[str, float]:
    """The Hessian's smallest and largest eigenvalues at theta (scipy's ARPACK Lanczos on
    Hessian-vector products, a fixed start vector); NaN where Lanczos does not converge in `maxiter`
    restarts. A negative smallest eigenvalue makes theta a saddle (or a maximum), not a minimum."""
    n = theta.numel()
    op = LinearOperator((n, n), dtype=np.float64,
                        matvec=lambda v: f.hvp(theta, torch.from_numpy(np.asarray(v, dtype=np.float64).ravel()))
                        .cpu().numpy())
    v0 = np.random.default_rng(0).standard_normal(n)
    out = {}
    for key, which in (("min", "SA"), ("max", "LA")):
        try:
            out[key] = float(eigsh(op, k=1, which=which, v0=v0, tol=tol, maxiter=maxiter,
                                   return_eigenvectors=False)[0])
        except ArpackNoConvergence:
            out[key] = float("nan")
    return out


class Probe:
    """What the training loop calls (oplab.train) when Trial.critical names a search: `eval_row` at each
    evaluation, `end` once after the last update of a trial that finished."""

    def __init__(self, trial, task):
        if trial.norm.name != "none":
            raise ValueError(f"Trial.critical needs a model without batch or weight norm (got norm "
                             f"{trial.norm.name!r}): its objective would depend on the batch")
        data = getattr(task, "data", None)
        if data is None:
            raise ValueError("Trial.critical needs a dataset task (a training split of tensors)")
        self.cfg = trial.critical
        self.f = Objective(task.model, task.loss_fn, data.x_train, data.y_train, trial.optim.weight_decay)
        self.theta_init = Objective.flat(task.model)

    def eval_row(self, model: nn.Module) -> dict[str, float]:
        obj, _, g = self.f.value_grad(Objective.flat(model))
        return {"objective_full": obj, "grad_norm_full": float(g.norm())}

    def end(self, model: nn.Module) -> tuple[dict[str, float], dict[str, list]]:
        """The search from the trained weights: (final metrics, its path). A metric that is not finite
        is left out (the record keeps finite numbers only; a study counts a missing value as failed)."""
        theta = Objective.flat(model)
        obj, _, g = self.f.value_grad(theta)
        found, path = SEARCHES.build(self.cfg.name, self.f, theta, **self.cfg.opts)
        cp_obj, cp_loss, cp_g = self.f.value_grad(found)
        out = {"end_objective": obj, "end_grad_norm": float(g.norm()),
               "train_distance": float((theta - self.theta_init).norm()),
               "cp_objective": cp_obj, "cp_train_loss": cp_loss, "cp_grad_norm": float(cp_g.norm()),
               "cp_distance": float((found - theta).norm()), "cp_evals": len(path["step"])}
        if self.cfg.eigenvalues:
            eig = hessian_extremes(self.f, found)
            out.update(cp_min_eig=eig["min"], cp_max_eig=eig["max"])
        return {k: v for k, v in out.items() if math.isfinite(v)}, path
