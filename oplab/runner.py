"""Study execution: arms x seeds -> trials, a store on disk, executors, progress.

A study module declares NAME, VERSION, SEEDS, arms(budget). The runner expands
its arms and seeds into trial specs, skips those whose record is already
stored, trains the rest on local worker processes (or a Dask cluster), and
writes each record atomically as soon as it arrives, so an interrupted run
loses no finished trial.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

from oplab import records
from oplab.config import Trial, trial_key
from oplab.records import Record
from oplab.train import Runtime

BUDGETS = ("smoke", "quick", "full")
EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class TrialSpec:
    study: str
    arm: str
    seed: int
    budget: str
    version: int
    trial: Trial

    @property
    def key(self) -> str:
        return trial_key(self.trial, self.seed, self.budget, self.study, self.version)


def default_seeds(study: ModuleType, budget: str) -> list[int]:
    return list(range(study.SEEDS[budget]))


def expand(study: ModuleType, budget: str, seeds: Iterable[int]) -> list[TrialSpec]:
    """Every (arm, seed) of a study at a budget, as trial specs, seed-major: the arms of one
    seed run next to each other, so that per-seed timing comparisons share machine conditions."""
    arms = study.arms(budget)
    return [TrialSpec(study.NAME, arm, seed, budget, study.VERSION, trial)
            for seed in seeds for arm, trial in arms.items()]


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


def threads_per_job(jobs: int) -> int:
    """Torch threads per trial. Fixed at 1 so that --jobs never changes a trial's numbers
    (reductions split over threads can round differently); parallelism comes from jobs."""
    return 1


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
                collect(run_spec(spec, replace(runtime, threads=threads_per_job(1))))
        else:
            _run_pool(list(todo.values()), replace(runtime, threads=threads_per_job(jobs)), jobs, collect)
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
