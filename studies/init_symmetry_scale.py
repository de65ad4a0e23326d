"""Initialization: breaking symmetry, Glorot & Bengio's normalized init, and the output scale of a
ReLU net (the notes' initialization section; Glorot & Bengio 2010).

Three claims, one study; factor `part` says which an arm belongs to.

(1) Symmetry. Units of a layer that start with the same incoming and outgoing weights compute the
same function and receive the same gradient, so gradient training keeps them identical: the hidden
weight matrices keep rank <= 1 and the spread between their units stays 0. This holds by
construction, so it is shown (the rank and spread of each hidden weight matrix over training,
`weight_rank` monitor; a unit test), not judged. The symmetric start is the all-zero init
(`normal` with sigma 0: the notes' "identical initial parameters"; oplab has no nonzero constant
initializer), in a net of sigmoid units, whose output at 0 is 1/2, so that the symmetric net
still learns (zero weights in a tanh or ReLU net would give zero gradients everywhere but the
read-out bias). Its consequence can fail: a net whose hidden layers act as one unit each should
train like a net that IS one unit wide, so the judged comparison is the symmetric net against a
net of the same depth one unit wide (Glorot init, its own tuned rate). The symmetric net's gap to
the same net from a random (Glorot) init is shown in the table, not judged: the zero-init net sat
at 10.00 % on every seed at the old single rate, so "random beats zero" could not fail.

(2) Glorot & Bengio 2010. With the standard init U(+-1/sqrt(fan_in)), n Var(W) = 1/3, so in the
tanh net's near-linear regime the activations' variance shrinks by about 3 a layer going up and
the back-propagated gradient's variance by about 3 a layer going down; the normalized init
U(+-sqrt(6 / (fan_in + fan_out))) (oplab's `glorot`: torch.nn.init.xavier_uniform_, gain 1)
keeps both about constant: both the contrast (standard further from 1 than normalized) and
normalized's own ratio (within a factor 2 of 1) are judged. Measured with the `layer_stats`
monitor (oplab.layerstats) on a probe batch of training digits in eval mode, at init and every
epoch: the std of each hidden layer's tanh output and of the gradient of the batch-mean loss with respect to it (their
Figs. 6-7 show these as histograms at init). Also the test error of both after the same
training, beside their Table 1.

(3) ReLU output scale. With biases 0, a ReLU net is positively homogeneous: scaling every weight
matrix by a multiplies the output by a^L (L weight layers), and ||f(x)|| <= ||x|| prod ||W_i||_2.
By construction; shown with the `layer_norms` monitor at init: arms differ only in the init's
gain a (orthogonal init, torch.nn.init.orthogonal_, which gives every layer spectral norm a
exactly, from the same random draw for a seed), so the output norm against a follows a^L, and
each layer's activation norm sits below ||x|| times the running product of spectral norms.
oplab's initializers zero the biases, so the bound holds at init; the biases then train (the MLP
has no bias-free option). Softmax cross-entropy is not scale invariant, so the scale is a
hyperparameter: that can fail, and is judged on test accuracy against the gain.

Regime (`quick`). mnist5k (4,000 training / 1,000 test digits), plain SGD (Glorot & Bengio's
optimizer), batch 100, 120 updates (3 epochs), constant learning rate per update (losses are
minibatch means), biases 0 at init. (1): 2 hidden layers of 32 sigmoid units, zero vs Glorot init.
(2): 5 hidden layers of 64 tanh units (the paper's depth; 1000 units there), standard vs
normalized init. (3): 3 hidden layers of 64 ReLU units, orthogonal init with gain a in
{1/4, 1, 4} (sqrt 2 keeps a ReLU layer's activation norm; with 4 weight layers, gain 4 makes
the initial logits 4^4 = 256 times those of gain 1, gain 1/4 256 times smaller). Small nets and
few updates keep the study's whole quick run (tuning, verdict and replication seeds) near a
minute of CPU.

Fair learning rates. SGD's rate is chosen per (part, init, gain) from a per-part grid on one
tuning seed by the final full-split training loss (never test data nor verdict seeds; a diverged
trial counts as infinite loss): symmetry {0.5, 2, 8} (on tuning seeds 1000-1001 the zero-init net
learns nothing at 0.5 and 8 and reaches about a fifth of the digits at 2, as the one-unit net does,
so the grid brackets both), Glorot & Bengio {0.1, 0.3}, ReLU scale {0.003, 0.03, 0.3, 1} (a wide
grid, since the right rate moves with the scale). The grids were set by a short exploration on
tuning seeds 1000-1001.

Verdict (one value per seed, arms paired by seed, Student t, 95% intervals):
(1) symmetry: the zero-init net's minus the one-unit-wide net's test accuracy inside ±5 pp
    (equivalence, two one-sided tests at 2.5% each: the claim is that the symmetric net behaves
    like a one-unit net; 5 pp is a small share of the 60+ pp a random init gains, and the
    one-unit net's seeds spread about 1 pp on the tuning seeds); a diverged trial counts as
    chance, 10 %, never inside the band;
(2a) activations: |ln(std of the last hidden layer's activation / std of the first's)| at init,
    standard's minus normalized's, > ln 2 (standard's ratio at least 2x further from 1, as a
    factor); measured before training, so a trial that later diverges keeps its value;
(2b) gradients: the same for the back-propagated gradient, |ln(std at the first hidden layer /
    std at the last)|, standard's minus normalized's > ln 2;
(2d), (2e) normalized's own ratios at init, activations (last / first) and gradients (first /
    last), inside (1/2, 2) (equivalence on the log scale: "keeps the variance similar across
    layers" read as within a factor 2, the same factor (2a)/(2b) use);
(2c) test error: standard's minus normalized's test error > 0 pp (Table 1's direction);
(3a), (3b) weight scale: test accuracy at the best gain minus at the largest (3a) and at the
    smallest (3b) gain of the grid > 0 pp; the best gain is the one with the lowest mean final
    training loss on the tuning seed (each gain at its chosen rate), never the verdict seeds;
    a diverged trial counts as 10 %.

Full budget: MNIST (60,000 digits), the paper's 5 hidden layers of 1,000 tanh units, 20 epochs
at batch 100 (Glorot & Bengio used batch 10 and a tuned rate); the other parts scaled alike.

Full budget: about 0.57 GPU-hours on one data-centre GPU (166 trials, 1,992,000 updates, 1.4 PFLOP
counted from the arms' models; `python -m studies.init_symmetry_scale --budget full --replicate
--estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace

import numpy as np
import pandas as pd

from oplab import cli, kit, plots
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "init_symmetry_scale"
TITLE = "Initialization: symmetry, Glorot & Bengio's normalized init, ReLU output scale"
CLAIM = ("Units initialized identically stay identical under gradient training, so random init is needed to "
         "break symmetry; Glorot & Bengio's normalized init keeps activation and back-propagated gradient "
         "variance similar across the layers of a deep tanh net where the standard init does not; a bias-free "
         "ReLU net's output scales with the product of its weight norms, and since softmax loss is not scale "
         "invariant the weight scale is a hyperparameter.")
SOURCE = ("Goodfellow, Bengio & Courville 2016, Deep Learning, section 8.4 (symmetry breaking, scale of the "
          "init); Glorot & Bengio 2010, Understanding the difficulty of training deep feedforward neural "
          "networks, AISTATS, Figs. 6-7 and Table 1")
VERSION = 2
SEEDS = {"smoke": 2, "quick": 5, "full": 5}
TUNE = kit.Tune("lr", within=("part", "init", "gain"), score="train_loss_full",
                seeds={"smoke": 1, "quick": 1, "full": 2})

CHANCE_PP = 10.0  # test accuracy a diverged trial counts as (10 classes)
LN2 = math.log(2.0)  # margin of parts (2a), (2b): standard's ratio at least 2x further from 1
PARTS = ["symmetry", "glorot", "scale"]
SYM_MARGIN_PP = 5.0  # part (1): the symmetric net within this many points of the one-unit net
INIT_ORDER = ["zero", "one unit", "random", "standard", "normalized", "orthogonal"]
INITS = {"zero": InitConfig("normal", {"sigma": 0.0}), "one unit": InitConfig("glorot"), "random": InitConfig("glorot"),
         "standard": InitConfig("standard"), "normalized": InitConfig("glorot")}
PAPER_TABLE1 = {"standard": 1.76, "normalized": 1.64}  # Glorot & Bengio Table 1, MNIST, 5 hidden tanh layers, %


def _setup(data, steps, batch, eval_every, nets, lrs, gains):
    return dict(data=data, steps=steps, batch=batch, eval_every=eval_every, nets=nets, lrs=lrs, gains=gains)


def _nets(sym, gb, relu):
    return {"symmetry": ModelConfig("mlp", *sym, "sigmoid"), "glorot": ModelConfig("mlp", *gb, "tanh"),
            "scale": ModelConfig("mlp", *relu, "relu")}


SETUP = {
    "smoke": _setup(DataConfig("mnist5k", n_train=200, n_test=200), 6, 20, 3, _nets((2, 8), (5, 8), (3, 8)),
                    {"symmetry": [0.5], "glorot": [0.1], "scale": [0.03]}, [0.25, 1.0, 4.0]),
    "quick": _setup(DataConfig("mnist5k"), 120, 100, 40, _nets((2, 32), (5, 64), (3, 64)),
                    {"symmetry": [0.5, 2.0, 8.0], "glorot": [0.1, 0.3], "scale": [0.003, 0.03, 0.3, 1.0]},
                    [0.25, 1.0, 4.0]),
    "full": _setup(DataConfig("mnist"), 12000, 100, 600, _nets((2, 256), (5, 1000), (3, 256)),
                   {"symmetry": [0.5, 2.0, 8.0], "glorot": [0.03, 0.1, 0.3],
                    "scale": [0.003, 0.01, 0.03, 0.1, 0.3, 1.0]},
                   [0.25, 0.5, 1.0, 2.0, 4.0]),
}

PAPER = """
| Glorot & Bengio 2010 | paper | status |
|---|---|---|
| Table 1, MNIST test error, 5 hidden layers, tanh, standard init | 1.76 % | verified |
| Table 1, MNIST test error, 5 hidden layers, tanh, normalized init | 1.64 % | verified |
| Table 1, same, softsign: standard / normalized; sigmoid (standard) | 1.64 % / 1.72 %; 2.21 % | verified |
| Table 1, CIFAR-10 test error, tanh: standard / normalized | 55.9 % / 52.92 % | verified |
| Figs. 6-7: histograms of activations and back-propagated gradients per layer, tanh | standard: activations shrink going up, gradients shrink going down; normalized: similar across layers | figures, no numbers |

Their nets have 1,000 units a layer and train on 50,000 digits; ours at `quick` have 64 units and
train for 120 updates on 4,000: compare directions and per-layer trends, not error levels. The
symmetry and ReLU-scale claims are the notes' (Deep Learning, section 8.4), without numbers.
"""  # noqa: E501


def _trial(s, part, init, lr, width=None):
    monitors = {"symmetry": ("weight_rank",), "glorot": ("layer_stats",), "scale": ("layer_norms",)}[part]
    model = s["nets"][part] if width is None else replace(s["nets"][part], width=width)
    return Trial(data=s["data"], model=model, init=init, optim=OptimConfig("sgd", lr=lr),
                 steps=s["steps"], batch_size=s["batch"], eval_every=s["eval_every"], monitors=monitors,
                 monitor_every=s["eval_every"], monitor_start_only=part == "scale")


def arms(budget: str) -> dict[str, kit.Arm]:
    """Per part, init (and gain) and learning rate of the part's grid."""
    s, out = SETUP[budget], {}
    conds = [("symmetry", "zero", 0.0), ("symmetry", "one unit", 1.0), ("symmetry", "random", 1.0),
             ("glorot", "standard", 1.0), ("glorot", "normalized", 1.0)]
    conds += [("scale", "orthogonal", g) for g in s["gains"]]
    for part, label, gain in conds:
        init = InitConfig("orthogonal", {"gain": gain}) if part == "scale" else INITS[label]
        for lr in s["lrs"][part]:
            name = f"{part} | {label}" + (f" gain={gain:g}" if part == "scale" else "") + f" lr={lr:g}"
            width = 1 if label == "one unit" else None
            out[name] = kit.Arm(_trial(s, part, init, lr, width),
                                {"part": part, "init": label, "gain": gain, "lr": lr})
    return out


# --- from the monitor curves ------------------------------------------------------------------------


def layer_long(curves: dict[str, pd.DataFrame], suffix: str) -> pd.DataFrame:
    """Long table of the monitor columns `layer{i}_{suffix}`: arm, seed, factors, step, layer (1 =
    first weight layer), value."""
    mon = curves.get("monitor")
    cols = [] if mon is None else [c for c in mon.columns if c.startswith("layer") and c.endswith(f"_{suffix}")]
    keys = ["arm", "seed", "part", "init", "gain", "lr", "step"]
    if not cols:
        return pd.DataFrame(columns=keys + ["layer", "value"])
    long = mon[keys + cols].melt(keys, cols, "layer", "value").dropna(subset=["value"])
    return long.assign(layer=long["layer"].str.slice(5, -len(suffix) - 1).astype(int) + 1)


def _hidden(long: pd.DataFrame, depth: int) -> pd.DataFrame:
    return long[long["layer"] <= depth]


def _ratio(long: pd.DataFrame, depth: int, step: str, top_over_bottom: bool) -> pd.Series:
    """Per (arm, seed), at the first (step="first") or last (step="last") monitor call: the value at
    the last hidden layer over the first hidden layer's (or the inverse)."""
    if long.empty:
        return pd.Series(dtype=float)
    pick = long.groupby(["arm", "seed"])["step"].transform("min" if step == "first" else "max")
    d = long[long["step"] == pick].pivot_table(index=["arm", "seed"], columns="layer", values="value")
    if 1 not in d or depth not in d:
        return pd.Series(np.nan, index=d.index)
    return d[depth] / d[1] if top_over_bottom else d[1] / d[depth]


def measure(df, curves, ctx):
    """Per trial: test accuracy and error in points; (2) the last/first hidden-layer std ratio of
    activations and first/last of back-propagated gradients, at init and at the end, and |ln| of
    each; (1) the largest rank and unit spread of the hidden weight matrices over training;
    (3) at init, the output (logit) norm, the input norm and the bound ||x|| prod ||W_i||_2."""
    s = ctx.setup
    t = df.copy()
    t["test_acc_pp"] = 100 * t["test_acc"]
    t["test_err_pp"] = 100 - t["test_acc_pp"]
    idx = t.set_index(["arm", "seed"]).index
    depth = s["nets"]["glorot"].depth
    for what, suffix, up in (("act", "act_std", True), ("grad", "grad_std", False)):
        long = _hidden(layer_long(curves, suffix), depth)
        for when in ("first", "last"):
            r = _ratio(long[long["part"] == "glorot"], depth, when, up)
            col = f"{what}_ratio_{'init' if when == 'first' else 'end'}"
            t[col] = r.reindex(idx).to_numpy()
            t[f"{col}_logdev"] = np.abs(np.log(t[col].astype(float)))
    sym_depth = s["nets"]["symmetry"].depth
    for suffix in ("rank", "spread"):
        long = _hidden(layer_long(curves, suffix), sym_depth)
        t[f"max_{suffix}"] = long.groupby(["arm", "seed"])["value"].max().reindex(idx).to_numpy()
    last = s["nets"]["scale"].depth + 1  # weight layers of the ReLU net: hidden ones and the read-out
    mon = curves.get("monitor")
    cols = [f"layer{last - 1}_act_norm", "input_norm", f"layer{last - 1}_spectral_prod"]
    if mon is not None and all(c in mon for c in cols):
        first = mon[mon["step"] == 0].set_index(["arm", "seed"])
        t["out_norm"] = first[cols[0]].reindex(idx).to_numpy()
        t["in_norm"] = first["input_norm"].reindex(idx).to_numpy()
        t["bound"] = t["in_norm"] * first[cols[2]].reindex(idx).to_numpy()
    else:
        t["out_norm"] = t["in_norm"] = t["bound"] = np.nan
    t["bound_ratio"] = t["out_norm"] / t["bound"]
    return t


def best_gain(t: pd.DataFrame, ctx) -> float:
    """The gain whose tuning trials (each gain at its chosen rate) end with the lowest mean full-split
    training loss (a failed trial counts as +inf). Without tuning trials (a synthetic table), the
    judged table's own training loss stands in."""
    src = ctx.tuning if ctx.tuning is not None and len(ctx.tuning) else t
    d = kit.select(src, {"part": "scale"})
    if "chosen" in d:
        d = d[d["chosen"].astype(bool)]
    if d.empty or "train_loss_full" not in d:
        return float("nan")
    loss = pd.to_numeric(d["train_loss_full"], errors="coerce").astype(float)
    loss = loss.where((d["status"] == "ok") & np.isfinite(loss), np.inf)
    by = loss.groupby(d["gain"]).mean().sort_index()
    return float(by.idxmin())


def verdict(t, ctx):
    acc = dict(unit="pp", worst=CHANCE_PP, fmt=".2f", note="A diverged trial counts as chance accuracy (10 %).")
    m = SYM_MARGIN_PP
    parts = [kit.difference(t, "test_acc_pp", {"init": "zero"}, {"init": "one unit"}, where={"part": "symmetry"},
                            part="(1) symmetry: the zero-init net acts as one unit wide", within=(-m, m), **acc,
                            claim=f"zero init's minus a one-unit-wide net's test accuracy inside ±{m:g} pp (the "
                                  "symmetric net behaves like a net one unit wide)")]
    ratio = dict(unit="|ln ratio|", above=LN2, diverged_fails=False, fmt=".3f", where={"part": "glorot"},
                 note="Measured at init, before any update.")
    parts.append(kit.difference(
        t, "act_ratio_init_logdev", {"init": "standard"}, {"init": "normalized"},
        part="(2a) activation std across layers", **ratio,
        claim="|ln(activation std, last / first hidden layer)| at init, standard's minus normalized's > ln 2"))
    parts.append(kit.difference(
        t, "grad_ratio_init_logdev", {"init": "standard"}, {"init": "normalized"},
        part="(2b) back-propagated gradient std across layers", **ratio,
        claim="|ln(back-propagated gradient std, first / last hidden layer)| at init, standard's minus "
              "normalized's > ln 2"))
    parts.append(kit.difference(
        t, "test_err_pp", {"init": "standard"}, {"init": "normalized"}, where={"part": "glorot"},
        part="(2c) test error, standard vs normalized", above=0.0, unit="pp", worst=100 - CHANCE_PP, fmt=".2f",
        claim="standard's minus normalized's test error > 0 pp (Table 1's direction)",
        note="A diverged trial counts as chance error (90 %)."))
    own = dict(unit="ratio", within=(0.5, 2.0), scale="log", diverged_fails=False, fmt=".3f",
               where={"part": "glorot", "init": "normalized"}, note="Measured at init, before any update.")
    parts.append(kit.mean(t, "act_ratio_init", part="(2d) normalized: activation std within a factor 2", **own,
                          what="normalized init, activation std last / first hidden layer at init",
                          claim="normalized init: activation std, last / first hidden layer, at init inside (1/2, 2)"))
    parts.append(kit.mean(t, "grad_ratio_init", part="(2e) normalized: gradient std within a factor 2", **own,
                          what="normalized init, back-propagated gradient std first / last hidden layer at init",
                          claim="normalized init: back-propagated gradient std, first / last hidden layer, at init "
                                "inside (1/2, 2)"))
    scale = kit.select(t, {"part": "scale"})
    best = best_gain(t, ctx)
    gains = sorted(scale["gain"].unique()) if len(scale) else [float("nan")]
    where = "lowest training loss on the tuning seeds"
    for k, (far, side) in (("a", (gains[-1], "largest")), ("b", (gains[0], "smallest"))):
        parts.append(kit.difference(
            scale, "test_acc_pp", {"gain": best}, {"gain": far}, part=f"(3{k}) weight scale: best vs {side}",
            above=0.0, **{**acc, "note": acc["note"] + f" Best gain {best:g} ({where})."},
            claim=f"test accuracy at the best gain ({best:g}: {where}) minus at the {side} gain ({far:g}) > 0 pp"))
    return parts


# --- tables and figures -----------------------------------------------------------------------------


def _order():
    return {"part": PARTS, "init": INIT_ORDER}


def tables(t, curves, ctx):
    order = _order()
    extra = {"SGD lr (chosen)": "lr", "final train loss (full split)": "train_loss_full"}
    acc = kit.summary(t, "test_acc_pp", ["part", "init", "gain"], name="test accuracy %", fmt=".2f", order=order,
                      extra=extra)
    gb = kit.select(t, {"part": "glorot"})
    err = kit.summary(gb, "test_err_pp", ["init"], name="test error %", fmt=".2f", order=order,
                      extra={"act std last/first, init": "act_ratio_init", "act std last/first, end": "act_ratio_end",
                             "grad std first/last, init": "grad_ratio_init",
                             "grad std first/last, end": "grad_ratio_end"})
    err["paper (Table 1, MNIST, 5 x 1000 tanh) %"] = err["init"].astype(str).map(PAPER_TABLE1)
    depth = ctx.setup["nets"]["glorot"].depth
    rows = []
    for suffix, what in (("act_std", "activation std"), ("grad_std", "back-prop. gradient std")):
        long = _hidden(layer_long(curves, suffix), depth)
        long = long[long["part"] == "glorot"]
        for when, pick in (("init", "min"), ("end", "max")):
            if long.empty:
                continue
            at = long[long["step"] == long.groupby(["arm", "seed"])["step"].transform(pick)]
            m = at.groupby(["init", "layer"])["value"].mean().unstack("layer")
            m.columns = [f"layer {c}" for c in m.columns]
            rows.append(m.reset_index().assign(quantity=what, when=when))
    per_layer = (kit.ordered(pd.concat(rows, ignore_index=True), ["quantity", "when", "init"],
                             {**order, "when": ["init", "end"]})
                 if rows else pd.DataFrame())
    if len(per_layer):
        per_layer = per_layer[["quantity", "when", "init"] + [c for c in per_layer if c.startswith("layer")]]
    sym = kit.select(t, {"part": "symmetry"}).groupby("init", observed=True).agg(
        seeds=("seed", "nunique"), max_rank=("max_rank", "max"), max_spread=("max_spread", "max"),
        test_acc_pct=("test_acc_pp", "mean")).reset_index()
    sym = kit.ordered(sym.rename(columns={
        "max_rank": "largest numerical rank of a hidden weight matrix over training",
        "max_spread": "largest spread between units over training", "test_acc_pct": "mean test accuracy %"}),
        ["init"], order)
    sc = kit.select(t, {"part": "scale"})
    n_layers = ctx.setup["nets"]["scale"].depth + 1
    scale = sc.groupby("gain").agg(seeds=("seed", "nunique"), out_norm=("out_norm", "mean"),
                                   bound=("bound", "mean"), bound_ratio=("bound_ratio", "max"),
                                   acc=("test_acc_pp", "mean")).reset_index()
    ref = scale.loc[np.isclose(scale["gain"], 1.0), "out_norm"]
    scale["output norm / gain-1 output norm"] = scale["out_norm"] / (float(ref.iloc[0]) if len(ref) else np.nan)
    scale[f"gain^{n_layers} (homogeneity)"] = scale["gain"] ** n_layers
    scale = scale.rename(columns={"out_norm": "||f(x)|| at init (mean)", "bound": "||x|| prod ||W_i||_2 (mean)",
                                  "bound_ratio": "largest ||f(x)|| / (||x|| prod ||W_i||_2)",
                                  "acc": "mean test accuracy %"})
    return {"final test accuracy per arm (each at its chosen learning rate)": acc,
            "Glorot & Bengio: test error and std ratios, beside their Table 1": err,
            "Glorot & Bengio: per-hidden-layer std (probe batch, mean over seeds)": per_layer,
            "symmetry: rank and spread of the hidden weight matrices": sym,
            "ReLU output scale at init against the gain (homogeneity and the norm bound)": scale,
            "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, order=order)}


def figures(t, curves, ctx):
    s = ctx.setup
    # (1) symmetry: rank and spread of each hidden weight matrix over training
    sym_depth = s["nets"]["symmetry"].depth
    rank = _hidden(layer_long(curves, "rank"), sym_depth)
    spread = _hidden(layer_long(curves, "spread"), sym_depth)
    fig1, (a1, a2) = plots.figure(2)
    for ax, d, ylab, title, logy in (
            (a1, rank, "numerical rank of W (torch.linalg.matrix_rank)", "Rank of each hidden weight matrix", False),
            (a2, spread, "spread between units (relative; log scale)", "Spread between its units", True)):
        d = d[d["part"] == "symmetry"].assign(layer=lambda x: "layer " + x["layer"].astype(str))
        if logy:
            d = d.assign(value=d["value"].clip(lower=1e-9))
        # colour: the init; dash and marker: the layer (the layers of one init coincide, and must both show)
        plots.theme().lineplot(data=d, x="step", y="value", hue="init", style="layer", markers=True, dashes=True,
                               errorbar=plots.BAND, ax=ax)
        ax.set(xlabel="update", ylabel=ylab, title=title, yscale="log" if logy else "linear")
        if ax is a1:
            ax.legend(fontsize="small", loc="center right")
        else:
            ax.get_legend().remove()
    plots.caption(fig1, plots.BAND_LABEL + "; zero init: every hidden layer keeps rank <= 1 (0 before the first "
                  "update) and a spread at the level of float rounding (drawn clipped at 1e-9); a one-unit-wide net "
                  "has rank 1 and no spread (clipped at 1e-9) by construction, so after the first update zero init's "
                  "rank lies under its line")

    # (2) Glorot & Bengio: per-layer std at init and at the end, Figs. 6-7
    depth = s["nets"]["glorot"].depth
    fig2, axes = plots.figure(4, width=4.2)
    i = 0
    for suffix, what in (("act_std", "activation std (tanh output)"), ("grad_std", "back-prop. gradient std")):
        long = _hidden(layer_long(curves, suffix), depth)
        long = long[long["part"] == "glorot"]
        for when, pick in (("init", "min"), ("end of training", "max")):
            ax = axes[i]
            i += 1
            if long.empty:
                continue
            at = long[long["step"] == long.groupby(["arm", "seed"])["step"].transform(pick)]
            plots.curves(ax, at, "layer", "value", "init", "hidden layer (1 = first)", "std (log scale)",
                         f"{what}, {when}", logy=True, hue_order=["standard", "normalized"])
            ax.set_xticks(range(1, depth + 1))
            if i > 1:
                ax.get_legend().remove()  # the first panel's legend names the same two inits
    plots.caption(fig2, plots.BAND_LABEL + "; probe batch of training digits, eval mode; gradient of the "
                  "batch-mean cross-entropy with respect to each hidden layer's tanh output")

    # the Glorot & Bengio parts, each on its own scale against its threshold
    judged = {p.part.split(")")[0] + ")": p for p in verdict(t, ctx)}
    fig5, (d1, d2, d3) = plots.figure(3, width=4.4)
    plots.parts(d1, [judged["(2a)"], judged["(2b)"]], ["(2a) activation", "(2b) gradient"],
                "|ln ratio|: standard - normalized", "Spread across layers at init", legend="below")
    plots.parts(d2, [judged["(2c)"]], ["(2c) standard - normalized"], "test error difference (pp)",
                "Test error", fmt=".2f", legend="below")
    plots.parts(d3, [judged["(2d)"], judged["(2e)"]], ["(2d) activation", "(2e) gradient"],
                "normalized: std ratio across layers", "Normalized init within a factor 2", logy=True, legend="below")
    plots.caption(fig5, "Per seed, at init (test error: at the end), paired by seed where two inits are compared. "
                  "Left: the standard init's |ln(std ratio between the last and first hidden layers)| minus the "
                  "normalized init's, claimed above ln 2 (dashed); middle: claimed above 0; right: the normalized "
                  "init's ratio, claimed inside the grey band (1/2, 2)")

    # (3) ReLU output scale: homogeneity, the norm bound, accuracy against the gain
    sc = kit.select(t, {"part": "scale"})
    n_layers = s["nets"]["scale"].depth + 1
    fig3, (b1, b2, b3, b4) = plots.figure(4, width=4.6)
    if len(sc):
        plots.curves(b1, sc.assign(kind="measured ||f(x)||"), "gain", "out_norm", "kind", "init gain a (log scale)",
                     "mean ||f(x)|| at init (log scale)", f"Output norm vs gain (L = {n_layers})", logy=True)
        ref = sc.loc[np.isclose(sc["gain"], 1.0), "out_norm"].mean()
        g = np.array(sorted(sc["gain"].unique()))
        b1.plot(g, ref * g ** n_layers, "k--", lw=1, label=f"a^{n_layers} x gain-1 norm")
        b1.set_xscale("log", base=2)
        b1.legend(fontsize="small")
    norms = layer_long(curves, "act_norm")
    prod = layer_long(curves, "spectral_prod")
    mon = curves.get("monitor")
    if len(norms) and len(prod) and mon is not None and "input_norm" in mon:
        keys = ["arm", "seed", "step", "layer"]
        d = norms.merge(prod[keys + ["value"]].rename(columns={"value": "prod"}), on=keys)
        d = d.merge(mon[["arm", "seed", "step", "input_norm"]], on=["arm", "seed", "step"])
        d = d[(d["part"] == "scale") & (d["step"] == 0)]
        d = d.assign(bound=d["input_norm"] * d["prod"], gain_label="a=" + d["gain"].map("{:g}".format))
        for lab, gd in d.groupby("gain_label", sort=False):
            b2.scatter(gd["bound"], gd["value"], s=12, alpha=0.7, label=lab)
        lims = [d[["bound", "value"]].min().min(), d[["bound", "value"]].max().max()]
        b2.plot(lims, lims, "k--", lw=1, label="y = x (the bound)")
        b2.set_xscale("log")
        b2.set_yscale("log")
        b2.legend(fontsize="x-small")
    b2.set_xlabel("||x|| prod_{j<=i} ||W_j||_2 (log scale)")
    b2.set_ylabel("mean ||activation i|| (log scale)")
    b2.set_title("Each layer's norm below the bound, at init")
    if len(sc):
        plots.points(b3, sc, "gain", "test_acc_pp", "init gain a", "final test accuracy (%)",
                     "Test accuracy vs weight scale")
    plots.parts(b4, [judged["(3a)"], judged["(3b)"]], ["(3a) vs largest", "(3b) vs smallest"],
                "best gain's minus other's accuracy (pp)", "The weight-scale parts", fmt=".1f", legend="below")
    plots.caption(fig3, "left: " + plots.BAND_LABEL + "; middle left: one point per (trial, layer), biases 0 at init; "
                  "middle right: " + plots.POINTS_LABEL + "; each gain at its chosen SGD learning rate; right: the "
                  "parts, paired by seed, claimed above 0 (dashed)")

    # test accuracy, parts (1) and (2): during training and final
    fig4, (c0, c1, c2, c3) = plots.figure(4, width=4.4)
    ev = curves["eval"].assign(test_acc_pct=lambda d: 100 * d["test_acc"])
    plots.curves(c0, ev[ev["part"] != "scale"], "step", "test_acc_pct", "init", "update", "test accuracy (%)",
                 "During training (parts 1 and 2)", hue_order=INIT_ORDER[:4])
    for ax, part, levels, title in ((c1, "symmetry", ["zero", "random"], "Symmetry (sigmoid MLP), final"),
                                    (c2, "glorot", ["standard", "normalized"], "Glorot & Bengio (tanh), final")):
        plots.points(ax, kit.select(t, {"part": part}), "init", "test_acc_pp", "init", "final test accuracy (%)",
                     title, order=levels)
    plots.parts(c3, [judged["(1)"]], ["zero - one unit"], "test accuracy difference (pp)",
                "(1) zero init acts as one unit", fmt=".2f", legend="below")
    plots.caption(fig4, "left: " + plots.BAND_LABEL + "; middle: " + plots.POINTS_LABEL
                  + "; each arm at its chosen SGD learning rate; right: part (1), the zero-init net's minus a one-unit-"
                  "wide net's final accuracy, paired by seed, claimed inside the grey band")
    return {"symmetry_rank": fig1, "glorot_layer_stats": fig2, "glorot_parts": fig5, "relu_scale": fig3,
            "accuracy": fig4}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
