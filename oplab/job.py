"""One trial as a job: train a trial spec where it runs (a local worker, a Dask worker) and return
its record stamped with its key, with its trained weights when others learn from it. A trial
that raises gives an error record, never an exception; a trial whose teacher failed gets a
record saying so without training.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import replace

from oplab.config import to_dict
from oplab.plan import TrialSpec, teacher_spec
from oplab.records import Record
from oplab.train import Runtime


def weights_digest(weights: bytes) -> str:
    return hashlib.sha256(weights).hexdigest()[:16]


def error_record(spec: TrialSpec, err: BaseException | str, tb: str = "") -> Record:
    """The record of a trial that raised (or whose worker died): status "error", with the
    exception's type, message and traceback. It is stored so that reports show it, and the next
    run trains the trial again."""
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
    if teacher.status == "error":
        rec = error_record(spec, f"its teacher trial {teacher.key} failed: {teacher.error['type']}: "
                                 f"{teacher.error['message']}")
        rec.extra["teacher"] = {"key": teacher.key, "status": teacher.status}
        return rec
    return Record(config=to_dict(spec.trial), seed=spec.seed, status="diverged", diverged_step=0, curves={},
                  final={"steps": 0}, timings={"wall_s": 0.0}, provenance={},
                  extra={"teacher": {"key": teacher.key, "status": teacher.status}},
                  key=spec.key, study=spec.study, budget=spec.budget, version=spec.version)
