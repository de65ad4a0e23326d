"""Optimizers by name, learning-rate schedules, gradient clipping, iterate averaging."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from oplab.config import OptimConfig
from oplab.registry import Registry

OPTIMIZERS = Registry("optimizer")
SCHEDULES = Registry("schedule")
CLIPS = ("none", "norm", "value")


@OPTIMIZERS.register("sgd")
def sgd(params: Iterable, *, lr, momentum, weight_decay, nesterov: bool = False) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)


@OPTIMIZERS.register("adam")
def adam(params: Iterable, *, lr, momentum, weight_decay, beta2: float = 0.999,
         eps: float = 1e-8) -> torch.optim.Optimizer:
    # `momentum` is Adam's beta1 (0 in the config means the usual 0.9)
    return torch.optim.Adam(params, lr=lr, betas=(momentum or 0.9, beta2), eps=eps, weight_decay=weight_decay)


@OPTIMIZERS.register("rmsprop")
def rmsprop(params: Iterable, *, lr, momentum, weight_decay, alpha: float = 0.9,
            eps: float = 1e-6) -> torch.optim.Optimizer:
    """RMSProp (Tieleman & Hinton 2012); alpha is the decay of the squared-gradient average
    (0.9 as in Hinton's lecture; torch's own default is 0.99)."""
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=eps, momentum=momentum, weight_decay=weight_decay)


@SCHEDULES.register("constant")
def constant(total_steps: int) -> Callable[[int], float]:
    return lambda step: 1.0


@SCHEDULES.register("linear_decay")
def linear_decay(total_steps: int, *, start: float = 0.5) -> Callable[[int], float]:
    """Constant, then linear decay to 0 over the last (1 - start) of training
    (Salimans & Kingma's CIFAR schedule uses start = 0.5)."""
    begin = int(start * total_steps)
    return lambda step: 1.0 if step < begin else max(0.0, (total_steps - step) / max(1, total_steps - begin))


@SCHEDULES.register("cosine")
def cosine(total_steps: int) -> Callable[[int], float]:
    return lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


@SCHEDULES.register("step")
def step_decay(total_steps: int, *, every: float = 0.33, factor: float = 0.1) -> Callable[[int], float]:
    """Multiply by `factor` after every `every` fraction of training."""
    period = max(1, int(every * total_steps))
    return lambda step: factor ** (step // period)


def build(params: Iterable, cfg: OptimConfig, total_steps: int):
    """(optimizer, scheduler) of a trial config; the scheduler steps once per update."""
    if cfg.clip not in CLIPS:
        raise ValueError(f"clip {cfg.clip!r} is not valid; valid: {', '.join(CLIPS)}")
    # options prefixed `schedule_` go to the schedule, the rest to the optimizer
    sched_opts = {k[len("schedule_"):]: v for k, v in cfg.opts.items() if k.startswith("schedule_")}
    opt_opts = {k: v for k, v in cfg.opts.items() if not k.startswith("schedule_")}
    opt = OPTIMIZERS.build(cfg.name, params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, **opt_opts)
    factor = SCHEDULES.build(cfg.schedule, total_steps, **sched_opts)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


def clip_gradients(params: list[torch.Tensor], cfg: OptimConfig) -> tuple[float, bool]:
    """Clip in place as configured; return (gradient norm before clipping, whether it clipped)."""
    norm, clipped = clip_gradients_(params, cfg)
    return float(norm), bool(clipped)


def clip_gradients_(params: list[torch.Tensor], cfg: OptimConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Clip in place as configured; return (gradient norm before clipping, whether it clipped) as
    0-d tensors on the gradients' device, with no host sync. The norm is measured once and reused
    by norm clipping (torch's clip_grad_norm_ in two parts)."""
    grads = [p.grad for p in params if p.grad is not None]
    total = torch.nn.utils.get_total_norm(grads, 2.0)
    if cfg.clip == "norm":
        torch.nn.utils.clip_grads_with_norm_(params, cfg.clip_threshold, total)
        return total, total > cfg.clip_threshold
    if cfg.clip == "value":
        clipped = torch.stack([(g.abs() > cfg.clip_threshold).any() for g in grads]).any()
        torch.nn.utils.clip_grad_value_(params, cfg.clip_threshold)
        return total, clipped
    return total, torch.zeros((), dtype=torch.bool, device=total.device)


def step(loss: torch.Tensor, params: list[torch.Tensor], opt: torch.optim.Optimizer,
         cfg: OptimConfig, outputs: Callable | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One update from a minibatch loss with no host sync: backward, clip as configured, step.
    Returns (loss, gradient norm before clipping, whether it clipped) as 0-d tensors. It steps even
    when the loss or the gradient is not finite: the caller checks the values it gets back (every
    few updates, in one transfer) and discards the model from the first non-finite one on.
    `outputs`: a closure giving the minibatch's outputs and the loss as a function of them, passed to an
    optimizer that asks for it (`wants_outputs`: oplab.hessianfree's curvature products); never called
    for the others."""
    loss.backward()
    grad_norm, clipped = clip_gradients_(params, cfg)
    if getattr(opt, "wants_outputs", False):
        opt.step(outputs)
    else:
        opt.step()
    return loss.detach(), grad_norm, clipped


def update(loss: torch.Tensor, params: list[torch.Tensor], opt: torch.optim.Optimizer,
           cfg: OptimConfig) -> tuple[float, float, bool] | None:
    """One update from a minibatch loss, checked at once (two host syncs): backward, clip as
    configured, step. Returns (loss value, gradient norm before clipping, whether it clipped), or
    None when the loss or the gradient norm is not finite, in which case nothing is stepped (the
    caller records a divergence). For short stages and per-step loops; the main loop uses `step`."""
    value = float(loss.detach())
    if not math.isfinite(value):
        return None
    loss.backward()
    grad_norm, clipped = clip_gradients(params, cfg)
    if not math.isfinite(grad_norm):
        return None
    opt.step()
    return value, grad_norm, clipped


def averaged(model: nn.Module, decay: float) -> AveragedModel:
    """An exponential moving average of the iterates: theta_bar <- decay theta_bar + (1 - decay) theta,
    starting from the first update's iterate (torch's AveragedModel); buffers are averaged too."""
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
