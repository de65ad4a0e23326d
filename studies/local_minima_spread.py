"""Local minima of similar quality in larger networks: the spread of the final loss across random
initializations narrows as a one-hidden-layer net grows (Choromanska, Henaff, Mathieu, Ben Arous &
LeCun 2015; the notes' non-convexity section, as the CS231n notes put it: "if you train a small
network the final loss can display a good amount of variance ... if you train a large network ...
the variance in the final achieved loss will be much smaller").

Regime. Choromanska et al. support their spin-glass analysis with MNIST experiments: one-hidden-layer
ReLU nets of increasing width trained many times from random initializations on MNIST downsampled,
the test losses shown as histograms per width (their text gives the setup; we could not read it
through this project's sources, so PAPER marks those numbers "not found"). At the `quick` budget,
scaled down: mnist5k digits area-averaged to 10 x 10 pixels (`mnist5k`'s `side` option, 100
inputs), the first 2,000 of its 4,000 training digits and all 1,000 test digits; one hidden layer of
4, 8, 16, 32 or 64 ReLU units (PyTorch's default init), softmax cross-entropy; plain SGD at batch
200 for 200 updates (20 epochs) with the `linear_decay` schedule (the rate constant for the first
100 updates, then linearly to 0 at the last). Each seed draws its own init and its own order of
minibatches.

End of training, the same rule for every width. A rate that decays to 0 ends each run where SGD
settles, in whichever basin it has reached: the trial's final full-split training loss and final
test loss are the quality of the minimum it found. The budget is the same for every width; the
table reports the running training loss over the last tenth of training beside the previous tenth
(how far each width still moved in its last 20 updates, its rate near 0: in the committed run the
training loss still fell 2-7% there, most at the widest nets). A width still improving at the end
counts some of its remaining progress as spread; no longer budget checks that yet (Budgets).

Fair rates. SGD's rate is chosen per width from {0.1, 0.2, 0.4, 0.8, 1.6} (per update, losses are
minibatch means) by the lowest mean final full-split training loss on tuning seeds 1000, 1001 (a
diverged trial counts as infinite loss); the page flags a chosen rate at the edge of the grid. A first
exploration on tuning seeds 1000-1007 (outside the records, grid {0.1, 0.3, 1.0}) showed 1.0 sending
most 4- to 16-unit nets to a dead-unit plateau while the widest nets preferred it. The committed run
first used {0.1, 0.2, 0.4, 0.8}: the 16- to 64-unit nets chose 0.8, its top, so the grid was widened
by one level, 1.6, as gradient_noise did (the verdict trials of rates already chosen are unchanged).

The unit of the interval. The spread is a property of a set of seeds, so a single seed has no value
to put a t interval on. The seeds are split into disjoint blocks fixed by their numbers before any
data (`SEEDS_PER_UNIT`: seeds 0-3, 4-7, ... at `quick`; the replication seeds 100-103, ... form blocks
of their own, so the two halves never share a block): per block, the standard deviation SD_b(w) of
the final loss over the block's seeds at each width, and the least-squares slope k_b of ln SD_b(w) on
ln w. Blocks share no seed, so the k_b are independent, and E ln SD_b(w) = ln sigma_w + c with c the
same at every width (for a distribution of the same shape), so the mean of the k_b estimates the
exponent k of spread ~ width^k: a Student t interval over blocks (n counts blocks) has its stated
level. Rejected: (1) one value a seed, its |deviation| from the mean of the other seeds at each width
(a slope a seed, t over seeds): the seeds share the other seeds' means, and when the losses are
bimodal (a good and a bad minimum) the mean moves with the number of bad seeds at each width, for
every seed at once: by simulation with a constant spread its one-sided false-positive rate was 25%,
not 2.5% (`tests/test_local_minima_spread_unit.py` keeps that check, on the blocks); (2) a seed
bootstrap: no guaranteed level at these n. Blocks of 4 cost efficiency (ln of a 4-seed SD is noisy)
but keep 5 blocks in each half of 20 seeds, the least a decisive word needs.

Verdict (one value per block of 4 seeds, Student t over blocks, 95%), fixed before any verdict seed
was run:
(a) the spread of the final test loss falls with width: mean k_b (test loss) < 0;
(b) the spread of the final training loss (the full split, the objective whose minima SGD finds)
    falls with width: mean k_b (training loss) < 0.
A block with a failed trial (diverged, or no finite loss) counts at the threshold (0).
Shown, not judged: the mean final loss per width (the notes: larger nets' minima are also lower),
the standard deviation and interquartile range per width, and the learning curves.

Budgets. `quick`: widths 4-64, 20 verdict + 20 replication seeds a width (10 blocks), 250 trials
with tuning (50,000 updates of nets of at most 7,114 parameters; the committed run's summed trial
time is on the page, measured with the 2-core machine shared by about a dozen processes). No `long`
budget (long = quick): both parts are decided at quick with their halves agreeing; a longer run
(all 4,000 digits, 600 updates, widths up to 128) would address the doubt above, that the widest nets
still improve in the last tenth of training. `full`: all of MNIST
(60,000 digits) at 10 x 10, widths 25-500 (the widths the brief gives for the paper), 40 epochs at
batch 100, 40 + 40 seeds a width in blocks of 8.

Full budget: about 2.9 GPU-hours on one data-centre GPU (440 trials, 10,560,000 updates, 0.639 PFLOP
counted from the arms' models; `python -m studies.local_minima_spread --budget full --replicate
--estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, plots
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial

NAME = "local_minima_spread"
TITLE = "Local minima: the spread of the final loss narrows with width"
CLAIM = ("In larger networks most local minima are of similar quality: across random initializations, the "
         "spread of the final loss of a one-hidden-layer network falls as its hidden layer grows.")
SOURCE = ("Choromanska, Henaff, Mathieu, Ben Arous & LeCun 2015, The Loss Surfaces of Multilayer Networks, "
          "AISTATS, arXiv 1412.0233 (the MNIST experiments); the CS231n notes, Neural Networks Part 1, "
          "'Setting number of layers and their sizes'")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 20, "full": 40}
TUNE = kit.Tune("lr", within=("width",), score="train_loss_full",
                seeds={"smoke": 1, "quick": 2, "full": 2})

LOSSES = {"test": "test_loss", "train": "train_loss_full"}  # the two losses whose spread is judged
SEEDS_PER_UNIT = {"smoke": 2, "quick": 4, "full": 8}  # seeds a block: the parts' independent unit


def _setup(data, widths, steps, batch, lrs, evals=10):
    return {"data": data, "widths": list(widths), "steps": steps, "batch": batch, "lrs": list(lrs),
            "eval_every": max(1, steps // evals)}


SETUP = {
    "smoke": _setup(DataConfig("mnist5k", n_train=200, n_test=100, options={"side": 10}), [4, 16], 10, 50, [0.2],
                    evals=2),
    "quick": _setup(DataConfig("mnist5k", n_train=2000, options={"side": 10}), [4, 8, 16, 32, 64], 200, 200,
                    [0.1, 0.2, 0.4, 0.8, 1.6]),
    "full": _setup(DataConfig("mnist", options={"side": 10}), [25, 50, 100, 250, 500], 24000, 100,
                   [0.05, 0.1, 0.2, 0.4]),
}

PAPER = """
| source | what it says | status |
|---|---|---|
| Choromanska et al. 2015, abstract | "for large-size decoupled networks the lowest critical values of the random loss function form a layered structure and they are located in a well-defined band lower-bounded by the global minimum. The number of local minima outside that band diminishes exponentially with the size of the network"; SGD converges to "the band of low critical points", "local minima of high quality measured by the test error"; for small networks "poor quality local minima have non-zero probability of being recovered" | verified (abstract, arXiv 1412.0233 v3) |
| Choromanska et al. 2015, MNIST experiments | one-hidden-layer nets of growing width on downsampled MNIST, many runs each; test-loss histograms per width that narrow as the width grows | approx. (the study brief's summary; the section's text, input size, runs per width, optimizer and figure values were not found through this project's sources) |
| CS231n notes, Neural Networks Part 1 | "if you train a small network the final loss can display a good amount of variance ... if you train a large network you'll start to find many different solutions, but the variance in the final achieved loss will be much smaller" | verified (cs231n/cs231n.github.io, neural-networks-1.md) |

Neither source gives a number for our setting; the tables show ours: the spread per width and the
exponent of spread ~ width^k.
"""  # noqa: E501


def arms(budget: str) -> dict[str, kit.Arm]:
    """One arm per (width, learning rate of the grid)."""
    s, out = SETUP[budget], {}
    for w in s["widths"]:
        for lr in s["lrs"]:
            trial = Trial(data=s["data"], model=ModelConfig("mlp", 1, w, "relu"),
                          optim=OptimConfig("sgd", lr=lr, schedule="linear_decay"), steps=s["steps"],
                          batch_size=s["batch"], eval_every=s["eval_every"], log_every=s["eval_every"])
            out[f"width={w} lr={lr:g}"] = kit.Arm(trial, {"width": w, "lr": lr})
    return out


def block_of(seed: int, size: int) -> int:
    """The block a seed belongs to, named by its first seed: seeds size*b .. size*b + size - 1 (fixed by
    the seed numbers, before any data; the replication seeds, each + 100, form blocks of their own)."""
    return seed // size * size


def block_slopes(t: pd.DataFrame, size: int) -> pd.DataFrame:
    """One row per block of `size` seeds (column `seed`: the block's first seed): for each loss the
    standard deviation over the block's seeds at every width (`sd_<loss>@<width>`) and `k_<loss>`, the
    least-squares slope of ln SD on ln width; `seeds`, the block's seeds; status "diverged" where one of
    its trials failed (a diverged trial, or no finite loss), so that the part counts it at its threshold."""
    t = t.assign(_block=[block_of(int(s), size) for s in t["seed"]])
    widths = sorted(t["width"].unique())
    rows = []
    for b, g in t.groupby("_block", sort=True):
        row = {"seed": int(b), "seeds": int(g["seed"].nunique()), "status": "ok"}
        for name, value in LOSSES.items():
            v = pd.to_numeric(g[value], errors="coerce").astype(float) if value in g else pd.Series(np.nan, g.index)
            bad = (g["status"] != "ok") | ~np.isfinite(v)
            if bad.any():
                row["status"] = "diverged"
            sd = {w: float(v[(g["width"] == w) & ~bad].std(ddof=1)) for w in widths}
            row.update({f"sd_{name}@{w}": x for w, x in sd.items()})
            x = np.log(np.array(widths, dtype=float))
            y = np.log(np.array([sd[w] for w in widths]))
            ok = np.isfinite(y)
            row[f"k_{name}"] = float(np.polyfit(x[ok], y[ok], 1)[0]) if ok.sum() >= 2 else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def measure(df, curves, ctx):
    """Per trial: `block`, the first seed of its block of seeds (`SEEDS_PER_UNIT`), and `moved`, the
    running training loss over the last tenth of training relative to the tenth before (1 = flat).
    The parts' values, one a block, are `block_slopes` of this table."""
    t = df.copy()
    t["block"] = [block_of(int(s), SEEDS_PER_UNIT[ctx.budget]) for s in t["seed"]]
    ev = curves.get("eval")
    moved = {}
    if ev is not None and "train_loss_running" in ev:
        for (arm, seed), g in ev.dropna(subset=["train_loss_running"]).groupby(["arm", "seed"]):
            loss = g.sort_values("step")["train_loss_running"].to_numpy(dtype=float)
            moved[(arm, seed)] = loss[-1] / loss[-2] if len(loss) >= 2 else np.nan
    t["moved"] = [moved.get(k, np.nan) for k in zip(t["arm"], t["seed"])]
    return t


def verdict(t, ctx):
    size = SEEDS_PER_UNIT[ctx.budget]
    b = block_slopes(t, size)
    short = int((b["seeds"] < size).sum()) if len(b) else 0
    note = (f"The independent unit is a block of {size} seeds (n counts blocks; seeds {size}b .. {size}b + "
            f"{size - 1} form block b, named by its first seed): per block, the standard deviation of the final loss "
            f"over its seeds at each width, and the slope of ln SD on ln(width) over widths "
            f"{', '.join(str(w) for w in ctx.setup['widths'])}, each width at its chosen learning rate."
            + (f" {short} blocks have fewer than {size} seeds." if short else ""))
    common = dict(below=0.0, unit="exponent", fmt=".3f", note=note)
    return [kit.mean(b, "k_test", part="(a) spread of the final test loss falls with width",
                     what=f"per block of {size} seeds, slope of ln(SD of the final test loss) on ln(width)",
                     claim="the spread of the final test loss across seeds falls with width: exponent k of "
                           "SD ~ width^k < 0", **common),
            kit.mean(b, "k_train", part="(b) spread of the final training loss falls with width",
                     what=f"per block of {size} seeds, slope of ln(SD of the final training loss) on ln(width)",
                     claim="the spread of the final full-split training loss across seeds falls with width: "
                           "exponent k of SD ~ width^k < 0", **common)]


def spread_table(t: pd.DataFrame, size: int) -> pd.DataFrame:
    """Per width: seeds, failed trials, and for each loss the mean, the standard deviation over all seeds,
    the interquartile range, the geometric mean over blocks of the blocks' standard deviations (the parts'
    quantity), min and max."""
    blocks = block_slopes(t, size)
    rows = []
    for w, g in t.groupby("width", sort=True):
        ok = g[g["status"] == "ok"]
        row = {"width": int(w), "lr (chosen)": float(g["lr"].iloc[0]), "seeds": g["seed"].nunique(),
               "failed": int((g["status"] != "ok").sum())}
        for name, value in LOSSES.items():
            x = ok[value].astype(float)
            row.update({f"{name} loss mean": x.mean(), f"{name} SD": x.std(ddof=1),
                        f"{name} IQR": x.quantile(0.75) - x.quantile(0.25),
                        f"{name} SD, geo. mean over blocks": float(np.exp(np.log(blocks[f"sd_{name}@{w}"]).mean())),
                        f"{name} min": x.min(), f"{name} max": x.max()})
        row["test accuracy mean"] = ok["test_acc"].astype(float).mean() if "test_acc" in ok else np.nan
        row["last tenth / previous tenth, running training loss (mean)"] = ok["moved"].astype(float).mean()
        rows.append(row)
    return pd.DataFrame(rows)


def tables(t, curves, ctx):
    size = SEEDS_PER_UNIT[ctx.budget]
    per_block = block_slopes(t, size).assign(method="all")
    k = pd.concat([kit.summary(per_block, col, ["method"], name="exponent k", fmt=".3f").assign(loss=name)
                   for col, name in (("k_test", "test loss"), ("k_train", "training loss (full split)"))],
                  ignore_index=True)
    k = k[["loss"] + [c for c in k.columns if c not in ("loss", "method")]].rename(columns={"seeds": "blocks"})
    return {"final losses per width: mean and spread over seeds (each width at its chosen rate)":
            spread_table(t, size),
            f"exponent k of SD ~ width^k, one value a block of {size} seeds (the parts' values)": k,
            "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, show={"test loss": "test_loss"})}


def figures(t, curves, ctx):
    widths = ctx.setup["widths"]
    order = [str(w) for w in widths]
    tt = t[t["status"] == "ok"].assign(w=t["width"].astype(str))
    fig, (a1, a2, a3) = plots.figure(3, width=4.6)
    plots.points(a1, tt, "w", "test_loss", "hidden units", "final test loss (nats, log scale)",
                 "Final test loss, one point a seed", order=order)
    a1.set_yscale("log")
    sp = spread_table(t, SEEDS_PER_UNIT[ctx.budget])
    for name, style in (("test", "o-"), ("train", "s--")):
        a2.plot(sp["width"], sp[f"{name} SD"], style, color="C0" if name == "test" else "C1",
                label=f"{name} loss: SD over seeds")
        a2.plot(sp["width"], sp[f"{name} SD, geo. mean over blocks"], style, color="C0" if name == "test" else "C1",
                alpha=0.45, label=f"{name} loss: blocks' SD (geo. mean)")
    a2.set_xscale("log", base=2)
    a2.set_yscale("log")
    a2.set_xticks(widths, [str(w) for w in widths])
    a2.set_xlabel("hidden units (log scale)")
    a2.set_ylabel("spread of the final loss (nats, log scale)")
    a2.set_title("Spread across seeds")
    a2.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.2))  # below: not over the points
    plots.parts(a3, verdict(t, ctx), ["(a) test", "(b) train"], "exponent k of spread ~ width^k",
                "The parts: slope of ln spread", fmt=".3f", legend="below")
    plots.caption(fig, plots.POINTS_LABEL + "; left: each width at its chosen rate. Middle: the standard deviation "
                  "over all seeds, and the geometric mean over blocks of seeds of each block's SD (the parts' "
                  "quantity). Right: per block the slope of ln SD on ln(width) (grey), their mean and 95% t "
                  "interval; reproduced below the dashed line (0)")

    ev = curves["eval"].dropna(subset=["train_loss_running"]).copy()
    ev = ev.merge(t[["arm", "seed"]], on=["arm", "seed"])  # the chosen arms only
    ev["hidden units"] = ev["width"].astype(str)
    fig2, (b1, b2) = plots.figure(2)
    plots.curves(b1, ev, "step", "train_loss_running", "hidden units", "update",
                 "running training loss (nats, log scale)", "Training loss", logy=True, hue_order=order)
    plots.curves(b2, ev, "step", "test_loss", "hidden units", "update", "test loss (nats, log scale)", "Test loss",
                 logy=True, hue_order=order)
    b1.get_legend().remove()
    b2.legend(title="hidden units", fontsize="small", loc="upper left", bbox_to_anchor=(1.02, 1.0))
    half = ctx.setup["steps"] // 2
    for ax in (b1, b2):
        ax.axvline(half, color="0.5", ls=":", lw=1)
    plots.caption(fig2, plots.BAND_LABEL + f"; dotted: update {half}, where the rate starts its linear decay to 0; "
                  "each width at its chosen rate")
    return {"spread_vs_width": fig, "learning_curves": fig2}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
