"""LSUV vs batch normalization on deep thin networks (Mishkin & Matas 2015).

Regime. LSUV (layer-sequential unit-variance) init is orthonormal init followed,
layer by layer on one minibatch, by rescaling each weight until its output variance
is within tol of 1: "a single round of BN at initialization time". We compare six
arms on deep thin MLPs: N(0, 0.01^2), Xavier/Glorot (uniform), orthogonal, LSUV,
batch norm + Xavier (BN) and BN + LSUV. At the `quick` budget the net is a
FitNet-like thin MLP of 12 hidden layers of 48 units, trained in three settings:
ReLU on mnist5k (4,000 train / 1,000 test digits), tanh on mnist5k, and ReLU on
mnist1d (4,000 / 1,000 sequences of length 40); 6 epochs at batch 100 (240
updates). LSUV uses tol 0.1 and Tmax 10 (the authors' PyTorch port; their Caffe
script uses margin 0.02 and 20 iterations) on the trial's fixed batch of 100
training examples, and includes the read-out layer, as both of the authors'
scripts do. In BN nets LSUV runs with BN in training mode (batch statistics, as
the Caffe script's train net) and leaves BN's parameters and running statistics
alone. Biases start at 0 in every arm.

Optimizer and fair learning rates. SGD with momentum 0.9, constant learning rate
(per update; losses are minibatch means), the same for every arm, as in the paper.
Each arm is trained at every rate of a small grid ({0.01, 0.03}; 0.01 is the rate
the authors used for both LSUV and BN) and each (setting, arm) uses the rate with
the lowest mean final *training* loss (a diverged trial counts as infinite loss;
selection never looks at test data). The grid and every rate's result are in the
second table. (The smoke budget, a plumbing check, trains one rate.)

Cost: `quick` is 180 trials, about 170-250 CPU-seconds; 2-3 minutes wall with
`--jobs 2` on a 2-core machine that other work shares.

Verdict (computed from the records; paired by seed; each part on its own):
(a) per-layer variance: after LSUV, max over layers and settings of |Var(output) - 1|
    on the init batch < tol = 0.1, measured independently of the initializer by the
    `activations_train` monitor at step 0 (LSUV arms without BN; for BN + LSUV the
    initializer's own report is given in the details; the figure shows every arm,
    BN arms measured before their BN layer with batch statistics);
(b) LSUV vs BN: LSUV's minus BN(+Xavier)'s final test accuracy, averaged over the
    three settings, > -1 percentage point (non-inferiority margin; "comparable");
(c1) LSUV's minus N(0, 0.01)'s and (c2) LSUV's minus Xavier's final test accuracy on
    the deep ReLU nets (mnist5k and mnist1d, averaged) > 0;
(d) time per update: BN(+Xavier)'s / LSUV's training-step time (each trial's median
    step time, no evaluation; mean over all settings and rates) > 1. Timings are wall-clock on whatever
    machine ran the trials, with other trials beside them; the ratio is paired
    within a seed. LSUV's one-off init cost (a few forwards of one batch per layer)
    is not in the per-step time.

Full budget: the paper's setting, SGD with momentum 0.9 and learning rate 0.01, on
MNIST (60k) with the thin MLP (16 layers of 64 units, 30 epochs) and on CIFAR-10 with
the convnet (8 conv layers of 32-256 channels, the closest our models come to FitNet4;
100 epochs, learning rate decayed linearly over the second half), same arms and grid.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, plots, stats
from oplab.config import DataConfig, InitConfig, ModelConfig, NormConfig, OptimConfig, Trial

NAME = "lsuv_vs_bn"
TITLE = "LSUV vs batch normalization on deep thin nets"
CLAIM = ("Layer-sequential unit-variance (LSUV) init, which effectively does a single round of BN at "
         "initialization time, trains deep thin nets to results comparable to batch norm, ahead of "
         "N(0, 0.01) and Xavier init, at less cost per step.")
SOURCE = ("Mishkin & Matas 2015, All you need is a good init, arXiv 1511.06422 (ICLR 2016), "
          "Algorithm 1, FitNet experiments on MNIST and CIFAR-10, and the comparison with batch norm")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "full": 3}

TOL, TMAX = 0.1, 10  # LSUV tolerance on |Var - 1| and maximum rescalings per layer
INITS = {  # arm label -> (initializer, normalizer)
    "N(0,0.01)": (InitConfig("normal", {"sigma": 0.01}), "none"),
    "Xavier": (InitConfig("glorot"), "none"),
    "orthogonal": (InitConfig("orthogonal"), "none"),
    "LSUV": (InitConfig("lsuv", {"tol": TOL, "tmax": TMAX}), "none"),
    "BN+Xavier": (InitConfig("glorot"), "batch"),
    "BN+LSUV": (InitConfig("lsuv", {"tol": TOL, "tmax": TMAX}), "batch"),
}
ORDER = list(INITS)
LRS = {"smoke": [0.03], "quick": [0.01, 0.03], "full": [0.01, 0.03]}  # SGD lr per update
MOMENTUM = 0.9
MARGIN_PP = 1.0  # non-inferiority margin for LSUV vs BN, percentage points of test accuracy

_PAPER_ROWS = [  # (what, the paper's number or rule, status and where we read it)
    ("LSUV tolerance on \\|Var - 1\\| and max tries (Algorithm 1: Tol_var, T_max)",
     "authors' PyTorch port: 0.1 and 10; their Caffe script: margin 0.02 and 20",
     "secondary (the authors' code)"),
    ("read-out layer", "rescaled too: both authors' scripts visit every conv / inner-product layer",
     "secondary (the authors' code)"),
    ("learning rate, LSUV and BN", "the same, SGD lr 0.01 (\"also tried 0.1, 0.05, 0.02 and 0.005: same or worse\")",
     "secondary (first author, LSUVinit issue #1)"),
    ("CIFAR-10, FitNet4-LSUV test accuracy (results table; Table 2 in our reading)", "94.2 %",
     "secondary (Papers with Code listing)"),
    ("CIFAR-100, FitNet4-LSUV test accuracy (same table)", "72.3 %", "secondary (Papers with Code listing)"),
    ("MNIST, FitNet-LSUV-SVM test error (same table)", "0.4 %", "secondary (Papers with Code listing)"),
    ("BN's cost per step", "BN adds about 30 % to the computation",
     "secondary (summaries of the paper)"),
    ("LSUV vs BN", "\"comparable\" on CIFAR-10 FitNet4; the first author later: \"LSUV init could stand vs "
     "BatchNorm only on small datasets\" (CaffeNet on ImageNet)", "secondary (LSUVinit issue #1)"),
]
PAPER = "\n".join(
    ["| Mishkin & Matas 2015 (arXiv 1511.06422) | paper | status |", "|---|---|---|"]
    + [f"| {a} | {b} | {c} |" for a, b, c in _PAPER_ROWS]
) + """

We could not read the paper's own tables here, so no number above is marked verified, and the
table number is our reading. Our quick budget is a different regime (thin MLPs on 4,000
examples, 240 updates), so compare directions and orderings, not accuracy levels.
"""


def _settings(budget: str) -> list[tuple[str, str]]:
    """(dataset, activation) pairs."""
    if budget == "full":
        return [("mnist", "relu"), ("mnist", "tanh"), ("cifar10", "relu")]
    return [("mnist5k", "relu"), ("mnist5k", "tanh"), ("mnist1d", "relu")]


def _setup(budget: str, dataset: str, activation: str) -> tuple[DataConfig, ModelConfig, int, str, int]:
    """Data, model, epochs, schedule, batch size."""
    if budget == "smoke":
        return (DataConfig(dataset, n_train=200, n_test=200), ModelConfig("mlp", 6, 16, activation), 2,
                "constant", 50)
    if budget == "quick":
        return DataConfig(dataset), ModelConfig("mlp", 12, 48, activation), 6, "constant", 100
    if budget == "full":
        if dataset == "cifar10":
            return DataConfig(dataset), ModelConfig("convnet", 8, 32, activation), 100, "linear_decay", 100
        return DataConfig(dataset), ModelConfig("mlp", 16, 64, activation), 30, "constant", 100
    raise ValueError(f"unknown budget {budget!r}")


def _setting_label(dataset: str, activation: str) -> str:
    return f"{dataset} {activation}"


def arms(budget: str) -> dict[str, Trial]:
    """One arm per (setting, init, learning rate)."""
    out = {}
    for dataset, activation in _settings(budget):
        data, model, epochs, schedule, batch = _setup(budget, dataset, activation)
        # one monitor call at step 0 (and the last step): per-layer output std at init
        steps = epochs * 10_000
        for label, (init, norm) in INITS.items():
            for lr in LRS[budget]:
                out[f"{_setting_label(dataset, activation)} | {label} lr={lr:g}"] = Trial(
                    data=data, model=model, init=init, norm=NormConfig(norm),
                    optim=OptimConfig("sgd", lr=lr, momentum=MOMENTUM, schedule=schedule), epochs=epochs,
                    batch_size=batch, monitors=("activations_train",), monitor_every=steps,
                )
    return out


# --- analysis: records only ------------------------------------------------------------------

_LABEL = {(i.name, n): k for k, (i, n) in INITS.items()}


def _label(df: pd.DataFrame) -> pd.DataFrame:
    d = df.copy()
    d["init"] = [_LABEL.get((i, n), f"{i}/{n}") for i, n in zip(d["cfg.init.name"], d["cfg.norm.name"])]
    d["setting"] = [_setting_label(a, b) for a, b in zip(d["cfg.data.name"], d["cfg.model.activation"])]
    d["lr"] = d["cfg.optim.lr"]
    if "test_acc" not in d:
        d["test_acc"] = np.nan
    if "train_loss" not in d:
        d["train_loss"] = np.nan
    d["test_acc_pct"] = 100 * d["test_acc"]
    return d


def chosen(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per (setting, init), the grid rate with the lowest mean final training loss
    (a diverged trial counts as infinite loss)."""
    return stats.best_setting(_label(df), ["setting", "init"], "lr", score="train_loss")


def _selected(df: pd.DataFrame) -> pd.DataFrame:
    return stats.rows_at_best(_label(df), ["setting", "init"], "lr", score="train_loss")


def _per_seed(sel: pd.DataFrame, settings: list[str] | None = None) -> pd.DataFrame:
    """Test accuracy (%) per seed and init, averaged over `settings` (all when None); a seed
    missing a setting (diverged at the chosen rate) is NaN for that init."""
    d = sel if settings is None else sel[sel["setting"].isin(settings)]
    n_settings = d["setting"].nunique()
    g = d.groupby(["seed", "init"])["test_acc_pct"]
    wide = g.mean().where(g.count() == n_settings).unstack("init")
    return wide


def _diff(wide: pd.DataFrame, a: str, b: str) -> np.ndarray:
    if a not in wide or b not in wide:
        return np.array([])
    return (wide[a] - wide[b]).dropna().to_numpy(dtype=float)


def _init_variances(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Long table: arm, seed, init, setting, layer, var (square of the `activations_train`
    monitor's per-layer output std at step 0, on the init batch; BN layers use batch statistics)."""
    mon = curves.get("monitor")
    if mon is None or mon.empty:
        return pd.DataFrame(columns=["arm", "seed", "init", "setting", "norm", "layer", "var"])
    m0 = mon[mon["step"] == 0]
    cols = [c for c in m0.columns if c.startswith("layer") and c.endswith("_std")]
    long = m0.melt(id_vars=["arm", "seed"], value_vars=cols, var_name="layer", value_name="std").dropna()
    long["layer"] = long["layer"].str.slice(5, -4).astype(int) + 1
    long["var"] = long["std"] ** 2
    lab = _label(df)[["arm", "seed", "init", "setting", "cfg.norm.name"]].rename(columns={"cfg.norm.name": "norm"})
    return long.merge(lab, on=["arm", "seed"], how="inner")


def verdict(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> list[stats.Verdict]:
    lrs = chosen(df)
    sel = _selected(df)

    # (a) per-layer output variance after LSUV, measured by the monitor (independent of the initializer)
    iv = _init_variances(df, curves)
    lv = iv[(iv["init"] == "LSUV")]
    dev = (lv.assign(dev=(lv["var"] - 1).abs()).groupby("seed")["dev"].max()) if len(lv) else pd.Series(dtype=float)
    bn_rep = []
    for ex in _label(df).query("init == 'BN+LSUV'")["extra"]:
        for layer in (ex or {}).get("init", {}).get("layers", []):
            bn_rep.append((abs(layer["var"] - 1), layer["iters"]))
    bn_dev = max((d for d, _ in bn_rep), default=float("nan"))
    iters = [it for ex in _label(df).query("init == 'LSUV'")["extra"]
             for it in (layer["iters"] for layer in (ex or {}).get("init", {}).get("layers", []))]
    v_a = stats.effect_verdict(
        "(a) unit variance after LSUV", f"max over layers of |Var(layer output) - 1| on the init batch < tol = {TOL}",
        dev.to_numpy(dtype=float), "|Var - 1|", f"reproduced if the CI is below {TOL}",
        "After LSUV the largest per-layer |Var - 1| (monitor at step 0, all settings) is {effect:.3g} "
        "(95% CI [{lo:.3g}, {hi:.3g}], n={n} seeds); rescalings per layer: median "
        f"{np.median(iters) if iters else float('nan'):.0f}, max {max(iters, default=0)}; "
        f"BN+LSUV (initializer's report, BN in training mode): max |Var - 1| = {bn_dev:.3g}.",
        below=TOL, details={"bn_lsuv_max_dev": bn_dev, "lsuv_iters_max": max(iters, default=0)})

    # (b) LSUV vs BN(+Xavier), all settings averaged per seed
    wide = _per_seed(sel)
    gap = _diff(wide, "LSUV", "BN+Xavier")
    means = wide.mean()
    v_b = stats.effect_verdict(
        "(b) LSUV vs BN", f"LSUV's minus BN(+Xavier)'s final test accuracy > -{MARGIN_PP:g} pp "
        "(mean over settings)", gap, "percentage points",
        f"reproduced if the CI is above -{MARGIN_PP:g} pp",
        "LSUV's test accuracy minus BN's is {effect:+.2f} pp (95% CI [{lo:+.2f}, {hi:+.2f}], n={n} seeds); "
        f"LSUV {means.get('LSUV', np.nan):.2f} %, BN+Xavier {means.get('BN+Xavier', np.nan):.2f} %, "
        f"BN+LSUV {means.get('BN+LSUV', np.nan):.2f} % (mean over settings).", above=-MARGIN_PP)

    # (c) LSUV ahead of N(0, 0.01) and Xavier on the deep ReLU nets
    relu = sorted(s for s in sel["setting"].unique() if s.endswith(" relu"))
    wr = _per_seed(sel, relu)
    mr = wr.mean()
    out = [v_a, v_b]
    for k, other in enumerate(("N(0,0.01)", "Xavier"), start=1):
        d = _diff(wr, "LSUV", other)
        out.append(stats.effect_verdict(
            f"(c{k}) LSUV vs {other}", f"LSUV's minus {other}'s final test accuracy on the deep ReLU nets > 0",
            d, "percentage points", "reproduced if the CI is above 0",
            "On the deep ReLU nets (" + ", ".join(relu) + ") LSUV's test accuracy minus " + other +
            "'s is {effect:+.2f} pp (95% CI [{lo:+.2f}, {hi:+.2f}], n={n} seeds); "
            f"LSUV {mr.get('LSUV', np.nan):.2f} %, {other} {mr.get(other, np.nan):.2f} %; lr LSUV "
            + ", ".join(f"{lrs.get((s, 'LSUV'), np.nan):g}" for s in relu) + f", {other} "
            + ", ".join(f"{lrs.get((s, other), np.nan):g}" for s in relu) + ".", above=0.0))

    # (d) cost per update: every trial of the two arms, both rates, all settings
    lab = _label(df)
    t = lab[lab["init"].isin(["BN+Xavier", "LSUV"])].pivot_table(
        index="seed", columns="init", values="time_per_step_ms", aggfunc="mean")
    ok = {"BN+Xavier", "LSUV"} <= set(t)
    ratio = (t["BN+Xavier"] / t["LSUV"]).dropna().to_numpy(dtype=float) if ok else np.array([])
    out.append(stats.effect_verdict(
        "(d) cost per step", "BN's / LSUV's training time per update > 1", ratio, "ratio",
        "reproduced if the CI is above 1",
        "BN takes {effect:.2f}x LSUV's time per update (95% CI [{lo:.2f}, {hi:.2f}], n={n} seeds); "
        + (f"BN {t['BN+Xavier'].mean():.2f} ms, LSUV {t['LSUV'].mean():.2f} ms per update "
           "(mean over settings and rates)." if ok else "no timings."), above=1.0))
    return out


def tables(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    sel = _selected(df)
    rows = []
    for setting in sel["setting"].drop_duplicates():
        for init in ORDER:
            g = sel[(sel["setting"] == setting) & (sel["init"] == init)]
            if g.empty:
                continue
            acc = g["test_acc_pct"].dropna()
            lo, hi = stats.bootstrap_ci(acc)
            rows.append({
                "setting": setting, "arm": init, "SGD lr": g["lr"].iloc[0], "seeds": len(g),
                "diverged": int((g["status"] != "ok").sum()),
                "test accuracy % (mean)": acc.mean(), "std": acc.std(ddof=1), "95% CI": f"[{lo:.2f}, {hi:.2f}]",
                "final train loss": g["train_loss"].mean(), "ms / update": g["time_per_step_ms"].mean(),
            })
    final = pd.DataFrame(rows)
    if not final.empty:
        lsuv_ms = final.loc[final["arm"] == "LSUV"].set_index("setting")["ms / update"]
        final["time vs LSUV"] = [r["ms / update"] / lsuv_ms.get(r["setting"], np.nan) for _, r in final.iterrows()]
    lab = _label(df)
    grid = lab.groupby(["setting", "init", "lr"]).agg(
        seeds=("seed", "count"), diverged=("status", lambda s: int((s != "ok").sum())),
        final_train_loss=("train_loss", "mean"), test_accuracy_pct=("test_acc_pct", "mean")).reset_index()
    lrs = chosen(df)
    grid["chosen"] = [lrs.get((s, i)) == lr for s, i, lr in zip(grid["setting"], grid["init"], grid["lr"])]
    grid["init"] = pd.Categorical(grid["init"], ORDER)
    iv = _init_variances(df, curves)
    var = (iv.groupby(["setting", "init", "layer"])["var"].mean().unstack("layer") if len(iv) else pd.DataFrame())
    if len(var):
        var.columns = [f"layer {c}" for c in var.columns]
        var = var.reset_index()
        var["init"] = pd.Categorical(var["init"], ORDER)
        var = var.sort_values(["setting", "init"])
    return {"final test accuracy (each arm at its chosen learning rate)": final,
            "learning-rate grid": grid.sort_values(["setting", "init", "lr"]),
            "per-layer output variance at init (mean over seeds and rates)": var}


def figures(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict:
    sel = _selected(df)
    settings = list(sel["setting"].drop_duplicates())
    keep = sel[["arm", "seed", "init", "setting"]]
    ev = curves["eval"].merge(keep, on=["arm", "seed"], how="inner")
    ev["test_acc_pct"] = 100 * ev["test_acc"]
    fig, axes = plots.figure(len(settings))
    for ax, s in zip(axes, settings):
        plots.curves(ax, ev[ev["setting"] == s], "epoch", "test_acc_pct", "init", "epoch",
                     "test accuracy (%)", s, hue_order=[o for o in ORDER if o in set(ev["init"])])
    plots.caption(fig, plots.BAND_LABEL + "; each arm at its chosen SGD learning rate")

    iv = _init_variances(df, curves)
    fig2, axes2 = plots.figure(len(settings))
    for ax, s in zip(axes2, settings):
        d = iv[iv["setting"] == s]
        plots.curves(ax, d, "layer", "var", "init", "weight layer (1 = first; last = read-out)",
                     "output variance at init (log scale)", s, logy=True,
                     hue_order=[o for o in ORDER if o in set(d["init"])])
    plots.caption(fig2, "Var of each weight layer's output on the init batch, before training; "
                  + plots.BAND_LABEL + "; in BN arms, the weight layer's output before its BN")

    fig3, axes3 = plots.figure(len(settings) + 1, width=4.5)
    for ax, s in zip(axes3, settings):
        plots.points(ax, sel[sel["setting"] == s], "init", "test_acc_pct", "", "final test accuracy (%)", s,
                     order=ORDER)
    plots.points(axes3[-1], _label(df), "init", "time_per_step_ms", "", "time per update (ms)",
                 "Cost per update (all trials)", order=ORDER)
    for ax in axes3:
        ax.tick_params(axis="x", rotation=45)
    fig3.subplots_adjust(bottom=0.3, wspace=0.35)
    plots.caption(fig3, "grey: one trial; red: mean with bootstrap 95% CI; accuracy at each arm's chosen "
                  "learning rate; time per update over every trial (all settings and rates)")
    return {"test_accuracy_curves": fig, "init_variance": fig2, "accuracy_and_cost": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
