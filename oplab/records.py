"""Record: everything a trial produced, saved atomically as one JSON file.

A record holds its config, seed, curves, final metrics, status, timings and
provenance. `save` writes a temp file and renames it, so a crash mid-write
leaves either the old file or none; `load` treats a truncated or invalid file
as missing (the runner then recomputes it, with a warning).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import subprocess
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATUSES = ("ok", "diverged")


@dataclass
class Record:
    config: dict[str, Any]
    seed: int
    status: str  # "ok" or "diverged" (diverged_step 0: before the first update, e.g. in a hint stage)
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
        return rec


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically (temp file in the same folder, then rename): a crash
    mid-write leaves the old file or none, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    except (ValueError, TypeError, json.JSONDecodeError) as err:
        warnings.warn(f"ignoring invalid record {path} ({err}); it will be recomputed", stacklevel=2)
        return None


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=cwd or Path(__file__).parent, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(device: str, threads: int) -> dict[str, Any]:
    import numpy
    import torch

    import oplab

    return {
        "oplab": oplab.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "device": device if device == "cpu" else torch.cuda.get_device_name(),
        "torch_threads": threads,
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
