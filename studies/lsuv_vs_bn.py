"""LSUV vs batch normalization on deep thin networks (Mishkin & Matas 2015).

Regime. LSUV (layer-sequential unit-variance) init is orthonormal init followed, layer by
layer on one minibatch, by rescaling each weight until its output variance is within tol of 1:
"a single round of BN at initialization time". Six conditions: N(0, 0.01^2), Xavier/Glorot
(uniform), orthogonal, LSUV, batch norm + Xavier (BN+Xavier) and BN + LSUV. At the `quick`
budget the net is a FitNet-like thin MLP of 12 hidden layers of 48 units in three settings:
ReLU on mnist5k (4,000 train / 1,000 test digits), tanh on mnist5k, and ReLU on mnist1d
(4,000 / 1,000 sequences of length 40); 4 epochs at batch 100 (160 updates). The quick and long
budgets run the arms the parts judge (SETUP's "inits"): LSUV and BN+Xavier in every setting,
Xavier in the ReLU settings (part c2), and N(0, 0.01) in mnist5k ReLU only (the demonstration
below); orthogonal and BN+LSUV, which no part judges, run at the smoke and full budgets. LSUV uses tol 0.1
and Tmax 10 (the authors' PyTorch port; their Caffe script uses margin 0.02 and 20 iterations)
on a fixed batch of 100 training examples and includes the read-out layer, as both of the
authors' scripts do. In BN nets LSUV runs with BN in training mode (batch statistics, as the
Caffe script's train net) and leaves BN's parameters and running statistics alone. Biases
start at 0 in every arm.

Optimizer and fair learning rates. SGD with momentum 0.9 and a constant learning rate (per
update; losses are minibatch means), as in the paper. Each (setting, arm) is trained at every
rate of a three-level grid around a centre (GRIDS: 0.003-0.01-0.03, 0.01-0.03-0.1 or 0.03-0.1-0.3;
0.01 is the rate the authors used for both LSUV and BN) on tuning seeds that decide no verdict,
and uses the rate with the lowest mean final full-split training loss (a diverged trial counts as
infinite loss; the choice never looks at test data nor at the verdict seeds). Each group's centre
was set on the tuning seeds so that the chosen rate sits inside its grid: the centre is the
earlier versions' chosen rate, moved one step where the tuning seeds chose the grid's edge
(SETUP's "centres"). At the long budget every group started at 0.03; five groups chose the bottom,
and LSUV on mnist5k kept choosing the bottom down to 0.003 (tanh) and 0.001 (ReLU): in these
16-layer nets the final training loss falls as the rate falls, while the test accuracy on the tuning
seeds does not (LSUV, mnist5k ReLU: 0.032, 0.039, 0.054 nats and 91.3, 91.9, 92.7 % at 0.001, 0.003,
0.01). The rule stays the training loss. The grid is the second table. N(0, 0.01) trains at 0.01 only: it sits at
chance at every rate (version 3's tuning seeds: 0.01 and 0.03 both at 2.3026 nats). The smoke
budget, a plumbing check, trains one rate.

Variance at init. Every trial runs the `output_variance` monitor once, before the first
update, on a probe batch of 100 training examples disjoint from the batch LSUV was fitted on
(BN in training mode; in BN arms a weight layer's output before its BN): per weight layer, the
output variance over every element (LSUV's Var) and its standard error SE from the batch's 100
examples. On its own batch LSUV's |Var - 1| < tol holds by its stopping rule (a layer's output
is linear in its weight, so one rescaling gives Var = 1 there): measuring there could not fail.
On a fresh batch of 100 the variance moves by sampling alone: on tuning seeds 1000-1001 (LSUV,
every setting) 2 SE reached 0.08-0.17 in some layer, the size of the largest |Var - 1| seen
there (0.04-0.18), so an earlier version's statistic, the max of |Var - 1| over 39 layer x
setting cells, measured the batch's sampling noise more than LSUV. Part (a) now judges, per
layer, (Var - 1)^2 - SE^2: an unbiased estimate of the squared deviation from 1 of the layer's
output variance on the data (the population the batches come from), the probe's own sampling
variance removed; it keeps the error LSUV makes by fitting on one batch of 100, which is LSUV's
own. The max over layers, and the spread sampling alone gives, are shown in a table.

N(0, 0.01) is a demonstration, not a part: 13 weight layers of 48 units at std 0.01 shrink the
signal by about 0.01 sqrt(48/2) per ReLU layer, so the read-out's output variance at init is about
1e-33 (tuning seeds: 6.7e-34 and 2.1e-33 on mnist5k ReLU) and the net sits at chance at every rate
of the grid: the comparison is decided by the setup. It runs on the ReLU settings only, and its
table shows the read-out variance and the test accuracy at its rate. At the quick and long budgets it
runs in mnist5k ReLU only.

Verdict (one value per seed, arms paired by seed; 95% intervals; each part on its own):
(a) unit variance after LSUV: the LSUV arm's mean over layers and settings of (Var - 1)^2 - SE^2
    on the probe batch (Student t: an unbiased estimate, which can be negative), < tol^2 = 0.01,
    i.e. the layers' root-mean-square deviation from unit variance on the data below tol;
    measured at init, so a trial that diverged later keeps its value;
(b) LSUV vs BN: LSUV's minus BN+Xavier's final test accuracy, averaged over the settings
    within a seed (Student t), inside ±1 percentage point (equivalence, two one-sided tests at
    2.5% each: "comparable" is a claim of sameness, not of "at least as good");
    a diverged trial counts as chance accuracy, 10 %;
(c2) LSUV's minus Xavier's final test accuracy on the ReLU settings, averaged within a seed
    (Student t), > 0; a diverged trial counts as 10 % ((c1), against N(0, 0.01), is the
    demonstration above);
(d) cost per update: BN+Xavier's / LSUV's training-step time (each trial's median step time,
    evaluation excluded; per seed, the ratio of the settings' means; t on log ratios) > 1;
    every trial counts, diverged or not. Timings are wall-clock on whatever machine ran the
    trials, with other trials beside them; the arms of one seed run next to each other.
    LSUV's one-off init cost (a few forwards of one batch per layer) is not in it.

Budgets (version 4). Version 3's quick budget (17 arms, 6 epochs, 8 + 8 verdict seeds, two-level
grids) cost 299 s of trial compute with replication. Quick now runs only the arms its parts and its
demonstration use (9 groups instead of 17: orthogonal, BN+LSUV and Xavier-tanh go), 4 epochs (160
updates) instead of 6, and 5 + 5 verdict seeds; its three-level grids bracket each group's rate (about
83 s, estimated from version 3's idle-machine records' time per update). Long puts the claim in the
paper's regime, deeper and longer: thin MLPs of 16 hidden layers of 48 units; mnist5k ReLU and tanh
for 20 epochs (800 updates); MNIST-1D generated at 25,000 sequences (20,000 train / 5,000 test, the
generator's other arguments unchanged) for 4 epochs (800 updates); the same arms; 6 + 6 verdict
seeds, so that the equivalence of part (b), whose seed spread at quick was about 1 pp, can be decided
(about 10 CPU-minutes).

Full budget: the paper's setting, SGD with momentum 0.9 and the grid {0.01, 0.03}, on MNIST (60k)
with the thin MLP (16 layers of 64 units, ReLU and tanh, 30 epochs) and on CIFAR-10 with
the convnet (8 conv layers of 32-256 channels, the closest our models come to FitNet4; 100
epochs, learning rate decayed linearly over the second half), same arms.

Full budget: about 3.2 GPU-hours on one data-centre GPU (238 trials, 6,972,000 updates, 1.4e+02
PFLOP counted from the arms' models; `python -m studies.lsuv_vs_bn --budget full --replicate
--estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, NormConfig, OptimConfig, Trial

NAME = "lsuv_vs_bn"
TITLE = "LSUV vs batch normalization on deep thin nets"
CLAIM = ("Layer-sequential unit-variance (LSUV) init, which effectively does a single round of BN at "
         "initialization time, trains deep thin nets to results comparable to batch norm, ahead of "
         "N(0, 0.01) and Xavier init, at less cost per step.")
SOURCE = ("Mishkin & Matas 2015, All you need is a good init, arXiv 1511.06422 (ICLR 2016), "
          "Algorithm 1, FitNet experiments on MNIST and CIFAR-10, and the comparison with batch norm")
VERSION = 4
SEEDS = {"smoke": 2, "quick": 5, "long": 6, "full": 5}
TUNE = kit.Tune("lr", within=("setting", "init"), score="train_loss_full",
                seeds={"smoke": 1, "quick": 2, "long": 2, "full": 2})

TOL, TMAX = 0.1, 10  # LSUV tolerance on |Var - 1| and maximum rescalings per layer
LSUV = InitConfig("lsuv", {"tol": TOL, "tmax": TMAX})
CONDITIONS = {  # arm label -> (initializer, normalizer)
    "N(0,0.01)": (InitConfig("normal", {"sigma": 0.01}), "none"),
    "Xavier": (InitConfig("glorot"), "none"),
    "orthogonal": (InitConfig("orthogonal"), "none"),
    "LSUV": (LSUV, "none"),
    "BN+Xavier": (InitConfig("glorot"), "batch"),
    "BN+LSUV": (LSUV, "batch"),
}
ORDER = list(CONDITIONS)
MOMENTUM = 0.9
MARGIN_PP = 1.0  # equivalence margin for LSUV vs BN ("comparable"), percentage points of test accuracy
CHANCE_PCT = 10.0  # test accuracy a diverged trial counts as: chance on 10 classes
PAIRS = [("mnist5k", "relu"), ("mnist5k", "tanh"), ("mnist1d", "relu")]  # (dataset, activation), small budgets
# SGD learning-rate grids (per update), three levels around a centre so that a tuned optimum can sit inside;
# each (setting, init) group takes the grid of its centre (SETUP's "centres", else its "centre")
GRIDS = {0.001: [0.0003, 0.001, 0.003], 0.003: [0.001, 0.003, 0.01], 0.01: [0.003, 0.01, 0.03],
         0.03: [0.01, 0.03, 0.1], 0.1: [0.03, 0.1, 0.3]}
DEMO_LR = 0.01  # N(0, 0.01), a demonstration at chance at every rate (see the docstring), trains at the authors' rate
# the arms the parts use (and the demonstration), per activation: the quick and long budgets run these only
PARTS_INITS = {"relu": ["N(0,0.01)", "Xavier", "LSUV", "BN+Xavier"], "tanh": ["LSUV", "BN+Xavier"]}
MNIST1D_LONG = DataConfig("mnist1d", options=(("num_samples", 25_000),))  # generated: 20,000 train / 5,000 test


def _setting(data: DataConfig, model: ModelConfig, epochs: int, schedule: str = "constant", batch: int = 100) -> dict:
    return dict(data=data, model=model, epochs=epochs, schedule=schedule, batch=batch)


SETUP = {  # per budget: setting label -> data, model, epochs, schedule, batch; the SGD learning-rate grid ("lrs": one
    # grid for every arm; else GRIDS by centre); "inits": the arms run per activation (default: every condition)
    "smoke": {"settings": {f"{d} {a}": _setting(DataConfig(d, n_train=200, n_test=200), ModelConfig("mlp", 6, 16, a),
                                                2, batch=50) for d, a in PAIRS}, "lrs": [0.03]},
    "quick": {"settings": {f"{d} {a}": _setting(DataConfig(d), ModelConfig("mlp", 12, 48, a), 4) for d, a in PAIRS},
              "inits": PARTS_INITS, "demo": ["mnist5k relu"], "centre": 0.03,
              "centres": {("mnist5k relu", "LSUV"): 0.01, ("mnist5k tanh", "LSUV"): 0.01,
                          ("mnist1d relu", "Xavier"): 0.1}},
    "long": {"settings": {"mnist5k relu": _setting(DataConfig("mnist5k"), ModelConfig("mlp", 16, 48, "relu"), 20),
                          "mnist5k tanh": _setting(DataConfig("mnist5k"), ModelConfig("mlp", 16, 48, "tanh"), 20),
                          "mnist1d relu": _setting(MNIST1D_LONG, ModelConfig("mlp", 16, 48, "relu"), 4)},
             "inits": PARTS_INITS, "demo": ["mnist5k relu"], "centre": 0.03,
             "centres": {("mnist5k relu", "LSUV"): 0.001, ("mnist5k relu", "Xavier"): 0.01,
                         ("mnist5k tanh", "LSUV"): 0.003, ("mnist1d relu", "LSUV"): 0.01,
                         ("mnist1d relu", "BN+Xavier"): 0.01}},
    "full": {"settings": {"mnist relu": _setting(DataConfig("mnist"), ModelConfig("mlp", 16, 64, "relu"), 30),
                          "mnist tanh": _setting(DataConfig("mnist"), ModelConfig("mlp", 16, 64, "tanh"), 30),
                          "cifar10 relu": _setting(DataConfig("cifar10"), ModelConfig("convnet", 8, 32, "relu"), 100,
                                                   "linear_decay")},
             "lrs": [0.01, 0.03]},
}

PAPER = """
| Mishkin & Matas 2015 (arXiv 1511.06422) | paper | status |
|---|---|---|
| LSUV tolerance on \\|Var - 1\\| and max tries (Algorithm 1: Tol_var, T_max) | authors' PyTorch port: 0.1 and 10; their Caffe script: margin 0.02 and 20 | secondary (the authors' code) |
| read-out layer | rescaled too: both authors' scripts visit every conv / inner-product layer | secondary (the authors' code) |
| learning rate, LSUV and BN | the same, SGD lr 0.01 ("also tried 0.1, 0.05, 0.02 and 0.005: same or worse") | secondary (first author, LSUVinit issue #1) |
| CIFAR-10, FitNet4-LSUV test accuracy (results table; Table 2 in our reading) | 94.2 % | secondary (Papers with Code listing) |
| CIFAR-100, FitNet4-LSUV test accuracy (same table) | 72.3 % | secondary (Papers with Code listing) |
| MNIST, FitNet-LSUV-SVM test error (same table) | 0.4 % | secondary (Papers with Code listing) |
| BN's cost per step | BN adds about 30 % to the computation | secondary (summaries of the paper) |
| LSUV vs BN | "comparable" on CIFAR-10 FitNet4; the first author later: "LSUV init could stand vs BatchNorm only on small datasets" (CaffeNet on ImageNet) | secondary (LSUVinit issue #1) |

We could not read the paper's own tables here, so no number above is marked verified, and the
table number is our reading. Our quick budget is a different regime (thin MLPs on 4,000
examples, 240 updates), so compare directions and orderings, not accuracy levels.
"""  # noqa: E501


def lr_grid(s: dict, setting: str, label: str) -> list[float]:
    """The SGD learning rates an (setting, init) group is tuned over at a budget's SETUP `s`."""
    if "lrs" in s:
        return s["lrs"]
    if label == "N(0,0.01)":
        return [DEMO_LR]
    return GRIDS[s["centres"].get((setting, label), s["centre"])]


def arms(budget: str) -> dict[str, kit.Arm]:
    """One arm per (setting, init, learning rate of the grid); monitors run once, at init. N(0, 0.01)
    (a demonstration) runs on the ReLU settings only."""
    s, out = SETUP[budget], {}
    for setting, c in s["settings"].items():
        for label, (init, norm) in CONDITIONS.items():
            if label == "N(0,0.01)" and (c["model"].activation != "relu" or setting not in s.get("demo", [setting])):
                continue
            if label not in s.get("inits", {}).get(c["model"].activation, ORDER):
                continue
            for lr in lr_grid(s, setting, label):
                trial = Trial(data=c["data"], model=c["model"], init=init, norm=NormConfig(norm),
                              optim=OptimConfig("sgd", lr=lr, momentum=MOMENTUM, schedule=c["schedule"]),
                              epochs=c["epochs"], batch_size=c["batch"], monitors=("output_variance",),
                              monitor_start_only=True)
                out[f"{setting} | {label} lr={lr:g}"] = kit.Arm(trial, {"setting": setting, "init": label, "lr": lr})
    return out


def _init_var(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Long table: each weight layer's output variance at init (layer 1 = first) on the probe batch,
    its standard error from the batch's examples (`se`), and `last` for the read-out."""
    mon = curves.get("monitor")
    cols = [] if mon is None else [c for c in mon.columns if c.startswith("layer") and c.endswith("_var")]
    if not cols:
        return pd.DataFrame(columns=["arm", "seed", "setting", "init", "layer", "var", "se", "last"])
    m0 = mon[mon["step"] == 0]
    frames = [pd.DataFrame({"arm": m0["arm"], "seed": m0["seed"], "setting": m0["setting"], "init": m0["init"],
                            "layer": int(c[5:-4]) + 1, "var": m0[c], "se": m0[c + "_se"]}) for c in cols]
    long = pd.concat(frames, ignore_index=True).dropna(subset=["var"])
    return long.assign(last=long["layer"] == long.groupby("arm")["layer"].transform("max"))


def measure(df, curves, ctx):
    """Per trial: test accuracy in points; from the probe batch at init (not LSUV's own batch):
    `var_msd`, the mean over layers of (Var - 1)^2 - SE^2 (the squared deviation of the layer's
    variance on the data from 1, the probe's own sampling variance subtracted: unbiased for the
    population's), `init_var_dev`, the max over layers of |Var - 1| (the earlier measure, shown in a
    table), `noise_dev`, the max over layers of 2 SE (the spread sampling alone gives), and
    `readout_var`; and, for LSUV arms, the initializer's own report on its fitting batch
    (`fit_var_dev`, `lsuv_iters`)."""
    iv = _init_var(curves)
    iv = iv.assign(dev=(iv["var"] - 1).abs(), d2=(iv["var"] - 1) ** 2 - iv["se"] ** 2, noise=2 * iv["se"])
    g = iv.groupby(["arm", "seed"])
    per = pd.concat([g["d2"].mean().rename("var_msd"), g["dev"].max().rename("init_var_dev"),
                     g["noise"].max().rename("noise_dev"),
                     iv[iv["last"]].groupby(["arm", "seed"])["var"].first().rename("readout_var")], axis=1)
    t = df.merge(per.reset_index(), on=["arm", "seed"], how="left")
    t["test_acc_pp"] = 100 * t["test_acc"]
    layers = [(e.get("init") or {}).get("layers", []) if isinstance(e, dict) else [] for e in t["extra"]]
    t["fit_var_dev"] = [max((abs(v["var"] - 1) for v in ls), default=float("nan")) for ls in layers]
    t["lsuv_iters"] = [max((v["iters"] for v in ls), default=float("nan")) for ls in layers]
    return t


def verdict(t, ctx):
    fit = t.groupby("init")["fit_var_dev"].max()
    own = (f"The initializer's own report on its fitting batch, max |Var - 1| over layers and trials: LSUV "
           f"{fit.get('LSUV', float('nan')):.3g}, BN+LSUV {fit.get('BN+LSUV', float('nan')):.3g}; rescalings "
           f"per layer: at most {t['lsuv_iters'].max():.0f}.")
    lsuv = kit.select(t, {"init": "LSUV"})
    rms = float(np.sqrt(max(lsuv["var_msd"].mean(), 0.0))) if len(lsuv) else float("nan")
    # measured at init: a trial that diverges later still has its measurement (diverged_fails=False)
    a = kit.mean(t, "var_msd", where={"init": "LSUV"}, below=TOL ** 2, unit="(Var - 1)^2",
                 note=f"Root of the mean: {rms:.3g} (tol {TOL:g}). " + own,
                 part="(a) unit variance after LSUV",
                 what="LSUV, mean over layers and settings of (Var - 1)^2 - SE^2 on a fresh probe batch",
                 claim=f"LSUV: per layer, the squared deviation of the output variance from 1 on the data (probe "
                       f"batch, its sampling variance SE^2 subtracted), mean over layers and settings, < tol^2 = "
                       f"{TOL ** 2:g}",
                 diverged_fails=False, fmt=".3g",
                 details={"fit_var_dev": {k: float(v) for k, v in fit.dropna().items()}, "rms": rms})
    acc = dict(unit="pp", worst=CHANCE_PCT, fmt=".2f", note="A diverged trial counts as chance accuracy (10 %).")
    parts = [a, kit.difference(t, "test_acc_pp", {"init": "LSUV"}, {"init": "BN+Xavier"}, part="(b) LSUV vs BN",
                               claim=f"LSUV's minus BN+Xavier's final test accuracy (mean over settings) inside "
                                     f"±{MARGIN_PP:g} pp (equivalence: comparable)",
                               within=(-MARGIN_PP, MARGIN_PP), **acc)]
    relu = [s for s, c in ctx.setup["settings"].items() if c["model"].activation == "relu"]
    parts.append(kit.difference(t, "test_acc_pp", {"init": "LSUV"}, {"init": "Xavier"}, where={"setting": relu},
                                part="(c2) LSUV vs Xavier", above=0.0, **acc,
                                claim="LSUV's minus Xavier's final test accuracy on the ReLU settings > 0"))
    parts.append(kit.ratio(t, "time_per_step_ms", {"init": "BN+Xavier"}, {"init": "LSUV"}, part="(d) cost per step",
                           claim="BN+Xavier's / LSUV's training time per update > 1", above=1.0,
                           diverged_fails=False))
    return parts


def variance_table(t) -> pd.DataFrame:
    """Per setting, the LSUV arm's layers at init on the probe batch: the max over layers of |Var - 1|
    (the earlier part's statistic), of 2 SE (what sampling alone gives), and the root of the mean of
    (Var - 1)^2 - SE^2 (part a's per-seed statistic), each averaged over seeds; and the fitting batch's.
    (In BN+LSUV a layer's inputs share the batch's statistics, so its SE, which treats the examples
    as independent, is approximate there; part (a) judges the LSUV arm, without BN.)"""
    lsuv = kit.select(t, {"init": ["LSUV", "BN+LSUV"]})
    if lsuv.empty:
        return pd.DataFrame()
    g = lsuv.groupby(["setting", "init"], sort=False)
    out = pd.DataFrame({"seeds": g["seed"].nunique(), "max |Var - 1| (probe)": g["init_var_dev"].mean(),
                        "max 2 SE (probe sampling)": g["noise_dev"].mean(),
                        "root mean (Var - 1)^2 - SE^2": np.sqrt(g["var_msd"].mean().clip(lower=0)),
                        "max |Var - 1| (LSUV's own batch)": g["fit_var_dev"].mean()}).reset_index()
    return out


def demo_table(t, ctx) -> pd.DataFrame:
    """(c1) as a demonstration: N(0, 0.01) beside LSUV on the ReLU settings: the read-out's output
    variance at init and the final test accuracy, at the chosen rate and at every rate of the grid."""
    rows = []
    tun = ctx.tuning if ctx.tuning is not None else pd.DataFrame()
    shown = sorted(set(kit.select(t, {"init": "N(0,0.01)"})["setting"]))
    for (setting, init), g in kit.select(t, {"init": ["N(0,0.01)", "LSUV"], "setting": shown}).groupby(["setting",
                                                                                                        "init"]):
        row = {"setting": setting, "init": init, "seeds": g["seed"].nunique(),
               "read-out Var at init (geo. mean)": float(np.exp(np.log(g["readout_var"]).mean())),
               "test accuracy % (chosen rate)": g["test_acc_pp"].mean()}
        if not tun.empty and "test_acc" in tun:
            tg = kit.select(tun, {"setting": setting, "init": init})
            for lr, h in tg.groupby("lr"):
                row[f"test accuracy % at lr {lr:g} (tuning seeds)"] = 100 * h["test_acc"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def tables(t, curves, ctx):
    order = {"setting": list(ctx.setup["settings"]), "init": ORDER}
    extra = {"SGD lr (chosen)": "lr", "final train loss (full split)": "train_loss_full",
             "ms / update": "time_per_step_ms", "max |Var - 1| at init (probe batch)": "init_var_dev",
             "LSUV's own max |Var - 1| (its batch)": "fit_var_dev"}
    iv = _init_var(curves)
    var = iv.groupby(["setting", "init", "layer"])["var"].mean().unstack("layer")
    var.columns = [f"layer {c}" for c in var.columns]
    var = kit.ordered(var.reset_index(), ["setting", "init"], order)
    return {"final test accuracy (each arm at its chosen learning rate)":
            kit.summary(t, "test_acc_pp", ["setting", "init"], name="test accuracy %", fmt=".2f", order=order,
                        extra=extra),
            "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, show={"ms / update": "time_per_step_ms"},
                                                                  order=order),
            "per-layer output variance at init (probe batch, mean over seeds)": var,
            "(a) LSUV's variance at init: the max over layers against what sampling alone gives (means over seeds)":
            variance_table(t),
            "(c1) N(0, 0.01) beside LSUV, ReLU settings (a demonstration: decided by the setup)": demo_table(t, ctx)}


def figures(t, curves, ctx):
    settings = list(ctx.setup["settings"])
    ev = curves["eval"].assign(test_acc_pct=lambda d: 100 * d["test_acc"])
    fig, axes = plots.figure(len(settings))
    for ax, s in zip(axes, settings):
        plots.curves(ax, ev[ev["setting"] == s], "epoch", "test_acc_pct", "init", "epoch", "test accuracy (%)", s,
                     hue_order=ORDER)
        ax.get_legend().remove()  # one legend for the row, beside it: inside, it sits on the bands
    axes[-1].legend(*axes[-1].get_legend_handles_labels(), fontsize="small", loc="upper left",
                    bbox_to_anchor=(1.02, 1.0))
    plots.caption(fig, plots.BAND_LABEL + "; each arm at its chosen SGD learning rate")

    iv = _init_var(curves)
    # part (a) on its own scale: LSUV's variance per layer against the band 1 ± tol, and the judged statistic
    fig2, axes2 = plots.figure(len(settings) + 1, width=4.2)
    for ax, s in zip(axes2, settings):
        ax.axhspan(1 - TOL, 1 + TOL, color="0.88", zorder=0)
        plots.curves(ax, iv[(iv["setting"] == s) & (iv["init"] == "LSUV")], "layer", "var", "init",
                     "weight layer (1 = first; last = read-out)", "output variance at init", f"LSUV, {s}")
        ax.axhline(1.0, color="0.5", lw=0.8)
        lo, hi = ax.get_ylim()
        ax.set_ylim(min(lo, 1 - 2.5 * TOL), max(hi, 1 + 2.5 * TOL))
        ax.get_legend().remove()  # one arm: the caption says what the line, the band and the grey band are
    a = verdict(t, ctx)[0]
    axa = axes2[-1]
    plots.judged(axa, a, x=0.0, seeds=True, label="pooled mean", threshold_label=f"threshold tol^2 = {TOL ** 2:g}")
    axa.set_xlim(-0.6, 0.9)
    axa.set_xticks([])
    axa.set_ylabel("(Var - 1)^2 - SE^2 (mean over layers, settings)")
    axa.set_title("(a) unit variance after LSUV")
    lo, hi = axa.get_ylim()
    axa.set_ylim(min(lo, 0.0), max(hi, 1.5 * TOL ** 2))
    axa.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.04))
    plots.caption(fig2, "LSUV's output variance of each weight layer before training, on a probe batch apart from "
                  f"its fitting batch (grey: 1 ± tol = {TOL:g}); {plots.BAND_LABEL}. Right: part (a), per seed the "
                  "squared deviation from 1 less the probe's sampling variance, averaged over layers and settings; "
                  "below the dashed line is the claimed side")

    fig4, axes4 = plots.figure(len(settings))
    for ax, s in zip(axes4, settings):
        ax.axhspan(1 - TOL, 1 + TOL, color="0.85", zorder=0)
        plots.curves(ax, iv[iv["setting"] == s], "layer", "var", "init", "weight layer (1 = first; last = read-out)",
                     "output variance at init (log scale)", s, logy=True, hue_order=ORDER)
        if ax is not axes4[-1]:
            ax.get_legend().remove()
    axes4[-1].legend(fontsize="small", loc="center left", bbox_to_anchor=(1.02, 0.5))
    plots.caption(fig4, "Every arm: Var of each weight layer's output before training, on a probe batch apart from "
                  f"LSUV's batch (grey: 1 ± tol = {TOL:g}); {plots.BAND_LABEL}; in BN arms, the output before its BN")

    fig3, axes3 = plots.figure(len(settings) + 1, width=4.5)
    for ax, s in zip(axes3, settings):
        plots.points(ax, t[t["setting"] == s], "init", "test_acc_pp", "", "final test accuracy (%)", s, order=ORDER)
    plots.points(axes3[-1], t, "init", "time_per_step_ms", "", "time per update (ms)", "Cost per update (all settings)",
                 order=ORDER)
    for ax in axes3:
        ax.tick_params(axis="x", rotation=45)
    plots.caption(fig3, plots.POINTS_LABEL + "; accuracy at each arm's chosen learning rate (a diverged trial has "
                  "none and is not drawn); time per update: each trial's median step time, every verdict trial")
    return {"test_accuracy_curves": fig, "init_variance": fig2, "init_variance_all_arms": fig4,
            "accuracy_and_cost": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
