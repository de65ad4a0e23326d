"""The study kit: what every study uses, so that a study file reads like its claim.

A study declares its arms as `Arm(trial, factors)`; the factors (e.g. net="MLP",
norm="BN", lr=0.001) become plain columns of the records' frame, and tables,
figures and verdicts group by them. A `Tune` declares a fair choice of one factor
(e.g. the learning rate) per group of arms, made on tuning seeds that never decide
a verdict. verdict(), tables() and figures() receive a `Context`: the budget, the
seeds of the block being judged, the study's SETUP for the budget, and the tuning
trials.

Seed blocks (disjoint by construction; the command line refuses overlaps):
- verdict seeds: 0..n-1 by default, or `--seeds`;
- replication seeds (`--replicate`): each verdict seed + REPLICATION_OFFSET;
- tuning seeds: TUNING_SEED0, TUNING_SEED0 + 1, ... (Tune.seeds per budget).

Parts (each returns a stats.Verdict, its evidence sentence written from its numbers):
- `difference`: mean over seeds of a per-seed difference between two arms (Student t);
- `ratio`: per-seed ratio of two arms (t on log ratios), e.g. time per update;
- `mean`: mean over seeds of one arm's per-seed value (Student t);
- `rate`: a rate of events over trials (Clopper-Pearson);
- `paired_rates`: difference of two arms' event rates, paired (Newcombe).
Every part takes one value per seed (averaging over the other factors within a seed
first), counts a failed trial (diverged, or a non-finite value) by a stated rule and
never drops it, and needs stats.MIN_SEEDS seeds for a decisive word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from oplab import stats
from oplab.config import Trial

TUNING_SEED0 = 1000
REPLICATION_OFFSET = 100
BLOCKS = ("tuning", "verdict", "replication")


@dataclass(frozen=True)
class Arm:
    """One condition of a study: the trial to run and the factors that describe it."""

    trial: Trial
    factors: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tune:
    """Choose `factor` (one of the arms' factors, e.g. "lr") per group of arms sharing the
    `within` factors: the level with the lowest mean `score` over the tuning seeds (a
    failed trial counts as +inf; ties go to the smaller level). `score` is a training
    metric, never a test one. Only the chosen arms are trained on the verdict seeds."""

    factor: str
    within: tuple[str, ...]
    score: str = "train_loss_full"
    seeds: Mapping[str, int] = field(default_factory=lambda: {"smoke": 1, "quick": 2, "full": 2})

    def seed_list(self, budget: str) -> list[int]:
        return list(range(TUNING_SEED0, TUNING_SEED0 + self.seeds[budget]))


@dataclass(frozen=True)
class Context:
    """What a study's verdict(), tables() and figures() know besides the records."""

    budget: str
    seeds: tuple[int, ...]  # the seeds of the block being judged
    block: str = "verdict"  # "verdict" or "replication"
    setup: Mapping[str, Any] = field(default_factory=dict)  # the study's SETUP[budget]
    tuning: pd.DataFrame | None = None  # tuning trials, with a boolean "chosen" column
    tune: Tune | None = None


def replication_seeds(seeds: list[int]) -> list[int]:
    return [s + REPLICATION_OFFSET for s in seeds]


# --- fair tuning ------------------------------------------------------------------------------


def choose(df: pd.DataFrame, tune: Tune) -> dict[tuple, Any]:
    """Per group of `tune.within`, the level of `tune.factor` with the lowest mean score."""
    if df.empty:
        return {}
    d = df.copy()
    score = d[tune.score] if tune.score in d else pd.Series(np.nan, index=d.index)
    d["_fit"] = score.where((d["status"] == "ok") & np.isfinite(score.astype(float)), np.inf)
    by = list(tune.within)
    best = d.groupby(by + [tune.factor])["_fit"].mean().reset_index()
    return {tuple(k) if isinstance(k, tuple) else (k,): g.sort_values(["_fit", tune.factor])[tune.factor].iloc[0]
            for k, g in best.groupby(by)}


def mark_chosen(df: pd.DataFrame, tune: Tune) -> pd.DataFrame:
    best = choose(df, tune)
    d = df.copy()
    keys = d[list(tune.within)].itertuples(index=False, name=None)
    d["chosen"] = [best.get(k) == v for k, v in zip(keys, d[tune.factor])]
    return d


def tuning_table(ctx: Context, show: Mapping[str, str] | None = None,
                 order: Mapping[str, list] | None = None) -> pd.DataFrame:
    """The tuning grid: per group and level, the mean score over the tuning seeds (and any
    `show` columns, name -> column), failures, and which level was chosen."""
    if ctx.tuning is None or ctx.tuning.empty or ctx.tune is None:
        return pd.DataFrame()
    t, tune = ctx.tuning, ctx.tune
    rows = []
    for key, g in t.groupby(list(tune.within) + [tune.factor], sort=True):
        row = dict(zip(list(tune.within) + [tune.factor], key))
        ok = g["status"] == "ok"
        row["tuning seeds"] = len(g)
        row["failed"] = int((~ok).sum())
        row[f"mean {tune.score}"] = g.loc[ok, tune.score].mean() if tune.score in g and ok.all() else np.inf
        for label, col in (show or {}).items():
            row[label] = g[col].mean() if col in g else np.nan
        row["chosen"] = bool(g["chosen"].iloc[0])
        rows.append(row)
    return ordered(pd.DataFrame(rows), list(tune.within) + [tune.factor], order)


def ordered(out: pd.DataFrame, by: list[str], order: Mapping[str, list] | None) -> pd.DataFrame:
    """`out` sorted by `by`, with the levels of `order`'s columns (column -> levels) in that order."""
    if out.empty:
        return out
    for col, levels in (order or {}).items():
        if col in out:
            out[col] = pd.Categorical(out[col], [lv for lv in levels if lv in set(out[col])])
    return out.sort_values(by, kind="stable").reset_index(drop=True)


# --- selecting and shaping --------------------------------------------------------------------


def select(t: pd.DataFrame, where: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The rows whose factors equal `where` (a list of values means any of them)."""
    if not where:
        return t
    mask = pd.Series(True, index=t.index)
    for k, v in where.items():
        if k not in t:
            raise KeyError(f"no factor or column {k!r}; columns: {', '.join(map(str, t.columns))}")
        mask &= t[k].isin(v) if isinstance(v, list | tuple | set) else (t[k] == v)
    return t[mask]


def label(sel: Mapping[str, Any]) -> str:
    """The levels of a selection, for sentences: {"net": "MLP", "norm": ["BN", "WN"]} -> "MLP BN, WN"."""
    return " ".join(", ".join(map(str, v)) if isinstance(v, list | tuple | set) else str(v) for v in sel.values())


def failed(t: pd.DataFrame, value: str, diverged_fails: bool = True) -> pd.Series:
    """True where a trial's value is not finite or, with `diverged_fails`, the trial diverged.
    (A value measured before training, e.g. at init, stays valid when the trial later diverges.)"""
    v = pd.to_numeric(t[value], errors="coerce") if value in t else pd.Series(np.nan, index=t.index)
    bad = ~np.isfinite(v.astype(float))
    return (bad | (t["status"] != "ok")) if diverged_fails else bad


def _filled(t: pd.DataFrame, value: str, worst: float | None, worse: str,
            diverged_fails: bool = True) -> tuple[pd.Series, pd.Series, float]:
    """`value` with failed trials replaced by `worst` (default: the worst finite value of `t`)."""
    bad = failed(t, value, diverged_fails)
    v = pd.to_numeric(t[value], errors="coerce").astype(float) if value in t else pd.Series(np.nan, index=t.index)
    if worst is None:
        good = v[~bad]
        worst = float(good.max() if worse == "higher" else good.min()) if len(good) else float("nan")
    return v.where(~bad, worst), bad, worst


def per_seed(t: pd.DataFrame, value: str, agg: str = "mean") -> pd.Series:
    """One value per seed: `agg` over the seed's rows (e.g. over settings)."""
    return t.groupby("seed")[value].agg(agg)


def curve_value(t: pd.DataFrame, curves: dict[str, pd.DataFrame], table: str, column: str, name: str,
                at: tuple[str, float] | None = None, agg: str = "mean",
                after: tuple[str, float] | None = None) -> pd.DataFrame:
    """`t` with a new column `name` per trial from a curve: the value of `column` where
    `at[0] == at[1]` (e.g. ("epoch", 1.0)), or `agg` over the points with `after[0] > after[1]`."""
    c = curves.get(table)
    out = t.copy()
    if c is None or column not in c:
        out[name] = np.nan
        return out
    if at is not None:
        c = c[np.isclose(c[at[0]], at[1])]
    if after is not None:
        c = c[c[after[0]] > after[1]]
    v = c.groupby(["arm", "seed"])[column].agg(agg).rename(name).reset_index()
    return out.merge(v, on=["arm", "seed"], how="left")


# --- parts ------------------------------------------------------------------------------------


def _rule(method: str, above: float | None, below: float | None, unit: str, failure: str) -> str:
    side = f"above {above:g}" if above is not None else f"below {below:g}"
    side += f" {unit}" if unit else ""
    return (f"reproduced if the 95% {method} interval lies {side}, not reproduced if it lies "
            f"wholly on the other side, else inconclusive; needs n >= {stats.MIN_SEEDS} seeds; {failure}")


def _failure(value: str, w: float, observed: bool, fmt: str) -> str:
    which = "the worst value seen in this part, " if observed else ""
    return f"a failed trial's {value} counts as {which}{_fmt(w, fmt)}"


def _verdict(part, claim, effect, ci, unit, rule, n, method, evidence, above, below, details=None):
    word, note = stats.word_for(ci, n, above=above, below=below)
    return stats.Verdict(part, claim, float(effect), (float(ci[0]), float(ci[1])), unit, rule, word, evidence,
                         n, method, note, details or {})


def _fmt(x: float, fmt: str) -> str:
    return format(x, fmt) if np.isfinite(x) else "—"


def difference(t: pd.DataFrame, value: str, a: Mapping[str, Any], b: Mapping[str, Any], *, part: str,
               claim: str, unit: str, above: float | None = None, below: float | None = None,
               where: Mapping[str, Any] | None = None, worse: str = "higher", worst: float | None = None,
               agg: str = "mean", diverged_fails: bool = True, fmt: str = ".3g", note: str = "",
               details: dict | None = None) -> stats.Verdict:
    """Mean over seeds of value(a) - value(b), each averaged (`agg`) within a seed first.
    A failed trial's value counts as `worst` (default: the worst value seen in this part)."""
    base = select(t, where)
    both = pd.concat([select(base, a).assign(_side="a"), select(base, b).assign(_side="b")], ignore_index=True)
    filled, bad, w = _filled(both, value, worst, worse, diverged_fails)
    both = both.assign(_v=filled, _bad=bad)
    A, B = both[both["_side"] == "a"], both[both["_side"] == "b"]
    sa, sb = per_seed(A, "_v", agg), per_seed(B, "_v", agg)
    d = (sa - sb).dropna()
    effect, ci = stats.t_interval(d.to_numpy())
    fails = (f"{int(A['_bad'].sum())} of {len(A)} {label(a)} and {int(B['_bad'].sum())} of {len(B)} {label(b)} "
             "trials failed")
    failure = _failure(value, w, worst is None, fmt)
    prefix = f"{label(where)}: " if where else ""
    ev = (f"{prefix}{label(a)} minus {label(b)}: {_fmt(effect, '+' + fmt)} {unit}, 95% CI "
          f"{stats.interval_text(ci, '+' + fmt)} (Student t, n={len(d)} seeds); mean {label(a)} "
          f"{_fmt(float(sa.mean()), fmt)}, {label(b)} {_fmt(float(sb.mean()), fmt)}; {fails}."
          + (f" {note}" if note else ""))
    details = {"a": float(sa.mean()), "b": float(sb.mean()), "failed": int(bad.sum()), **(details or {})}
    return _verdict(part, claim, effect, ci, unit, _rule("Student t", above, below, unit, failure), len(d),
                    "Student t", ev, above, below, details)


def ratio(t: pd.DataFrame, value: str, a: Mapping[str, Any], b: Mapping[str, Any], *, part: str, claim: str,
          unit: str = "ratio", above: float | None = None, below: float | None = None,
          where: Mapping[str, Any] | None = None, fmt: str = ".3g", note: str = "") -> stats.Verdict:
    """Geometric mean over seeds of mean value(a) / mean value(b) within each seed (t on log
    ratios). Every trial's value counts, diverged or not; a non-finite value is left out and
    counted in the evidence (a timing of a trial that made no update)."""
    base = select(t, where)
    va, vb = select(base, a), select(base, b)
    ga = va[np.isfinite(va[value].astype(float))].groupby("seed")[value].mean()
    gb = vb[np.isfinite(vb[value].astype(float))].groupby("seed")[value].mean()
    r = (ga / gb).dropna()
    r = r[r > 0]
    effect, ci = stats.log_t_interval(r.to_numpy())
    left = int((~np.isfinite(va[value].astype(float))).sum() + (~np.isfinite(vb[value].astype(float))).sum())
    prefix = f"{label(where)}: " if where else ""
    ev = (f"{prefix}{label(a)} / {label(b)}: {_fmt(effect, fmt)}x, 95% CI {stats.interval_text(ci, fmt)} "
          f"(t on log ratios, n={len(r)} seeds, each seed's trials averaged first); mean {label(a)} "
          f"{_fmt(float(ga.mean()), fmt)}, {label(b)} {_fmt(float(gb.mean()), fmt)}"
          + (f"; {left} trials without a value" if left else "") + "." + (f" {note}" if note else ""))
    rule = _rule("log-t", above, below, "", "every trial counts, whether it diverged or not")
    return _verdict(part, claim, effect, ci, unit, rule, len(r), "log-t", ev, above, below,
                    {"a": float(ga.mean()), "b": float(gb.mean())})


def mean(t: pd.DataFrame, value: str, *, part: str, claim: str, unit: str, what: str,
         above: float | None = None, below: float | None = None, where: Mapping[str, Any] | None = None,
         agg: str = "mean", worse: str = "higher", worst: float | None = None, diverged_fails: bool = True,
         fmt: str = ".3g", note: str = "", details: dict | None = None) -> stats.Verdict:
    """Mean over seeds of one arm's per-seed value (`agg` within a seed), Student t.
    A failed trial's value counts as `worst` (default: the worst value seen in this part)."""
    base = select(t, where)
    filled, bad, w = _filled(base, value, worst, worse, diverged_fails)
    s = per_seed(base.assign(_v=filled), "_v", agg).dropna()
    effect, ci = stats.t_interval(s.to_numpy())
    failure = _failure(value, w, worst is None, fmt)
    ev = (f"{what}: {_fmt(effect, fmt)} {unit}, 95% CI {stats.interval_text(ci, fmt)} (Student t, n={len(s)} "
          f"seeds); {int(bad.sum())} of {len(base)} trials failed." + (f" {note}" if note else ""))
    return _verdict(part, claim, effect, ci, unit, _rule("Student t", above, below, unit, failure), len(s),
                    "Student t", ev, above, below, {"failed": int(bad.sum()), **(details or {})})


def _events(t: pd.DataFrame, event: str, failed_as: float) -> pd.Series:
    e = pd.to_numeric(t[event], errors="coerce").astype(float) if event in t else pd.Series(np.nan, index=t.index)
    return e.where((t["status"] == "ok") & np.isfinite(e), failed_as)


def rate(t: pd.DataFrame, event: str, *, part: str, claim: str, what: str, above: float | None = None,
         below: float | None = None, where: Mapping[str, Any] | None = None, failed_as: float = 0.0,
         note: str = "") -> stats.Verdict:
    """The rate of `event` (0/1 per trial) over trials, Clopper-Pearson; a failed trial counts
    as `failed_as`."""
    base = select(t, where)
    e = _events(base, event, failed_as)
    k, n = int(e.sum()), len(e)
    effect, ci = stats.rate_interval(k, n)
    n_seeds = base["seed"].nunique()
    ev = (f"{what}: {k}/{n} = {_fmt(effect, '.2f')}, 95% CI {stats.interval_text(ci, '.2f')} (Clopper-Pearson, "
          f"{n} trials from {n_seeds} seeds)." + (f" {note}" if note else ""))
    failure = f"a diverged trial counts as {'an event' if failed_as else 'no event'}"
    return _verdict(part, claim, effect, ci, "rate", _rule("Clopper-Pearson", above, below, "", failure), n_seeds,
                    "Clopper-Pearson", ev, above, below, {"k": k, "trials": n})


def paired_rates(t: pd.DataFrame, event: str, a: Mapping[str, Any], b: Mapping[str, Any], *, part: str,
                 claim: str, what: str, pair: tuple[str, ...] = ("seed",), above: float | None = None,
                 below: float | None = None, where: Mapping[str, Any] | None = None, failed_as: float = 0.0,
                 note: str = "") -> stats.Verdict:
    """rate(a) - rate(b) of `event` over trials paired on `pair` (e.g. length and seed),
    Newcombe's interval for paired binary data; a failed trial counts as `failed_as`."""
    base = select(t, where)
    va, vb = select(base, a), select(base, b)
    ea = va.assign(_e=_events(va, event, failed_as)).set_index(list(pair))["_e"]
    eb = vb.assign(_e=_events(vb, event, failed_as)).set_index(list(pair))["_e"]
    both = pd.concat([ea.rename("a"), eb.rename("b")], axis=1).dropna()
    effect, ci = stats.paired_rate_interval(both["a"].to_numpy(), both["b"].to_numpy())
    n_seeds = both.index.get_level_values("seed").nunique() if len(both) else 0
    ev = (f"{what}: {label(a)} {int(both['a'].sum())}/{len(both)}, {label(b)} {int(both['b'].sum())}/{len(both)}; "
          f"difference {_fmt(effect, '+.2f')}, 95% CI {stats.interval_text(ci, '+.2f')} (Newcombe, paired, "
          f"{len(both)} pairs from {n_seeds} seeds)." + (f" {note}" if note else ""))
    failure = f"a diverged trial counts as {'an event' if failed_as else 'no event'}"
    return _verdict(part, claim, effect, ci, "rate difference", _rule("Newcombe (paired)", above, below, "", failure),
                    n_seeds, "Newcombe (paired)", ev, above, below, {"pairs": len(both)})


# --- tables -----------------------------------------------------------------------------------


def summary(t: pd.DataFrame, value: str, by: list[str], *, name: str | None = None, scale: float = 1.0,
            fmt: str = ".3g", order: Mapping[str, list] | None = None,
            extra: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Per group of `by`: seeds, failed trials, mean, std and Student-t 95% CI of `value`
    (finished trials only; failures are counted beside), plus the mean of `extra` columns."""
    name = name or value
    rows = []
    for key, g in t.groupby(by, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        bad = failed(g, value)
        v = scale * g.loc[~bad, value].astype(float)
        m, ci = stats.t_interval(v.to_numpy())
        row = dict(zip(by, key))
        row.update({"seeds": g["seed"].nunique(), "failed": int(bad.sum()), f"{name} (mean)": m,
                    "std": float(v.std(ddof=1)) if len(v) > 1 else np.nan,
                    "95% CI (t)": stats.interval_text(ci, fmt)})
        for label_, col in (extra or {}).items():
            row[label_] = g[col].mean() if col in g else np.nan
        rows.append(row)
    return ordered(pd.DataFrame(rows), by, order)
