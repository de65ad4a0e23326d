"""Weight normalization vs batch normalization (Salimans & Kingma 2016).

Regime. The paper's claims are about optimization speed and per-step cost of
four parameterizations trained with Adam at batch 100: plain, batch norm
(BN), weight norm with data-dependent init (WN), and WN + mean-only batch
norm (WN+MOBN). At the `quick` budget two nets train on mnist5k (4,000 train /
1,000 test digits):
- a 3-hidden-layer ReLU MLP (784-128-128-128-10) for 4 epochs (160 updates):
  early training, final test error, and the gradient-noise measurement;
- oplab's small convnet (4 ReLU conv layers of 4, 4, 8, 8 channels, max-pool,
  global average pooling) on the first 2,000 training digits (test: the first
  500) for 2 epochs (40 updates), plain, BN and WN only (no convnet part uses
  WN+MOBN): early training and the cost per update in the paper's kind of net,
  where activations outnumber weights (in an MLP, BN's and WN's costs are both
  small next to the matrix products; its ratio is reported beside).
At the `long` budget the paper's kind of net carries the claims: the convnet of
8, 8, 16, 16 channels on all 4,000 digits, 5 epochs (200 updates) with the
learning rate decayed linearly to 0 over the second half (the paper's schedule),
all four parameterizations: early training, WN+MOBN vs BN, the cost per update
and the noise measurement (in its conv layers); the MLP (784-256-256-256-10, 4
epochs) runs plain and WN only, for its early-training part.
Every arm starts from the same He-normal weights (for WN the direction v; g and
b are then set by the data-dependent init on one batch of 100 training
examples, as in the paper).

Fair learning rates. Each (net, arm) is trained at every Adam learning rate of
a three-level grid around a centre (GRIDS: 3e-4-1e-3-3e-3, 1e-3-3e-3-1e-2,
3e-3-1e-2-3e-2 or 1e-2-3e-2-1e-1, per update; constant, or the long convnet's decay) on tuning
seeds that decide no verdict, and uses the rate with the lowest mean full-split
training loss at the end (selection never looks at test data, nor at the verdict
seeds). Each net's centre (a parameterization's own where `centres` says) was set
on the tuning seeds so that the chosen rate sits inside its grid: version 3's
first quick tuning run chose the top of {3e-4, 1e-3, 3e-3} for every MLP arm and
of {1e-3, 3e-3, 1e-2} for the convnet's BN, so those grids moved up a step; at
the long budget the convnet (200 updates, decayed) chose the top of {1e-3, 3e-3,
1e-2} in every arm, then of {3e-3, 1e-2, 3e-2} for BN and WN+MOBN, so its centre
is 1e-2, and 3e-2 for those two. The grid is the second table. The smoke and full budgets keep {1e-3, 3e-3}.

The measure of early training, stated before any data of this version. The
paper's evidence (its Fig. 1) is training curves: WN's curve lies below plain's
through the early epochs. A curve is summarized by the area under it: the mean
minibatch training loss over every update of the first 2 epochs (80 updates;
the mean of the two epoch-mean losses of the curve), paired by seed. This
weighs every point of the early curve alike; one epoch-end value (the end of
epoch 1 of an earlier version) reads a single point of it, and a one-epoch
window (40 updates, earlier versions) is mostly the first few updates, where
the data-dependent init's start decides. The same measure is used for both nets.
Earlier versions' words disagreed by measure on the convnet (epoch-1 mean loss
against end-of-epoch full-split loss and test error): this version judges the
one stated here and nothing else.

Verdict (computed from the records, paired by seed):
(a) early training, per net: plain's minus WN's mean training loss over the
    first 2 epochs (above) > 0;
(b) MLP: WN+MOBN's final test error minus BN's < 0.5 percentage points
    (non-inferiority margin: 5 test digits of 1,000; a diverged trial counts
    as 100% error);
(c) convnet: time per update BN / WN > 1 (each trial's median wall-clock time
    of a training step, evaluation excluded; one ratio per seed). Timings come
    from whatever machine ran the trials, with other trials beside them; the
    arms of one seed run next to each other;
(d) the notes' explanation, in the plain MLP's hidden layers: minibatch
    gradient noise is more parallel to each unit's *own* weight vector than to
    the other units' weights of the same layer. Monitor `noise_alignment`, on a
    probe batch of 100 apart from the init batch: noise = gradient on a
    sub-batch of 20 minus the gradient on the batch, per unit; per layer the
    ratio mean |cos(noise_j, w_j)| / mean over j != k of |cos(noise_j, w_k)|;
    per trial the geometric mean over the hidden layers and the monitored
    steps after the start; > 1 (t on the logs). The baseline is the other
    units of the same layer, not a random direction: every row of a layer's
    gradient is a combination of the same inputs, and the weights share the
    inputs' dominant directions, so noise lines up with any unit's weights
    above a random direction's level (an earlier version's random baseline gave
    1.4x; on the committed version-2 records the matched / other-units ratio
    was 0.77-1.26 per hidden layer). The read-out layer (10 units) is shown in
    the per-layer table, not judged: the claim is about the units WN
    reparameterizes throughout the net, and the read-out's gradient rows are
    tied to its 10 classes. WN's and BN's gradients with respect to the
    direction are orthogonal to it by construction, so only the plain arm is
    monitored, every 80 updates (quick: steps 0, 80, 160; long: 0, 80, 160, 200;
    the monitor costs about 12 updates a call; earlier versions ran it at every
    evaluation of every MLP arm). At the long budget the main net is the convnet:
    (b) and (d) are judged there, a unit being a conv layer's output channel
    (its kernel flattened), the read-out still excluded.
Seed noise: part (b) compares two arms whose test errors differ by less than
their seed-to-seed spread at this budget (the first table's std column), so
it needs many seeds to be decided either way.

Compute. Version 3 cut the quick budget from 456 s of trial compute (with
replication) to about 97 s (estimated from version 3's idle-machine records and
interleaved timings of old against new trials): the MLP from 256 to 128 units and
from 10 to 4 epochs (the early-training window is 2 epochs; the final test error
of part (b) was undecided at 10), the convnet from 8 to 4 base channels and to
2,000 training and 500 test digits (its cost ratio, part (c), needs few updates;
its early-training part was undecided at 80 updates and goes to long), 8 + 8 to
5 + 5 verdict seeds, and the noise monitor to 2 judged calls. Version 2's
measurement behind its 10 epochs: on the tuning seeds of the committed version-2
records (1000, 1001; Adam 1e-3), the test error at epoch 10 was within 0.4 pp of
epoch 15 for every arm, with the training loss already below 0.005 nats. The long
budget (about 10 CPU-minutes) is sized to the suite's long tier.

Full budget: the paper's task, CIFAR-10 (per-channel standardized, no
augmentation) with oplab's convnet (6 conv layers of 64, 64, 128, 128, 256, 256
channels, 2x2 max-pooling after every second, global average pooling), Adam at
batch 100, 100 epochs with the learning rate decayed linearly to 0 over the
second half (the authors' code: 200 epochs, decay over the last 100; their
network is larger and uses dropout and input noise). All four parts are then
measured on that convnet; early training over its first 10 epochs; the noise
monitor every 10 epochs.

Full budget: about 2.8 GPU-hours on one data-centre GPU (48 trials, 2,400,000 updates, 235 PFLOP
counted from the arms' models; `python -m studies.wn_vs_bn --budget full --replicate --estimate`
shows the count and its assumptions).
"""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, plots, stats
from oplab.config import DataConfig, InitConfig, ModelConfig, NormConfig, OptimConfig, Trial

NAME = "wn_vs_bn"
TITLE = "Weight normalization vs batch normalization"
CLAIM = ("Weight normalization speeds up early training over the plain parameterization; WN with "
         "mean-only batch norm matches or beats batch norm, and WN costs less per step than BN.")
SOURCE = ("Salimans & Kingma 2016, Weight Normalization, arXiv 1602.07868, "
          "Fig. 1 and sec. 5.1 (CIFAR-10)")
VERSION = 4
SEEDS = {"smoke": 2, "quick": 5, "long": 5, "full": 5}
TUNE = kit.Tune("lr", within=("net", "norm"), score="train_loss_full",
                seeds={"smoke": 1, "quick": 2, "long": 2, "full": 1})

PARAMETERIZATIONS = {"plain": "none", "BN": "batch", "WN": "weight", "WN+MOBN": "weight_meanbn"}  # label -> norm
ORDER = list(PARAMETERIZATIONS)
LRS = [1e-3, 3e-3]  # Adam learning-rate grid, per update, of the smoke and full budgets
GRIDS = {1e-3: [3e-4, 1e-3, 3e-3], 3e-3: [1e-3, 3e-3, 1e-2], 1e-2: [3e-3, 1e-2, 3e-2],  # Adam lrs per update,
         3e-2: [1e-2, 3e-2, 1e-1]}  # by centre
MARGIN_PP = 0.5  # non-inferiority margin for WN+MOBN vs BN, percentage points of test error
ALIGN = ("noise_alignment",)  # monitored in the main net's plain arm only (part d)


def _net(data: DataConfig, model: ModelConfig, epochs: int, schedule: str = "constant", batch: int = 100,
         monitor_every: int = 0, lr: float = 3e-3, centres: dict | None = None, lrs: list[float] | None = None,
         norms: tuple[str, ...] = tuple(ORDER)) -> dict:
    """monitor_every: updates between noise-alignment calls in the plain arm (0: not monitored); lr: the
    centre of the net's Adam grid (GRIDS; `centres`: a parameterization's own centre), or `lrs` one grid for
    every parameterization; norms: the parameterizations the net runs (WN+MOBN: main net only)."""
    grids = {n: lrs or GRIDS[(centres or {}).get(n, lr)] for n in norms}
    return dict(data=data, model=model, epochs=epochs, schedule=schedule, batch=batch, monitor_every=monitor_every,
                lrs=grids, norms=norms)


# per budget: the nets; the net of parts (b) and (d); the net of part (c) (the paper's claim is about
# convnets); early training's window in epochs (part a: the mean training loss over them)
SETUP = {
    "smoke": {"nets": {"MLP": _net(DataConfig("mnist5k", n_train=200, n_test=200), ModelConfig("mlp", 2, 32), 2,
                                   batch=50, monitor_every=4, lrs=LRS),
                       "convnet": _net(DataConfig("mnist5k", n_train=200, n_test=200), ModelConfig("convnet", 2, 4),
                                       1, batch=50, lrs=LRS)},
              "main": "MLP", "timing": "convnet", "early_epochs": 1},
    "quick": {"nets": {"MLP": _net(DataConfig("mnist5k"), ModelConfig("mlp", 3, 128), 4, monitor_every=80),
                       "convnet": _net(DataConfig("mnist5k", n_train=2000, n_test=500), ModelConfig("convnet", 4, 4),
                                       2, centres={"BN": 1e-2}, norms=("plain", "BN", "WN"))},
              "main": "MLP", "timing": "convnet", "early_epochs": 2},
    "long": {"nets": {"MLP": _net(DataConfig("mnist5k"), ModelConfig("mlp", 3, 256), 4, lr=1e-3,
                                  norms=("plain", "WN")),
                      "convnet": _net(DataConfig("mnist5k"), ModelConfig("convnet", 4, 8), 5, "linear_decay",
                                      monitor_every=80, lr=1e-2, centres={"BN": 3e-2, "WN+MOBN": 3e-2})},
             "main": "convnet", "timing": "convnet", "early_epochs": 2},
    "full": {"nets": {"convnet": _net(DataConfig("cifar10"), ModelConfig("convnet", 6, 64), 100, "linear_decay",
                                      monitor_every=5000, lrs=LRS)},
             "main": "convnet", "timing": "convnet", "early_epochs": 10},
}

PAPER = """
| CIFAR-10 test error (Salimans & Kingma 2016, Fig. 3 / sec. 5.1; status: secondary) | paper |
|---|---|
| plain parameterization | 8.43 % |
| batch norm | 8.05 % |
| weight norm | 8.46 % |
| weight norm + mean-only batch norm | 7.31 % |
| BN time per step vs WN (same paper, sec. 5.1; secondary) | BN about 16 % slower |

Our quick and long budgets are a different regime (an MLP and a small convnet on at most 4,000 MNIST
digits, at most 200 updates), so compare directions and orderings, not the error levels.
"""


def arms(budget: str) -> dict[str, kit.Arm]:
    """One arm per (net, parameterization, learning rate of the grid); WN+MOBN only on the main net
    (part b); the noise monitor only in the main net's plain arm (part d)."""
    out, main = {}, SETUP[budget]["main"]
    for net, s in SETUP[budget]["nets"].items():
        for label, norm in PARAMETERIZATIONS.items():
            if (label == "WN+MOBN" and net != main) or label not in s["norms"]:
                continue
            mon = dict(monitors=ALIGN, monitor_every=s["monitor_every"]) \
                if net == main and label == "plain" and s["monitor_every"] else {}
            for lr in s["lrs"][label]:
                trial = Trial(data=s["data"], model=s["model"], init=InitConfig("he"), norm=NormConfig(norm),
                              optim=OptimConfig("adam", lr=lr, schedule=s["schedule"]), epochs=s["epochs"],
                              batch_size=s["batch"], **mon)
                out[f"{net} {label} lr={lr:g}"] = kit.Arm(trial, {"net": net, "norm": label, "lr": lr})
    return out


def alignment(curves) -> pd.DataFrame:
    """Long table of the noise monitor: per (arm, seed, step after the start, layer) the matched
    |cos(noise_j, w_j)| (`own`), the other units' (`other`) and a random direction's (`random`);
    `read_out` marks the last weight layer."""
    mon = curves.get("monitor")
    cols = ["arm", "seed", "step", "layer", "own", "other", "random", "read_out"]
    if mon is None or "layer0_noise_cos" not in mon:
        return pd.DataFrame(columns=cols)
    mon = mon[mon["step"] > 0]
    layers = sorted(int(c[5:-10]) for c in mon.columns if re.fullmatch(r"layer\d+_noise_cos", c))
    frames = [pd.DataFrame({"arm": mon["arm"], "seed": mon["seed"], "step": mon["step"], "layer": i + 1,
                            "own": mon[f"layer{i}_noise_cos"], "other": mon[f"layer{i}_other_cos"],
                            "random": mon[f"layer{i}_random_cos"], "read_out": i == layers[-1]})
              for i in layers]
    return pd.concat(frames, ignore_index=True)


def noise_ratio(al: pd.DataFrame) -> pd.Series:
    """Per (arm, seed): geometric mean over hidden layers and monitored steps of own / other (NaN
    where a cosine is 0 or missing: the trial then counts as failed)."""
    h = al[~al["read_out"].astype(bool)]
    lr = np.log((h["own"] / h["other"]).where(lambda r: r > 0))
    return np.exp(lr.groupby([h["arm"], h["seed"]]).mean()).rename("noise_ratio")


def measure(df, curves, ctx):
    """Per trial: early training loss (mean minibatch loss over the first `early_epochs` epochs),
    test error in points, and the noise ratio of part (d)."""
    ev = curves["eval"]
    early = {**curves, "eval": ev[ev["epoch"] <= ctx.setup["early_epochs"] + 1e-9]}
    t = kit.curve_value(df, early, "eval", "train_loss_running", "early_loss", agg="mean", after=("step", 0))
    ratio = noise_ratio(alignment(curves))
    t = t.merge(ratio.reset_index(), on=["arm", "seed"], how="left") if len(ratio) else t.assign(noise_ratio=np.nan)
    t["test_err_pp"] = 100 * t["test_err"]
    return t


def verdict(t, ctx):
    main, timing, e = ctx.setup["main"], ctx.setup["timing"], ctx.setup["early_epochs"]
    parts = [kit.difference(t, "early_loss", {"norm": "plain"}, {"norm": "WN"}, where={"net": net},
                            part=f"early training ({net})", unit="nats", above=0.0,
                            claim=f"{net}: plain's minus WN's mean training loss over the first {e} epoch(s) "
                                  "(area under the training-loss curve) > 0")
             for net in ctx.setup["nets"]]
    parts.append(kit.difference(
        t, "test_err_pp", {"norm": "WN+MOBN"}, {"norm": "BN"}, where={"net": main}, part="WN+MOBN vs BN",
        claim=f"{main}: WN+MOBN's minus BN's final test error < {MARGIN_PP} pp", unit="pp", below=MARGIN_PP,
        worst=100.0))
    parts.append(kit.ratio(t, "time_per_step_ms", {"norm": "BN"}, {"norm": "WN"}, where={"net": timing},
                           part=f"cost per step ({timing})", claim=f"{timing}: BN's / WN's time per update > 1",
                           above=1.0, diverged_fails=False))
    parts.append(kit.mean(t, "noise_ratio", where={"net": main, "norm": "plain"}, part="noise parallel to w",
                          claim=f"{main}, plain, hidden layers: mean |cos(noise_j, w_j)| / mean |cos(noise_j, w_k)| "
                                "over other units k of the layer > 1", unit="x other units",
                          what="plain net, hidden layers: gradient noise's alignment with each unit's own weights "
                               "over the other units' (geometric mean over layers and monitored steps)",
                          above=1.0, scale="log"))
    return parts


def alignment_table(t, curves) -> pd.DataFrame:
    """Per layer: the seeds' geometric mean (t on the logs) of own / other units' and own / random
    direction's |cos|, each seed's value the geometric mean over the monitored steps."""
    al = alignment(curves)
    if al.empty:
        return pd.DataFrame()
    al = al.merge(t[["arm", "seed"]], on=["arm", "seed"])
    rows = []
    for layer, g in al.groupby("layer"):
        row = {"layer": layer, "role": "read-out (not judged)" if g["read_out"].iloc[0] else "hidden (judged)",
               "seeds": g["seed"].nunique()}
        for name, base in (("own / other units", "other"), ("own / random direction", "random")):
            per_seed = np.exp(np.log(g["own"] / g[base]).groupby(g["seed"]).mean())
            m, ci = stats.log_t_interval(per_seed.to_numpy())
            row[f"{name} (geo. mean)"] = m
            row[f"{name} 95% CI"] = stats.interval_text(ci)
        row["mean |cos| own"] = g["own"].mean()
        row["mean |cos| other units"] = g["other"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def tables(t, curves, ctx):
    e = ctx.setup["early_epochs"]
    extra = {"Adam lr (chosen)": "lr", f"mean train loss, epochs 1-{e}": "early_loss",
             "final train loss (full split)": "train_loss_full", "ms / update": "time_per_step_ms"}
    out = {"final test error (each arm at its chosen learning rate)":
           kit.summary(t, "test_err_pp", ["net", "norm"], name="test error %", extra=extra, order={"norm": ORDER}),
           "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, show={"ms / update": "time_per_step_ms"},
                                                                 order={"norm": ORDER})}
    al = alignment_table(t, curves)
    if not al.empty:
        out[f"gradient noise vs the weights, per layer ({ctx.setup['main']}, plain; part d judges the hidden "
            "layers)"] = al
    return out


def figures(t, curves, ctx):
    main, nets, e = ctx.setup["main"], list(ctx.setup["nets"]), ctx.setup["early_epochs"]
    ev = curves["eval"]
    ev = ev[ev["step"] > 0].assign(test_err_pct=lambda d: 100 * (1 - d["test_acc"]))
    fig, axes = plots.figure(len(nets) + 2, width=4.6)
    for ax, net in zip(axes, nets):
        plots.curves(ax, ev[ev["net"] == net], "epoch", "train_loss_running", "norm", "epoch",
                     "training loss (nats, mean over the epoch)", f"Training loss ({net})", logy=True,
                     hue_order=ORDER)
        ax.axvline(e, color="0.3", linestyle=":", linewidth=1)
        if ax is not axes[0]:
            ax.get_legend().remove()  # the same arms and colours as the first panel's legend
    early = [p for p in verdict(t, ctx) if p.part.startswith("early training")]
    plots.parts(axes[len(nets)], early, nets, "plain's minus WN's mean training loss (nats)",
                f"Early training: first {e} epoch(s)", fmt=".3f")
    plots.curves(axes[-1], ev[ev["net"] == main], "epoch", "test_err_pct", "norm", "epoch", "test error (%)",
                 f"Test error ({main})", hue_order=ORDER)
    axes[-1].get_legend().remove()
    axes[-1].set_ylim(bottom=0)
    plots.caption(fig, plots.BAND_LABEL + f"; each arm at its chosen Adam learning rate. The early-training parts "
                  f"average the training loss up to epoch {e} (dotted), plain's minus WN's, paired by seed: above the "
                  "dashed line (0) is the claimed side")

    fig2, axes = plots.figure(3 + len(nets), width=4.0)
    plots.points(axes[0], t[t["net"] == main], "norm", "test_err_pp", "", "final test error (%)",
                 f"Final test error ({main})", order=ORDER)
    for ax, net in zip(axes[1:], nets):
        plots.points(ax, t[t["net"] == net], "norm", "time_per_step_ms", "", "time per update (ms)",
                     f"Cost per update ({net})", order=ORDER)
    judged = {p.part: p for p in verdict(t, ctx)}
    plots.parts(axes[-2], [judged["WN+MOBN vs BN"]], ["WN+MOBN - BN"], "final test error difference (pp)",
                f"WN+MOBN vs BN ({main})", fmt=".2f", legend="below")
    plots.parts(axes[-1], [judged[f"cost per step ({ctx.setup['timing']})"]], ["BN / WN"], "time per update ratio",
                f"Cost per step ({ctx.setup['timing']})", legend="below")
    plots.caption(fig2, plots.POINTS_LABEL + "; cost: each trial's median step time, training step only. Right: the "
                  "two parts, paired by seed, against their thresholds (dashed): WN+MOBN's error at most "
                  f"{MARGIN_PP:g} pp above BN's (below the line), BN's step dearer than WN's (above 1)")
    out = {"training_curves": fig, "test_error_and_cost": fig2}

    al = alignment(curves).merge(t[["arm", "seed"]], on=["arm", "seed"])
    if not al.empty:
        steps_per_epoch = ev["step"].max() / ev["epoch"].max()
        al = al.assign(ratio=al["own"] / al["other"], epoch=al["step"] / steps_per_epoch,
                       layer=al["layer"].astype(str) + np.where(al["read_out"].astype(bool), " (read-out)", ""))
        fig3, (c1, c2) = plots.figure(2, width=5.0)
        # one marker and dash a layer, so that layers whose curves coincide stay distinguishable
        plots.theme().lineplot(data=al, x="epoch", y="ratio", hue="layer", style="layer", markers=True,
                               errorbar=plots.BAND, ax=c1)
        c1.set_yscale("log")
        c1.set(xlabel="epoch", ylabel="|cos(noise_j, w_j)| / other units' |cos|",
               title=f"Noise parallel to own weights ({main}, plain)")
        c1.axhline(1.0, color="0.3", linestyle="--", linewidth=1)
        c1.legend(title="layer", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
        part = next(p for p in verdict(t, ctx) if p.part == "noise parallel to w")
        plots.judged(c2, part, x=0.0, seeds=True, label="hidden layers", fmt=".3f")
        c2.set(xlim=(-0.6, 0.9), xticks=[], ylabel="own / other units' |cos|, geo. mean over layers, steps",
               title="noise parallel to w (judged)")
        c2.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.04), frameon=False)
        plots.caption(fig3, "noise: gradient on a fifth of the probe batch minus the batch's, per unit; 1 (dashed): "
                      "no more aligned with the unit's own weights than with the other units' of its layer, above it "
                      f"the claimed side; left: {plots.BAND_LABEL}; right: the part, over the hidden layers only (the "
                      "read-out is not judged)")
        out["noise_alignment"] = fig3
    return out


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
