"""Momentum on a plateau: heavy-ball momentum leaves a wide flat region in fewer updates than
plain SGD at the same learning rate (the notes' sec. 4; Sutskever et al. 2013; Saxe et al. 2013).

Regime. A deep linear network from small init sits on a plateau: with every weight near zero the
output and the gradient of each layer (a product of the other layers' weights) are tiny, so the
loss stays at ln 10 = 2.303 nats for many updates before the weights grow and it falls (Saxe et
al.'s saddle at the origin). At the `quick` budget: mnist5k (4,000 training digits), an MLP of 4
linear hidden layers of 32 units and a linear read-out, every weight N(0, 0.05^2), biases 0;
softmax cross-entropy; minibatches of 100; 400 updates. Arms: plain SGD and SGD with heavy-ball
momentum 0.9, at one learning rate.

Escape: the first update at which the mean of the last 10 minibatch losses falls below 2.0 nats
(0.3 nats under the plateau's ln 10). A trial that never escapes within the budget, or diverges
before it escapes, counts as the budget plus one (401 updates): censored, which can only shrink
the ratio when plain SGD is the one that never escapes.

The learning rate: one rate for both arms, the level of {0.02, 0.05, 0.1} with the lowest mean final
full-split training loss over both arms on tuning seed 1000 (2 seeds at `full`; a diverged trial
counts as infinite loss; never test data nor verdict seeds). Momentum 0.9 multiplies the step by
up to 1 / (1 - 0.9) = 10 once the gradient stays steady, so the rate where it diverges comes first:
the grid shows it.

Verdict (one part; 95% interval, one value per seed, arms paired by seed):
(1) plain SGD's / momentum's updates to escape > 1 (t on log ratios); every trial counts, a
    censored one at the budget plus one.

Full budget: the same net family on MNIST (60,000 digits), 8 linear layers of 64 units, N(0,
0.05^2), batch 100, 5,000 updates, same grid.

Full budget: about 0.045 GPU-hours on one data-centre GPU (32 trials, 160,000 updates, 0.0067 PFLOP
counted from the arms' models; `python -m studies.momentum_plateau --budget full --replicate
--estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "momentum_plateau"
TITLE = "Momentum leaves a plateau sooner"
CLAIM = ("On a wide flat region of the loss (a deep linear net from small init), SGD with heavy-ball momentum "
         "escapes in fewer updates than plain SGD at the same learning rate.")
SOURCE = ("The notes' sec. 4 (plateaus and momentum); Sutskever, Martens, Dahl & Hinton 2013, On the "
          "importance of initialization and momentum, ICML; Saxe, McClelland & Ganguli 2013, arXiv 1312.6120 "
          "(the plateau of deep linear nets from small init)")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "full": 5}
TUNE = kit.Tune("lr", within=("task",), score="train_loss_full", seeds={"smoke": 1, "quick": 1, "full": 2})

MOMENTA = {"plain SGD": 0.0, "momentum 0.9": 0.9}
ORDER = list(MOMENTA)
ESCAPE_LOSS = 2.0  # nats; the plateau is ln 10 = 2.303
WINDOW = 10  # minibatch losses averaged for the escape test


def _setup(data, depth, width, steps, lrs, sigma=0.05, batch=100):
    return dict(data=data, depth=depth, width=width, steps=steps, lrs=lrs, sigma=sigma, batch=batch)


SETUP = {"smoke": _setup(DataConfig("mnist5k", n_train=300, n_test=200), 3, 16, 30, [0.05]),
         "quick": _setup(DataConfig("mnist5k"), 4, 32, 400, [0.02, 0.05, 0.1]),
         "full": _setup(DataConfig("mnist"), 8, 64, 5000, [0.02, 0.05, 0.1])}

PAPER = """
| source | what it reports | here (quick) |
|---|---|---|
| Saxe et al. 2013 (arXiv 1312.6120) | deep linear nets from small random init: long plateaus, then a rapid drop (learning curves) | 4 linear layers of 32, N(0, 0.05^2): a plateau at ln 10 |
| Sutskever et al. 2013 | momentum 0.9-0.999 with good init speeds up training of deep nets (curves and tables of final errors, not plateau times) | heavy ball 0.9 vs none, same lr |

No paper reports updates-to-escape for this setting: the numbers here are ours only.
"""  # noqa: E501


def arms(budget: str) -> dict[str, kit.Arm]:
    s, out = SETUP[budget], {}
    for label, mom in MOMENTA.items():
        for lr in s["lrs"]:
            trial = Trial(data=s["data"], model=ModelConfig("mlp", s["depth"], s["width"], "linear"),
                          init=InitConfig("normal", {"sigma": s["sigma"]}),
                          optim=OptimConfig("sgd", lr=lr, momentum=mom),
                          steps=s["steps"], batch_size=s["batch"], eval_every=max(1, s["steps"] // 10))
            out[f"{label} lr={lr:g}"] = kit.Arm(trial, {"task": "plateau", "optimizer": label, "lr": lr})
    return out


def escape_step(steps: np.ndarray, losses: np.ndarray, never: int) -> int:
    """The first update at which the mean of the last WINDOW minibatch losses is below ESCAPE_LOSS
    (`never` if it does not happen)."""
    if len(losses) < WINDOW:
        return never
    smooth = np.convolve(losses, np.ones(WINDOW) / WINDOW, mode="valid")
    hit = np.flatnonzero(smooth < ESCAPE_LOSS)
    return int(steps[hit[0] + WINDOW - 1]) if len(hit) else never


def _smoothed(curves) -> pd.DataFrame:
    log = curves["log"].sort_values(["arm", "seed", "step"])
    return log.assign(loss_smooth=log.groupby(["arm", "seed"])["batch_loss"].transform(
        lambda s: s.rolling(WINDOW, min_periods=1).mean()))


def measure(df, curves, ctx):
    """Per trial: `escape_updates` (censored at the budget plus one) and `escaped` (0/1)."""
    never = ctx.setup["steps"] + 1
    t = df.copy()
    log = curves.get("log")
    esc = {}
    if log is not None:
        for (arm, seed), g in log.sort_values("step").groupby(["arm", "seed"]):
            esc[(arm, seed)] = escape_step(g["step"].to_numpy(), g["batch_loss"].to_numpy(float), never)
    t["escape_updates"] = [esc.get((a, s), never) for a, s in zip(t["arm"], t["seed"])]
    t["escaped"] = (t["escape_updates"] < never).astype(float)
    return t


def verdict(t, ctx):
    never = ctx.setup["steps"] + 1
    return [kit.ratio(t, "escape_updates", {"optimizer": "plain SGD"}, {"optimizer": "momentum 0.9"},
                      part="(1) updates to escape", above=1.0,
                      claim=f"plain SGD's / momentum's updates until the mean of {WINDOW} minibatch losses < "
                            f"{ESCAPE_LOSS:g} nats > 1",
                      note=f"A trial that never escapes (or diverges first) counts as {never} updates; escaped: "
                           + ", ".join(f"{k} {int((v < never).sum())}/{len(v)}"
                                       for k, v in t.groupby("optimizer")["escape_updates"]) + ".")]


def tables(t, curves, ctx):
    order = {"optimizer": ORDER}
    return {"updates to escape the plateau": kit.summary(
                t, "escape_updates", ["optimizer"], name="updates to escape", order=order,
                extra={"escaped (fraction)": "escaped", "SGD lr (chosen)": "lr",
                       "final train loss (full split)": "train_loss_full", "final test accuracy": "test_acc"}),
            "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, order=order)}


def figures(t, curves, ctx):
    sm = _smoothed(curves)
    fig, (ax, ax2) = plots.figure(2)
    plots.curves(ax, sm, "step", "loss_smooth", "optimizer", "update (minibatches of 100)",
                 f"training loss, mean of last {WINDOW} minibatches (nats)", "Leaving the plateau", hue_order=ORDER)
    ax.axhline(ESCAPE_LOSS, color="0.4", ls=":", lw=1)
    ax.axhline(np.log(10), color="0.7", ls="--", lw=1)
    plots.points(ax2, t, "optimizer", "escape_updates", "", "updates to escape", "Updates to escape", order=ORDER)
    plots.caption(fig, f"left: {plots.BAND_LABEL}; dotted: escape at {ESCAPE_LOSS:g} nats; dashed: ln 10. right: "
                  + plots.POINTS_LABEL + "; both arms at the chosen learning rate")
    return {"plateau": fig}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
