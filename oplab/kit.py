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
from oplab.plan import (  # noqa: F401 - the study-facing names of planning
    BLOCKS,
    REPLICATION_OFFSET,
    TRIAL_FACTORS,
    TUNING_SEED0,
    Arm,
    Tune,
    best_levels,
    fit,
    matched,
    replication_seeds,
)


@dataclass(frozen=True)
class Context:
    """What a study's verdict(), tables() and figures() know besides the records."""

    budget: str
    seeds: tuple[int, ...]  # the seeds of the block being judged
    block: str = "verdict"  # "verdict" or "replication"
    setup: Mapping[str, Any] = field(default_factory=dict)  # the study's SETUP[budget]
    tuning: pd.DataFrame | None = None  # tuning trials, with a boolean "chosen" column
    tune: Tune | None = None


# --- fair tuning ------------------------------------------------------------------------------


def choose(df: pd.DataFrame, tune: Tune) -> dict[tuple, Any]:
    """Per group of `tune.within`, the level of `tune.factor` with the lowest mean score (the one
    rule, oplab.plan.best_levels, on a frame of tuning trials)."""
    if df.empty:
        return {}
    score = df[tune.score] if tune.score in df else pd.Series(np.nan, index=df.index)
    groups = df[list(tune.within)].itertuples(index=False, name=None)
    return best_levels(zip(groups, df[tune.factor], map(fit, df["status"], score)))


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
    """True where a trial's value is not finite or, with `diverged_fails`, the trial did not finish
    ("diverged" or "error"). (A value measured before training, e.g. at init, stays valid when the
    trial later diverges: `diverged_fails=False`; an errored trial has no values at all.)"""
    v = pd.to_numeric(t[value], errors="coerce") if value in t else pd.Series(np.nan, index=t.index)
    bad = ~np.isfinite(v.astype(float)) | (t["status"] == "error")
    return (bad | (t["status"] != "ok")) if diverged_fails else bad


def _numeric(t: pd.DataFrame, value: str) -> pd.Series:
    return pd.to_numeric(t[value], errors="coerce").astype(float) if value in t else pd.Series(np.nan, index=t.index)


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
#
# Every part reduces its trials to one value per seed (the independent unit), then judges the
# seeds' values by its Test (stats.Test: superiority, non-inferiority or equivalence, on the raw or
# the log scale). A failed trial (diverged, errored, or a non-finite value) never lands on the
# passing side: the seed it belongs to takes the study's stated value for a failure where that lies
# on the not-reproduced side, else the threshold itself (the band's edge for equivalence), so a
# part whose every trial diverged reads "not reproduced". Every failure is counted in the evidence.
# A finished trial whose measure gave nothing (no finite value: a search that found nothing) is a
# failure of the measurement, not evidence: its seed still counts at the threshold, but a part with
# fewer than MIN_SEEDS seeds measured reads "inconclusive" whatever its interval.

COST_COLUMNS = ("cost_updates", "cost_flops")  # a trial's cost in the frame, from its config (report.frame)


def _test(above, below, within, kind, scale, bound: bool = False) -> stats.Test:
    return stats.as_test(above, below, within, kind, scale, bound)


def _fmt(x: float, fmt: str) -> str:
    return format(x, fmt) if np.isfinite(x) else "—"


def _rule(method: str, test: stats.Test, unit: str, failure: str) -> str:
    what = {"superiority": "superiority", "non-inferiority": "non-inferiority (margin)",
            "equivalence": "equivalence (two one-sided tests at 2.5% each)"}[test.kind]
    scale = ", on the log scale" if test.scale == "log" else ""
    other = "wholly outside the band" if test.kind == "equivalence" else "wholly on the other side"
    return (f"{what}{scale}: reproduced if the 95% {method} interval lies {test.text(unit)}, not reproduced if it "
            f"lies {other}, else inconclusive; needs n >= {stats.MIN_SEEDS} seeds; {failure}")


def _failure_rule(value: str, worst: float | None, test: stats.Test, fmt: str) -> str:
    stated = f"a failed trial's {value} counts as {_fmt(worst, fmt)} (the study's rule), and " \
        if worst is not None else ""
    edge = "the band's upper edge" if test.kind == "equivalence" else "the threshold"
    return (f"{stated}a seed with a failed trial never lands on the passing side: where it would, it counts as "
            f"{edge} ({_fmt(test.threshold, fmt)})")


def _cost_note(a_rows: pd.DataFrame, b_rows: pd.DataFrame, la: str, lb: str) -> tuple[str, dict]:
    """Say so when two arms' trials differ in cost (updates, pre-training and hint stages included;
    a teacher's own training apart), from the frame's cost columns (COST_COLUMNS)."""
    cu, cf = COST_COLUMNS
    if cu not in a_rows or cu not in b_rows or a_rows.empty or b_rows.empty:
        return "", {}
    ua, ub = float(a_rows[cu].mean()), float(b_rows[cu].mean())
    fa = float(a_rows[cf].mean()) if cf in a_rows else float("nan")
    fb = float(b_rows[cf].mean()) if cf in b_rows else float("nan")
    cost = {"updates_a": ua, "updates_b": ub, "flops_a": fa, "flops_b": fb}
    differs = not (np.isclose(ua, ub, rtol=0.01) and (not np.isfinite(fa) or np.isclose(fa, fb, rtol=0.05)))
    cost["matched"] = not differs
    if not differs:
        return "", cost
    flops = f" ({fa / 1e12:.3g} vs {fb / 1e12:.3g} TFLOP)" if np.isfinite(fa) and np.isfinite(fb) else ""
    return (f" Unequal compute: {la} {ua:,.0f} updates, {lb} {ub:,.0f}{flops}; this part compares the arms as run, "
            "not at equal compute."), cost


def _unmeasured(*frames: pd.DataFrame) -> set:
    """Seeds with a finished trial whose measure gave no finite value (the frames' `_missing` rows: a
    search that found nothing, a quantity that could not be computed): failures of the measurement, not
    evidence."""
    out = set()
    for f in frames:
        if len(f):
            out |= set(f.loc[f["_missing"].astype(bool), "seed"].tolist())
    return out


def _verdict(part: str, claim: str, test: stats.Test, effect: float, ci, unit: str, rule: str, n: int,
             method: str, evidence: str, details: dict, unmeasured: int = 0) -> stats.Verdict:
    word, note = stats.word_for(ci, n, test=test)
    errors = int(details.get("errors", 0))
    if errors and word == "not reproduced":  # a trial that raised is a bug, not evidence against the claim
        word, note = "inconclusive", f"{errors} trials failed with an error"
    measured = n - unmeasured
    if unmeasured:
        details = {**details, "unmeasured_seeds": int(unmeasured)}
    if word != "inconclusive" and unmeasured and measured < stats.MIN_SEEDS:
        # seeds whose measure found nothing count at the threshold, so a part they fill reads on the failing
        # side by construction: with fewer than MIN_SEEDS seeds measured, it says nothing either way
        word, note = "inconclusive", f"{measured} of {n} seeds measured"
    v = stats.Verdict(part, claim, float(effect), (float(ci[0]), float(ci[1])), unit, rule, word, evidence, n,
                      method, note, details, test.to_dict())
    v.reason = stats.reason(v)
    return v


def _errors(*frames: pd.DataFrame) -> int:
    return int(sum((f["status"] == "error").sum() for f in frames if len(f)))


def _diverged_note(rows: pd.DataFrame, diverged_fails: bool) -> str:
    """With `diverged_fails=False` a trial that diverged after its value was measured keeps the value;
    the evidence still counts it."""
    if diverged_fails or rows.empty:
        return ""
    k = int(((rows["status"] == "diverged") & ~rows["_bad"]).sum())
    return f" {k} trials diverged after their value was measured (their values count as measured)." if k else ""


def _seed_values(rows: pd.DataFrame, value: str, worst: float | None, diverged_fails: bool,
                 agg: str) -> tuple[pd.Series, pd.Series, pd.DataFrame]:
    """(per-seed value, per-seed "has a failed trial", the rows with _v and _bad): failed trials take
    `worst` (NaN when the study states none) before the within-seed `agg`."""
    bad = failed(rows, value, diverged_fails)
    raw = _numeric(rows, value)
    v = raw.where(~bad, worst if worst is not None else np.nan)
    # a finished trial without a finite value: a measure that failed, not a divergence (the smoke tests look)
    rows = rows.assign(_v=v, _bad=bad, _missing=(rows["status"] == "ok") & ~np.isfinite(raw))
    g = rows.groupby("seed")
    return g["_v"].agg(agg), g["_bad"].any(), rows


def _judge_seeds(values: pd.Series, bad: pd.Series, test: stats.Test) -> pd.Series:
    """Per-seed values with every seed that had a failure moved to the not-reproduced side."""
    out = values.astype(float).copy()
    for seed in out.index[bad.reindex(out.index, fill_value=False).to_numpy()]:
        out[seed] = test.conservative(out[seed])
    return out


def _interval(values: np.ndarray, test: stats.Test) -> tuple[float, tuple[float, float], str]:
    if test.scale == "log":
        x = np.asarray(values, dtype=float)
        if len(x) and np.any(~(x > 0)):
            return float("nan"), stats.NAN2, "log-t"
        e, ci = stats.log_t_interval(x)
        return e, ci, "log-t"
    e, ci = stats.t_interval(values)
    return e, ci, "Student t"


def difference(t: pd.DataFrame, value: str, a: Mapping[str, Any], b: Mapping[str, Any], *, part: str,
               claim: str, unit: str, above: float | None = None, below: float | None = None,
               within: tuple[float, float] | None = None, kind: str | None = None,
               where: Mapping[str, Any] | None = None, worst: float | None = None, agg: str = "mean",
               diverged_fails: bool = True, fmt: str = ".3g", note: str = "",
               details: dict | None = None) -> stats.Verdict:
    """Mean over seeds of value(a) - value(b), each averaged (`agg`) within a seed first (Student t).
    `above`/`below` give the claimed side of a threshold (a threshold on the other side of 0 is a
    non-inferiority margin), `within=(lo, hi)` an equivalence band. A failed trial takes `worst`
    (the study's stated value, if any); its seed's difference never lands on the passing side."""
    test = _test(above, below, within, kind, "raw")
    base = select(t, where)
    A, B = select(base, a), select(base, b)
    sa, ba, A = _seed_values(A, value, worst, diverged_fails, agg)
    sb, bb, B = _seed_values(B, value, worst, diverged_fails, agg)
    seeds = sorted(set(sa.index) | set(sb.index))
    d = (sa.reindex(seeds) - sb.reindex(seeds))
    bad = ba.reindex(seeds, fill_value=True) | bb.reindex(seeds, fill_value=True)
    d = _judge_seeds(d, bad, test)
    effect, ci, method = _interval(d.to_numpy(), test)
    fails = (f"{int(A['_bad'].sum())} of {len(A)} {label(a)} and {int(B['_bad'].sum())} of {len(B)} {label(b)} "
             f"trials failed ({int(bad.sum())} seeds affected)")
    cost_text, cost = _cost_note(A, B, label(a), label(b))
    prefix = f"{label(where)}: " if where else ""
    ok_a, ok_b = A.loc[~A["_bad"], "_v"], B.loc[~B["_bad"], "_v"]
    ev = (f"{prefix}{label(a)} minus {label(b)}: {_fmt(effect, '+' + fmt)} {unit}, 95% CI "
          f"{stats.interval_text(ci, '+' + fmt)} ({method}, n={len(d)} seeds); mean of finished trials {label(a)} "
          f"{_fmt(float(ok_a.mean()) if len(ok_a) else np.nan, fmt)}, {label(b)} "
          f"{_fmt(float(ok_b.mean()) if len(ok_b) else np.nan, fmt)}; {fails}."
          + _diverged_note(pd.concat([A, B]), diverged_fails) + (f" {note}" if note else "") + cost_text)
    details = {"a": float(ok_a.mean()) if len(ok_a) else float("nan"),
               "b": float(ok_b.mean()) if len(ok_b) else float("nan"), "failed": int(A["_bad"].sum() + B["_bad"].sum()),
               "missing": int(A["_missing"].sum() + B["_missing"].sum()), "errors": _errors(A, B),
               "per_seed": {int(k): float(x) for k, x in d.items()}, "cost": cost, **(details or {})}
    return _verdict(part, claim, test, effect, ci, unit, _rule(method, test, unit, _failure_rule(value, worst, test,
                                                                                                   fmt)),
                    len(d), method, ev, details, len(_unmeasured(A, B) & set(seeds)))


def ratio(t: pd.DataFrame, value: str, a: Mapping[str, Any], b: Mapping[str, Any], *, part: str, claim: str,
          unit: str = "ratio", above: float | None = None, below: float | None = None,
          within: tuple[float, float] | None = None, kind: str | None = None,
          where: Mapping[str, Any] | None = None, worst: float | None = None, diverged_fails: bool = True,
          fmt: str = ".3g", note: str = "") -> stats.Verdict:
    """Geometric mean over seeds of mean value(a) / mean value(b) within each seed (t on log ratios).
    A seed with a failed trial (with `diverged_fails`, a diverged one too; a timing stays valid
    when its trial diverged: `diverged_fails=False`), or a ratio that is not positive, counts as
    the threshold ratio, or the study's stated `worst` value of a failed trial where that gives a
    ratio on the not-reproduced side."""
    test = _test(above, below, within, kind, "log")
    base = select(t, where)
    A, B = select(base, a), select(base, b)
    ga, ba, A = _seed_values(A, value, worst, diverged_fails, "mean")
    gb, bb, B = _seed_values(B, value, worst, diverged_fails, "mean")
    seeds = sorted(set(ga.index) | set(gb.index))
    r = ga.reindex(seeds) / gb.reindex(seeds)
    nonpos = ~(r > 0)
    bad = ba.reindex(seeds, fill_value=True) | bb.reindex(seeds, fill_value=True) | nonpos
    r = _judge_seeds(r.where(~nonpos), bad, test)
    effect, ci, method = _interval(r.to_numpy(), test)
    n_bad = int(A["_bad"].sum() + B["_bad"].sum())
    cost_text, cost = _cost_note(A, B, label(a), label(b))
    prefix = f"{label(where)}: " if where else ""
    ok_a, ok_b = A.loc[~A["_bad"], "_v"], B.loc[~B["_bad"], "_v"]
    ev = (f"{prefix}{label(a)} / {label(b)}: {_fmt(effect, fmt)}x, 95% CI {stats.interval_text(ci, fmt)} "
          f"(t on log ratios, n={len(r)} seeds, each seed's trials averaged first); mean of finished trials "
          f"{label(a)} {_fmt(float(ok_a.mean()) if len(ok_a) else np.nan, fmt)}, {label(b)} "
          f"{_fmt(float(ok_b.mean()) if len(ok_b) else np.nan, fmt)}; {n_bad} of {len(A) + len(B)} trials failed"
          + (f", {int(nonpos.sum())} seeds' ratios not positive" if nonpos.any() else "")
          + "." + _diverged_note(pd.concat([A, B]), diverged_fails) + (f" {note}" if note else "") + cost_text)
    failure = (_failure_rule(value, worst, test, fmt) if diverged_fails
               else "a diverged trial's value counts (it was measured); a non-finite one or a non-positive ratio "
                    f"counts as the threshold ({_fmt(test.threshold, fmt)})")
    return _verdict(part, claim, test, effect, ci, unit, _rule("log-t", test, "", failure), len(r), "log-t", ev,
                    {"a": float(ok_a.mean()) if len(ok_a) else float("nan"),
                     "b": float(ok_b.mean()) if len(ok_b) else float("nan"), "failed": n_bad,
                     "missing": int(A["_missing"].sum() + B["_missing"].sum()), "errors": _errors(A, B),
                     "per_seed": {int(k): float(x) for k, x in r.items()}, "cost": cost},
                    len(_unmeasured(A, B) & set(seeds)))


def mean(t: pd.DataFrame, value: str, *, part: str, claim: str, unit: str, what: str,
         above: float | None = None, below: float | None = None, within: tuple[float, float] | None = None,
         kind: str | None = None, scale: str = "raw", where: Mapping[str, Any] | None = None, agg: str = "mean",
         worst: float | None = None, diverged_fails: bool = True, fmt: str = ".3g", note: str = "",
         details: dict | None = None) -> stats.Verdict:
    """Mean over seeds of one arm's per-seed value (`agg` within a seed): Student t, or on the log
    scale (`scale="log"`, for positive right-skewed values) the geometric mean with t on the logs.
    A seed with a failed trial counts as the threshold, or the study's `worst` where that is on the
    not-reproduced side."""
    test = _test(above, below, within, kind, scale, bound=kind is None)  # one quantity against a bound
    base = select(t, where)
    s, bad, rows = _seed_values(base, value, worst, diverged_fails, agg)
    nonpos = ~(s > 0) if scale == "log" else pd.Series(False, index=s.index)
    s = _judge_seeds(s.where(~nonpos), bad | nonpos, test)
    effect, ci, method = _interval(s.to_numpy(), test)
    n_bad = int(rows["_bad"].sum())
    geo = "geometric mean " if scale == "log" else ""
    ev = (f"{what}: {geo}{_fmt(effect, fmt)} {unit}, 95% CI {stats.interval_text(ci, fmt)} ({method}, n={len(s)} "
          f"seeds); {n_bad} of {len(base)} trials failed ({int(bad.sum())} seeds affected)."
          + _diverged_note(rows, diverged_fails) + (f" {note}" if note else ""))
    return _verdict(part, claim, test, effect, ci, unit, _rule(method, test, unit, _failure_rule(value, worst, test,
                                                                                                   fmt)),
                    len(s), method, ev, {"failed": n_bad, "missing": int(rows["_missing"].sum()),
                                         "errors": _errors(rows),
                                         "per_seed": {int(k): float(x) for k, x in s.items()}, **(details or {})},
                    len(_unmeasured(rows)))


def _events(t: pd.DataFrame, event: str, failed_as: float) -> tuple[pd.Series, pd.Series]:
    """0/1 events; a trial that raised (status "error") or has no finite event counts as `failed_as`.
    A diverged trial's event is the study's to define (in its measure), so it counts as given."""
    e = _numeric(t, event)
    bad = (t["status"] == "error") | ~np.isfinite(e)
    return e.where(~bad, failed_as), bad


def _seed_events(rows: pd.DataFrame, event: str, failed_as: float,
                 per_seed_rule: str) -> tuple[pd.Series, int, pd.DataFrame]:
    """(per-seed event, trials failed, the rows with `_missing`: finished trials without a finite event)."""
    e, bad = _events(rows, event, failed_as)
    rows = rows.assign(_missing=(rows["status"] == "ok") & ~np.isfinite(_numeric(rows, event)))
    g = rows.assign(_e=e).groupby("seed")["_e"]
    if len(rows) and g.size().max() > 1:
        if per_seed_rule not in ("any", "all"):
            raise ValueError("several trials a seed: say how a seed's event is read, per_seed='any' or 'all' "
                             "(the seed is the independent unit)")
        return (g.max() if per_seed_rule == "any" else g.min()), int(bad.sum()), rows
    return g.first(), int(bad.sum()), rows


def rate(t: pd.DataFrame, event: str, *, part: str, claim: str, what: str, above: float | None = None,
         below: float | None = None, where: Mapping[str, Any] | None = None, per_seed: str = "",
         note: str = "") -> stats.Verdict:
    """The rate of `event` (0/1) over seeds, one event a seed (`per_seed="any"|"all"` reads a seed
    with several trials), Clopper-Pearson. A trial that raised counts against the claim: no event
    for an "above" claim, an event for a "below" one."""
    test = _test(above, below, None, None, "raw")
    base = select(t, where)
    failed_as = 0.0 if test.side == "above" else 1.0
    e, n_bad, rows = _seed_events(base, event, failed_as, per_seed)
    k, n = int(e.sum()), len(e)
    effect, ci = stats.rate_interval(k, n)
    ev = (f"{what}: {k}/{n} seeds = {_fmt(effect, '.2f')}, 95% CI {stats.interval_text(ci, '.2f')} "
          f"(Clopper-Pearson); {n_bad} trials failed." + (f" {note}" if note else ""))
    failure = f"a trial that raised counts as {'an event' if failed_as else 'no event'}"
    return _verdict(part, claim, test, effect, ci, "rate", _rule("Clopper-Pearson", test, "", failure), n,
                    "Clopper-Pearson", ev, {"k": k, "seeds": n, "failed": n_bad, "missing": int(rows["_missing"].sum()),
                                             "events": k, "errors": _errors(base)},
                    len(_unmeasured(rows)))


def paired_rates(t: pd.DataFrame, event: str, a: Mapping[str, Any], b: Mapping[str, Any], *, part: str,
                 claim: str, what: str, above: float | None = None, below: float | None = None,
                 kind: str | None = None, where: Mapping[str, Any] | None = None, per_seed: str = "",
                 note: str = "") -> stats.Verdict:
    """rate(a) - rate(b) of `event` over seeds, paired by seed (the independent unit: a seed with
    several trials an arm is read by `per_seed="any"|"all"` first), Newcombe's interval for paired
    binary data. A trial that raised counts against the claim (no event in the arm the claim wants
    more of, an event in the other)."""
    test = _test(above, below, None, kind, "raw")
    base = select(t, where)
    fa, fb = (0.0, 1.0) if test.side == "above" else (1.0, 0.0)
    ea, bad_a, rows_a = _seed_events(select(base, a), event, fa, per_seed)
    eb, bad_b, rows_b = _seed_events(select(base, b), event, fb, per_seed)
    both = pd.concat([ea.rename("a"), eb.rename("b")], axis=1).dropna()
    effect, ci = stats.paired_rate_interval(both["a"].to_numpy(), both["b"].to_numpy())
    ka, kb = int(both["a"].sum()), int(both["b"].sum())
    read = {"any": " (a seed counts if any of its trials has the event)",
            "all": " (a seed counts if all of its trials have the event)"}.get(per_seed, "")
    ev = (f"{what}{read}: {label(a)} {ka}/{len(both)} seeds, {label(b)} {kb}/{len(both)}; difference "
          f"{_fmt(effect, '+.2f')}, 95% CI {stats.interval_text(ci, '+.2f')} (Newcombe, paired by seed); "
          f"{bad_a + bad_b} trials failed." + (f" {note}" if note else ""))
    failure = "a trial that raised counts against the claim"
    return _verdict(part, claim, test, effect, ci, "rate difference", _rule("Newcombe (paired)", test, "", failure),
                    len(both), "Newcombe (paired)", ev, {"pairs": len(both), "failed": bad_a + bad_b,
                                                         "missing": int(rows_a["_missing"].sum()
                                                                        + rows_b["_missing"].sum()),
                                                         "events": ka + kb, "errors": _errors(rows_a, rows_b)},
                    len(_unmeasured(rows_a, rows_b) & set(both.index)))


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
