"""Cliffs and gradient clipping (Pascanu, Mikolov & Bengio 2013).

Regime 1, the cliff (the paper's Fig. 6): the single recurrent unit x_t = w sigmoid(x_{t-1}) + b,
x_0 = 0.5, T = 50, error E = (sigmoid(x_T) - 0.7)^2. For w above about 4.25 the line
b = x_0 - w sigmoid(x_0), on which x_0 is an unstable fixed point, separates two basins of x_T:
a wall of huge gradients. SETUP's T, x_0 and target are the values both the trials (model and
dataset options) and the figure's deterministic (w, b) grid (oplab.models.single_unit_grid,
exact gradients in float64) use. Trials: the `single_unit` model (float64) on one dummy example
whose target is 0.7, so a trial's test loss is its training error E; plain SGD, lr 0.1, 500
updates (quick: 400), no clipping or norm clipping at 1 (the paper's threshold); the `params` monitor records
(w, b) after every update. Starts near the wall, a seeded spread: b0 is fixed on the wall of
w = 5.25 (the b of largest gradient norm across the line) and each seed draws w0 ~ U[4.5, 6.0],
so the start lies on one side of the wall or the other, up to about 0.47 from it in b (the wall's
b moves by -sigmoid(x_0) ~ -0.62 per unit of w); both arms share the seed's start. (Version 2
started every run on the crest of the wall, where the unclipped first step always lands on the
same plateau, E = (1 - 0.7)^2 = 0.09 on every seed, so only the clipped side could fail.
From a spread of starts an unclipped run that happens not to meet the wall, or lands well, can
end as low as the clipped one; the table of starts shows each seed.) The paper gives no lr or
step count for Fig. 6: lr 0.1 keeps a clipped step (0.1) small against the figure's scale, and
500 updates (400 at quick: see Budgets) let such short steps reach the target.

Regime 2 (the paper's Fig. 7 setting, scaled down): a tanh RNN, 50 hidden units, the paper's "smart
tanh" init (weights N(0, 0.01^2), 15 recurrent inputs a unit, spectral radius 0.95, zero biases; the
`rnn` model's options) reads the temporal order problem (as in Pascanu's tempOrder.py; 5,000 fixed
training, 1,000 fixed test sequences) and predicts the order class at the last step. Plain SGD,
batch 20, threshold 1, equal updates in both arms. Quick: length 20 only (version 2 also ran 40;
one length keeps the quick budget small, and a seed's lengths count as one pair in (b) and (c)
anyway) and no value-clipping arm (no part judged it; the claim is about norm clipping); the
paper's lr 0.01 at length 50 learns nothing within a quick budget (the test loss stays at chance,
ln 4), so neither explosions nor successes could be seen.
- (c)'s arms, "tuned rate": each arm at its own learning rate, chosen per clipping arm on tuning
  seeds 1000-1001 by the final full-split training loss (TUNE, `within` includes `clip`): clipping
  caps the step at lr x threshold (in version 2, at a shared lr 0.1, a large share of the clipped
  updates were capped), so at a shared rate the two arms take different effective steps, and an
  unclipped run at a rate picked for the clipped one is handicapped. The grids (unclipped 0.003, 0.01, 0.03;
  norm-clipped 0.1, 0.3, 1) were placed from a wider scan on the same tuning seeds (1,500 updates,
  rates 0.01-1 for both arms: the unclipped training loss was lowest at 0.01 and rose at every
  larger rate, the clipped one lowest at 0.3 and far higher at 1), and each arm's choice is shown
  with its grid in the tuning table; the page says where a choice sits at a grid edge (at quick's
  250 updates the unclipped grid is one step up, 0.01, 0.03, 0.1: 0.003-0.03 chose 0.03). The
  updates are the budget's (Budgets below; version 3: 1,000, version 2: 2,000); the clipped runs
  at 0.3 reached 100% test accuracy within 200 updates on the tuning seeds.
- (b)'s arms, "shared rate": both arms at lr 1 (100 updates at quick, 300 at long). The paper compares MSGD with MSGD-C
  at one rate; the claim is that at a rate where unclipped SGD blows up, clipping keeps the run
  bounded. The rate was chosen on tuning seeds 1000-1001: at lr 1 the unclipped runs' largest
  minibatch loss reached 32x and 33x their initial loss (first above 10x at updates 23 and 14),
  the clipped runs' 3.3x and 3.5x (500 updates); at lr 0.3 the unclipped runs peaked at 7.6x and
  4.8x, below the threshold. A run has *exploded* when its minibatch training loss exceeds
  EXPLODE = 10 x its loss before the first update (about ln 4, a uniform guess over the 4 classes;
  measured from the log curve, every update logged in these arms), or its loss or gradient is not
  finite (status "diverged"). Version 2 counted only non-finite values, so a loss of 2.5e27 read
  "ok", and at its lr 0.1 no run diverged in either arm: the part could not decide.
Success: the trial finished with a final test error below 1% (the paper's criterion, on 1,000
rather than 10,000 sequences). The seed sets the cliff's w0 and the RNN's init and batch order;
the data are fixed.

Verdict (95% intervals; a part needs at least 5 seeds for a decisive word, and is not
reproduced when its interval lies wholly on the other side of its threshold):
(a) cliff: unclipped minus norm-clipped error E after the last update > 0, paired by seed,
    Student t; a failed trial counts as the largest error the unit can have, max(target, 1 - target)^2;
(b) RNN at the shared rate: share of seeds with an exploded run (at any length), unclipped minus
    norm-clipped > 0, paired by seed (the independent unit: a seed's lengths share its init and
    batch order, so they are not independent pairs), Newcombe (with no explosion in either arm the
    interval straddles 0: inconclusive);
(c) RNN, each arm at its own tuned rate: share of seeds whose runs succeed at every length,
    norm-clipped minus unclipped > -0.1 (non-inferiority margin: one seed in ten), paired by seed,
    Newcombe; a diverged run is not a success.
Demonstrations, not verdict parts (they hold by construction; in the cliff figure and the
demonstration table): the wall (max / median |grad E| on the grid, a function of code constants)
and the largest single step of each run (clipped: at most lr x threshold by construction;
unclipped: lr |grad E| where the run meets the wall).

Budgets (compute is the summed trial time with replication, estimated from version 3's records,
which were timed on an idle machine; `--estimate` prints it from stored records).
- quick (version 4, about 57 s; version 3 took 148 s): length 20; the cliff 400 updates, the RNN's
  tuned-rate arms 250, its shared-rate arms 100; only the tuned grids run on the tuning seeds
  (TUNE grids_only: the cliff's and the shared rate's arms have one level each, nothing to choose);
  5 test evaluations a tuned-rate run and 1 a shared-rate run after the one at update 0 (version
  3: 10; the parts read the first and the last, the explosions the log curve).
  Each cut stops where version 3's tuning-seed records show the arm settled: the clipped runs at
  0.3 were at 0% test error by update 200 on tuning seeds 1000-1001, the unclipped shared-rate
  runs first passed 10x their initial loss at updates 14 and 23, and the cliff's runs were on their
  last plateau by update 300 there. 300 cliff updates, tried first, stopped one verdict seed's
  clipped run (seed 104) between two plateaus and moved part (a) from reproduced to inconclusive
  (+0.080 [-0.034, +0.195]); 400 is past the last move of every version-3 cliff run (update 360).
- long (about 9.2 CPU-minutes): the RNN at length 30 with 5,000 updates a tuned-rate run (5x
  version 3's quick), the shared rate's 300 and the cliff's 500: runs long enough for unclipped
  SGD at its own rate to learn and to meet the cliffs. Chosen on tuning seeds 1000-1001: at length
  20 and 3,000 updates, unclipped runs at 0.01 and 0.03 reached 0% test error on one seed of two
  each, after their test error had jumped back up by as much as 43 points on the way; at length
  50 (2,000 updates) every arm tried (unclipped 0.01, clipped 0.1 and 0.3) stayed at chance, and at
  40 (3,000 updates) the best, clipped at 0.1, ended at 28% test error, so neither length can show
  successes within the budget; at 30 the clipped run at 0.1 was at 0% test error from update
  2,400 of 3,000, the one at 0.3 stayed at chance, as did the unclipped one at 0.01. Grids: as
  quick's (unclipped 0.003, 0.01, 0.03; norm-clipped 0.1, 0.3, 1). A first long grid for the
  clipped arm, 0.03, 0.1, 0.3, chose its high edge on the tuning seeds: over 5,000 updates the runs
  at 0.3 reached 0% test error too, with the lowest training loss.
- full (not run; its grids and the shared rate are not checked on tuning seeds at that budget):
  the paper's lengths 50, 100, 150 and 200, up to 5M updates (the paper's cap; it stops at
  success, we run all), the rate grids centred on the paper's lr 0.01 (0.003, 0.01, 0.03 for both
  arms), the shared rate 1 for 10,000 updates, 50,000 fixed training sequences (the paper draws a
  fresh batch every update), 10,000 test sequences. The cliff is the same at long and full.

Full budget: about 180 GPU-hours on one data-centre GPU (248 trials with tuning, 641M updates,
26 PFLOP; `python -m studies.clipping_cliffs --budget full --replicate --estimate` shows the count
and its assumptions).
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
         "gradient norm keeps the step bounded, and on a long-memory RNN task clipped runs explode less "
         "and succeed at least as often.")
SOURCE = ("Pascanu, Mikolov & Bengio 2013, On the difficulty of training recurrent neural networks, "
          "arXiv 1211.5063, Fig. 6 (single-unit cliff) and Fig. 7 / sec. 4.1 (temporal order)")
VERSION = 4  # 4: quick cut to under 60 s of compute (fewer updates); the long budget
SEEDS = {"smoke": 2, "quick": 5, "long": 5, "full": 5}

THRESHOLD = 1.0  # clipping threshold: max gradient norm; the paper's 1
CLIPS = ["none", "norm"]  # every part compares these two arms
COLORS = {"none": "C0", "norm": "C1"}
TUNED, SHARED, WALL = "tuned rate", "shared rate", "wall"  # the `regime` factor: (c)'s arms, (b)'s, the cliff's
SUCCESS_ERR = 0.01  # final test error below 1% (the paper's criterion)
SUCCESS_MARGIN = 0.1  # non-inferiority margin on the success rate
EXPLODE = 10.0  # an explosion: a minibatch training loss above 10 x the loss before the first update
SPIKE = 10.0  # a gradient spike (table only): a pre-clipping grad norm above 10 x the clipping threshold
DATA_SEED = 1234  # the temporal-order data are fixed: the same sequences for every trial
GRID_W, GRID_B, GRID_N = (3.0, 7.0), (-4.5, -0.5), 501  # the figure's (w, b) window and grid

# the cliff: the unit (T, x0), its target, the start (w0 +- spread; b0 on the wall of w0's centre), SGD lr, updates
CLIFF = {"T": models.SINGLE_UNIT_T, "x0": models.SINGLE_UNIT_X0, "target": models.SINGLE_UNIT_TARGET,
         "w0": 5.25, "w0_spread": 0.75, "lr": 0.1, "steps": 500}
# (c): each clipping arm's rate grid (TUNE chooses per arm); (b): the shared rate and its shorter run
RNN = {"hidden": 50, "batch": 20, "lengths": [20], "steps": 1000, "n_train": 5000, "n_test": 1000, "log_every": 10,
       "lrs": {"none": [0.003, 0.01, 0.03], "norm": [0.1, 0.3, 1.0]},
       "shared": {"lr": 1.0, "steps": 300, "log_every": 1}}
SETUP = {
    "smoke": {"cliff": {**CLIFF, "steps": 30},
              "rnn": {**RNN, "lengths": [10], "steps": 30, "n_train": 200, "n_test": 100,
                      "lrs": {"none": [0.01], "norm": [0.3]}, "shared": {"lr": 1.0, "steps": 20, "log_every": 1}}},
    # quick (version 4): under a third of version 3's updates, each cut where the records show the arm
    # had settled (see the docstring's Budgets)
    "quick": {"cliff": {**CLIFF, "steps": 400},
              "rnn": {**RNN, "steps": 250, "evals": 5, "lrs": {"none": [0.01, 0.03, 0.1], "norm": [0.1, 0.3, 1.0]},
                      "shared": {"lr": 1.0, "steps": 100, "log_every": 1, "evals": 1}}},
    # long: length 30 and runs 5x longer than version 3's quick, long enough for unclipped runs at their own
    # rate to learn and to meet the cliffs (rates on tuning seeds 1000-1001: see the docstring's Budgets)
    "long": {"cliff": CLIFF, "rnn": {**RNN, "lengths": [30], "steps": 5000}},
    "full": {"cliff": CLIFF, "rnn": {**RNN, "lengths": [50, 100, 150, 200], "steps": 5_000_000, "n_train": 50_000,
                                     "n_test": 10_000, "log_every": 100,
                                     "lrs": {"none": [0.003, 0.01, 0.03], "norm": [0.003, 0.01, 0.03]},
                                     "shared": {"lr": 1.0, "steps": 10_000, "log_every": 1}}},
}
# each clipping arm of (c) gets its own rate, chosen on tuning seeds by a training metric; the cliff's and
# (b)'s arms have one rate each (a single level: not tuned, so not run on the tuning seeds)
TUNE = kit.Tune("lr", within=("task", "regime", "clip", "length"), score="train_loss_full", grids_only=True)

PAPER = """
| Pascanu et al. 2013 (status) | paper | here (quick; long: see Budgets) |
|---|---|---|
| Fig. 6 single unit, T = 50 (verified) | a wall in E(w, b); unclipped steps land far | same; starts across the wall |
| Fig. 6 lr, steps, clipping threshold | not given | lr 0.1, 400 updates (long: 500), threshold 1 |
| Temporal order: tanh RNN, 50 hidden (verified) | SGD lr 0.01, batch 20, threshold 1 | SGD, batch 20, threshold 1 |
| learning rate | 0.01 for MSGD and MSGD-C | own tuned lr (success); lr 1 for both (explosions) |
| lengths, updates (verified) | 50-250, up to 5M, 5 runs a point | 20; 250 (success), 100 (explosions); 5 + 5 seeds |
| success criterion (verified) | < 1% error on 10,000 test sequences | < 1% error on 1,000 |
| success rates vs length, MSGD / MSGD-C / MSGD-CR | Fig. 7, plots only (no numbers) | table below |

The paper's regularizer (MSGD-CR, weight 4) is not reproduced here. Our budgets are far shorter than
the paper's (quick: 250 updates at length 20, long: 5,000 at length 30, against up to 5M at 50-250):
compare directions (clipped vs unclipped), not success rates.
"""


def arms(budget: str) -> dict[str, kit.Arm]:
    """The single unit with and without norm clipping (length = its T); the RNN at each clipping arm's
    rate grid (tuned rate) and at the shared rate, per length."""
    c, r = SETUP[budget]["cliff"], SETUP[budget]["rnn"]
    out = {}
    b0 = models.single_unit_wall_b(c["w0"], steps=c["T"], x0=c["x0"], target=c["target"])  # the wall of w0's centre
    unit = ModelConfig("single_unit", 1, 1, "sigmoid", options={"w0": c["w0"], "w0_spread": c["w0_spread"],
                                                                "b0": b0, "steps": c["T"], "x0": c["x0"],
                                                                "target": c["target"]})
    for clip in CLIPS:
        trial = Trial(data=DataConfig("single_unit_target", options={"target": c["target"]}), model=unit,
                      optim=OptimConfig("sgd", lr=c["lr"], clip=clip, clip_threshold=THRESHOLD), steps=c["steps"],
                      batch_size=1, eval_every=max(1, c["steps"] // 50), monitors=("params",), monitor_every=1)
        out[f"cliff {clip}"] = kit.Arm(trial, {"task": "cliff", "regime": WALL, "clip": clip, "length": c["T"],
                                               "lr": c["lr"]})
    rnn = ModelConfig("rnn", 1, r["hidden"], "tanh", options={"init": "smart_tanh", "rho": 0.95, "sparsity": 15})
    sh = r["shared"]
    for length in r["lengths"]:
        data = DataConfig("temporal_order", options={"length": length, "n_train": r["n_train"],
                                                     "n_test": r["n_test"], "seed": DATA_SEED})
        # `evals`: test evaluations a run (10 unless said); the parts read only the first (the initial loss) and
        # the last, the explosions the log curve
        runs = [(TUNED, clip, lr, r["steps"], r["log_every"], r.get("evals", 10)) for clip in CLIPS
                for lr in r["lrs"][clip]]
        runs += [(SHARED, clip, sh["lr"], sh["steps"], sh["log_every"], sh.get("evals", 10)) for clip in CLIPS]
        for regime, clip, lr, steps, log_every, evals in runs:  # the default InitConfig leaves the rnn's own init
            trial = Trial(data=data, model=rnn, optim=OptimConfig("sgd", lr=lr, clip=clip, clip_threshold=THRESHOLD),
                          steps=steps, batch_size=r["batch"], eval_every=max(1, steps // evals), log_every=log_every)
            out[f"L={length} {clip} {regime} lr={lr:g}"] = kit.Arm(trial, {"task": "rnn", "regime": regime,
                                                                           "clip": clip, "length": length, "lr": lr})
    return out


def grid(c) -> dict[str, np.ndarray]:
    """The cliff's error and gradient over the figure's (w, b) window, for SETUP's T, x0, target."""
    w, b = np.meshgrid(np.linspace(*GRID_W, GRID_N), np.linspace(*GRID_B, GRID_N))
    return {**models.single_unit_grid(w, b, c["T"], c["x0"], c["target"]), "w": w, "b": b}


def paths(curves) -> pd.DataFrame | None:
    """(w, b) at every update of each cliff trial, with the distance from its start and the length
    of the update that led there (`step_len`, 0 at the start)."""
    m = curves.get("monitor")
    if m is None or "w" not in m:
        return None
    m = m[m["task"] == "cliff"].sort_values(["arm", "seed", "step"])
    start = m.groupby(["arm", "seed"])[["w", "b"]].transform("first")
    step = m.groupby(["arm", "seed"])[["w", "b"]].diff().fillna(0.0)
    return m.assign(dist=np.hypot(m["w"] - start["w"], m["b"] - start["b"]), step_len=np.hypot(step["w"], step["b"]))


def _col(t: pd.DataFrame, name: str) -> pd.Series:
    return t[name].astype(float)


def wall_offset(w0, b0, c) -> np.ndarray:
    """b0 minus the wall's b at w0 (the signed distance of a start from the wall, along b)."""
    return np.array([b - models.single_unit_wall_b(w, steps=c["T"], x0=c["x0"], target=c["target"])
                     if np.isfinite(w) and np.isfinite(b) else np.nan for w, b in zip(w0, b0)])


def measure(df, curves, ctx):
    """Per trial. Cliff: start (w0, b0), its offset from the wall and |grad E(start)|, the farthest
    distance from the start and the largest single update, `final_error` = the trial's test loss,
    which is its training error E on its one example. RNN: `initial_loss` (before the first update,
    the eval curve at step 0), the largest logged minibatch loss and its ratio to the initial loss,
    `exploded` (ratio above EXPLODE, or a non-finite loss: status not ok), `success` (finished,
    final test error < 1%), test error in %, spikes and the largest gradient norm from the log curve,
    share of clipped updates."""
    c = ctx.setup["cliff"]
    p = {"monitor": paths(curves)}
    t = df.assign(test_loss=_col(df, "test_loss"))
    for name, column, kw in (("w0", "w", {"at": ("step", 0)}), ("b0", "b", {"at": ("step", 0)}),
                             ("max_dist", "dist", {"agg": "max"}), ("max_step", "step_len", {"agg": "max"})):
        t = kit.curve_value(t, p, "monitor", column, name, **kw)
    cliff = t["task"] == "cliff"
    t["start_grad_norm"] = models.single_unit_grid(t["w0"], t["b0"], c["T"], c["x0"], c["target"])["grad_norm"]
    t["wall_offset"] = np.nan
    t.loc[cliff, "wall_offset"] = wall_offset(t.loc[cliff, "w0"], t.loc[cliff, "b0"], c)
    t["final_error"] = _col(t, "test_loss").where(cliff)
    rnn = t["task"] == "rnn"
    ok = t["status"] == "ok"
    t = kit.curve_value(t, curves, "eval", "test_loss", "initial_loss", at=("step", 0))
    t = kit.curve_value(t, curves, "log", "batch_loss", "max_batch_loss", agg="max")
    t["loss_ratio"] = (t["max_batch_loss"] / t["initial_loss"]).where(rnn)
    t["exploded"] = ((~ok) | (t["loss_ratio"] > EXPLODE)).astype(float).where(rnn)
    t["success"] = (ok & (_col(t, "test_err") < SUCCESS_ERR)).astype(float).where(rnn)
    t["test_err_pct"] = 100 * _col(t, "test_err")
    t["clipped_pct"] = 100 * _col(t, "clipped_steps") / _col(t, "steps").where(_col(t, "steps") > 0)
    log = curves.get("log")
    spikes = None if log is None else log.assign(spike=(log["grad_norm"] > SPIKE * THRESHOLD).astype(float))
    t = kit.curve_value(t, {"log": spikes}, "log", "spike", "spikes", agg="sum")
    return kit.curve_value(t, curves, "log", "grad_norm", "max_grad_norm", agg="max")


def verdict(t, ctx):
    c, r = ctx.setup["cliff"], ctx.setup["rnn"]
    ok = t["status"] == "ok"  # a run that did not finish exploded and never succeeded, whatever its other columns
    t = t.assign(exploded=t["exploded"].where(ok, 1.0), success=t["success"].where(ok, 0.0))
    return [
        kit.difference(t, "final_error", {"clip": "none"}, {"clip": "norm"}, where={"task": "cliff"},
                       part="cliff: error after the last update", unit="squared error", above=0.0,
                       worst=max(c["target"], 1 - c["target"]) ** 2,
                       claim=f"single unit started near the wall (a seeded spread of starts on both sides), SGD lr "
                             f"{c['lr']:g}: unclipped minus norm-clipped error E after {c['steps']} updates > 0",
                       note="E is each trial's training error on its one example (its test loss)."),
        kit.paired_rates(t, "exploded", {"clip": "none"}, {"clip": "norm"}, where={"task": "rnn", "regime": SHARED},
                         part="explosion (RNN, shared rate)",
                         claim=f"at the shared lr {r['shared']['lr']:g}, share of seeds with an exploded run at any "
                               "length, unclipped minus norm-clipped > 0 (paired by seed)",
                         what=f"seeds with an exploded run (minibatch loss above {EXPLODE:g}x the initial loss, or "
                              "not finite)", above=0.0, per_seed="any"),
        kit.paired_rates(t, "success", {"clip": "norm"}, {"clip": "none"}, where={"task": "rnn", "regime": TUNED},
                         part="success (RNN, own tuned rates)",
                         claim=f"each arm at its own tuned rate, share of seeds that succeed (final test error < "
                               f"{100 * SUCCESS_ERR:g}%) at every length, norm-clipped minus unclipped > "
                               f"-{SUCCESS_MARGIN:g} (non-inferiority, paired by seed)",
                         what=f"seeds whose runs all end with test error < {100 * SUCCESS_ERR:g}%",
                         above=-SUCCESS_MARGIN, per_seed="all"),
    ]


def _success(g: pd.DataFrame, event: str = "success") -> str:
    k = int(g[event].sum())
    rate, ci = stats.rate_interval(k, len(g))
    return f"{k}/{len(g)} = {rate:.2f} {stats.interval_text(ci, '.2f')}"


def tables(t, curves, ctx):
    rnn, cliff = kit.select(t, {"task": "rnn"}), kit.select(t, {"task": "cliff"})
    rnn = rnn.assign(exploded=rnn["exploded"].where(rnn["status"] == "ok", 1.0),
                     success=rnn["success"].where(rnn["status"] == "ok", 0.0))
    per_arm = kit.summary(rnn, "test_err_pct", ["regime", "length", "clip", "lr"], name="final test error %",
                          order={"regime": [TUNED, SHARED], "clip": CLIPS}, extra={
                              "final test loss (nats)": "test_loss",
                              "largest minibatch loss / initial loss (mean)": "loss_ratio",
                              "clipped updates %": "clipped_pct", "max grad norm (mean over seeds)": "max_grad_norm",
                              f"logged updates with grad norm > {SPIKE * THRESHOLD:g} (mean)": "spikes"})
    cells = [kit.select(rnn, {"regime": g, "length": n, "clip": c})
             for g, n, c in zip(per_arm["regime"], per_arm["length"], per_arm["clip"])]
    per_arm.insert(4, "success, 95% CI (Clopper-Pearson)", [_success(g) for g in cells])
    per_arm.insert(5, f"exploded (loss > {EXPLODE:g}x initial, or not finite)",
                   [_success(g, "exploded") for g in cells])
    tuning = kit.tuning_table(ctx, show={"final test error (mean)": "test_err", "clipped updates": "clipped_steps"},
                              order={"regime": [WALL, TUNED, SHARED], "clip": CLIPS})
    error = kit.summary(cliff, "final_error", ["clip"], name="error E after the last update", fmt=".2g",
                        order={"clip": CLIPS}, extra={"clipped updates %": "clipped_pct",
                                                      "farthest from the start (mean)": "max_dist",
                                                      "largest single update (mean)": "max_step"})
    none, norm = (kit.select(cliff, {"clip": c}).set_index("seed").sort_index() for c in CLIPS)
    demo = pd.DataFrame({"w0": none["w0"], "b0": none["b0"], "b0 minus the wall's b at w0": none["wall_offset"],
                         "|grad E(start)|": none["start_grad_norm"],
                         "largest update, unclipped": none["max_step"], "largest update, clipped": norm["max_step"],
                         "E after the last update, unclipped": none["final_error"],
                         "E after the last update, clipped": norm["final_error"],
                         "wall ratio of the grid (max / median |grad E|)": models.wall_ratio(grid(ctx.setup["cliff"]))})
    return {"RNN on temporal order: per regime, length and clipping": per_arm,
            "tuning seeds: each arm's rate grid (chosen by final training loss)": tuning,
            "single-unit cliff: error after the last update (part a)": error,
            "single-unit cliff per start, demonstration (the largest clipped update is at most lr x threshold by "
            "construction; not a verdict part)": demo.reset_index()}


def figures(t, curves, ctx):
    c, r = ctx.setup["cliff"], kit.select(t, {"task": "rnn"})
    g, p = grid(c), paths(curves)
    fig, (a1, a2, a3, a4) = plots.figure(4, width=4.8, height=4.4)
    fig.colorbar(a1.contourf(g["w"], g["b"], g["loss"], levels=20, cmap="viridis"), ax=a1, label="error E")
    # the wall on top of the paths that run along it (else they hide it)
    a1.contour(g["w"], g["b"], g["grad_norm"], levels=[10.0], colors="magenta", linewidths=1.4, linestyles="--",
               zorder=4)
    for (clip, seed), q in ([] if p is None else p.groupby(["clip", "seed"])):
        a1.plot(q["w"], q["b"], "-", color=COLORS[clip], lw=1.4, label=clip if seed == p["seed"].min() else None)
        a1.plot(q["w"].iloc[0], q["b"].iloc[0], "o", color="white", mec="k", ms=5)
    big = kit.select(t, {"task": "cliff", "clip": "none"})["max_step"]
    a1.text(0.97, 0.97, f"largest unclipped update:\nmedian {big.median():.3g} long", transform=a1.transAxes,
            ha="right", va="top", fontsize="small", color="white")
    a1.set(xlim=GRID_W, ylim=GRID_B, xlabel="w", ylabel="b",
           title=f"Error (sigmoid(x_{c['T']}) - {c['target']:g})^2 and its wall")
    a1.legend(title="clipping", fontsize="small", loc="lower left")
    if p is not None:
        plots.curves(a2, p[p["step"] > 0], "step", "dist", "clip", "update", "distance from the start",
                     "Distance travelled", logy=True, hue_order=CLIPS)
        ev = kit.select(curves["eval"], {"task": "cliff"}).assign(error=lambda d: d["test_loss"].clip(lower=1e-8))
        # the seeds' errors span seven decades: a min-max band would fill the axes; the middle half shows the arms
        plots.theme().lineplot(data=ev, x="step", y="error", hue="clip", hue_order=CLIPS, errorbar=("pi", 50), ax=a3)
        a3.set(yscale="log", xlabel="update", ylabel="error E", title="Error (band: middle half of the seeds)")
        a3.legend(title=None, fontsize="small")
        a2.get_legend().remove()  # the same arms and colours as the error panel's legend
    cliff_part = next(p for p in verdict(t, ctx) if p.part.startswith("cliff"))
    plots.parts(a4, [cliff_part], ["none - norm"], "final error E, unclipped minus clipped", "The cliff part")
    plots.caption(fig, f"Single unit x_t = w sigmoid(x_(t-1)) + b, T = {c['T']}; one start per seed near the wall "
                       f"(white dots); SGD lr {c['lr']:g}, no clipping (none) or norm clipping at {THRESHOLD:g} "
                       f"(norm). Left: magenta dashes, |grad E| = 10 (the wall); an unclipped path that meets the wall "
                       f"leaves the window. Distance: {plots.BAND_LABEL}. Error: line, mean over seeds; band, "
                       "25th-75th percentile. Right: the part, paired by seed; above the dashed line (0) is the "
                       "claimed side")

    log = curves.get("log", pd.DataFrame(columns=["task", "regime", "seed", "length", "clip", "step", "grad_norm",
                                                  "batch_loss"]))
    log = kit.select(log, {"task": "rnn"})
    seed = min(r["seed"], default=0)
    fig2, (b1, b2, b3) = plots.figure(3, width=5.0, height=4.0)
    # one seed's two traces cross and coincide: a dash and a marker each, so neither hides the other
    plots.theme().lineplot(data=kit.select(log, {"regime": TUNED, "seed": seed}), x="step", y="grad_norm", hue="clip",
                           style="clip", hue_order=CLIPS, style_order=CLIPS, dashes={"none": "", "norm": (4, 2)},
                           markers={"none": "o", "norm": "^"}, markevery=10, markersize=4, ax=b1)
    b1.set(yscale="log", xlabel="update", ylabel="gradient norm before clipping", title=f"Own tuned rates, seed {seed}")
    b1.legend(title=None, fontsize="small")
    b1.axhline(THRESHOLD, color="k", lw=0.8, ls=":")
    shared = kit.select(log, {"regime": SHARED})
    init = kit.select(curves.get("eval", pd.DataFrame(columns=["task", "arm", "seed", "step", "test_loss"])),
                      {"task": "rnn"})
    init = init[init["step"] == 0].set_index(["arm", "seed"])["test_loss"]
    if len(shared):
        shared = shared.assign(ratio=shared["batch_loss"].to_numpy()
                               / init.reindex(pd.MultiIndex.from_frame(shared[["arm", "seed"]])).to_numpy())
        plots.curves(b2, shared, "step", "ratio", "clip", "update", "minibatch loss / initial loss",
                     f"Shared lr {ctx.setup['rnn']['shared']['lr']:g}, all seeds", logy=True, hue_order=CLIPS)
        b2.get_legend().remove()  # the left panel's colours; a legend here would sit on the bands
    b2.axhline(EXPLODE, color="k", lw=0.8, ls=":")
    for ax in (b1, b2):
        for line in ax.lines:  # thin: a trace has a point per logged update
            line.set(lw=0.7, alpha=0.8)
    rnn_parts = [p for p in verdict(t, ctx) if "(RNN" in p.part]
    plots.parts(b3, rnn_parts, ["explosion", "success"], "difference in share of seeds",
                "The RNN parts", fmt=".2f")
    plots.caption(fig2, f"tanh RNN, 50 hidden, SGD batch 20, length {', '.join(map(str, sorted(r['length'].unique())))}"
                        f". Left: one seed, each arm at its own tuned rate; dotted: the clipping threshold "
                        f"{THRESHOLD:g}. Middle: both arms at the shared rate; dotted: the explosion threshold "
                        f"{EXPLODE:g}x; {plots.BAND_LABEL}. Right: explosion, unclipped's minus clipped's share of "
                        "seeds with an exploded run (claimed: above 0); success, clipped's minus unclipped's share of "
                        f"seeds that succeed (claimed: above -{SUCCESS_MARGIN:g}); dashed: each part's threshold")

    fig3, (c1, c2) = plots.figure(2, width=6.5)
    r = r.assign(arm_label=r["regime"].str.split().str[0] + " L=" + r["length"].astype(str) + "\n" + r["clip"]
                 + ", lr " + r["lr"].map("{:g}".format))
    order = sorted(r["arm_label"].unique(), key=lambda s: (not s.startswith(TUNED.split()[0]), s))
    plots.points(c1, r, "arm_label", "test_loss", "", "final test loss (nats)", "Final test loss", order=order)
    c1.axhline(np.log(4), color="k", lw=0.8, ls=":")
    c1.set_yscale("log")
    plots.points(c2, r, "arm_label", "test_err_pct", "", "final test error (%)", "Final test error", order=order)
    plots.caption(fig3, plots.POINTS_LABEL + "; dotted: ln 4, chance level; diverged trials have no final value")
    return {"cliff": fig, "grad_norm_traces": fig2, "rnn_final": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
