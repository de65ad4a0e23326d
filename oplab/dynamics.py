"""Training-dynamics pieces the dynamics studies share, registered into the core registries.

- model `scalar_chain` (oplab.models.MODELS): the notes' scalar chain y = x * w_1 * ... * w_L, one
  bias-free 1x1 weight a link with a normalizer slot after each, so that NormConfig("batch")
  standardizes every link's output over the minibatch (the notes' "standardizing");
- dataset `scalar_regression` (oplab.dataset.DATASETS): x ~ N(0, 1), y = slope * x + noise;
- monitor `step_loss_change` (oplab.monitors.MONITORS): the loss change of one SGD step taken
  on each of several sub-batches of the probe batch, measured on the whole probe batch — its
  variance over sub-batches is the update noise — beside its first-order prediction
  -lr g_sub . g_probe; the variance of what the first order leaves over (actual minus predicted)
  is the noise of the higher-order effects the notes' argument is about;
- monitor `unit_input`: the 15th, 50th and 85th percentiles over the probe batch of the input of
  a few fixed units of the last hidden activation (a sigmoid's input, Ioffe & Szegedy's Fig. 1).

Monitors leave the model's parameters, buffers and mode as they found them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from oplab.dataset import DATASETS, Dataset
from oplab.models import ACTIVATIONS, MODELS, NormSlot, probing
from oplab.monitors import MONITORS, LossFn

# --- the scalar chain


class ScalarChain(nn.Module):
    """y = x * w_1 * ... * w_L: `depth` bias-free Linear(1, 1) links, each followed by a NormSlot
    (an identity unless a normalizer is applied). Weights start at w0 + U(-spread, spread), drawn
    from torch's seeded generator; biases: none (BN brings its own shift)."""

    def __init__(self, depth: int, w0: float, spread: float):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(depth):
            link = nn.Linear(1, 1, bias=False)
            with torch.no_grad():
                link.weight.fill_(w0).add_(spread * (2 * torch.rand(1, 1) - 1))
            layers += [link, NormSlot(1)]
        self.chain = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.chain(x.reshape(len(x), 1))


@MODELS.register("scalar_chain")
def scalar_chain(*, input_shape, out_dim, depth, width, activation, w0: float = 1.0,
                 spread: float = 0.1) -> nn.Module:
    """The scalar chain of `depth` links (width and activation are ignored: every link is one
    linear weight). Use it with InitConfig("default"), which keeps its own init."""
    n_in = 1
    for s in input_shape:
        n_in *= s
    if n_in != 1 or out_dim != 1:
        raise ValueError(f"scalar_chain maps one input to one output; got input {tuple(input_shape)}, "
                         f"{out_dim} outputs")
    if depth < 1:
        raise ValueError(f"scalar_chain needs depth >= 1, got {depth}")
    return ScalarChain(depth, w0, spread)


@DATASETS.register("scalar_regression")
def scalar_regression(*, slope: float = 2.0, noise: float = 0.5, n_train: int = 2000, n_test: int = 500,
                      seed: int = 4321) -> Dataset:
    """x ~ N(0, 1), y = slope * x + N(0, noise^2); a pure function of its options (`seed` included)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + n_test, 1, generator=gen)
    y = slope * x + noise * torch.randn(n_train + n_test, 1, generator=gen)
    return Dataset(f"scalar_regression(slope={slope:g})", x[:n_train], y[:n_train], x[n_train:], y[n_train:],
                   "regression", 1)


# --- monitors

PROBE_LR = 0.01  # the probe step's learning rate (per update; losses are minibatch means)
PROBE_SPLITS = 20  # sub-batches of the probe batch, one probe step each


@MONITORS.register("step_loss_change")
def step_loss_change(model: nn.Module, loss_fn: LossFn, x, y, *, lr: float = PROBE_LR,
                     splits: int = PROBE_SPLITS) -> dict[str, float]:
    """For each of `splits` sub-batches of the probe batch: the SGD step -lr * g(sub-batch) from
    the current weights, the loss change it makes on the whole probe batch, and that change's
    first-order prediction -lr * g(sub-batch) . g(probe batch). Reports over sub-batches the mean,
    variance and std of the change (`step_dloss_*`), the variance of the prediction
    (`step_dloss_first_var`), the mean and variance of the change minus its prediction (the
    higher-order part, `step_dloss_resid_mean`, `step_dloss_resid_var`), and the loss before.
    Training mode (batch norm uses the batch's statistics, as in the step SGD takes; the probe
    batch's gradient and loss use the probe batch's); the steps are taken on copies
    (torch.func.functional_call), the model's weights and buffers stay as they were. A small probe
    batch gets fewer sub-batches, each of at least 2 examples (batch norm needs 2 to normalize)."""
    splits = max(1, min(splits, len(x) // 2))
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    changes, firsts = [], []
    with probing(model, train=True):
        buffers = {n: b.detach().clone() for n, b in model.named_buffers()}
        loss = loss_fn(model(x), y)
        before = float(loss.detach())
        full = [g.detach().double() for g in torch.autograd.grad(loss, list(params.values()))]
        for xs, ys in zip(x.chunk(splits), y.chunk(splits)):
            grads = torch.autograd.grad(loss_fn(model(xs), ys), list(params.values()))
            stepped = {n: (p - lr * g).detach() for (n, p), g in zip(params.items(), grads)}
            with torch.no_grad():
                after = float(loss_fn(functional_call(model, {**stepped, **buffers}, (x,)), y))
            changes.append(after - before)
            firsts.append(-lr * float(sum((g.double() * G).sum() for g, G in zip(grads, full))))
    c = torch.tensor(changes, dtype=torch.float64)
    f = torch.tensor(firsts, dtype=torch.float64)
    r = c - f
    return {"step_dloss_mean": float(c.mean()), "step_dloss_var": float(c.var()),
            "step_dloss_std": float(c.std()), "step_dloss_first_var": float(f.var()),
            "step_dloss_resid_mean": float(r.mean()), "step_dloss_resid_var": float(r.var()),
            "probe_loss": before}


UNIT_PERCENTILES = (15, 50, 85)
UNIT_COUNT = 10  # units 0..9 of the last hidden activation


def activation_inputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The input of every hidden activation module (in forward order) on a batch, flattened to
    (examples, units). An activation's input is its normalizer's output (or the weight layer's)."""
    kinds = tuple({type(ACTIVATIONS.build(name)) for name in ACTIVATIONS.names()} - {nn.Identity})
    acts = [m for m in model.modules() if isinstance(m, kinds)]
    if not acts:
        raise ValueError("unit_input needs a model with hidden activation modules "
                         f"({', '.join(k.__name__ for k in kinds)})")
    hooks, ins = [], {}
    for i, m in enumerate(acts):
        hooks.append(m.register_forward_hook(lambda mod, inp, out, i=i: ins.__setitem__(i, inp[0].detach())))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return [ins[i].flatten(1) for i in range(len(acts))]


@MONITORS.register("unit_input")
def unit_input(model: nn.Module, loss_fn: LossFn, x, y, *, units: int = UNIT_COUNT,
               percentiles: tuple[int, ...] = UNIT_PERCENTILES) -> dict[str, float]:
    """The percentiles over the probe batch of the input of units 0..units-1 of the last hidden
    activation (e.g. a sigmoid's input: after batch norm in a BN net), as `unit{j}_p{q}`. Training
    mode (batch norm uses the batch's statistics: the distribution the net trains on); running
    statistics restored."""
    with probing(model, train=True):
        z = activation_inputs(model, x)[-1]
    q = torch.tensor([p / 100 for p in percentiles], dtype=z.dtype, device=z.device)
    vals = torch.quantile(z[:, :units], q, dim=0)  # (percentiles, units)
    return {f"unit{j}_p{p}": float(vals[k, j]) for j in range(min(units, z.shape[1]))
            for k, p in enumerate(percentiles)}

