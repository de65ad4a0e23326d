"""Synthetic tasks: the long-memory problems of Hochreiter & Schmidhuber (1997) as
generated in Pascanu et al.'s code, and the target of the single-unit recurrent model
of Pascanu, Mikolov & Bengio (2013), Fig. 6.

Datasets (registered in oplab.dataset.DATASETS; each is a pure function of its
options, `seed` included, so a trial's data never depends on the trial's seed):

- `temporal_order`: 6 one-hot symbols a step; {A, B} (channels 0, 1) appear once at
  a position in [0.1 L, 0.2 L) and once in [0.5 L, 0.6 L), distractors {c, d, e, f}
  (channels 2-5) elsewhere; the class (0..3) is the order AA, BA, AB, BB, i.e.
  v0 + 2 v1 as in Pascanu's `tempOrder.py`.
- `adding`: 2 channels a step, channel 1 uniform in [0, 1), channel 0 a marker that is
  1 at one position in [0, 0.1 L) and one in [0.1 L, 0.5 L); the regression target is
  the mean of the two marked values, as in Pascanu's `addition.py`. (Pascanu draws a
  length in [L, 1.1 L) per minibatch; a dataset here holds one tensor, so every
  sequence has length L.)
- `single_unit_target`: one dummy example whose target is the single unit's goal
  (0.7); the `single_unit` model ignores its input, so the mean-squared error on it is
  exactly the paper's error (sigmoid(x_T) - 0.7)^2.

Pascanu et al. draw a fresh minibatch every update; here the training split is a
fixed sample of `n_train` sequences (large enough that the net cannot memorize it at
the budgets used) and the test split a separate fixed sample.

The single-unit model itself and its exact loss surface (`single_unit_grid`,
`wall_ratio`, `single_unit_wall_b` and the constants `SINGLE_UNIT_T`,
`SINGLE_UNIT_X0`, `SINGLE_UNIT_TARGET`) live in oplab.models, beside `SingleUnit`.
"""

from __future__ import annotations

import numpy as np
import torch

from oplab import models
from oplab.dataset import DATASETS, Dataset

# --- the long-memory tasks


def temporal_order_arrays(n: int, length: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """n sequences (n, length, 6) one-hot float32 and their classes (n,) int64.

    Same draws, in the same order, as Pascanu's TempOrderTask.generate(n, length),
    returned batch-first."""
    if length < 10:
        raise ValueError(f"temporal order needs length >= 10, got {length}")
    lo = int(length * 0.1)
    p0 = rng.randint(lo, size=(n,)) + lo
    v0 = rng.randint(2, size=(n,))
    p1 = rng.randint(lo, size=(n,)) + int(length * 0.5)
    v1 = rng.randint(2, size=(n,))
    vals = rng.randint(4, size=(length, n)) + 2  # distractors c, d, e, f
    vals[p0, np.arange(n)] = v0
    vals[p1, np.arange(n)] = v1
    x = np.zeros((length, n, 6), dtype=np.float32)
    x.reshape(length * n, 6)[np.arange(length * n), vals.ravel()] = 1.0
    return np.ascontiguousarray(x.transpose(1, 0, 2)), (v0 + 2 * v1).astype(np.int64)


def adding_arrays(n: int, length: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
    """n sequences (n, length, 2) float32 and their targets (n, 1) float32 (fixed length)."""
    if length < 10:
        raise ValueError(f"adding problem needs length >= 10, got {length}")
    p0 = rng.randint(int(length * 0.1), size=(n,))
    p1 = rng.randint(int(length * 0.4), size=(n,)) + int(length * 0.1)
    x = rng.uniform(size=(length, n, 2)).astype(np.float32)
    x[:, :, 0] = 0.0
    x[p0, np.arange(n), 0] = 1.0
    x[p1, np.arange(n), 0] = 1.0
    y = (x[p0, np.arange(n), 1] + x[p1, np.arange(n), 1]) / 2.0
    return np.ascontiguousarray(x.transpose(1, 0, 2)), y.reshape(-1, 1).astype(np.float32)


@DATASETS.register("temporal_order")
def temporal_order(*, length: int = 50, n_train: int = 5000, n_test: int = 1000, seed: int = 1234) -> Dataset:
    """Temporal order problem (4 classes) of sequence `length`; train and test drawn from
    one RandomState(seed), train first."""
    rng = np.random.RandomState(seed)
    xtr, ytr = temporal_order_arrays(n_train, length, rng)
    xte, yte = temporal_order_arrays(n_test, length, rng)
    return Dataset(f"temporal_order(L={length})", torch.from_numpy(xtr), torch.from_numpy(ytr),
                   torch.from_numpy(xte), torch.from_numpy(yte), "classification", 4)


@DATASETS.register("adding")
def adding(*, length: int = 50, n_train: int = 5000, n_test: int = 1000, seed: int = 1234) -> Dataset:
    """Adding problem (regression, 1 output) of sequence `length`."""
    rng = np.random.RandomState(seed)
    xtr, ytr = adding_arrays(n_train, length, rng)
    xte, yte = adding_arrays(n_test, length, rng)
    return Dataset(f"adding(L={length})", torch.from_numpy(xtr), torch.from_numpy(ytr),
                   torch.from_numpy(xte), torch.from_numpy(yte), "regression", 1)


# success thresholds of Pascanu's code: a temporal-order sequence is an error when the
# argmax is wrong; an adding sequence is an error when its squared error exceeds 0.04
ADDING_ERROR_SQ = 0.04


# --- the single recurrent unit's target (Pascanu et al. 2013, Fig. 6; the unit and its math: oplab.models)


@DATASETS.register("single_unit_target")
def single_unit_target(*, target: float = models.SINGLE_UNIT_TARGET) -> Dataset:
    """One dummy input (ignored by the model) with the unit's target; same example in both splits."""
    x = torch.zeros(1, 1, dtype=torch.float64)
    y = torch.full((1, 1), float(target), dtype=torch.float64)
    return Dataset("single_unit_target", x, y, x.clone(), y.clone(), "regression", 1)
