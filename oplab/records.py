"""Record: everything a trial produced, saved atomically as one JSON file.

A record holds its config, seed, curves, final metrics, status, timings and
provenance. `save` writes a temp file and renames it, so a crash mid-write
leaves either the old file or none, and the file gets the mode the umask gives
(0644 usually), like any other file the process writes. `load` treats a file
that is truncated, unreadable, not a record (a field missing, unknown or of the
wrong type, a key given twice) or that holds non-finite numbers where finite
ones are required (an "ok" record's final metrics) as invalid: by default a
one-line InvalidRecordWarning (the runner then trains the trial again), or the
caller's `on_invalid(path, reason)` (a report-only run lists such files instead).

Provenance (`provenance`) names the environment a record was computed in: the
versions of Python, torch and the packages that make data or statistics, the
CPU model, the device (the GPU's name on CUDA), torch's thread count, the
platform, oplab's git commit and whether the code that computes trials had
uncommitted changes.
`oplab.staleness` compares it with the current environment.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
import tempfile
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oplab import imports, schema

STATUSES = ("ok", "diverged", "error")
# packages whose versions provenance records (besides torch and numpy, under their own keys since the
# first records): data generators and loaders, and the statistics of the verdicts
PACKAGES = ("torchvision", "scipy", "pandas", "mnist1d", "mlxtend")


@dataclass
class Record:
    """One trial's outcome.

    status: "ok" (trained to the end), "diverged" (a result: the loss, the gradient norm, the weights
    after the last update or the final losses were not finite; `diverged_step` is the update that
    failed, 0 before the first update, e.g. in a hint stage) or "error" (the trial raised an
    exception, which is no result: `error` holds {"type", "message", "traceback"} of the exception,
    curves and final may be empty, and the trial is computed again by the next run).
    """

    config: dict[str, Any]
    seed: int
    status: str  # "ok", "diverged" or "error" (see above)
    curves: dict[str, dict[str, list]]  # table name -> column -> values (e.g. "eval": step, test_loss...)
    # final metrics: steps, clipped_steps; when ok: train_loss_running (mean minibatch loss since the last
    # evaluation), train_loss_full (the whole training split, eval mode), test_loss, test_acc, test_err;
    # after an initializer that trains (greedy pre-training): pretrain_updates and finetune_updates
    final: dict[str, Any]
    timings: dict[str, float]  # wall_s, train_s, time_per_step_ms, ...
    provenance: dict[str, Any]
    diverged_step: int | None = None
    # documented fields: "n_params"; "init": the initializer's report as oplab.init documents it
    # (lsuv: {"tol", "tmax", "layers": [{"layer", "var_before", "var", "iters"}, ...]}; net2net: {"ops",
    # "noise", "preservation_error", "preservation_error_no_noise"}); "data_init": weight norm's
    # data-dependent init report; "hints": FitNets' stage-1 report (oplab.distill.hint_stage);
    # "teacher_params"; "teacher": {"key", "weights_sha256"} of the trial whose weights this one
    # learned from ({"key", "status"} when that teacher diverged and this trial could not train);
    # "weights_sha256": the digest of this trial's stored weights, when others learn from it
    extra: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    study: str = ""
    budget: str = ""
    version: int = 0
    error: dict[str, Any] | None = None  # status "error": {"type", "message", "traceback"}; else None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = required - set(d)
        if missing:
            raise ValueError(f"record lacks {', '.join(sorted(missing))}")
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"record has unknown fields {', '.join(sorted(unknown))}")
        _check_types(d)
        rec = cls(**d)
        if rec.status not in STATUSES:
            raise ValueError(f"record status {rec.status!r} is not one of {STATUSES}")
        if rec.status == "error" and not (isinstance(rec.error, dict) and all(
                isinstance(rec.error.get(k), str) for k in ("type", "message", "traceback"))):
            raise ValueError("a record of status 'error' needs its error ({'type', 'message', 'traceback'})")
        if rec.status == "ok":  # a trial that trained to the end has finite final metrics (train.py checks)
            bad = sorted(k for k, v in rec.final.items() if isinstance(v, float) and not math.isfinite(v))
            if bad:
                raise ValueError(f"status 'ok' with non-finite final {', '.join(f'{k}={rec.final[k]}' for k in bad)}")
        return rec


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# the JSON type of each field (as the class declares it); a field of another type is damage, not a record
_FIELD_TYPES: dict[str, tuple] = {
    "config": (dict,), "seed": (int,), "status": (str,), "curves": (dict,), "final": (dict,), "timings": (dict,),
    "provenance": (dict,), "diverged_step": (int, type(None)), "extra": (dict,), "key": (str,), "study": (str,),
    "budget": (str,), "version": (int,), "error": (dict, type(None)),
}


def _json_type(v: Any) -> str:
    """A value's type as JSON names it."""
    for t, name in ((bool, "a boolean"), (type(None), "null"), (int, "an integer"), (float, "a number"),
                    (str, "a string"), (list, "a list"), (dict, "an object")):
        if isinstance(v, t):
            return name
    return type(v).__name__


def _check_types(d: dict[str, Any]) -> None:
    """Raise ValueError for a field of the wrong type: a record's fields, its final metrics and timings
    (numbers; a final metric may be None, e.g. a target never reached) and its curves (table -> column ->
    list)."""
    for name, types in _FIELD_TYPES.items():
        if name in d and (not isinstance(d[name], types) or (isinstance(d[name], bool) and bool not in types)):
            raise ValueError(f"field {name!r} is {_json_type(d[name])}, expected "
                             f"{' or '.join(_json_type(t()) for t in types)}")
    for name in ("final", "timings"):
        bad = sorted(str(k) for k, v in d[name].items() if not (_is_number(v) or (name == "final" and v is None)))
        if bad:
            raise ValueError(f"{name} {', '.join(map(repr, bad))} not a number")
    for table, cols in d["curves"].items():
        if not isinstance(cols, dict) or not all(isinstance(v, list) for v in cols.values()):
            raise ValueError(f"curve table {table!r} is not columns of lists")


PARTIAL_SUFFIX = ".tmp"  # atomic_write's temp files: what a process killed mid-write leaves behind


def umask() -> int:
    """The process's umask (Linux: read from /proc, which leaves it untouched; elsewhere set and
    restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same folder, then rename): a crash
    mid-write leaves the old file or none, never half of one (a killed process can leave the
    temp file; remove_partial_writes clears it). The file gets the mode an ordinary write would
    (0666 less the umask: 0644 usually), not the temp file's 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=PARTIAL_SUFFIX)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


LOCK_NAME = ".oplab.lock"  # the lock file of a results folder (held by the run that writes there)


def remove_partial_writes(results_dir: Path) -> int:
    """Delete the temp files of atomic writes cut short (a run killed mid-write) in a results
    folder: its index, study pages, records and weights, i.e. up to two folders deep. Only while
    no other run writes there (under the folder's lock); a results folder inside it (one with its
    own lock file, e.g. results/smoke/ or results/runs/<run>/) is another run's and is left alone.
    Returns how many were deleted."""
    root = Path(results_dir)

    def own(p: Path) -> bool:
        rel = p.relative_to(root).parts
        return all(not (root.joinpath(*rel[:i]) / LOCK_NAME).exists() for i in range(1, len(rel)))

    stale = [p for pattern in ("*", "*/*", "*/*/*") for p in root.glob(pattern + PARTIAL_SUFFIX)
             if p.is_file() and own(p)]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def save(record: Record, path: Path) -> None:
    """Write `record` to `path` atomically; ValueError, before anything is written, when its final
    metrics or curves are not what oplab.schema declares."""
    schema.check(record.final, record.curves)
    data = record.to_json().encode()
    atomic_write(path, data)
    _set_digest(record, data)


class InvalidRecordWarning(UserWarning):
    """A stored record file that cannot be used (see `load`); the command line shows it as one line."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    d = dict(pairs)
    if len(d) != len(pairs):
        seen: set[str] = set()
        twice = sorted({k for k, _ in pairs if k in seen or seen.add(k)})
        raise ValueError(f"key {', '.join(map(repr, twice))} given twice")
    return d


def read(path: Path, key: str | None = None) -> Record:
    """The record at `path`; ValueError (or OSError) saying why when it is not a valid record."""
    path = Path(path)
    data = path.read_bytes()
    d = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates)
    if not isinstance(d, dict):
        raise ValueError(f"it holds {_json_type(d)}, not a record (an object)")
    rec = Record.from_dict(d)
    if key is not None and rec.key != key:
        raise ValueError(f"its key is {rec.key!r}, expected {key!r}")
    _set_digest(rec, data)
    return rec


def load(path: Path, key: str | None = None,
         on_invalid: Callable[[Path, str], None] | None = None) -> Record | None:
    """The record at `path`, or None if absent or invalid: truncated, unreadable, not a record (a field
    missing, unknown or of the wrong type, a key given twice, another trial's key) or holding non-finite
    final metrics in an "ok" record. An invalid file is passed to `on_invalid(path, reason)`, or by
    default warned about (InvalidRecordWarning, which the command line shows as one line), and is
    left where it is."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return read(path, key)
    except (ValueError, TypeError, OSError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError: ValueErrors
        reason = str(err) or type(err).__name__
        if on_invalid is not None:
            on_invalid(path, reason)
        else:
            warnings.warn(f"ignoring invalid record {path} ({reason}); its trial is trained again",
                          InvalidRecordWarning, stacklevel=2)
        return None


# id(record) -> (a weak reference to it, the digest of its file): kept beside the records, not on them
# (a Record's fields are exactly its dataclass fields); an entry goes when its record does
_DIGESTS: dict[int, tuple[weakref.ref, str]] = {}


def _set_digest(rec: Record, data: bytes) -> str:
    key, found = id(rec), hashlib.sha256(data).hexdigest()
    _DIGESTS[key] = (weakref.ref(rec, lambda _, key=key: _DIGESTS.pop(key, None)), found)
    return found


def digest(rec: Record) -> str:
    """A digest of a record's whole content: of its file's bytes when it was loaded or saved, else of
    what `save` would write. Any change to a stored record changes it."""
    entry = _DIGESTS.get(id(rec))
    if entry is not None and entry[0]() is rec:
        return entry[1]
    return _set_digest(rec, rec.to_json().encode())


@functools.cache
def git_commit(cwd: Path | None = None) -> str:
    """oplab's git commit (short hash), or "unknown" outside a git checkout; asked once per process."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=cwd or Path(__file__).parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.cache
def git_dirty() -> bool | None:
    """Whether the code that computes trials (oplab.imports.trial_code_paths: found from the training
    entry point's imports) has uncommitted changes to tracked files;
    None outside a git checkout. Asked once per process."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                              *imports.trial_code_paths()],
                             capture_output=True, text=True, cwd=root, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


@functools.cache
def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else platform.processor()), or "unknown"."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                name, sep, value = line.partition(":")
                if sep and name.strip() in ("model name", "Model", "cpu model", "Processor") and value.strip():
                    return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def package_version(name: str) -> str | None:
    """The installed version of a distribution, or None if it is not installed."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def device_name(device: str) -> str:
    """"cpu", or the GPU's name for a CUDA device (as provenance records it)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):  # not a torch device name: as given
        return str(device)
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else str(device)


def provenance(device: str, threads: int) -> dict[str, Any]:
    import numpy
    import torch

    import oplab

    return {
        "oplab": oplab.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        **{name: package_version(name) for name in PACKAGES},
        "cpu": cpu_model(),
        "device": device_name(device),
        "torch_threads": threads,
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "git_dirty": git_dirty(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
