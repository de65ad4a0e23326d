"""Synthetic tasks: the long-memory problems of Hochreiter & Schmidhuber (1997) as
generated in Pascanu et al.'s code, and the single-unit recurrent model of Pascanu,
Mikolov & Bengio (2013), Fig. 6.

Datasets (registered in oplab.data.DATASETS; each is a pure function of its
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

The single-unit model `x_t = w sigmoid(x_{t-1}) + b`, x_0 = 0.5, T = 50, error
E = (sigmoid(x_T) - 0.7)^2. `single_unit_grid` evaluates E and its exact gradient
(forward-mode recurrences for dx_t/dw and dx_t/db, float64) over a (w, b) grid in
one vectorized pass. The loss surface drawn in a study's figure and the "wall
exists" check are this deterministic function, not trained records.
"""

from __future__ import annotations

import numpy as np
import torch

from oplab.data import DATASETS, Dataset

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


# --- the single recurrent unit (Pascanu et al. 2013, Fig. 6)

SINGLE_UNIT_T = 50
SINGLE_UNIT_X0 = 0.5
SINGLE_UNIT_TARGET = 0.7


@DATASETS.register("single_unit_target")
def single_unit_target(*, target: float = SINGLE_UNIT_TARGET) -> Dataset:
    """One dummy input (ignored by the model) with the unit's target; same example in both splits."""
    x = torch.zeros(1, 1, dtype=torch.float64)
    y = torch.full((1, 1), float(target), dtype=torch.float64)
    return Dataset("single_unit_target", x, y, x.clone(), y.clone(), "regression", 1)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def single_unit_grid(w, b, steps: int = SINGLE_UNIT_T, x0: float = SINGLE_UNIT_X0,
                     target: float = SINGLE_UNIT_TARGET) -> dict[str, np.ndarray]:
    """Error E = (sigmoid(x_T) - target)^2 and its gradient at every (w, b) (arrays broadcast
    together), by forward-mode differentiation of the recurrence in float64.

    Returns dict(loss, dw, db, grad_norm, x_T), each of the broadcast shape."""
    w, b = np.broadcast_arrays(np.asarray(w, dtype=np.float64), np.asarray(b, dtype=np.float64))
    x = np.full(w.shape, float(x0))
    dxdw = np.zeros(w.shape)
    dxdb = np.zeros(w.shape)
    for _ in range(steps):
        s = _sigmoid(x)
        ds = s * (1.0 - s)
        # x_t = w s(x_{t-1}) + b: differentiate before overwriting x
        dxdw, dxdb = s + w * ds * dxdw, 1.0 + w * ds * dxdb
        x = w * s + b
    s = _sigmoid(x)
    r = s - target
    dEdx = 2.0 * r * s * (1.0 - s)
    dw, db = dEdx * dxdw, dEdx * dxdb
    return {"loss": r**2, "dw": dw, "db": db, "grad_norm": np.hypot(dw, db), "x_T": x}


def wall_ratio(grid: dict[str, np.ndarray]) -> float:
    """max / median gradient norm on a grid: large when a thin wall of huge gradients crosses it."""
    g = grid["grad_norm"][np.isfinite(grid["grad_norm"])]
    return float(np.max(g) / np.median(g))


def single_unit_wall_b(w: float, steps: int = SINGLE_UNIT_T, x0: float = SINGLE_UNIT_X0,
                       target: float = SINGLE_UNIT_TARGET, half_width: float = 0.05, n: int = 20001) -> float:
    """The bias b at which the unit, for this w, sits on the wall: the largest gradient norm on a
    fine scan of b across the line b = x0 - w sigmoid(x0), where x_0 is a fixed point of the map
    (for w > 1 / sigmoid'(x0), about 4.25, that fixed point is unstable and x_T jumps between the
    two stable ones as b crosses the line)."""
    centre = x0 - w * float(_sigmoid(np.asarray(x0)))
    b = centre + np.linspace(-half_width, half_width, n)
    g = single_unit_grid(w, b, steps, x0, target)["grad_norm"]
    return float(b[int(np.nanargmax(g))])
