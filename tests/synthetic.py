"""Synthetic per-trial tables for verdict tests: every arm a study runs on its verdict
seeds, with planted values, so a test knows which word each part must give."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import numpy as np
import pandas as pd

from oplab import kit, schema
from oplab import plan as planning


def table(study: ModuleType, values: Callable[[dict, int, np.random.Generator], dict], seeds=range(6),
          budget: str = "quick") -> pd.DataFrame:
    """One row per (arm, seed) of the arms the verdict block would train (for a tuned study,
    the first level of the tuned factor in each group), with status "ok" and the columns
    `values(factors, seed, rng)` returns (it may set "status" too)."""
    arms = planning.arms_of(study, budget)
    tune = getattr(study, "TUNE", None)
    if tune is not None:
        arms = planning.chosen_arms(arms, tune, planning.first_levels(arms, tune))
    rng = np.random.default_rng(12345)
    rows = []
    for seed in seeds:
        for name, arm in arms.items():
            row = {"arm": name, "seed": seed, "block": "verdict", "budget": budget, "key": f"{name}:{seed}",
                   "status": "ok", "diverged_step": None, **arm.factors,
                   **dict.fromkeys(schema.FINAL, np.nan)}  # as report.frame: every declared metric a column
            row.update(values(dict(arm.factors), seed, rng))
            rows.append(row)
    return pd.DataFrame(rows)


def context(study: ModuleType, seeds=range(6), budget: str = "quick") -> kit.Context:
    return kit.Context(budget, tuple(seeds), "verdict", study.SETUP[budget], None, getattr(study, "TUNE", None))


def words(study: ModuleType, values, seeds=range(6), budget: str = "quick") -> dict[str, str]:
    """part -> shown word of the study's verdict on a synthetic table."""
    parts = study.verdict(table(study, values, seeds, budget), context(study, seeds, budget))
    return {p.part: p.shown for p in parts}


# every verdict test plants each effect and expects its word on every part
PLANTED = [("yes", "reproduced"), ("no", "not reproduced"), ("unclear", "inconclusive")]


def check_planted(study: ModuleType, planted, parts: list[str], effect: str, word: str, seeds=range(8)) -> None:
    """Every part of the study's verdict gives `word` on the values planted for `effect`."""
    got = words(study, planted(effect), seeds)
    assert list(got) == parts
    assert all(w == word for w in got.values()), got


def check_too_few_seeds(study: ModuleType, planted) -> None:
    """With 4 seeds every part is inconclusive, whatever the data."""
    assert set(words(study, planted("yes"), seeds=range(4)).values()) == {"inconclusive (n < 5)"}
