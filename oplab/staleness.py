"""Stale records: which stored records were computed in another environment than this one.

A record's key covers its config, seed, budget and study version, not the environment it was
computed in; its provenance (oplab.records.provenance) names that environment. Here it is
compared with the current one, field by field.

What counts (ENVIRONMENT): the fields that can change a trial's numbers on the same config and
seed. These are torch (every kernel), numpy, scipy, mnist1d, mlxtend and torchvision (they make
or load the data), the CPU model (float kernels differ per CPU: the same trial on another CPU can
end a few points of accuracy apart), the device ("cpu" or the GPU's name) and torch's thread count
(the order of reductions). The records compare as strings, so a local build tag counts
("2.14.1+cpu" differs from "2.14.1+cu130").

What does not count: the date, the platform string (kernel and libc builds), the Python version,
pandas (used by reports only), oplab's version number, and whether the working tree had
uncommitted changes (git_dirty).

A field that a record lacks (records made before it was recorded), or that reads "unknown" on
either side, is not a difference: nothing says that it differs.

Where: the environment that counts is the one a trial would train in again. Provenance is
recorded where the trial ran (a Dask worker's record names the worker's CPU, GPU and packages),
so with a Dask scheduler the comparison is with the workers' environments (worker_environments,
asked of every worker), not the client's; `env` may then be a list of environments, and a record
is compared with the one it differs from least (a record that matches any worker is current).
`worker_environment` resolves the device "auto" as a trial does (cuda where there is a GPU).

Code (the field "code"): every commit changes the commit hash, most without changing a number
(documentation, reports, refactors checked bit for bit). A record's commit counts as other code
only when git shows a change between that commit and HEAD in the files that compute trials
(oplab.imports.trial_code_paths: the modules the training entry point imports, found from the
import graph, not listed; and studies/, whose arms are the records' configs), or
cannot tell (a commit this checkout does not have). A changed file is no proof of changed
numbers, so other code is reported apart from the environment: `is_stale` and `summarize`
leave it out unless asked (code=True).
"""

from __future__ import annotations

import functools
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from oplab import imports, records

# provenance fields that can change a trial's numbers (see the module docstring)
ENVIRONMENT = ("torch", "numpy", "scipy", "mnist1d", "mlxtend", "torchvision", "cpu", "device", "torch_threads")
CODE = "code"
UNKNOWN = (None, "", "unknown")


def current_environment(device: str = "cpu", threads: int | None = 1) -> dict[str, Any]:
    """The fields provenance records, for trials run now on `device` with `threads` torch threads
    (None: leave the thread count out of the comparison), without the date."""
    env = records.provenance(device, threads if threads is not None else 0)
    env.pop("date", None)
    if threads is None:
        env.pop("torch_threads", None)
    return env


def worker_environment(device: str = "auto", threads: int | None = 1) -> dict[str, Any]:
    """current_environment() for the device a trial given `device` runs on here ("auto": cuda when
    torch sees a GPU, as oplab.runner resolves it in the worker)."""
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return current_environment(device, threads)


def worker_environments(scheduler: str, device: str = "auto", threads: int | None = 1,
                        timeout: str = "10s") -> list[dict[str, Any]]:
    """The distinct environments of the workers of a Dask cluster (each asked by worker_environment,
    which records.provenance computes there as it does for a trial); this machine's when no worker
    has joined yet. Raises OSError or TimeoutError when the scheduler cannot be reached."""
    import json

    from dask.distributed import Client

    with Client(scheduler, timeout=timeout, set_as_default=False) as client:
        found = client.run(worker_environment, device, threads)
    envs: dict[str, dict[str, Any]] = {}
    for env in found.values():
        envs.setdefault(json.dumps(env, sort_keys=True, default=str), env)
    return list(envs.values()) or [worker_environment(device, threads)]


Env = Mapping[str, Any] | Sequence[Mapping[str, Any]]  # one environment, or several (a cluster's workers)


def _known(value: Any) -> bool:
    return value not in UNKNOWN


def differences(record_provenance: Mapping[str, Any], env: Env,
                code: bool = True) -> dict[str, tuple[Any, Any]]:
    """field -> (the record's value, the current value), for each ENVIRONMENT field that differs,
    plus "code" -> (the record's commit, the current commit) when the code that computes trials
    changed between them (with `code`). With several environments: the differences from the one
    the record differs from least (none when it matches one of them)."""
    if not isinstance(env, Mapping):
        found = [differences(record_provenance, e, code) for e in env]
        return min(found, key=len) if found else {}
    out: dict[str, tuple[Any, Any]] = {}
    for name in ENVIRONMENT:
        old, new = record_provenance.get(name), env.get(name)
        if _known(old) and _known(new) and str(old) != str(new):
            out[name] = (old, new)
    if code:
        old, new = record_provenance.get("git_commit"), env.get("git_commit")
        if _known(old) and _known(new) and old != new and code_changed(str(old), str(new)):
            out[CODE] = (old, new)
    return out


def is_stale(record_provenance: Mapping[str, Any], env: Env, code: bool = False) -> bool:
    """Whether the record comes from another environment (and, with `code`, from other code)."""
    return bool(differences(record_provenance, env, code=code))


def describe(field: str, old: Any, new: Any) -> str:
    """One difference as the study page shows it, e.g. "torch 2.14.0 -> 2.14.1"."""
    return f"{field} {old} -> {new}"


def summarize(recs: Iterable[Any], env: Env | None = None,
              code: bool = False) -> tuple[int, Counter]:
    """(how many records come from another environment, Counter of "field old -> new" over them).

    `recs` holds Records (or provenance dicts); `env` defaults to current_environment() on the
    CPU with one thread. With `code`, other code counts too (as "code a1b2c3d -> e4f5a6b")."""
    env = current_environment() if env is None else env
    n_stale, counts = 0, Counter()
    for rec in recs:
        diffs = differences(_provenance(rec), env, code=code)
        if diffs:
            n_stale += 1
            counts.update(describe(k, *v) for k, v in diffs.items())
    return n_stale, counts


def stale_line(recs: Iterable[Any], env: Env | None = None) -> str:
    """The study page's line on stale records, "" when every record comes from this environment
    and this code; e.g. "12 of 110 records come from another environment (torch 2.14.0 -> 2.14.1: 12);
    3 of 110 records come from other code (code a1b2c3d -> e4f5a6b: 3)". Counts are sorted, most
    frequent first."""
    recs = list(recs)
    env = current_environment() if env is None else env
    n_env, n_code, env_counts, code_counts = 0, 0, Counter(), Counter()
    for rec in recs:
        diffs = differences(_provenance(rec), env, code=True)
        code_diff = diffs.pop(CODE, None)
        if diffs:
            n_env += 1
            env_counts.update(describe(k, *v) for k, v in diffs.items())
        if code_diff:
            n_code += 1
            code_counts[describe(CODE, *code_diff)] += 1
    parts = []
    if n_env:
        parts.append(f"{n_env} of {len(recs)} records come from another environment ({_counts(env_counts)})")
    if n_code:
        parts.append(f"{n_code} of {len(recs)} records come from other code ({_counts(code_counts)})")
    return "; ".join(parts)


def _provenance(rec: Any) -> Mapping[str, Any]:
    return rec if isinstance(rec, Mapping) else rec.provenance


def _counts(counts: Counter) -> str:
    return ", ".join(f"{what}: {n}" for what, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


@functools.lru_cache(maxsize=256)
def code_changed(old: str, new: str, root: Path | None = None) -> bool:
    """Whether the files that compute trials differ between commits `old` and `new` (of the checkout
    at `root`, default oplab's own); True when git cannot tell (a commit this checkout lacks), False
    outside a git checkout."""
    if old == new:
        return False
    root = root or Path(records.__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "diff", "--quiet", old, new, "--", *imports.trial_code_paths()],
                             capture_output=True, cwd=root, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    if out.returncode in (0, 1):
        return out.returncode == 1
    return records.git_commit() != "unknown"  # an unknown commit in a checkout: cannot vouch for it
