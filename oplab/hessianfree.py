"""A Hessian-free (truncated Newton) optimizer: damped Gauss-Newton steps solved by conjugate gradient
on the minibatch, from Gauss-Newton-vector products only (Martens 2010), registered as optimizer "hf"
in oplab.optim.OPTIMIZERS.

The step. On a minibatch with mean loss L(z(theta)), network outputs z and gradient g, the update is

    theta <- theta - d,   d ~ (G + lambda I)^{-1} g,   lambda = 1 / lr,

with G = J^T H_L J the minibatch's generalized Gauss-Newton matrix (J the Jacobian of the outputs,
H_L the Hessian of the loss in the outputs: for the mean cross-entropy (diag(p_i) - p_i p_i^T) / B per
example) and d the `cg_iters`-th conjugate-gradient iterate from 0 (fewer if the residual falls below
`cg_tol` times its start). Written with lr: d = (I + lr G)^{-1} lr g, the minimizer of
g^T d + 1/2 d^T G d + 1/(2 lr) ||d||^2, so `lr` is the learning rate the method becomes where the
curvature is negligible (lr G << I), and the curvature shortens the step where it is not: a damped
Newton step (Levenberg-Marquardt) whose damping is tuned as a learning rate. Martens adapts lambda
by the Levenberg-Marquardt rule and takes the gradient on a larger batch than the curvature; this
optimizer keeps lambda fixed (tuned per batch size by the study that uses it) and takes the gradient
and the curvature on the same minibatch, starting CG from 0 at every update (no warm start), so that a
batch size stands for one estimate of the step.

The products. G v = J^T (H_L (J v)) costs about two backward passes and is never a matrix: J v by the
double-vjp trick on the outputs' graph (u -> J^T u is linear in u, so the gradient of <J^T u, v> in u
is J v), H_L w by double backward of the loss in the outputs, J^T w by one backward pass. The optimizer
needs the minibatch's outputs with their graph and the loss as a function of them: `step(closure)`
calls closure() -> (outputs, loss_of_outputs) (oplab.datatask.DatasetTask.outputs builds it; the
training loop passes it through oplab.optim.step). The gradient g is the parameters' .grad, which the
loop has filled from the same minibatch's loss (after clipping, if the trial clips).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from oplab.monitors import _dot
from oplab.optim import OPTIMIZERS

Vec = list[torch.Tensor]


class GaussNewton:
    """v -> G v for the minibatch whose `outputs` (with their graph to `params`) and `loss_of_outputs`
    are given: the generalized Gauss-Newton matrix of the loss, never formed."""

    def __init__(self, params: Vec, outputs: torch.Tensor, loss_of_outputs: Callable[[torch.Tensor], torch.Tensor]):
        self.params = params
        self.outputs = outputs
        # J^T u as a differentiable function of a dummy u (linear in u): its gradient in u along v is J v
        self.u = torch.zeros_like(outputs, requires_grad=True)
        self.jt_u = torch.autograd.grad(outputs, params, grad_outputs=self.u, create_graph=True)
        # the loss's gradient in the outputs, differentiable: its derivative along w is H_L w
        z = outputs.detach().requires_grad_(True)
        self.z = z
        (self.dl_dz,) = torch.autograd.grad(loss_of_outputs(z), z, create_graph=True)

    def jvp(self, v: Vec) -> torch.Tensor:
        (jv,) = torch.autograd.grad(self.jt_u, self.u, grad_outputs=v, retain_graph=True)
        return jv

    def damped(self, damping: float) -> Callable[[Vec], Vec]:
        """v -> (G + damping I) v."""
        return lambda v: [gv + damping * vi for gv, vi in zip(self(v), v)]

    def __call__(self, v: Vec) -> Vec:
        jv = self.jvp(v)
        (hjv,) = torch.autograd.grad(self.dl_dz, self.z, grad_outputs=jv, retain_graph=True)
        return list(torch.autograd.grad(self.outputs, self.params, grad_outputs=hjv, retain_graph=True))


def cg(matvec: Callable[[Vec], Vec], b: Vec, iters: int, tol: float = 0.0) -> tuple[Vec, int]:
    """Conjugate gradient for A x = b (A symmetric positive definite) from x = 0: the `iters`-th iterate,
    or an earlier one once ||r|| <= tol ||b||. Returns (x, iterations made)."""
    x = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in b]
    rr = _dot(r, r)
    stop = (tol**2) * rr
    done = 0
    while done < iters:
        done += 1
        ap = matvec(p)
        alpha = rr / _dot(p, ap)
        x = [xi + alpha * pi for xi, pi in zip(x, p)]
        r = [ri - alpha * api for ri, api in zip(r, ap)]
        rr_new = _dot(r, r)
        if rr_new <= stop:
            break
        beta = rr_new / rr
        p = [ri + beta * pi for ri, pi in zip(r, p)]
        rr = rr_new
    return x, done


class HessianFree(torch.optim.Optimizer):
    """theta <- theta - CG_k[(G + I / lr) d = g] (module doc); `lr` is 1 / lambda."""

    wants_outputs = True  # oplab.optim.step passes the minibatch's outputs closure to step()

    def __init__(self, params, lr: float, cg_iters: int = 10, cg_tol: float = 0.0):
        if lr <= 0 or cg_iters < 1:
            raise ValueError(f"hf needs lr > 0 and cg_iters >= 1, got lr={lr}, cg_iters={cg_iters}")
        super().__init__(params, {"lr": lr, "cg_iters": cg_iters, "cg_tol": cg_tol})
        self.last_cg_iters = 0

    def step(self, closure: Callable[[], tuple[torch.Tensor, Callable]] | None = None) -> None:
        if closure is None:
            raise ValueError("hf needs the minibatch's outputs: step(closure) with closure() -> (outputs, "
                             "loss_of_outputs) (oplab.optim.step passes it)")
        with torch.enable_grad():
            outputs, loss_of_outputs = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            damping = 1.0 / group["lr"]  # under a schedule, lambda follows 1 / the scheduled lr
            gn = GaussNewton(params, outputs, loss_of_outputs)
            grads = [p.grad.detach() for p in params]
            d, self.last_cg_iters = cg(gn.damped(damping), grads, group["cg_iters"], group["cg_tol"])
            with torch.no_grad():
                for p, di in zip(params, d):
                    p.sub_(di)


@OPTIMIZERS.register("hf")
def hf(params, *, lr, momentum, weight_decay, cg_iters: int = 10, cg_tol: float = 0.0) -> HessianFree:
    """Hessian-free damped Gauss-Newton steps (oplab.hessianfree); lr = 1 / damping. No momentum or weight
    decay (refused)."""
    if momentum or weight_decay:
        raise ValueError(f"optimizer 'hf' takes no momentum or weight_decay, got {momentum}, {weight_decay}")
    return HessianFree(params, lr=lr, cg_iters=cg_iters, cg_tol=cg_tol)
