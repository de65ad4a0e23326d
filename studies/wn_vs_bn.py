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
a small grid ({1e-3, 3e-3} per update, constant) and uses the rate with the
lowest mean *training* loss at the end (selection never looks at test data).
The grid and every rate's result are in the second table.

Verdict (computed from the records, paired by seed):
(a) early training, per net: plain's minus WN's training loss over the first
    epoch (mean minibatch loss of epoch 1) > 0;
(b) MLP: WN+MOBN's final test error minus BN's < 0.5 percentage points
    (non-inferiority margin: 5 test digits of 1,000);
(c) convnet: time per update BN / WN > 1 (median wall-clock time of a training
    step, evaluation excluded; every rate of the grid, paired by seed and
    rate). Timings come from whatever machine ran the trials, with other trials
    beside them; the arms of one seed run next to each other;
(d) the notes' explanation: in the plain MLP, minibatch gradient noise is more
    parallel to each unit's weight vector than chance (mean |cos(noise, w)| over
    units, layers and evaluations, divided by the same for a random direction,
    > 1; noise = gradient on a sub-batch of 20 minus the gradient on the fixed
    batch of 100, monitor `noise_alignment`). WN's gradient with respect to v is
    orthogonal to v, which removes that component.

Full budget: the paper's task, CIFAR-10 (per-channel standardized, no
augmentation) with oplab's convnet (6 conv layers of 64, 64, 128, 128, 256, 256
channels, 2x2 max-pooling after every second, global average pooling), Adam at
batch 100, 100 epochs with the learning rate decayed linearly to 0 over the
second half (the authors' code: 200 epochs, decay over the last 100; their
network is larger and uses dropout and input noise). All four parts are then
measured on that convnet.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, plots, stats
from oplab.config import DataConfig, InitConfig, ModelConfig, NormConfig, OptimConfig, Trial

NAME = "wn_vs_bn"
TITLE = "Weight normalization vs batch normalization"
CLAIM = ("Weight normalization speeds up early training over the plain parameterization; WN with "
         "mean-only batch norm matches or beats batch norm, and WN costs less per step than BN.")
SOURCE = ("Salimans & Kingma 2016, Weight Normalization, arXiv 1602.07868, "
          "Fig. 1 and sec. 5.1 (CIFAR-10)")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "full": 3}

NORMS = {"plain": "none", "BN": "batch", "WN": "weight", "WN+MOBN": "weight_meanbn"}
LABELS = {v: k for k, v in NORMS.items()}
ORDER = list(NORMS)
NET_LABELS = {"mlp": "MLP", "convnet": "convnet"}
LRS = [1e-3, 3e-3]  # Adam learning-rate grid, per update, every net and budget
MARGIN_PP = 0.5  # non-inferiority margin for WN+MOBN vs BN, percentage points of test error
MAIN = {"smoke": "MLP", "quick": "MLP", "full": "convnet"}  # the net of parts (b) and (d)
TIMING = "convnet"  # the net of part (c): the paper's claim is about convnets

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


def _nets(budget: str) -> dict[str, tuple[DataConfig, ModelConfig, int, str, int, tuple[str, ...]]]:
    """net label -> (data, model, epochs, schedule, batch size, monitors)."""
    align = ("noise_alignment",)
    if budget == "smoke":
        data = DataConfig("mnist5k", n_train=200, n_test=200)
        return {"MLP": (data, ModelConfig("mlp", 2, 32), 2, "constant", 50, align),
                "convnet": (data, ModelConfig("convnet", 2, 4), 1, "constant", 50, ())}
    if budget == "quick":
        return {"MLP": (DataConfig("mnist5k"), ModelConfig("mlp", 3, 256), 15, "constant", 100, align),
                "convnet": (DataConfig("mnist5k"), ModelConfig("convnet", 4, 8), 1, "constant", 100, ())}
    if budget == "full":
        return {"convnet": (DataConfig("cifar10"), ModelConfig("convnet", 6, 64), 100, "linear_decay", 100, align)}
    raise ValueError(f"unknown budget {budget!r}")


def arms(budget: str) -> dict[str, Trial]:
    """One arm per (net, parameterization, learning rate of the grid)."""
    out = {}
    for net, (data, model, epochs, schedule, batch, monitors) in _nets(budget).items():
        for label, norm in NORMS.items():
            for lr in LRS:
                out[f"{net} {label} lr={lr:g}"] = Trial(
                    data=data, model=model, init=InitConfig("he"), norm=NormConfig(norm),
                    optim=OptimConfig("adam", lr=lr, schedule=schedule), epochs=epochs,
                    batch_size=batch, monitors=monitors,
                )
    return out


def _label(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["net"] = df["cfg.model.name"].map(NET_LABELS)
    df["norm"] = df["cfg.norm.name"].map(LABELS)
    df["lr"] = df["cfg.optim.lr"]
    return df


def chosen(df: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Per (net, parameterization), the grid rate with the lowest mean final training loss
    (a diverged trial counts as infinite loss)."""
    return stats.best_setting(_label(df), ["net", "norm"], "lr", score="train_loss")


def _selected(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The trials at each (net, norm)'s chosen rate, with their epoch-1 training loss."""
    sel = stats.rows_at_best(_label(df), ["net", "norm"], "lr", score="train_loss")
    ev = curves["eval"]
    e1 = ev[np.isclose(ev["epoch"], 1.0)][["arm", "seed", "train_loss"]].rename(columns={"train_loss": "epoch1_loss"})
    sel = sel.merge(e1, on=["arm", "seed"], how="left")
    sel["test_err_pp"] = 100 * sel["test_err"] if "test_err" in sel else np.nan
    return sel


def _nets_in(sel: pd.DataFrame) -> list[str]:
    return [n for n in NET_LABELS.values() if n in set(sel["net"])]


def _paired(sel: pd.DataFrame, net: str, col: str, a: str, b: str) -> np.ndarray:
    return stats.paired_differences(sel[sel["net"] == net], col, a, b, arm="norm")


def verdict(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> list[stats.Verdict]:
    sel = _selected(df, curves)
    lrs = chosen(df)
    nan = float("nan")
    parts = []
    for net in _nets_in(sel):
        parts.append(stats.effect_verdict(
            f"early training ({net})", f"{net}: plain's minus WN's mean training loss over epoch 1 > 0",
            _paired(sel, net, "epoch1_loss", "plain", "WN"), "nats", "reproduced if the CI is above 0",
            f"{net}: plain's minus WN's mean training loss over the first epoch is " + "{effect:+.3f} nats "
            "(95% CI [{lo:+.3f}, {hi:+.3f}], n={n} seeds; " + f"Adam lr plain {lrs.get((net, 'plain'), nan):g}, "
            f"WN {lrs.get((net, 'WN'), nan):g}).", above=0.0))

    main_net = MAIN[_budget(df)]
    err = sel[sel["net"] == main_net].groupby("norm")["test_err_pp"].mean()
    parts.append(stats.effect_verdict(
        "WN+MOBN vs BN", f"{main_net}: WN+MOBN's minus BN's final test error < {MARGIN_PP} pp",
        _paired(sel, main_net, "test_err_pp", "WN+MOBN", "BN"), "percentage points",
        f"reproduced if the CI is below +{MARGIN_PP} pp",
        "WN+MOBN's test error minus BN's is {effect:+.2f} pp (95% CI [{lo:+.2f}, {hi:+.2f}], n={n}); "
        f"BN {err.get('BN', nan):.2f} %, WN+MOBN {err.get('WN+MOBN', nan):.2f} %.", below=MARGIN_PP))

    # time per update: every rate of the grid counts, paired by seed and rate
    lab = _label(df)
    ms = {}
    for net in _nets_in(sel):
        t = lab[lab["net"] == net].pivot_table(index=["seed", "lr"], columns="norm", values="time_per_step_ms")
        ms[net] = t
    timing = TIMING if TIMING in ms else _nets_in(sel)[0]
    t = ms[timing]
    ratio = (t["BN"] / t["WN"]).dropna().to_numpy() if {"BN", "WN"} <= set(t) else np.array([])
    others = "; ".join(f"{n}: BN {m['BN'].mean():.2f} ms, WN {m['WN'].mean():.2f} ms "
                       f"(ratio {float((m['BN'] / m['WN']).mean()):.2f})"
                       for n, m in ms.items() if n != timing and {"BN", "WN"} <= set(m))
    parts.append(stats.effect_verdict(
        f"cost per step ({timing})", f"{timing}: BN's / WN's training time per update > 1", ratio, "ratio",
        "reproduced if the CI is above 1",
        "BN takes {effect:.2f}x WN's time per update (95% CI [{lo:.2f}, {hi:.2f}], n={n} seed x rate pairs); "
        + (f"BN {t['BN'].mean():.2f} ms, WN {t['WN'].mean():.2f} ms per update" if {"BN", "WN"} <= set(t) else "")
        + (f". For comparison, {others}." if others else "."), above=1.0))

    align = _alignment(curves)
    if len(align):
        plain = align[align["norm"] == "plain"].groupby("seed")["ratio"].mean()
        parts.append(stats.effect_verdict(
            "noise parallel to w", "plain: mean |cos(gradient noise, w)| / chance level > 1", plain.to_numpy(),
            "ratio", "reproduced if the CI is above 1",
            "In the plain net, minibatch gradient noise is {effect:.2f}x as aligned with the unit's weight "
            "vector as a random direction is (95% CI [{lo:.2f}, {hi:.2f}], n={n}; mean over evaluations after "
            "step 0); under WN the gradient with respect to v is orthogonal to v, so this component is removed "
            f"(WN's ratio {align[align['norm'] == 'WN']['ratio'].mean():.2g}).", above=1.0))
    return parts


def _budget(df: pd.DataFrame) -> str:
    return str(df["budget"].iloc[0])


def _alignment(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """|cos(noise, w)| relative to a random direction, per arm, seed and evaluation (step > 0)."""
    mon = curves.get("monitor")
    if mon is None or "noise_cos" not in mon:
        return pd.DataFrame(columns=["arm", "seed", "step", "norm", "ratio"])
    mon = mon[mon["step"] > 0].copy()
    mon["norm"] = mon["arm"].str.split(" ").str[1]
    mon["ratio"] = mon["noise_cos"] / mon["random_cos"]
    return mon


def tables(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    sel = _selected(df, curves)
    rows = []
    for net in _nets_in(sel):
        for norm in ORDER:
            g = sel[(sel["net"] == net) & (sel["norm"] == norm)]
            if g.empty:
                continue
            err = g["test_err_pp"].dropna()
            lo, hi = stats.bootstrap_ci(err)
            rows.append({
                "net": net, "arm": norm, "Adam lr": g["lr"].iloc[0], "updates": int(g["steps"].max()),
                "seeds": len(g), "diverged": int((g["status"] != "ok").sum()),
                "test error % (mean)": err.mean(), "std": err.std(ddof=1), "95% CI": f"[{lo:.2f}, {hi:.2f}]",
                "epoch-1 train loss": g["epoch1_loss"].mean(), "final train loss": g["train_loss"].mean(),
                "ms / update": g["time_per_step_ms"].mean(),
            })
    lab = _label(df)
    grid = lab.groupby(["net", "norm", "lr"]).agg(
        seeds=("seed", "count"), final_train_loss=("train_loss", "mean"),
        test_error_pct=("test_err", lambda s: 100 * s.mean()),
        ms_per_update=("time_per_step_ms", "mean")).reset_index()
    lrs = chosen(df)
    grid["chosen"] = [lrs.get((n, m)) == lr for n, m, lr in zip(grid["net"], grid["norm"], grid["lr"])]
    grid["norm"] = pd.Categorical(grid["norm"], ORDER)
    return {"final metrics (each arm at its chosen learning rate)": pd.DataFrame(rows),
            "learning-rate grid": grid.sort_values(["net", "norm", "lr"])}


def figures(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict:
    sel = _selected(df, curves)
    main_net = MAIN[_budget(df)]
    keep = set(zip(sel["arm"], sel["seed"]))
    ev = curves["eval"]
    ev = ev[[(a, s) in keep for a, s in zip(ev["arm"], ev["seed"])]].copy()
    ev["net"], ev["norm"] = ev["arm"].str.split(" ").str[0], ev["arm"].str.split(" ").str[1]
    ev = ev[(ev["step"] > 0) & (ev["net"] == main_net)]
    fig, (a1, a2) = plots.figure(2)
    plots.curves(a1, ev, "epoch", "train_loss", "norm", "epoch", "training loss (nats, mean over the epoch)",
                 f"Training loss ({main_net})", logy=True, hue_order=ORDER)
    ev["test_err_pct"] = 100 * (1 - ev["test_acc"])
    plots.curves(a2, ev, "epoch", "test_err_pct", "norm", "epoch", "test error (%)", f"Test error ({main_net})",
                 hue_order=ORDER)
    a2.set_ylim(bottom=0)
    plots.caption(fig, plots.BAND_LABEL + "; each arm at its chosen Adam learning rate")

    nets = _nets_in(sel)
    fig2, axes = plots.figure(1 + len(nets), width=4.5)
    plots.points(axes[0], sel[sel["net"] == main_net], "norm", "test_err_pp", "", "final test error (%)",
                 f"Final test error ({main_net})", order=ORDER)
    lab = _label(df)
    for ax, net in zip(axes[1:], nets):
        plots.points(ax, lab[lab["net"] == net], "norm", "time_per_step_ms", "", "time per update (ms)",
                     f"Cost per update ({net})", order=ORDER)
    plots.caption(fig2, "grey: one trial; red: mean with bootstrap 95% CI; cost: median step time of every "
                  "trial (all rates), training step only")

    out = {"training_curves": fig, "test_error_and_cost": fig2}
    mon = _alignment(curves)
    mon = mon[[(a, s) in keep for a, s in zip(mon["arm"], mon["seed"])]]
    if len(mon):
        steps_per_epoch = ev["step"].max() / ev["epoch"].max()
        mon = mon.assign(epoch=mon["step"] / steps_per_epoch)
        fig3, (c1,) = plots.figure(1, width=6.5)
        plots.curves(c1, mon, "epoch", "ratio", "norm", "epoch", "|cos(noise, w)| / random direction's",
                     f"Gradient noise parallel to the weights ({main_net})", hue_order=ORDER)
        c1.axhline(1.0, color="0.3", linestyle=":", linewidth=1)
        c1.legend(title=None, fontsize="small", loc="center right")
        plots.caption(fig3, "noise: gradient on a fifth of the batch minus the batch's, per unit; 1 (dotted) = "
                      "chance. WN's gradient w.r.t. v is orthogonal to v (0); " + plots.BAND_LABEL)
        out["noise_alignment"] = fig3
    return out


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
