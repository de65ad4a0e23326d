"""Cliffs and gradient clipping (Pascanu, Mikolov & Bengio 2013).

Part 1, the cliff (the paper's Fig. 6). The single recurrent unit
x_t = w sigmoid(x_{t-1}) + b, x_0 = 0.5, T = 50, error E = (sigmoid(x_50) - 0.7)^2.
For w above about 4.25 the map has two stable fixed points and an unstable one;
on the line b = 0.5 - w sigmoid(0.5) the start x_0 is the unstable fixed point, and
crossing it flips x_50 from one basin to the other: a wall of huge gradients (it
thins as w grows, the gradient growing like (w sigmoid'(0.5))^50). The loss
surface and its gradient norm over a (w, b) grid are a deterministic function
(oplab.tasks.single_unit_grid, exact forward-mode gradients in float64); the
figure draws them and the "wall exists" part of the verdict reads them. The
trajectories are trained trials: the `single_unit` model (float64) on a dataset of
one dummy example whose target is 0.7, plain SGD at lr 0.1 for 500 updates, with
no clipping or with norm clipping at 1 (the paper's threshold), the `params`
monitor recording (w, b) after every update. Each seed draws w0 uniformly in
[4.5, 6.0] and starts on the wall for that w0 (the b with the largest gradient
norm on a fine scan across the wall line), so both arms of a seed start at the same
point and the seeds give a spread of starts along the wall. The paper gives no
learning rate or step count for Fig. 6; lr 0.1 and 500 updates were set so that a
clipped step (0.1) is small against the figure's scale and gradient descent has
time to settle. Part (c) depends on that horizon: clipped steps of length 0.1
travel slowly, and after only 200 updates the clipped runs from starts with
w0 >= 5.5 have not yet reached the target and still sit above the unclipped ones.

Part 2, statistics (the paper's Fig. 7 setting, scaled down). A tanh RNN with 50
hidden units (the paper's "smart tanh" init: input and output weights
N(0, 0.01^2), recurrent weights N(0, 0.01^2) with 15 non-zero incoming weights a
unit, rescaled to spectral radius 0.95, zero biases; set through the `rnn`
model's options, since oplab.init only touches Linear/Conv weights, so these
trials use InitConfig("default")) reads the temporal order problem (generated as in
Pascanu's tempOrder.py; 5,000 fixed training and 1,000 fixed test sequences) and
predicts the order class from the last step. Plain SGD, batch 20, clipping
threshold 1 (the paper's): no clipping vs norm clipping vs value clipping, equal
updates, five seeds (the seed sets the init and batch order; the data are fixed).
At `quick`, 2,000 updates at lengths 20 and 40 with lr 0.1: at the paper's
lr 0.01 and length 50 nothing is learned within a quick budget (the test loss
stays at ln 4 with gradient norms below 0.5, so neither spikes nor success can be
seen), while at lr 0.1 and length 20 the gradient spikes appear within a few
hundred updates. Success: final test error below 1% (the paper's criterion,
on 1,000 rather than 10,000 test sequences), measured once at the end.
Divergence: a non-finite loss or gradient (the trial's status).

Verdict (computed from the records and the deterministic grid):
(a) the wall exists: max / median gradient norm on the figure's grid > 1e3;
(b) from a start on the wall the unclipped first step carries the parameters many
    times farther than the clipped one: log10 of the ratio of first-step
    displacements > 1 (10x), paired by seed;
(c) after the same number of updates the unclipped run ends at a higher loss:
    unclipped minus clipped final error > 0, paired by seed;
(d) on the RNN task norm-clipped runs diverge less: divergence rate unclipped minus
    clipped > 0, paired by (length, seed); inconclusive when no run diverges;
(e) norm-clipped runs succeed at least as often: success rate clipped minus
    unclipped > -0.1 (non-inferiority margin: one run in ten), paired by (length,
    seed); inconclusive when no run of either arm succeeds.

Evidence (quick, 5 seeds; seeds 0-4 and again 10-14, same numbers to two digits unless
shown): wall ratio 1.9e5; unclipped first step 10^4.3 (10^4.5) times the clipped one;
error after 500 updates 0.090 unclipped (a plateau: sigmoid saturated at 1) vs 1e-4 clipped;
RNN: no run diverged in any arm (part (d) inconclusive); success none 0/10, norm 7/10
(L=20: 5/5, L=40: 2/5), value 1/10 in both seed sets; unclipped runs end above chance
(test loss 1.4-1.5 > ln 4). Wall time about 4 min with --jobs 2 on 2 shared cores.

Full budget: the paper's setting, lr 0.01, batch 20, lengths 50, 100, 150 and 200,
up to 5M updates (the paper's cap; it stops at success, we run all updates), 5
seeds, 50,000 fixed training sequences (the paper draws a fresh batch every
update) and 10,000 test sequences. Part 1 is the same at every budget but smoke.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, plots, stats, tasks
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "clipping_cliffs"
TITLE = "Cliffs and gradient clipping"
CLAIM = ("Cliffs in the loss landscape make an unclipped gradient step careen far away; clipping the "
         "gradient norm keeps the step bounded, and on a long-memory RNN task clipped runs diverge less "
         "and succeed at least as often.")
SOURCE = ("Pascanu, Mikolov & Bengio 2013, On the difficulty of training recurrent neural networks, "
          "arXiv 1211.5063, Fig. 6 (single-unit cliff) and Fig. 7 / sec. 4.1 (temporal order)")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "full": 5}

THRESHOLD = 1.0  # clipping threshold: max gradient norm (norm) or max |component| (value); the paper's 1
CLIPS = {"none": "none", "norm": "norm", "value": "value"}
CLIP_ORDER = list(CLIPS)
CLIFF_LR = 0.1  # SGD step per update on the single unit (error of one example)
CLIFF_W0, CLIFF_SPREAD = 5.25, 0.75  # w0 ~ U[4.5, 6.0] per seed, b0 on the wall
WALL_RATIO = 1e3
DISPLACEMENT_RATIO = 10.0  # "many times farther": at least 10x
SUCCESS_ERR = 0.01  # final test error below 1% (the paper's criterion)
SUCCESS_MARGIN = 0.1  # non-inferiority margin on the success rate
SPIKE = 10.0  # a gradient spike: a pre-clipping grad norm above 10 x the clipping threshold
# the figure's (w, b) window and grid, also used by verdict (a)
GRID_W, GRID_B, GRID_N = (3.0, 7.0), (-4.5, -0.5), 501

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


def _setup(budget: str) -> dict:
    if budget == "smoke":
        return dict(cliff_steps=30, lengths=[10, 20], steps=30, lr=0.1, n_train=200, n_test=100, log_every=1)
    if budget == "quick":
        return dict(cliff_steps=500, lengths=[20, 40], steps=2000, lr=0.1, n_train=5000, n_test=1000, log_every=1)
    if budget == "full":
        return dict(cliff_steps=500, lengths=[50, 100, 150, 200], steps=5_000_000, lr=0.01, n_train=50_000,
                    n_test=10_000, log_every=100)
    raise ValueError(f"unknown budget {budget!r}")


def arms(budget: str) -> dict[str, Trial]:
    """Part 1: the single unit with and without norm clipping; Part 2: RNN x length x clipping."""
    s = _setup(budget)
    out: dict[str, Trial] = {}
    for clip in ("none", "norm"):
        out[f"cliff {clip}"] = Trial(
            data=DataConfig("single_unit_target", options={"target": tasks.SINGLE_UNIT_TARGET}),
            model=ModelConfig("single_unit", 1, 1, "sigmoid", options={
                "w0": CLIFF_W0, "w0_spread": CLIFF_SPREAD, "b0": None,
                "steps": tasks.SINGLE_UNIT_T, "x0": tasks.SINGLE_UNIT_X0}),
            init=InitConfig("default"),
            optim=OptimConfig("sgd", lr=CLIFF_LR, clip=clip, clip_threshold=THRESHOLD),
            steps=s["cliff_steps"], batch_size=1, eval_every=max(1, s["cliff_steps"] // 50), log_every=1,
            monitors=("params",), monitor_every=1,
        )
    for length in s["lengths"]:
        data = DataConfig("temporal_order", options={"length": length, "n_train": s["n_train"],
                                                     "n_test": s["n_test"], "seed": 1234})
        for clip in CLIP_ORDER:
            out[f"L={length} {clip}"] = Trial(
                data=data,
                model=ModelConfig("rnn", 1, 50, "tanh", options={"init": "smart_tanh", "rho": 0.95, "sparsity": 15}),
                init=InitConfig("default"),  # the rnn model sets its own (the paper's) init
                optim=OptimConfig("sgd", lr=s["lr"], clip=CLIPS[clip], clip_threshold=THRESHOLD),
                steps=s["steps"], batch_size=20, eval_every=max(1, s["steps"] // 20), log_every=s["log_every"],
            )
    return out


# --- reading the records


def _cliff(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df["cfg.model.name"] == "single_unit"].copy()
    d["clip"] = d["cfg.optim.clip"]
    return d


def _rnn(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df["cfg.model.name"] == "rnn"].copy()
    d["clip"] = d["cfg.optim.clip"]
    d["length"] = d["cfg.data.options.length"].astype(int)
    d["pair"] = d["length"].astype(str) + ":" + d["seed"].astype(str)
    d["diverged"] = (d["status"] != "ok").astype(float)
    err = d["test_err"] if "test_err" in d else pd.Series(np.nan, index=d.index)
    d["success"] = ((d["status"] == "ok") & (err < SUCCESS_ERR)).astype(float)
    return d


def _paths(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """(w, b) after every update of each cliff trial, with the distance from its start."""
    if "monitor" not in curves:
        return pd.DataFrame(columns=["arm", "seed", "step", "w", "b", "clip", "dist"])
    arms_ = dict(zip(_cliff(df)["arm"], _cliff(df)["clip"]))
    m = curves["monitor"]
    m = m[m["arm"].isin(arms_)].sort_values(["arm", "seed", "step"]).copy()
    m["clip"] = m["arm"].map(arms_)
    start = m.groupby(["arm", "seed"])[["w", "b"]].transform("first")
    m["dist"] = np.hypot(m["w"] - start["w"], m["b"] - start["b"])
    return m


def _cliff_summary(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per cliff trial: start, first-step displacement, farthest distance, final error."""
    p = _paths(df, curves)
    rows = []
    for (arm, seed), g in p.groupby(["arm", "seed"]):
        g = g.set_index("step")
        first = float(g.loc[1, "dist"]) if 1 in g.index else np.nan
        rows.append({"arm": arm, "seed": seed, "clip": g["clip"].iloc[0], "w0": g.loc[0, "w"],
                     "b0": g.loc[0, "b"], "first_step": first, "max_dist": g["dist"].max(),
                     "end_w": g["w"].iloc[-1], "end_b": g["b"].iloc[-1]})
    s = pd.DataFrame(rows, columns=["arm", "seed", "clip", "w0", "b0", "first_step", "max_dist", "end_w", "end_b"])
    c = _cliff(df)[["arm", "seed", "test_loss", "status", "clipped_steps"]] if "test_loss" in df else None
    if c is not None:
        s = s.merge(c, on=["arm", "seed"], how="left")
        g0 = tasks.single_unit_grid(s["w0"].to_numpy(float), s["b0"].to_numpy(float))
        s["start_loss"], s["start_grad_norm"] = g0["loss"], g0["grad_norm"]
    return s


def _grid() -> dict[str, np.ndarray]:
    w, b = np.meshgrid(np.linspace(*GRID_W, GRID_N), np.linspace(*GRID_B, GRID_N))
    g = tasks.single_unit_grid(w, b)
    g.update(w=w, b=b)
    return g


def _spikes(curves: dict[str, pd.DataFrame]) -> pd.DataFrame:
    if "log" not in curves:
        return pd.DataFrame(columns=["arm", "seed", "max_grad_norm", "spikes"])
    rows = []
    for (arm, seed), g in curves["log"].groupby(["arm", "seed"]):
        gn = g["grad_norm"].to_numpy(float)
        rows.append({"arm": arm, "seed": seed, "max_grad_norm": float(np.max(gn)) if len(gn) else np.nan,
                     "spikes": int((gn > SPIKE * THRESHOLD).sum())})
    return pd.DataFrame(rows)


# --- verdict


def verdict(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> list[stats.Verdict]:
    g = _grid()
    ratio = tasks.wall_ratio(g)
    v1 = stats.effect_verdict(
        "wall exists", f"max / median gradient norm of the single unit's error on the (w, b) grid > {WALL_RATIO:g}",
        [ratio], "ratio", f"reproduced if the ratio is above {WALL_RATIO:g} (a deterministic function: no CI)",
        f"On a {GRID_N}x{GRID_N} grid over w in {GRID_W}, b in {GRID_B} the largest gradient norm is "
        f"{np.nanmax(g['grad_norm']):.3g}, the median {np.nanmedian(g['grad_norm']):.3g}: ratio {{effect:.3g}}.",
        above=WALL_RATIO)

    s = _cliff_summary(df, curves)
    wide = s.pivot_table(index="seed", columns="clip", values="first_step")
    logr = (np.log10(wide["none"] / wide["norm"]).dropna().to_numpy()
            if {"none", "norm"} <= set(wide) else np.array([]))
    v2 = stats.effect_verdict(
        "first step off the wall", f"log10(unclipped / clipped first-step displacement) > "
        f"{np.log10(DISPLACEMENT_RATIO):g} ({DISPLACEMENT_RATIO:g}x), same start, same lr",
        logr, "log10 ratio", "reproduced if the CI is above 1",
        "From a start on the wall the unclipped first step is 10^{effect:.2f} times the clipped one (95% CI "
        "[10^{lo:.2f}, 10^{hi:.2f}], n={n} starts; " + (
            f"median displacement {wide['none'].median():.3g} vs {wide['norm'].median():.3g}; lr {CLIFF_LR:g})."
            if {"none", "norm"} <= set(wide) else "no paths)."), above=np.log10(DISPLACEMENT_RATIO))

    loss = s.pivot_table(index="seed", columns="clip", values="test_loss") if "test_loss" in s else pd.DataFrame()
    dl = (loss["none"] - loss["norm"]).dropna().to_numpy() if {"none", "norm"} <= set(loss) else np.array([])
    steps = int(_cliff(df)["steps"].max()) if len(_cliff(df)) else 0
    v3 = stats.effect_verdict(
        "loss after N steps", f"unclipped minus clipped error after {steps} updates > 0", dl, "error (squared)",
        "reproduced if the CI is above 0",
        f"After {steps} updates the unclipped run's error is {{effect:+.3g}} above the clipped one's (95% CI "
        "[{lo:+.3g}, {hi:+.3g}], n={n} starts); " + (
            f"mean error unclipped {loss['none'].mean():.3g}, clipped {loss['norm'].mean():.3g}."
            if {"none", "norm"} <= set(loss) else "no records."), above=0.0)

    r = _rnn(df)
    div = stats.paired_differences(r, "diverged", "none", "norm", arm="clip", pair_on="pair")
    n_div = r.groupby("clip")["diverged"].sum()
    div_text = ", ".join(f"{c} {int(n_div.get(c, 0))}/{int((r['clip'] == c).sum())}" for c in CLIP_ORDER)
    rule4 = "reproduced if the CI is above 0; inconclusive when no run of either arm diverges"
    claim4 = "divergence rate, unclipped minus norm-clipped > 0 (paired by length and seed)"
    if len(div) and n_div.get("none", 0) + n_div.get("norm", 0) == 0:
        v4 = stats.Verdict("divergence (RNN)", claim4, 0.0, (0.0, 0.0), "rate", rule4, "inconclusive",
                           f"No run diverged (non-finite loss) in either arm: {div_text}.", len(div))
    else:
        v4 = stats.effect_verdict(
            "divergence (RNN)", claim4, div, "rate", rule4,
            "Unclipped runs diverge {effect:+.2f} more often than norm-clipped ones (95% CI [{lo:+.2f}, {hi:+.2f}], "
            f"n={{n}} pairs); diverged: {div_text}.", above=0.0)

    suc = stats.paired_differences(r, "success", "norm", "none", arm="clip", pair_on="pair")
    n_suc = r.groupby("clip")["success"].sum()
    suc_text = ", ".join(f"{c} {int(n_suc.get(c, 0))}/{int((r['clip'] == c).sum())}" for c in CLIP_ORDER)
    rule5 = (f"reproduced if the CI is above -{SUCCESS_MARGIN:g}; inconclusive when no run of either arm "
             "succeeds")
    claim5 = (f"success rate (final test error < {100 * SUCCESS_ERR:g}%), norm-clipped minus unclipped "
              f"> -{SUCCESS_MARGIN:g} (paired by length and seed)")
    if len(suc) and n_suc.get("none", 0) + n_suc.get("norm", 0) == 0:
        v5 = stats.Verdict("success (RNN)", claim5, 0.0, (0.0, 0.0), "rate", rule5, "inconclusive",
                           f"No run of either arm reached the success criterion at this budget: {suc_text}.",
                           len(suc))
    else:
        v5 = stats.effect_verdict(
            "success (RNN)", claim5, suc, "rate", rule5,
            "Norm-clipped runs succeed {effect:+.2f} more often than unclipped ones (95% CI [{lo:+.2f}, {hi:+.2f}], "
            f"n={{n}} pairs); successes: {suc_text}.", above=-SUCCESS_MARGIN)
    return [v1, v2, v3, v4, v5]


# --- tables and figures


def tables(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    r = _rnn(df).merge(_spikes(curves), on=["arm", "seed"], how="left")
    rows = []
    for (length, clip), g in r.groupby(["length", "clip"]):
        ok = g[g["status"] == "ok"]
        loss = ok["test_loss"].dropna() if "test_loss" in ok else pd.Series(dtype=float)
        err = 100 * ok["test_err"].dropna() if "test_err" in ok else pd.Series(dtype=float)
        sl, sh = stats.bootstrap_ci(g["success"])
        ll, lh = stats.bootstrap_ci(loss)
        rows.append({
            "length": length, "clipping": clip, "seeds": len(g), "diverged": int(g["diverged"].sum()),
            "success rate": g["success"].mean(), "success 95% CI": f"[{sl:.2f}, {sh:.2f}]",
            "final test loss (mean)": loss.mean(), "loss 95% CI": f"[{ll:.3f}, {lh:.3f}]",
            "final test error %": err.mean(), "clipped updates %": 100 * (g["clipped_steps"] / g["cfg.steps"]).mean(),
            "max grad norm (median over seeds)": g["max_grad_norm"].median(),
            f"updates with grad norm > {SPIKE * THRESHOLD:g}, mean": g["spikes"].mean(),
        })
    order = {c: i for i, c in enumerate(CLIP_ORDER)}
    t2 = pd.DataFrame(rows)
    if len(t2):
        t2 = t2.sort_values(["length", "clipping"], key=lambda s: s.map(order) if s.name == "clipping" else s)
    s = _cliff_summary(df, curves)
    cols = ["clip", "seed", "w0", "b0", "start_grad_norm", "start_loss", "first_step", "max_dist", "end_w", "end_b",
            "test_loss", "clipped_steps"]
    t1 = s[[c for c in cols if c in s]].rename(columns={"test_loss": "error after N updates"})
    return {"RNN on temporal order: per length and clipping": t2.reset_index(drop=True),
            "single-unit cliff: per start": t1.sort_values(["seed", "clip"]).reset_index(drop=True)}


def figures(df: pd.DataFrame, curves: dict[str, pd.DataFrame]) -> dict:
    g = _grid()
    p = _paths(df, curves)
    fig, (a1, a2, a3) = plots.figure(3, width=5.6, height=4.4)
    cs = a1.contourf(g["w"], g["b"], g["loss"], levels=20, cmap="viridis")
    fig.colorbar(cs, ax=a1, label="error E")
    gn = np.clip(g["grad_norm"], 1e-6, None)
    a1.contour(g["w"], g["b"], gn, levels=[10.0], colors="white", linewidths=0.8, linestyles="--")
    labels = {"none": "SGD, no clipping", "norm": "SGD, norm clipping"}
    palette = {labels["none"]: "C3", labels["norm"]: "C1"}
    seeds = sorted(p["seed"].unique()) if len(p) else []
    for clip in ("norm", "none"):
        for i, seed in enumerate(seeds):
            q = p[(p["clip"] == clip) & (p["seed"] == seed)]
            if q.empty:
                continue
            a1.plot(q["w"], q["b"], "-", color=palette[labels[clip]], lw=1.4, alpha=0.9,
                    label=labels[clip] if i == 0 else None)
            a1.plot(q["w"].iloc[0], q["b"].iloc[0], "o", color="white", mec="k", ms=5)
    if len(p):
        far = p[(p["clip"] == "none") & (p["step"] == 1)]
        a1.text(0.97, 0.97, f"unclipped 1st step:\nmedian {far['dist'].median():.3g} long", transform=a1.transAxes,
                ha="right", va="top", fontsize="small", color="white")
    a1.set_xlim(*GRID_W)
    a1.set_ylim(*GRID_B)
    a1.set_xlabel("w")
    a1.set_ylabel("b")
    a1.set_title("Error (sigmoid(x_50) - 0.7)^2 and its wall")
    a1.legend(fontsize="small", loc="lower left")
    if len(p):
        import seaborn as sns

        q = p[p["step"] > 0].copy()
        q["clipping"] = q["clip"].map(labels)
        sns.lineplot(data=q, x="step", y="dist", hue="clipping", palette=palette, errorbar=plots.BAND, ax=a2)
        a2.set(yscale="log", xlabel="update", ylabel="distance from the start", title="Distance travelled")
        ev = curves["eval"]
        ev = ev[ev["arm"].isin(p["arm"].unique())].copy()
        ev["clipping"] = ev["arm"].map(dict(zip(p["arm"], p["clip"]))).map(labels)
        ev["error"] = ev["test_loss"].clip(lower=1e-8)
        sns.lineplot(data=ev, x="step", y="error", hue="clipping", palette=palette, errorbar=plots.BAND, ax=a3)
        a3.set(yscale="log", xlabel="update", ylabel="error E", title="Error")
        for ax in (a2, a3):
            ax.legend(title=None, fontsize="small")
    fig.subplots_adjust(wspace=0.4)
    plots.caption(fig, f"Single unit x_t = w sigmoid(x_(t-1)) + b, T = 50; one start per seed on the wall; SGD lr "
                       f"{CLIFF_LR:g}, clipping threshold {THRESHOLD:g}. Left: dashed, |grad E| = 10; the "
                       "unclipped paths leave the window at their first step. " + plots.BAND_LABEL)

    r = _rnn(df)
    log = curves.get("log", pd.DataFrame(columns=["arm", "seed", "step", "grad_norm"]))
    log = log[log["arm"].isin(r["arm"].unique())].copy()
    info = r.drop_duplicates("arm").set_index("arm")[["length", "clip"]]
    log = log.join(info, on="arm")
    lengths = sorted(r["length"].unique())
    fig2, axes = plots.figure(max(1, len(lengths)), width=5.5, height=4.0)
    first_seed = min(r["seed"]) if len(r) else 0
    for ax, length in zip(axes, lengths):
        for clip in CLIP_ORDER:
            q = log[(log["length"] == length) & (log["clip"] == clip) & (log["seed"] == first_seed)]
            ax.plot(q["step"], q["grad_norm"], lw=0.7, alpha=0.8, label=clip,
                    color={"none": "C3", "norm": "C1", "value": "C0"}[clip])
        ax.axhline(THRESHOLD, color="k", lw=0.8, ls=":")
        ax.set_yscale("log")
        ax.set_xlabel("update")
        ax.set_ylabel("gradient norm before clipping")
        ax.set_title(f"Temporal order, length {length}, seed {first_seed}")
        ax.legend(title="clipping", fontsize="small")
    plots.caption(fig2, f"tanh RNN, 50 hidden, SGD batch 20; dotted: the clipping threshold {THRESHOLD:g}.")

    fig3, (c1, c2) = plots.figure(2)
    if len(r):
        r["arm_label"] = "L=" + r["length"].astype(str) + "\n" + r["clip"]
        order = [f"L={n}\n{c}" for n in lengths for c in CLIP_ORDER]
        r["test_loss_plot"] = r.get("test_loss", pd.Series(np.nan, index=r.index))
        plots.points(c1, r, "arm_label", "test_loss_plot", "", "final test loss (nats)", "Final test loss", order=order)
        c1.axhline(np.log(4), color="k", lw=0.8, ls=":")
        r["test_err_pct"] = 100 * r.get("test_err", pd.Series(np.nan, index=r.index))
        plots.points(c2, r, "arm_label", "test_err_pct", "", "final test error (%)", "Final test error", order=order)
    plots.caption(fig3, "grey: one seed; red: mean with bootstrap 95% CI; dotted: ln 4, chance level")
    return {"cliff": fig, "grad_norm_traces": fig2, "rnn_final": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
