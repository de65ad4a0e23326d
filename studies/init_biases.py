"""Bias initialization: the output bias at the log class priors, a small positive bias for ReLU
units, and an LSTM forget-gate bias of 1 (Goodfellow, Bengio & Courville 2016, section 8.4;
Jozefowicz, Zaremba & Sutskever 2015).

Three settings, two arms each, every pair identical but for the bias (same seed, same weights):

- output bias. A ReLU MLP (2 hidden layers of 64 units, He init) on a class-imbalanced mnist5k:
  class c keeps a fraction 0.6^c of its digits (digit 0 all 400 training digits, digit 9 4 of
  them: a 100:1 imbalance; about 1,000 training and 250 test digits, the test split with the
  same proportions). Arms: read-out bias 0 (`zero`) vs the log of the training split's class
  frequencies (`log prior`, oplab.init's output_bias="log_prior"). SGD with momentum 0.9 at
  batch 50, 2 epochs (38 updates).
  By construction, a net whose read-out contributes nothing then predicts the class marginals:
  its loss is the label entropy (a unit test checks it to 1e-6 with zero read-out weights).
  That is a demonstration (table "loss at initialization"), not a part: with He-initialized
  read-out weights the initial logits are not uniform, and whether the head start survives the
  first epoch is what can fail, since SGD learns a bias within a few updates.
- ReLU bias. The regime the advice is for: a deep ReLU MLP (8 hidden layers of 32 units) from the
  'standard' init U(-1/sqrt(n), 1/sqrt(n)) of the pre-2015 era, whose activations shrink layer
  by layer, on 1,000 mnist5k digits; SGD with momentum 0.9 at batch 50 for 80 updates (4
  epochs). Arms: hidden biases 0 vs 0.1 (hidden_bias=0.1; the read-out's bias stays 0). A unit
  is dead on a batch when its output is 0 for all 50 digits of a fixed probe batch (the
  `dead_units` monitor, every 10 updates). At init a positive bias trivially keeps more units
  alive when the weights are small; what can fail is the early training: SGD can push the
  biases below 0 and kill units anyway (with He init the pre-activations are ~1 in scale and a
  bias of 0.1 barely matters). The dead fraction at update 0 is shown, not judged.
- forget gate. An LSTM (1 layer of 16 units, PyTorch's default init U(-1/4, 1/4)) on the adding
  problem of length 10 (2,000 training sequences; oplab.tasks' `adding`), mean squared error,
  Adam at batch 50 for 400 updates. Arms: forget-gate bias 0 vs 1, set as PyTorch's effective
  bias b_ih + b_hh (b_ih's forget slice = v, b_hh's = 0; the other gates keep their draws).
  The loss sits on a plateau (predicting the mean, about 0.042) before it drops.

Learning rates. One rate per setting, shared by its two arms, chosen from a small grid by the
lowest mean final full-split training loss of both arms on tuning seeds 1000, 1001 (never test
data nor verdict seeds): SGD {0.02, 0.05} (output bias), {0.05, 0.1} (ReLU bias); Adam 0.01
(forget gate: a one-level grid, the usual rate for a small LSTM; its tuning trials show the
plateau that the target below was set from). The forget gate's target, a running training loss
of 0.01 (a quarter of the plateau's), was set on tuning seed 1000.

Verdict (one value per seed, arms paired by seed; 95% intervals):
(1) output bias: the mean training loss over the first epoch (mean minibatch loss of its 19
    updates), zero's minus log prior's > 0 nats (Student t); a diverged trial counts as the
    worst value seen;
(2) ReLU bias: the fraction of dead units early in training (mean over the probes at updates
    10, 20, ..., 80), bias 0's minus bias 0.1's > 0 (Student t); a diverged trial counts as the
    worst value seen;
(3) forget gate: updates to a running training loss <= 0.01 (recorded every 10 updates), bias
    0's / bias 1's > 1 (t on log ratios: bias 1 needs fewer); a trial that never gets there or
    diverges counts as 410 updates (the budget plus one interval).

Full budget: the output-bias setting for 5 epochs (still on the imbalanced mnist5k), the ReLU
setting on all of MNIST for 2,400 updates, and the adding problem of length 50 with 100 units
for 20,000 updates.

Full budget: about 0.16 GPU-hours on one data-centre GPU (80 trials, 549,860 updates, 0.3 PFLOP
counted from the arms' models; `python -m studies.init_biases --budget full --replicate --estimate`
shows the count and its assumptions).
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "init_biases"
TITLE = "Bias initialization: output priors, ReLU bias 0.1, LSTM forget gate 1"
CLAIM = ("Setting the output bias to the log class priors speeds early training on imbalanced classes; a small "
         "positive bias (0.1) leaves fewer ReLU units dead early in training; a forget-gate bias of 1 lets an LSTM "
         "reach a target loss on a long-memory task in fewer updates than a bias of 0.")
SOURCE = ("Goodfellow, Bengio & Courville 2016, Deep Learning, section 8.4 (output bias = marginal statistics; "
          "ReLU bias 0.1); Jozefowicz, Zaremba & Sutskever 2015, An empirical exploration of recurrent network "
          "architectures, ICML (forget-gate bias 1)")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "full": 5}
TUNE = kit.Tune("lr", within=("setting",), score="train_loss_full", seeds={"smoke": 1, "quick": 2, "full": 2})

SETTINGS = ["output bias", "ReLU bias", "forget gate"]
ARMS = {  # setting -> arm label -> extra InitConfig options (the bias rule); the first label is the baseline
    "output bias": {"zero": {}, "log prior": {"output_bias": "log_prior"}},
    "ReLU bias": {"0": {}, "0.1": {"hidden_bias": 0.1}},
    "forget gate": {"0": {"forget_bias": 0.0}, "1": {"forget_bias": 1.0}},
}
IMBALANCE = [round(0.6**c, 6) for c in range(10)]  # class proportions: 100:1 from digit 0 to digit 9


def _setup(n_relu: int, relu_net: tuple[int, int], relu_steps: int, lstm: dict, epochs: int = 2,
           data: str = "mnist5k") -> dict:
    # the imbalance option is mnist5k's: the output-bias setting uses it at every budget
    return {
        "output bias": {"data": DataConfig("mnist5k", options={"imbalance": IMBALANCE}),
                        "model": ModelConfig("mlp", 2, 64),
                        "init": "he", "optim": "sgd", "lrs": [0.02, 0.05], "epochs": epochs, "batch": 50},
        "ReLU bias": {"data": DataConfig(data, n_train=n_relu, n_test=200), "model": ModelConfig("mlp", *relu_net),
                      "init": "standard", "optim": "sgd", "lrs": [0.05, 0.1], "steps": relu_steps, "batch": 50,
                      "monitor_every": max(1, relu_steps // 8)},
        "forget gate": lstm,
    }


def _lstm(length: int, width: int, n_train: int, steps: int, eval_every: int) -> dict:
    return {"data": DataConfig("adding", options={"length": length, "n_train": n_train, "n_test": 200}),
            "model": ModelConfig("rnn", 1, width, "tanh", options={"cell": "lstm", "init": "torch"}),
            "init": "default", "optim": "adam", "lrs": [0.01], "steps": steps, "batch": 50, "eval_every": eval_every,
            "target": 0.01}


SETUP = {
    "smoke": _setup(200, (3, 8), 8, _lstm(10, 4, 200, 10, 5), epochs=1),
    "quick": _setup(1000, (8, 32), 80, _lstm(10, 16, 2000, 400, 10)),
    "full": _setup(0, (8, 32), 2400, _lstm(50, 100, 20000, 20000, 100), epochs=5, data="mnist"),
}

PAPER = """
| source | what it says | status |
|---|---|---|
| Goodfellow, Bengio & Courville 2016, section 8.4 | if the output's marginal statistics are known, set the output bias so that the softmax of the bias gives them (the log priors, up to a constant) | secondary (our reading of the book) |
| same | set ReLU hidden biases to 0.1 rather than 0 to avoid saturating them at initialization; the book adds that this is not always compatible with other init schemes | secondary (our reading of the book) |
| Jozefowicz, Zaremba & Sutskever 2015, ICML | adding a bias of 1 to the LSTM's forget gate closes the gap between the LSTM and the GRU on most of their tasks (abstract) | secondary (our reading of the abstract) |
| Gers, Schmidhuber & Cummins 2000 | the forget gate's bias is started positive so that the cell remembers by default | secondary |

No number of these sources is reproduced here: the book gives advice, not measurements, and
Jozefowicz et al. report per-task results (arithmetic, XML modelling, language modelling,
music) that our small adding task does not match; compare directions only.
"""  # noqa: E501


def arms(budget: str) -> dict[str, kit.Arm]:
    """One arm per (setting, bias rule, learning rate of the setting's grid)."""
    out = {}
    for setting in SETTINGS:
        c = SETUP[budget][setting]
        for label, rule in ARMS[setting].items():
            for lr in c["lrs"]:
                opts = {"momentum": 0.9} if c["optim"] == "sgd" else {}
                trial = Trial(data=c["data"], model=c["model"], init=InitConfig(c["init"], rule),
                              optim=OptimConfig(c["optim"], lr=lr, **opts), epochs=c.get("epochs", 1),
                              steps=c.get("steps", 0), batch_size=c["batch"], eval_every=c.get("eval_every", 0),
                              monitors=("dead_units",) if setting == "ReLU bias" else (),
                              monitor_every=c.get("monitor_every", 0))
                out[f"{setting} | {label} lr={lr:g}"] = kit.Arm(trial, {"setting": setting, "bias": label, "lr": lr})
    return out


def _updates_to(curve: pd.DataFrame, target: float, never: float) -> float:
    hit = curve[pd.to_numeric(curve["train_loss_running"], errors="coerce") <= target]
    return float(hit["step"].iloc[0]) if len(hit) else never


def measure(df, curves, ctx):
    """Per trial: `first_epoch_loss` (running training loss at epoch 1), `init_test_loss` (test loss
    at update 0), `label_entropy` (the initializer's report, log-prior arms), `dead_init` and
    `dead_early` (dead fraction at update 0, and mean over the probes after it), and
    `updates_to_target` (forget gate; censored at the budget plus one interval)."""
    t = kit.curve_value(df, curves, "eval", "train_loss_running", "first_epoch_loss", at=("epoch", 1.0))
    t = kit.curve_value(t, curves, "eval", "test_loss", "init_test_loss", at=("step", 0))
    t = kit.curve_value(t, curves, "monitor", "dead_frac", "dead_init", at=("step", 0))
    t = kit.curve_value(t, curves, "monitor", "dead_frac", "dead_early", after=("step", 0))
    t["label_entropy"] = [((e or {}).get("init") or {}).get("bias_rules", {}).get("label_entropy", np.nan)
                          if isinstance(e, dict) else np.nan for e in t["extra"]]
    c = ctx.setup["forget gate"]
    never = float(c["steps"] + c["eval_every"])
    ev = curves.get("eval", pd.DataFrame(columns=["arm", "seed", "step", "train_loss_running"]))
    ups = []
    for _, row in t.iterrows():
        if row["setting"] != "forget gate":
            ups.append(np.nan)
            continue
        cv = ev[(ev["arm"] == row["arm"]) & (ev["seed"] == row["seed"])]
        ups.append(_updates_to(cv, c["target"], never) if row["status"] == "ok" else never)
    t["updates_to_target"] = ups
    return t


def verdict(t, ctx):
    c = ctx.setup["forget gate"]
    never = c["steps"] + c["eval_every"]
    fg = kit.select(t, {"setting": "forget gate"})
    missed = {b: int((g["updates_to_target"] >= never).sum()) for b, g in fg.groupby("bias")}
    return [
        kit.difference(t, "first_epoch_loss", {"bias": "zero"}, {"bias": "log prior"},
                       where={"setting": "output bias"}, above=0.0, unit="nats", fmt=".3f",
                       part="(1) output bias at the log priors",
                       claim="zero bias's minus log-prior bias's mean training loss over the first epoch > 0"),
        kit.difference(t, "dead_early", {"bias": "0"}, {"bias": "0.1"}, where={"setting": "ReLU bias"}, above=0.0,
                       unit="fraction of units", fmt=".3f", part="(2) ReLU bias 0.1",
                       claim="bias 0's minus bias 0.1's fraction of dead ReLU units early in training (mean over "
                             "the probes after update 0) > 0"),
        kit.ratio(t, "updates_to_target", {"bias": "0"}, {"bias": "1"}, where={"setting": "forget gate"}, above=1.0,
                  part="(3) LSTM forget-gate bias 1",
                  claim=f"bias 0's / bias 1's updates to a training loss of {c['target']:g} > 1",
                  note=f"Never reached within the budget (counted as {never} updates): "
                       + ", ".join(f"bias {b}: {v}" for b, v in missed.items()) + "."),
    ]


def tables(t, curves, ctx):
    order = {"setting": SETTINGS, "bias": list(dict.fromkeys(b for s in SETTINGS for b in ARMS[s]))}
    lr = {"lr (chosen)": "lr"}
    ob, rb, fg = (kit.select(t, {"setting": s}) for s in SETTINGS)
    init = ob.groupby("bias")[["init_test_loss"]].mean()
    init["label_entropy"] = ob["label_entropy"].mean()  # one training split for both arms (the prior arm's report)
    init["log(10) (uniform prediction)"] = math.log(10)
    init = kit.ordered(init.reset_index().rename(columns={
        "init_test_loss": "test loss at update 0 (nats)",
        "label_entropy": "label entropy of the training split (nats)"}), ["bias"], order)
    return {
        "(1) output bias: mean training loss over the first epoch":
            kit.summary(ob, "first_epoch_loss", ["bias"], name="first-epoch loss (nats)", order=order,
                        extra={**lr, "test loss at update 0": "init_test_loss",
                               "final train loss (full split)": "train_loss_full"}),
        "(1) output bias: loss at initialization (demonstration)": init,
        "(2) ReLU bias: dead units early in training":
            kit.summary(rb, "dead_early", ["bias"], name="dead fraction, updates 10+", order=order,
                        extra={**lr, "dead fraction at update 0 (demonstration)": "dead_init",
                               "final train loss (full split)": "train_loss_full"}),
        "(3) forget gate: updates to the target loss":
            kit.summary(fg, "updates_to_target", ["bias"], name="updates to target", fmt=".1f", order=order,
                        extra={**lr, "final train loss (full split)": "train_loss_full"}),
        "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, order=order),
    }


def figures(t, curves, ctx):
    order = {s: list(ARMS[s]) for s in SETTINGS}
    log, ev = curves.get("log"), curves.get("eval")
    fig, axes = plots.figure(3)
    ob = kit.select(log, {"setting": "output bias"})
    plots.curves(axes[0], ob, "step", "batch_loss", "bias", "update", "minibatch training loss (nats)",
                 "(1) output bias, imbalanced mnist5k", hue_order=order["output bias"])
    ent = t.loc[t["setting"] == "output bias", "label_entropy"].mean()
    axes[0].axhline(math.log(10), color="0.5", ls=":", lw=1)
    if np.isfinite(ent):
        axes[0].axhline(ent, color="0.3", ls="--", lw=1)
    mon = curves.get("monitor")
    if mon is not None and "dead_frac" in mon:
        plots.curves(axes[1], kit.select(mon, {"setting": "ReLU bias"}), "step", "dead_frac", "bias", "update",
                     "fraction of dead ReLU units (probe batch)", "(2) ReLU hidden bias, 'standard' init",
                     hue_order=order["ReLU bias"])
    fg = kit.select(ev, {"setting": "forget gate"}).dropna(subset=["train_loss_running"])
    plots.curves(axes[2], fg, "step", "train_loss_running", "bias", "update",
                 "training loss (MSE, log scale)", "(3) LSTM forget-gate bias, adding",
                 logy=True, hue_order=order["forget gate"])
    axes[2].axhline(ctx.setup["forget gate"]["target"], color="0.3", ls="--", lw=1)
    plots.caption(fig, plots.BAND_LABEL + "; (1) dotted: log 10 (uniform prediction), dashed: the label entropy; "
                  "(3) mean minibatch loss over the last 10 updates, dashed: the target loss; each setting at its "
                  "chosen learning rate")
    return {"bias_effects": fig}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
