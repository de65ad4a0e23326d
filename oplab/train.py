"""The one training loop: train(trial, seed) -> Record.

task (data and model: oplab.datatask for datasets of tensors, oplab.streamtask for generated
sequence tasks) -> optimizer -> loop -> record. The optional pieces are small objects the loop
calls at named points, each in its own module: distillation (oplab.distill.KD: the update's loss),
averaging (oplab.averaging: after each update, at each evaluation), monitors (oplab.monitors.Recorder:
at monitor steps), batch growth (oplab.growth, inside the dataset task's batches), a teacher and
pre-training stages (in the task's setup), a curriculum's advance rule (the stream task's check).

A trial's numbers depend only on its config and seed: the thread count is fixed per trial
(Runtime.threads), and every random draw comes from the seed (oplab.seeds).
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass

import torch

from oplab import critical, distill, monitors, optim, seeds
from oplab.averaging import Averaging
from oplab.config import Trial, to_dict
from oplab.datatask import DatasetTask
from oplab.models import finite_parameters
from oplab.records import Record, provenance
from oplab.streamtask import StreamTask, handles


@dataclass(frozen=True)
class Runtime:
    """Where and how a trial runs; none of it changes the numbers on a given device."""

    device: str = "cpu"
    data_dir: str | None = None
    download: bool = False
    threads: int = 1  # torch threads per trial; fixed so that --jobs never changes results
    # CUDA kernels are not all deterministic (atomic adds in backward passes, cuBLAS workspaces):
    # with this set, torch.use_deterministic_algorithms(True) for the trial, at a cost in speed
    deterministic: bool = False


# torch's random generator and thread count are per process: trials that share a process
# (threads of a Dask worker) must take turns, or they would draw from each other's seeds
_ONE_AT_A_TIME = threading.Lock()


def train(trial: Trial, seed: int, runtime: Runtime = Runtime(), teacher_state: dict | None = None) -> Record:
    """Train one trial; `teacher_state` is the state_dict of `trial.teacher`'s trained model."""
    return train_model(trial, seed, runtime, teacher_state)[0]


def train_model(trial: Trial, seed: int, runtime: Runtime = Runtime(),
                teacher_state: dict | None = None) -> tuple[Record, torch.nn.Module | None]:
    """Train one trial; return its record and its trained model (None for a diverged trial)."""
    with _ONE_AT_A_TIME:
        t_start = time.perf_counter()
        prev_threads = torch.get_num_threads()
        prev_det, prev_bench = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
        torch.set_num_threads(runtime.threads)
        if runtime.deterministic:
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        try:
            record, model = _train(trial, seed, runtime, t_start, teacher_state)
            if runtime.deterministic:
                record.extra["deterministic"] = True
            return record, model
        finally:
            torch.set_num_threads(prev_threads)
            torch.use_deterministic_algorithms(prev_det)
            torch.backends.cudnn.benchmark = prev_bench


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


SYNC_EVERY = 100  # updates whose losses and gradient norms may wait on the device before they are checked


class StepTimer:
    """Times updates in bounded memory. On the CPU it times every update; on a GPU, where the loop
    never waits for the device, every `stride`-th update between two syncs. It keeps at most 2 x CAP
    samples: when full, it drops every second one and doubles the stride, so that the samples stay
    spread evenly over training."""

    CAP = 512

    def __init__(self, device: torch.device):
        self.device = device
        self.stride = 16 if device.type == "cuda" else 1
        self.samples: list[float] = []
        self._t0: float | None = None

    def start(self, step: int) -> None:
        if step % self.stride == 0:
            _sync(self.device)
            self._t0 = time.perf_counter()

    def stop(self, step: int) -> None:
        if self._t0 is None:
            return
        _sync(self.device)
        self.samples.append(time.perf_counter() - self._t0)
        self._t0 = None
        if len(self.samples) >= 2 * self.CAP:
            self.samples = self.samples[1::2]  # the samples at multiples of the doubled stride
            self.stride *= 2

    def median_ms(self) -> float:
        return 1000 * statistics.median(self.samples) if self.samples else float("nan")


def _train(trial: Trial, seed: int, runtime: Runtime, t_start: float,
           teacher_state: dict | None = None) -> tuple[Record, torch.nn.Module | None]:
    device = torch.device(runtime.device)
    seeds.start(seed)

    # --- the task and its model: data (a dataset of tensors, or a generated stream), the model built,
    # normalized and initialized, and any stage before the loop (pre-training, FitNets' hints)
    task = (StreamTask if handles(trial) else DatasetTask)(trial, seed, runtime, device, teacher_state)
    model, total_steps = task.model, task.total_steps
    model.train()

    # --- optimizer, and the optional pieces (None when off)
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = optim.build(params, trial.optim, total_steps)
    ema = Averaging(model, trial.optim.ema_decay) if trial.optim.ema_decay > 0 else None
    kd = (distill.KD(task.teacher, trial.distill, total_steps)
          if task.teacher is not None and trial.distill.name != "none" else None)
    mon = monitors.Recorder(trial, total_steps, task.eval_every, task.loss_fn, *task.probe) if trial.monitors else None
    crit = critical.Probe(trial, task) if trial.critical.name != "none" else None

    # train_loss_running: mean minibatch loss over the updates since the previous evaluation (None at
    # step 0, before any update); the full-split training loss is measured once, at the end
    eval_curve: dict[str, list] = {}
    log_curve: dict[str, list] = {k: [] for k in task.log_keys}

    def record_eval(step: int, train_loss: float | None) -> None:
        row = task.eval_row(model, step, train_loss, opt)
        if ema is not None:
            row.update(ema.eval_row(task))
        if crit is not None:
            row.update(crit.eval_row(model))
        for k, v in row.items():
            eval_curve.setdefault(k, []).append(v)

    t_eval = time.perf_counter()
    record_eval(0, None)
    if mon is not None:
        mon.record(0, model)
    eval_s = eval_s0 = time.perf_counter() - t_eval

    # --- the loop. Nothing in it waits for the device: each update's loss, gradient norm and
    # clipping flag stay there as 0-d tensors and come back together (`flush`) before each check,
    # evaluation or monitor call and at least every SYNC_EVERY updates; the first non-finite loss or
    # gradient norm among them is the divergence, and everything from it on is discarded, so the
    # record is the one a loop that checked every update would write.
    status, diverged_step, clipped = task.status, (0 if task.status != "ok" else None), 0
    timer = StepTimer(device)
    interval_loss, interval_n = 0.0, 0
    pending: list[tuple] = []  # (step, loss, grad norm, clipped, the task's log fields)

    def flush() -> bool:
        """Bring the pending updates' values to the host; False if one of them was not finite."""
        nonlocal status, diverged_step, clipped, interval_loss, interval_n
        if not pending:
            return True
        values = torch.stack([torch.stack([lo.double(), gn.double(), c.double()])
                              for _, lo, gn, c, _ in pending]).tolist()
        entries = [(p[0], p[4]) for p in pending]
        pending.clear()
        for (step_i, fields), (loss_value, grad_norm, was_clipped) in zip(entries, values):
            if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
                status, diverged_step = "diverged", step_i
                return False
            clipped += int(was_clipped)
            interval_loss += loss_value
            interval_n += 1
            if step_i % trial.log_every == 0:
                for k, v in (("step", step_i), ("batch_loss", loss_value), ("grad_norm", grad_norm), *fields.items()):
                    log_curve.setdefault(k, []).append(v)
        return True

    t_loop = time.perf_counter()
    for step in range(1, total_steps + 1 if status == "ok" else 1):
        batch = task.batch(step)
        timer.start(step)
        opt.zero_grad(set_to_none=True)
        loss = kd.loss(model, batch, step) if kd is not None else task.loss(model, batch)
        # the last argument (the minibatch's outputs) is called only by a curvature optimizer (oplab.hessianfree)
        pending.append((step, *optim.step(loss, params, opt, trial.optim, lambda b=batch: task.outputs(model, b)),
                        task.log_fields(step, batch)))
        sched.step()
        if ema is not None:
            ema.update(model)
        timer.stop(step)

        is_check, is_eval = task.is_check(step), task.is_eval(step)
        is_monitor = mon is not None and mon.due(step)
        if (is_check or is_eval or is_monitor or len(pending) >= SYNC_EVERY) and not flush():
            break
        t_eval = time.perf_counter()
        if is_check:  # a curriculum's advance rule (stream tasks)
            task.check(step, model, sched)
        if is_eval:
            record_eval(step, interval_loss / interval_n)
            interval_loss, interval_n = 0.0, 0
        if is_monitor:
            mon.record(step, model)
        eval_s += time.perf_counter() - t_eval
    _sync(device)
    train_s = time.perf_counter() - t_loop - (eval_s - eval_s0)  # the loop's time less its evaluations

    end: dict = {}
    if status == "ok":
        # the loop checks the loss and the gradient before each update; the last update is checked here:
        # weights or final losses that are not finite make a divergence at that update, not NaN metrics
        end = task.end_metrics(model)
        if not (finite_parameters(model) and math.isfinite(eval_curve["test_loss"][-1])
                and all(math.isfinite(v) for v in end.values())):
            status, diverged_step = "diverged", total_steps
    steps_done = max(0, diverged_step - 1) if diverged_step is not None else total_steps
    final: dict = {"steps": steps_done, "clipped_steps": clipped, **task.final_counts(steps_done)}
    search: dict = {}
    if status == "ok":
        final.update(task.final_metrics(eval_curve, end))
        if ema is not None:
            final["ema_test_loss"] = eval_curve["ema_test_loss"][-1]
        if crit is not None:  # a search for a critical point from the trained weights
            found, search = crit.end(model)
            final.update(found)
    curves = {"eval": eval_curve, "log": log_curve, **task.curves(), **({"search": search} if search else {})}
    if mon is not None:
        curves["monitor"] = mon.curve
    wall = time.perf_counter() - t_start
    record = Record(
        config=to_dict(trial), seed=seed, status=status, diverged_step=diverged_step, curves=curves,
        final=final, extra=task.extra,
        timings={"wall_s": wall, "train_s": train_s, "eval_s": eval_s,
                 # the median of the timed updates resists bursts of load from other processes
                 "time_per_step_ms": timer.median_ms(), "mean_step_ms": 1000 * train_s / max(1, steps_done)},
        provenance=provenance(runtime.device, runtime.threads),
    )
    return record, (model if status == "ok" else None)
