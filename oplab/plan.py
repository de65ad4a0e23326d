"""Planning a run: a study's arms x seed blocks -> trial specs, and the choice of tuned arms.

A study module declares NAME, VERSION, SEEDS, arms(budget) -> {name: Arm} and, optionally,
TUNE (a Tune). A run is planned in seed blocks (disjoint by construction; the command line
refuses overlaps):
- tuning seeds: TUNING_SEED0, TUNING_SEED0 + 1, ... (Tune.seeds per budget): every arm;
- verdict seeds: 0..n-1 by default, or `--seeds`: the arms tuning chose;
- replication seeds (`--replicate`): each verdict seed + REPLICATION_OFFSET: the same arms.

The tuned arms are chosen by one rule (`best_levels`): per group of the tuned factor's `within`
factors, the level with the lowest mean training score over the tuning seeds, a failed trial
counting as +inf, ties to the smaller level. The pipeline (oplab.pipeline), the cost estimate
(oplab.estimate), the report's tuning table (oplab.kit) and the tests all use it.

This module knows configs and study modules, not records' storage, pandas or verdicts: execution
(oplab.runner) imports it for TrialSpec.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import ModuleType
from typing import Any

import numpy as np

from oplab.config import Trial, trial_key

BUDGETS = ("smoke", "quick", "long", "full")
TUNING_SEED0 = 1000
REPLICATION_OFFSET = 100
BLOCKS = ("tuning", "verdict", "replication")
# frame columns that a factor name may not take
RESERVED = ("arm", "seed", "block", "budget", "key", "status", "diverged_step", "extra", "chosen")


# factors that name a setting of the trial: an arm's factor of this name must equal the trial's
# setting (each setting is stated once; a table that groups by the factor groups by the setting)
TRIAL_FACTORS = {"lr": lambda tr: tr.optim.lr, "momentum": lambda tr: tr.optim.momentum,
                 "batch_size": lambda tr: tr.batch_size, "steps": lambda tr: tr.steps}


@dataclass(frozen=True)
class Arm:
    """One condition of a study: the trial to run and the factors that describe it. A factor named
    as a trial setting (TRIAL_FACTORS: lr, momentum, batch_size, steps) is refused when it
    disagrees with the trial."""

    trial: Trial
    factors: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, read in TRIAL_FACTORS.items():
            if name not in self.factors:
                continue
            have, given = read(self.trial), self.factors[name]
            try:
                same = np.isclose(float(given), float(have), rtol=1e-12, atol=0.0)
            except (TypeError, ValueError):
                same = False
            if not same:
                raise ValueError(f"factor {name}={given!r} disagrees with the trial's setting {have!r}: state "
                                 "each setting once, in the trial")


def matched(arm: Arm, updates: int, factors: Mapping[str, Any] | None = None) -> Arm:
    """A compute-matched control: the same arm given `updates` updates (e.g. the other arm's
    pre-training plus fine-tuning), with its own factors (say in them that it is the matched
    control). A part that compares arms of different cost compares against this arm."""
    return Arm(replace(arm.trial, steps=int(updates)), dict(factors if factors is not None else arm.factors))


@dataclass(frozen=True)
class Tune:
    """Choose `factor` (one of the arms' factors, e.g. "lr") per group of arms sharing the
    `within` factors: the level with the lowest mean `score` over the tuning seeds (a
    failed trial counts as +inf; ties go to the smaller level). `score` is a training
    metric, never a test one. Only the chosen arms are trained on the verdict seeds."""

    factor: str
    within: tuple[str, ...]
    score: str = "train_loss_full"
    seeds: Mapping[str, int] = field(default_factory=lambda: {"smoke": 1, "quick": 2, "long": 2, "full": 2})
    # True: a group with a single level (nothing to choose) skips the tuning seeds and goes straight to the
    # verdict seeds; False (the default) trains every arm on the tuning seeds
    grids_only: bool = False

    def seed_list(self, budget: str) -> list[int]:
        return list(range(TUNING_SEED0, TUNING_SEED0 + self.seeds[budget]))


def replication_seeds(seeds: list[int]) -> list[int]:
    return [s + REPLICATION_OFFSET for s in seeds]


@dataclass(frozen=True)
class TrialSpec:
    study: str
    arm: str
    seed: int
    budget: str
    version: int
    trial: Trial
    factors: tuple = ()  # ((name, value), ...): the arm's factors
    block: str = "verdict"  # tuning | verdict | replication

    @functools.cached_property
    def key(self) -> str:  # computed once a spec (a hash of the whole config; asked for many times a run)
        return trial_key(self.trial, self.seed, self.budget, self.study, self.version)


@dataclass
class StudyPlan:
    """One study's seed blocks and trial specs at a budget."""

    study: ModuleType
    budget: str
    seeds: list[int]
    replication: list[int] = field(default_factory=list)
    tuning_seeds: list[int] = field(default_factory=list)
    tuning: list[TrialSpec] = field(default_factory=list)
    trials: list[TrialSpec] = field(default_factory=list)  # verdict + replication, set after tuning

    @property
    def tune(self) -> Tune | None:
        return getattr(self.study, "TUNE", None)


def has_budget(study: ModuleType, budget: str) -> bool:
    """Whether a study declares settings for `budget`: every study has smoke, quick and full; a study
    without a "long" entry in SETUP declares long = quick (its claim does not need scale)."""
    return budget != "long" or "long" in getattr(study, "SETUP", {})


def default_seeds(study: ModuleType, budget: str) -> list[int]:
    return list(range(study.SEEDS[budget]))


def arms_of(study: ModuleType, budget: str) -> dict[str, Arm]:
    arms = study.arms(budget)
    for name, arm in arms.items():
        if not isinstance(arm, Arm):
            raise TypeError(f"{study.NAME}: arm {name!r} must be a kit.Arm(trial, factors), got {type(arm).__name__}")
        bad = [f for f in arm.factors if f in RESERVED]
        if bad:
            raise ValueError(f"{study.NAME}: arm {name!r} uses reserved factor names {bad}; reserved: {RESERVED}")
    return arms


def check_trial(trial: Trial, where: str = "") -> None:
    """Raise ValueError, before any training, for a name no registry knows or an option its
    builder does not take (model, activation, initializer, normalizer, optimizer, schedule,
    monitors, dataset), or a batch larger than the training split; the teacher too."""
    from oplab import critical, init, models, monitors, norms, optim, tasks
    from oplab.dataset import DATASETS
    from oplab.registry import check_kwargs

    what = f"{where}: " if where else ""
    try:
        if trial.data.name not in tasks.STREAMS:
            check_kwargs(DATASETS[trial.data.name], trial.data.opts, f"dataset {trial.data.name!r}")
        check_kwargs(models.MODELS[trial.model.name], trial.model.opts, f"model {trial.model.name!r}")
        models.ACTIVATIONS[trial.model.activation]
        check_kwargs(init.INITS[trial.init.name], trial.init.opts, f"initializer {trial.init.name!r}")
        norms.NORMS[trial.norm.name]
        opts = trial.optim.opts
        check_kwargs(optim.OPTIMIZERS[trial.optim.name], {k: v for k, v in opts.items()
                                                         if not k.startswith("schedule_")},
                     f"optimizer {trial.optim.name!r}")
        check_kwargs(optim.SCHEDULES[trial.optim.schedule], {k[len("schedule_"):]: v for k, v in opts.items()
                                                            if k.startswith("schedule_")},
                     f"schedule {trial.optim.schedule!r}")
        if trial.optim.clip not in optim.CLIPS:
            raise ValueError(f"clip {trial.optim.clip!r} is not valid; valid: {', '.join(optim.CLIPS)}")
        for m in trial.monitors:
            monitors.MONITORS[m]
        if trial.critical.name != "none":
            check_kwargs(critical.SEARCHES[trial.critical.name], trial.critical.opts,
                         f"critical-point search {trial.critical.name!r}")
    except KeyError as err:  # an unknown name: the registry's message lists the valid ones
        raise ValueError(f"{what}{err}") from None
    except ValueError as err:
        raise ValueError(f"{what}{err}") from None
    if trial.data.n_train and trial.batch_size > trial.data.n_train:
        raise ValueError(f"{what}batch_size {trial.batch_size} is larger than data.n_train {trial.data.n_train}")
    if trial.teacher is not None:
        check_trial(trial.teacher, f"{where} (its teacher)" if where else "its teacher")


def check_arms(study: ModuleType, budget: str) -> None:
    """Every arm of a study at a budget passes check_trial (ValueError naming the arm)."""
    for name, arm in arms_of(study, budget).items():
        check_trial(arm.trial, f"{study.NAME}: arm {name!r}")


# --- the choice of tuned arms: one rule ---------------------------------------------------------


def best_levels(rows: Iterable[tuple[tuple, Any, float]]) -> dict[tuple, Any]:
    """group -> the level with the lowest mean fit, from (group, level, fit) rows; a failed trial's
    fit is +inf; ties go to the smaller level."""
    fits: dict[tuple, dict[Any, list[float]]] = {}
    for group, level, fit in rows:
        fits.setdefault(group, {}).setdefault(level, []).append(fit)
    best = {}
    for group, levels in fits.items():
        means = {lv: (math.inf if any(math.isinf(f) for f in fs) else math.fsum(fs) / len(fs))
                 for lv, fs in levels.items()}
        best[group] = min(means, key=lambda lv: (means[lv], lv))
    return best


def fit(status: str, value: Any) -> float:
    """A tuning trial's fit: its score, or +inf when it failed or its score is missing or not finite."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.inf
    return v if status == "ok" and math.isfinite(v) else math.inf


def choose(specs: Iterable[TrialSpec], recs: Mapping[str, Any], tune: Tune) -> dict[tuple, Any]:
    """The chosen level of `tune.factor` per group of `tune.within`, from the tuning trials' records
    (key -> Record)."""
    rows = []
    for s in specs:
        rec = recs.get(s.key)
        if rec is None:
            continue
        f = dict(s.factors)
        rows.append((tuple(f[w] for w in tune.within), f[tune.factor], fit(rec.status, rec.final.get(tune.score))))
    return best_levels(rows)


def first_levels(arms: Mapping[str, Arm], tune: Tune) -> dict[tuple, Any]:
    """The first level of the tuned factor in each group: a stand-in for the choice where it is not
    known yet (every level of a group costs alike; the cost estimate and planted tests use it)."""
    first: dict = {}
    for a in arms.values():
        first.setdefault(tuple(a.factors[w] for w in tune.within), a.factors[tune.factor])
    return first


def chosen_arms(arms: Mapping[str, Arm], tune: Tune | None, chosen: Mapping[tuple, Any] | None) -> dict[str, Arm]:
    """The arms at their group's chosen level of the tuned factor (all arms without a Tune or a choice)."""
    if chosen is None or tune is None:
        return dict(arms)
    return {n: a for n, a in arms.items()
            if chosen.get(tuple(a.factors[w] for w in tune.within)) == a.factors[tune.factor]}


def single_level(arms: Mapping[str, Arm], tune: Tune | None) -> set[str]:
    """With Tune.grids_only, the arms alone in their group (nothing to choose): they skip tuning."""
    if tune is None or not tune.grids_only:
        return set()
    groups = {n: tuple(a.factors[w] for w in tune.within) for n, a in arms.items()}
    sizes = Counter(groups.values())
    return {n for n, g in groups.items() if sizes[g] == 1}


# --- specs and plans -------------------------------------------------------------------------------


def expand(study: ModuleType, budget: str, seeds: Iterable[int], block: str = "verdict",
           chosen: dict | None = None) -> list[TrialSpec]:
    """Every (arm, seed) of a study at a budget, as trial specs, seed-major: the arms of one
    seed run next to each other, so that per-seed timing comparisons share machine conditions.
    With `chosen` (from choose), only the arms at their group's chosen level of the tuned factor."""
    arms = arms_of(study, budget)
    tune = getattr(study, "TUNE", None)
    single = single_level(arms, tune)
    if chosen is not None and tune is not None:
        keep = set(chosen_arms(arms, tune, chosen)) | single
        arms = {n: a for n, a in arms.items() if n in keep}
    elif block == "tuning":  # with Tune.grids_only, a single-level group has nothing to tune
        arms = {n: a for n, a in arms.items() if n not in single}
    return [TrialSpec(study.NAME, name, seed, budget, study.VERSION, arm.trial,
                      tuple(sorted(arm.factors.items())), block)
            for seed in seeds for name, arm in arms.items()]


def plan(study: ModuleType, budget: str, seeds: list[int], replicate: bool = False) -> StudyPlan:
    """The seed blocks of a study; raises ValueError when two blocks share a seed."""
    tune = getattr(study, "TUNE", None)
    p = StudyPlan(study, budget, list(seeds), replication_seeds(seeds) if replicate else [],
                  tune.seed_list(budget) if tune else [])
    blocks = {"verdict": set(p.seeds), "replication": set(p.replication), "tuning": set(p.tuning_seeds)}
    names = list(blocks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = blocks[a] & blocks[b]
            if common:
                raise ValueError(f"{study.NAME}: {a} and {b} seeds overlap at {sorted(common)[:5]}; tuning seeds "
                                 f"start at {TUNING_SEED0}, replication seeds are the verdict seeds + "
                                 f"{REPLICATION_OFFSET}")
    p.tuning = expand(study, budget, p.tuning_seeds, "tuning") if tune else []
    if not tune:
        p.trials = expand(study, budget, p.seeds) + expand(study, budget, p.replication, "replication")
    return p


def finish_plan(p: StudyPlan, tuning_records: Mapping[str, Any]) -> None:
    """After tuning: the verdict and replication specs of the chosen arms."""
    if p.tune is None:
        return
    chosen = choose(p.tuning, tuning_records, p.tune)
    p.trials = (expand(p.study, p.budget, p.seeds, "verdict", chosen)
                + expand(p.study, p.budget, p.replication, "replication", chosen))


def teacher_spec(spec: TrialSpec) -> TrialSpec | None:
    """The trial whose weights `spec` learns from (same study, seed, budget and block), or None."""
    if spec.trial.teacher is None:
        return None
    return TrialSpec(spec.study, f"teacher of {spec.arm}", spec.seed, spec.budget, spec.version,
                     spec.trial.teacher, (), spec.block)
