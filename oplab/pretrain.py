"""Greedy layer-wise pre-training of an MLP (Bengio, Lamblin, Popovici & Larochelle 2007;
Erhan et al. 2010), as an initializer: `InitConfig("greedy", {"method": ..., "epochs": ...,
"lr": ...})`. Every stage setting is an option of the trial's init config, so a stored trial
says exactly how it was pre-trained; the trial's own optimizer then fine-tunes every parameter.

First the `base` initializer (default "standard", U(+-1/sqrt(fan_in)), the 2007 regime) sets
every weight. Then, for hidden block k = 1..L (a block: Linear, its norm slot, activation),
with blocks 1..k-1 frozen and their output h_{k-1} as the stage's input (h_0 = the inputs):

- method "supervised" (supervised greedy): block k and a temporary linear head (base init)
  are trained by SGD on cross-entropy with the labels; the head is then dropped;
- method "autoencoder" (auto-associator, unsupervised greedy): block k is the encoder of an
  autoencoder of h_{k-1}; the decoder is W_k^T plus a bias when `tied`, else a new linear
  map; linear output and squared error (our inputs are standardized, not binary: the papers'
  auto-associators reconstruct through a sigmoid with the cross-entropy, for inputs in [0, 1]);
  with `corruption` > 0 each input component is set to 0 with that probability before encoding
  (masking noise: a denoising autoencoder, Vincent et al. 2008, as Erhan et al. 2010 pre-train),
  the loss still against the clean input. The mask is drawn from the stage's generator after the
  batch's indices, and only when `corruption` > 0, so a plain stage's batches do not depend on it.

A stage trains by plain SGD (`lr` per update, minibatch mean loss, `batch_size`) for `epochs`
passes over the training split, drawing batches from a generator seeded by the trial's seed.
The read-out layer keeps its base init. The report gives each stage's updates and its loss on
the whole training split before and after, and `updates`, the total pre-training updates
(the record's `pretrain_updates`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from oplab import seeds
from oplab.init import INITS

METHODS = ("supervised", "autoencoder")


def mlp_parts(model: nn.Module) -> tuple[list[nn.Module], list[list[nn.Module]], nn.Linear]:
    """(modules before the first Linear, hidden blocks, read-out) of an nn.Sequential MLP whose
    hidden blocks each start with a Linear; raises ValueError for any other model."""
    if not isinstance(model, nn.Sequential):
        raise ValueError(f"greedy pre-training needs an MLP (nn.Sequential), got {type(model).__name__}")
    lead, blocks = [], []
    for m in model.children():
        if isinstance(m, nn.Linear):
            blocks.append([m])
        elif blocks:
            blocks[-1].append(m)
        else:
            lead.append(m)
    if any(isinstance(m, nn.Conv1d | nn.Conv2d) for m in model.modules()) or len(blocks) < 2 or len(blocks[-1]) != 1:
        raise ValueError("greedy pre-training needs an MLP: Linear blocks, then a linear read-out")
    return lead, blocks[:-1], blocks[-1][0]


def run_blocks(mods: list[nn.Module], x: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([nn.Sequential(*mods)(x[i:i + chunk]) for i in range(0, len(x), chunk)]) if mods else x


def train_stage(block: list[nn.Module], h: torch.Tensor, y: torch.Tensor, *, method: str, n_out: int,
                base: str = "standard", epochs: int = 5, lr: float = 0.1, batch_size: int = 100,
                corruption: float = 0.0, tied: bool = True, generator: torch.Generator | None = None) -> dict:
    """Train one hidden block (Linear, norm slot, activation) on its input `h` as `method` says,
    with the stage's own temporary head or decoder; only the block's parameters and those
    temporaries change. Returns updates and the stage's loss on all of `h` before and after."""
    gen = generator or torch.Generator().manual_seed(0)
    enc, lin = nn.Sequential(*block), block[0]
    if method == "supervised":
        head = nn.Linear(lin.out_features, n_out).to(h.device, h.dtype)
        INITS.build(base, nn.Sequential(head), None)
        temporaries = list(head.parameters())

        def loss_of(inp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(head(enc(inp)), target)
    else:
        dec_bias = nn.Parameter(torch.zeros(lin.in_features, device=h.device, dtype=h.dtype))
        dec = None if tied else nn.Linear(lin.out_features, lin.in_features).to(h.device, h.dtype)
        if dec is not None:
            INITS.build(base, nn.Sequential(dec), None)
        temporaries = [dec_bias] if dec is None else list(dec.parameters())

        def loss_of(inp: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            code = enc(inp)
            return F.mse_loss(F.linear(code, lin.weight.t(), dec_bias) if dec is None else dec(code), target)

    def full_loss() -> float:  # the stage's loss on the whole split, no corruption
        with torch.no_grad():
            return float(loss_of(h, y if method == "supervised" else h))

    n = len(h)
    bs = min(batch_size, n)
    per_epoch = n // bs
    opt = torch.optim.SGD(list(enc.parameters()) + temporaries, lr=lr)
    before = full_loss()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen).to(h.device)
        for i in range(per_epoch):
            inp = h[perm[i * bs:(i + 1) * bs]]
            if method == "supervised":
                loss = loss_of(inp, y[perm[i * bs:(i + 1) * bs]])
            else:
                keep = (torch.rand(inp.shape, generator=gen).to(inp.device) >= corruption) if corruption > 0 else None
                loss = loss_of(inp if keep is None else inp * keep, inp)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {"updates": epochs * per_epoch, "loss_before": before, "loss_after": full_loss()}


@INITS.register("greedy")
def greedy(model: nn.Module, batch=None, *, train: tuple[torch.Tensor, torch.Tensor] | None = None, seed: int = 0,
           method: str = "autoencoder", base: str = "standard", epochs: int = 5, lr: float = 0.1,
           batch_size: int = 100, corruption: float = 0.0, tied: bool = True) -> dict:
    """Greedy layer-wise pre-training of `model` on the training split `train` = (x, y);
    returns the report described in the module docstring."""
    if method not in METHODS:
        raise ValueError(f"greedy pre-training method {method!r} is not valid; valid: {', '.join(METHODS)}")
    if base == "greedy":
        raise ValueError("greedy pre-training needs a base initializer other than greedy")
    if train is None:
        raise ValueError("greedy pre-training needs the training split")
    if epochs < 1 or not lr > 0 or batch_size < 1 or not 0 <= corruption < 1:
        raise ValueError(f"greedy pre-training needs epochs >= 1, lr > 0, batch_size >= 1 and 0 <= corruption < 1; "
                         f"got epochs={epochs}, lr={lr}, batch_size={batch_size}, corruption={corruption}")
    INITS.build(base, model, batch)
    lead, blocks, readout = mlp_parts(model)
    x, y = train
    gen = seeds.generator(seed, "pretrain")
    h = run_blocks(lead, x)
    stages = []
    was_training = model.training
    model.train()
    for k, block in enumerate(blocks):
        stage = train_stage(block, h, y, method=method, n_out=readout.out_features, base=base, epochs=epochs, lr=lr,
                            batch_size=batch_size, corruption=corruption, tied=tied, generator=gen)
        stages.append({"layer": k, **stage})
        h = run_blocks(block, h)
    model.train(was_training)
    return {"method": method, "base": base, "updates": sum(s["updates"] for s in stages), "stages": stages}
