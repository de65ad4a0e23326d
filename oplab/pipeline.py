"""A run, top to bottom: plan -> tune -> choose -> train -> judge and report.

    from oplab import pipeline
    from studies import wn_vs_bn
    out = pipeline.run([wn_vs_bn], budget="smoke", results="/tmp/oplab", replicate=True)
    out.verdicts["wn_vs_bn"]["word"]

Each step is one call into the module that owns it:
- plan (oplab.plan): each study's arms x seed blocks; the tuning specs first;
- tune: train the tuning specs (oplab.runner: skips stored records, stores each as it arrives);
- choose (oplab.plan.finish_plan): the tuned arms, by the one rule, from the tuning records;
- train: the verdict (and replication) specs of the chosen arms;
- judge and report (oplab.report.write_study): parts from the records, the pooled headline and
  the halves, the study's page; then the index, results/README.md.

The command line (oplab.cli) parses and checks the flags, takes the folder's lock and prints;
everything a run does happens here, so a run can be driven from Python (a notebook, a script that
sweeps budgets) exactly as `run_all.py` drives it. With `report_only` nothing trains: the stored
records are read, and the ones that cannot be read are named (Outcome.unreadable), never dropped.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from oplab import estimate, records, report, runner
from oplab import plan as planning
from oplab.records import Record
from oplab.store import Store
from oplab.train import Runtime


class NothingStored(Exception):
    """A report-only run found no stored records to build from (message: what is missing)."""


@dataclass
class Outcome:
    """What a run did: its plans, every record it used, each study's verdict (from write_study), and
    the counts of the end-of-run line."""

    plans: list[planning.StudyPlan]
    records: dict[str, Record]
    verdicts: dict[str, dict] = field(default_factory=dict)
    index: Path | None = None
    trained: int = 0
    reused: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # study -> trials that raised
    unreadable: dict[str, list[str]] = field(default_factory=dict)  # study -> record files unreadable
    seconds: float = 0.0


def run(studies: Sequence[ModuleType], budget: str = "quick", results: str | Path = "results",
        seeds: list[int] | None = None, replicate: bool = False, *, runtime: Runtime = Runtime(),
        jobs: int = 1, executor: str = "local", scheduler: str | None = None, report_only: bool = False,
        recompute_stale: bool = False, progress: bool = True, on_study=None) -> Outcome:
    """Run (or, with `report_only`, rebuild the reports of) `studies` at `budget` into `results`.
    `seeds`: the verdict seeds (default: each study's own); `on_study(name, verdict, page)` is called
    as each study's page is written. Raises runner.SchedulerError when a Dask scheduler cannot be
    reached and NothingStored when a report-only run has nothing to read; KeyboardInterrupt leaves
    every finished trial stored."""
    t0 = time.perf_counter()
    results = Path(results)
    records.remove_partial_writes(results)  # a run killed mid-write leaves temp files; none is a record
    env = _environment(runtime, executor, scheduler)
    recompute = _stale_test(env) if recompute_stale else None
    out = Outcome([], {})
    stored_before: set[str] = set()

    def train(specs: list[planning.TrialSpec], desc: str) -> dict[str, Record]:
        if not specs:
            return {}
        if report_only:
            return _load(specs, results, out.unreadable)
        stored_before.update(sp.key for sp in specs if Store(results, sp.study).path(sp.key).is_file())
        return runner.run(specs, results, runtime, jobs=jobs, executor=executor, scheduler=scheduler,
                          progress=progress, desc=desc, recompute=recompute)

    # --- plan: arms x seed blocks (raises ValueError on overlapping blocks)
    out.plans = [planning.plan(s, budget, list(seeds) if seeds else planning.default_seeds(s, budget), replicate)
                 for s in studies]
    names = ", ".join(p.study.NAME for p in out.plans)

    # --- tune, then choose the tuned arms from the tuning records
    out.records = train([sp for p in out.plans for sp in p.tuning], f"{budget} tuning: {names}")
    for p in out.plans:
        planning.finish_plan(p, out.records)
    if report_only and any(p.tune and not p.trials for p in out.plans):
        if out.unreadable:
            return out
        missing = ", ".join(p.study.NAME for p in out.plans if p.tune and not p.trials)
        raise NothingStored(f"no stored tuning records for {missing} under {results}")

    # --- train the chosen arms on the verdict (and replication) seeds
    out.records.update(train([sp for p in out.plans for sp in p.trials], f"{budget}: {names}"))
    if report_only and not out.records:
        if out.unreadable:
            return out
        raise NothingStored(f"no stored records under {results} for this budget and these seeds")

    # --- judge and report: each study's parts (with each trial's cost counted from its config), headline
    # and page, then the index. Pages of studies that trained in this run are drawn `jobs` at a time in
    # worker processes (drawing is the report's slow part); the rest, most likely current, here.
    shown = [p for p in out.plans if any(sp.key in out.records for sp in p.trials)]
    fresh = [p for p in shown if not report_only and any(sp.key not in stored_before for sp in p.trials)]
    pages = _draw_elsewhere(fresh, out, results, env, jobs) if executor == "local" else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # seaborn/matplotlib chatter about layouts
        for p in shown:
            name = p.study.NAME
            v = pages[name].result() if name in pages else report.write_study(
                p.study, p, out.records, results, env, cost_of=estimate.record_cost,
                unreadable=out.unreadable.get(name, []))
            out.verdicts[name] = v
            if on_study is not None:
                on_study(name, v, results / name / "README.md")
        out.index = report.write_index(results)

    used = {sp.key: out.records[sp.key] for p in out.plans for sp in p.tuning + p.trials if sp.key in out.records}
    out.trained = 0 if report_only else len(set(used) - stored_before)  # --recompute-stale: counts as reused
    out.reused = len(used) - out.trained
    for p in out.plans:
        n = sum(1 for sp in {s.key: s for s in p.tuning + p.trials}.values()
                if sp.key in out.records and out.records[sp.key].status == "error")
        if n:
            out.errors[p.study.NAME] = n
    out.seconds = time.perf_counter() - t0
    return out


def _draw_elsewhere(plans: list[planning.StudyPlan], out: Outcome, results: Path, env, jobs: int) -> dict:
    """study -> a future of its page drawn in a worker process, for studies a worker can import by
    their module's name (a study run as `python -m studies.NAME` is `__main__`, and one defined in a
    test has no file: those are drawn here); {} with one job or fewer than two such studies."""
    import sys

    def importable(p: planning.StudyPlan) -> bool:
        name = p.study.__name__
        return name != "__main__" and sys.modules.get(name) is p.study and getattr(p.study, "__file__", None)

    plans = [p for p in plans if importable(p)]
    if jobs < 2 or len(plans) < 2:
        return {}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=min(jobs, len(plans)), mp_context=multiprocessing.get_context("spawn"))
    futures = {}
    for p in plans:
        keys = {sp.key for sp in p.tuning + p.trials}
        state = {"budget": p.budget, "seeds": p.seeds, "replication": p.replication,
                 "tuning_seeds": p.tuning_seeds, "tuning": p.tuning, "trials": p.trials}
        futures[p.study.NAME] = pool.submit(_draw_page, p.study.__name__, state,
                                            {k: r for k, r in out.records.items() if k in keys}, results, env,
                                            out.unreadable.get(p.study.NAME, []))
    pool.shutdown(wait=False)  # the workers end when their pages are drawn
    return futures


def _draw_page(module: str, state: dict, recs: dict[str, Record], results: Path, env, unreadable: list[str]) -> dict:
    """One study's page in a worker process (see _draw_elsewhere)."""
    import importlib

    study = importlib.import_module(module)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return report.write_study(study, planning.StudyPlan(study, **state), recs, results, env,
                                  cost_of=estimate.record_cost, unreadable=unreadable)


def _environment(runtime: Runtime, executor: str, scheduler: str | None):
    """The environment stored records are compared with: where trials would train again (with a Dask
    scheduler, the workers'; with "auto", the device that resolves to there)."""
    from oplab import staleness

    if executor == "dask" and scheduler:
        try:
            return staleness.worker_environments(scheduler, runtime.device, runner.THREADS_PER_TRIAL)
        except (OSError, TimeoutError) as err:
            raise runner.SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
    return staleness.worker_environment(runtime.device, runner.THREADS_PER_TRIAL)


def _stale_test(env):
    from oplab import staleness

    return lambda rec: staleness.is_stale(rec.provenance, env, code=True)


def _load(specs: list[planning.TrialSpec], results: Path, unreadable: dict[str, list[str]]) -> dict[str, Record]:
    """The stored records of `specs`, noting in `unreadable` (study -> file names) those that cannot be read."""
    recs = {}
    for key, sp in {sp.key: sp for sp in specs}.items():
        rec = records.load(Store(results, sp.study).path(key), key,
                           on_invalid=lambda p, reason, study=sp.study: unreadable.setdefault(study, []).append(p.name))
        if rec is not None:
            recs[key] = rec
    return recs


def unreadable_records(results: Path, specs: list[planning.TrialSpec]) -> dict[str, list[str]]:
    """study -> the file names of the specs' stored records that cannot be read (damaged, invalid,
    non-finite where finite numbers are required), sorted; studies with none are left out."""
    found: dict[str, list[str]] = {}
    _load(specs, results, found)
    return {study: sorted(set(names)) for study, names in found.items()}
