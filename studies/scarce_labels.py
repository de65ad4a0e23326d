"""Unsupervised pre-training when labels are scarce (Paine, Khorrami, Han & Huang 2014).

The claim. Paine et al. ask whether unsupervised pre-training still helps a net trained with ReLUs,
dropout and data augmentation, and find that it helps when the ratio of unlabeled to labeled examples
is high and hurts when it is low (CIFAR-10; their abstract). The notes' version: borrowing features
from a generative learner helps when much unlabeled data is at hand. Tested here: auto-encoder
pre-training on all 4,000 mnist5k training digits, then fine-tuning on 100, 300, 1,000 or 4,000 of
them labeled, against the same net without pre-training at each label count.

What the paper did (verified in the authors' code, github.com/ifp-uiuc/an-analysis-of-unsupervised-
pre-training-iclr-2015, cifar10/README.md and docs/EXPERIMENT_LIST.md): all 50,000 CIFAR-10 training
images unlabeled for a greedy, layer-wise convolutional auto-encoder (3 layers: 96, 144, 192 filters;
zero-bias, ReLU encoder, linear decoder), then a CNN of the same layers fine-tuned on 1,000, 5,000,
10,000 or 50,000 labeled images (ratios 50:1, 10:1, 5:1, 1:1), "shrinking our number of supervised
samples uniformly across classes", with and without dropout and data augmentation (8 arms a ratio);
fine-tuning by SGD at learning rate 0.01, batch 128, up to 100,000 batches, the same rate for every
arm (cifar10/50_to_1/cnn_u/train.py); the reported checkpoint is the one with the best test accuracy
(checkpoint_checker.py); one labeled split (split_0) a ratio.

What we do, and why:
- Data: mnist5k's 4,000 training digits are the unlabeled pool, all of them seen by pre-training;
  the labeled subset (oplab.labels) is class-stratified as theirs ("uniformly across classes") and
  drawn afresh for each seed, so that the verdict covers the draw of the labeled digits too (they
  used one split). Ratios 40:1, 13:1, 4:1 and 1:1, against their 50:1 to 1:1.
- Validation and early stopping: a fifth of each labeled subset (20, 60, 200, 800 digits), stratified,
  is held out of fine-tuning as a validation split (Trial.val_labeled): in a scarce-label world a
  validation split can only come from the labeled digits, so fine-tuning trains on 80, 240, 800 or
  3,200. Every arm's reported test error is read at its lowest validation loss over the fine-tuning
  evaluations (the first such evaluation; update 0 included), the early-stopping point; the paper
  chose its checkpoints by test accuracy, which we do not. The error at the end is in the first table.
- Net: an MLP with one hidden layer of 64 ReLU units (quick; 128 at long), He init, plain SGD (no
  momentum, no weight decay), no dropout or augmentation (the paper's "cnn" against "cnn_u" arms).
  The depth is cut to one hidden layer for cost: one auto-encoder stage is the whole of the borrowed
  features (the paper's CAE has three).
- Pre-training (oplab.pretrain, the lab's greedy layer-wise code, as studies/greedy_pretraining uses
  it): the hidden layer is the encoder of an auto-encoder with a tied linear decoder (W^T plus a bias)
  and squared error, on all 4,000 standardized training digits, their labels unused (oplab.labels
  hides every label outside the labeled subset from an initializer), by SGD for a fixed number of
  epochs (quick: 1 epoch at batch 100, 40 updates; long: 4 epochs at batch 50, 320 updates), stage lr
  1.0, base init He; the read-out layer keeps its He init. Paine et al.'s encoder is ReLU with a linear
  decoder, as ours. The stage lr was set on tuning seed 1000 (explorations, not stored) by the stage's
  own reconstruction loss on the whole split (squared error per pixel; about 1.0 at init): quick's
  setting, lr 0.5, 1.0, 2.0 gave 0.614, 0.503, 0.911; long's, 0.247, 0.204, 0.302; so 1.0, bracketed
  in both. It is not tuned per arm.
- Fine-tuning: every arm the same number of updates at every label count (quick 60, evaluated every
  10; long 250, every 25) at batch 50, or a quarter of the labeled training digits where that is
  fewer (20 at 100 labels). At 100 labels that is 15 (quick) or 62 (long) passes over its 80 training
  digits, at 4,000 about one (quick) or four (long) over 3,200: the larger label counts are trained
  short, which leaves a head start from pre-training worth more there and so works against part (b);
  a "reproduced" for (b) is not from this choice.

Compute-matched control. The pre-trained arm spends its pre-training updates (quick 80, long 400)
before the same fine-tuning updates; "none" is kit.matched: the same net trained from its random
init for the pre-trained arm's total updates (quick 100, long 570), evaluated as often in all (every
16 or 57 updates: 6 or 10 evaluations and the last, so that its counted FLOPs match too), and early-stopped
on its validation split like the pre-trained arm. Without early stopping, more updates on a few
labels could hurt the control and flatter pre-training; with it, the longer run can only offer the
control more checkpoints. A pre-training update does about the arithmetic of a fine-tuning update of
this one-layer net (a 784-64 encoder and its tied decoder against the 784-64-10 net; the estimate
counts one update of the model for each). The fourth table is the former, unmatched contrast, a
demonstration: none's early-stopped error read from its curve over its first 60 (quick) or 250 (long)
updates, the pre-trained arm's fine-tuning length.

Fair learning rates. The fine-tuning lr is chosen per (method, label count) on tuning seeds (quick:
1000; long: 1000, 1001) by `val_loss_min`, the lowest validation loss over the evaluations (the
early-stopping criterion; it reads only the held-out labeled digits, never test data; the page's
protocol line calls every tuning score "a training metric": this one is a validation metric); the
grid is three levels around a centre (GRIDS; default 0.1: 0.03-0.1-0.3), and the page flags a chosen
rate at a grid's edge. The centre at 100 labels is 0.3 (0.1-0.3-1): in a first run of this version's
draft (width 64, 100 fine-tuning updates; tuning seed 1000), both arms chose the top of 0.03-0.1-0.3
there (validation loss 1.15 none, 1.14 autoencoder at 0.3). Moved a step after a first run chose an
edge (tuning seeds only): quick, none at 300 labels up (0.3 was the top of 0.03-0.1-0.3) and the
autoencoder at 100 back down to 0.1 (0.1 was the bottom of 0.1-0.3-1 at this version's settings); long, none
at 100 labels down to 0.1 (chosen 0.1, the bottom of 0.1-0.3-1: mean validation loss 0.85 vs 0.93 at
0.3), none at 300 down to 0.03 (0.03: 0.6071 vs 0.1: 0.6077), none at 1,000 and the autoencoder at
4,000 up to 0.3 (both chose 0.3, the top of 0.03-0.1-0.3). The second table is the grid.

Verdict (test error in percentage points of the 1,000 test digits at each arm's early-stopping point,
paired by seed, Student t; a diverged trial counts as 90 %, chance):
(a) at the smallest label count (100), none's (compute-matched) minus the pre-trained arm's test
    error > 0 (superiority: "helps");
(b) per seed, the benefit at each label count (none's minus the pre-trained arm's test error, pp) and
    its least-squares slope against log10(label count) (pp per tenfold labels, 4 points); the mean
    slope < 0 (superiority: "the benefit shrinks as labels grow"). A seed with a failed trial counts at
    the threshold (a flat slope). Paine et al.'s further finding, that pre-training hurts at 1:1, is
    shown (the benefit table and figure) and not judged: the brief's parts are (a) and (b).

Budgets. quick (sized to the suite's 10 minutes: 104 trials of 100 updates each): width 64, pre-training
1 epoch at batch 100, fine-tuning 60 updates, one tuning seed, 5 + 5 seeds; its pre-training is a
sketch, and its draft (1 epoch at batch 50, 100 fine-tuning updates, the same nets) cost about twice as
much for the same inconclusive words. long (the decisive version): width 128, pre-training 4 epochs
(320 updates), fine-tuning 250 updates, two tuning seeds, 5 + 5 seeds (128 trials of 570 updates).
smoke: 200 digits, labels 20 and 50, 4 fine-tuning updates. full: MNIST, the first 50,000 training
digits unlabeled, labels 1,000, 5,000, 10,000 and 50,000 (the paper's ratios), a hidden layer of 500
units, pre-training 10 epochs, fine-tuning 5,000 updates at batch 50.

Full budget: about 0.43 GPU-hours on one data-centre GPU (`python -m studies.scarce_labels --budget full
--replicate --estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "scarce_labels"
TITLE = "Unsupervised pre-training with scarce labels"
CLAIM = ("Auto-encoder pre-training on all the unlabeled training digits lowers test error when few of them are "
         "labeled, and its benefit shrinks as the labeled share grows.")
SOURCE = ("Paine, Khorrami, Han & Huang 2014, An Analysis of Unsupervised Pre-training in Light of Recent "
          "Advances, arXiv 1412.6597 (ICLR 2015 workshop), the CIFAR-10 ratio experiment")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "long": 5, "full": 5}
TUNE = kit.Tune("lr", within=("method", "labels"), score="val_loss_min",
                seeds={"smoke": 1, "quick": 1, "long": 2, "full": 1})

METHODS = ["none", "autoencoder"]
GRIDS = {0.1: [0.03, 0.1, 0.3], 0.3: [0.1, 0.3, 1.0], 0.03: [0.01, 0.03, 0.1]}  # fine-tuning lr grids by centre
VAL_SHARE = 5  # one labeled digit in VAL_SHARE is held out for validation
CHANCE_PP = 90.0  # a diverged trial's test error


def _setup(data, n_pool, labels, width, steps, pre_epochs, pre_batch=50, batch=50, eval_every=10, lrs=None,
           centres=None):
    """n_pool: the training split's size (pre-training's examples, to count its updates); batch: the fine-tuning
    batch, at most a quarter of the labeled training digits (`batch_of`)."""
    return dict(data=data, n_pool=n_pool, labels=list(labels), width=width, depth=1, steps=steps, batch=batch,
                eval_every=eval_every, lrs=lrs, centres=dict(centres or {}),
                pretrain={"method": "autoencoder", "base": "he", "epochs": pre_epochs, "lr": 1.0,
                          "batch_size": pre_batch, "tied": True})


SETUP = {"smoke": _setup(DataConfig("mnist5k", n_train=200, n_test=200), 200, [20, 50], 16, 4, 1, batch=8,
                         eval_every=2, lrs=[0.1]),
         "quick": _setup(DataConfig("mnist5k"), 4000, [100, 300, 1000, 4000], 64, 60, 1, pre_batch=100,
                         centres={("none", 100): 0.3, ("autoencoder", 100): 0.1, ("none", 300): 0.3}),
         "long": _setup(DataConfig("mnist5k"), 4000, [100, 300, 1000, 4000], 128, 250, 4, eval_every=25,
                        centres={("none", 100): 0.1, ("autoencoder", 100): 0.3, ("none", 300): 0.03,
                                 ("none", 1000): 0.3, ("autoencoder", 4000): 0.3}),
         "full": _setup(DataConfig("mnist", n_train=50000), 50000, [1000, 5000, 10000, 50000], 500, 5000, 10,
                        batch=50, eval_every=250, lrs=[0.03, 0.1, 0.3])}

PAPER = """
Paine et al. 2014, CIFAR-10, the ratio experiment (unlabeled : labeled, the labeled images shrunk
uniformly across classes; every ratio pre-trains on all 50,000 training images):

| ratio | labeled images (per class) | status |
|---|---|---|
| 50 : 1 | 1,000 (100) | verified (authors' code, docs/EXPERIMENT_LIST.md) |
| 10 : 1 | 5,000 (500) | verified (same) |
| 5 : 1 | 10,000 (1,000) | verified (same) |
| 1 : 1 | 50,000 (5,000) | verified (same) |

Finding (verified, abstract): "unsupervised pre-training, as expected, helps when the ratio of
unsupervised to supervised samples is high, and surprisingly, hurts when the ratio is low."
The per-ratio test accuracies of their CIFAR-10 table (with and without pre-training, dropout and
augmentation): not found (the stored copies of the paper reached here give the abstract and the
introduction only), so none is printed. Their best CIFAR-10 and STL-10 accuracies as listed by Papers
with Code: 86.7 % and 70.2 % (secondary, not read in the paper). Ours are MLP errors on 1,000 MNIST
test digits: compare the direction of the benefit, not levels.
"""


def pretrain_updates(s) -> int:
    """Greedy pre-training updates (oplab.pretrain: epochs x hidden layers x updates an epoch of the pool)."""
    p = s["pretrain"]
    return p["epochs"] * s["depth"] * (s["n_pool"] // p["batch_size"])


def batch_of(s, labels: int) -> int:
    """The fine-tuning batch at a label count: SETUP's, or a quarter of the labeled training digits if fewer."""
    return min(s["batch"], max(1, (labels - labels // VAL_SHARE) // 4))


def _trial(s, method, labels, lr):
    pre = method == "autoencoder"
    steps = s["steps"] + (0 if pre else pretrain_updates(s))
    evals = max(1, s["steps"] // s["eval_every"])  # every arm evaluated as often in all (and at its last update)
    return Trial(data=s["data"], model=ModelConfig("mlp", s["depth"], s["width"], "relu"),
                 init=InitConfig("greedy", s["pretrain"]) if pre else InitConfig("he"),
                 optim=OptimConfig("sgd", lr=lr, momentum=0.0), steps=steps, batch_size=batch_of(s, labels),
                 eval_every=max(1, steps // evals), labeled=labels, val_labeled=labels // VAL_SHARE)


def arms(budget: str) -> dict[str, kit.Arm]:
    """Per label count: none (compute-matched: the pre-trained arm's pre-training plus fine-tuning updates)
    and autoencoder, each at every fine-tuning lr of its grid."""
    s = SETUP[budget]
    out = {}
    for n in s["labels"]:
        for m in METHODS:
            for lr in s["lrs"] or GRIDS[s["centres"].get((m, n), 0.1)]:
                out[f"{m} labels={n} lr={lr:g}"] = kit.Arm(_trial(s, m, n, lr), {"method": m, "labels": n, "lr": lr})
    return out


def _stop(ev: pd.DataFrame, name: str) -> pd.DataFrame:
    """Per trial (arm, seed): test error (pp) and update at the evaluation with the lowest validation loss
    (the first such evaluation)."""
    ev = ev.dropna(subset=["val_loss"]).sort_values(["arm", "seed", "step"]).reset_index(drop=True)
    at = ev.loc[ev.groupby(["arm", "seed"])["val_loss"].idxmin()]
    return pd.DataFrame({"arm": at["arm"], "seed": at["seed"], name: 100 * (1 - at["test_acc"]),
                         f"{name}_step": at["step"]})


def measure(df, curves, ctx):
    """Per trial: test error (pp) at its early-stopping point and at the end; none's early-stopped error
    over its first fine-tuning-length stretch (the former, unmatched control); compute."""
    t = df.copy()
    t["test_err_end_pp"] = 100 * t["test_err"]
    ev = (curves or {}).get("eval")
    if ev is None or "val_loss" not in ev or ev.empty:
        t["test_err_pp"] = t["test_err_pp_step"] = t["test_err_ft_pp"] = t["test_err_ft_pp_step"] = np.nan
    else:
        ft = ctx.setup.get("steps", 0) if ctx.setup else 0
        t = t.merge(_stop(ev, "test_err_pp"), on=["arm", "seed"], how="left")
        t = t.merge(_stop(ev[ev["step"] <= ft], "test_err_ft_pp"), on=["arm", "seed"], how="left")
    t["pretrain_updates"] = t["pretrain_updates"].fillna(0)
    t["finetune_updates"] = t["finetune_updates"].fillna(t["steps"])
    t["total_updates"] = t["pretrain_updates"] + t["finetune_updates"]
    return t


def benefits(t: pd.DataFrame) -> pd.DataFrame:
    """Per seed and label count: none's minus autoencoder's early-stopped test error (pp; a failed trial at
    90 %), and per seed the least-squares slope of that benefit against log10(labels) (`benefit_slope`)."""
    ok = (t["status"] == "ok") & np.isfinite(pd.to_numeric(t["test_err_pp"], errors="coerce").astype(float))
    v = t.assign(_v=t["test_err_pp"].where(ok, CHANCE_PP))
    p = v.pivot_table("_v", ["seed", "labels"], "method", aggfunc="mean")
    b = (p.get("none", np.nan) - p.get("autoencoder", np.nan)).rename("benefit").reset_index()

    def slope(g):
        g = g.dropna(subset=["benefit"])
        return float(np.polyfit(np.log10(g["labels"].astype(float)), g["benefit"], 1)[0]) if len(g) > 1 else np.nan

    s = b.groupby("seed")[["labels", "benefit"]].apply(slope).rename("benefit_slope").reset_index()
    return b.merge(s, on="seed", how="left")


def verdict(t, ctx):
    labels = sorted(t["labels"].unique())
    n0 = labels[0]
    err = dict(unit="pp", worst=CHANCE_PP, fmt=".2f", note="A diverged trial counts as 90 % test error (chance); "
               "each trial's error is read at its lowest validation loss (early stopping).")
    none, ae = {"method": "none"}, {"method": "autoencoder"}
    claim = f"{n0} labels: compute-matched none's minus auto-encoder-pre-trained's test error > 0"
    parts = [kit.difference(kit.select(t, {"labels": n0}), "test_err_pp", none, ae, part=f"(a) helps at {n0} labels",
                            above=0.0, claim=claim, **err)]
    b = benefits(t)
    tb = t.drop(columns=["benefit_slope"], errors="ignore").merge(b[["seed", "benefit_slope"]].drop_duplicates(),
                                                                  on="seed", how="left")
    n_bad = int((t["status"] != "ok").sum())
    parts.append(kit.mean(
        tb, "benefit_slope", part="(b) benefit shrinks as labels grow", unit="pp / tenfold labels",
        what="slope of the benefit (none's minus pre-trained's test error) against log10(labels)", below=0.0,
        fmt=".2f", claim=f"per seed, slope of the benefit vs log10(labels) over {', '.join(map(str, labels))} < 0",
        note=f"Per-seed least-squares fits over {len(labels)} label counts; {n_bad} of {len(t)} trials failed and "
             "entered their fit at 90 % (their seeds count at the threshold)."))
    return parts


ORDER = {"method": METHODS}


def tables(t, curves, ctx):
    extra = {"SGD lr (chosen)": "lr", "test error at the end %": "test_err_end_pp",
             "early-stopping update": "test_err_pp_step", "updates (pre-training + fine-tuning)": "total_updates"}
    err = kit.summary(t, "test_err_pp", ["labels", "method"], name="test error %", fmt=".2f", order=ORDER,
                      extra=extra)
    b = benefits(t)
    ben = kit.summary(b.assign(status="ok"), "benefit", ["labels"], name="benefit, pp", fmt=".2f")
    ft = ctx.setup.get("steps", 0) if ctx.setup else 0
    none = t[t["method"] == "none"]
    former = pd.concat([t.assign(arm_at=t["method"].astype(str) + ", early-stopped over its whole run",
                                 value=t["test_err_pp"]),
                        none.assign(arm_at=f"none, early-stopped within its first {ft} updates (unmatched)",
                                    value=none["test_err_ft_pp"])])
    former = kit.summary(former, "value", ["labels", "arm_at"], name="test error %", fmt=".2f").rename(
        columns={"arm_at": "arm"})
    slopes = b[["seed", "benefit_slope"]].drop_duplicates().rename(columns={"benefit_slope": "slope, pp / tenfold"})
    cols = {"pretrain_updates": "pre-training updates", "finetune_updates": "fine-tuning updates",
            "total_updates": "total updates"}
    compute = t.groupby(["labels", "method"])[list(cols)].mean().reset_index().rename(columns=cols)
    return {"test error per arm at its early-stopping point (each at its chosen fine-tuning lr)": err,
            "learning-rate grid (tuning seeds; score: lowest validation loss)": kit.tuning_table(ctx, order=ORDER),
            "benefit of pre-training per label count (none's minus pre-trained's test error, pp)": ben,
            "the former contrast, not compute-matched (a demonstration): none read within the pre-trained arm's "
            "fine-tuning updates": former,
            "slope of the benefit vs log10(labels) per seed": slopes,
            "compute per arm (updates: pre-training + fine-tuning)": kit.ordered(compute, ["labels", "method"], ORDER)}


def figures(t, curves, ctx):
    parts = verdict(t, ctx)
    fig, (a1, a2, a3) = plots.figure(3, width=4.6)
    plots.curves(a1, t, "labels", "test_err_pp", "method", "labeled digits (log scale)", "test error (%)",
                 "Test error vs labels", hue_order=METHODS)
    a1.set_xscale("log")
    b = benefits(t)
    plots.curves(a2, b.assign(arm="benefit"), "labels", "benefit", "arm", "labeled digits (log scale)",
                 "none's minus pre-trained's test error (pp)", "Benefit of pre-training")
    a2.set_xscale("log")
    a2.axhline(0.0, color="0.5", lw=0.8, ls=":")
    if a2.get_legend() is not None:
        a2.get_legend().remove()
    plots.parts(a3, parts, ["(a)", "(b)"], "pp (a); pp per tenfold labels (b)", "What the parts judge",
                fmt=".2f", legend="below")
    plots.caption(fig, plots.BAND_LABEL + "; each arm at its chosen lr, its test error read at its lowest "
                  "validation loss; none compute-matched. Right: (a) the benefit at the fewest labels, reproduced "
                  "above its dashed line; (b) the per-seed slope of the benefit against log10(labels), reproduced "
                  "below its own")

    ev = curves["eval"]
    n0 = min(t["labels"])
    ev = ev[(ev["labels"] == n0) & ev["arm"].isin(t["arm"].unique())]
    fig2, (c1, c2) = plots.figure(2)
    plots.curves(c1, ev, "step", "val_loss", "method", "update (fine-tuning; none: from init)",
                 "validation loss (nats)", f"{n0} labels: validation loss", hue_order=METHODS)
    ev = ev.assign(test_err_pct=100 * (1 - ev["test_acc"]))
    plots.curves(c2, ev, "step", "test_err_pct", "method", "update (fine-tuning; none: from init)", "test error (%)",
                 f"{n0} labels: test error", hue_order=METHODS)
    plots.caption(fig2, plots.BAND_LABEL + "; pre-training's updates come before update 0 and are not drawn; none "
                  "(compute-matched) runs as many more updates")
    return {"benefit_vs_labels": fig, "curves_fewest_labels": fig2}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
