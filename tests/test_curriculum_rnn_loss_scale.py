"""curriculum_rnn's loss scale: the scored share of an addition stream (oplab.tasks) against brute
force, and the full budget's rate scaling (lr x k, clip / k on the mean loss) against the authors'
update (lr, clip, on k times the mean loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oplab import models, optim, streamtask, tasks
from oplab.config import ModelConfig, OptimConfig
from studies import curriculum_rnn as study

TASK = tasks.STREAMS.build("addition")


@pytest.mark.parametrize("d", [1, 2, 3])
def test_scored_share_is_the_brute_force_share(d):
    """Every pair (a, b) in [1, 10^d]^2: mean scored characters (the sum's digits and ".") over mean
    characters ("a+b=" and the scored ones), as the strings the task encodes."""
    n = 10**d
    a, b = np.meshgrid(np.arange(1, n + 1), np.arange(1, n + 1))
    prompts, answers = TASK.strings(a.ravel(), b.ravel())
    scored = np.mean([len(s) for s in answers])
    total = scored + np.mean([len(p) for p in prompts])
    assert np.isclose(TASK.scored_share(d), scored / total, rtol=1e-12)


def test_the_full_budgets_rate_is_the_authors_update():
    """One SGD update on the same batch: lr 0.5 k and clip 5/k on our mean loss moves the weights
    as lr 0.5 and clip 5 on k times it (the authors' scale), whether or not the clip binds."""
    target = 6
    k = study.loss_scale(target)
    full = study.arms("full")[f"combined target={target}"].trial.optim
    assert np.isclose(full.lr, 0.5 * k) and np.isclose(full.clip_threshold, 5.0 / k)
    batch = TASK.batch(np.full(8, target), np.random.default_rng(0))
    for clip in (5.0, 1e-3):  # the authors' threshold, and one that surely binds
        moved = []
        for scale, cfg in ((1.0, OptimConfig("sgd", lr=0.5 * k, clip="norm", clip_threshold=clip / k)),
                           (k, OptimConfig("sgd", lr=0.5, clip="norm", clip_threshold=clip))):
            torch.manual_seed(0)
            model = models.build(ModelConfig("char_lstm", 1, 8), (len(TASK.vocab),), len(TASK.vocab)).double()
            params = list(model.parameters())
            start = torch.cat([p.detach().ravel() for p in params])
            opt, _ = optim.build(params, cfg, 1)
            loss, _ = streamtask.scored_loss(model, batch)
            opt.zero_grad()
            (scale * loss).backward()
            optim.clip_gradients(params, cfg)
            opt.step()
            moved.append(torch.cat([p.detach().ravel() for p in params]) - start)
        # equal up to the 1e-6 that torch's norm clipping adds to the norm it divides by
        assert moved[0].abs().max() > 0 and torch.allclose(moved[0], moved[1], rtol=1e-5, atol=0)
