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
import functools
import hashlib
import io
import multiprocessing
import os
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType

from tqdm import tqdm

from oplab import kit, records
from oplab.config import Trial, trial_key
from oplab.records import Record
from oplab.train import Runtime

BUDGETS = ("smoke", "quick", "long", "full")
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


def check_trial(trial: Trial, where: str = "") -> None:
    """Raise ValueError, before any training, for a name no registry knows or an option its
    builder does not take (model, activation, initializer, normalizer, optimizer, schedule,
    monitors, dataset), or a batch larger than the training split; the teacher too."""
    from oplab import init, models, monitors, norms, optim, tasks
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


def expand(study: ModuleType, budget: str, seeds: Iterable[int], block: str = "verdict",
           chosen: dict | None = None) -> list[TrialSpec]:
    """Every (arm, seed) of a study at a budget, as trial specs, seed-major: the arms of one
    seed run next to each other, so that per-seed timing comparisons share machine conditions.
    With `chosen` (from kit.choose), only the arms at their group's chosen level of the tuned factor."""
    arms = arms_of(study, budget)
    tune = getattr(study, "TUNE", None)
    group = {n: tuple(a.factors[w] for w in tune.within) for n, a in arms.items()} if tune is not None else {}
    sizes = Counter(group.values())
    single = {n for n, g in group.items() if sizes[g] == 1} if getattr(tune, "grids_only", False) else set()
    if chosen is not None and tune is not None:
        arms = {n: a for n, a in arms.items() if n in single or chosen.get(group[n]) == a.factors[tune.factor]}
    elif block == "tuning":  # with Tune.grids_only, a single-level group has nothing to tune
        arms = {n: a for n, a in arms.items() if n not in single}
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
    """One JSON file a trial under results/<study>/trials/; the trained weights of a trial that
    others learn from (a teacher) beside it, under results/<study>/weights/<key>.pt."""

    def __init__(self, results_dir: Path, study: str):
        self.dir = Path(results_dir) / study / "trials"
        self.weights_dir = Path(results_dir) / study / "weights"

    def path(self, key: str) -> Path:
        return self.dir / f"{key}.json"

    def weights_path(self, key: str) -> Path:
        return self.weights_dir / f"{key}.pt"

    def load(self, key: str) -> Record | None:
        return records.load(self.path(key), key)

    def save(self, record: Record) -> None:
        records.save(record, self.path(record.key))

    def save_weights(self, key: str, weights: bytes) -> None:
        records.atomic_write(self.weights_path(key), weights)

    def load_weights(self, key: str) -> bytes | None:
        path = self.weights_path(key)
        return path.read_bytes() if path.exists() else None


def teacher_spec(spec: TrialSpec) -> TrialSpec | None:
    """The trial whose weights `spec` learns from (same study, seed, budget and block), or None."""
    if spec.trial.teacher is None:
        return None
    return TrialSpec(spec.study, f"teacher of {spec.arm}", spec.seed, spec.budget, spec.version,
                     spec.trial.teacher, (), spec.block)


def weights_digest(weights: bytes) -> str:
    return hashlib.sha256(weights).hexdigest()[:16]


def error_record(spec: TrialSpec, err: BaseException | str, tb: str = "") -> Record:
    """The record of a trial that raised (or whose worker died): status "error", with the
    exception's type, message and traceback. It is stored so that reports show it, and the next
    run trains the trial again."""
    from oplab.config import to_dict

    kind, message = (type(err).__name__, str(err)) if isinstance(err, BaseException) else ("WorkerLost", err)
    return Record(config=to_dict(spec.trial), seed=spec.seed, status="error", curves={}, final={},
                  timings={"wall_s": 0.0}, provenance={}, error={"type": kind, "message": message, "traceback": tb},
                  key=spec.key, study=spec.study, budget=spec.budget, version=spec.version)


def run_spec(spec: TrialSpec, runtime: Runtime, teacher_weights: bytes | None = None,
             keep_weights: bool = False) -> tuple[Record, bytes | None]:
    """Train one trial (runs in a worker): its record stamped with its key, and its trained
    weights (torch.save of the state_dict) when `keep_weights` and it did not diverge.
    A student's record names its teacher's key and the digest of the weights it learned from.
    A trial that raises gives an error record (error_record), never an exception."""
    import traceback

    try:
        return _run_spec(spec, runtime, teacher_weights, keep_weights)
    except Exception as err:  # noqa: BLE001 - one failing trial must not stop the others
        return error_record(spec, err, traceback.format_exc()), None


def _run_spec(spec: TrialSpec, runtime: Runtime, teacher_weights: bytes | None,
              keep_weights: bool) -> tuple[Record, bytes | None]:
    import torch

    from oplab.train import train_model

    if runtime.device == "auto":  # resolved where the trial runs (a Dask worker may have a GPU the client lacks)
        runtime = replace(runtime, device="cuda" if torch.cuda.is_available() else "cpu")
    state = torch.load(io.BytesIO(teacher_weights), weights_only=True) if teacher_weights is not None else None
    rec, model = train_model(spec.trial, spec.seed, runtime, state)
    rec = replace(rec, key=spec.key, study=spec.study, budget=spec.budget, version=spec.version)
    if teacher_weights is not None:
        rec.extra["teacher"] = {"key": teacher_spec(spec).key, "weights_sha256": weights_digest(teacher_weights)}
    weights = None
    if keep_weights and model is not None:
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buf)
        weights = buf.getvalue()
        rec.extra["weights_sha256"] = weights_digest(weights)
    return rec, weights


def untrainable(spec: TrialSpec, teacher: Record) -> Record:
    """The record of a trial that cannot train because its teacher failed: a divergence when the
    teacher diverged (a result), an error when it raised (retried with it next run); it names
    the teacher."""
    from oplab.config import to_dict

    if teacher.status == "error":
        rec = error_record(spec, f"its teacher trial {teacher.key} failed: {teacher.error['type']}: "
                                 f"{teacher.error['message']}")
        rec.extra["teacher"] = {"key": teacher.key, "status": teacher.status}
        return rec
    return Record(config=to_dict(spec.trial), seed=spec.seed, status="diverged", diverged_step=0, curves={},
                  final={"steps": 0}, timings={"wall_s": 0.0}, provenance={},
                  extra={"teacher": {"key": teacher.key, "status": teacher.status}},
                  key=spec.key, study=spec.study, budget=spec.budget, version=spec.version)


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
            _run_dask(order.first, args, scheduler, collect)
        elif jobs <= 1:
            ready = list(order.first)
            while ready:
                s = ready.pop(0)
                ready += collect(s, *run_spec(*args(s)))
        else:
            _run_pool(order.first, args, jobs, len(todo), collect)
            lost = [s for s in todo.values() if s.key not in done]
            if lost:  # the pool broke for good (workers killed): the rest are errors, tried again next run
                for s in lost:
                    collect(s, error_record(s, "its worker process died before it finished"), None)
    finally:
        bar.close()
    return done


def _init_worker() -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)


POOL_RESTARTS = 2  # a pool whose worker died is restarted this many times; then its trials are errors


def _run_pool(first: list[TrialSpec], args, jobs: int, n: int, collect) -> None:
    """Run on local worker processes; a trial waiting for its teacher is submitted when the
    teacher is stored. When a worker dies (killed, out of memory) the pool breaks: the trials
    it held are submitted again to a new pool, at most POOL_RESTARTS times."""
    pending = list(first)
    for attempt in range(POOL_RESTARTS + 1):
        pending = _pool_attempt(pending, args, min(jobs, n), collect)
        if not pending:
            return
        if attempt < POOL_RESTARTS:
            warnings.warn(f"a worker process died; trying {len(pending)} unfinished trials again on a new pool",
                          stacklevel=2)


def _pool_attempt(todo: list[TrialSpec], args, workers: int, collect) -> list[TrialSpec]:
    """One pool's run of `todo` (and of the trials their results release); returns the trials
    left unfinished when the pool broke."""
    ctx = multiprocessing.get_context("spawn")  # fork after torch has started threads can deadlock
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker)
    running: dict = {}
    pending: list[TrialSpec] = []

    def submit(s: TrialSpec) -> None:
        try:
            running[pool.submit(run_spec, *args(s))] = s
        except (cf.process.BrokenProcessPool, RuntimeError):  # the pool broke meanwhile
            pending.append(s)

    try:
        for s in todo:
            submit(s)
        while running:
            finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                spec = running.pop(fut)
                try:
                    result = fut.result()
                except cf.process.BrokenProcessPool:
                    pending.append(spec)
                    continue
                for s in collect(spec, *result):
                    submit(s)
    except BaseException:  # Ctrl-C: stop the workers now; stored records stay
        _stop(pool)
        raise
    if pending:
        _stop(pool)
    else:
        pool.shutdown()
    return pending


def _stop(pool: cf.ProcessPoolExecutor) -> None:
    workers = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for p in workers:
        p.terminate()


DASK_RETRIES = 2  # a task whose run failed on the cluster (not a trial's own error) is retried


class SchedulerError(RuntimeError):
    """The Dask scheduler cannot be reached."""


def check_scheduler(address: str, timeout: str = "5s") -> None:
    """Raise SchedulerError now, before any training, when the Dask scheduler cannot be reached."""
    from dask.distributed import Client

    try:
        Client(address, timeout=timeout, set_as_default=False).close()
    except (OSError, TimeoutError) as err:
        raise SchedulerError(f"cannot reach the Dask scheduler at {address}: {err}") from None


def _run_dask(first: list[TrialSpec], args, scheduler: str | None, collect) -> None:
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise RuntimeError("--executor dask needs dask.distributed: pip install 'oplab[cluster]'") from None
    # without a scheduler: an in-process cluster (for trying the path out)
    try:
        # not the process's default client: a user's own client (a notebook's) stays theirs
        client = (Client(scheduler, timeout="10s", set_as_default=False) if scheduler
                  else Client(processes=False, n_workers=1, threads_per_worker=2, set_as_default=False))
    except (OSError, TimeoutError) as err:
        raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
    try:
        specs = {}

        def submit(s: TrialSpec):
            fut = client.submit(run_spec, *args(s), pure=False, retries=DASK_RETRIES)
            specs[fut.key] = s
            return fut

        # on this client's event loop: by default as_completed tracks futures on the loop of the
        # process's default client, another client's (if that one closes, it never yields)
        pending = as_completed([submit(s) for s in first], loop=client.loop)
        for fut in pending:
            spec = specs.pop(fut.key)
            try:
                result = fut.result()  # workers return records; this process writes them
            except Exception as err:  # noqa: BLE001 - e.g. KilledWorker: the task's workers died too often
                result = (error_record(spec, f"the Dask task failed: {type(err).__name__}: {err}"), None)
            for s in collect(spec, *result):
                pending.add(submit(s))
    finally:
        client.close()
