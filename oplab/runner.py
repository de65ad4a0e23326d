"""Study execution: arms x seeds -> trials, a store on disk, executors, progress.

A study module declares NAME, VERSION, SEEDS, arms(budget) -> {name: kit.Arm} and,
optionally, TUNE (a kit.Tune). The runner plans a study in seed blocks: tuning
trials first (every arm on the tuning seeds), then the verdict block (and the
replication block) of the arms chosen by tuning. It skips trials whose record is
already stored, trains the rest on local worker processes (or a Dask cluster),
and writes each record atomically as soon as it arrives, so an interrupted run
loses no finished trial.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

from oplab import kit, records
from oplab.config import Trial, trial_key
from oplab.records import Record
from oplab.train import Runtime

BUDGETS = ("smoke", "quick", "full")
EXECUTORS = ("local", "dask")
# Torch threads per trial, fixed at 1 so that --jobs never changes a trial's numbers
# (reductions split over threads can round differently); parallelism comes from jobs.
THREADS_PER_TRIAL = 1
# frame columns that a factor name may not take
RESERVED = ("arm", "seed", "block", "budget", "key", "status", "diverged_step", "extra", "chosen")


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

    @property
    def key(self) -> str:
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
    def tune(self) -> kit.Tune | None:
        return getattr(self.study, "TUNE", None)


def default_seeds(study: ModuleType, budget: str) -> list[int]:
    return list(range(study.SEEDS[budget]))


def arms_of(study: ModuleType, budget: str) -> dict[str, kit.Arm]:
    arms = study.arms(budget)
    for name, arm in arms.items():
        if not isinstance(arm, kit.Arm):
            raise TypeError(f"{study.NAME}: arm {name!r} must be a kit.Arm(trial, factors), got {type(arm).__name__}")
        bad = [f for f in arm.factors if f in RESERVED]
        if bad:
            raise ValueError(f"{study.NAME}: arm {name!r} uses reserved factor names {bad}; reserved: {RESERVED}")
    return arms


def expand(study: ModuleType, budget: str, seeds: Iterable[int], block: str = "verdict",
           chosen: dict | None = None) -> list[TrialSpec]:
    """Every (arm, seed) of a study at a budget, as trial specs, seed-major: the arms of one
    seed run next to each other, so that per-seed timing comparisons share machine conditions.
    With `chosen` (from kit.choose), only the arms at their group's chosen level of the tuned factor."""
    arms = arms_of(study, budget)
    tune = getattr(study, "TUNE", None)
    if chosen is not None and tune is not None:
        arms = {n: a for n, a in arms.items()
                if chosen.get(tuple(a.factors[w] for w in tune.within)) == a.factors[tune.factor]}
    return [TrialSpec(study.NAME, name, seed, budget, study.VERSION, arm.trial,
                      tuple(sorted(arm.factors.items())), block)
            for seed in seeds for name, arm in arms.items()]


def plan(study: ModuleType, budget: str, seeds: list[int], replicate: bool = False) -> StudyPlan:
    """The seed blocks of a study; raises ValueError when two blocks share a seed."""
    tune = getattr(study, "TUNE", None)
    p = StudyPlan(study, budget, list(seeds), kit.replication_seeds(seeds) if replicate else [],
                  tune.seed_list(budget) if tune else [])
    blocks = {"verdict": set(p.seeds), "replication": set(p.replication), "tuning": set(p.tuning_seeds)}
    names = list(blocks)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            common = blocks[a] & blocks[b]
            if common:
                raise ValueError(f"{study.NAME}: {a} and {b} seeds overlap at {sorted(common)[:5]}; tuning seeds "
                                 f"start at {kit.TUNING_SEED0}, replication seeds are the verdict seeds + "
                                 f"{kit.REPLICATION_OFFSET}")
    p.tuning = expand(study, budget, p.tuning_seeds, "tuning") if tune else []
    if not tune:
        p.trials = expand(study, budget, p.seeds) + expand(study, budget, p.replication, "replication")
    return p


def finish_plan(p: StudyPlan, tuning_frame) -> None:
    """After tuning: the verdict and replication specs of the chosen arms."""
    if p.tune is None:
        return
    chosen = kit.choose(tuning_frame, p.tune)
    p.trials = (expand(p.study, p.budget, p.seeds, "verdict", chosen)
                + expand(p.study, p.budget, p.replication, "replication", chosen))


class Store:
    """One JSON file a trial under results/<study>/trials/."""

    def __init__(self, results_dir: Path, study: str):
        self.dir = Path(results_dir) / study / "trials"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def load(self, key: str) -> Record | None:
        return records.load(self.path(key), key)

    def save(self, record: Record) -> None:
        records.save(record, self.path(record.key))


def run_spec(spec: TrialSpec, runtime: Runtime) -> Record:
    """Train one trial and stamp the record with its key (runs in a worker)."""
    from oplab.train import train

    rec = train(spec.trial, spec.seed, runtime)
    return replace(rec, key=spec.key, study=spec.study, budget=spec.budget, version=spec.version)


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


def run(
    specs: list[TrialSpec],
    results_dir: Path,
    runtime: Runtime,
    jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    progress: bool = True,
    desc: str = "",
) -> dict[str, Record]:
    """Train every spec not yet stored; return key -> record for all of them.

    Records are saved by this (the collecting) process as each trial finishes."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not valid; valid: {', '.join(EXECUTORS)}")
    stores = {s.study: Store(results_dir, s.study) for s in specs}
    done: dict[str, Record] = {}
    todo: dict[str, TrialSpec] = {}
    for s in specs:  # arms that share a config share one trial (same key)
        if s.key in done or s.key in todo:
            continue
        rec = stores[s.study].load(s.key)
        if rec is None:
            todo[s.key] = s
        else:
            done[s.key] = rec
    if not todo:
        return done

    bar = tqdm(total=len(todo), desc=desc or "trials", unit="trial", disable=not progress, dynamic_ncols=True)

    def collect(rec: Record) -> None:
        stores[rec.study].save(rec)
        done[rec.key] = rec
        bar.set_postfix_str(f"{rec.study} {rec.status}", refresh=False)
        bar.update(1)

    try:
        if executor == "dask":
            _run_dask(list(todo.values()), runtime, scheduler, collect)
        elif jobs <= 1:
            for spec in todo.values():
                collect(run_spec(spec, replace(runtime, threads=THREADS_PER_TRIAL)))
        else:
            _run_pool(list(todo.values()), replace(runtime, threads=THREADS_PER_TRIAL), jobs, collect)
    finally:
        bar.close()
    return done


def _init_worker() -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)


def _run_pool(todo: list[TrialSpec], runtime: Runtime, jobs: int, collect) -> None:
    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    pool = cf.ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=ctx, initializer=_init_worker)
    try:
        futures = [pool.submit(run_spec, s, runtime) for s in todo]
        for fut in cf.as_completed(futures):
            collect(fut.result())
    except BaseException:  # Ctrl-C or a failed trial: stop the workers now; stored records stay
        workers = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in workers:
            p.terminate()
        raise
    pool.shutdown()


def _run_dask(todo: list[TrialSpec], runtime: Runtime, scheduler: str | None, collect) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise RuntimeError("--executor dask needs dask.distributed: pip install 'oplab[cluster]'") from None
    # without a scheduler: an in-process cluster (for trying the path out)
    client = Client(scheduler) if scheduler else Client(processes=False, n_workers=1, threads_per_worker=2)
    try:
        futures = [client.submit(run_spec, s, runtime, pure=False) for s in todo]
        for fut in as_completed(futures):
            collect(fut.result())  # workers return records; this process writes them
    finally:
        client.close()
