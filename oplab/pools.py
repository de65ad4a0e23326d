"""Where trials run: local worker processes or a Dask cluster. Each backend takes the first trials,
an `args(spec)` that gives run_spec's arguments, and a `collect(spec, record, weights)` that
stores a finished trial and returns the trials it lets start (students waiting for a teacher).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import warnings

from oplab.job import error_record, run_spec
from oplab.plan import TrialSpec


def _init_worker() -> None:
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    torch.set_num_threads(1)


POOL_RESTARTS = 2  # a pool whose worker died is restarted this many times; then its trials are errors


def run_local(first: list[TrialSpec], args, jobs: int, n: int, collect) -> None:
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


def run_dask(first: list[TrialSpec], args, scheduler: str | None, collect) -> None:
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
