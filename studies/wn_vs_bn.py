"""Weight normalization vs batch normalization (Salimans & Kingma 2016).

Regime. The paper's claims are about optimization speed and per-step cost of
four parameterizations trained with Adam at batch 100: plain, batch norm
(BN), weight norm with data-dependent init (WN), and WN + mean-only batch
norm (WN+MOBN). At the `quick` budget two nets train on mnist5k (4,000 train /
1,000 test digits):
- a 3-hidden-layer ReLU MLP (784-256-256-256-10) for 15 epochs (600 updates):
  early training, final test error, and the gradient-noise measurement;
- oplab's small convnet (4 ReLU conv layers of 8, 8, 16, 16 channels, max-pool,
  global average pooling) for 1 epoch (40 updates): early training and the
  cost per update in the paper's kind of net, where activations outnumber
  weights (in an MLP, BN's and WN's costs are both small next to the matrix
  products; its ratio is reported beside).
Every arm starts from the same He-normal weights (for WN the direction v; g and
b are then set by the data-dependent init on one batch of 100 training
examples, as in the paper).

Fair learning rates. Each (net, arm) is trained at every Adam learning rate of
a small grid ({1e-3, 3e-3} per update, constant) on tuning seeds that decide
no verdict, and uses the rate with the lowest mean full-split training loss at
the end (selection never looks at test data, nor at the verdict seeds). The
grid is the second table.

Verdict (computed from the records, paired by seed):
(a) early training, per net: plain's minus WN's training loss over the first
    epoch (mean minibatch loss of epoch 1) > 0;
(b) MLP: WN+MOBN's final test error minus BN's < 0.5 percentage points
    (non-inferiority margin: 5 test digits of 1,000; a diverged trial counts
    as 100% error);
(c) convnet: time per update BN / WN > 1 (each trial's median wall-clock time
    of a training step, evaluation excluded; one ratio per seed). Timings come
    from whatever machine ran the trials, with other trials beside them; the
    arms of one seed run next to each other;
(d) the notes' explanation: in the plain MLP, minibatch gradient noise is more
    parallel to each unit's weight vector than chance (mean |cos(noise, w)| over
    units, layers and evaluations, divided by the same for a random direction,
    > 1; noise = gradient on a sub-batch of 20 minus the gradient on the fixed
    batch of 100, monitor `noise_alignment`, on a probe batch apart from the
    init batch). WN's gradient with respect to v is orthogonal to v, which
    removes that component: WN's ratio is 0 by construction and is shown in the
    figure, not tested.
Seed noise: part (b) compares two arms whose test errors differ by less than
their seed-to-seed spread at this budget (the first table's std column), so
it needs many seeds to be decided either way.

Full budget: the paper's task, CIFAR-10 (per-channel standardized, no
augmentation) with oplab's convnet (6 conv layers of 64, 64, 128, 128, 256, 256
channels, 2x2 max-pooling after every second, global average pooling), Adam at
batch 100, 100 epochs with the learning rate decayed linearly to 0 over the
second half (the authors' code: 200 epochs, decay over the last 100; their
network is larger and uses dropout and input noise). All four parts are then
measured on that convnet.

Full budget: about 2.8 GPU-hours on one data-centre GPU (48 trials, 2,400,000 updates, 230 PFLOP
counted from the arms' models; `python -m studies.wn_vs_bn --budget full --replicate --estimate`
shows the count and its assumptions).
"""

from __future__ import annotations

import sys

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, NormConfig, OptimConfig, Trial

NAME = "wn_vs_bn"
TITLE = "Weight normalization vs batch normalization"
CLAIM = ("Weight normalization speeds up early training over the plain parameterization; WN with "
         "mean-only batch norm matches or beats batch norm, and WN costs less per step than BN.")
SOURCE = ("Salimans & Kingma 2016, Weight Normalization, arXiv 1602.07868, "
          "Fig. 1 and sec. 5.1 (CIFAR-10)")
VERSION = 2
SEEDS = {"smoke": 2, "quick": 8, "full": 5}
TUNE = kit.Tune("lr", within=("net", "norm"), score="train_loss_full", seeds={"smoke": 1, "quick": 2, "full": 1})

PARAMETERIZATIONS = {"plain": "none", "BN": "batch", "WN": "weight", "WN+MOBN": "weight_meanbn"}  # label -> norm
ORDER = list(PARAMETERIZATIONS)
LRS = [1e-3, 3e-3]  # Adam learning-rate grid, per update, every net and budget
MARGIN_PP = 0.5  # non-inferiority margin for WN+MOBN vs BN, percentage points of test error
ALIGN = ("noise_alignment",)


def _net(data: DataConfig, model: ModelConfig, epochs: int, schedule: str = "constant", batch: int = 100,
         monitors: tuple = ()) -> dict:
    return dict(data=data, model=model, epochs=epochs, schedule=schedule, batch=batch, monitors=monitors)


# per budget: the nets, the net of parts (b) and (d), the net of part (c) (the paper's claim is about convnets)
SETUP = {
    "smoke": {"nets": {"MLP": _net(DataConfig("mnist5k", n_train=200, n_test=200), ModelConfig("mlp", 2, 32), 2,
                                   batch=50, monitors=ALIGN),
                       "convnet": _net(DataConfig("mnist5k", n_train=200, n_test=200), ModelConfig("convnet", 2, 4),
                                       1, batch=50)},
              "main": "MLP", "timing": "convnet"},
    "quick": {"nets": {"MLP": _net(DataConfig("mnist5k"), ModelConfig("mlp", 3, 256), 15, monitors=ALIGN),
                       "convnet": _net(DataConfig("mnist5k"), ModelConfig("convnet", 4, 8), 1)},
              "main": "MLP", "timing": "convnet"},
    "full": {"nets": {"convnet": _net(DataConfig("cifar10"), ModelConfig("convnet", 6, 64), 100, "linear_decay",
                                      monitors=ALIGN)},
             "main": "convnet", "timing": "convnet"},
}

PAPER = """
| CIFAR-10 test error (Salimans & Kingma 2016, Fig. 3 / sec. 5.1; status: secondary) | paper |
|---|---|
| plain parameterization | 8.43 % |
| batch norm | 8.05 % |
| weight norm | 8.46 % |
| weight norm + mean-only batch norm | 7.31 % |
| BN time per step vs WN (same paper, sec. 5.1; secondary) | BN about 16 % slower |

Our quick budget is a different regime (an MLP and a small convnet on 4,000 MNIST digits, 600
and 40 updates), so compare directions and orderings, not the error levels.
"""


def arms(budget: str) -> dict[str, kit.Arm]:
    """One arm per (net, parameterization, learning rate of the grid)."""
    out = {}
    for net, s in SETUP[budget]["nets"].items():
        for label, norm in PARAMETERIZATIONS.items():
            for lr in LRS:
                trial = Trial(data=s["data"], model=s["model"], init=InitConfig("he"), norm=NormConfig(norm),
                              optim=OptimConfig("adam", lr=lr, schedule=s["schedule"]), epochs=s["epochs"],
                              batch_size=s["batch"], monitors=s["monitors"])
                out[f"{net} {label} lr={lr:g}"] = kit.Arm(trial, {"net": net, "norm": label, "lr": lr})
    return out


def measure(df, curves, ctx):
    """Per trial: epoch-1 training loss, test error in points, and the noise alignment ratio."""
    mon = curves.get("monitor")
    if mon is not None and "noise_cos" in mon:
        curves = {**curves, "monitor": mon.assign(noise_ratio=mon["noise_cos"] / mon["random_cos"])}
    t = kit.curve_value(df, curves, "eval", "train_loss_running", "epoch1_loss", at=("epoch", 1.0))
    t = kit.curve_value(t, curves, "monitor", "noise_ratio", "noise_ratio", after=("step", 0))
    t["test_err_pp"] = 100 * t["test_err"] if "test_err" in t else float("nan")
    return t


def verdict(t, ctx):
    main, timing = ctx.setup["main"], ctx.setup["timing"]
    parts = [kit.difference(t, "epoch1_loss", {"norm": "plain"}, {"norm": "WN"}, where={"net": net},
                            part=f"early training ({net})", unit="nats", above=0.0,
                            claim=f"{net}: plain's minus WN's mean training loss over epoch 1 > 0")
             for net in ctx.setup["nets"]]
    parts.append(kit.difference(
        t, "test_err_pp", {"norm": "WN+MOBN"}, {"norm": "BN"}, where={"net": main}, part="WN+MOBN vs BN",
        claim=f"{main}: WN+MOBN's minus BN's final test error < {MARGIN_PP} pp", unit="pp", below=MARGIN_PP,
        worst=100.0))
    parts.append(kit.ratio(t, "time_per_step_ms", {"norm": "BN"}, {"norm": "WN"}, where={"net": timing},
                           part=f"cost per step ({timing})", claim=f"{timing}: BN's / WN's time per update > 1",
                           above=1.0, diverged_fails=False))
    parts.append(kit.mean(t, "noise_ratio", where={"net": main, "norm": "plain"}, part="noise parallel to w",
                          claim=f"{main}, plain: mean |cos(gradient noise, w)| / chance level > 1", unit="x chance",
                          what="plain net: gradient noise's alignment with the weights over a random direction's",
                          above=1.0, scale="log"))
    return parts


def tables(t, curves, ctx):
    extra = {"Adam lr (chosen)": "lr", "epoch-1 train loss": "epoch1_loss",
             "final train loss (full split)": "train_loss_full", "ms / update": "time_per_step_ms"}
    return {"final test error (each arm at its chosen learning rate)":
            kit.summary(t, "test_err_pp", ["net", "norm"], name="test error %", extra=extra, order={"norm": ORDER}),
            "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, show={"ms / update": "time_per_step_ms"},
                                                                  order={"norm": ORDER})}


def figures(t, curves, ctx):
    main = ctx.setup["main"]
    ev = curves["eval"]
    ev = ev[(ev["step"] > 0) & (ev["net"] == main)].assign(test_err_pct=lambda d: 100 * (1 - d["test_acc"]))
    fig, (a1, a2) = plots.figure(2)
    plots.curves(a1, ev, "epoch", "train_loss_running", "norm", "epoch", "training loss (nats, mean over the epoch)",
                 f"Training loss ({main})", logy=True, hue_order=ORDER)
    plots.curves(a2, ev, "epoch", "test_err_pct", "norm", "epoch", "test error (%)", f"Test error ({main})",
                 hue_order=ORDER)
    a2.set_ylim(bottom=0)
    plots.caption(fig, plots.BAND_LABEL + "; each arm at its chosen Adam learning rate")

    nets = list(ctx.setup["nets"])
    fig2, axes = plots.figure(1 + len(nets), width=4.5)
    plots.points(axes[0], t[t["net"] == main], "norm", "test_err_pp", "", "final test error (%)",
                 f"Final test error ({main})", order=ORDER)
    for ax, net in zip(axes[1:], nets):
        plots.points(ax, t[t["net"] == net], "norm", "time_per_step_ms", "", "time per update (ms)",
                     f"Cost per update ({net})", order=ORDER)
    plots.caption(fig2, plots.POINTS_LABEL + "; cost: each trial's median step time, training step only")
    out = {"training_curves": fig, "test_error_and_cost": fig2}

    mon = curves.get("monitor")
    if mon is not None and "noise_cos" in mon:
        mon = mon[(mon["step"] > 0) & (mon["net"] == main)]
        steps_per_epoch = ev["step"].max() / ev["epoch"].max()
        mon = mon.assign(ratio=mon["noise_cos"] / mon["random_cos"], epoch=mon["step"] / steps_per_epoch)
        fig3, (c1,) = plots.figure(1, width=6.5)
        plots.curves(c1, mon, "epoch", "ratio", "norm", "epoch", "|cos(noise, w)| / random direction's",
                     f"Gradient noise parallel to the weights ({main})", hue_order=ORDER)
        c1.axhline(1.0, color="0.3", linestyle=":", linewidth=1)
        plots.caption(fig3, "noise: gradient on a fifth of the batch minus the batch's, per unit; 1 (dotted) = "
                      "chance. WN's gradient w.r.t. v is orthogonal to v (0, by construction); " + plots.BAND_LABEL)
        out["noise_alignment"] = fig3
    return out


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
