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
- `least_squares`: noisy linear regression, y = x . w* + noise e with x ~ N(0, I), a convex
  problem on which plain SGD at a constant rate bounces around the minimum and the average of
  its iterates does not (`least_squares_risk` gives a linear model's exact expected test error).
- `single_unit_target`: one dummy example whose target is the single unit's goal
  (0.7); the `single_unit` model ignores its input, so the mean-squared error on it is
  exactly the paper's error (sigmoid(x_T) - 0.7)^2.

Pascanu et al. draw a fresh minibatch every update; here the training split is a
fixed sample of `n_train` sequences (large enough that the net cannot memorize it at
the budgets used) and the test split a separate fixed sample.

The single-unit model itself and its exact loss surface (`single_unit_grid`,
`wall_ratio`, `single_unit_wall_b` and the constants `SINGLE_UNIT_T`,
`SINGLE_UNIT_X0`, `SINGLE_UNIT_TARGET`) live in oplab.models, beside `SingleUnit`.

Stream tasks (registered in `STREAMS`, at the end of this file; trained by oplab.streamtask):
`addition`, the character-level addition of Learning to Execute, generated per update at a
difficulty a curriculum chooses, with held-out examples that training never draws.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from oplab import models
from oplab.dataset import DATASETS, Dataset
from oplab.registry import Registry

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



# --- noisy least squares (a convex problem for iterate averaging; Polyak & Juditsky 1992)


def least_squares_truth(*, dim: int = 10, seed: int = 1234) -> np.ndarray:
    """The true weights w* ~ N(0, I / dim) of `least_squares` (the first draw of RandomState(seed))."""
    return np.random.RandomState(seed).normal(size=dim) / np.sqrt(dim)


def least_squares_risk(w: np.ndarray, b: float, *, dim: int = 10, noise: float = 1.0, seed: int = 1234) -> float:
    """The expected squared error of the linear model x . w + b on a fresh example of `least_squares`
    (x ~ N(0, I)): ||w - w*||^2 + b^2 + noise^2, exact, without a test sample's noise."""
    w_star = least_squares_truth(dim=dim, seed=seed)
    return float(np.sum((np.asarray(w, dtype=float) - w_star) ** 2) + float(b) ** 2 + noise**2)


@DATASETS.register("least_squares")
def least_squares(*, dim: int = 10, noise: float = 1.0, n_train: int = 1000, n_test: int = 1000,
                  seed: int = 1234) -> Dataset:
    """Linear regression y = x . w* + noise e, with x ~ N(0, I_dim), e ~ N(0, 1) and w* from
    least_squares_truth; one RandomState(seed) draws w*, then train, then test."""
    rng = np.random.RandomState(seed)
    w_star = rng.normal(size=dim) / np.sqrt(dim)

    def split(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = rng.normal(size=(n, dim))
        y = x @ w_star + noise * rng.normal(size=n)
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y.reshape(-1, 1).astype(np.float32))

    xtr, ytr = split(n_train)
    xte, yte = split(n_test)
    return Dataset(f"least_squares(d={dim}, noise={noise:g})", xtr, ytr, xte, yte, "regression", 1)

# --- addition as character-level sequence to sequence (Zaremba & Sutskever 2014, "Learning to Execute")
#
# A stream task: examples are generated on the fly, per update, from a seeded generator, at a
# difficulty (here: operand digits) that a curriculum (oplab.curriculum) chooses per example.
# An example is the character string "a+b=" (the prompt, ending with the go symbol "=") followed by
# the answer's digits and the end symbol "."; a sequence model reads the prompt and emits the rest.
# Operands are uniform in [1, 10^d] for difficulty d, as the authors' `random(10^length)`.
#
# Held-out examples never appear in training: a hash of the pair (a, b) puts every possible
# example in one of HASH_BUCKETS buckets; bucket 0 is the validation split, bucket 1 the test
# split, and the training stream rejects both (so it trains on 8/10 of the example space). The
# exception is the one-digit addition table (both operands <= 10, all of difficulty 1): a level of
# 100 facts cannot lose a fifth of them and still be learned, so the table is training only; the
# test split never holds a table fact, and validation at difficulty 1 (the advance rule's check of
# the first level, as in the authors' code) is a separate seeded draw from the table itself.
# Validation and test sets are drawn from their own seeded streams inside their buckets.

STREAMS = Registry("stream task")

ADD_VOCAB = ("<pad>",) + tuple("0123456789+=.")  # index 0 pads
PAD, PLUS, GO, END = 0, ADD_VOCAB.index("+"), ADD_VOCAB.index("="), ADD_VOCAB.index(".")
HASH_BUCKETS = 10
SPLITS = {"train": None, "validation": 0, "test": 1}  # split -> its hash bucket (train: every other bucket)
TABLE_MAX = 10  # difficulty 1's operands, 1..10: the addition table, training only

_ADD_LOOKUP = np.zeros(256, dtype=np.int64)  # ASCII code -> token id; " " (and anything else) -> PAD
for _i, _c in enumerate(ADD_VOCAB[1:], start=1):
    _ADD_LOOKUP[ord(_c)] = _i
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijective mix of 64-bit integers (wrapping arithmetic)."""
    x = x.astype(np.uint64)
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def example_bucket(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The hash bucket (0..HASH_BUCKETS-1) of each example (a, b): a function of the pair alone."""
    with np.errstate(over="ignore"):
        h = _mix64(_mix64(np.asarray(a, dtype=np.uint64)) ^ np.asarray(b, dtype=np.uint64))
    return (h % np.uint64(HASH_BUCKETS)).astype(np.int64)


def in_table(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether (a, b) is a fact of the one-digit addition table (both operands <= 10, the whole of
    difficulty 1): the table is too small to hold any of it out, so it belongs to training only."""
    return (np.asarray(a) <= TABLE_MAX) & (np.asarray(b) <= TABLE_MAX)


def in_split(a: np.ndarray, b: np.ndarray, split: str) -> np.ndarray:
    """Whether each example (a, b) belongs to `split`: every pair is in exactly one split."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    bucket, table = example_bucket(a, b), in_table(a, b)
    if split == "train":
        return table | (bucket > max(v for v in SPLITS.values() if v is not None))
    return ~table & (bucket == SPLITS[split])


@dataclass(frozen=True)
class SeqBatch:
    """A batch of examples as token tensors (batch, time): `tokens` is prompt + answer + end,
    prompts left-padded so that every go symbol sits at column `prompt_len - 1`, answers right-padded;
    `mask` marks the answer and end positions (the characters a model is scored on)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    prompt_len: int
    difficulty: np.ndarray  # per example

    @property
    def answer_len(self) -> int:
        return self.tokens.shape[1] - self.prompt_len


class AdditionTask:
    """Addition of two d-digit operands, d = the difficulty (1..max_difficulty)."""

    vocab = ADD_VOCAB

    def __init__(self, *, max_difficulty: int = 10, seed: int = 1234):
        if not 1 <= max_difficulty <= 18:  # operands up to 10^18 keep sums inside int64
            raise ValueError(f"addition difficulty must be in 1..18, got {max_difficulty}")
        self.max_difficulty = max_difficulty
        self.seed = seed  # seeds the validation and test streams (the training stream takes the trial's)

    def check(self, difficulty) -> np.ndarray:
        d = np.asarray(difficulty, dtype=np.int64)
        if d.size and (d.min() < 1 or d.max() > self.max_difficulty):
            raise ValueError(f"difficulty must be in 1..{self.max_difficulty}, got {d.min()}..{d.max()}")
        return d

    def operands(self, difficulty, rng: np.random.Generator, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
        """One example (a, b) per entry of `difficulty`, each operand uniform in [1, 10^d], drawn
        from `split`'s part of the example space (rejection: redraw the examples of other splits)."""
        d = self.check(difficulty)
        a, b = np.zeros(len(d), dtype=np.int64), np.zeros(len(d), dtype=np.int64)
        todo = np.arange(len(d))
        while len(todo):
            hi = 10 ** d[todo]
            a[todo], b[todo] = rng.integers(1, hi, endpoint=True), rng.integers(1, hi, endpoint=True)
            todo = todo[~in_split(a[todo], b[todo], split)]
        return a, b

    @staticmethod
    def strings(a: np.ndarray, b: np.ndarray) -> tuple[list[str], list[str]]:
        """Prompts "a+b=" and answers "c." (the answer's digits, then the end symbol)."""
        return [f"{x}+{y}=" for x, y in zip(a.tolist(), b.tolist())], [f"{x + y}." for x, y in zip(a.tolist(),
                                                                                                    b.tolist())]

    def encode(self, a: np.ndarray, b: np.ndarray, difficulty=None) -> SeqBatch:
        prompts, answers = self.strings(a, b)
        p_len, a_len = max(map(len, prompts)), max(map(len, answers))
        # one byte string, a row an example (" " pads), mapped to token ids by a lookup table
        text = "".join(p.rjust(p_len) + s.ljust(a_len) for p, s in zip(prompts, answers))
        codes = np.frombuffer(text.encode("ascii"), dtype=np.uint8).reshape(len(a), p_len + a_len)
        tokens = torch.from_numpy(_ADD_LOOKUP[codes])
        mask = torch.zeros(len(a), p_len + a_len, dtype=torch.bool)
        mask[:, p_len:] = tokens[:, p_len:] != PAD
        d = self.check(difficulty) if difficulty is not None else np.full(len(a), -1)
        return SeqBatch(tokens, mask, p_len, d)

    def batch(self, difficulty, rng: np.random.Generator) -> SeqBatch:
        """A training batch: one example per entry of `difficulty`."""
        a, b = self.operands(difficulty, rng, "train")
        return self.encode(a, b, difficulty)

    def heldout(self, split: str, difficulty: int, n: int) -> SeqBatch:
        """The fixed validation or test set of `n` examples at `difficulty`: a function of the task's
        seed, the split and the difficulty only, the same for every trial."""
        if split not in ("validation", "test"):
            raise ValueError(f"held-out split must be validation or test, got {split!r}")
        if int(difficulty) == 1 and split == "test":
            raise ValueError("difficulty 1 is the addition table, training only: a test set needs difficulty >= 2")
        rng = np.random.default_rng([self.seed, SPLITS[split], int(difficulty)])
        d = np.full(n, int(difficulty))
        a, b = self.operands(d, rng, "train" if int(difficulty) == 1 else split)
        return self.encode(a, b, d)

    def scored_share(self, difficulty: int) -> float:
        """The expected share of characters that are scored (the answer's digits and the end symbol)
        in a stream of examples at `difficulty`, exactly: E[answer + end] / E[prompt + answer + end],
        with both operands uniform in [1, 10^d] (the held-out buckets, a hash of the pair, are
        ignored). The authors' loss sums over a 50-character window a row; this share of it is scored."""
        d = int(self.check(difficulty))
        n = 10**d
        operand = sum((n - 10**j + 1) / n for j in range(d + 1))  # E[digits of a] = sum_j P(a >= 10^j)

        def at_most(t: int) -> int:  # pairs (a, b) in [1, n]^2 with a + b <= t
            if t < 2:
                return 0
            if t <= n + 1:
                return t * (t - 1) // 2
            return n * n - (2 * n - t) * (2 * n - t + 1) // 2 if t < 2 * n else n * n

        total = sum(1 - at_most(10**j - 1) / n**2 for j in range(d + 2))  # E[digits of a + b]
        scored = total + 1  # the end symbol
        return scored / (2 * operand + 2 + scored)  # the prompt: two operands, "+" and "="

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Token rows -> strings, cut at the first end symbol (pads dropped)."""
        out = []
        for row in tokens.tolist():
            s = "".join(self.vocab[t] for t in row if t != PAD)
            out.append(s.split(".")[0] + "." if "." in s else s)
        return out


@STREAMS.register("addition")
def addition(*, max_difficulty: int = 10, seed: int = 1234) -> AdditionTask:
    return AdditionTask(max_difficulty=max_difficulty, seed=seed)
