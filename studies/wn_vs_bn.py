"""Weight normalization vs batch normalization (Salimans & Kingma 2016).

Regime. The paper's claims are about optimization speed and per-step cost of
four parameterizations trained with Adam at batch 100: plain, batch norm
(BN), weight norm with data-dependent init (WN), and WN + mean-only batch
norm (WN+MOBN). At the `quick` budget we train a 3-hidden-layer ReLU MLP
(784-256-256-256-10) on mnist5k (4,000 train / 1,000 test digits) for 15
epochs (600 updates). Every arm starts from the same He-normal weights (for WN
the direction v; g and b are then set by the data-dependent init on one batch
of 100 training examples, as in the paper). The convnet runs at `full`.

Fair learning rates. Each arm is trained at every Adam learning rate of a
small grid ({1e-3, 3e-3} per update, constant), and each arm's verdict uses the
rate with the lowest mean *training* loss at the end (selection never looks at
test data). The grid and every rate's result are in the second table.

Verdict (computed from the records, paired by seed):
(a) early training: plain's minus WN's training loss over the first epoch
    (mean minibatch loss of epoch 1) > 0;
(b) WN+MOBN's final test error minus BN's < 0.5 percentage points
    (non-inferiority margin: 5 test digits of 1,000);
(c) time per update: BN / WN > 1 (median wall-clock time of a training step,
    evaluation excluded). Timings come from whatever machine ran the trials,
    with other trials running beside them; the ratio is paired within a seed,
    and the arms of one seed run next to each other.
(d) the notes' explanation: in the plain net, minibatch gradient noise is more
    parallel to each unit's weight vector than chance (mean |cos(noise, w)| over
    units, layers and evaluations, divided by the same for a random direction,
    > 1; noise = gradient on a sub-batch of 20 minus the gradient on a fixed
    batch of 100, monitor `noise_alignment`). WN's gradient with respect to v is
    orthogonal to v, which removes that component.

Full budget: the paper's task, CIFAR-10 (per-channel standardized, no
augmentation) with oplab's convnet (6 conv layers of 64, 64, 128, 128, 256, 256
channels, 2x2 max-pooling after every second, global average pooling), Adam at
batch 100, 100 epochs with the learning rate decayed linearly to 0 over the
second half (the authors' code: 200 epochs, decay over the last 100; their
network is larger and uses dropout and input noise).
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
LRS = {"smoke": [1e-3, 3e-3], "quick": [1e-3, 3e-3], "full": [1e-3, 3e-3]}
MARGIN_PP = 0.5  # non-inferiority margin for WN+MOBN vs BN, percentage points of test error

PAPER = """
| CIFAR-10 test error (Salimans & Kingma 2016, Fig. 3 / sec. 5.1; status: secondary) | paper |
|---|---|
| plain parameterization | 8.43 % |
| batch norm | 8.05 % |
| weight norm | 8.46 % |
| weight norm + mean-only batch norm | 7.31 % |
| BN time per step vs WN (same paper, sec. 5.1; secondary) | BN about 16 % slower |

Our quick budget is a different regime (MLP on 4,000 MNIST digits, 600 updates), so compare
directions and orderings, not the error levels.
"""


def _setup(budget: str) -> tuple[DataConfig, ModelConfig, int, str]:
    if budget == "smoke":
        return DataConfig("mnist5k", n_train=200, n_test=200), ModelConfig("mlp", 2, 32), 2, "constant"
    if budget == "quick":
        return DataConfig("mnist5k"), ModelConfig("mlp", 3, 256), 15, "constant"
    if budget == "full":
        return DataConfig("cifar10"), ModelConfig("convnet", 6, 64), 100, "linear_decay"
    raise ValueError(f"unknown budget {budget!r}")


def arms(budget: str) -> dict[str, Trial]:
    """One arm per (parameterization, learning rate) of the grid."""
    data, model, epochs, schedule = _setup(budget)
    out = {}
    for label, norm in NORMS.items():
        for lr in LRS[budget]:
            out[f"{label} lr={lr:g}"] = Trial(
                data=data, model=model, init=InitConfig("he"), norm=NormConfig(norm),
                optim=OptimConfig("adam", lr=lr, schedule=schedule), epochs=epochs,
                batch_size=50 if budget == "smoke" else 100, monitors=("noise_alignment",),
            )
    return out


def _label(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["norm"] = df["cfg.norm.name"].map(LABELS)
    df["lr"] = df["cfg.optim.lr"]
    return df


def chosen(df: pd.DataFrame) -> dict[str, float]:
    """Per parameterization, the grid rate with the lowest mean final training loss
    (a diverged trial counts as infinite loss)."""
    d = _label(df)
    d["fit"] = d["train_loss"].where(d["status"] == "ok", np.inf) if "train_loss" in d else np.inf
    best = d.groupby(["norm", "lr"])["fit"].mean().reset_index()
    return {n: float(g.sort_values("fit")["lr"].iloc[0]) for n, g in best.groupby("norm")}


def _selected(df: pd.DataFrame) -> pd.DataFrame:
    d = _label(df)
    lrs = chosen(df)
    return d[d.apply(lambda r: lrs.get(r["norm"]) == r["lr"], axis=1)].copy()


def _first_epoch(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    ev = curves["eval"]
    e1 = ev[np.isclose(ev["epoch"], 1.0)][["arm", "seed", "train_loss"]]
    return e1.rename(columns={"train_loss": "epoch1_loss"})


def _with_epoch1(df: pd.DataFrame, curves) -> pd.DataFrame:
    sel = _selected(df)
    return sel.merge(_first_epoch(df, curves), on=["arm", "seed"], how="left")


def verdict(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> list[stats.Verdict]:
    sel = _with_epoch1(df, curves)
    sel["test_err_pp"] = 100 * sel.get("test_err", np.nan)
    lrs = chosen(df)
    by_norm = sel.set_index("norm")

    def paired(col: str, a: str, b: str) -> np.ndarray:
        return stats.paired_differences(sel, col, a, b, arm="norm")

    early = paired("epoch1_loss", "plain", "WN")
    v1 = stats.effect_verdict(
        "early training", "plain's minus WN's mean training loss over epoch 1 > 0", early, "nats",
        "reproduced if the CI is above 0",
        "Over the first epoch WN's training loss is {effect:.3f} nats lower than plain's "
        "(95% CI [{lo:.3f}, {hi:.3f}], n={n} seeds; lr plain " + f"{lrs.get('plain', float('nan')):g}, "
        f"WN {lrs.get('WN', float('nan')):g}).", above=0.0)

    gap = paired("test_err_pp", "WN+MOBN", "BN")
    v2 = stats.effect_verdict(
        "WN+MOBN vs BN", f"WN+MOBN's minus BN's final test error < {MARGIN_PP} pp", gap,
        "percentage points", f"reproduced if the CI is below +{MARGIN_PP} pp",
        "WN+MOBN's test error minus BN's is {effect:+.2f} pp (95% CI [{lo:+.2f}, {hi:+.2f}], n={n}); "
        f"BN {by_norm.loc[['BN'], 'test_err_pp'].mean():.2f} %, "
        f"WN+MOBN {by_norm.loc[['WN+MOBN'], 'test_err_pp'].mean():.2f} %.", below=MARGIN_PP)

    t = sel.pivot_table(index="seed", columns="norm", values="time_per_step_ms")
    ratio = (t["BN"] / t["WN"]).dropna().to_numpy() if {"BN", "WN"} <= set(t) else np.array([])
    v3 = stats.effect_verdict(
        "cost per step", "BN's / WN's training time per update > 1", ratio, "ratio",
        "reproduced if the CI is above 1",
        "BN takes {effect:.2f}x WN's time per update (95% CI [{lo:.2f}, {hi:.2f}], n={n}); "
        f"BN {t['BN'].mean():.2f} ms, WN {t['WN'].mean():.2f} ms per update." if {"BN", "WN"} <= set(t)
        else "no timings", above=1.0)
    align = _alignment(curves)
    plain = align[align["norm"] == "plain"].groupby("seed")["ratio"].mean()
    v4 = stats.effect_verdict(
        "noise parallel to w", "plain: mean |cos(gradient noise, w)| / chance level > 1", plain.to_numpy(),
        "ratio", "reproduced if the CI is above 1",
        "In the plain net, minibatch gradient noise is {effect:.2f}x as aligned with the unit's weight "
        "vector as a random direction is (95% CI [{lo:.2f}, {hi:.2f}], n={n}; mean over evaluations after "
        "step 0); under WN the gradient with respect to v is orthogonal to v, so this component is removed "
        f"(WN's ratio {align[align['norm'] == 'WN']['ratio'].mean():.2g}).", above=1.0)
    return [v1, v2, v3, v4]


def _alignment(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """|cos(noise, w)| relative to a random direction, per arm, seed and evaluation (step > 0)."""
    mon = curves["monitor"]
    mon = mon[mon["step"] > 0].copy()
    mon["norm"] = mon["arm"].str.split(" ").str[0]
    mon["ratio"] = mon["noise_cos"] / mon["random_cos"]
    return mon


def tables(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    sel = _with_epoch1(df, curves)
    rows = []
    for norm in ORDER:
        g = sel[sel["norm"] == norm]
        if g.empty:
            continue
        err = 100 * g["test_err"].dropna() if "test_err" in g else pd.Series(dtype=float)
        lo, hi = stats.bootstrap_ci(err)
        rows.append({
            "arm": norm, "Adam lr": g["lr"].iloc[0], "seeds": len(g),
            "diverged": int((g["status"] != "ok").sum()),
            "test error % (mean)": err.mean(), "std": err.std(ddof=1), "95% CI": f"[{lo:.2f}, {hi:.2f}]",
            "epoch-1 train loss": g["epoch1_loss"].mean(), "final train loss": g["train_loss"].mean(),
            "ms / update": g["time_per_step_ms"].mean(),
        })
    grid = _label(df).groupby(["norm", "lr"]).agg(
        seeds=("seed", "count"), final_train_loss=("train_loss", "mean"),
        test_error_pct=("test_err", lambda s: 100 * s.mean())).reset_index()
    grid["chosen"] = grid.apply(lambda r: chosen(df).get(r["norm"]) == r["lr"], axis=1)
    grid["norm"] = pd.Categorical(grid["norm"], ORDER)
    return {"final metrics (each arm at its chosen learning rate)": pd.DataFrame(rows),
            "learning-rate grid": grid.sort_values(["norm", "lr"])}


def figures(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict:
    sel = _selected(df)
    keep = set(zip(sel["arm"], sel["seed"]))
    ev = curves["eval"]
    ev = ev[[(a, s) in keep for a, s in zip(ev["arm"], ev["seed"])]].copy()
    ev["norm"] = ev["arm"].str.split(" ").str[0]
    ev = ev[ev["step"] > 0]
    fig, (a1, a2) = plots.figure(2)
    plots.curves(a1, ev, "epoch", "train_loss", "norm", "epoch", "training loss (nats, mean over the epoch)",
                 "Training loss", logy=True, hue_order=ORDER)
    ev["test_err_pct"] = 100 * (1 - ev["test_acc"])
    plots.curves(a2, ev, "epoch", "test_err_pct", "norm", "epoch", "test error (%)", "Test error",
                 hue_order=ORDER)
    a2.set_ylim(bottom=0)
    plots.caption(fig, plots.BAND_LABEL + "; each arm at its chosen Adam learning rate")
    fig2, (b1, b2) = plots.figure(2)
    sel["test_err_pct"] = 100 * sel["test_err"]
    plots.points(b1, sel, "norm", "test_err_pct", "", "final test error (%)", "Final test error", order=ORDER)
    plots.points(b2, sel, "norm", "time_per_step_ms", "", "time per update (ms)", "Cost per update",
                 order=ORDER)
    plots.caption(fig2, "grey: one seed; red: mean with bootstrap 95% CI")
    mon = _alignment(curves)
    mon = mon[[(a, s) in keep for a, s in zip(mon["arm"], mon["seed"])]]
    steps_per_epoch = ev["step"].max() / ev["epoch"].max()
    mon = mon.assign(epoch=mon["step"] / steps_per_epoch)
    fig3, (c1,) = plots.figure(1, width=6.5)
    plots.curves(c1, mon, "epoch", "ratio", "norm", "epoch", "|cos(noise, w)| / random direction's",
                 "Gradient noise parallel to the weights", hue_order=ORDER)
    c1.axhline(1.0, color="0.3", linestyle=":", linewidth=1)
    plots.caption(fig3, "noise: sub-batch (20) minus batch (100) gradient per unit; 1 (dotted) = chance. "
                  "WN's gradient w.r.t. v is orthogonal to v (0); " + plots.BAND_LABEL)
    return {"training_curves": fig, "test_error_and_cost": fig2, "noise_alignment": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
