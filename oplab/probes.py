"""Probe monitors of training dynamics (the measured loss change of a probe step, gradient noise
by batch size), registered in oplab.monitors.MONITORS; a probe leaves the model and its optimizer
untouched.

- `taylor_step`: on the probe batch, g, g^T g and g^T H g (a Hessian-vector product), then the
  loss actually measured after a step -eps g for each eps of PROBE_EPS, beside the second-order
  predictions with the Taylor term's 1/2 (`pred_half`, 1/2 eps^2 g^T H g - eps g^T g) and without
  it (`pred_nohalf`, eps^2 g^T H g - eps g^T g, as the notes print it). The step is taken on a
  float64 copy of the model, so that the model is never moved and the roundoff of a small step's
  loss change is not read as Taylor error.
- `grad_noise`: the probe batch is the population (N examples, its mean gradient g_N); for
  B = 1, 2, 4, ... up to N / 4, NOISE_DRAWS minibatches of B drawn without replacement give the
  noise std sqrt(mean ||g_B - g_N||^2), and the log-log slope of std vs B with the finite-population
  factor sqrt((N - B) / (N - 1)) divided out (`noise_slope`) and left in (`noise_slope_raw`).
  Independent examples give std ~ B^-1/2 times that factor. A trial whose batch is the whole
  training split (full-batch GD) probes on the whole split, so there g_N is the full-batch gradient.
  (The slope is -1/2 for any population sampled without replacement: a check of the estimator.)
  It also gives the signal ||g_N||^2 (`noise_signal`) and, per B, the minibatch gradient's
  signal-to-noise ratio SNR_B = ||g_N||^2 / mean ||g_B - g_N||^2 (`snr@B`): below 1, a minibatch's
  noise is larger than the signal it estimates.
- `flat_params`: every scalar parameter of a small model (`theta_0`, `theta_1`, ...), so that an
  analysis can average the recorded iterates (e.g. a uniform Polyak-Ruppert average).

Each costs a few gradient evaluations on the probe batch: bound it by `Trial.monitor_every`.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

from oplab.monitors import MONITORS, LossFn, as_double, hvp, loss_and_grad

PROBE_EPS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # probe step sizes (per step, as a learning rate)
NOISE_DRAWS = 16  # minibatches drawn per batch size
MAX_FLAT = 256  # flat_params refuses bigger models: a record would hold too many scalars


def _dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return float(sum((ai * bi).sum() for ai, bi in zip(a, b)))


def eps_key(kind: str, eps: float) -> str:
    """The monitor column of a probe step: kind (actual, pred_half, pred_nohalf) at eps."""
    return f"{kind}@{eps:g}"


@MONITORS.register("taylor_step")
def taylor_step(model: nn.Module, loss_fn: LossFn, x, y, *, eps: tuple[float, ...] = PROBE_EPS) -> dict[str, float]:
    """The measured loss change of steps -eps g beside its second-order predictions (module doc)."""
    probe = copy.deepcopy(model).double()  # the model itself is never stepped
    xd, yd = as_double(x), as_double(y)
    loss, grads = loss_and_grad(probe, loss_fn, xd, yd)
    loss, grads = float(loss.detach()), [g.detach() for g in grads]
    hg = hvp(probe, loss_fn, xd, yd, grads)
    gg, ghg = _dot(grads, grads), _dot(grads, hg)
    out = {"probe_loss": loss, "taylor_gTg": gg, "taylor_gTHg": ghg}
    params = [p for p in probe.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    with torch.no_grad():
        for e in eps:
            for p, p0, g in zip(params, start, grads):
                p.copy_(p0 - e * g)
            out[eps_key("actual", e)] = float(loss_fn(probe(xd), yd)) - loss
            # the Taylor expansion has the 1/2; the notes print the term without it
            out[eps_key("pred_half", e)] = 0.5 * e * e * ghg - e * gg
            out[eps_key("pred_nohalf", e)] = e * e * ghg - e * gg
    return out


def batch_sizes(n: int, max_fraction: float = 0.25) -> list[int]:
    """1, 2, 4, ... up to n * max_fraction (at least one size when n >= 2)."""
    top = max(1, int(n * max_fraction))
    return [2**k for k in range(int(math.log2(top)) + 1)] if n >= 2 else []


def loglog_slope(b: np.ndarray, s: np.ndarray) -> float:
    """Least-squares slope of log s on log b (NaN with fewer than two finite points)."""
    ok = np.isfinite(s) & (s > 0)
    if ok.sum() < 2:
        return float("nan")
    return float(np.polyfit(np.log(b[ok]), np.log(s[ok]), 1)[0])


@MONITORS.register("grad_noise")
def grad_noise(model: nn.Module, loss_fn: LossFn, x, y, *, draws: int = NOISE_DRAWS,
               max_fraction: float = 0.25, seed: int = 0) -> dict[str, float]:
    """Minibatch gradient noise vs batch size B on the probe batch as the population (module doc)."""
    params = [p for p in model.parameters() if p.requires_grad]
    n = len(x)
    sizes = batch_sizes(n, max_fraction)
    full = [g.detach() for g in torch.autograd.grad(loss_fn(model(x), y), params)]
    gen = torch.Generator().manual_seed(seed)  # the same draws at every call: only the state changes
    signal = sum(float((f**2).sum()) for f in full)
    out: dict[str, float] = {"noise_population": float(n), "noise_signal": signal}
    std, fpc = [], []
    for b in sizes:
        sq = 0.0
        for _ in range(draws):
            idx = torch.randperm(n, generator=gen)[:b].to(x.device)
            g = torch.autograd.grad(loss_fn(model(x[idx]), y[idx]), params)
            sq += sum(float(((gi - fi) ** 2).sum()) for gi, fi in zip(g, full))
        std.append(math.sqrt(sq / draws))
        fpc.append(math.sqrt((n - b) / (n - 1)))
        out[f"noise_std@{b}"] = std[-1]
        out[f"snr@{b}"] = signal / std[-1] ** 2 if std[-1] > 0 else float("inf")
    bs, s, f = np.array(sizes, dtype=float), np.array(std), np.array(fpc)
    out["noise_slope"] = loglog_slope(bs, s / f) if len(sizes) else float("nan")
    out["noise_slope_raw"] = loglog_slope(bs, s) if len(sizes) else float("nan")
    return out


@MONITORS.register("flat_params")
def flat_params(model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """Every scalar parameter, in model.parameters() order, as theta_0, theta_1, ..."""
    flat = torch.cat([p.detach().flatten() for p in model.parameters() if p.requires_grad])
    if flat.numel() > MAX_FLAT:
        raise ValueError(f"flat_params records at most {MAX_FLAT} scalars; this model has {flat.numel()}")
    return {f"theta_{i}": float(v) for i, v in enumerate(flat.tolist())}
