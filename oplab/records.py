"""Record: everything a trial produced, saved atomically as one JSON file.

A record holds its config, seed, curves, final metrics, status, timings and
provenance. `save` writes a temp file and renames it, so a crash mid-write
leaves either the old file or none; `load` treats a truncated, invalid or
unreadable file as missing (the runner then recomputes it, with a warning).

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
import json
import os
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        rec = cls(**d)
        if rec.status not in STATUSES:
            raise ValueError(f"record status {rec.status!r} is not one of {STATUSES}")
        if rec.status == "error" and not isinstance(rec.error, dict):
            raise ValueError("a record of status 'error' needs its error ({'type', 'message', 'traceback'})")
        return rec


PARTIAL_SUFFIX = ".tmp"  # atomic_write's temp files: what a process killed mid-write leaves behind


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same folder, then rename): a crash
    mid-write leaves the old file or none, never half of one (a killed process can leave the
    temp file; remove_partial_writes clears it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=PARTIAL_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_partial_writes(results_dir: Path) -> int:
    """Delete the temp files of atomic writes cut short (a run killed mid-write) in a results
    folder: its index, study pages, records and weights, i.e. up to two folders deep. Only while
    no other run writes there (under the folder's lock). Returns how many were deleted."""
    root = Path(results_dir)
    stale = [p for pattern in ("*", "*/*", "*/*/*") for p in root.glob(pattern + PARTIAL_SUFFIX) if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def save(record: Record, path: Path) -> None:
    """Write `record` to `path` atomically."""
    atomic_write(path, record.to_json().encode())


def load(path: Path, key: str | None = None) -> Record | None:
    """The record at `path`, or None if absent, truncated or invalid (with a warning)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        rec = Record.from_dict(json.loads(path.read_text()))
        if key is not None and rec.key != key:
            raise ValueError(f"its key is {rec.key!r}, expected {key!r}")
        return rec
    except (ValueError, TypeError, OSError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        warnings.warn(f"ignoring invalid record {path} ({err}); it will be recomputed", stacklevel=2)
        return None


@functools.cache
def git_commit(cwd: Path | None = None) -> str:
    """oplab's git commit (short hash), or "unknown" outside a git checkout; asked once per process."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=cwd or Path(__file__).parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# git pathspecs of the files whose changes can change a trial's numbers: the package, less the modules
# that only report, judge, store or orchestrate from the command line (studies declare arms, whose
# configs are in the records' keys, and verdicts)
NOT_TRIAL_CODE = ("report.py", "plots.py", "stats.py", "kit.py", "cli.py", "records.py", "staleness.py",
                  "estimate.py")
CODE_PATHS = ("oplab", *(f":(exclude)oplab/{name}" for name in NOT_TRIAL_CODE))


@functools.cache
def git_dirty() -> bool | None:
    """Whether the code that computes trials (CODE_PATHS) has uncommitted changes to tracked files;
    None outside a git checkout. Asked once per process."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS],
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
