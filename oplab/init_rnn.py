"""Initializers for an Elman RNN's own weights, and LSUV extended to them.

oplab.init's rules set Linear/Conv weights only; an `nn.RNN`'s input weight W_xh (`weight_ih_l0`,
hidden x inputs) and recurrent weight W_hh (`weight_hh_l0`, hidden x hidden) are left to the
model's own init. The rules here set both, and the read-out (every Linear/Conv, as oplab.init),
with every bias at 0 (the rnn's b_ih and b_hh and the read-out's):

- `rnn_orthogonal`: W_xh (semi-)orthogonal, W_hh orthogonal, read-out (semi-)orthogonal, each
  times `gain` (torch.nn.init.orthogonal_; Saxe et al. 2013, as in LSUV's start);
- `rnn_glorot`: W_xh, W_hh and the read-out U(-u, u), u = gain sqrt(6 / (fan_in + fan_out))
  (torch.nn.init.xavier_uniform_; Glorot & Bengio 2010);
- `rnn_lsuv`: LSUV (Mishkin & Matas 2015, arXiv 1511.06422, Algorithm 1) carried over to the
  recurrence, defined below.

LSUV for an RNN. The feed-forward rule makes each layer's output (its pre-activation) have unit
variance on a batch. In an Elman RNN the pre-activation at step t is a_t = u_t + r_t, the input
term u_t = W_xh x_t and the recurrent term r_t = W_hh h_(t-1), h_t = tanh(a_t) (biases 0). Two
weights feed one pre-activation, so "Var(a) = 1" leaves one degree of freedom: how the unit
variance is split between the input and the memory. We fix the split at `input_share` (default
1/2: neither the new symbol nor the state dominates at init) and fit each term to its share:
1. orthonormal start: W_xh, W_hh and the read-out as `rnn_orthogonal` (gain 1), biases 0;
2. on the batch (every example, every step, every unit: LSUV's variance of the whole output blob),
   rescale W_xh by sqrt(input_share / Var(u)) until |Var(u) / input_share - 1| < tol or `tmax`
   rescalings (u is linear in W_xh: one rescaling fits it exactly on the batch);
3. then rescale W_hh by sqrt((1 - input_share) / Var(r)) until |Var(r) / (1 - input_share) - 1| <
   tol or `tmax` rescalings, r over steps 1..T-1 (at step 0 the state is 0 and r_0 = 0). h depends
   on W_hh, so this iterates; Var(r) rises with W_hh's scale but, tanh saturating, slower than its
   square, so the fixed-point iteration converges (in 2-4 rescalings here);
4. the read-out (every Linear/Conv layer after the recurrence) as LSUV's own rule: its output
   variance on the batch to 1 (linear: one rescaling).
With u and r uncorrelated (the symbol at step t is independent of the past in the tasks here)
Var(a) = Var(u) + Var(r) = 1, LSUV's target; the report gives Var(a) too. Why these terms and not
"the state's variance at the last step equals the first's": that target has no scale (any W_hh
for which the state is stationary meets it), and LSUV's is a scale; the pre-activation is what
LSUV normalizes in a feed-forward net, and the two terms are each a function of one weight.
The variances are those of the batch it is fitted on (the trial's fixed batch, apart from the
training order); `rnn_variance`, a monitor registered here, measures the same terms on another
batch (the probe batch) and the spectral radius and norm of W_hh.
Supported: one-layer `nn.RNN` (tanh or relu), the `rnn` model's Elman cell; an LSTM, a GRU or
stacked layers raise.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from oplab.init import orthogonal, register
from oplab.models import weight_layers
from oplab.monitors import MONITORS, LossFn


def elman_layers(model: nn.Module) -> list[nn.RNN]:
    """The model's nn.RNN modules, each checked to be one layer, unidirectional (ValueError if
    there is none, or an LSTM/GRU, or a stacked or bidirectional one)."""
    if any(isinstance(m, nn.LSTM | nn.GRU) for m in model.modules()):
        raise ValueError("the rnn_* initializers are for an Elman RNN (nn.RNN, the rnn model's cell 'rnn'), "
                         "not an LSTM or GRU")
    rnns = [m for m in model.modules() if isinstance(m, nn.RNN)]
    if not rnns:
        raise ValueError("the rnn_* initializers need a model with an nn.RNN (the rnn model)")
    for m in rnns:
        if m.num_layers != 1 or m.bidirectional:
            raise ValueError(f"the rnn_* initializers take a one-layer unidirectional nn.RNN; got num_layers="
                             f"{m.num_layers}, bidirectional={m.bidirectional}")
    return rnns


def _each_rnn(model: nn.Module, rule) -> None:
    """`rule` on every nn.RNN weight, biases 0."""
    with torch.no_grad():
        for m in elman_layers(model):
            for name, p in m.named_parameters():
                if name.startswith("weight"):
                    rule(p)
                else:
                    p.zero_()


@register("rnn_orthogonal")
def rnn_orthogonal(model: nn.Module, batch=None, *, gain: float = 1.0) -> dict:
    """W_xh, W_hh and the read-out (semi-)orthogonal times `gain`; biases 0."""
    orthogonal(model, gain=gain, bias="zero")
    _each_rnn(model, lambda p: nn.init.orthogonal_(p, gain=gain))
    return {}


@register("rnn_glorot")
def rnn_glorot(model: nn.Module, batch=None, *, gain: float = 1.0) -> dict:
    """W_xh, W_hh and the read-out Glorot-uniform, U(-u, u), u = gain sqrt(6 / (fan_in + fan_out));
    biases 0."""
    with torch.no_grad():
        for m in weight_layers(model):
            nn.init.xavier_uniform_(m.weight, gain=gain)
            if m.bias is not None:
                m.bias.zero_()
    _each_rnn(model, lambda p: nn.init.xavier_uniform_(p, gain=gain))
    return {}


def terms(rnn: nn.RNN, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """One nn.RNN layer (batch_first) on inputs x (batch, time, features): the input term
    u = x W_xh^T (+ b_ih), the recurrent term r = h_(t-1) W_hh^T (+ b_hh) at steps 1..T-1, the
    pre-activation a = u + r (r_0 = b_hh) and the states h, each (batch, steps, hidden)."""
    if not rnn.batch_first:
        raise ValueError("terms() needs a batch_first nn.RNN")
    h, _ = rnn(x)
    u = x @ rnn.weight_ih_l0.T + rnn.bias_ih_l0
    r = h[:, :-1] @ rnn.weight_hh_l0.T + rnn.bias_hh_l0
    a = u.clone()
    a[:, 1:] += r
    a[:, 0] += rnn.bias_hh_l0
    return {"u": u, "r": r, "a": a, "h": h}


def _fit(name: str, weight: torch.Tensor, variance, target: float, tol: float, tmax: int) -> dict:
    """Rescale `weight` by sqrt(target / Var) until |Var / target - 1| < tol or tmax rescalings."""
    var = before = variance()
    tries = 0
    while abs(var / target - 1.0) >= tol and tries < tmax:
        if not (math.isfinite(var) and var > 0):
            raise RuntimeError(f"rnn_lsuv: the {name} has variance {var} on the batch; it cannot be rescaled")
        weight.mul_(math.sqrt(target / var))
        tries += 1
        var = variance()
    if not math.isfinite(var):
        raise RuntimeError(f"rnn_lsuv: the {name} has variance {var} on the batch")
    return {"term": name, "target": target, "var_before": before, "var": var, "iters": tries,
            "converged": abs(var / target - 1.0) < tol}


@register("rnn_lsuv")
@torch.no_grad()
def rnn_lsuv(model: nn.Module, batch: torch.Tensor | None = None, *, tol: float = 0.1, tmax: int = 10,
             input_share: float = 0.5) -> dict:
    """LSUV for an Elman RNN (module docstring): orthonormal start; on the batch, the input term's
    variance to `input_share`, then the recurrent term's to 1 - `input_share`, each within a relative
    `tol` (at most `tmax` rescalings each); then the read-out's output variance to 1 (LSUV's rule,
    absolute tol). Reports each term's variance before and after, the rescalings, the pre-activation's
    variance and W_hh's resulting gain (its spectral norm; 1 at the orthogonal start)."""
    if batch is None:
        raise ValueError("rnn_lsuv is data-dependent: it needs a batch of training sequences")
    if batch.ndim != 3 or len(batch) < 2:
        raise ValueError(f"rnn_lsuv needs a batch of at least 2 sequences (batch, time, features); got shape "
                         f"{tuple(batch.shape)}")
    if not tol > 0 or tmax < 0 or not 0.0 < input_share < 1.0:
        raise ValueError(f"rnn_lsuv needs tol > 0, tmax >= 0 and 0 < input_share < 1; got tol={tol}, tmax={tmax}, "
                         f"input_share={input_share}")
    rnn_orthogonal(model)
    rnns = elman_layers(model)
    if len(rnns) != 1:
        raise ValueError(f"rnn_lsuv takes a model with one nn.RNN; got {len(rnns)}")
    rnn = rnns[0]
    was = model.training
    model.eval()  # no dropout or batch statistics in the rnn model; eval keeps a probe from changing state
    try:
        report = [_fit("input term", rnn.weight_ih_l0, lambda: float(terms(rnn, batch)["u"].var()),
                      input_share, tol, tmax),
                  _fit("recurrent term", rnn.weight_hh_l0, lambda: float(terms(rnn, batch)["r"].var()),
                      1.0 - input_share, tol, tmax)]
        t = terms(rnn, batch)
        readout = []
        for i, m in enumerate(weight_layers(model)):
            def out_var(m=m) -> float:
                out: dict = {}
                hook = m.register_forward_hook(lambda mod, inp, o: out.__setitem__("o", o.detach()))
                try:
                    model(batch)
                finally:
                    hook.remove()
                return float(out["o"].var())
            readout.append({"layer": i, **_fit(f"layer {i} output", m.weight, out_var, 1.0, tol, tmax)})
    finally:
        model.train(was)
    return {"tol": tol, "tmax": tmax, "input_share": input_share, "terms": report, "layers": readout,
            "pre_var": float(t["a"].var()), "whh_gain": float(torch.linalg.matrix_norm(rnn.weight_hh_l0, ord=2))}


@MONITORS.register("rnn_variance")
@torch.no_grad()
def rnn_variance(model: nn.Module, loss_fn: LossFn, x, y) -> dict[str, float]:
    """On the batch x (the trial's probe batch), the one nn.RNN's terms as rnn_lsuv defines them:
    variances over every element of the input term (`rnn_u_var`), the recurrent term over steps
    1..T-1 (`rnn_r_var`), the pre-activation (`rnn_a_var`), the state at the last step
    (`rnn_h_last_var`) and the read-out's output (`readout_var`); and W_hh's spectral radius
    (`whh_radius`, largest |eigenvalue|) and spectral norm (`whh_norm`)."""
    (rnn,) = elman_layers(model)
    t = terms(rnn, x)
    out = {f"rnn_{k}_var": float(t[k].double().var()) for k in ("u", "r", "a")}
    out["rnn_h_last_var"] = float(t["h"][:, -1].double().var())
    out["readout_var"] = float(model(x).double().var())
    w = rnn.weight_hh_l0.detach().double()
    out["whh_radius"] = float(torch.linalg.eigvals(w).abs().max())
    out["whh_norm"] = float(torch.linalg.matrix_norm(w, ord=2))
    return out
