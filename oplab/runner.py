"""Execution: train trial specs not yet stored, on local processes or a Dask cluster (oplab.pools),
and store each record (oplab.store) as soon as it arrives, so an interrupted run loses no
finished trial. A trial that learns from a teacher waits until the teacher is stored; a teacher
is trained once per seed however many trials learn from it.

This module knows trial specs, the store and the training entry point; it imports neither pandas
nor the verdict code (oplab.kit).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from oplab import pools
from oplab.job import error_record, run_spec, untrainable
from oplab.plan import TrialSpec, teacher_spec
from oplab.pools import SchedulerError, check_scheduler  # noqa: F401 - for the command line
from oplab.records import Record
from oplab.store import Store
from oplab.train import Runtime

EXECUTORS = ("local", "dask")
# Torch threads per trial, fixed at 1 so that --jobs never changes a trial's numbers
# (reductions split over threads can round differently); parallelism comes from jobs.
THREADS_PER_TRIAL = 1


def default_jobs() -> int:
    return max(1, os.cpu_count() or 1)


class _Order:
    """Which trials may start: a trial waits until the teacher it learns from is stored."""

    def __init__(self, todo: dict[str, TrialSpec], teachers: set[str]):
        self.waiting: dict[str, list[TrialSpec]] = {}
        ready = []
        for s in todo.values():
            t = teacher_spec(s)
            if t is not None and t.key in todo:
                self.waiting.setdefault(t.key, []).append(s)
            else:
                ready.append(s)
        # teachers first, so that their students can start as early as possible
        self.first = sorted(ready, key=lambda s: s.key not in teachers)

    def after(self, key: str) -> list[TrialSpec]:
        return self.waiting.pop(key, [])


def run(
    specs: list[TrialSpec],
    results_dir: Path,
    runtime: Runtime,
    jobs: int = 1,
    executor: str = "local",
    scheduler: str | None = None,
    progress: bool = True,
    desc: str = "",
    recompute=None,
) -> dict[str, Record]:
    """Train every spec not yet stored (and, first, every teacher a spec learns from); return
    key -> record for all of them, teachers included.

    Records (and a teacher's weights) are saved by this, the collecting, process as each trial
    finishes. A teacher is trained once per seed however many trials learn from it; when its
    record is stored but its weights are not (they are not committed with results/), it is
    trained again, with a warning, before any trial that needs it. `recompute(record) -> bool`
    (e.g. a staleness test) marks stored records to train again."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r} is not valid; valid: {', '.join(EXECUTORS)}")
    wanted: dict[str, TrialSpec] = {}
    teachers: set[str] = set()

    def add(s: TrialSpec) -> None:
        wanted.setdefault(s.key, s)  # arms that share a config share one trial (same key)
        t = teacher_spec(s)
        if t is not None:
            teachers.add(t.key)
            add(t)

    for s in specs:
        add(s)
    stores = {s.study: Store(results_dir, s.study) for s in wanted.values()}
    done: dict[str, Record] = {}
    todo: dict[str, TrialSpec] = {}
    for key, s in wanted.items():
        rec = stores[s.study].load(key)
        if rec is None or rec.status == "error" or (recompute is not None and recompute(rec)):
            # a trial that raised is tried again (a divergence is a result and stays)
            todo[key] = s
        else:
            done[key] = rec
    # a student to train needs its teacher's weights: retrain a stored teacher whose weights are gone
    queue = list(todo.values())
    while queue:
        t = teacher_spec(queue.pop())
        if t is None or t.key in todo:
            continue
        if done[t.key].status == "ok" and stores[t.study].load_weights(t.key) is None:
            warnings.warn(f"{t.study}: the weights of teacher trial {t.key} (seed {t.seed}) are not stored; "
                          "training it again", stacklevel=2)
            todo[t.key] = t
            del done[t.key]
            queue.append(t)
    if not todo:
        return done

    bar = tqdm(total=len(todo), desc=desc or "trials", unit="trial", disable=not progress, dynamic_ncols=True)
    order = _Order(todo, teachers)

    def collect(spec: TrialSpec, rec: Record, weights: bytes | None) -> list[TrialSpec]:
        """Store a finished trial; return the trials it lets start."""
        if weights is not None:
            stores[rec.study].save_weights(rec.key, weights)
        stores[rec.study].save(rec)
        done[rec.key] = rec
        bar.set_postfix_str(f"{rec.study} {rec.status}", refresh=False)
        bar.update(1)
        released = order.after(spec.key)
        if rec.status == "ok":
            return released
        for s in released:  # a diverged teacher: its students are failures that name it
            collect(s, untrainable(s, rec), None)
        return []

    def args(s: TrialSpec) -> tuple:
        t = teacher_spec(s)
        return s, rt, (stores[t.study].load_weights(t.key) if t is not None else None), s.key in teachers

    rt = replace(runtime, threads=THREADS_PER_TRIAL)
    first = []
    for s in order.first:  # a teacher stored as diverged: its students fail without training
        t = teacher_spec(s)
        if t is not None and done[t.key].status != "ok":
            collect(s, untrainable(s, done[t.key]), None)
        else:
            first.append(s)
    order.first = first
    try:
        if executor == "dask":
            pools.run_dask(order.first, args, scheduler, collect)
        elif jobs <= 1:
            ready = list(order.first)
            while ready:
                s = ready.pop(0)
                ready += collect(s, *run_spec(*args(s)))
        else:
            pools.run_local(order.first, args, jobs, len(todo), collect)
            lost = [s for s in todo.values() if s.key not in done]
            if lost:  # the pool broke for good (workers killed): the rest are errors, tried again next run
                for s in lost:
                    collect(s, error_record(s, "its worker process died before it finished"), None)
    finally:
        bar.close()
    return done
