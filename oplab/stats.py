"""Seed statistics and verdicts: means, bootstrap confidence intervals, paired
differences between arms, and the Verdict a study computes from its records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

WORDS = ("reproduced", "not reproduced", "inconclusive")


def bootstrap_ci(values: Sequence[float], level: float = 0.95, n_boot: int = 10_000,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean. With n < 2 values the CI is the value itself.
    With few seeds the interval is only as wide as the seeds' spread: read it with n."""
    x = np.asarray([v for v in values if np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return (float("nan"), float("nan"))
    if len(x) == 1:
        return (float(x[0]), float(x[0]))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    alpha = (1 - level) / 2
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha)))


def summarize(df: pd.DataFrame, value: str, by: str | list[str] = "arm") -> pd.DataFrame:
    """Mean, std, bootstrap 95% CI and count of `value` per group."""
    rows = []
    for key, g in df.groupby(by, sort=False):
        v = g[value].dropna().to_numpy(dtype=float)
        lo, hi = bootstrap_ci(v)
        row = dict(zip([by] if isinstance(by, str) else by, key if isinstance(key, tuple) else (key,)))
        row.update(mean=float(np.mean(v)) if len(v) else float("nan"),
                   std=float(np.std(v, ddof=1)) if len(v) > 1 else 0.0, ci_lo=lo, ci_hi=hi, n=len(v))
        rows.append(row)
    return pd.DataFrame(rows)


def paired_differences(df: pd.DataFrame, value: str, a: str, b: str, arm: str = "arm",
                       pair_on: str = "seed") -> np.ndarray:
    """value(a) - value(b) for each seed that both arms have."""
    wide = df.pivot_table(index=pair_on, columns=arm, values=value, aggfunc="first")
    if a not in wide or b not in wide:
        return np.array([])
    d = (wide[a] - wide[b]).dropna()
    return d.to_numpy(dtype=float)


@dataclass
class Verdict:
    """One tested part of a claim: an effect with its CI, the rule, and the word."""

    part: str  # short name, e.g. "early training"
    claim: str  # what is tested, in words
    effect: float
    ci: tuple[float, float]
    unit: str  # e.g. "nats", "percentage points", "ratio"
    rule: str  # the decision rule, e.g. "reproduced if CI > 0"
    word: str
    evidence: str  # one sentence with the numbers
    n: int = 0  # seeds (or runs) behind the effect
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.word not in WORDS:
            raise ValueError(f"verdict word {self.word!r} is not one of {WORDS}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def decide(ci: tuple[float, float], above: float | None = None, below: float | None = None) -> str:
    """The word for a claim that the effect is above (or below) a threshold:
    reproduced when the whole CI is on the claimed side, not reproduced when the
    whole CI is on the other side, inconclusive when it straddles (or is NaN)."""
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if above is not None:
        return "reproduced" if lo > above else "not reproduced" if hi <= above else "inconclusive"
    if below is not None:
        return "reproduced" if hi < below else "not reproduced" if lo >= below else "inconclusive"
    raise ValueError("decide() needs `above` or `below`")


def effect_verdict(part: str, claim: str, values: Sequence[float], unit: str, rule_text: str,
                   evidence: str, above: float | None = None, below: float | None = None,
                   details: dict | None = None) -> Verdict:
    """A Verdict on the mean of per-seed `values` (e.g. paired differences) against a threshold."""
    v = np.asarray(values, dtype=float)
    effect = float(np.mean(v)) if len(v) else float("nan")
    ci = bootstrap_ci(v)
    word = decide(ci, above=above, below=below) if len(v) else "inconclusive"
    return Verdict(part, claim, effect, ci, unit, rule_text, word,
                   evidence.format(effect=effect, lo=ci[0], hi=ci[1], n=len(v)), len(v), details or {})


def overall(verdicts: Sequence[Verdict]) -> str:
    """The study's word: reproduced if every part is; not reproduced if every part is not;
    otherwise 'partly reproduced (k/n)' or 'inconclusive'."""
    words = [v.word for v in verdicts]
    if not words:
        return "inconclusive"
    if all(w == "reproduced" for w in words):
        return "reproduced"
    if all(w == "not reproduced" for w in words):
        return "not reproduced"
    k = words.count("reproduced")
    return f"partly reproduced ({k}/{len(words)} parts)" if k else "inconclusive"


def best_setting(df: pd.DataFrame, by: list[str], param: str, score: str = "train_loss") -> dict:
    """Per group of `by` columns, the value of `param` (e.g. a learning rate of a grid) with
    the lowest mean `score` over seeds; a trial that did not finish ok counts as +inf. Ties
    go to the smaller value. Keys are tuples of the `by` values. For fair tuning, `score`
    should be a training metric, never a test one."""
    d = df.copy()
    d["_fit"] = d[score].where(d["status"] == "ok", np.inf) if score in d else np.inf
    best = d.groupby(by + [param])["_fit"].mean().reset_index()
    return {key: float(g.sort_values(["_fit", param])[param].iloc[0]) for key, g in best.groupby(by)}


def rows_at_best(df: pd.DataFrame, by: list[str], param: str, score: str = "train_loss") -> pd.DataFrame:
    """The rows of `df` whose `param` is their group's `best_setting` (e.g. every seed of each
    arm at the learning rate chosen for that arm)."""
    best = best_setting(df, by, param, score)
    keys = df[by].itertuples(index=False, name=None)
    return df[[best.get(k) == v for k, v in zip(keys, df[param])]].copy()
