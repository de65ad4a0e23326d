"""Curriculum schedules: the difficulty each training example is drawn at, for any task whose
examples have an integer difficulty 1..target (Zaremba & Sutskever 2014, "Learning to Execute",
and the authors' code, utils/strategies.lua).

Every schedule keeps a current level, which starts at 1 and advances by one, up to the target, when
the rule fires at a check (every `check_every` updates, run by the training loop). As in the authors'
code (main.lua lines 285-287 at commit 04a1659) the rule fires when either

- the validation accuracy at the current level is above `threshold` (the authors' 0.95), or
- the training accuracy (over the updates since the previous check) is below its value `patience`
  checks earlier (the authors' 5: `#train_accs >= 5 and train_accs[#train_accs - 4] > state_train.acc`).

The history of training accuracies starts afresh whenever the rule fires (the authors' `train_accs =
{}`), and the accuracy of the check at which it fired is its first entry (appended after the
decision, as in main.lua), so the second rule can fire again only `patience` checks later, against
the training accuracy measured just before the level rose. When the rule fires at the target the
level cannot rise; the training loop then decays the learning rate (oplab.streamtask, the authors'
x 0.8). As in the authors' code the level moves under the same rule whatever the strategy; it
decides the draws of the curriculum strategies only:

- baseline: every example at the target;
- naive: every example at the current level;
- mix: every example uniform in 1..target (the target, not the current level);
- combined: each example, with probability 1/5, uniform in 1..target as in mix, else at the current level.

`draw(n, rng)` returns the difficulties of one batch of n examples; `probabilities()` the chance of
each difficulty 1..target for an example drawn at the current level (what a record's level implies
about the training examples); `check(val_acc, train_acc)` applies the rule, says whether the level
rose and leaves in `fired` whether the rule fired (so that the loop can decay the rate at the target).
"""

from __future__ import annotations

import numpy as np

from oplab.registry import Registry

CURRICULA = Registry("curriculum")
THRESHOLD = 0.95  # validation accuracy at the current level that advances it (the authors' 0.95)
PATIENCE = 5  # training accuracy below its value this many checks earlier advances it (the authors' 5; 0: off)
MIX_PROBABILITY = 0.2  # combined: the chance that an example is drawn as in mix (the authors' random(5) == 1)


class Curriculum:
    """A schedule's state (the current level) and the advance rule shared by every strategy."""

    name = ""
    uses_level = False  # whether the draws depend on the current level

    def __init__(self, target: int, threshold: float = THRESHOLD, patience: int = PATIENCE):
        if target < 1:
            raise ValueError(f"a curriculum's target difficulty must be >= 1, got {target}")
        if patience < 0:
            raise ValueError(f"patience must be >= 0 (0: no stagnation rule), got {patience}")
        self.target = int(target)
        self.threshold = float(threshold)
        self.patience = int(patience)
        self.level = 1
        self.train_accs: list[float] = []  # training accuracy at each check since the rule last fired
        self.fired = False  # whether the rule fired at the last check

    @property
    def at_target(self) -> bool:
        return self.level >= self.target

    def stagnated(self, train_accuracy: float) -> bool:
        """The second rule: the training accuracy is below its value `patience` checks earlier."""
        h = self.train_accs
        return self.patience > 0 and len(h) >= self.patience and h[-self.patience] > train_accuracy

    def check(self, accuracy: float, train_accuracy: float | None = None) -> bool:
        """Apply the rule at a check: `accuracy` is the validation accuracy at the current level,
        `train_accuracy` the training accuracy since the previous check (None: the first rule only).
        The level rises by one when the rule fires below the target; return whether it rose."""
        stalled = train_accuracy is not None and self.stagnated(train_accuracy)
        self.fired = bool(accuracy > self.threshold or stalled)
        advanced = self.fired and not self.at_target
        if advanced:
            self.level += 1
        if self.fired:
            self.train_accs = []
        if train_accuracy is not None:
            self.train_accs.append(float(train_accuracy))
        return advanced

    def probabilities(self) -> np.ndarray:
        """P(difficulty = k) for k = 1..target, for an example drawn at the current level."""
        raise NotImplementedError

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _at(self, level: int) -> np.ndarray:
        p = np.zeros(self.target)
        p[level - 1] = 1.0
        return p

    def _uniform(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(1, self.target, size=n, endpoint=True)


@CURRICULA.register("baseline")
class Baseline(Curriculum):
    name = "baseline"

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, self.target, dtype=np.int64)

    def probabilities(self) -> np.ndarray:
        return self._at(self.target)


@CURRICULA.register("naive")
class Naive(Curriculum):
    name = "naive"
    uses_level = True

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, self.level, dtype=np.int64)

    def probabilities(self) -> np.ndarray:
        return self._at(self.level)


@CURRICULA.register("mix")
class Mix(Curriculum):
    name = "mix"

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._uniform(n, rng)

    def probabilities(self) -> np.ndarray:
        return np.full(self.target, 1.0 / self.target)


@CURRICULA.register("combined")
class Combined(Curriculum):
    name = "combined"
    uses_level = True

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mixed = rng.random(n) < MIX_PROBABILITY
        return np.where(mixed, self._uniform(n, rng), self.level).astype(np.int64)

    def probabilities(self) -> np.ndarray:
        return MIX_PROBABILITY / self.target + (1 - MIX_PROBABILITY) * self._at(self.level)


def build(name: str, target: int, threshold: float = THRESHOLD, patience: int = PATIENCE) -> Curriculum:
    return CURRICULA.build(name, target, threshold=threshold, patience=patience)


def exposure(name: str, target: int, levels) -> dict[str, float]:
    """What a schedule at each of `levels` (one per batch, e.g. a record's logged levels) draws, on
    average over the batches: the mean difficulty and the share of examples at the target."""
    levels = list(levels)
    if not levels:
        return {"mean_difficulty": float("nan"), "share_at_target": float("nan")}
    s = build(name, target)
    p = np.zeros(target)
    for level in levels:
        s.level = int(level)
        p += s.probabilities()
    p /= len(levels)
    return {"mean_difficulty": float(p @ np.arange(1, target + 1)), "share_at_target": float(p[-1])}
