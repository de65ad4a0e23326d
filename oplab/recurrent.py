"""An LSTM written out step by step, so that normalization can go inside its recurrence: the
batch-normalized LSTM of Cooijmans, Ballas, Laurent, Gulcehre & Courville (2017, "Recurrent Batch
Normalization", ICLR, arXiv 1603.09025), and the plain LSTM it is compared with (`norm_lstm`).

The cell (gates i, f, g, o, in torch's order):

    (i, f, g, o) = BN(W_h h_{t-1}; gamma_h) + BN(W_x x_t; gamma_x) + b
    c_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h_t = sigmoid(o) * tanh(BN(c_t; gamma_c, beta_c))

With norm="none" every BN is the identity (a plain LSTM). As in the paper (sec. 3, verified in the
authors' camera-ready source and code): the input and recurrent terms are normalized separately,
without shifts of their own (beta_h = beta_x = 0, the bias b covers both); the cell is normalized
where it feeds the output, not in its own update; the statistics are kept per time step
(`StepBatchNorm`: a minibatch's mean and variance at step t in training, the population estimate of
step t at test time, the last step's for any step beyond the training length) while gamma and beta
are shared over time; gamma starts at 0.1, beta at 0.

The read-out is a linear layer on the last hidden state. Every weight matrix is started orthogonal
(torch.nn.init.orthogonal_), the biases at 0 except the forget gate's at 1 (the authors' code), so
that the plain, the batch-normalized and the weight-normalized arms of one seed start from the same
weights. Weight normalization needs nothing here: W_x, W_h and the read-out are nn.Linear layers,
which oplab.norms' "weight" normalizer reparameterizes (torch's weight_norm, g per output unit); the
forward pass computes each reparameterized weight once, not once a step (parametrize.cached).

h_0 = c_0 = 0, so the recurrent term is 0 at the first step for every example: it is left out there
(its batch variance would be 0), and the first recurrent statistics are those of step 2.

Weight normalization's data-dependent init for this cell (`NormLSTM.data_dependent_init`, which
oplab.norms.data_dependent_init calls for a model that has one). Salimans & Kingma's rule (2016,
sec. 3): on one minibatch, set each unit's g and b so that its pre-activation has mean 0 and
variance 1. Their rule is for feed-forward layers; the authors advise against it for recurrent nets
(see studies/rnn_normalization's docstring), so its extension to the recurrence is ours:
- the pre-activation of gate unit j at step t is z_t = u_t + r_t + b, the input term u_t = W_x x_t
  and the recurrent term r_t = W_h h_(t-1) (r_1 = 0: h_0 = 0), each weight normalized with its own
  g per gate unit; its statistics are taken over the batch and every step (the unit's statistics,
  as a convolution's are taken over positions);
- three conditions a unit fix its three numbers (g_x, g_h, b): mean(z) = 0 and Var(z) = 1 (the
  paper's rule), and Var(r) / Var(u) = (1 - share) / share (share = 1/2: neither the new input
  nor the memory dominates at the start, the split oplab.init_rnn's LSUV for an RNN uses);
- the forget gate's units get mean `forget_bias` (1) instead of 0: the offset every arm of the
  study starts with, which in the BN-LSTM too sits after the normalization (b);
- h depends on all three, so they are found by a fixed-point iteration: one forward pass of the
  batch, then, with h held, g_h rescaled to the split, both g's of the unit scaled by 1 / std(z)
  and b set to the mean target (exact at fixed h); repeated until every unit's mean, variance and
  split are within `tol` (or `tmax` passes; the report says which). Each pass after the first moves
  only a fraction `damping` (0.1) of the way, in logs for the g's: the whole step overshoots,
  because a bias moves every unit's h and so, through W_h, every unit's mean (at 100 units and 40
  steps the undamped and the 0.3-damped iterations cycle; at 0.1 every unit is within 0.01 after
  about 80 passes);
- then the read-out (a feed-forward layer): the paper's rule on the last hidden state of the batch,
  each logit's mean 0 and variance 1.
Statistics are the batch's own (variance without Bessel's correction).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from oplab.models import MODELS

NORMS = ("none", "batch")


class StepBatchNorm(nn.Module):
    """Batch norm over the batch with separate statistics for each time step 0..steps-1 and one
    scale (and optional shift) shared by every step. Training normalizes with the minibatch's
    mean and (biased) variance at that step and moves that step's running estimates toward them
    (unbiased variance, momentum as torch's BatchNorm1d); evaluation normalizes with the running
    estimates of the step, or of the last step for any step beyond it (the paper's rule for
    sequences longer than the training ones)."""

    def __init__(self, features: int, steps: int, gamma: float = 0.1, shift: bool = True, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__()
        self.features, self.steps, self.eps, self.momentum = features, steps, eps, momentum
        self.weight = nn.Parameter(torch.full((features,), float(gamma)))
        self.bias = nn.Parameter(torch.zeros(features)) if shift else None
        self.register_buffer("running_mean", torch.zeros(steps, features))
        self.register_buffer("running_var", torch.ones(steps, features))

    def _stats_row(self, t: int) -> int:
        if t < 0:
            raise ValueError(f"time step must be >= 0, got {t}")
        if t >= self.steps and self.training:
            raise ValueError(f"step {t} is beyond the {self.steps} steps this norm keeps statistics for")
        return min(t, self.steps - 1)

    def forward(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """x: (batch, features) at time step t."""
        s = self._stats_row(t)
        # the rows are views of the buffers: training updates step s's estimates in place
        return F.batch_norm(x, self.running_mean[s], self.running_var[s], self.weight, self.bias, self.training,
                            self.momentum, self.eps)

    def forward_all(self, x: torch.Tensor) -> torch.Tensor:
        """x: (batch, time, features), every step at once, step t with step t's statistics (one call: the
        features of all steps side by side are independent batch-norm channels)."""
        b, steps, f = x.shape
        if steps <= self.steps:
            mean, var = self.running_mean[:steps].reshape(-1), self.running_var[:steps].reshape(-1)  # views
        else:
            rows = [self._stats_row(t) for t in range(steps)]  # evaluation only (training raises)
            mean, var = self.running_mean[rows].reshape(-1), self.running_var[rows].reshape(-1)
        weight = self.weight.repeat(steps)
        bias = self.bias.repeat(steps) if self.bias is not None else None
        y = F.batch_norm(x.reshape(b, steps * f), mean, var, weight, bias, self.training, self.momentum, self.eps)
        return y.view(b, steps, f)

    def extra_repr(self) -> str:
        return f"{self.features}, steps={self.steps}, shift={self.bias is not None}"


class NormLSTM(nn.Module):
    """A one-layer LSTM over (batch, time, features) with a linear read-out of the last hidden state;
    norm="batch" is Cooijmans et al.'s BN-LSTM (module docstring), norm="none" a plain LSTM."""

    def __init__(self, n_in: int, width: int, out_dim: int, steps: int, norm: str = "none", gamma: float = 0.1,
                 forget_bias: float = 1.0):
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"norm_lstm norm {norm!r} is not valid; valid: {', '.join(NORMS)}")
        self.width, self.steps, self.norm, self.forget_bias = width, steps, norm, float(forget_bias)
        self.w_x = nn.Linear(n_in, 4 * width, bias=False)
        self.w_h = nn.Linear(width, 4 * width, bias=False)
        self.bias = nn.Parameter(torch.zeros(4 * width))
        self.readout = nn.Linear(width, out_dim)
        if norm == "batch":
            self.bn_x = StepBatchNorm(4 * width, steps, gamma, shift=False)
            self.bn_h = StepBatchNorm(4 * width, steps, gamma, shift=False)
            self.bn_c = StepBatchNorm(width, steps, gamma, shift=True)
        with torch.no_grad():
            for layer in (self.w_x, self.w_h, self.readout):
                nn.init.orthogonal_(layer.weight)
            self.readout.bias.zero_()
            self.bias[width : 2 * width] = forget_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        x = x.reshape(b, self.steps, -1)
        bn = self.norm == "batch"
        w = self.width
        # few, fused operations a step: the loop's cost is the number of tensor operations, not their size
        with parametrize.cached():  # a weight-normed layer's weight computed once a forward pass
            xw = self.w_x(x)  # every step's input term in one product
            if bn:
                xw = self.bn_x.forward_all(xw)
            xw = xw + self.bias
            w_h = self.w_h.weight.t()
            h = c = None
            for t in range(self.steps):
                if h is None:  # h_0 = 0: no recurrent term at the first step
                    z = xw[:, t]
                elif bn:
                    z = xw[:, t] + self.bn_h(h @ w_h, t)
                else:
                    z = torch.addmm(xw[:, t], h, w_h)
                gates = torch.sigmoid(z)  # i, f, o (g's sigmoid unused: one call for all four)
                g = torch.tanh(z[:, 2 * w : 3 * w])
                c = gates[:, :w] * g if c is None else torch.addcmul(gates[:, w : 2 * w] * c, gates[:, :w], g)
                h = gates[:, 3 * w :] * torch.tanh(self.bn_c(c, t) if bn else c)
            return self.readout(h)

    def _terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The plain cell on x (batch, time, features): the input terms u (batch, time, 4 width, no bias),
        the recurrent terms r of steps 2..T (batch, time - 1, 4 width) and the last hidden state."""
        w, w_h = self.width, self.w_h.weight.t()
        u = self.w_x(x)
        h = c = None
        rs = []
        for t in range(self.steps):
            z = u[:, t] + self.bias
            if h is not None:
                rs.append(h @ w_h)
                z = z + rs[-1]
            gates, g = torch.sigmoid(z), torch.tanh(z[:, 2 * w : 3 * w])
            c = gates[:, :w] * g if c is None else gates[:, w : 2 * w] * c + gates[:, :w] * g
            h = gates[:, 3 * w :] * torch.tanh(c)
        r = torch.stack(rs, dim=1) if rs else u.new_zeros(u.shape[0], 0, u.shape[2])
        return u, r, h

    @torch.no_grad()
    def data_dependent_init(self, x: torch.Tensor, share: float = 0.5, tol: float = 0.01, tmax: int = 300,
                            damping: float = 0.1) -> list[dict]:
        """Weight norm's data-dependent init carried into the recurrence (module docstring) on the batch x:
        every gate unit's pre-activation to mean 0 (the forget gate's: forget_bias) and variance 1 over
        the batch and the steps, its recurrent term's variance (1 - share) / share times its input
        term's; then the read-out's logits to mean 0 and variance 1. Needs the plain cell with W_x, W_h
        and the read-out weight-normalized (oplab.norms' "weight"). Returns a report per part: the
        pre-activations' mean and std (averaged over units) before and after, the worst unit's errors
        after, and the passes it took."""
        if self.norm != "none":
            raise ValueError("the weight-norm data-dependent init is for the plain cell (norm 'none'), not the "
                             "BN-LSTM, whose batch norm sets the pre-activations' scale itself")
        if not all(parametrize.is_parametrized(m, "weight") for m in (self.w_x, self.w_h, self.readout)):
            raise ValueError("the data-dependent init needs W_x, W_h and the read-out weight-normalized "
                             "(normalizer 'weight')")
        if not 0.0 < share <= 1.0:
            raise ValueError(f"share must be in (0, 1], got {share}")
        x = x.reshape(x.shape[0], self.steps, -1)
        g_x = self.w_x.parametrizations.weight.original0  # (4 width, 1): one g per gate unit
        g_h = self.w_h.parametrizations.weight.original0
        w = self.width
        target = torch.zeros(4 * w, dtype=x.dtype, device=x.device)
        target[w : 2 * w] = self.forget_bias
        ratio = (1.0 - share) / share  # Var(r) / Var(u)

        def moments(t):  # per unit over batch and steps: (mean, variance); flat rows reduce fast
            t = t.reshape(-1, t.shape[-1])
            m = t.mean(dim=0)
            return m, (t - m).square().mean(dim=0)

        def measure():  # one pass: u, r, the last h, the pre-activation without b, its moments, the errors
            u, r, h = self._terms(x)
            a = torch.cat([u[:, :1], u[:, 1:] + r], dim=1)
            (mean, var), var_u = moments(a), moments(u)[1].clamp_min(1e-12)
            var_r = moments(r)[1].clamp_min(1e-12) if r.shape[1] else None
            err = {"mean": float((mean + self.bias - target).abs().max()), "var": float((var - 1).abs().max())}
            if var_r is not None:
                err["split"] = float((var_r / var_u / ratio - 1).abs().max())
            return u, r, h, mean, var, var_u, var_r, err

        u, r, h, mean, var, var_u, var_r, err = measure()
        before = {"mean": float((mean + self.bias).mean()), "std": float(var.sqrt().mean())}
        passes = 0
        while max(err.values()) >= tol and passes < tmax:
            passes += 1
            k = (ratio * var_u / var_r).sqrt() if var_r is not None else torch.ones_like(var_u)
            a = torch.cat([u[:, :1], u[:, 1:] + k * r], dim=1)  # the unit with g_h rescaled, h held
            m, v = moments(a)
            scale = v.clamp_min(1e-24).rsqrt()
            d = 1.0 if passes == 1 else damping  # the first pass whole (from the start's scale), then damped
            g_x.mul_(scale.pow(d).view(-1, 1))
            g_h.mul_((k * scale).pow(d).view(-1, 1))
            self.bias.lerp_(target - scale * m, d)
            u, r, h, mean, var, var_u, var_r, err = measure()
        gates = {"layer": "gates (W_x, W_h, b)", **before, "mean_after": float((mean + self.bias).mean()),
                 "std_after": float(var.sqrt().mean()), "passes": passes, "converged": max(err.values()) < tol,
                 **{f"max_err_{k}": v for k, v in err.items()}}
        # the read-out, a feed-forward layer: the paper's rule on the last hidden state (linear: exact)
        out = self.readout(h)
        mu, sd = out.mean(dim=0), out.std(dim=0, correction=0).clamp_min(1e-12)
        self.readout.parametrizations.weight.original0.div_(sd.view(-1, 1))
        self.readout.bias.sub_(mu).div_(sd)
        readout = {"layer": "readout", "mean": float(mu.mean()), "std": float(sd.mean())}
        return [gates, readout]


@MODELS.register("norm_lstm")
def norm_lstm(*, input_shape, out_dim, depth, width, activation, norm: str = "none", gamma: float = 0.1,
              forget_bias: float = 1.0, chunk: int = 1) -> nn.Module:
    """A one-layer LSTM of `width` units (norm_lstm's cell: oplab.recurrent) reading (time, features)
    inputs, or any other input flattened and read as length / `chunk` steps of `chunk` values
    (MNIST-1D's 40 values: 40 steps of 1 with chunk 1, 10 steps of 4 with chunk 4; an MNIST image:
    784 pixels in scanline order). `norm`: "none" (plain) or "batch" (BN-LSTM, gamma started
    at `gamma`); `forget_bias`: the forget gate's initial bias. `depth` must be 1 and `activation`
    tanh (the cell's own nonlinearity)."""
    if depth != 1:
        raise ValueError(f"norm_lstm has one layer; set depth 1, not {depth}")
    if activation != "tanh":
        raise ValueError(f"an LSTM's cell nonlinearity is tanh; set activation 'tanh', not {activation!r}")
    if len(input_shape) == 2:
        steps, n_in = input_shape
    else:  # flat values (MNIST-1D's 40), or an image read in scanline order (MNIST's 784 pixels)
        length = 1
        for s in input_shape:
            length *= s
        if chunk < 1 or length % chunk:
            raise ValueError(f"norm_lstm chunk {chunk} must divide the input length {length}")
        steps, n_in = length // chunk, chunk
    return NormLSTM(n_in, width, out_dim, steps, norm, gamma, forget_bias)
