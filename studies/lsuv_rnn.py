"""LSUV extended to a recurrent net, against orthogonal and Xavier init on a long-memory task.

Background. LSUV (Mishkin & Matas 2015, arXiv 1511.06422, Algorithm 1) is defined for feed-forward
nets: orthonormal weights, then, layer by layer on one minibatch, each weight rescaled until its
layer's output variance is within tol of 1. The paper has no recurrent net, and the notes say there
is little background on LSUV for RNNs: this study is an open question, not a reproduction, and no
published number applies (PAPER lists the settings it borrows).

Our extension (`rnn_lsuv`, oplab/init_rnn.py, which states and justifies it). An Elman RNN's
pre-activation at step t is a_t = u_t + r_t, the input term u_t = W_xh x_t and the recurrent term
r_t = W_hh h_(t-1), h_t = tanh(a_t), biases 0. Orthonormal start for W_xh, W_hh and the read-out;
then on one batch (the trial's fixed batch of 20 training sequences, apart from the training
order) W_xh is rescaled so that Var(u) = 1/2 and then W_hh, iteratively (h depends on W_hh), so that
Var(r) = 1/2 over steps 1..T-1, each within a relative tol of 0.1 (at most 10 rescalings), so that
Var(a) = 1, LSUV's target, with the unit variance split evenly between the new input and the
memory; the read-out's output variance is then set to 1 (LSUV's own rule; the authors' scripts
include the read-out). Variances are over every element (example, step, unit), LSUV's variance of
the whole output blob. On the temporal-order task the orthogonal start has Var(u) = 0.02 (a one-hot
input picks a unit-norm column of W_xh across 50 units): LSUV multiplies W_xh by about 5, and W_hh
by about 1.15 (its spectral radius 1 -> 1.15-1.16 in the records' tables, tanh's saturation keeping
Var(r) below radius^2 Var(h)). Comparators: `rnn_orthogonal` (W_xh, W_hh, read-out orthogonal, gain 1: Saxe et
al. 2013; Var(a) about 0.1 here) and `rnn_glorot` (all three Glorot-uniform: Glorot & Bengio 2010;
W_hh's spectral radius about 1.07, its norm about 1.9). Each initializer sets every weight of the net,
so the three arms differ only in the init.

Task and training (the temporal-order problem of studies/clipping_cliffs.py: Hochreiter &
Schmidhuber 1997, as in Pascanu et al.'s tempOrder.py; oplab.tasks): the `rnn` model, one tanh layer
of 50 units read out at the last step, 2,000 fixed training and 1,000 fixed test sequences (data
seed 1234, as the clipping study's), SGD at batch 20 with gradient-norm clipping at 1 in every arm, as
in the clipping study, so that an explosion cannot decide the comparison (explosions are still
counted: a minibatch loss above 10x the initial loss, or a non-finite value, in a table). Each init
gets its own learning rate, the grid level with the lowest mean final full-split training loss on
tuning seeds 1000-1001 (never a test metric, never a verdict seed); the page flags a choice at a
grid edge. Equal updates in every arm; LSUV's own cost (a few forwards of one batch) is not counted
in any arm.

Verdict (95% intervals, one value per seed, arms paired by seed; decided before the verdict seeds
were run):
(a) LSUV's variance target on fresh data: the LSUV arm's |Var(a) - 1| on the probe batch (20
    training sequences disjoint from the fitting batch, measured before the first update by the
    `rnn_variance` monitor), geometric mean over seeds (t on logs) < tol = 0.1. The initializer fits
    the two terms, not Var(a): Var(a) = 1 needs the input and recurrent terms uncorrelated on data it
    did not see, and the fitted variances to carry over from one batch of 20 sequences (a term may
    end anywhere within 10% of its target on the fitting batch), so the part can fail; it is measured
    at init, so a trial that diverges later keeps its value.
(b) LSUV vs orthogonal: orthogonal's / LSUV's final test loss (nats) > 1 (superiority, t on log
    ratios). The interval is two-sided: wholly above 1 reads reproduced (LSUV lower), wholly below 1
    not reproduced (LSUV higher), else inconclusive. The direction is the LSUV paper's thesis (LSUV
    at least matches orthonormal init and beats Xavier), fixed before any trial ran.
(c) LSUV vs Xavier: Xavier's / LSUV's final test loss > 1, as (b).
A failed trial (diverged) counts as test loss ln 4 (chance on 4 classes) where that lies on the
not-reproduced side, else at the threshold. Demonstrations (hold by construction, in tables): each
arm's variances and W_hh's spectral radius at init.

What the tuning seeds showed while the budgets were set (tuning seeds only; scans of 100 updates at
length 20, rates 0.1, 0.3, 1, seeds 1000-1001, and of 600 updates at length 40, rates 0.01-1, seed
1000, both with 5,000 training sequences): at length 20 every init learns the task within 100 updates
at its best rate; at length 40 orthogonal (0.1) and Xavier (0.1) reached 0% test error within 600
updates while LSUV stayed at chance, about ln 4, at every rate from 0.01 to 1.

Budgets (compute: trial seconds summed over tuning, verdict and replication seeds, from the records;
the machine was shared with six other runs, load average 10-14 on 2 cores, which inflates them 3-4x).
- smoke: length 10, 10 updates, 200 / 100 sequences, one rate (0.3), 2 seeds: plumbing only.
- quick (about 60 s recorded): length 20, 60 updates a run (mid-learning: at 100 updates every init
  had learned the task on the tuning scan), 4 evaluations, every update logged; grids 0.1, 0.3, 1
  (LSUV, Xavier) and 0.03, 0.1, 0.3 (orthogonal); 5 + 5 seeds. A first quick version (80 updates,
  5,000 training sequences) cost 102 s recorded; it and a first grid of 0.03, 0.1, 0.3 for Xavier,
  whose top edge (0.3) the tuning seeds chose, were replaced (the choice stayed 0.3).
- long (about 6 CPU-minutes recorded): length 40 (the relevant symbols at steps 4-7 and 20-23, the
  answer read at step 39) and 250 updates a run, 5 evaluations; grids 0.03, 0.1, 0.3 (orthogonal,
  Xavier) and 0.03, 0.1, 0.3, 1 (LSUV, at chance at every rate: the tuning seeds chose the bottom of
  0.1, 0.3, 1 by 0.014 nats, so 0.03 was added; 0.1 stayed the choice); 5 + 5 seeds.
- full (not run): length 100, 20,000 updates, 50,000 training and 10,000 test sequences, grids 0.01,
  0.03, 0.1 (orthogonal, Xavier) and 0.03, 0.1, 0.3 (LSUV), unchecked on tuning seeds at that scale.

Full budget: about 0.27 GPU-hours on one data-centre GPU (48 trials, 960,000 updates, 0.038 PFLOP
counted from the arms' models; `python -m studies.lsuv_rnn --budget full --replicate --estimate`
shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from oplab import cli, kit, plots, stats
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "lsuv_rnn"
TITLE = "LSUV for a recurrent net vs orthogonal and Xavier init"
CLAIM = ("LSUV extended to an RNN (orthonormal start, then on one batch the input term's and the recurrent "
         "term's variance each rescaled to 1/2, so the pre-activation has unit variance) meets its variance "
         "target on fresh data, and trains a tanh RNN on the temporal-order task to a lower test loss than "
         "orthogonal and Xavier init, each at its own tuned learning rate.")
SOURCE = ("Mishkin & Matas 2015, All you need is a good init, arXiv 1511.06422 (LSUV, Algorithm 1, feed-forward "
          "nets only); extended here to an Elman RNN; task: Hochreiter & Schmidhuber 1997's temporal order as in "
          "Pascanu, Mikolov & Bengio 2013 (arXiv 1211.5063)")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "long": 5, "full": 5}

TOL, TMAX, INPUT_SHARE = 0.1, 10, 0.5  # LSUV: relative tolerance, rescalings per weight, Var(u)'s share of Var(a)
INITS = {  # arm label -> initializer (oplab.init_rnn)
    "LSUV": InitConfig("rnn_lsuv", {"tol": TOL, "tmax": TMAX, "input_share": INPUT_SHARE}),
    "orthogonal": InitConfig("rnn_orthogonal"),
    "Xavier": InitConfig("rnn_glorot"),
}
ORDER = list(INITS)
THRESHOLD = 1.0  # gradient-norm clipping threshold, every arm (the clipping study's, and Pascanu et al.'s)
HIDDEN, BATCH, DATA_SEED = 50, 20, 1234
CHANCE = float(np.log(4))  # the test loss a failed trial counts as: a uniform guess over the 4 classes
SUCCESS_ERR = 0.01  # a success: final test error below 1% (Pascanu et al.'s criterion)
EXPLODE = 10.0  # an explosion: a minibatch loss above 10x the loss before the first update

SETUP = {  # per budget: sequence length, sizes, updates a run, evaluations a run, log interval, SGD rate grid per init
    "smoke": {"length": 10, "n_train": 200, "n_test": 100, "steps": 10, "evals": 2, "log_every": 1,
              "lrs": {i: [0.3] for i in ORDER}},
    # quick: every init's grid brackets its choice on the tuning seeds (see the docstring's Budgets)
    "quick": {"length": 20, "n_train": 2000, "n_test": 1000, "steps": 60, "evals": 4, "log_every": 1,
              "lrs": {"LSUV": [0.1, 0.3, 1.0], "orthogonal": [0.03, 0.1, 0.3], "Xavier": [0.1, 0.3, 1.0]}},
    # long: LSUV sits at chance at every rate; its grid reaches down to 0.03 (see the docstring's Budgets)
    "long": {"length": 40, "n_train": 2000, "n_test": 1000, "steps": 250, "evals": 5, "log_every": 2,
             "lrs": {"LSUV": [0.03, 0.1, 0.3, 1.0], "orthogonal": [0.03, 0.1, 0.3], "Xavier": [0.03, 0.1, 0.3]}},
    "full": {"length": 100, "n_train": 50_000, "n_test": 10_000, "steps": 20_000, "evals": 20, "log_every": 100,
             "lrs": {"LSUV": [0.03, 0.1, 0.3], "orthogonal": [0.01, 0.03, 0.1], "Xavier": [0.01, 0.03, 0.1]}},
}
# each init its own rate, chosen on tuning seeds by the final full-split training loss
TUNE = kit.Tune("lr", within=("init",), score="train_loss_full")

PAPER = """
| source (status) | there | here |
|---|---|---|
| LSUV, Algorithm 1 (Mishkin & Matas 2015, arXiv 1511.06422) (secondary: the algorithm as summarized in D. Stutz's reading notes, davidstutz.de; the paper itself not read here) | orthonormal init, then per layer rescale W by 1/sqrt(Var) until \\|Var(x_l) - 1\\| < tol; feed-forward nets only | the same rule carried over to an Elman RNN's two weights (input and recurrent term 1/2 each), then its read-out |
| authors' PyTorch port (verified: ducha-aiki/LSUV-pytorch, LSUV.py) | std_tol 0.1 on the std, max_attempts 10; visits nn.Conv2d and nn.Linear only, so an nn.RNN's weights keep their default init | relative tol 0.1 on each term's variance, 10 rescalings a weight; the RNN's weights included |
| LSUV on recurrent nets | none in the paper | this study: an open question, no number to match |
| temporal order, tanh RNN of 50 units, batch 20, clipping threshold 1 (Pascanu et al. 2013, sec. 4.1; verified in studies/clipping_cliffs.py) | lengths 50-250, up to 5M updates, success = < 1% test error | lengths 20 (quick) and 40 (long), 60 / 250 updates |
"""  # noqa: E501


def arms(budget: str) -> dict[str, kit.Arm]:
    """One arm per (init, learning rate of its grid); the rnn_variance monitor runs once, at init."""
    s = SETUP[budget]
    data = DataConfig("temporal_order", options={"length": s["length"], "n_train": s["n_train"],
                                                 "n_test": s["n_test"], "seed": DATA_SEED})
    # the rnn model's own init ("torch") is overwritten: each initializer sets every weight and bias
    model = ModelConfig("rnn", 1, HIDDEN, "tanh", options={"init": "torch"})
    out = {}
    for label, init in INITS.items():
        for lr in s["lrs"][label]:
            trial = Trial(data=data, model=model, init=init,
                          optim=OptimConfig("sgd", lr=lr, clip="norm", clip_threshold=THRESHOLD),
                          steps=s["steps"], batch_size=BATCH, eval_every=max(1, s["steps"] // s["evals"]),
                          log_every=s["log_every"], monitors=("rnn_variance",), monitor_start_only=True)
            out[f"{label} lr={lr:g}"] = kit.Arm(trial, {"init": label, "lr": lr})
    return out


def measure(df, curves, ctx):
    """Per trial: the variances at init on the probe batch (the monitor at step 0) and `a_dev` =
    |Var(a) - 1|; `initial_loss` (test loss at step 0), the largest logged minibatch loss over it,
    `exploded` (above EXPLODE, or the trial did not finish), `success` (finished with test error < 1%),
    test error in %, clipped updates in %."""
    t = df.copy()
    for col in ("rnn_u_var", "rnn_r_var", "rnn_a_var", "rnn_h_last_var", "readout_var", "whh_radius", "whh_norm"):
        t = kit.curve_value(t, curves, "monitor", col, col, at=("step", 0))
    t["a_dev"] = (t["rnn_a_var"] - 1.0).abs()
    ok = t["status"] == "ok"
    t = kit.curve_value(t, curves, "eval", "test_loss", "initial_loss", at=("step", 0))
    t = kit.curve_value(t, curves, "log", "batch_loss", "max_batch_loss", agg="max")
    t["loss_ratio"] = t["max_batch_loss"] / t["initial_loss"]
    t["exploded"] = ((~ok) | (t["loss_ratio"] > EXPLODE)).astype(float)
    t["success"] = (ok & (pd.to_numeric(t["test_err"], errors="coerce") < SUCCESS_ERR)).astype(float)
    t["test_err_pct"] = 100 * pd.to_numeric(t["test_err"], errors="coerce")
    steps = pd.to_numeric(t["steps"], errors="coerce")
    t["clipped_pct"] = 100 * pd.to_numeric(t["clipped_steps"], errors="coerce") / steps.where(steps > 0)
    return t


def verdict(t, ctx):
    lsuv = {"init": "LSUV"}
    loss = dict(unit="ratio", above=1.0, worst=CHANCE, fmt=".3g",
                note=f"A failed trial counts as test loss ln 4 = {CHANCE:.3f} (chance) where that is on the "
                     "not-reproduced side.")
    return [
        kit.mean(t, "a_dev", where=lsuv, below=TOL, scale="log", unit="|Var - 1|", diverged_fails=False,
                 part="(a) LSUV's unit variance on fresh data",
                 what="LSUV, |Var(a) - 1| of the pre-activation on the probe batch at init",
                 claim=f"LSUV: |Var(a) - 1| of the pre-activation over every example, step and unit of a probe "
                       f"batch it was not fitted on, geometric mean over seeds < tol = {TOL:g}",
                 note="Measured before the first update (a trial that diverges later keeps its value)."),
        kit.ratio(t, "test_loss", {"init": "orthogonal"}, lsuv, part="(b) LSUV vs orthogonal",
                  claim="orthogonal's / LSUV's final test loss > 1 (LSUV lower; each at its own tuned rate; "
                        "below 1 reads not reproduced)", **loss),
        kit.ratio(t, "test_loss", {"init": "Xavier"}, lsuv, part="(c) LSUV vs Xavier",
                  claim="Xavier's / LSUV's final test loss > 1 (LSUV lower; each at its own tuned rate; below 1 "
                        "reads not reproduced)", **loss),
    ]


def _rate(g: pd.DataFrame, event: str) -> str:
    k = int(g[event].sum())
    rate, ci = stats.rate_interval(k, len(g))
    return f"{k}/{len(g)} = {rate:.2f} {stats.interval_text(ci, '.2f')}"


def tables(t, curves, ctx):
    order = {"init": ORDER}
    per_arm = kit.summary(t, "test_loss", ["init", "lr"], name="final test loss (nats)", order=order, extra={
        "final test error %": "test_err_pct", "final train loss (full split)": "train_loss_full",
        "clipped updates %": "clipped_pct", "largest minibatch loss / initial loss (mean)": "loss_ratio"})
    cells = [kit.select(t, {"init": i}) for i in per_arm["init"]]
    per_arm.insert(3, f"success (test error < {100 * SUCCESS_ERR:g}%), 95% CI (Clopper-Pearson)",
                   [_rate(g, "success") for g in cells])
    per_arm.insert(4, f"exploded (loss > {EXPLODE:g}x initial, or not finite)", [_rate(g, "exploded") for g in cells])
    g = t.groupby("init", sort=False)
    init = pd.DataFrame({"seeds": g["seed"].nunique(), "Var(u), input term": g["rnn_u_var"].mean(),
                         "Var(r), recurrent term": g["rnn_r_var"].mean(),
                         "Var(a), pre-activation": g["rnn_a_var"].mean(),
                         "|Var(a) - 1| (max over seeds)": g["a_dev"].max(),
                         "Var(h) at the last step": g["rnn_h_last_var"].mean(),
                         "read-out Var": g["readout_var"].mean(), "W_hh spectral radius": g["whh_radius"].mean(),
                         "W_hh spectral norm": g["whh_norm"].mean()}).reset_index()
    init = kit.ordered(init, ["init"], order)
    fit = _fit_report(t)
    return {"final test loss per init (each at its chosen learning rate)": per_arm,
            "tuning seeds: each init's rate grid (chosen by final training loss)":
            kit.tuning_table(ctx, show={"final test error (mean)": "test_err"}, order=order),
            "variances at init on the probe batch, mean over seeds (demonstration, except part a's |Var(a) - 1|)":
            init,
            "LSUV's own report on its fitting batch (mean over seeds)": fit}


def _fit_report(t) -> pd.DataFrame:
    """The rnn_lsuv report stored in each LSUV trial's record: per term, the variance before and
    after and the rescalings used, and W_hh's gain, averaged over the trials."""
    rows = []
    for e in kit.select(t, {"init": "LSUV"})["extra"]:
        rep = (e or {}).get("init") if isinstance(e, dict) else None
        if not rep:
            continue
        for term in rep["terms"] + [{**x, "term": "read-out output"} for x in rep["layers"]]:
            rows.append({"term": term["term"], "target": term["target"], "Var before": term["var_before"],
                         "Var after": term["var"], "rescalings": term["iters"], "converged": float(term["converged"]),
                         "W_hh gain (spectral norm)": rep["whh_gain"]})
    if not rows:
        return pd.DataFrame()
    return pd.DataFrame(rows).groupby("term", sort=False).mean().reset_index()


def figures(t, curves, ctx):
    s = ctx.setup
    ev = curves["eval"].assign(test_err_pct=lambda d: 100 * (1 - d["test_acc"]))
    fig, (a1, a2, a3) = plots.figure(3, width=4.8)
    plots.curves(a1, ev, "step", "test_loss", "init", "update", "test loss (nats, log scale)", "Test loss",
                 logy=True, hue_order=ORDER)
    a1.axhline(CHANCE, color="k", lw=0.8, ls=":")
    plots.curves(a2, ev, "step", "test_err_pct", "init", "update", "test error (%)", "Test error", hue_order=ORDER)
    a2.get_legend().remove()  # the left panel's colours
    parts = verdict(t, ctx)
    plots.parts(a3, parts[1:], ["vs orthogonal", "vs Xavier"], "other init's / LSUV's final test loss",
                "Parts (b) and (c)", logy=True)
    # ticks at powers of 2 only: the default minor labels (0.8, 0.9, 1) collide
    a3.yaxis.set_major_locator(LogLocator(base=2))
    a3.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    a3.yaxis.set_minor_formatter(NullFormatter())
    plots.caption(fig, f"tanh RNN, {HIDDEN} units, temporal order of length {s['length']}, SGD batch {BATCH}, "
                       f"norm clipping at {THRESHOLD:g}, each init at its chosen rate; {plots.BAND_LABEL}; dotted: "
                       "ln 4, chance. Right: per seed, the other init's final test loss over LSUV's (log scale); "
                       "above the dashed line (1) is the claimed side, LSUV lower")

    mon = curves.get("monitor")
    fig2, (b1, b2) = plots.figure(2, width=5.0)
    if mon is not None and "rnn_a_var" in mon:
        m0 = mon[mon["step"] == 0]
        long = pd.concat([pd.DataFrame({"init": m0["init"], "term": name, "variance": m0[col]})
                          for name, col in (("input u", "rnn_u_var"), ("recurrent r", "rnn_r_var"),
                                            ("pre-activation a", "rnn_a_var"))], ignore_index=True)
        plots.theme().stripplot(data=long, x="term", y="variance", hue="init", hue_order=ORDER, dodge=True, size=4,
                                ax=b1)  # the default palette: the colours of the loss curves
        b1.axhline(INPUT_SHARE, color="0.5", lw=0.8, ls="--")
        b1.axhline(1.0, color="k", lw=0.8, ls=":")
        b1.set(yscale="log", xlabel="term of the pre-activation", ylabel="variance at init (probe batch, log scale)",
               title="Variances at init")
        b1.legend(title=None, fontsize="small", loc="lower right")
    a = parts[0]
    plots.judged(b2, a, x=0.0, seeds=True, label="geometric mean", threshold_label=f"threshold tol = {TOL:g}")
    b2.set_xlim(-0.6, 0.9)
    b2.set_xticks([])
    b2.set_ylabel("LSUV: |Var(a) - 1| on the probe batch")
    b2.set_title("(a) LSUV's unit variance on fresh data")
    lo, hi = b2.get_ylim()
    b2.set_ylim(0.0, max(hi, 1.5 * TOL))
    b2.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.04))
    plots.caption(fig2, "Before the first update, on a probe batch of training sequences apart from LSUV's fitting "
                        "batch. Left: each trial's variance of the input term u = W_xh x_t, the recurrent term "
                        f"r = W_hh h_(t-1) and the pre-activation a = u + r (dashed: LSUV's target {INPUT_SHARE:g} "
                        "for each term; dotted: 1 for a). Right: part (a), below the dashed line is the claimed side")

    fig3, (c1, c2) = plots.figure(2, width=5.0)
    plots.points(c1, t, "init", "test_loss", "", "final test loss (nats)", "Final test loss", order=ORDER)
    c1.set_yscale("log")
    c1.axhline(CHANCE, color="k", lw=0.8, ls=":")
    plots.points(c2, t, "init", "whh_radius", "", "spectral radius of W_hh at init", "Recurrent weight at init",
                 order=ORDER)
    plots.caption(fig3, plots.POINTS_LABEL + "; dotted: ln 4, chance; a diverged trial has no final loss and is not "
                  "drawn")
    return {"test_loss_curves": fig, "init_variance": fig2, "final_loss": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
