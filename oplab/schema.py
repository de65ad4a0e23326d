"""What a record holds: the final metrics and curve columns a trial writes, with their units, in one
place. A record is checked against it when it is written (oplab.records.save: an undeclared name is
an error, so a typo in the loop cannot hide), and the report's frame has a column for every final
metric (NaN where a trial does not measure it), so a study reads `t["test_acc"]` without asking
whether the column exists.

Losses are in the loss's own unit: nats (cross-entropy, mean over examples, or over scored
characters for a stream task) or squared error (mean over outputs) for regression.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LOSS = "nats (classification) or squared error per output (regression)"

# final metrics: name -> (unit, what it is)
FINAL: dict[str, tuple[str, str]] = {
    "steps": ("updates", "updates the loop made (up to the last finite one when it diverged)"),
    "clipped_steps": ("updates", "updates whose gradient was clipped"),
    "pretrain_updates": ("updates", "updates of a stage before the loop (greedy pre-training, FitNets' hints)"),
    "finetune_updates": ("updates", "updates of the loop after such a stage"),
    "train_loss_running": (LOSS, "mean minibatch loss over the updates since the previous evaluation"),
    "train_loss_full": (LOSS, "loss over the whole train split, at the end"),
    "test_loss": (LOSS, "loss over the test split, at the end"),
    "test_acc": ("fraction", "test accuracy, at the end (classification)"),
    "test_err": ("fraction", "1 - test_acc"),
    "ema_test_loss": (LOSS, "test loss of the averaged iterates (OptimConfig.ema_decay > 0)"),
    "val_loss": (LOSS, "loss over the validation split (Trial.val_labeled), at the end"),
    "val_acc": ("fraction", "accuracy over the validation split, at the end (classification)"),
    "val_loss_min": (LOSS, "the lowest validation loss over the evaluations (early stopping's choice)"),
    "level": ("difficulty", "the curriculum's level at the end (stream tasks)"),
    "target_step": ("updates", "the update after which the curriculum reached the target; None if never"),
    "advances": ("count", "times the curriculum advanced"),
    "char_acc": ("fraction", "answer characters right with teacher forcing, test set at the target"),
    "seq_acc": ("fraction", "answers right in every character, greedy decoding, test set at the target"),
    # Trial.critical (oplab.critical): the objective is the mean loss over the train split + wd/2 ||theta||^2
    "end_objective": (LOSS, "the objective over the whole train split at the trained weights"),
    "end_grad_norm": ("L2 norm", "the norm of the objective's gradient (whole train split) at the trained weights"),
    "train_distance": ("L2 norm", "||theta_trained - theta_init|| over the trainable parameters"),
    "cp_objective": (LOSS, "the objective at the point the critical-point search found from the trained weights"),
    "cp_train_loss": (LOSS, "the mean training loss (no weight-decay term) at that point"),
    "cp_grad_norm": ("L2 norm", "the norm of the objective's gradient at that point"),
    "cp_distance": ("L2 norm", "||theta_found - theta_trained||"),
    "cp_evals": ("count", "function evaluations the search made"),
    "cp_min_eig": ("curvature", "the smallest eigenvalue of the objective's Hessian at that point"),
    "cp_max_eig": ("curvature", "the largest eigenvalue of the objective's Hessian at that point"),
}

# curve tables: name -> {column: unit}; every table has "step" (updates). The "monitor" table's other
# columns are what the trial's monitors return (oplab.monitors.MONITORS), named by each monitor.
CURVES: dict[str, dict[str, str] | None] = {
    "eval": {"step": "updates", "epoch": "passes over the train split", "train_loss_running": LOSS,
             "test_loss": LOSS, "test_acc": "fraction", "ema_test_loss": LOSS, "level": "difficulty",
             "lr": "learning rate", "test_char_acc": "fraction", "test_seq_acc": "fraction",
             "objective_full": LOSS + ", + wd/2 ||theta||^2, whole train split (Trial.critical)",
             "grad_norm_full": "L2 norm of the objective's gradient, whole train split (Trial.critical)",
             "val_loss": LOSS, "val_acc": "fraction"},
    "log": {"step": "updates", "batch_loss": LOSS, "grad_norm": "L2 norm before clipping",
            "batch_size": "examples", "level": "difficulty", "mean_difficulty": "difficulty"},
    "check": {"step": "updates", "level": "difficulty", "val_acc": "fraction", "train_acc": "fraction",
              "advanced": "bool"},
    "monitor": None,  # step, then each monitor's own names
    # Trial.critical's search from the trained weights: "step" counts its function evaluations, not updates
    "search": {"step": "function evaluations of the search", "objective": LOSS + ", + wd/2 ||theta||^2",
               "grad_norm": "L2 norm of the objective's gradient"},
}


def problems(final: Mapping[str, Any], curves: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """What in a record's final metrics and curves the schema does not declare (empty: it conforms)."""
    out = [f"final metric {k!r} is not declared in oplab.schema.FINAL" for k in final if k not in FINAL]
    for table, cols in curves.items():
        if table not in CURVES:
            out.append(f"curve table {table!r} is not declared in oplab.schema.CURVES")
            continue
        declared = CURVES[table]
        if declared is None:
            if "step" not in cols:
                out.append(f"curve table {table!r} has no 'step' column")
            continue
        out += [f"curve column {table}.{c} is not declared in oplab.schema.CURVES" for c in cols if c not in declared]
    return out


def check(final: Mapping[str, Any], curves: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise ValueError naming every undeclared final metric or curve column."""
    found = problems(final, curves)
    if found:
        raise ValueError("; ".join(found))
