"""Cliffs and gradient clipping (Pascanu, Mikolov & Bengio 2013).

Regime 1, the cliff (the paper's Fig. 6): the single recurrent unit x_t = w sigmoid(x_{t-1}) + b,
x_0 = 0.5, T = 50, error E = (sigmoid(x_T) - 0.7)^2. For w above about 4.25 the line
b = x_0 - w sigmoid(x_0), on which x_0 is an unstable fixed point, separates two basins of x_T:
a wall of huge gradients. SETUP's T, x_0 and target are the values both the trials (model and
dataset options) and the figure's deterministic (w, b) grid (oplab.models.single_unit_grid,
exact gradients in float64) use. Trials: the `single_unit` model (float64) on one dummy example
whose target is 0.7, so a trial's test loss is its training error E; plain SGD, lr 0.1, 500
updates, no clipping or norm clipping at 1 (the paper's threshold); the `params` monitor records
(w, b) after every update. Each seed draws w0 ~ U[4.5, 6.0] and starts on the wall for it (the b
of largest gradient norm across the line), the same start for both arms. The paper gives no lr
or step count for Fig. 6: lr 0.1 keeps a clipped step (0.1) small against the figure's scale,
and 500 updates let such short steps reach the target.

Regime 2 (the paper's Fig. 7 setting, scaled down): a tanh RNN, 50 hidden units, the paper's "smart
tanh" init (weights N(0, 0.01^2), 15 recurrent inputs a unit, spectral radius 0.95, zero biases; the
`rnn` model's options) reads the temporal order problem (as in Pascanu's tempOrder.py; 5,000 fixed
training, 1,000 fixed test sequences) and predicts the order class at the last step. Plain SGD,
batch 20, threshold 1: no clipping, norm clipping, value clipping, equal updates. Quick: 2,000
updates at lengths 20 and 40 with lr 0.1, because at the paper's lr 0.01 and length 50 nothing is
learned within a quick budget (the test loss stays at chance, ln 4), so neither spikes nor success
could be seen. Success: the trial finished with a final test error below 1% (the paper's
criterion, on 1,000 rather than 10,000 sequences). Divergence: a non-finite loss or gradient (the
trial's status is not "ok"). The seed sets the cliff's w0 and the RNN's init and batch order; the data are fixed.

Verdict (95% intervals; a part needs at least 5 seeds for a decisive word, and is not
reproduced when its interval lies wholly on the other side of its threshold):
(a) cliff: unclipped minus norm-clipped error E after the last update > 0, paired by seed,
    Student t; a failed trial counts as the largest error the unit can have, max(target, 1 - target)^2;
(b) RNN: share of seeds with a diverged run (at any length), unclipped minus norm-clipped > 0,
    paired by seed (the independent unit: a seed's lengths share its init and batch order, so
    they are not independent pairs), Newcombe; a diverged trial is the event (with none in
    either arm the interval straddles 0: inconclusive);
(c) RNN: share of seeds whose runs succeed at every length, norm-clipped minus unclipped > -0.1
    (non-inferiority margin: one seed in ten), paired by seed, Newcombe; a diverged run is not a
    success.
Demonstrations, not verdict parts (they hold by construction; in the cliff figure and the
demonstration table): the wall (max / median |grad E| on the grid, a function of code constants)
and the first step off it (unclipped lr |grad E(start)|, clipped lr x threshold: their ratio is
|grad E(start)| / threshold, large because the start is where the gradient is largest).

Full budget: the paper's setting, lr 0.01, lengths 50, 100, 150 and 200, up to 5M updates (the
paper's cap; it stops at success, we run all), 50,000 fixed training sequences (the paper draws
a fresh batch every update), 10,000 test sequences. The cliff is the same at every budget but smoke.

Full budget: about 170 GPU-hours on one data-centre GPU (140 trials, 600,010,000 updates, 24 PFLOP
counted from the arms' models; `python -m studies.clipping_cliffs --budget full --replicate
--estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, models, plots, stats
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial

NAME = "clipping_cliffs"
TITLE = "Cliffs and gradient clipping"
CLAIM = ("Cliffs in the loss landscape make an unclipped gradient step careen far away; clipping the "
         "gradient norm keeps the step bounded, and on a long-memory RNN task clipped runs diverge less "
         "and succeed at least as often.")
SOURCE = ("Pascanu, Mikolov & Bengio 2013, On the difficulty of training recurrent neural networks, "
          "arXiv 1211.5063, Fig. 6 (single-unit cliff) and Fig. 7 / sec. 4.1 (temporal order)")
VERSION = 2
SEEDS = {"smoke": 2, "quick": 5, "full": 5}

THRESHOLD = 1.0  # clipping threshold: max gradient norm (norm) or max |component| (value); the paper's 1
CLIP_ORDER = ["none", "norm", "value"]  # the RNN's arms
CLIFF_CLIPS = ["none", "norm"]  # the cliff's arms
COLORS = {"none": "C0", "norm": "C1", "value": "C2"}
SUCCESS_ERR = 0.01  # final test error below 1% (the paper's criterion)
SUCCESS_MARGIN = 0.1  # non-inferiority margin on the success rate
SPIKE = 10.0  # a gradient spike: a pre-clipping grad norm above 10 x the clipping threshold
DATA_SEED = 1234  # the temporal-order data are fixed: the same sequences for every trial
GRID_W, GRID_B, GRID_N = (3.0, 7.0), (-4.5, -0.5), 501  # the figure's (w, b) window and grid

# the cliff: the unit (T, x0), its target, the start (w0 +- spread, b on the wall), SGD lr, updates
CLIFF = {"T": models.SINGLE_UNIT_T, "x0": models.SINGLE_UNIT_X0, "target": models.SINGLE_UNIT_TARGET,
         "w0": 5.25, "w0_spread": 0.75, "lr": 0.1, "steps": 500}
RNN = {"hidden": 50, "batch": 20, "lengths": [20, 40], "steps": 2000, "lr": 0.1, "n_train": 5000, "n_test": 1000,
       "log_every": 1}
SETUP = {
    "smoke": {"cliff": {**CLIFF, "steps": 30},
              "rnn": {**RNN, "lengths": [10, 20], "steps": 30, "n_train": 200, "n_test": 100}},
    "quick": {"cliff": CLIFF, "rnn": RNN},
    "full": {"cliff": CLIFF, "rnn": {**RNN, "lengths": [50, 100, 150, 200], "steps": 5_000_000, "lr": 0.01,
                                     "n_train": 50_000, "n_test": 10_000, "log_every": 100}},
}

PAPER = """
| Pascanu et al. 2013 (status) | paper | here (quick) |
|---|---|---|
| Fig. 6 single unit, T = 50 (verified) | wall in the (w, b) error; unclipped step lands far | same unit |
| Fig. 6 lr, steps, clipping threshold | not given | lr 0.1, 500 updates, threshold 1 |
| Temporal order: tanh RNN, 50 hidden (verified) | SGD lr 0.01, batch 20, threshold 1 | lr 0.1, batch 20, threshold 1 |
| lengths, updates (verified) | 50-250, up to 5M, 5 runs a point | 20 and 40, 2,000, 5 seeds |
| success criterion (verified) | < 1% error on 10,000 test sequences | < 1% error on 1,000 |
| success rates vs length, MSGD / MSGD-C / MSGD-CR | Fig. 7, plots only (no numbers) | table below |

The paper's regularizer (MSGD-CR, weight 4) is not reproduced here. Our quick budget is far shorter than
the paper's (2,000 updates against up to 5M, lengths 20-40 against 50-250): compare directions (clipped
vs unclipped), not success rates.
"""


def arms(budget: str) -> dict[str, kit.Arm]:
    """The single unit with and without norm clipping (length = its T); the RNN x length x clipping."""
    c, r = SETUP[budget]["cliff"], SETUP[budget]["rnn"]
    out = {}
    unit = ModelConfig("single_unit", 1, 1, "sigmoid", options={"w0": c["w0"], "w0_spread": c["w0_spread"],
                                                                "b0": None, "steps": c["T"], "x0": c["x0"],
                                                                "target": c["target"]})
    for clip in CLIFF_CLIPS:
        trial = Trial(data=DataConfig("single_unit_target", options={"target": c["target"]}), model=unit,
                      optim=OptimConfig("sgd", lr=c["lr"], clip=clip, clip_threshold=THRESHOLD), steps=c["steps"],
                      batch_size=1, eval_every=max(1, c["steps"] // 50), monitors=("params",), monitor_every=1)
        out[f"cliff {clip}"] = kit.Arm(trial, {"task": "cliff", "clip": clip, "length": c["T"]})
    rnn = ModelConfig("rnn", 1, r["hidden"], "tanh", options={"init": "smart_tanh", "rho": 0.95, "sparsity": 15})
    for length in r["lengths"]:
        data = DataConfig("temporal_order", options={"length": length, "n_train": r["n_train"],
                                                     "n_test": r["n_test"], "seed": DATA_SEED})
        for clip in CLIP_ORDER:  # the default InitConfig leaves the rnn model's own (the paper's) init in place
            trial = Trial(data=data, model=rnn, optim=OptimConfig("sgd", lr=r["lr"], clip=clip,
                                                                  clip_threshold=THRESHOLD), steps=r["steps"],
                          batch_size=r["batch"], eval_every=max(1, r["steps"] // 20), log_every=r["log_every"])
            out[f"L={length} {clip}"] = kit.Arm(trial, {"task": "rnn", "clip": clip, "length": length})
    return out


def grid(c) -> dict[str, np.ndarray]:
    """The cliff's error and gradient over the figure's (w, b) window, for SETUP's T, x0, target."""
    w, b = np.meshgrid(np.linspace(*GRID_W, GRID_N), np.linspace(*GRID_B, GRID_N))
    return {**models.single_unit_grid(w, b, c["T"], c["x0"], c["target"]), "w": w, "b": b}


def paths(curves) -> pd.DataFrame | None:
    """(w, b) at every update of each cliff trial, with the distance from its start."""
    m = curves.get("monitor")
    if m is None or "w" not in m:
        return None
    m = m[m["task"] == "cliff"].sort_values(["arm", "seed", "step"])
    start = m.groupby(["arm", "seed"])[["w", "b"]].transform("first")
    return m.assign(dist=np.hypot(m["w"] - start["w"], m["b"] - start["b"]))


def _col(t: pd.DataFrame, name: str) -> pd.Series:
    return t[name].astype(float) if name in t else pd.Series(np.nan, index=t.index)


def measure(df, curves, ctx):
    """Per trial. Cliff: start (w0, b0) and |grad E(start)|, first-step and farthest distance,
    `final_error` = the trial's test loss, which is its training error E on its one example.
    RNN: `success` (finished, final test error < 1%), test error in %, spikes and the largest
    gradient norm from the log curve, share of clipped updates. Both: `diverged` (status != ok)."""
    c = ctx.setup["cliff"]
    p = {"monitor": paths(curves)}
    t = df.assign(diverged=(df["status"] != "ok").astype(float), test_loss=_col(df, "test_loss"))
    for name, column, kw in (("w0", "w", {"at": ("step", 0)}), ("b0", "b", {"at": ("step", 0)}),
                             ("first_step", "dist", {"at": ("step", 1)}), ("max_dist", "dist", {"agg": "max"})):
        t = kit.curve_value(t, p, "monitor", column, name, **kw)
    t["start_grad_norm"] = models.single_unit_grid(t["w0"], t["b0"], c["T"], c["x0"], c["target"])["grad_norm"]
    t["final_error"] = _col(t, "test_loss").where(t["task"] == "cliff")
    t["success"] = ((t["status"] == "ok") & (_col(t, "test_err") < SUCCESS_ERR)).astype(float).where(
        t["task"] == "rnn")
    t["test_err_pct"] = 100 * _col(t, "test_err")
    t["clipped_pct"] = 100 * _col(t, "clipped_steps") / _col(t, "steps").where(_col(t, "steps") > 0)
    log = curves.get("log")
    spikes = None if log is None else log.assign(spike=(log["grad_norm"] > SPIKE * THRESHOLD).astype(float))
    t = kit.curve_value(t, {"log": spikes}, "log", "spike", "spikes", agg="sum")
    return kit.curve_value(t, curves, "log", "grad_norm", "max_grad_norm", agg="max")


def verdict(t, ctx):
    c = ctx.setup["cliff"]
    rnn = {"where": {"task": "rnn"}}
    ok = t["status"] == "ok"  # the events come from the status: a run that did not finish diverged, never succeeded
    t = t.assign(diverged=(~ok).astype(float), success=t["success"].where(ok, 0.0))
    return [
        kit.difference(t, "final_error", {"clip": "none"}, {"clip": "norm"}, where={"task": "cliff"},
                       part="cliff: error after the last update", unit="squared error", above=0.0,
                       worst=max(c["target"], 1 - c["target"]) ** 2,
                       claim=f"single unit started on the wall, SGD lr {c['lr']:g}: unclipped minus norm-clipped "
                             f"error E after {c['steps']} updates > 0",
                       note="E is each trial's training error on its one example (its test loss)."),
        kit.paired_rates(t, "diverged", {"clip": "none"}, {"clip": "norm"}, **rnn, part="divergence (RNN)",
                         claim="share of seeds with a diverged run at any length, unclipped minus norm-clipped > 0 "
                               "(paired by seed)",
                         what="seeds with a diverged run (non-finite loss or gradient)", above=0.0, per_seed="any"),
        kit.paired_rates(t, "success", {"clip": "norm"}, {"clip": "none"}, **rnn, part="success (RNN)",
                         claim=f"share of seeds that succeed (final test error < {100 * SUCCESS_ERR:g}%) at every "
                               f"length, norm-clipped minus unclipped > -{SUCCESS_MARGIN:g} (non-inferiority, paired "
                               "by seed)",
                         what=f"seeds whose runs all end with test error < {100 * SUCCESS_ERR:g}%",
                         above=-SUCCESS_MARGIN, per_seed="all"),
    ]


def _success(g: pd.DataFrame) -> str:
    rate, ci = stats.rate_interval(int(g["success"].sum()), len(g))
    return f"{int(g['success'].sum())}/{len(g)} = {rate:.2f} {stats.interval_text(ci, '.2f')}"


def tables(t, curves, ctx):
    rnn, cliff = kit.select(t, {"task": "rnn"}), kit.select(t, {"task": "cliff"})
    per_length = kit.summary(rnn, "test_err_pct", ["length", "clip"], name="final test error %",
                             order={"clip": CLIP_ORDER}, extra={
                                 "final test loss (nats)": "test_loss", "clipped updates %": "clipped_pct",
                                 "max grad norm (mean over seeds)": "max_grad_norm",
                                 f"logged updates with grad norm > {SPIKE * THRESHOLD:g} (mean)": "spikes"})
    per_length.insert(2, "success, 95% CI (Clopper-Pearson)",
                      [_success(kit.select(rnn, {"length": n, "clip": c}))
                       for n, c in zip(per_length["length"], per_length["clip"])])
    error = kit.summary(cliff, "final_error", ["clip"], name="error E after the last update", fmt=".2g",
                        order={"clip": CLIFF_CLIPS}, extra={"clipped updates %": "clipped_pct",
                                                           "farthest from the start": "max_dist"})
    none, norm = (kit.select(cliff, {"clip": c}).set_index("seed").sort_index() for c in CLIFF_CLIPS)
    demo = pd.DataFrame({"w0": none["w0"], "b0": none["b0"], "|grad E(start)|": none["start_grad_norm"],
                         "|grad E(start)| / threshold": none["start_grad_norm"] / THRESHOLD,
                         "first step, unclipped": none["first_step"], "first step, clipped": norm["first_step"],
                         "first-step ratio": none["first_step"] / norm["first_step"],
                         "wall ratio of the grid (max / median |grad E|)": models.wall_ratio(grid(ctx.setup["cliff"]))})
    return {"RNN on temporal order: per length and clipping": per_length,
            "single-unit cliff: error after the last update (part a)": error,
            "single-unit cliff, demonstration (holds by construction, not a verdict part)":
                demo.reset_index()}


def figures(t, curves, ctx):
    c, r = ctx.setup["cliff"], kit.select(t, {"task": "rnn"})
    g, p = grid(c), paths(curves)
    fig, (a1, a2, a3) = plots.figure(3, width=5.6, height=4.4)
    fig.colorbar(a1.contourf(g["w"], g["b"], g["loss"], levels=20, cmap="viridis"), ax=a1, label="error E")
    a1.contour(g["w"], g["b"], g["grad_norm"], levels=[10.0], colors="white", linewidths=0.8, linestyles="--")
    for (clip, seed), q in ([] if p is None else p.groupby(["clip", "seed"])):
        a1.plot(q["w"], q["b"], "-", color=COLORS[clip], lw=1.4, label=clip if seed == p["seed"].min() else None)
        a1.plot(q["w"].iloc[0], q["b"].iloc[0], "o", color="white", mec="k", ms=5)
    first = kit.select(t, {"task": "cliff", "clip": "none"})["first_step"]
    a1.text(0.97, 0.97, f"unclipped 1st step:\nmedian {first.median():.3g} long", transform=a1.transAxes,
            ha="right", va="top", fontsize="small", color="white")
    a1.set(xlim=GRID_W, ylim=GRID_B, xlabel="w", ylabel="b",
           title=f"Error (sigmoid(x_{c['T']}) - {c['target']:g})^2 and its wall")
    a1.legend(title="clipping", fontsize="small", loc="lower left")
    if p is not None:
        plots.curves(a2, p[p["step"] > 0], "step", "dist", "clip", "update", "distance from the start",
                     "Distance travelled", logy=True, hue_order=CLIFF_CLIPS)
        ev = kit.select(curves["eval"], {"task": "cliff"}).assign(error=lambda d: d["test_loss"].clip(lower=1e-8))
        plots.curves(a3, ev, "step", "error", "clip", "update", "error E", "Error", logy=True, hue_order=CLIFF_CLIPS)
    fig.subplots_adjust(wspace=0.4)
    plots.caption(fig, f"Single unit x_t = w sigmoid(x_(t-1)) + b, T = {c['T']}; one start per seed on the wall; SGD "
                       f"lr {c['lr']:g}, no clipping (none) or norm clipping at {THRESHOLD:g} (norm). Left: dashed, "
                       f"|grad E| = 10; unclipped paths leave the window at their first step. {plots.BAND_LABEL}")

    log = curves.get("log", pd.DataFrame(columns=["task", "seed", "length", "clip", "step", "grad_norm"]))
    lengths, seed = sorted(r["length"].unique()), min(r["seed"], default=0)
    fig2, axes = plots.figure(max(1, len(lengths)), width=5.5, height=4.0)
    for ax, length in zip(axes, lengths):
        plots.curves(ax, kit.select(log, {"task": "rnn", "length": length, "seed": seed}), "step", "grad_norm",
                     "clip", "update", "gradient norm before clipping", f"Temporal order, length {length}, seed {seed}",
                     logy=True, hue_order=CLIP_ORDER)
        for line in ax.lines:  # thin: a trace has a point per update
            line.set(lw=0.7, alpha=0.8)
        ax.axhline(THRESHOLD, color="k", lw=0.8, ls=":")
    plots.caption(fig2, f"tanh RNN, 50 hidden, SGD batch 20, one seed; lines: clipping none, norm, value; dotted: the "
                        f"clipping threshold {THRESHOLD:g}.")

    fig3, (c1, c2) = plots.figure(2)
    r = r.assign(arm_label="L=" + r["length"].astype(str) + "\n" + r["clip"])
    order = [f"L={n}\n{clip}" for n in lengths for clip in CLIP_ORDER]
    plots.points(c1, r, "arm_label", "test_loss", "", "final test loss (nats)", "Final test loss", order=order)
    c1.axhline(np.log(4), color="k", lw=0.8, ls=":")
    plots.points(c2, r, "arm_label", "test_err_pct", "", "final test error (%)", "Final test error", order=order)
    plots.caption(fig3, plots.POINTS_LABEL + "; dotted: ln 4, chance level; diverged trials have no final value")
    return {"cliff": fig, "grad_norm_traces": fig2, "rnn_final": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
