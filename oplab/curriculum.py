"""Curriculum schedules: the difficulty each training example is drawn at, for any task whose
examples have an integer difficulty 1..target (Zaremba & Sutskever 2014, "Learning to Execute",
and the authors' code, utils/strategies.lua).

Every schedule keeps a current level, which starts at 1 and advances by one when the validation
accuracy at the current level, checked every `check_every` updates by the training loop, is
above `threshold` (0.95 in the authors' code), up to the target. As in the authors' code the
level advances under the same rule whatever the strategy; it decides the draws of the curriculum
strategies only:

- baseline: every example at the target;
- naive: every example at the current level;
- mix: every example uniform in 1..target (the target, not the current level);
- combined: each example, with probability 1/5, uniform in 1..target as in mix, else at the current level.

`draw(n, rng)` returns the difficulties of one batch of n examples; `check(acc)` applies the
advance rule and says whether the level rose.
"""

from __future__ import annotations

import numpy as np

from oplab.registry import Registry

CURRICULA = Registry("curriculum")
THRESHOLD = 0.95  # validation accuracy at the current level that advances it (the authors' 0.95)
MIX_PROBABILITY = 0.2  # combined: the chance that an example is drawn as in mix (the authors' random(5) == 1)


class Curriculum:
    """A schedule's state (the current level) and the advance rule shared by every strategy."""

    name = ""
    uses_level = False  # whether the draws depend on the current level

    def __init__(self, target: int, threshold: float = THRESHOLD):
        if target < 1:
            raise ValueError(f"a curriculum's target difficulty must be >= 1, got {target}")
        self.target = int(target)
        self.threshold = float(threshold)
        self.level = 1

    @property
    def at_target(self) -> bool:
        return self.level >= self.target

    def check(self, accuracy: float) -> bool:
        """Advance the level by one when `accuracy` (validation, at the current level) is above the
        threshold and the level is below the target; return whether it advanced."""
        if accuracy > self.threshold and not self.at_target:
            self.level += 1
            return True
        return False

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _uniform(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return rng.integers(1, self.target, size=n, endpoint=True)


@CURRICULA.register("baseline")
class Baseline(Curriculum):
    name = "baseline"

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, self.target, dtype=np.int64)


@CURRICULA.register("naive")
class Naive(Curriculum):
    name = "naive"
    uses_level = True

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return np.full(n, self.level, dtype=np.int64)


@CURRICULA.register("mix")
class Mix(Curriculum):
    name = "mix"

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._uniform(n, rng)


@CURRICULA.register("combined")
class Combined(Curriculum):
    name = "combined"
    uses_level = True

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        mixed = rng.random(n) < MIX_PROBABILITY
        return np.where(mixed, self._uniform(n, rng), self.level).astype(np.int64)


def build(name: str, target: int, threshold: float = THRESHOLD) -> Curriculum:
    return CURRICULA.build(name, target, threshold=threshold)
