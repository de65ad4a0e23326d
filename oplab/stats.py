"""Seed statistics and verdict words: intervals whose stated coverage holds at the
3-16 seeds a study can afford, the test each part makes, the Verdict of one tested
part, the reason under an undecided one, and the study's word.

Intervals, by kind of quantity (scipy.stats for every distribution):

- a mean of per-seed values or of paired differences: Student t (`t_interval`);
- a ratio, or a positive right-skewed quantity (updates, variances, errors near 0): t on
  the per-seed logs, reported back as a ratio or geometric mean (`log_t_interval`);
  Student t on raw skewed values gives 7-18% false positives for "below" claims at
  these n (tests/test_coverage.py), so such parts declare the log scale;
- a rate k/n: Clopper-Pearson, exact, never below its level (`rate_interval`);
- a paired difference of two rates: Newcombe's hybrid score interval for paired
  binary data, method 10 of Newcombe (1998), built on Wilson intervals
  (`paired_rate_interval`), one pair per independent unit (the seed).

A part's `Test` says what its claim's words call for:
- superiority ("better", "faster", "lowers"): the interval wholly beyond a threshold
  (0, or a smallest effect that counts);
- non-inferiority ("at least as good"): the interval wholly beyond -margin;
- equivalence ("same", "comparable", "matches", "flat"): two one-sided tests at 2.5%
  each (TOST), i.e. the 95% interval wholly inside (lo, hi).
Each is "not reproduced" when the interval lies wholly on the other side (outside the
band, for equivalence), else "inconclusive"; every kind keeps a false-positive rate of
2.5% (one side) at one look. `staged_level` gives the per-look level that keeps it when
a part is extended in stages (n, 2n, 4n, ... seeds).

A decisive word needs at least MIN_SEEDS independent seeds; with fewer the part is
"inconclusive (n < 5)". The study's word (`overall`) is "reproduced" only when
every part is: that intersection rule already bounds the chance that a study reads
"reproduced" when any part's claim is false by the single-part error rate (2.5%
one-sided), so no multiple-comparison correction is applied.
"""

from __future__ import annotations

import functools
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


# --- what a part tests ------------------------------------------------------------------------

KINDS = ("superiority", "non-inferiority", "equivalence")
SCALES = ("raw", "log")


@dataclass(frozen=True)
class Test:
    """What one part tests, in its claim's words: the claimed side of a threshold
    (`above` or `below`; superiority or non-inferiority) or a band (`within`, equivalence),
    on the raw or the log `scale` (thresholds are given in the effect's own units: a ratio or
    a geometric mean for the log scale). `null` is the value of no effect (0 raw, 1 log):
    a superiority threshold lies at or beyond it on the claimed side (beyond it: the smallest
    effect that counts), a non-inferiority threshold on the other side (the margin)."""

    kind: str = "superiority"
    above: float | None = None
    below: float | None = None
    within: tuple[float, float] | None = None
    scale: str = "raw"
    bound: bool = False  # a bound on one quantity ("the variance stays below 0.01"): no effect is not 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"part kind {self.kind!r} is not one of {KINDS}")
        if self.scale not in SCALES:
            raise ValueError(f"part scale {self.scale!r} is not one of {SCALES}")
        sides = [x is not None for x in (self.above, self.below, self.within)]
        if sum(sides) != 1:
            raise ValueError("a part tests exactly one of above=, below= or within=")
        if (self.kind == "equivalence") != (self.within is not None):
            raise ValueError("an equivalence part needs within=(lo, hi); the other kinds above= or below=")
        if self.within is not None and not self.within[0] < self.within[1]:
            raise ValueError(f"within={self.within}: the band needs lo < hi")
        if self.scale == "log" and any(x is not None and x <= 0 for x in (self.above, self.below,
                                                                          *(self.within or ()))):
            raise ValueError("a log-scale part's thresholds are ratios or geometric means: positive")
        if self.kind == "superiority" and ((self.above is not None and self.above < self.null)
                                           or (self.below is not None and self.below > self.null)):
            raise ValueError(f"a superiority threshold lies at or beyond no effect ({self.null:g}) on the claimed "
                             "side; a threshold on the other side is a non-inferiority margin (kind='non-inferiority')")
        if self.kind == "non-inferiority" and ((self.above is not None and self.above >= self.null)
                                               or (self.below is not None and self.below <= self.null)):
            raise ValueError(f"a non-inferiority margin lies on the other side of no effect ({self.null:g}); "
                             "at or beyond it the part is a superiority part")

    @property
    def null(self) -> float:
        if self.bound and self.within is None:
            return float(self.above if self.above is not None else self.below)
        return 1.0 if self.scale == "log" else 0.0

    @property
    def side(self) -> str:
        return "above" if self.above is not None else "below" if self.below is not None else "within"

    @property
    def threshold(self) -> float:
        """The one-sided threshold (for equivalence: the band's upper edge)."""
        return self.above if self.above is not None else self.below if self.below is not None else self.within[1]

    def passes(self, x: float) -> bool:
        """Whether a single value lies strictly on the reproduced side."""
        if self.above is not None:
            return x > self.above
        if self.below is not None:
            return x < self.below
        return self.within[0] < x < self.within[1]

    def conservative(self, x: float) -> float:
        """A failed unit's value: `x` (a study's stated fill) where that is on the not-reproduced
        side, else the threshold (for equivalence, the band's upper edge). NaN -> the threshold."""
        if x == x and not self.passes(x):
            return float(x)
        return float(self.threshold)

    def toanalysis(self, x):
        """Values on the scale the interval is computed on (log for the log scale)."""
        return np.log(x) if self.scale == "log" else x

    def text(self, unit: str = "", fmt: str = "g") -> str:
        u = f" {unit}" if unit and unit not in ("ratio", "x") else ""
        if self.kind == "equivalence":
            lo, hi = self.within
            return f"inside ({lo:{fmt}}, {hi:{fmt}}){u}"
        side = "above" if self.above is not None else "below"
        return f"{side} {self.threshold:{fmt}}{u}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "side": self.side, "above": self.above, "below": self.below,
                "within": list(self.within) if self.within else None, "scale": self.scale, "null": self.null,
                "bound": self.bound}


def as_test(above: float | None = None, below: float | None = None, within=None, kind: str | None = None,
            scale: str = "raw", bound: bool = False) -> Test:
    """The Test of a part's arguments; the kind defaults to what the threshold implies (a threshold
    on the other side of no effect is a non-inferiority margin; a bound on one quantity is a
    superiority test of the bound)."""
    if bound and within is None:
        return Test(kind or "superiority", above, below, None, scale, True)
    if kind is None:
        if within is not None:
            kind = "equivalence"
        else:
            null = 1.0 if scale == "log" else 0.0
            kind = ("non-inferiority" if (above is not None and above < null) or (below is not None and below > null)
                    else "superiority")
    return Test(kind, above, below, tuple(within) if within is not None else None, scale)


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
    test: dict = field(default_factory=dict)  # Test.to_dict(): kind, side, thresholds, scale
    reason: str = ""  # why an undecided or refuted part reads so, computed from its data

    def __post_init__(self) -> None:
        if self.word not in WORDS:
            raise ValueError(f"verdict word {self.word!r} is not one of {WORDS}")

    @property
    def kind(self) -> str:
        return self.test.get("kind", "superiority")

    @property
    def shown(self) -> str:
        """The word as shown: 'inconclusive (n < 5)' when a note explains it."""
        return f"{self.word} ({self.note})" if self.note else self.word

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = [float(c) for c in self.ci]
        d["shown"] = self.shown
        return d


ROUNDING = 1e-9  # relative: an interval end this close to a boundary is on it (float rounding)


def decide(ci: tuple[float, float], above: float | None = None, below: float | None = None,
           test: Test | None = None) -> str:
    """The word for a part: reproduced when the whole interval is on the claimed side (inside the
    band, for equivalence), not reproduced when the whole interval is on the other side (outside
    the band), inconclusive when it straddles (or is NaN)."""
    lo, hi = ci
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    test = test or as_test(above, below)

    def gt(x: float, t: float) -> bool:  # beyond t by more than rounding: seeds that all count as the
        return x > t and not np.isclose(x, t, rtol=ROUNDING, atol=0.0)  # threshold (exp(log(t)) != t) never pass

    if test.above is not None:
        return "reproduced" if gt(lo, test.above) else "not reproduced" if not gt(hi, test.above) else "inconclusive"
    if test.below is not None:
        return "reproduced" if gt(test.below, hi) else "not reproduced" if not gt(test.below, lo) else "inconclusive"
    a, b = test.within
    return ("reproduced" if gt(lo, a) and gt(b, hi) else "not reproduced" if not gt(hi, a) or not gt(b, lo)
            else "inconclusive")


def word_for(ci: tuple[float, float], n_seeds: int, above: float | None = None,
             below: float | None = None, test: Test | None = None) -> tuple[str, str]:
    """(word, note): `decide`, except that fewer than MIN_SEEDS seeds give an inconclusive word."""
    if n_seeds < MIN_SEEDS:
        return "inconclusive", f"n < {MIN_SEEDS}"
    return decide(ci, above=above, below=below, test=test), ""


def analysis(test: dict, x):
    """Values on the scale a part's interval is computed on (the log of a log-scale part's values)."""
    x = np.asarray(x, dtype=float)
    if test.get("scale") == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(x)
    return x


def _boundaries(test: dict) -> list[float]:
    if test.get("side") == "within":
        return list(test["within"])
    return [test["above"] if test.get("above") is not None else test["below"]]


def seeds_to_decide(v: Verdict | dict) -> int | None:
    """About how many seeds would make an undecided part's interval clear its nearest boundary, if its
    effect and spread stay as measured: the interval's half-width shrinks as 1/sqrt(n). None when the
    effect sits on a boundary (no number of seeds decides it at this effect) or nothing is known."""
    d = v if isinstance(v, dict) else v.to_dict()
    test, n = d.get("test") or {}, d.get("n", 0)
    if not test or n < 2:
        return None
    e, (lo, hi) = analysis(test, d["effect"]), analysis(test, d["ci"])
    if not (np.isfinite(e) and np.isfinite(lo) and np.isfinite(hi)):
        return None
    half = (hi - lo) / 2
    gap = min(abs(e - float(analysis(test, b))) for b in _boundaries(test))
    if gap <= 1e-12 * max(1.0, abs(e)) or half <= 0:
        return None
    return int(np.ceil(n * (half / gap) ** 2))


def reason(v: Verdict | dict, halves: dict | None = None) -> str:
    """Why a part that is not reproduced reads as it does, computed from its numbers: the seeds
    that would decide it, no events, halves that disagree, an effect below the smallest that
    counts, or the interval wholly on the other side. Empty for a reproduced part."""
    d = v if isinstance(v, dict) else v.to_dict()
    word, test, n = d["word"], d.get("test") or {}, d.get("n", 0)
    if word == "reproduced":
        return ""
    det = d.get("details") or {}
    first = []
    if det.get("errors"):
        first.append(f"{det['errors']} trials failed with an error (errors.md): they count at the threshold, so they "
                     "never make the part reproduced, and the part is not called not reproduced until they are "
                     "retried")
    unmeasured = int(det.get("unmeasured_seeds", 0))
    if unmeasured and n - unmeasured < MIN_SEEDS and n >= MIN_SEEDS:  # the interval is mostly threshold fill
        return "; ".join(first + [f"only {n - unmeasured} of {n} seeds measured anything (the others' trials "
                                  "finished without a finite value: a measure that found nothing, which is not "
                                  f"evidence); a word needs at least {MIN_SEEDS} measured seeds"])
    if first:
        rest = _reason(d, halves, word, test, n, det) if word != "not reproduced" else ""
        return "; ".join(first + ([rest] if rest else []))
    return _reason(d, halves, word, test, n, det)


def _reason(d: dict, halves: dict | None, word: str, test: dict, n: int, det: dict) -> str:
    if word == "not reproduced":
        lo, hi = d["ci"]
        if test.get("side") in ("above", "below") and (hi - lo) <= ROUNDING * max(1.0, abs(hi)) and \
                np.isclose(hi, _boundaries(test)[0], rtol=ROUNDING, atol=1e-12):
            return ("every seed sits exactly on the threshold (the interval is that one point): none is beyond it, "
                    "so the data do not show the claimed effect at this budget")
        side = "outside the band" if test.get("side") == "within" else "wholly on the other side of the threshold"
        return f"the interval lies {side}: the data contradict the claim at this budget"
    if n < MIN_SEEDS:
        return f"only {n} seeds: a decisive word needs at least {MIN_SEEDS}"
    lo, hi = d["ci"]
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "no interval: the per-seed values are not all finite"
    bits = []
    if det.get("events") == 0:
        bits.append("no events in either arm")
    if halves:
        signs = []
        for h in halves.values():
            if h and np.isfinite(h.get("effect", np.nan)) and test:
                ref = (test["within"][0] + test["within"][1]) / 2 if test.get("side") == "within" \
                    else _boundaries(test)[0]
                signs.append(np.sign(float(analysis(test, h["effect"])) - float(analysis(test, ref))))
        if len(signs) == 2 and signs[0] * signs[1] < 0:
            bits.append("the halves disagree in sign")
    null = test.get("null", 0.0)
    if test.get("kind") == "superiority" and test.get("side") in ("above", "below"):
        thr = _boundaries(test)[0]
        beyond_null = lo > null if test["side"] == "above" else hi < null
        if thr != null and beyond_null:
            bits.append(f"the effect is beyond no effect ({null:g}) but not beyond the smallest effect that counts "
                        f"({thr:g})")
    k = seeds_to_decide(d)
    if k is None:
        bits.append("the effect sits on the threshold: more seeds would not decide it at this effect size")
    else:
        about = f"about {k:,}" if k <= 1000 else "more than 1,000"
        bits.append(f"underpowered: {about} seeds (now {n}) would decide it if the effect and spread stay as "
                    "measured")
    return "; ".join(bits)


def half_probabilities(v: Verdict | dict, n_half: int) -> dict[str, float] | None:
    """Plug-in chances of each word on a block of `n_half` seeds, if the true effect and the per-seed
    spread were the pooled estimates (normal approximation on the analysis scale)."""
    d = v if isinstance(v, dict) else v.to_dict()
    test, n = d.get("test") or {}, d.get("n", 0)
    if not test or n < 2 or n_half < MIN_SEEDS:
        return None
    e, (lo, hi) = float(analysis(test, d["effect"])), analysis(test, d["ci"])
    if not (np.isfinite(e) and np.isfinite(lo) and np.isfinite(hi)):
        return None
    st = _scipy_stats()
    se = (hi - lo) / 2 / st.t.ppf(0.975, n - 1) * np.sqrt(n / n_half)
    if se <= 0:
        return None
    w = st.t.ppf(0.975, n_half - 1) * se
    cdf = lambda x: float(st.norm.cdf((x - e) / se))  # noqa: E731 - P(half's estimate < x)
    bounds = [float(analysis(test, b)) for b in _boundaries(test)]
    if test["side"] == "above":
        rep, nrep = 1 - cdf(bounds[0] + w), cdf(bounds[0] - w)
    elif test["side"] == "below":
        rep, nrep = cdf(bounds[0] - w), 1 - cdf(bounds[0] + w)
    else:
        a, b = bounds
        rep = max(0.0, cdf(b - w) - cdf(a + w))
        nrep = cdf(a - w) + 1 - cdf(b + w)
    return {"reproduced": rep, "not reproduced": nrep, "inconclusive": max(0.0, 1 - rep - nrep)}


def expected_agreement(v: Verdict | dict, n_a: int, n_b: int) -> float | None:
    """The plug-in chance that two independent blocks of n_a and n_b seeds give the same word."""
    pa, pb = half_probabilities(v, n_a), half_probabilities(v, n_b)
    if pa is None or pb is None:
        return None
    return float(sum(pa[w] * pb[w] for w in WORDS))


# --- staged designs ---------------------------------------------------------------------------


@functools.cache
def staged_level(looks: int, level: float = LEVEL, sims: int = 400_000) -> float:
    """The two-sided confidence level to use at each of `looks` looks at n, 2n, 4n, ... seeds (a part
    still undecided after a look is extended to twice its seeds), such that the chance of a false
    "reproduced" over all looks stays at (1 - level) / 2 on each side: Pocock's constant boundary for
    information fractions 1 : 2 : 4 : ..., found on the normal approximation (a fixed-seed simulation
    of the score process, so the value is the same on every machine to 3 decimals). One look: `level`.
    tests/test_coverage.py checks the false-positive rate of t intervals at the returned level by
    simulation."""
    if looks < 1:
        raise ValueError("looks must be >= 1")
    if looks == 1:
        return level
    alpha = (1 - level) / 2
    rng = np.random.default_rng(20261203)
    info = 2.0 ** np.arange(looks)  # seeds at each look, in units of the first look's
    inc = np.diff(np.r_[0.0, info])
    s = np.cumsum(rng.standard_normal((sims, looks)) * np.sqrt(inc), axis=1)
    zmax = (s / np.sqrt(info)).max(axis=1)
    c = float(np.quantile(zmax, 1 - alpha))
    return float(1 - 2 * _scipy_stats().norm.sf(c))


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
