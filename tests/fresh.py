"""`runner.run` with jobs=1 in a fresh process, as a user's `--jobs 1` command runs it.

A test that compares an in-process run with a worker pool's must not run the in-process side inside
the long-lived test process: what earlier tests left there (allocations, thread pools) can move a
float32 sum's last bit from the second update on, so the comparison would depend on test order
(it did under pytest-xdist). A user's `--jobs 1` run starts from a fresh interpreter; so does this.
"""

from __future__ import annotations

import multiprocessing as mp


def _run(specs, out, runtime):
    from oplab import runner

    return runner.run(specs, out, runtime, jobs=1, progress=False)


def run_in_fresh_process(specs, out, runtime):
    """The records of `runner.run(specs, out, runtime, jobs=1)` run in a freshly spawned interpreter."""
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(_run, (specs, out, runtime))
