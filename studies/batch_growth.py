"""Don't decay the learning rate, increase the batch size (Smith, Kindermans, Ying & Le 2017).

Regime. Smith et al. train with SGD and momentum 0.9 from learning rate 0.1 and, at the epochs
where a step schedule would divide the learning rate by 5, multiply the batch size by 5 instead;
both runs see the same examples (epochs), the growing-batch run in fewer updates. At the `quick`
budget: mnist5k (4,000 train / 1,000 test digits), an MLP of 2 ReLU hidden layers of 64 units (He
init), 9 epochs, SGD with momentum 0.9 at the paper's learning rate 0.1, batch 50 at the start;
milestones after every third of the training examples (epochs 3 and 6). Arms:
- lr decay: batch 50 throughout, learning rate x 0.2 at each milestone (the `step` schedule);
- batch growth: learning rate 0.1 throughout, batch x 5 at each milestone: 50, 250, 1,250
  (Trial.batch_growth; capped at the training split);
- constant: batch 50 and learning rate 0.1 throughout, a reference that shows whether the schedule
  matters at all here (if it did not, the two schedules would agree trivially).
Evaluation once an epoch for every arm. The paper's learning rate and momentum are used as they
are (no tuning): at a smaller rate on tuning seed 1000 (0.03) the constant run was as good as
either schedule, a regime where the comparison says nothing; at 0.1 the step decay helps.

Verdict (two parts; 95% intervals, one value per seed, arms paired by seed):
(1) batch growth's minus lr decay's final test accuracy inside ±1 pp (equivalence, two one-sided
    tests at 2.5% each: the claim is "the same test accuracy"; margin 1 pp, 10 of the 1,000 test
    digits); a diverged trial counts as chance (10 %), never inside the band. This is the part
    that can fail, on either side;
(2) the regime check: lr decay's minus the constant rate's final test accuracy > 1 pp
    (superiority by more than the margin: the schedule's own effect must exceed the band that
    (1) allows, or "the same accuracy" says nothing about replacing the schedule).
Demonstration, not a part: the updates. The batch-size plan is a function of the config
(oplab.growth.batch_plan): each third of the examples is seen in batches 5x larger than the last,
so the growing-batch arm makes fewer updates than lr decay on every seed by construction (a unit
test checks the >= 2x at the quick and full budgets). The table counts both arms' updates and
their ratio from the records (final["steps"]); the figures plot both against updates.

Full budget: MNIST (60,000 digits), the same MLP at 4x the width, 30 epochs (milestones at epochs
10 and 20), batch 100 at the start (100, 500, 2,500), same arms.

Full budget: about 0.12 GPU-hours on one data-centre GPU (30 trials, 434,400 updates, 0.069 PFLOP
counted from the arms' models; `python -m studies.batch_growth --budget full --replicate --estimate`
shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "batch_growth"
TITLE = "Increase the batch size instead of decaying the learning rate"
CLAIM = ("Increasing the batch size by the factor a step schedule would divide the learning rate by, at the "
         "same epochs, gives the same test accuracy after the same number of epochs, with fewer parameter updates.")
SOURCE = ("Smith, Kindermans, Ying & Le 2017, Don't Decay the Learning Rate, Increase the Batch Size, "
          "arXiv 1711.00489 (ICLR 2018)")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "full": 5}

ARMS = ["lr decay", "batch growth", "constant"]
COLORS = {"lr decay": "C0", "batch growth": "C1", "constant": "C7"}
FACTOR = 5.0  # lr / 5 or batch x 5 at each milestone (the paper's factor)
EVERY = 1 / 3  # milestones after every third of the training examples
LR, MOMENTUM = 0.1, 0.9  # the paper's
MARGIN_PP = 1.0
CHANCE_PP = 10.0


def _setup(data, width, epochs, batch):
    return dict(data=data, width=width, epochs=epochs, batch=batch)


SETUP = {"smoke": _setup(DataConfig("mnist5k", n_train=300, n_test=200), 16, 3, 20),
         "quick": _setup(DataConfig("mnist5k"), 64, 9, 50),
         "full": _setup(DataConfig("mnist"), 256, 30, 100)}

PAPER = """
| Smith et al. 2017 (arXiv 1711.00489) | paper | status | here (quick) |
|---|---|---|---|
| claim (abstract) | "equivalent test accuracies after the same number of training epochs, but with fewer parameter updates" | verified | part (1) and the updates table |
| optimizer | SGD with momentum 0.9, initial learning rate 0.1 (wide ResNet, CIFAR-10) | approx. (unconfirmed) | same, MLP on mnist5k |
| schedule | lr / 5 at three milestones vs batch x 5 at the same epochs, batch 128 at the start | approx. (unconfirmed) | lr / 5 vs batch x 5 at epochs 3 and 6, batch 50 at the start |
| result | test-set learning curves against epochs overlap; the growing batch needs fewer updates | figures only | figures and tables below |

We print no accuracy of theirs: their curves are on CIFAR-10 and ImageNet, ours on 4,000 digits.
"""  # noqa: E501


def arms(budget: str) -> dict[str, kit.Arm]:
    s = SETUP[budget]
    base = dict(data=s["data"], model=ModelConfig("mlp", 2, s["width"], "relu"), init=InitConfig("he"),
                epochs=s["epochs"], batch_size=s["batch"])
    decay = OptimConfig("sgd", lr=LR, momentum=MOMENTUM, schedule="step",
                        options={"schedule_every": EVERY, "schedule_factor": 1 / FACTOR})
    const = OptimConfig("sgd", lr=LR, momentum=MOMENTUM)
    trials = {"lr decay": Trial(optim=decay, **base),
              "batch growth": Trial(optim=const, batch_growth=FACTOR, batch_every=EVERY, **base),
              "constant": Trial(optim=const, **base)}
    return {name: kit.Arm(trial, {"schedule": name}) for name, trial in trials.items()}


def measure(df, curves, ctx):
    """Per trial: final test accuracy (pp), updates made, and the largest batch used."""
    t = df.copy()
    t["test_acc_pp"] = 100 * t["test_acc"]
    t["updates"] = t["steps"].astype(float)
    log = curves.get("log")
    if log is not None and "batch_size" in log:
        big = log.groupby(["arm", "seed"])["batch_size"].max().rename("max_batch").reset_index()
        t = t.merge(big, on=["arm", "seed"], how="left")
    else:
        t["max_batch"] = np.nan
    t["max_batch"] = t["max_batch"].fillna(ctx.setup["batch"])
    return t


def verdict(t, ctx):
    return [kit.difference(t, "test_acc_pp", {"schedule": "batch growth"}, {"schedule": "lr decay"},
                           part="(1) test accuracy, batch growth vs lr decay", unit="pp",
                           within=(-MARGIN_PP, MARGIN_PP),
                           worst=CHANCE_PP, fmt=".2f",
                           claim=f"batch growth's minus lr decay's final test accuracy inside ±{MARGIN_PP:g} pp "
                                 "(equivalence: the same accuracy)",
                           note="A diverged trial counts as chance accuracy (10 %). The updates (fewer with batch "
                                "growth) are fixed by the schedule: a demonstration, in the tables."),
            kit.difference(t, "test_acc_pp", {"schedule": "lr decay"}, {"schedule": "constant"},
                           part="(2) the schedule matters: lr decay vs constant", unit="pp", above=MARGIN_PP,
                           worst=CHANCE_PP, fmt=".2f",
                           claim=f"lr decay's minus the constant rate's final test accuracy > {MARGIN_PP:g} pp (the "
                                 "regime check: without it, (1) could hold because no schedule matters)",
                           note="A diverged trial counts as chance accuracy (10 %).")]


def tables(t, curves, ctx):
    order = {"schedule": ARMS}
    acc = kit.summary(t, "test_acc_pp", ["schedule"], name="final test accuracy %", fmt=".2f", order=order,
                      extra={"final train loss (full split)": "train_loss_full", "updates": "updates",
                             "largest batch": "max_batch", "ms / update": "time_per_step_ms"})
    per_seed = t.pivot_table(index="seed", columns="schedule", values="updates")
    ratio = (per_seed["lr decay"] / per_seed["batch growth"]) if {"lr decay", "batch growth"} <= set(per_seed) \
        else per_seed.iloc[:, :0]
    upd = per_seed.assign(**{"lr decay / batch growth": ratio}).reset_index()
    return {"final test accuracy and updates": acc,
            "updates per seed (fixed by the schedule: a demonstration)": upd}


def figures(t, curves, ctx):
    ev = curves["eval"].assign(test_acc_pct=lambda d: 100 * d["test_acc"])
    fig, axes = plots.figure(3)
    plots.curves(axes[0], ev, "epoch", "test_acc_pct", "schedule", "epoch", "test accuracy (%)",
                 "Against epochs", hue_order=ARMS)
    plots.curves(axes[1], ev[ev["step"] > 0], "epoch", "train_loss_running", "schedule", "epoch",
                 "training loss (nats; log scale)", "Training loss (epoch's minibatches)", logy=True,
                 hue_order=ARMS)
    plots.curves(axes[2], ev, "step", "test_acc_pct", "schedule", "parameter updates", "test accuracy (%)",
                 "Against updates", hue_order=ARMS)
    lo = np.nanpercentile(ev.loc[ev["step"] > 0, "test_acc_pct"], 5) if (ev["step"] > 0).any() else 0
    for ax in (axes[0], axes[2]):
        ax.set_ylim(max(0.0, lo - 2), 100)
    for m in (ctx.setup["epochs"] * EVERY, 2 * ctx.setup["epochs"] * EVERY):
        axes[0].axvline(m, color="0.6", ls=":", lw=1)
        axes[1].axvline(m, color="0.6", ls=":", lw=1)
    plots.caption(fig, plots.BAND_LABEL + "; dotted: the milestones (lr / 5 or batch x 5); training loss: mean of "
                  "the minibatch losses over each epoch")
    return {"learning_curves": fig}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
