"""Saddle points: in a non-convex loss of many parameters, the critical points of high loss are saddle
points, not local minima; the index (the fraction of the Hessian's eigenvalues that are negative) of
the critical points rises with their loss, and gradient descent slows on the plateaus around saddles
(Dauphin, Pascanu, Gulcehre, Cho, Ganguli & Bengio 2014, Fig. 1 and sections 2-3; the notes'
non-convexity section).

What the paper did. Dauphin et al. found critical points of small MLPs trained on MNIST and CIFAR-10
downsampled to 10 x 10 with Newton's method, which is attracted to critical points of every index,
and plotted each point's training error against its index (Fig. 1: the error rises with the index;
the low-error points are near-minima). We could not read the paper's text through the search tools:
its network sizes, how the starts were chosen and the stopping rule are "not found" in PAPER. A
public reproduction attempt (C. Frye, github charlesfrye/tensorflow_fiddles, "thus far
unsuccessful") lists as its differences from the paper "SGD instead of saddle-free Newton", "no
uniform noise" and a damping ("fudging") range, which suggests starts taken along training runs and
a damped Newton; Frye et al. (2021, Neural Computation 33) report that such Newton searches often
stall in "gradient-flat regions" (a stationary point of ||g||, not of the loss) and warn that past
index-vs-loss plots may include such points.

What we do (regime). mnist5k's digits averaged down to 5 x 5 pixels (`mnist5k_small`, side 5: 10 x
10 inputs would take the net past a few hundred parameters at any useful width; the Hessian of 118
parameters costs milliseconds), the first 300 training digits (500 at `long`), an MLP with one hidden layer of 3 tanh
units (118 parameters) started from N(0, 0.01^2) weights and zero biases (near the origin, where the
net computes a constant: a saddle of the loss), trained by full-batch gradient descent (every update
sees all the training digits) at 0.2 per update with weight decay 0.01 (without it, cross-entropy on a few
hundred digits has no critical point at finite weights near a trained net: in exploration the
Newton searches ran off to ever-larger weights; with it, the objective the search sees,
loss + 0.005 ||theta||^2, is exactly the one GD descends). The `saddle_search` monitor
(oplab.saddles) runs at update 0 and every `monitor_every` updates: on the training digits in
float64 it takes the full Hessian at GD's iterate, then a damped Newton search (Levenberg-Marquardt
on g = 0, at most 10 Hessians) from the iterate; a search converges when the gradient's norm is at
most 1e-5 (from about 5e-2 at the start); the index is the share of eigenvalues below -1e-6 times
the largest |eigenvalue|. A search that does not converge is reported as such (not a critical
point), and its share is in the tables: that is Frye et al.'s warning, measured. The settings
(size, weight decay, rate, tolerance, search budget) were set by exploration in a standalone script
with torch seeds 0-2 (which draw the same initial weights as trial seeds 0-2: a look at verdict
seeds' starts, disclosed here) and 1000-1002, before any study record existed; nothing is tuned on
records. One arm, no comparison of arms, so no tuning grid and no compute-matched control.

Verdict (one value per seed: a seed is one GD run from its own random init, and its searches start
from points of that one run, so they are not independent of each other; Student t over seeds, or
Clopper-Pearson for a rate):
(a) loss rises with index: per seed, the OLS slope of the critical points' loss (nats, weight decay
    term included) on their index, over the distinct converged critical points the seed's searches
    found (two points are the same if their losses agree to 1e-4 nats and their indices are equal);
    mean over seeds > 0. A seed with fewer than two distinct indices among its critical points has no
    slope (nothing measured): it counts as 0, the threshold (never on the passing side; the per-seed
    table gives each seed's number of distinct critical points), and when fewer than five seeds have a
    slope the part is inconclusive (the kit's rule: searches that found nothing are not evidence). It
    fails if high-loss critical points are minima (index 0) as often as low-loss ones.
(b) GD's plateaus are passages near saddles: per seed, among the monitored GD iterates after GD has
    left its start (loss at least DELTA below the first search's point) and before its end (loss at
    least DELTA above the last iterate's), the one with the smallest gradient norm (GD's slowest
    point, the plateau: an update changes the loss by about lr ||g||^2); the seed's event is that the
    search from it converged to a critical point of index > 0 (a saddle, not a minimum, nor a
    gradient-flat region); a search that converged to a minimum is no event. A seed without such an
    iterate, or whose search from it did not converge, measured nothing: it counts as no event, and
    with fewer than five seeds measured the part is inconclusive. Claim: rate > 1/2 (most plateaus are
    at saddles).
Demonstration, not a part: weight-space symmetry. Permuting a critical point's hidden units gives
another point (at distance `perm_distance`) with the same loss, gradient norm 0 and the same index:
so every critical point comes with 3! = 6 copies (2^3 x 3! = 48 with tanh's sign flips), minima
included; it holds by construction (the table shows it).

Budgets. `smoke`: 100 digits, 10 updates, 3 searches a trial. `quick`: 300 digits, 300 updates,
searches at updates 0, 150 and 300, 5 verdict + 5 replication seeds (records: about 5 s a trial with ten
processes sharing this machine's 2 cores; the suite's quick cost limit allows no more). `long`: 500 digits, 600
updates, searches at updates 0, 200, 400 and 600 with up to 30 Hessians each (`saddle_search_deep`),
6 + 6 seeds: GD gets closer to its minimum and each search may run three times longer (in
exploration, 500 digits and 30 Hessians let the searches from late iterates converge; at `quick`'s
10 Hessians only the start's converged). `full`: the paper's 10 x 10
inputs (mnist5k_small side 10) and 4 hidden units (454 parameters), 2,000 updates, searches every 200;
it is CPU work (Hessians of a few hundred parameters), not GPU work.

Full budget: about 0.0056 GPU-hours on one data-centre GPU by the estimator's count of training alone
(10 trials, 20,000 updates; the Hessian searches are not counted; `python -m studies.saddle_points
--budget full --replicate --estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, plots, saddles
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "saddle_points"
TITLE = "Saddle points: index of critical points vs their loss, and GD's plateaus"
CLAIM = ("In a high-dimensional non-convex loss, the critical points of high loss are saddles, not local minima: "
         "the index (share of negative Hessian eigenvalues) of the critical points found from many starts rises "
         "with their loss, and gradient descent slows on the plateaus around saddles.")
SOURCE = ("Dauphin, Pascanu, Gulcehre, Cho, Ganguli & Bengio 2014, Identifying and attacking the saddle point "
          "problem in high-dimensional non-convex optimization, NIPS (arXiv 1406.2572), Fig. 1 and sections 2-3")
VERSION = 2  # 2: the permuted copy no longer overwrites the critical point (perm_distance was 0)
SEEDS = {"smoke": 2, "quick": 5, "long": 6, "full": 5}
DELTA = 0.05  # nats: part (b)'s margin from the start's and the end's loss
SAME_LOSS = 1e-4  # nats: two converged points with losses this close and equal indices are one critical point
WEIGHT_DECAY = saddles.SEARCH_L2  # GD descends the objective the monitor's search sees


def _setup(n_train, steps, monitor_every, side=5, width=3, lr=0.2, monitor="saddle_search"):
    return dict(data=DataConfig("mnist5k_small", n_train=n_train, n_test=min(n_train, 1000), options={"side": side}),
                model=ModelConfig("mlp", 1, width, "tanh"), steps=steps, monitor_every=monitor_every, lr=lr,
                sigma=0.01, batch=n_train, monitor=monitor)


SETUP = {"smoke": _setup(100, 10, 5),
         "quick": _setup(300, 300, 150),
         "long": _setup(500, 600, 200, monitor="saddle_search_deep"),
         "full": _setup(1000, 2000, 200, side=10, width=4, monitor="saddle_search_deep")}

PAPER = """
| Dauphin et al. 2014 | what it shows | status |
|---|---|---|
| Fig. 1 (a, b) | training error of critical points found by Newton's method against their index, MLPs on MNIST and CIFAR-10 downsampled to 10 x 10: the error rises with the index | the downsampling and the use of Newton's method per the study brief and secondary sources; the figure's numbers not found (paper text not reachable through the search tools) |
| network sizes, starts, stopping rule | | not found |
| sec. 2-3 | saddle points are surrounded by high-error plateaus that slow learning and give the illusory impression of a local minimum | verified (the abstract's words, via third-party copies of the abstract) |
| Frye et al. 2021 (Neural Computation 33, 1469-1497) | earlier index-vs-loss results reported "a convex relationship between index and loss ... for low values of the loss, only low values of the index were observed"; Newton-type searches often stall in gradient-flat regions | verified (its abstract and introduction, arxiv-vanity / deepai copies) |

The paper gives a scatter plot, not numbers to compare with; our net is smaller (118 parameters, 5 x 5 inputs
at `quick`).
"""  # noqa: E501


# parts whose smoke run may measure nothing (tests/test_studies_smoke.py): at smoke's size and search budget
# the damped-Newton searches rarely reach two distinct critical points, so a seed often has no slope
SMOKE_UNMEASURED = {"(a) loss rises with index": "fewer than two distinct indices found at smoke's search budget",
                    "(b) GD's plateau is at a saddle": "the plateau's search may not converge at smoke's budget"}


def arms(budget: str) -> dict[str, kit.Arm]:
    s = SETUP[budget]
    trial = Trial(data=s["data"], model=s["model"], init=InitConfig("normal", {"sigma": s["sigma"]}),
                  optim=OptimConfig("sgd", lr=s["lr"], weight_decay=WEIGHT_DECAY), steps=s["steps"],
                  batch_size=s["batch"], eval_every=s["monitor_every"], log_every=1,
                  monitors=(s["monitor"],), monitor_every=s["monitor_every"])
    return {"GD": kit.Arm(trial, {"method": "GD", "lr": s["lr"]})}


# --- from the monitor curve -------------------------------------------------------------------------


def searches(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row a search (arm, seed, step and the monitor's columns); empty with the columns when none."""
    mon = curves.get("monitor")
    cols = ["arm", "seed", "step", "it_loss", "it_grad_norm", "it_index", "cp_loss", "cp_grad_norm", "cp_index",
            "cp_converged", "cp_distance", "cp_hessians", "perm_loss", "perm_grad_norm", "perm_index",
            "perm_distance"]
    if mon is None or "cp_loss" not in mon:
        return pd.DataFrame(columns=cols)
    return mon[[c for c in cols if c in mon]].sort_values(["arm", "seed", "step"]).reset_index(drop=True)


def distinct(found: pd.DataFrame) -> pd.DataFrame:
    """The distinct converged critical points of one trial's searches (same loss to SAME_LOSS, same index)."""
    ok = found[found["cp_converged"] == 1].sort_values("cp_loss")
    keep, last = [], None
    for i, r in ok.iterrows():
        if last is None or not (abs(r["cp_loss"] - last["cp_loss"]) <= SAME_LOSS and r["cp_index"] == last["cp_index"]):
            keep.append(i)
            last = r
    return ok.loc[keep]


def slope(points: pd.DataFrame) -> float:
    """OLS slope of loss on index; NaN (nothing measured: the kit counts it at part (a)'s threshold 0)
    when the points have fewer than two distinct indices."""
    if points["cp_index"].nunique() < 2:
        return float("nan")
    return float(np.polyfit(points["cp_index"].to_numpy(float), points["cp_loss"].to_numpy(float), 1)[0])


def plateau(found: pd.DataFrame) -> pd.Series | None:
    """The trial's slowest monitored GD iterate after its start and before its end (part (b)), or None."""
    f = found.sort_values("step")
    if len(f) < 3:
        return None
    first = f.iloc[0]
    start = first["cp_loss"] if first["cp_converged"] == 1 else first["it_loss"]
    end = f.iloc[-1]["it_loss"]
    mid = f[(f["step"] > first["step"]) & (f["it_loss"] <= start - DELTA) & (f["it_loss"] >= end + DELTA)]
    return None if mid.empty else mid.loc[mid["it_grad_norm"].idxmin()]


def measure(df, curves, ctx):
    """Per trial: `slope` (part (a)), `n_points` (distinct converged critical points), `n_searches`,
    `converged_share`, `bad_minima` (converged index-0 points above the trial's lowest critical point by
    more than DELTA), and part (b)'s `plateau_step`, `plateau_index` and event `plateau_saddle` (1/0; NaN
    when nothing was measured)."""
    t = df.copy()
    found = searches(curves)
    per = {}
    for key, g in found.groupby(["arm", "seed"]):
        pts = distinct(g)
        p = plateau(g)
        low = pts["cp_loss"].min() if len(pts) else np.nan
        per[key] = {"slope": slope(pts), "n_points": float(len(pts)), "n_searches": float(len(g)),
                    "converged_share": float(g["cp_converged"].mean()),
                    "bad_minima": float(((pts["cp_index"] == 0) & (pts["cp_loss"] > low + DELTA)).sum()),
                    "plateau_step": np.nan if p is None else float(p["step"]),
                    "plateau_index": np.nan if p is None or p["cp_converged"] != 1 else float(p["cp_index"]),
                    "plateau_saddle": (np.nan if p is None or p["cp_converged"] != 1
                                       else float(p["cp_index"] > 0))}
    names = ["slope", "n_points", "n_searches", "converged_share", "bad_minima", "plateau_step", "plateau_index",
             "plateau_saddle"]
    keys = list(zip(t["arm"], t["seed"]))
    for name in names:
        t[name] = [per.get(k, {}).get(name, np.nan) for k in keys]
    return t


def verdict(t, ctx):
    return [kit.mean(t, "slope", part="(a) loss rises with index", above=0.0, fmt=".3g",
                     unit="nats per unit index",
                     what="OLS slope of a critical point's loss on its index, over the seed's distinct converged "
                          "critical points",
                     claim="mean over seeds of the per-seed OLS slope of critical-point loss on index > 0",
                     note="A seed whose converged critical points have fewer than two distinct indices has no "
                          "slope: it counts as 0, the threshold (see the per-seed table's distinct critical "
                          "points)."),
            kit.rate(t, "plateau_saddle", part="(b) GD's plateau is at a saddle", above=0.5,
                     what="seeds whose slowest GD iterate between start and end leads a Newton search to a critical "
                          "point of index > 0",
                     claim="share of seeds whose GD plateau (slowest monitored iterate after the start, before the "
                           "end) is near a saddle (a converged search from it ends at index > 0) > 1/2")]


def tables(t, curves, ctx):
    found = searches(curves)
    shown = found.assign(converged=found["cp_converged"].map({1.0: "yes", 0.0: "no"}))
    shown = shown[["seed", "step", "it_loss", "it_grad_norm", "it_index", "converged", "cp_loss", "cp_grad_norm",
                   "cp_index", "cp_distance", "cp_hessians"]].rename(columns={
                       "step": "GD update", "it_loss": "iterate loss", "it_grad_norm": "iterate ||g||",
                       "it_index": "iterate index", "cp_loss": "end loss", "cp_grad_norm": "end ||g||",
                       "cp_index": "end index", "cp_distance": "distance moved", "cp_hessians": "Hessians"})
    seeds = t[["seed", "slope", "n_points", "n_searches", "converged_share", "bad_minima", "plateau_step",
               "plateau_index", "plateau_saddle"]].rename(columns={
                   "slope": "slope (nats / unit index)", "n_points": "distinct critical points",
                   "n_searches": "searches", "converged_share": "share converged",
                   "bad_minima": "minima above the lowest + DELTA", "plateau_step": "plateau update",
                   "plateau_index": "plateau's critical point index", "plateau_saddle": "(b) event"})
    sym = found[found["cp_converged"] == 1][["seed", "step", "cp_loss", "perm_loss", "cp_grad_norm", "perm_grad_norm",
                                             "cp_index", "perm_index", "perm_distance"]]
    sym = sym.rename(columns={"step": "GD update", "cp_loss": "loss", "perm_loss": "loss, units permuted",
                              "cp_grad_norm": "||g||", "perm_grad_norm": "||g||, permuted", "cp_index": "index",
                              "perm_index": "index, permuted", "perm_distance": "distance between the two"})
    return {"per seed (part (a)'s slope, part (b)'s plateau)": seeds.sort_values("seed"),
            "every search: GD's iterate and where the damped Newton search from it ended (converged: ||g|| <= "
            f"{saddles.GTOL:g})": shown,
            "weight-space symmetry (a demonstration): each converged critical point and the same point with its "
            "hidden units permuted cyclically": sym}


def figures(t, curves, ctx):
    found = searches(curves)
    ok = found[found["cp_converged"] == 1]
    parts = verdict(t, ctx)
    fig, (a1, a2) = plots.figure(2, width=6.0)
    for _, g in ok.groupby("seed"):
        a1.plot(g["cp_index"], g["cp_loss"], "o", ms=5, alpha=0.7)
    a1.set_xlabel("index (share of negative Hessian eigenvalues)")
    a1.set_ylabel("loss at the critical point (nats)")
    a1.set_title("Critical points found (cf. Dauphin et al. Fig. 1)")
    plots.parts(a2, [parts[0]], ["(a) slope"], "slope of loss on index (nats / unit index)",
                "(a) per-seed slope, pooled")
    plots.caption(fig, "left: each converged search's end point, one colour a seed (loss with the weight-decay term; "
                  "searches that did not converge are left out, the tables count them); right: grey: one seed; "
                  "diamond: the pooled mean with its Student-t 95% CI, coloured by its word; dashed: the threshold 0")
    log = curves["log"]
    fig2, (b1, b2) = plots.figure(2, width=5.5)
    plots.curves(b1, log.assign(m="GD, full batch"), "step", "batch_loss", "m", "update",
                 "training loss (nats, cross-entropy)", "GD's loss and the searches along it")
    at = log.set_index(["seed", "step"])["batch_loss"]
    for _, r in found.iterrows():
        color = ("#b2182b" if r["cp_index"] > 0 else "#1b7837") if r["cp_converged"] == 1 else "0.6"
        # the iterate after update s is the one update s + 1 computes its loss at
        y = at.get((r["seed"], r["step"] + 1), at.get((r["seed"], r["step"]), np.nan))
        b1.plot([r["step"]], [y], "o", ms=4, color=color, alpha=0.6)
    plots.judged(b2, parts[1], x=0, label="(b) share of seeds", fmt=".2f")
    b2.set_xticks([0], ["(b)"])
    b2.set_xlim(-0.8, 0.8)
    b2.set_ylim(-0.05, 1.05)
    b2.set_ylabel("share of seeds whose plateau is at a saddle")
    b2.set_title("(b) pooled, Clopper-Pearson 95%")
    b2.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    plots.caption(fig2, plots.BAND_LABEL + "; points: the monitored iterates, red: the "
                  "search from it ended at a saddle, green: at a minimum, grey: did not converge; right: dashed "
                  "the threshold 1/2")
    return {"index_vs_loss": fig, "gd_plateaus": fig2}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
