"""The dataset task: a classification or regression split held as tensors on the device, and the
model the trial names, built, normalized and initialized. The training loop (oplab.train) drives it.

Setup order (each random draw comes from the trial's seed, oplab.seeds): data -> two fixed batches
apart from the training order (`fixed` for data-dependent init, `probe` for monitors) -> the
teacher's weights, if any -> model -> normalizer -> initializer (data-dependent schemes see the
fixed batch) -> weight norm's data-dependent init -> FitNets' hint stage, if any.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from oplab import data as datalib
from oplab import distill, labels, models, norms, seeds
from oplab import init as initlib
from oplab.config import Trial
from oplab.growth import batch_plan


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


class DatasetTask:
    """Batches are seeded index slices of the train split (at the sizes batch growth plans, when the
    batch grows); an evaluation is the whole test split, once an epoch by default."""

    log_keys = ("step", "batch_loss", "grad_norm")

    def __init__(self, trial: Trial, seed: int, runtime, device: torch.device, teacher_state: dict | None):
        self.trial = trial
        data = self.data = datalib.load(trial.data, device, runtime.data_dir, runtime.download)
        pool, self.val = (data.x_train, data.y_train), None  # what a training initializer sees; a validation split
        if trial.labeled:  # scarce labels (oplab.labels): the loop sees the seed's labeled subset only
            scarce = labels.split(data, trial.labeled, trial.val_labeled, seed)
            data = self.data = scarce.train
            pool, self.val = scarce.pool, scarce.val
        n = self.n = len(data.x_train)
        if trial.batch_size > n:
            raise ValueError(f"batch size {trial.batch_size} is larger than the {n} training examples")
        if trial.distill.name != "none" and data.task != "classification":
            raise ValueError(f"distill method {trial.distill.name!r} needs a classification task")
        self.steps_per_epoch = n // trial.batch_size
        self.sizes = batch_plan(trial, n)  # the batch size of every update when the batch grows, else None
        self.total_steps = len(self.sizes) if self.sizes else (trial.steps or trial.epochs * self.steps_per_epoch)
        self.batches = datalib.batches(n, iter(self.sizes) if self.sizes else trial.batch_size,
                                       seeds.generator(seed, "batches", device), device)
        self.eval_every = trial.eval_every or self.steps_per_epoch
        self.loss_fn = loss_function(data.task)
        self.seen = self.epochs_seen = 0  # training examples drawn, and whole epochs of them (batch growth)
        # two fixed batches drawn apart from the training order: `fixed` for data-dependent init,
        # `probe` (disjoint from it when the split allows) for monitors, so that a monitor never
        # re-measures an initializer on the very batch it was fitted on
        perm = torch.randperm(n, generator=seeds.generator(seed, "fixed_batches"))
        fixed_idx = perm[: trial.batch_size]
        probe_idx = perm[trial.batch_size : 2 * trial.batch_size]
        if len(probe_idx) < min(trial.batch_size, n):
            probe_idx = perm[-trial.batch_size :]
        fixed_x = data.x_train[fixed_idx.to(device)]
        self.probe = (data.x_train[probe_idx.to(device)], data.y_train[probe_idx.to(device)])
        self.teacher = load_teacher(trial.teacher, data, teacher_state, device) if trial.teacher is not None else None

        # --- model: architecture, then normalizer, then weights (data-dependent schemes see the batch)
        model = self.model = build_model(trial, data.input_shape, data.out_dim, device)
        self.extra: dict = {"n_params": models.n_params(model)}
        if self.teacher is not None:
            self.extra["teacher_params"] = sum(p.numel() for p in self.teacher.parameters())
        self.init_report = initlib.apply(model, trial.init, fixed_x, train=pool, seed=seed, teacher=self.teacher)
        if self.init_report:
            self.extra["init"] = self.init_report
        if trial.norm.name.startswith("weight") and trial.norm.data_init:
            self.extra["data_init"] = norms.data_dependent_init(model, fixed_x)
        self.status = "ok"  # a stage before the loop that diverged leaves the loop nothing to do
        if trial.distill.name == "hints":  # FitNets stage 1, before the loop's stage 2 (kd)
            self.extra["hints"] = distill.hint_stage(model, self.teacher, trial, data.x_train, seed)
            self.status = self.extra["hints"]["status"]

    # --- what the loop calls, in the order it calls it
    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = next(self.batches)
        self.seen += len(idx)
        return self.data.x_train[idx], self.data.y_train[idx]

    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor:
        return self.loss_fn(model(batch[0]), batch[1])

    def outputs(self, model: torch.nn.Module, batch) -> tuple[torch.Tensor, callable]:
        """The minibatch's outputs and its loss as a function of them (a curvature optimizer's products)."""
        return model(batch[0]), lambda z: self.loss_fn(z, batch[1])

    def log_fields(self, step: int, batch) -> dict:
        return {"batch_size": self.sizes[step - 1]} if self.sizes else {}

    def is_check(self, step: int) -> bool:  # no schedule to check
        return False

    def is_eval(self, step: int) -> bool:
        if self.sizes:  # a growing batch: evaluate once an epoch of examples, whatever the batch
            due = self.seen // self.n > self.epochs_seen or step == self.total_steps
            self.epochs_seen = self.seen // self.n
            return due
        return step % self.eval_every == 0 or step == self.total_steps

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        return evaluate(model, self.data.x_test, self.data.y_test, self.data.task)

    def eval_row(self, model: torch.nn.Module, step: int, train_loss: float | None, opt) -> dict:
        ev = self.evaluate(model)
        epoch = self.seen / self.n if self.sizes and step else step / self.steps_per_epoch
        row = {"step": step, "epoch": epoch, "train_loss_running": train_loss, "test_loss": ev["loss"]}
        if "acc" in ev:
            row["test_acc"] = ev["acc"]
        if self.val is not None:
            ev = evaluate(model, *self.val, self.data.task)
            row.update({"val_loss": ev["loss"], **({"val_acc": ev["acc"]} if "acc" in ev else {})})
        return row

    # --- after the loop
    def end_metrics(self, model: torch.nn.Module) -> dict[str, float]:
        """Measured once, at the end, on a model that finished: the full-split training loss."""
        return {"train_loss_full": evaluate(model, self.data.x_train, self.data.y_train, self.data.task)["loss"]}

    def final_counts(self, steps_done: int) -> dict:
        pre = (self.init_report or {}).get("updates", 0) + self.extra.get("hints", {}).get("updates", 0)
        if "updates" in (self.init_report or {}) or "hints" in self.extra:  # a stage before the loop: apart
            return {"pretrain_updates": pre, "finetune_updates": steps_done}
        return {}

    def final_metrics(self, eval_curve: dict, end: dict) -> dict:
        out = {"train_loss_running": eval_curve["train_loss_running"][-1], **end,
               "test_loss": eval_curve["test_loss"][-1]}
        if "test_acc" in eval_curve:
            out["test_acc"] = eval_curve["test_acc"][-1]
            out["test_err"] = 1.0 - out["test_acc"]
        if "val_loss" in eval_curve:
            out.update(val_loss=eval_curve["val_loss"][-1], val_loss_min=min(eval_curve["val_loss"]))
            if "val_acc" in eval_curve:
                out["val_acc"] = eval_curve["val_acc"][-1]
        return out

    def curves(self) -> dict:
        return {}
