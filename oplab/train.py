"""The one training loop: train(trial, seed) -> Record.

Data -> model -> normalizer -> initializer -> optimizer -> loop -> record.
A trial's numbers depend only on its config and seed: the thread count is
fixed per trial (Runtime.threads), and every random draw comes from the seed.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from oplab import data as datalib
from oplab import distill, models, monitors, norms, optim
from oplab import init as initlib
from oplab.config import Trial, to_dict
from oplab.records import Record, provenance


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


def loss_function(task: str):
    return F.cross_entropy if task == "classification" else F.mse_loss


@torch.inference_mode()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, task: str,
             chunk: int = 1000) -> dict[str, float]:
    """Mean loss (and accuracy for classification) over a whole split, in eval mode; the sums stay
    on the device until the end (one host sync a split)."""
    was_training = model.training
    model.eval()
    loss_fn = loss_function(task)
    total = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.long, device=x.device)
    for i in range(0, len(x), chunk):
        out = model(x[i : i + chunk])
        total += loss_fn(out, y[i : i + chunk], reduction="sum")
        if task == "classification":
            correct += (out.argmax(dim=1) == y[i : i + chunk]).sum()
    model.train(was_training)
    n = len(x) * (1 if task == "classification" else y[0].numel())
    result = {"loss": float(total) / n}
    if task == "classification":
        result["acc"] = int(correct) / len(x)
    return result


def finite_parameters(model: torch.nn.Module) -> bool:
    """Whether every parameter and floating-point buffer (e.g. batch norm's running statistics) is finite."""
    tensors = [*model.parameters(), *(b for b in model.buffers() if b.is_floating_point())]
    return all(bool(torch.isfinite(t).all()) for t in tensors)


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


def build_model(trial: Trial, input_shape: tuple[int, ...], out_dim: int,
                device: torch.device | str) -> torch.nn.Module:
    """The trial's architecture with its normalizer, on `device`: every module (batch norm and
    weight norm included) is built first and the whole model moved once, so that no parameter or
    buffer is left on the CPU when the device is a GPU."""
    model = models.build(trial.model, input_shape, out_dim)
    norms.apply(model, trial.norm)
    return model.to(device)


def load_teacher(teacher: Trial, data: datalib.Dataset, state: dict | None, device: torch.device) -> torch.nn.Module:
    """The teacher trial's model with its stored weights, in eval mode, frozen."""
    if state is None:
        raise ValueError("this trial names a teacher (Trial.teacher) but no teacher weights were given; "
                         "run it through oplab.runner, which trains the teacher first")
    with torch.random.fork_rng(devices=[]):  # the teacher's throwaway init draws nothing from the trial's seed
        model = build_model(teacher, data.input_shape, data.out_dim, device)
    model.load_state_dict(state)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


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


def batch_plan(trial: Trial, n: int) -> list[int] | None:
    """The batch size of every update of a trial whose batch grows (Trial.batch_growth), else None:
    the batch is multiplied by batch_growth after every batch_every fraction of the epochs x n
    training examples, capped at n; the last update may overrun the budget by less than a batch."""
    if not trial.grows_batch:
        return None
    total = trial.epochs * n
    period = trial.batch_every * total
    sizes, seen = [], 0
    while seen < total:
        sizes.append(min(n, round(trial.batch_size * trial.batch_growth ** int(seen // period))))
        seen += sizes[-1]
    return sizes


def _train(trial: Trial, seed: int, runtime: Runtime, t_start: float,
           teacher_state: dict | None = None) -> tuple[Record, torch.nn.Module | None]:
    from oplab import seqtrain  # sequence-to-sequence tasks on generated streams have their own loop

    if seqtrain.handles(trial):
        return seqtrain.train(trial, seed, runtime, t_start), None
    device = torch.device(runtime.device)
    torch.manual_seed(seed)

    # --- data: tensors on the device; batches are seeded index slices
    data = datalib.load(trial.data, device, runtime.data_dir, runtime.download)
    n = len(data.x_train)
    if trial.batch_size > n:
        raise ValueError(f"batch size {trial.batch_size} is larger than the {n} training examples")
    steps_per_epoch = n // trial.batch_size
    sizes = batch_plan(trial, n)  # the batch size of every update when the batch grows, else None
    total_steps = len(sizes) if sizes else (trial.steps or trial.epochs * steps_per_epoch)
    batch_iter = datalib.batches(n, iter(sizes) if sizes else trial.batch_size,
                               torch.Generator(device=device).manual_seed(seed), device)
    eval_every = trial.eval_every or steps_per_epoch
    monitor_every = trial.monitor_every or eval_every
    loss_fn = loss_function(data.task)
    if trial.distill.name != "none" and data.task != "classification":
        raise ValueError(f"distill method {trial.distill.name!r} needs a classification task")
    # two fixed batches drawn apart from the training order: `fixed` for data-dependent init,
    # `probe` (disjoint from it when the split allows) for monitors, so that a monitor never
    # re-measures an initializer on the very batch it was fitted on
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 10_007))
    fixed_idx = perm[: trial.batch_size]
    probe_idx = perm[trial.batch_size : 2 * trial.batch_size]
    if len(probe_idx) < min(trial.batch_size, n):
        probe_idx = perm[-trial.batch_size :]
    fixed_x = data.x_train[fixed_idx.to(device)]
    probe_x, probe_y = data.x_train[probe_idx.to(device)], data.y_train[probe_idx.to(device)]

    teacher = load_teacher(trial.teacher, data, teacher_state, device) if trial.teacher is not None else None

    # --- model: architecture, then normalizer, then weights (data-dependent schemes see the batch)
    model = build_model(trial, data.input_shape, data.out_dim, device)
    extra: dict = {"n_params": models.n_params(model)}
    if teacher is not None:
        extra["teacher_params"] = sum(p.numel() for p in teacher.parameters())
    init_report = initlib.apply(model, trial.init, fixed_x, train=(data.x_train, data.y_train), seed=seed,
                                teacher=teacher)
    if init_report:
        extra["init"] = init_report
    if trial.norm.name.startswith("weight") and trial.norm.data_init:
        extra["data_init"] = norms.data_dependent_init(model, fixed_x)
    pre_status = "ok"
    if trial.distill.name == "hints":  # FitNets stage 1, before the loop's stage 2 (kd)
        extra["hints"] = distill.hint_stage(model, teacher, trial, data.x_train, seed)
        pre_status = extra["hints"]["status"]
    model.train()

    # --- optimizer
    params = [p for p in model.parameters() if p.requires_grad]
    opt, sched = optim.build(params, trial.optim, total_steps)
    ema = optim.averaged(model, trial.optim.ema_decay) if trial.optim.ema_decay > 0 else None

    # train_loss_running: mean minibatch loss over the updates since the previous evaluation
    # (None at step 0, before any update); the full-split training loss is measured once, at the end
    eval_curve: dict[str, list] = {"step": [], "epoch": [], "train_loss_running": [], "test_loss": []}
    log_curve: dict[str, list] = {"step": [], "batch_loss": [], "grad_norm": []}
    mon_curve: dict[str, list] = {"step": []}
    if data.task == "classification":
        eval_curve["test_acc"] = []
    if ema is not None:
        eval_curve["ema_test_loss"] = []

    def record_eval(step: int, train_loss: float | None, epoch: float | None = None) -> None:
        ev = evaluate(model, data.x_test, data.y_test, data.task)
        eval_curve["step"].append(step)
        eval_curve["epoch"].append(step / steps_per_epoch if epoch is None else epoch)
        eval_curve["train_loss_running"].append(train_loss)
        eval_curve["test_loss"].append(ev["loss"])
        if "acc" in ev:
            eval_curve["test_acc"].append(ev["acc"])
        if ema is not None:
            eval_curve["ema_test_loss"].append(evaluate(ema.module, data.x_test, data.y_test, data.task)["loss"])

    def record_monitors(step: int) -> None:
        if trial.monitors:
            values = monitors.run(trial.monitors, model, loss_fn, probe_x, probe_y)
            mon_curve["step"].append(step)
            for k, v in values.items():
                mon_curve.setdefault(k, []).append(v)

    t_eval = time.perf_counter()
    record_eval(0, None)
    record_monitors(0)
    eval_s = eval_s0 = time.perf_counter() - t_eval

    # --- the loop. Nothing in it waits for the device: each update's loss, gradient norm and
    # clipping flag stay there as 0-d tensors and come back together (`flush`) at each evaluation
    # and at least every SYNC_EVERY updates; the first non-finite loss or gradient norm among them
    # is the divergence, and everything from it on is discarded, so the record is the one a loop
    # that checked every update would write.
    status, diverged_step, clipped = pre_status, (0 if pre_status != "ok" else None), 0
    timer = StepTimer(device)
    interval_loss, interval_n = 0.0, 0
    pending: list[tuple[int, torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (step, loss, norm, clipped)
    seen, epochs_seen = 0, 0  # training examples drawn, and whole epochs of them (batch growth)
    dist = trial.distill

    def flush() -> bool:
        """Bring the pending updates' values to the host; False if one of them was not finite."""
        nonlocal status, diverged_step, clipped, interval_loss, interval_n
        if not pending:
            return True
        values = torch.stack([torch.stack([lo.double(), gn.double(), c.double()]) for _, lo, gn, c in pending]).tolist()
        steps = [p[0] for p in pending]
        pending.clear()
        for step_i, (loss_value, grad_norm, was_clipped) in zip(steps, values):
            if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
                status, diverged_step = "diverged", step_i
                return False
            clipped += int(was_clipped)
            interval_loss += loss_value
            interval_n += 1
            if step_i % trial.log_every == 0:
                log_curve["step"].append(step_i)
                log_curve["batch_loss"].append(loss_value)
                log_curve["grad_norm"].append(grad_norm)
                if sizes:
                    log_curve.setdefault("batch_size", []).append(sizes[step_i - 1])
        return True

    t_loop = time.perf_counter()
    for step in range(1, total_steps + 1 if status == "ok" else 1):
        idx = next(batch_iter)
        x, y = data.x_train[idx], data.y_train[idx]
        timer.start(step)
        opt.zero_grad(set_to_none=True)
        if teacher is not None and dist.name != "none":  # knowledge distillation (FitNets' stage 2)
            with torch.no_grad():
                teacher_out = teacher(x)
            lam = (distill.kd_lambda(step - 1, total_steps, dist.lam_start, dist.lam_end)
                   if dist.lam_schedule == "linear" else dist.lam_start)
            loss = distill.kd_loss(model(x), teacher_out, y, lam, dist.tau)
        else:
            loss = loss_fn(model(x), y)
        pending.append((step, *optim.step(loss, params, opt, trial.optim)))
        sched.step()
        if ema is not None:
            ema.update_parameters(model)
        timer.stop(step)
        seen += len(idx)

        if sizes:  # a growing batch: evaluate once an epoch of examples, whatever the batch
            is_eval = seen // n > epochs_seen or step == total_steps
            epochs_seen = seen // n
        else:
            is_eval = step % eval_every == 0 or step == total_steps
        is_monitor = (trial.monitors and not trial.monitor_start_only
                      and (step % monitor_every == 0 or step == total_steps))
        if (is_eval or is_monitor or len(pending) >= SYNC_EVERY) and not flush():
            break
        t_eval = time.perf_counter()
        if is_eval:
            record_eval(step, interval_loss / interval_n, seen / n if sizes else None)
            interval_loss, interval_n = 0.0, 0
        if is_monitor:
            record_monitors(step)
        eval_s += time.perf_counter() - t_eval
    _sync(device)
    train_s = time.perf_counter() - t_loop - (eval_s - eval_s0)  # the loop's time less its evaluations

    train_loss_full = None
    if status == "ok":
        # the loop checks the loss and the gradient before each update; the last update is checked here:
        # weights or final losses that are not finite make a divergence at that update, not NaN metrics
        train_loss_full = evaluate(model, data.x_train, data.y_train, data.task)["loss"]
        if not (finite_parameters(model) and math.isfinite(eval_curve["test_loss"][-1])
                and math.isfinite(train_loss_full)):
            status, diverged_step = "diverged", total_steps
    steps_done = max(0, diverged_step - 1) if diverged_step is not None else total_steps
    final: dict = {"steps": steps_done, "clipped_steps": clipped}
    pre_updates = (init_report or {}).get("updates", 0) + extra.get("hints", {}).get("updates", 0)
    if "updates" in (init_report or {}) or "hints" in extra:  # a stage before the loop: its updates apart
        final["pretrain_updates"] = pre_updates
        final["finetune_updates"] = steps_done
    if status == "ok":
        final["train_loss_running"] = eval_curve["train_loss_running"][-1]
        final["train_loss_full"] = train_loss_full
        final["test_loss"] = eval_curve["test_loss"][-1]
        if "test_acc" in eval_curve:
            final["test_acc"] = eval_curve["test_acc"][-1]
            final["test_err"] = 1.0 - final["test_acc"]
        if ema is not None:
            final["ema_test_loss"] = eval_curve["ema_test_loss"][-1]
    curves = {"eval": eval_curve, "log": log_curve}
    if trial.monitors:
        curves["monitor"] = mon_curve
    wall = time.perf_counter() - t_start
    record = Record(
        config=to_dict(trial), seed=seed, status=status, diverged_step=diverged_step, curves=curves,
        final=final, extra=extra,
        timings={"wall_s": wall, "train_s": train_s, "eval_s": eval_s,
                 # the median of the timed updates resists bursts of load from other processes
                 "time_per_step_ms": timer.median_ms(), "mean_step_ms": 1000 * train_s / max(1, steps_done)},
        provenance=provenance(runtime.device, runtime.threads),
    )
    return record, (model if status == "ok" else None)
