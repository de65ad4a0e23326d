"""Second-order steps on a minibatch against the full-batch step: the damped Gauss-Newton step and
its sampling error by batch size, registered in oplab.monitors.MONITORS.

The curvature is the generalized Gauss-Newton matrix (GGN) of the mean cross-entropy,
G = (1/B) sum_i J_i^T (diag(p_i) - p_i p_i^T) J_i, with J_i the Jacobian of example i's logits with
respect to the parameters and p_i its softmax: the curvature matrix of Hessian-free optimization
(Martens 2010) and of natural-gradient methods, positive semi-definite, so a damping lambda > 0 makes
G + lambda I invertible at any batch size. The step is the Levenberg-Marquardt (damped Newton) step
d = (G + lambda I)^{-1} g (Goodfellow et al. 2016, eq. 8.28 with G for H). For a model linear in its
parameters (softmax regression) G is the Hessian exactly (the unit tests check it there against
torch.autograd.functional.hessian and torch.linalg.solve).

- `ggn_pieces`: per-example gradients g_i and factors M_i with J_i^T A_i J_i = M_i^T M_i, from
  per-example logit Jacobians (torch.func), so that the GGN of any subset is one matrix product.
- `damped_step`: (G + lambda I)^{-1} g by a Cholesky solve.
- `gn_noise` (monitor): the probe batch is the population (N examples: the whole training split when
  the trial's batch is the split, as for full-batch GD). At the state, the full-batch g_N, G_N and,
  for each relative damping c of DAMPINGS (lambda = c x the largest eigenvalue of G_N), the
  full-batch step d_N and the full-batch loss change it makes (`gn_change@c`); then for each
  B of GN_SIZES below N / 4, DRAWS minibatches of B drawn without replacement give the minibatch
  gradient's relative error sqrt(mean ||g_B - g_N||^2) / ||g_N|| (`gn_grad_err@B`) and the minibatch
  step's, sqrt(mean ||d_B - d_N||^2) / ||d_N|| (`gn_step_err@B@c`), both at the same parameters.
  Computed in float64 on a copy of the model.

The cost is one logit Jacobian of the population (C backward passes, vectorized) and, per draw, a
P x P product of B C rows and one Cholesky factorization a damping: keep P to a few hundred.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap

from oplab.monitors import MONITORS, LossFn

DAMPINGS = (1e-4, 1e-3, 1e-2, 1e-1)  # lambda / largest eigenvalue of the full-batch GGN
GN_SIZES = (8, 32, 128, 512)  # minibatch sizes probed (those <= N / 4)
DRAWS = 8  # minibatches drawn per size


def step_key(b: int, c: float) -> str:
    """The monitor column of the minibatch step's relative error at batch size b and damping c."""
    return f"gn_step_err@{b}@{c:g}"


def grad_key(b: int) -> str:
    return f"gn_grad_err@{b}"


def change_key(c: float) -> str:
    return f"gn_change@{c:g}"


def _flat(model: nn.Module) -> tuple[torch.Tensor, callable]:
    """The model's trainable parameters as one vector, and `unflat(vector) -> {name: tensor}`."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    shapes = [(n, p.shape) for n, p in named]

    def unflat(theta: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for n, s in shapes:
            k = math.prod(s)
            out[n] = theta[i : i + k].view(s)
            i += k
        return out

    return torch.cat([p.detach().reshape(-1) for _, p in named]), unflat


def ggn_pieces(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example gradients g (N, P) of the cross-entropy and GGN factors M (N, C, P) with
    J_i^T (diag(p_i) - p_i p_i^T) J_i = M_i^T M_i, so that a subset S has gradient mean(g[S]) and GGN
    M[S]^T M[S] / |S| (M flattened over its first two axes)."""
    theta, unflat = _flat(model)

    def logits(th: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return functional_call(model, unflat(th), (xi.unsqueeze(0),)).squeeze(0)

    jac = vmap(jacrev(logits), in_dims=(None, 0))(theta, x)  # (N, C, P)
    with torch.no_grad():
        p = F.softmax(functional_call(model, unflat(theta), (x,)), dim=1)  # (N, C)
        resid = p - F.one_hot(y, p.shape[1]).to(p.dtype)
        g = torch.einsum("nc,ncp->np", resid, jac)
        # A = diag(p) - p p^T = L L^T with L = diag(s) - p s^T, s = sqrt(p) (as s^T s = 1); M = L^T J
        s = p.sqrt()
        m = s.unsqueeze(2) * jac - s.unsqueeze(2) * torch.einsum("nc,ncp->np", p, jac).unsqueeze(1)
    return g, m


def ggn(m: torch.Tensor, idx: torch.Tensor | None = None) -> torch.Tensor:
    """The GGN of the mean loss over the examples `idx` (all when None) from the factors M."""
    sub = m if idx is None else m[idx]
    rows = sub.reshape(-1, sub.shape[-1])
    return rows.T @ rows / len(sub)


def damped_step(g_mat: torch.Tensor, g: torch.Tensor, damping: float) -> torch.Tensor:
    """(G + damping I)^{-1} g for a positive semi-definite G (Cholesky)."""
    eye = torch.eye(len(g), dtype=g_mat.dtype, device=g_mat.device)
    chol = torch.linalg.cholesky(g_mat + damping * eye)
    return torch.cholesky_solve(g.unsqueeze(1), chol).squeeze(1)


def _rel(estimates: torch.Tensor, truth: torch.Tensor) -> float:
    """sqrt(mean ||e - t||^2) / ||t||."""
    return math.sqrt(float(((estimates - truth) ** 2).sum(1).mean())) / float(truth.norm())


@MONITORS.register("gn_noise")
def gn_noise(model: nn.Module, loss_fn: LossFn, x, y, *, draws: int = DRAWS, sizes: tuple[int, ...] = GN_SIZES,
             dampings: tuple[float, ...] = DAMPINGS, seed: int = 0) -> dict[str, float]:
    """Relative errors of the minibatch gradient and damped Gauss-Newton step against the
    full-batch ones at the current parameters (module doc)."""
    if loss_fn is not F.cross_entropy:
        raise ValueError("gn_noise is for a classification task (mean cross-entropy)")
    probe = copy.deepcopy(model).double()
    xd = x.double() if x.is_floating_point() else x
    g_all, m_all = ggn_pieces(probe, xd, y)
    n = len(xd)
    g_n, big_g = g_all.mean(0), ggn(m_all)
    top = float(torch.linalg.eigvalsh(big_g)[-1])
    theta, unflat = _flat(probe)
    with torch.no_grad():
        loss0 = float(F.cross_entropy(functional_call(probe, unflat(theta), (xd,)), y))
    out: dict[str, float] = {"gn_population": float(n), "gn_top_eig": top, "gn_loss": loss0,
                             "gn_grad_norm": float(g_n.norm())}
    full = {}
    for c in dampings:
        full[c] = damped_step(big_g, g_n, c * top)
        with torch.no_grad():
            after = float(F.cross_entropy(functional_call(probe, unflat(theta - full[c]), (xd,)), y))
        out[change_key(c)] = after - loss0
        out[f"gn_step_norm@{c:g}"] = float(full[c].norm())
    gen = torch.Generator().manual_seed(seed)  # the same draws at every call: only the state changes
    for b in (b for b in sizes if b <= n // 4):
        grads, steps = [], {c: [] for c in dampings}
        for _ in range(draws):
            idx = torch.randperm(n, generator=gen)[:b].to(xd.device)
            g_b, big_b = g_all[idx].mean(0), ggn(m_all, idx)
            grads.append(g_b)
            for c in dampings:
                steps[c].append(damped_step(big_b, g_b, c * top))
        out[grad_key(b)] = _rel(torch.stack(grads), g_n)
        for c in dampings:
            out[step_key(b, c)] = _rel(torch.stack(steps[c]), full[c])
    return out
