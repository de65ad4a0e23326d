"""Every random stream a trial draws from, derived from (seed, purpose) in one place.

A trial's seed starts torch's global generator (weights at init, dropout-free training draws
nothing else from it) and the streams below, each its own generator so that one purpose never
shifts another's draws: adding a monitor does not change the batch order, and a pre-training
stage does not change the fine-tuning batches. The offsets are arbitrary primes; what matters is
that each purpose has its own and that they never change (a changed offset changes every number
of the trials that use it).
"""

from __future__ import annotations

import numpy as np
import torch

OFFSETS = {
    "init": 0,  # torch's global generator: weights at init (torch.manual_seed)
    "batches": 0,  # the training order: a permutation a pass over the train split (oplab.data.batches)
    "stream": 0,  # a generated task's training examples (numpy; oplab.tasks' streams)
    "fixed_batches": 10_007,  # the batch data-dependent init sees, and the monitors' probe batch apart from it
    "pretrain": 7_919,  # greedy layer-wise pre-training's batch order (oplab.pretrain)
    "hints": 20_011,  # FitNets' stage-1 batch order (oplab.distill)
    "net2net": 30_011,  # Net2Net's noise on grown weights (oplab.init)
    "labels": 40_009,  # the labeled subset of a scarce-label trial and its validation part (oplab.labels)
}


def derive(seed: int, purpose: str) -> int:
    """The seed of `purpose`'s stream for a trial of seed `seed`."""
    try:
        return seed + OFFSETS[purpose]
    except KeyError:
        raise KeyError(f"unknown random stream {purpose!r}; valid: {', '.join(OFFSETS)}") from None


def generator(seed: int, purpose: str, device: torch.device | str | None = None) -> torch.Generator:
    """A torch generator for `purpose` (on `device` when given: the batch order is drawn where the data is)."""
    gen = torch.Generator(device=device) if device is not None else torch.Generator()
    return gen.manual_seed(derive(seed, purpose))


def numpy_rng(seed: int, purpose: str) -> np.random.Generator:
    return np.random.default_rng(derive(seed, purpose))


def start(seed: int) -> None:
    """Seed torch's global generator for a trial (weights at init)."""
    torch.manual_seed(derive(seed, "init"))
