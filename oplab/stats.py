"""Seed statistics and verdict words: intervals whose stated coverage holds at the
3-10 seeds a study can afford, the Verdict of one tested part, and the study's word.

Intervals, by kind of quantity (scipy.stats for every distribution):

- a mean of per-seed values or of paired differences: Student t (`t_interval`);
- a ratio: t on the per-seed log ratios, reported back as a ratio (`log_t_interval`);
- a rate k/n: Clopper-Pearson, exact, never below its level (`rate_interval`);
- a paired difference of two rates: Newcombe's hybrid score interval for paired
  binary data, method 10 of Newcombe (1998), built on Wilson intervals
  (`paired_rate_interval`).

A percentile bootstrap of the mean is not used for verdicts: at n = 3, 5, 10 its
"95%" interval covers the true mean of normal data only about 76, 84 and 90% of
the time (tests/test_coverage.py measures this).

A decisive word needs at least MIN_SEEDS independent seeds; with fewer the part is
"inconclusive (n < 5)". The study's word (`overall`) is "reproduced" only when
every part is: that intersection rule already bounds the chance that a study reads
"reproduced" when any part's claim is false by the single-part error rate (2.5%
one-sided), so no multiple-comparison correction is applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np


def _scipy_stats():
    """scipy.stats, imported on first use (about half a second): a cached rerun that judges nothing
    never pays for it."""
    from scipy import stats

    return stats


WORDS = ("reproduced", "not reproduced", "inconclusive")
LEVEL = 0.95
MIN_SEEDS = 5  # a decisive word needs at least this many independent seeds

NAN2 = (float("nan"), float("nan"))


# --- intervals --------------------------------------------------------------------------------


def t_bounds(x: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means and Student-t interval bounds along the last axis (vectorized; n >= 2)."""
    x = np.asarray(x, dtype=float)
    n = x.shape[-1]
    mean = x.mean(axis=-1)
    half = _scipy_stats().t.ppf(0.5 + level / 2, n - 1) * x.std(axis=-1, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def t_interval(values: Sequence[float], level: float = LEVEL) -> tuple[float, tuple[float, float]]:
    """Mean and Student-t interval of independent values (n >= 2; NaN interval otherwise)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return float("nan"), NAN2
    if n < 2 or not np.all(np.isfinite(x)):
        return float(x.mean()), NAN2
    mean, lo, hi = t_bounds(x, level)
    return float(mean), (float(lo), float(hi))


def log_t_interval(ratios: Sequence[float], level: float = LEVEL) -> tuple[float, tuple[float, float]]:
    """Geometric mean and interval of positive per-seed ratios: t on log ratios, exponentiated."""
    r = np.asarray(ratios, dtype=float)
    if len(r) == 0 or np.any(~(r > 0)):
        return float("nan"), NAN2
    m, (lo, hi) = t_interval(np.log(r), level)
    return float(np.exp(m)), (float(np.exp(lo)), float(np.exp(hi)))


def rate_interval(k: int, n: int, level: float = LEVEL) -> tuple[float, tuple[float, float]]:
    """k/n and its Clopper-Pearson (exact) interval."""
    if n == 0:
        return float("nan"), NAN2
    ci = _scipy_stats().binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="exact")
    return k / n, (float(ci.low), float(ci.high))


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    ci = _scipy_stats().binomtest(int(k), int(n)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def paired_rate_interval(a: Sequence[float], b: Sequence[float],
                         level: float = LEVEL) -> tuple[float, tuple[float, float]]:
    """Difference of two paired rates, mean(a) - mean(b), with Newcombe's (1998) method 10
    interval: Wilson intervals of both rates combined by square-and-add with the
    continuity-corrected phi correlation of the pairs. `a`, `b`: 0/1 per pair."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = len(a)
    if n == 0:
        return float("nan"), NAN2
    e = float(np.sum((a == 1) & (b == 1)))
    f = float(np.sum((a == 1) & (b == 0)))
    g = float(np.sum((a == 0) & (b == 1)))
    h = float(np.sum((a == 0) & (b == 0)))
    p1, p2 = (e + f) / n, (e + g) / n
    l1, u1 = wilson(int(e + f), n, level)
    l2, u2 = wilson(int(e + g), n, level)
    denom = (e + f) * (g + h) * (e + g) * (f + h)
    if denom == 0:
        phi = 0.0
    else:
        num = e * h - f * g
        num = max(num - n / 2, 0.0) if num > 0 else num
        phi = num / np.sqrt(denom)
    d = p1 - p2
    delta = np.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    eps = np.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return d, (max(-1.0, d - delta), min(1.0, d + eps))


def interval_text(ci: tuple[float, float], fmt: str = ".3g") -> str:
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "[—]"
    return f"[{lo:{fmt}}, {hi:{fmt}}]"


# --- the verdict of one part ------------------------------------------------------------------


@dataclass
class Verdict:
    """One tested part of a claim: an effect with its interval, the rule, and the word."""

    part: str  # short name, e.g. "early training"
    claim: str  # what is tested, in words
    effect: float
    ci: tuple[float, float]
    unit: str  # e.g. "nats", "percentage points", "ratio"
    rule: str  # the decision rule, with the interval's method and n
    word: str
    evidence: str  # one sentence with the numbers
    n: int = 0  # independent seeds behind the effect
    method: str = ""  # e.g. "Student t", "log-t", "Clopper-Pearson", "Newcombe (paired)"
    note: str = ""  # why a word is inconclusive beyond the interval, e.g. "n < 5"
    details: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.word not in WORDS:
            raise ValueError(f"verdict word {self.word!r} is not one of {WORDS}")

    @property
    def shown(self) -> str:
        """The word as shown: 'inconclusive (n < 5)' when a note explains it."""
        return f"{self.word} ({self.note})" if self.note else self.word

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = [float(c) for c in self.ci]
        d["shown"] = self.shown
        return d


def decide(ci: tuple[float, float], above: float | None = None, below: float | None = None) -> str:
    """The word for a claim that the effect is above (or below) a threshold:
    reproduced when the whole interval is on the claimed side, not reproduced when
    the whole interval is on the other side, inconclusive when it straddles (or is NaN)."""
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if above is not None:
        return "reproduced" if lo > above else "not reproduced" if hi <= above else "inconclusive"
    if below is not None:
        return "reproduced" if hi < below else "not reproduced" if lo >= below else "inconclusive"
    raise ValueError("decide() needs `above` or `below`")


def word_for(ci: tuple[float, float], n_seeds: int, above: float | None = None,
             below: float | None = None) -> tuple[str, str]:
    """(word, note): `decide`, except that fewer than MIN_SEEDS seeds give an inconclusive word."""
    if n_seeds < MIN_SEEDS:
        return "inconclusive", f"n < {MIN_SEEDS}"
    return decide(ci, above=above, below=below), ""


def overall(verdicts: Sequence[Verdict] | Sequence[dict]) -> str:
    """The study's word: 'reproduced', 'not reproduced' or 'inconclusive' when every part
    agrees; otherwise 'mixed (3 reproduced, 1 not reproduced, 1 inconclusive)', so that a
    refuted part is never hidden behind the others."""
    words = [v["word"] if isinstance(v, dict) else v.word for v in verdicts]
    if not words:
        return "inconclusive"
    if len(set(words)) == 1:
        return words[0]
    counts = ", ".join(f"{words.count(w)} {w}" for w in WORDS if words.count(w))
    return f"mixed ({counts})"
