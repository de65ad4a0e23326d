"""The training loop of sequence-to-sequence stream tasks (oplab.tasks.STREAMS, e.g. `addition`):
examples generated per update at difficulties a curriculum (oplab.curriculum) chooses.

oplab.train hands a trial here when its data names a stream task. The trial's fields keep their
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

import time

import numpy as np
import torch
import torch.nn.functional as F

from oplab import curriculum, models, optim, tasks
from oplab.config import Trial, to_dict
from oplab.records import Record, provenance
from oplab.train import StepTimer, finite_parameters

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


def train(trial: Trial, seed: int, runtime, t_start: float) -> Record:
    loop, task_opts = split_options(trial)
    device = torch.device(runtime.device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)  # the training stream: every example's difficulty and operands

    # --- task, schedule, fixed held-out sets (the same for every trial of a task and target)
    task = tasks.STREAMS.build(trial.data.name, **task_opts)
    target = int(loop["target"])
    task.check(target)
    schedule = curriculum.build(loop["curriculum"], target, threshold=float(loop["threshold"]),
                                patience=int(loop["patience"]))
    test = _to(task.heldout("test", target, trial.data.n_test or DEFAULT_N_TEST), device)
    val_sets: dict[int, tasks.SeqBatch] = {}

    def validation(level: int) -> tasks.SeqBatch:
        if level not in val_sets:
            val_sets[level] = _to(task.heldout("validation", level, int(loop["n_val"])), device)
        return val_sets[level]

    # --- model and optimizer
    vocab = len(task.vocab)
    model = models.build(trial.model, (vocab,), vocab).to(device)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    total_steps = trial.steps
    opt, sched = optim.build(params, trial.optim, total_steps)
    eval_every = trial.eval_every or max(1, total_steps // 10)
    check_every = int(loop["check_every"])

    eval_curve: dict[str, list] = {k: [] for k in ("step", "level", "lr", "train_loss_running", "test_loss",
                                                   "test_char_acc", "test_seq_acc")}
    log_curve: dict[str, list] = {k: [] for k in ("step", "batch_loss", "grad_norm", "level", "mean_difficulty")}
    check_curve: dict[str, list] = {k: [] for k in ("step", "level", "val_acc", "train_acc", "advanced")}
    target_step = 0 if schedule.at_target else None  # the update after which the level reached the target

    def record_eval(step: int, train_loss: float | None) -> None:
        ev = evaluate(model, test)
        for k, v in (("step", step), ("level", schedule.level), ("lr", opt.param_groups[0]["lr"]),
                     ("train_loss_running", train_loss), ("test_loss", ev["loss"]),
                     ("test_char_acc", ev["char_acc"]), ("test_seq_acc", ev["seq_acc"])):
            eval_curve[k].append(v)

    t_eval = time.perf_counter()
    record_eval(0, None)
    eval_s = time.perf_counter() - t_eval

    # --- the loop. Examples are generated on the host every update (numpy), so this loop checks each
    # update's loss and gradient at once (optim.update) rather than deferring the checks as oplab.train does
    status, diverged_step, clipped = "ok", None, 0
    timer = StepTimer(device)  # bounded memory, however many updates
    interval_loss, interval_n = 0.0, 0
    train_right, train_chars = 0, 0  # training characters right (teacher forcing) since the last check
    eval_s0, t_loop = eval_s, time.perf_counter()
    for step in range(1, total_steps + 1):
        difficulty = schedule.draw(trial.batch_size, rng)
        batch = _to(task.batch(difficulty, rng), device)
        timer.start(step)
        opt.zero_grad(set_to_none=True)
        loss, logits = scored_loss(model, batch)
        mask = batch.mask[:, 1:]
        train_right += (logits.detach().argmax(-1) == batch.tokens[:, 1:])[mask].sum()
        train_chars += mask.sum()  # tensors: no host sync per update
        done = optim.update(loss, params, opt, trial.optim)
        if done is None:
            status, diverged_step = "diverged", step
            break
        loss_value, grad_norm, was_clipped = done
        sched.step()
        timer.stop(step)
        clipped += was_clipped
        interval_loss += loss_value
        interval_n += 1
        if step % trial.log_every == 0:
            for k, v in (("step", step), ("batch_loss", loss_value), ("grad_norm", grad_norm),
                         ("level", schedule.level), ("mean_difficulty", float(difficulty.mean()))):
                log_curve[k].append(v)

        t_eval = time.perf_counter()
        if step % check_every == 0:  # the advance rule, at the current level
            level = schedule.level
            acc = evaluate(model, validation(level), greedy=False)["char_acc"]
            train_acc = float(train_right) / max(1, int(train_chars))
            train_right, train_chars = 0, 0
            advanced = schedule.check(acc, train_acc)
            if advanced and schedule.at_target and target_step is None:
                target_step = step
            if schedule.fired and not advanced and loop["lr_decay"] != 1.0:
                # the authors' rule: it fired but the curriculum cannot advance
                sched.base_lrs = [lr * float(loop["lr_decay"]) for lr in sched.base_lrs]
            for k, v in (("step", step), ("level", level), ("val_acc", acc), ("train_acc", train_acc),
                         ("advanced", advanced)):
                check_curve[k].append(v)
        if step % eval_every == 0 or step == total_steps:
            record_eval(step, interval_loss / interval_n)
            interval_loss, interval_n = 0.0, 0
        eval_s += time.perf_counter() - t_eval

    train_s = time.perf_counter() - t_loop - (eval_s - eval_s0)  # the loop's time less its evaluations
    if status == "ok" and not (finite_parameters(model) and np.isfinite(eval_curve["test_loss"][-1])):
        # the loop checks the loss and gradient before each update; a last update that sends the weights
        # or the final test loss to NaN or infinity is a divergence at that update, not NaN metrics
        status, diverged_step = "diverged", total_steps
    steps_done = (diverged_step - 1) if diverged_step else total_steps
    final: dict = {"steps": steps_done, "clipped_steps": clipped, "level": schedule.level,
                   "target_step": target_step, "advances": int(sum(check_curve["advanced"]))}
    if status == "ok":
        final.update({"train_loss_running": eval_curve["train_loss_running"][-1],
                      "test_loss": eval_curve["test_loss"][-1], "char_acc": eval_curve["test_char_acc"][-1],
                      "seq_acc": eval_curve["test_seq_acc"][-1]})
    wall = time.perf_counter() - t_start
    return Record(
        config=to_dict(trial), seed=seed, status=status, diverged_step=diverged_step,
        curves={"eval": eval_curve, "log": log_curve, "check": check_curve}, final=final,
        extra={"n_params": models.n_params(model)},
        timings={"wall_s": wall, "train_s": train_s, "eval_s": eval_s, "time_per_step_ms": timer.median_ms(),
                 "mean_step_ms": 1000 * train_s / max(1, steps_done)},
        provenance=provenance(runtime.device, runtime.threads),
    )


def _to(batch: tasks.SeqBatch, device: torch.device) -> tasks.SeqBatch:
    if batch.tokens.device == device:
        return batch
    return tasks.SeqBatch(batch.tokens.to(device), batch.mask.to(device), batch.prompt_len, batch.difficulty)
