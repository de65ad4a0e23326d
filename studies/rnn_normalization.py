"""Normalization inside an LSTM: recurrent batch normalization (Cooijmans, Ballas, Laurent, Gulcehre &
Courville 2017) and weight normalization (Salimans & Kingma 2016) against a plain LSTM.

The claim. Cooijmans et al. batch-normalize the LSTM's input-to-hidden and hidden-to-hidden terms
separately and its cell where it feeds the output, with statistics kept per time step (population
statistics per step at test time) and the scale gamma started at 0.1; their BN-LSTM "converges
faster" than the LSTM on sequential MNIST, permuted MNIST, Penn Treebank, text8 and a question-
answering task (their Fig. 2-4). Salimans & Kingma present weight normalization as applicable to
recurrent models, where batch statistics fit badly; their recurrent experiment is DRAW (sec. 5.3),
whose LSTMs train faster weight-normalized. Mean-only batch norm, their companion to WN in feed-
forward nets, would put batch statistics back into the recurrence (the other arm's idea), and the
net has no feed-forward hidden layer for it: the WN arm is weight normalization alone.

Regime. The paper reads MNIST one pixel a step (784 steps, 100 units, RMSProp, 200 epochs on a GPU).
Here the task is MNIST-1D (the official generator's 4,000 training sequences of 40 values, 10
classes; 500 of its 1,000 test sequences are evaluated), read by a one-layer LSTM of 32 units whose
last hidden state feeds a linear read-out. The cell is written out step by step (oplab.recurrent,
model `norm_lstm`), so that the three arms share one implementation:
- plain: the LSTM;
- BN: the BN-LSTM exactly as the paper (verified in the authors' camera-ready source and code):
  gamma_x = gamma_h = gamma_c = 0.1, beta_x = beta_h = 0 (the bias b covers them), beta_c = 0,
  statistics per step, the cell's update itself not normalized;
- WN: every weight matrix (input, recurrent, read-out) weight-normalized by torch's weight_norm
  through oplab's "weight" normalizer, g per output unit, then Salimans & Kingma's data-dependent
  init (their sec. 3) carried into the recurrence (oplab.recurrent, NormLSTM.data_dependent_init):
  on the trial's fixed batch (100 training sequences apart from the training order), each gate
  unit's g_x, g_h and b are set so that its pre-activation W_x x_t + W_h h_(t-1) + b has mean 0
  (the forget gate's: 1, the offset every arm starts with) and variance 1 over the batch and the
  steps, its recurrent term carrying as much variance as its input term (the split oplab's LSUV
  for an RNN uses); h depends on all three, so they are found by a damped fixed-point iteration
  (every unit within 0.01 of its targets; the records' `extra.data_init` give the passes and the
  errors); then the read-out's logits to mean 0 and variance 1, the paper's rule as it stands.
  Their rule is for feed-forward layers, and the authors advise against it for recurrent nets (not
  read in the paper itself here: TensorFlow Addons' WeightNormalization warns that data_init with an
  RNN "is advised against by the paper", and a reader's summary gives the init "for networks
  without recursions"); their DRAW experiment (sec. 5.3) most likely used WN without it, which is
  what this study's version 1 did (g = ||v||: the WN arm started as the plain LSTM's very function;
  its quick result is kept in the Budgets section). The extension is ours, and documented as such.
Every arm starts from the same directions for a seed: orthogonal matrices, biases 0, the forget
gate's 1 (the authors' code); the plain and BN arms from the very same weights. At quick: Adam at
batch 100 with the gradient norm clipped at 1 (the paper's Penn Treebank and text8 protocol: Adam,
clipping at 1); at long, RMSProp (the paper's sequential-MNIST protocol, see Budgets). A step
reads `chunk` values: at quick 4 (10 steps), because the step-by-step cell costs its number of
tensor operations a step and 40 steps of 1 value cost 4x as much; at long 1 (40 steps).

Fair learning rates. Each arm has its own rate, chosen on the tuning seeds (1000-1001 at quick,
1000 at long) by the lowest final running training loss (the mean minibatch loss over the updates
since the last evaluation, in training mode: the BN arm's own training measure; the full-split loss
is evaluated with population statistics, which lag the weights early in training). At quick the
Adam grid {0.03, 0.1, 0.3} was placed on pilot seeds 5000-5003 (neither tuning nor verdict seeds):
at 120-150 updates the plain and version 1's WN arms were best at 0.1 of {0.003, 0.01, 0.03, 0.1},
the BN arm level at 0.03 and 0.1. The WN arm with its data-dependent init chose the grid's lowest
rate, 0.03, and then the next one added below, 0.01: its grid was extended to {0.003, 0.01, 0.03,
0.1, 0.3} on the tuning seeds, which bracket it at 0.01 (unit-variance gates take smaller steps).
The page says where a choice sits at a grid edge.

The measure, stated before any verdict data: updates until the running training loss (mean
minibatch loss over the updates before each evaluation, every `eval_every` updates: 10 at quick,
20 at long) first reaches the
target TARGET (SETUP), the first evaluation step at which it is at or below it; a run that never
gets there, or diverges, counts as the budget plus one interval. The target was set on the tuning
seeds (see Budgets) where the plain LSTM at its chosen rate reaches it about halfway through the
budget, so that either arm can be seen faster or slower.

Verdict (one value per seed, arms paired by seed; t on the logs of the per-seed ratios; 95%):
(1) BN-LSTM: plain's / BN's updates to the target > 1;
(2) WN-LSTM: plain's / WN's updates to the target > 1.
The BN arm's update does more work (three normalizations a step), and the cost per update is shown
(ms / update in the first table), but the claim, like the paper's, is in updates; both arms of a
part run the same number of updates. The test accuracy with per-step population statistics is
shown, not judged.

Budgets (compute: the records' summed wall time with replication; the machine was shared with
other training processes, so these read 2-3x an idle machine's):
- smoke: the temporal-order task of length 10 (oplab.tasks; instant to generate), 4 units, 4
  updates; plumbing only.
- quick: 10 steps of 4 values, 32 units, Adam, 100 updates (2.5 epochs), the target 1.5 nats;
  2 + 5 + 5 seeds (tuning, verdict, replication) x 3 arms, the tuning seeds at 3 rates each (WN: 5).
  The target: on tuning seeds 1000, 1001 the plain LSTM at its chosen rate (0.1) first reached 1.5
  at updates 50 and 60 (1.4 at 70 and 80, too late for a slower arm to be timed within 100
  updates); plain and BN chose 0.1, inside their grids (the final running losses at 0.03 / 0.1 /
  0.3: plain 1.26 / 1.22 / 1.51, BN 1.29 / 1.23 / 1.48), WN 0.01 (at 0.003 / 0.01 / 0.03 / 0.1 /
  0.3: 1.25 / 1.09 / 1.19 / 1.29 / 1.48). Version 1's WN arm, without the data-dependent init
  (g = ||v||: the plain LSTM's very function at the start) and at Adam 0.1 (0.03 / 0.1 / 0.3: 1.41
  / 1.32 / 1.35), was slower than the plain LSTM: part (2) read not reproduced, 0.824 [0.731,
  0.93] (n = 10); its records were replaced by the init's (the plain and BN records are the same
  trials: only the WN arm's config changed). Cost: about 0.8 s of CPU a plain run, 1.3 s a BN run,
  and the WN init's 70-120 passes of the batch add about 0.15 s to a WN run (52 runs, about 45 s
  on an idle machine); the records' wall time reads more because the 2 cores were shared with other
  training processes (9-11 when the plain and BN records were made; 5-7 for the WN records).
- long: the paper's reading, one value a step: MNIST-1D as 40 steps of 1 value, 100 units (the
  paper's), batch 100, RMSProp (decay 0.9) with the gradient norm clipped at 1 (the paper's
  sequential-MNIST protocol: RMSProp at 1e-3 for 200 epochs; over 300 updates a larger rate is
  better, so it is tuned: {0.003, 0.01, 0.03}, every arm), 300 updates (7.5 epochs), evaluated
  every 20 updates; 1 + 5 + 5 seeds (one tuning seed, for cost) x 3 arms. The grids: on
  tuning seed 1000 BN's best rate sat at the top edge twice and WN's at the bottom edge once, so
  BN's grid was extended to 0.1 and 0.3 and WN's to 0.001; every choice is now inside its grid
  (final running losses, plain at 0.003 / 0.01 / 0.03: 1.37 / 0.92 / 0.94, chose 0.01; BN at
  0.003 / 0.01 / 0.03 / 0.1 / 0.3: 1.40 / 1.26 / 0.82 / 0.63 / 4.91, chose 0.1; WN at 0.001 /
  0.003 / 0.01 / 0.03: 0.56 / 0.43 / 0.83 / 0.46, chose 0.003). The target, 1.6 nats, was set on
  that seed before any verdict seed trained: the plain LSTM at 0.01 first reached it at update 180
  of 300 (1.65 at 160; 1.5 not before 200), so a slower arm can still be timed; BN at 0.1 and WN
  at 0.003 reached it at 80 and 100. The regime's condition shows there: the plain LSTM needs
  about 4.5 epochs to a running loss of 1.6 here, where at quick (10 steps of 4 values) it needs
  1.25-1.5 epochs to 1.5 (the training curves on the page). Cost: 42 runs; the records' wall time
  sums to about 2,150 s, read on 2 cores shared with 3-7 other training processes (the first
  tuning runs took 80-190 s each, the verdict runs 25-40 s). By the per-update process time
  measured apart beside other processes (64 ms a plain update, 126 ms a BN update; the WN init's
  ~90 passes of the batch about 2 s a run) the 42 runs are about 20 CPU-minutes under such load,
  an estimated 12-15 on an idle machine (not measured idle).
- full (not run): MNIST read row by row, 28 steps of 28 pixels (the paper reads 784 pixels one a
  step: `chunk` 1; the step-by-step cell is too slow to count or dry-run at 784 steps), 100 units,
  20,000 updates at batch 100 (about 33 epochs of 60,000 digits), the same grids, the target 0.3
  nats (not checked on tuning seeds). At 784 steps the paper adds Gaussian noise to the initial
  hidden state because the first ~100 pixels are black in every digit and the BN arm's early steps
  have zero variance; oplab's cell does not.

Full budget: about 0.27 GPU-hours on one data-centre GPU (48 trials, 960,000 updates, 0.8 PFLOP
counted from the arms' models; `python -m studies.rnn_normalization --budget full --replicate
--estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import pandas as pd

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, NormConfig, OptimConfig, Trial

NAME = "rnn_normalization"
TITLE = "Recurrent batch norm and weight norm in an LSTM"
CLAIM = ("Batch normalization inside an LSTM's recurrence (input-to-hidden and hidden-to-hidden terms and the "
         "cell, statistics per time step, gamma started at 0.1) and weight normalization each make the LSTM reach a "
         "training-loss criterion in fewer updates than a plain LSTM, each arm at its own tuned learning rate.")
SOURCE = ("Cooijmans, Ballas, Laurent, Gulcehre & Courville 2017, Recurrent Batch Normalization, ICLR, "
          "arXiv 1603.09025 (sec. 3-4, Fig. 2, Table 1); Salimans & Kingma 2016, Weight Normalization, "
          "arXiv 1602.07868 (sec. 5.3, DRAW)")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "long": 5, "full": 5}
TUNE = kit.Tune("lr", within=("norm",), score="train_loss_running",
                seeds={"smoke": 1, "quick": 2, "long": 1, "full": 2})

ARMS = {"plain": ("none", NormConfig("none")), "BN": ("batch", NormConfig("none")),
        "WN": ("none", NormConfig("weight", data_init=True))}  # label -> (the cell's norm, oplab normalizer)
ORDER = list(ARMS)
GRID = [0.03, 0.1, 0.3]  # Adam learning rates per update, every arm's grid (quick)


def _setup(data: DataConfig, width: int, chunk: int, steps: int, eval_every: int, target: float,
           lrs: list[float] | None = None, batch: int = 100, optim: str = "adam",
           more_lrs: dict[str, list[float]] | None = None) -> dict:
    """target: running training loss (nats) whose first crossing is timed; eval_every: updates between
    evaluations (the resolution of the measure); optim: "adam" or "rmsprop" (decay 0.9), the gradient norm
    clipped at 1 either way; lrs: its learning rates per update, every arm's grid; more_lrs: levels added
    to an arm's grid (label -> rates) where its optimum sat at an edge."""
    lrs = lrs or GRID
    grids = {label: sorted(set(lrs) | set((more_lrs or {}).get(label, []))) for label in ARMS}
    return {"data": data, "width": width, "chunk": chunk, "steps": steps, "eval_every": eval_every,
            "target": target, "lrs": grids, "batch": batch, "optim": optim}


SETUP = {
    "smoke": _setup(DataConfig("temporal_order", options={"length": 10, "n_train": 100, "n_test": 50}), 4, 1, 4,
                    2, 1.0, lrs=[0.03], batch=50),
    "quick": _setup(DataConfig("mnist1d", n_test=500), 32, 4, 100, 10, 1.5, more_lrs={"WN": [0.003, 0.01]}),
    # the paper's regime: one value a step (40 steps), 100 units, RMSProp, batch 100 (the target: see Budgets)
    "long": _setup(DataConfig("mnist1d", n_test=500), 100, 1, 300, 20, 1.6, lrs=[0.003, 0.01, 0.03],
                   optim="rmsprop", more_lrs={"BN": [0.1, 0.3], "WN": [0.001]}),
    "full": _setup(DataConfig("mnist"), 100, 28, 20000, 500, 0.3),
}

PAPER = """
| Cooijmans et al. 2017 (camera-ready source, authors' repository) | LSTM | BN-LSTM | status |
|---|---|---|---|
| sequential MNIST, test accuracy % (Table 1) | 98.9 | 99.0 | verified |
| permuted MNIST, test accuracy % (Table 1) | 90.2 | 95.4 | verified |
| Penn Treebank (characters), test bits per character | 1.38 | 1.32 | verified |
| text8, test bits per character | 1.43 | 1.36 | verified |
| convergence (Fig. 2: validation accuracy on (p)MNIST during training) | slower | faster | verified (the text; no number) |
| setup: 100 units, RMSProp lr 1e-3, clipping at 1, batch 100 (experiments/*.sh), gamma 0.1, beta 0 | | | verified |

| Salimans & Kingma 2016 | | status |
|---|---|---|
| recurrent experiment: DRAW on MNIST (sec. 5.3), weight-normalized training converges faster | no number quoted | secondary (section title seen in a reader's notes; the text not read here) |
| data-dependent init (sec. 3): g = 1 / sigma[t], b = -mu[t] / sigma[t] from one minibatch, t = v.x / norm(v) | a rule, no number | secondary (readers' summaries; the rule as oplab.norms implements it for feed-forward layers) |
| the init is not for recurrent nets | advised against | secondary (TensorFlow Addons' WeightNormalization: data_init with an RNN "is advised against by the paper", tensorflow/addons PR #819; a reader's summary gives the init "for networks without recursions"); what the DRAW runs used: not found |

Our quick budget is far smaller (MNIST-1D read in 10 steps, 100 updates):
compare the direction of the speed-up, not accuracies.
"""  # noqa: E501


def arms(budget: str) -> dict[str, kit.Arm]:
    """One arm per (parameterization, learning rate of the grid)."""
    s = SETUP[budget]
    out = {}
    for label, (cell_norm, normalizer) in ARMS.items():
        model = ModelConfig("norm_lstm", 1, s["width"], "tanh", options={"norm": cell_norm, "chunk": s["chunk"]})
        for lr in s["lrs"][label]:
            trial = Trial(data=s["data"], model=model, init=InitConfig("default"), norm=normalizer,
                          optim=OptimConfig(s["optim"], lr=lr, clip="norm", clip_threshold=1.0), steps=s["steps"],
                          batch_size=s["batch"], eval_every=s["eval_every"])
            out[f"{label} lr={lr:g}"] = kit.Arm(trial, {"norm": label, "lr": lr})
    return out


def never(setup) -> float:
    """The value of a run that never reaches the target: the budget plus one evaluation interval."""
    return float(setup["steps"] + setup["eval_every"])


def updates_to(curve: pd.DataFrame, target: float, censored: float) -> float:
    """The first evaluation step whose running training loss is at or below `target`, else `censored`."""
    loss = pd.to_numeric(curve["train_loss_running"], errors="coerce")
    hit = curve[loss <= target]
    return float(hit["step"].min()) if len(hit) else censored


def measure(df, curves, ctx):
    """Per trial: `updates_to_target` (censored at the budget plus one interval; a trial that did not
    finish counts as censored) and the test error in percent."""
    t = df.copy()
    ev = curves.get("eval", pd.DataFrame(columns=["arm", "seed", "step", "train_loss_running"]))
    cens, target = never(ctx.setup), ctx.setup["target"]
    by = {k: g for k, g in ev.groupby(["arm", "seed"])} if len(ev) else {}
    t["updates_to_target"] = [
        updates_to(by[(a, s)], target, cens) if st == "ok" and (a, s) in by else cens
        for a, s, st in zip(t["arm"], t["seed"], t["status"])]
    t["test_err_pct"] = 100 * pd.to_numeric(t["test_err"], errors="coerce")
    return t


def verdict(t, ctx):
    cens, target = never(ctx.setup), ctx.setup["target"]
    parts = []
    for i, arm in enumerate(("BN", "WN"), start=1):
        missed = {a: int((kit.select(t, {"norm": a})["updates_to_target"] >= cens).sum()) for a in ("plain", arm)}
        parts.append(kit.ratio(
            t, "updates_to_target", {"norm": "plain"}, {"norm": arm}, above=1.0, worst=cens,
            part=f"({i}) {arm}-LSTM vs plain LSTM",
            claim=f"plain's / {arm}'s updates to a running training loss of {target:g} nats > 1",
            note=f"Never reached within the budget (counted as {cens:g} updates): "
                 + ", ".join(f"{a}: {k}" for a, k in missed.items()) + "."))
    return parts


def tables(t, curves, ctx):
    order = {"norm": ORDER}
    return {
        "updates to the target (each arm at its chosen learning rate)":
            kit.summary(t, "updates_to_target", ["norm"], name="updates to target", fmt=".1f", order=order,
                        extra={"learning rate (chosen)": "lr", "final running train loss": "train_loss_running",
                               "final train loss (full split, population statistics)": "train_loss_full",
                               "test error % (population statistics)": "test_err_pct",
                               "ms / update": "time_per_step_ms"}),
        "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, show={"ms / update": "time_per_step_ms"},
                                                              order=order),
    }


def figures(t, curves, ctx):
    target = ctx.setup["target"]
    ev = curves["eval"]
    ev = ev[ev["step"] > 0].dropna(subset=["train_loss_running"])
    ev = ev.merge(t[["arm", "seed"]], on=["arm", "seed"])
    fig, axes = plots.figure(2, width=5.0)
    plots.curves(axes[0], ev, "step", "train_loss_running", "norm", "update",
                 f"running training loss (nats, mean of {ctx.setup['eval_every']} minibatches)",
                 "Training loss, each arm at its chosen rate",
                 hue_order=ORDER)
    axes[0].axhline(target, color="0.3", ls="--", lw=1)
    parts = verdict(t, ctx)
    plots.parts(axes[1], parts, ["plain / BN", "plain / WN"], "plain's / arm's updates to the target (ratio)",
                "Updates to the target", logy=True, legend="below")
    plots.caption(fig, plots.BAND_LABEL + f"; dashed (left): the target, {target:g} nats. Right: each part's "
                  "per-seed ratio (grey), geometric mean and 95% interval (t on the logs); above 1 (dashed) the arm "
                  "reaches the target in fewer updates than the plain LSTM")
    fig2, (ax,) = plots.figure(1, width=5.0)
    plots.points(ax, t, "norm", "test_err_pct", "", "test error % (population statistics)",
                 "Test error at the end (shown, not judged)", order=ORDER)
    plots.caption(fig2, plots.POINTS_LABEL + "; BN: per-step population statistics at test time")
    return {"training_curves": fig, "test_error": fig2}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
