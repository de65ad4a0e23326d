"""Batch growth (Smith, Kindermans, Ying & Le 2018): the batch size grows during training instead
of the learning rate decaying. The dataset task draws each update's batch at the size planned here
and evaluates once an epoch of examples, whatever the batch.
"""

from __future__ import annotations

from oplab.config import Trial


def batch_plan(trial: Trial, n: int) -> list[int] | None:
    """The batch size of every update of a trial whose batch grows (Trial.batch_growth), else None:
    the batch is multiplied by batch_growth after every batch_every fraction of the epochs x n
    training examples, capped at n; the last update may overrun the budget by less than a batch."""
    if not trial.grows_batch:
        return None
    total = trial.epochs * n
    period = trial.batch_every * total
    sizes, seen = [], 0
    while seen < total:
        sizes.append(min(n, round(trial.batch_size * trial.batch_growth ** int(seen // period))))
        seen += sizes[-1]
    return sizes
