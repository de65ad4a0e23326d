"""FitNets' knowledge distillation and hint primitives (Romero et al. 2015, arXiv 1412.6550).

Knowledge distillation as FitNets uses it (paper sec. 2.1 and the authors' KDCost.py):
    loss = CE(y, P_S) + lambda * CE(P_T^tau, P_S^tau),   P^tau = softmax(logits / tau),
with CE(p, q) = -sum_i p_i log q_i averaged over the batch, tau = 3, and no tau^2 factor on the
soft term (unlike Hinton et al. 2015): the authors divide the last layer's parameters by tau and
add lambda_target * CE(y) + lambda_teach * CE(teacher) with lambda_target = 1. lambda decays
linearly over training (the paper: 4 to 1; the authors' MNIST config decays it per epoch from 4
to 0, their TeacherDecayOverEpoch); `kd_lambda` is that schedule, per step here.

Hints (stage 1): the student's guided layer (its middle hidden layer) is trained to regress the
teacher's hint layer (its middle hidden layer) through a regressor: fully connected for flat
features; for feature maps a convolution (no padding) with kernel N_guided - N_hint + 1 so the
output has the hint's spatial size (the authors' generateConvRegressor), followed by the hint
layer's nonlinearity. Loss 1/2 ||hint - r(guided)||^2: see `hint_loss` for the reduction.

`forward_to` and `middle_block` find hidden blocks in the nn.Sequential models of `oplab.models`
(every hidden block `weight layer -> norm -> activation`), after `oplab.norms.apply` too.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from oplab import seeds
from oplab.models import ACTIVATIONS, probing
from oplab.net2net import hidden_blocks


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor, lam: float,
            tau: float = 3.0) -> torch.Tensor:
    """CE(y, P_S) + lam * CE(P_T^tau, P_S^tau), each cross-entropy averaged over the batch; no tau^2
    factor (the paper's eq. and the authors' KDCost). The teacher's logits are detached. With
    lam == 0 this is exactly F.cross_entropy(student_logits, y)."""
    if tau <= 0:
        raise ValueError(f"tau must be > 0; got {tau}")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ in shape")
    hard = F.cross_entropy(student_logits, y)
    if lam == 0:
        return hard
    p_t = F.softmax(teacher_logits.detach() / tau, dim=1)
    soft = -(p_t * F.log_softmax(student_logits / tau, dim=1)).sum(dim=1).mean()
    return hard + lam * soft


def kd_lambda(step: int, total: int, start: float = 4.0, end: float = 1.0) -> float:
    """The distillation weight at `step` of `total`: linear from `start` (step 0) to `end`
    (step total), held at `end` afterwards. The paper decays 4 to 1; the authors' code decays per
    epoch (their MNIST config: 4 to 0)."""
    if total <= 0:
        raise ValueError(f"total must be > 0; got {total}")
    if step < 0:
        raise ValueError(f"step must be >= 0; got {step}")
    frac = min(step, total) / total
    return float(start + (end - start) * frac)


class HintRegressor(nn.Module):
    """Maps the student's guided-layer output to the teacher's hint-layer shape.

    `guided_shape`, `hint_shape`: per-example shapes (no batch dim). Both (C, H, W): a Conv2d from
    C_guided to C_hint channels with kernel (H_g - H_h + 1, W_g - W_h + 1) and no padding, so the
    output's spatial size is the hint's (the authors' convolutional regressor; a guided map smaller
    than the hint map is refused, as in their code). Otherwise: a Linear from the flattened guided
    features to the flattened hint, reshaped to `hint_shape` (the fully connected regressor).
    Then `activation` (an oplab.models.ACTIVATIONS name): the hint layer's nonlinearity."""

    def __init__(self, guided_shape: tuple[int, ...], hint_shape: tuple[int, ...], activation: str):
        super().__init__()
        self.guided_shape, self.hint_shape = tuple(guided_shape), tuple(hint_shape)
        if len(self.guided_shape) == 3 and len(self.hint_shape) == 3:
            (cg, hg, wg), (ch, hh, wh) = self.guided_shape, self.hint_shape
            if hg < hh or wg < wh:
                raise ValueError(f"the guided map {hg}x{wg} is smaller than the hint map {hh}x{wh}: a convolutional "
                                 "regressor without padding cannot grow it; guide a larger layer or use a flat shape")
            self.regressor: nn.Module = nn.Conv2d(cg, ch, (hg - hh + 1, wg - wh + 1))
        else:
            self.regressor = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(self.guided_shape),
                                                                   math.prod(self.hint_shape)))
        self.activation = ACTIVATIONS.build(activation)

    def forward(self, guided: torch.Tensor) -> torch.Tensor:
        if tuple(guided.shape[1:]) != self.guided_shape:
            raise ValueError(f"guided features of shape {tuple(guided.shape[1:])}; this regressor expects "
                             f"{self.guided_shape}")
        r = self.regressor(guided)
        return self.activation(r.view(-1, *self.hint_shape))


def hint_loss(hint: torch.Tensor, regressed: torch.Tensor) -> torch.Tensor:
    """1/2 ||hint - regressed||^2, summed over every feature of an example (channels and positions)
    and averaged over the batch. The hint (teacher) is detached.

    For flat hints this is the authors' HintCost exactly (0.5 (hint - r)^2, summed over axis 1,
    then the mean). For feature maps their code sums over axis 1 of a ('c', 0, 1, 'b') tensor
    and averages over the other axes, a layout-dependent constant factor (1 / (C W)) below this
    sum; we sum over all features, as the paper's norm reads."""
    if hint.shape != regressed.shape:
        raise ValueError(f"hint {tuple(hint.shape)} and regressed {tuple(regressed.shape)} differ in shape")
    diff = hint.detach() - regressed
    return 0.5 * diff.pow(2).flatten(1).sum(dim=1).mean()


def n_blocks(model: nn.Module) -> int:
    """The number of hidden blocks (`weight layer -> norm -> activation`) of an mlp/convnet."""
    return len(hidden_blocks(model))


def middle_block(model: nn.Module) -> int:
    """The index of the middle hidden block, n // 2 of n (0-based): FitNets' hint/guided layer.
    n // 2 matches the authors' MNIST config (hints [[3, 1]]: block 3 of the 6-layer student,
    block 1 of the 3-layer teacher)."""
    return n_blocks(model) // 2


def forward_to(model: nn.Module, x: torch.Tensor, k: int) -> torch.Tensor:
    """The output of hidden block `k`'s activation on `x`: the model's children run in order up to
    it (the same modules as model[:i + 1], in the model's current train/eval mode)."""
    blocks = hidden_blocks(model)
    if not 0 <= k < len(blocks):
        raise ValueError(f"hidden block {k} is out of range; valid: 0 to {len(blocks) - 1}")
    children = list(model.children())
    for m in children[:blocks[k].act + 1]:
        x = m(x)
    return x


@torch.no_grad()
def block_shape(model: nn.Module, input_shape: tuple[int, ...], k: int) -> tuple[int, ...]:
    """The per-example shape of hidden block `k`'s output for inputs of `input_shape` (one forward
    of a zero batch in eval mode; buffers and mode left as they were)."""
    p = next(model.parameters())
    with probing(model, train=False):
        out = forward_to(model, torch.zeros(1, *input_shape, dtype=p.dtype, device=p.device), k)
    return tuple(out.shape[1:])


def hint_stage(student: nn.Module, teacher: nn.Module, trial, x_train: torch.Tensor, seed: int) -> dict:
    """FitNets' stage 1, in place on `student`: for `trial.distill.hint_steps` updates, the student's
    blocks up to its guided block (default: the middle one) and a new `HintRegressor` minimize
    `hint_loss(teacher's hint block, regressor(student's guided block))` with the trial's
    optimizer kind, learning rate `hint_lr` (0: the trial's) held constant, the trial's batch size
    and gradient clipping, on batches from a generator seeded by the trial's seed. The regressor is
    then dropped. Returns a report: blocks, regressor, updates, the mean hint loss of the first and
    last 10 updates, and status ("diverged" at a non-finite loss or gradient)."""
    import dataclasses

    from oplab import data as datalib
    from oplab import optim

    cfg = trial.distill
    g = middle_block(student) if cfg.guided_block < 0 else cfg.guided_block
    h = middle_block(teacher) if cfg.hint_block < 0 else cfg.hint_block
    for name, k, m in (("guided_block", g, student), ("hint_block", h, teacher)):
        if not 0 <= k < n_blocks(m):
            raise ValueError(f"distill {name} {k} is out of range; valid: 0 to {n_blocks(m) - 1} (or -1: the middle)")
    device = x_train.device
    guided_shape = block_shape(student, tuple(x_train.shape[1:]), g)
    hint_shape = block_shape(teacher, tuple(x_train.shape[1:]), h)
    regressor = HintRegressor(guided_shape, hint_shape, trial.teacher.model.activation).to(device)
    lower = [p for m in list(student.children())[: hidden_blocks(student)[g].act + 1] for p in m.parameters()]
    params = [p for p in lower if p.requires_grad] + list(regressor.parameters())
    ocfg = dataclasses.replace(trial.optim, lr=cfg.hint_lr or trial.optim.lr, schedule="constant",
                               options={k: v for k, v in trial.optim.opts.items() if not k.startswith("schedule_")})
    opt, _ = optim.build(params, ocfg, cfg.hint_steps)
    batches = datalib.batches(len(x_train), trial.batch_size, seeds.generator(seed, "hints"))
    losses: list[float] = []
    status = "ok"
    student.train()
    for _ in range(cfg.hint_steps):
        x = x_train[next(batches).to(device)]
        with torch.no_grad():
            hint = forward_to(teacher, x, h)
        opt.zero_grad(set_to_none=True)
        loss = hint_loss(hint, regressor(forward_to(student, x, g)))
        done = optim.update(loss, params, opt, trial.optim)
        if done is None:
            status = "diverged"
            break
        losses.append(done[0])
    return {"guided_block": g, "hint_block": h, "guided_shape": list(guided_shape), "hint_shape": list(hint_shape),
            "regressor": type(regressor.regressor).__name__ if not isinstance(regressor.regressor, nn.Sequential)
            else "Linear", "updates": len(losses), "status": status,
            "loss_first10": float(np.mean(losses[:10])) if losses else None,
            "loss_last10": float(np.mean(losses[-10:])) if losses else None}


class KD:
    """Knowledge distillation in the loop (FitNets' stage 2, or plain KD): each update's loss is
    kd_loss of the student's and the frozen teacher's outputs, lambda going from lam_start to lam_end
    over the updates (linear) or held at lam_start (constant)."""

    def __init__(self, teacher: nn.Module, cfg, total_steps: int):
        self.teacher, self.cfg, self.total = teacher, cfg, total_steps

    def loss(self, model: nn.Module, batch, step: int) -> torch.Tensor:
        x, y = batch[0], batch[1]
        with torch.no_grad():
            teacher_out = self.teacher(x)
        c = self.cfg
        lam = kd_lambda(step - 1, self.total, c.lam_start, c.lam_end) if c.lam_schedule == "linear" else c.lam_start
        return kd_loss(model(x), teacher_out, y, lam, c.tau)
