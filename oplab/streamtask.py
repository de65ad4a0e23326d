"""The stream task: sequence-to-sequence tasks generated per update (oplab.tasks.STREAMS, e.g.
`addition`) at difficulties a curriculum (oplab.curriculum) chooses, with a sequence model. The
training loop (oplab.train) drives it when a trial's data names a stream task. The trial's fields keep their
meaning: `steps` updates of `batch_size` examples, `optim` (clip="norm", clip_threshold=5 for the
authors' rescaling of the gradient to norm 5), `model` a sequence model (`char_lstm`), `eval_every`
updates between test evaluations, `log_every` updates between logged batch losses. `data.n_test`
is the size of the fixed test set at the target difficulty (0: 500). `data.options` holds:

- target: the target difficulty (required);
- curriculum: baseline | naive | mix | combined (oplab.curriculum; default baseline);
- threshold, patience, check_every: the advance rule (oplab.curriculum), checked every `check_every`
  updates: validation accuracy at the current level above `threshold`, or training accuracy since the
  previous check below its value `patience` checks earlier (the authors': 0.95, 5, every 100 updates);
- n_val: validation examples per level (default 200);
- lr_decay: the learning rate is multiplied by it when the rule fires at the target (the
  curriculum cannot advance; the authors' 0.8); 1.0, the default, keeps it;
- any other key goes to the task's builder (e.g. max_difficulty, seed).

Loss: cross-entropy over the answer and end characters (the prompt is read, not scored), mean over
the batch's scored characters, next character given the true previous ones (teacher forcing).
Metrics, on the test set at the target (a stream apart from training, oplab.tasks):
char_acc, the fraction of answer characters right with teacher forcing (the authors' metric), and
seq_acc, the fraction of answers right in every character when the model decodes greedily
from the prompt alone. Validation accuracy (for the advance rule) is char_acc at the current level;
training accuracy is char_acc on the training batches since the previous check, each scored before
its update (the authors' running `state_train.acc`).

Curves: "eval" (step, level, lr, train_loss_running, test_loss, test_char_acc, test_seq_acc), "log"
(step, batch_loss, grad_norm, level, mean_difficulty of the batch) and "check" (step, level,
val_acc, train_acc, advanced): the schedule's state is in all three.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from oplab import curriculum, models, seeds, tasks
from oplab.config import Trial

LOOP_OPTIONS = {"target": None, "curriculum": "baseline", "threshold": curriculum.THRESHOLD,
                "patience": curriculum.PATIENCE, "check_every": 100, "n_val": 200, "lr_decay": 1.0}
DEFAULT_N_TEST = 500


def handles(trial: Trial) -> bool:
    """Whether the trial's data is a stream task (trained here rather than by oplab.train)."""
    return trial.data.name in tasks.STREAMS


def split_options(trial: Trial) -> tuple[dict, dict]:
    """(the loop's options with defaults filled in, the task builder's options)."""
    opts = trial.data.opts
    loop = {k: opts.get(k, v) for k, v in LOOP_OPTIONS.items()}
    if loop["target"] is None:
        raise ValueError(f"stream task {trial.data.name!r} needs data option 'target' (the target difficulty)")
    if trial.steps < 1:
        raise ValueError("a stream task has no epochs: set Trial.steps, the number of updates")
    if trial.data.n_train:
        raise ValueError("a stream task generates its training examples: leave data.n_train at 0")
    distill = getattr(trial, "distill", None)
    if trial.monitors or getattr(trial, "teacher", None) is not None or (distill and distill.name != "none"):
        raise ValueError("the stream-task loop has no monitors, teacher or distillation: leave them at their defaults")
    if trial.init.name != "default" or trial.norm.name != "none":
        raise ValueError("a stream task's sequence model initializes itself (model option init_scale): "
                         "use init 'default' and norm 'none'")
    return loop, {k: v for k, v in opts.items() if k not in LOOP_OPTIONS}


def scored_loss(model: torch.nn.Module, batch: tasks.SeqBatch, reduction: str = "mean"):
    """Cross-entropy of the answer characters given the true previous ones, and the logits."""
    logits = model(batch.tokens[:, :-1])
    mask = batch.mask[:, 1:]
    return F.cross_entropy(logits[mask], batch.tokens[:, 1:][mask], reduction=reduction), logits


@torch.inference_mode()
def evaluate(model: torch.nn.Module, batch: tasks.SeqBatch, greedy: bool = True) -> dict[str, float]:
    """loss (nats a scored character), char_acc (teacher forcing) and, with `greedy`, seq_acc."""
    was_training = model.training
    model.eval()
    loss, logits = scored_loss(model, batch, "sum")
    mask, target = batch.mask[:, 1:], batch.tokens[:, 1:]
    n_chars = int(mask.sum())
    out = {"loss": float(loss) / n_chars, "char_acc": float((logits.argmax(-1) == target)[mask].sum()) / n_chars}
    if greedy:
        emitted = model.greedy(batch.tokens[:, : batch.prompt_len], batch.answer_len)
        answer, amask = batch.tokens[:, batch.prompt_len :], batch.mask[:, batch.prompt_len :]
        right = ((emitted == answer) | ~amask).all(dim=1)  # every scored character, end symbol included
        out["seq_acc"] = float(right.float().mean())
    model.train(was_training)
    return out


class StreamTask:
    """Each update's batch is generated at difficulties the curriculum draws; every `check_every`
    updates the advance rule is checked; an evaluation is the fixed test set at the target."""

    log_keys = ("step", "batch_loss", "grad_norm", "level", "mean_difficulty")

    def __init__(self, trial: Trial, seed: int, runtime, device: torch.device, teacher_state: dict | None = None):
        loop, task_opts = split_options(trial)
        self.trial, self.device, self.opts = trial, device, loop
        self.rng = seeds.numpy_rng(seed, "stream")  # the training stream: every example's difficulty and operands
        # fixed held-out sets (the same for every trial of a task and target)
        task = self.task = tasks.STREAMS.build(trial.data.name, **task_opts)
        self.target = int(loop["target"])
        task.check(self.target)
        self.schedule = curriculum.build(loop["curriculum"], self.target, threshold=float(loop["threshold"]),
                                         patience=int(loop["patience"]))
        self.test = _to(task.heldout("test", self.target, trial.data.n_test or DEFAULT_N_TEST), device)
        self.val_sets: dict[int, tasks.SeqBatch] = {}
        vocab = len(task.vocab)
        self.model = models.build(trial.model, (vocab,), vocab).to(device)
        self.extra = {"n_params": models.n_params(self.model)}
        self.teacher, self.probe, self.loss_fn, self.status = None, None, None, "ok"
        self.total_steps = trial.steps
        self.eval_every = trial.eval_every or max(1, self.total_steps // 10)
        self.check_every = int(loop["check_every"])
        self.check_curve: dict[str, list] = {k: [] for k in ("step", "level", "val_acc", "train_acc", "advanced")}
        self.target_step = 0 if self.schedule.at_target else None  # the update after which the level reached it
        self.train_right, self.train_chars = 0, 0  # training characters right (teacher forcing) since the last check

    def validation(self, level: int) -> tasks.SeqBatch:
        if level not in self.val_sets:
            self.val_sets[level] = _to(self.task.heldout("validation", level, int(self.opts["n_val"])), self.device)
        return self.val_sets[level]

    # --- what the loop calls, in the order it calls it
    def batch(self, step: int) -> tuple[tasks.SeqBatch, np.ndarray]:
        difficulty = self.schedule.draw(self.trial.batch_size, self.rng)
        return _to(self.task.batch(difficulty, self.rng), self.device), difficulty

    def loss(self, model: torch.nn.Module, batch) -> torch.Tensor:
        b = batch[0]
        loss, logits = scored_loss(model, b)
        mask = b.mask[:, 1:]
        self.train_right += (logits.detach().argmax(-1) == b.tokens[:, 1:])[mask].sum()
        self.train_chars += mask.sum()  # tensors: no host sync per update
        return loss

    def log_fields(self, step: int, batch) -> dict:
        return {"level": self.schedule.level, "mean_difficulty": float(batch[1].mean())}

    def is_check(self, step: int) -> bool:
        return step % self.check_every == 0

    def check(self, step: int, model: torch.nn.Module, sched) -> None:
        """The advance rule, at the current level (validation accuracy, or training accuracy stalled)."""
        level = self.schedule.level
        acc = evaluate(model, self.validation(level), greedy=False)["char_acc"]
        train_acc = float(self.train_right) / max(1, int(self.train_chars))
        self.train_right, self.train_chars = 0, 0
        advanced = self.schedule.check(acc, train_acc)
        if advanced and self.schedule.at_target and self.target_step is None:
            self.target_step = step
        if self.schedule.fired and not advanced and self.opts["lr_decay"] != 1.0:
            # the authors' rule: it fired but the curriculum cannot advance
            sched.base_lrs = [lr * float(self.opts["lr_decay"]) for lr in sched.base_lrs]
        for k, v in (("step", step), ("level", level), ("val_acc", acc), ("train_acc", train_acc),
                     ("advanced", advanced)):
            self.check_curve[k].append(v)

    def is_eval(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.total_steps

    def eval_row(self, model: torch.nn.Module, step: int, train_loss: float | None, opt) -> dict:
        ev = evaluate(model, self.test)
        return {"step": step, "level": self.schedule.level, "lr": opt.param_groups[0]["lr"],
                "train_loss_running": train_loss, "test_loss": ev["loss"], "test_char_acc": ev["char_acc"],
                "test_seq_acc": ev["seq_acc"]}

    # --- after the loop
    def end_metrics(self, model: torch.nn.Module) -> dict[str, float]:
        return {}

    def final_counts(self, steps_done: int) -> dict:
        return {"level": self.schedule.level, "target_step": self.target_step,
                "advances": int(sum(self.check_curve["advanced"]))}

    def final_metrics(self, eval_curve: dict, end: dict) -> dict:
        return {"train_loss_running": eval_curve["train_loss_running"][-1], "test_loss": eval_curve["test_loss"][-1],
                "char_acc": eval_curve["test_char_acc"][-1], "seq_acc": eval_curve["test_seq_acc"][-1]}

    def curves(self) -> dict:
        return {"check": self.check_curve}


def _to(batch: tasks.SeqBatch, device: torch.device) -> tasks.SeqBatch:
    if batch.tokens.device == device:
        return batch
    return tasks.SeqBatch(batch.tokens.to(device), batch.mask.to(device), batch.prompt_len, batch.difficulty)
