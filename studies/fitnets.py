"""FitNets hints and Net2Net: teaching a deep thin net from a shallow wide one, and growing a
trained net into a bigger one (Romero et al. 2015; Chen, Goodfellow & Shlens 2016).

Regime. FitNets' MNIST experiment (Table 4) teaches a deep thin student from a teacher with
about 12x more parameters (~30K vs ~361K). At the `quick` budget, scaled down to fit a laptop
CPU with that ratio kept: mnist5k (4,000 train / 1,000 test digits), ReLU MLPs with He init,
RMSProp (the paper's optimizer) at batch 128, 465 updates (15 epochs) a trial. Teacher: 2 hidden
layers of 200 units (~199K parameters, shallow and wide). Student: 6 hidden layers of 20 units
(~18K, 11x fewer). Arms (factors `net`, `method`):
- teacher: trained once per seed; every student and grown net of that seed loads its stored
  weights (the runner trains it first and never again; each record names its teacher's key);
- student, scratch: the student on the labels alone;
- student, kd: knowledge distillation, CE(y, P_S) + lambda CE(P_T^3, P_S^3), no tau^2 factor,
  lambda from 4 to 1 linearly over the updates (the paper's loss and schedule);
- student, hints: FitNets. Stage 1: the student up to its middle block (block 3 of 6) regresses
  the teacher's middle block (block 1 of 2) through a linear regressor followed by the hint
  layer's ReLU, loss 1/2 ||hint - r(guided)||^2; stage 2: the whole student with kd as above.
  The two stages together take as many updates as the other students (a third of them in
  stage 1), so no student gets more updates than another;
- wider, net2net / random: the teacher with every hidden layer twice as wide, grown by
  Net2WiderNet (new units copy random existing ones, outgoing weights divided by the copy
  count, noise of 0.05 x the layer's weight std to break symmetry, as in the Keras example),
  vs the same net from He init;
- deeper, net2net / random: the teacher with one more hidden layer, inserted last and
  identity-initialized by Net2DeeperNet, vs the same net from He init.
Every student and grown net trains for as many updates as the teacher did. A student starts
from the same random init as the scratch student of its seed (the teacher's weights draw
nothing from the trial's seed).

Fair learning rates. RMSProp's lr is chosen per (net, method) from {5e-4, 2e-3} on tuning seeds
by the final full-split training loss (never test data nor verdict seeds); 5e-4 is the paper's
MNIST rate. The teacher's rate (1e-3) was set by a short exploration on tuning seed 1000 only;
it is not tuned with the others because every student's config names its teacher's config.

Verdict (test error in percentage points of the test digits, paired by seed, Student t; a
diverged trial counts as 90 %, chance):
(1) scratch's minus hints' test error > 0 (hints help the thin student);
(2) scratch's minus kd's test error > 0 (distillation helps);
(3) kd's minus hints' test error > -0.5 pp (hints at least as good as kd; margin 0.5 pp, 5 of
    the 1,000 test digits at `quick`);
(4a), (4b) updates needed to reach the accuracy that the random-init net ends with (its own
    final test accuracy, same seed): random's minus net2net's > 0, for the wider and the deeper
    net. A net2net net that never reaches it counts as the budget plus one evaluation interval.
Function preservation holds by construction (a unit test checks it to 1e-5); the measured
error of the transforms on a training batch is shown in the Net2Net table, not judged.
A net grown from the teacher starts at the teacher's accuracy, so its updates to the
*teacher's* accuracy are about zero by construction: that count is shown in the table, and the
parts use the random-init net's final accuracy as the mark instead.

Full budget: CIFAR-10 (Table 5's regime; 50,000 training images, 20 epochs at batch 128) with
convnets: a ~7M-parameter teacher (6 conv blocks of 160-640 channels) and an 11-layer thin
student (10 conv blocks of 8-128 channels, ~0.3M, like FitNet 1); the student's block 5 is
guided by the teacher's block 4 (both 8x8 maps: a 1x1 convolutional regressor); the wider net
is the teacher at 1.5x the channels, the deeper one has a seventh block before the last pool.

Full budget: about 6 GPU-hours on one data-centre GPU (95 trials, 741,000 updates, 630 PFLOP
counted from the arms' models; `python -m studies.fitnets --budget full --replicate --estimate`
shows the count and its assumptions).
"""

from __future__ import annotations

import dataclasses
import sys

import numpy as np
import pandas as pd

from oplab import cli, kit, plots
from oplab.config import DataConfig, DistillConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "fitnets"
TITLE = "FitNets hints and Net2Net"
CLAIM = ("A deep thin student learns better from a shallow wide teacher than from the labels alone: knowledge "
         "distillation helps, hints from the teacher's middle layer (FitNets) help at least as much; a net grown "
         "from a trained teacher by function-preserving transforms (Net2Net) trains faster than the same net "
         "from random init.")
SOURCE = ("Romero, Ballas, Kahou, Chassang, Gatta & Bengio 2015, FitNets: Hints for Thin Deep Nets, ICLR, "
          "Table 4; Chen, Goodfellow & Shlens 2016, Net2Net: Accelerating Learning via Knowledge Transfer, ICLR")
VERSION = 1
SEEDS = {"smoke": 2, "quick": 5, "full": 5}
TUNE = kit.Tune("lr", within=("net", "method"), score="train_loss_full", seeds={"smoke": 1, "quick": 2, "full": 1})

LRS = [5e-4, 2e-3]  # RMSProp learning rates for students and grown nets
TEACHER_LR = 1e-3
MARGIN_PP = 0.5  # non-inferiority margin of hints vs kd, percentage points of test error
CHANCE_PP = 90.0  # a diverged trial's test error
NOISE = 0.05  # Net2WiderNet's symmetry-breaking noise, x the layer's weight std
ORDER = ["teacher", "scratch", "kd", "hints", "net2net", "random"]
NETS = ["teacher", "student", "wider", "deeper"]
# Romero et al.'s test error (%): Table 4 (MNIST) at smoke and quick; Table 5 (CIFAR-10, 100 - accuracy;
# teacher and FitNet 1, the 11-layer student) at full
PAPER_PCT = {"Table 4, MNIST": {"teacher": 0.55, "scratch": 1.9, "kd": 0.65, "hints": 0.51},
             "Table 5, CIFAR-10": {"teacher": 9.82, "hints": 10.99}}


def _mlp(depth, width):
    return ModelConfig("mlp", depth, width, "relu")


def _conv(depth, width, pools=None):
    return ModelConfig("convnet", depth, width, "relu", {"pools": pools} if pools is not None else {})


def _setup(data, epochs, n_train, teacher, student, widen, batch=128, guided=-1, hint=-1):
    """`teacher`, `student`: ModelConfigs; `widen`: the wider net's width factor (every layer)."""
    steps = epochs * (n_train // batch)
    return dict(data=data, steps=steps, eval_every=n_train // batch, batch=batch, teacher=teacher, student=student,
                widen=widen, hint_steps=steps // 3, guided_block=guided, hint_block=hint)


SETUP = {"smoke": _setup(DataConfig("mnist5k", n_train=256, n_test=200), 2, 256, _mlp(2, 32), _mlp(4, 8), 2,
                         batch=64),
         "quick": _setup(DataConfig("mnist5k"), 15, 4000, _mlp(2, 200), _mlp(6, 20), 2),
         # CIFAR-10 (Table 5's regime): a ~7M-parameter teacher (6 conv blocks, 160-640 channels) and an
         # 11-layer thin student (10 conv blocks, 8-128 channels, ~0.3M, like FitNet 1); the student's block 5
         # (8x8 maps) is guided by the teacher's block 4 (8x8), so the regressor is a 1x1 convolution
         "full": _setup(DataConfig("cifar10", n_train=50000), 20, 50000, _conv(6, 160), _conv(10, 8), 1.5,
                        guided=5, hint=4)}

PAPER = """
| MNIST test error | params | Romero et al. 2015, Table 4 |
|---|---|---|
| teacher (maxout convnet) | ~361K | 0.55 % |
| student, standard backprop | ~30K | 1.9 % |
| student, knowledge distillation | ~30K | 0.65 % |
| student, FitNets (hints, then KD) | ~30K | 0.51 % |

The paper's nets are maxout convnets trained on 60,000 digits; ours at `quick` are ReLU MLPs trained
on 4,000 digits for 465 updates: compare orderings, not error levels. Table 5 (CIFAR-10, the `full`
budget's regime): teacher (~9M) 90.18 % accuracy; FitNet 1 (11 layers, ~250K) 89.01 %, FitNet 2
(11, ~862K) 91.06 %, FitNet 3 (13, ~1.6M) 91.10 %, FitNet 4 (19, ~2.5M) 91.61 %. Net2Net (Chen et al. 2016)
reports its speed-ups as curves only (ImageNet Inception nets): the grown net starts at the teacher's
accuracy and reaches a given accuracy sooner than a random-init net of the same size.
"""


def _widths(m: ModelConfig) -> list[int]:
    """Units (MLP) or channels (convnet) of each hidden block of an oplab.models net."""
    if m.name == "mlp":
        return [m.width] * m.depth
    pools = m.opts.get("pools", list(range(1, m.depth, 2)))
    return [m.width * 2 ** sum(p < i for p in pools) for i in range(m.depth)]


def _grown(s, net):
    """The wider or deeper net's config and the Net2Net ops that grow the teacher into it."""
    t = s["teacher"]
    if net == "wider":
        return (dataclasses.replace(t, width=int(t.width * s["widen"])),
                [["wider", i, int(w * s["widen"])] for i, w in enumerate(_widths(t))])
    # deeper: an identity block after the last one (before its pool, if any): the new block joins the last stage
    opts = {} if t.name == "mlp" else {"pools": [p if p < t.depth - 1 else p + 1
                                                 for p in t.opts.get("pools", list(range(1, t.depth, 2)))]}
    return dataclasses.replace(t, depth=t.depth + 1, options=opts), [["deeper", t.depth - 1]]


def _trial(s, net, method, lr):
    base = dict(data=s["data"], init=InitConfig("he"), batch_size=s["batch"], eval_every=s["eval_every"])
    teacher = Trial(model=s["teacher"], optim=OptimConfig("rmsprop", lr=TEACHER_LR), steps=s["steps"], **base)
    if net == "teacher":
        return teacher
    optim = OptimConfig("rmsprop", lr=lr)
    if net == "student":
        steps, distill = s["steps"], DistillConfig({"scratch": "none", "kd": "kd"}.get(method, "none"))
        if method == "hints":
            steps = s["steps"] - s["hint_steps"]
            distill = DistillConfig("hints", hint_steps=s["hint_steps"], guided_block=s["guided_block"],
                                    hint_block=s["hint_block"])
        return Trial(model=s["student"], optim=optim, steps=steps, distill=distill,
                     teacher=teacher if method != "scratch" else None, **base)
    model, ops = _grown(s, net)
    if method == "random":
        return Trial(model=model, optim=optim, steps=s["steps"], **base)
    init = InitConfig("net2net", {"ops": ops, "noise": NOISE if net == "wider" else 0.0})
    return Trial(model=model, optim=optim, steps=s["steps"], teacher=teacher, **{**base, "init": init})


def arms(budget: str) -> dict[str, kit.Arm]:
    s = SETUP[budget]
    out = {"teacher": kit.Arm(_trial(s, "teacher", "teacher", TEACHER_LR),
                              {"net": "teacher", "method": "teacher", "lr": TEACHER_LR})}
    conds = [("student", m) for m in ("scratch", "kd", "hints")]
    conds += [(n, m) for n in ("wider", "deeper") for m in ("net2net", "random")]
    for net, method in conds:
        for lr in LRS:
            out[f"{net} {method} lr={lr:g}"] = kit.Arm(_trial(s, net, method, lr),
                                                       {"net": net, "method": method, "lr": lr})
    return out


def _extra(t: pd.DataFrame, *path, default=np.nan) -> pd.Series:
    def get(e):
        for k in path:
            if not isinstance(e, dict) or k not in e:
                return default
            e = e[k]
        return e
    return t["extra"].map(get) if "extra" in t else pd.Series(default, index=t.index)


def _first_reach(c: pd.DataFrame, target: float, never: float) -> float:
    """The first update (on the total-update axis) at which test accuracy >= target."""
    hit = c.loc[c["test_acc"] >= target - 1e-12, "update"]
    return float(hit.min()) if len(hit) else never


def measure(df, curves, ctx):
    """Per trial: test error in points, parameters, total updates (stage 1 included), the teacher's
    accuracy and key, and updates to reach (a) the teacher's final accuracy, (b) the random-init net's
    final accuracy in the same seed (net2net and random arms)."""
    s = ctx.setup
    t = df.copy()
    t["test_err_pp"] = 100 * t["test_err"] if "test_err" in t else np.nan
    t["params"] = _extra(t, "n_params")
    t["teacher_key"] = _extra(t, "teacher", "key", default=None)
    pre = t["pretrain_updates"] if "pretrain_updates" in t else pd.Series(np.nan, index=t.index)
    t["stage1_updates"] = pre.fillna(0)
    t["total_updates"] = t["stage1_updates"] + t["steps"]
    t["preservation_error"] = _extra(t, "init", "preservation_error")
    t["preservation_error_no_noise"] = _extra(t, "init", "preservation_error_no_noise")
    teach = t[t["net"] == "teacher"].set_index("seed")
    t["teacher_acc"] = t["seed"].map(teach["test_acc"]) if "test_acc" in teach else np.nan
    t["teacher_test_loss"] = t["seed"].map(teach["test_loss"]) if "test_loss" in teach else np.nan
    ev = curves.get("eval")
    never = s["steps"] + s["eval_every"]
    to_teacher, to_random, start_loss = [], [], []
    for _, row in t.iterrows():
        c = ev[(ev["arm"] == row["arm"]) & (ev["seed"] == row["seed"])] if ev is not None else pd.DataFrame()
        ok = row["status"] == "ok" and len(c)
        if ok:
            c = c.assign(update=c["step"] + row["stage1_updates"])
        start_loss.append(float(c["test_loss"].iloc[0]) if ok else np.nan)
        to_teacher.append(_first_reach(c, row["teacher_acc"], never) if ok else never)
        mark = t[(t["net"] == row["net"]) & (t["method"] == "random") & (t["seed"] == row["seed"])]
        if row["net"] in ("wider", "deeper") and len(mark) and mark["status"].iloc[0] == "ok":
            to_random.append(_first_reach(c, float(mark["test_acc"].iloc[0]), never) if ok else never)
        else:
            to_random.append(np.nan)
    t["updates_to_teacher_acc"] = to_teacher
    t["updates_to_random_final"] = to_random
    t["test_loss_at_0"] = start_loss
    return t


def verdict(t, ctx):
    err = dict(unit="pp", worst=CHANCE_PP, fmt=".2f", note="A diverged trial counts as 90 % test error (chance).")
    st = kit.select(t, {"net": "student"})
    scratch, kd, hints = ({"method": m} for m in ("scratch", "kd", "hints"))
    parts = [kit.difference(st, "test_err_pp", scratch, hints, part="(1) hints vs scratch", above=0.0, **err,
                            claim="student: scratch's minus hints' test error > 0"),
             kit.difference(st, "test_err_pp", scratch, kd, part="(2) kd vs scratch", above=0.0, **err,
                            claim="student: scratch's minus kd's test error > 0"),
             kit.difference(st, "test_err_pp", kd, hints, part="(3) hints vs kd", above=-MARGIN_PP, **err,
                            claim=f"student: kd's minus hints' test error > -{MARGIN_PP:g} pp")]
    never = ctx.setup["steps"] + ctx.setup["eval_every"]
    for k, net in (("a", "wider"), ("b", "deeper")):
        parts.append(kit.difference(
            kit.select(t, {"net": net}), "updates_to_random_final", {"method": "random"}, {"method": "net2net"},
            part=f"(4{k}) Net2Net {net}", above=0.0, unit="updates", worst=float(never), fmt=".0f",
            claim=f"{net} net: updates to reach the random-init net's final test accuracy, "
                  "random's minus net2net's > 0",
            note=f"A trial that never reaches the mark (or diverged) counts as {never} updates (the budget plus one "
                 "evaluation interval)."))
    return parts


def tables(t, curves, ctx):
    order = {"method": ORDER, "net": NETS}
    fit = t[t["net"].isin(["teacher", "student"])]
    extra = {"params": "params", "RMSProp lr (chosen)": "lr", "total updates": "total_updates",
             "final train loss (full split)": "train_loss_full"}
    err = kit.summary(fit, "test_err_pp", ["net", "method"], name="test error %", fmt=".2f", order=order,
                      extra=extra)
    table = "Table 5, CIFAR-10" if ctx.budget == "full" else "Table 4, MNIST"
    err[f"paper ({table}) %"] = err["method"].astype(str).map(PAPER_PCT[table])
    grow = t[t["net"].isin(["wider", "deeper"])]
    n2n = kit.summary(grow, "test_err_pp", ["net", "method"], name="final test error %", fmt=".2f", order=order,
                      extra={"params": "params", "RMSProp lr (chosen)": "lr",
                             "test loss at update 0": "test_loss_at_0", "teacher's test loss": "teacher_test_loss",
                             "updates to teacher's accuracy": "updates_to_teacher_acc",
                             "updates to random's final accuracy": "updates_to_random_final"})
    pres = grow[grow["method"] == "net2net"].groupby("net")[["preservation_error", "preservation_error_no_noise"]]
    pres = pres.max().reset_index().rename(columns={
        "preservation_error": "max |f_grown - f_teacher| as trained (with noise for wider)",
        "preservation_error_no_noise": "max |f_grown - f_teacher|, noise off"})
    learners = t[t["teacher_key"].notna()].assign(digest=_extra(t, "teacher", "weights_sha256", default=None))
    users = learners.groupby("seed").agg(teacher_key=("teacher_key", "first"), teachers=("teacher_key", "nunique"),
                                         trials_using_it=("teacher_key", "size"), digests=("digest", "nunique"),
                                         digest=("digest", "first"))
    teach = t[t["net"] == "teacher"].assign(own=_extra(t, "weights_sha256", default=None)).set_index("seed")
    users["teacher trial's key"] = teach["key"].reindex(users.index)
    # every learner of a seed loaded the very weights its seed's teacher record says it stored
    same_key = (users["teacher_key"] == users["teacher trial's key"]) & (users["teachers"] == 1)
    same_weights = (users["digests"] == 1) & (users["digest"] == teach["own"].reindex(users.index))
    users["same teacher and weights"] = same_key & same_weights
    users = users.drop(columns=["digests", "digest"])
    return {"FitNets: test error per arm (each at its chosen lr), beside the paper": err,
            "Net2Net: grown vs random-init nets": n2n,
            "Net2Net: measured function-preservation error on a training batch (eval mode)": pres,
            "teacher reuse: one stored teacher per seed, loaded by every trial that learns from it":
                users.drop(columns=["teacher_key"]).reset_index(),
            "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, order=order)}


def figures(t, curves, ctx):
    ev = curves["eval"].merge(t[["arm", "seed", "stage1_updates"]], on=["arm", "seed"], how="left")
    ev = ev.assign(update=ev["step"] + ev["stage1_updates"].fillna(0), test_err_pct=100 * (1 - ev["test_acc"]))
    fit = ev[ev["net"].isin(["teacher", "student"]) & (ev["step"] > 0)]
    fig, (a1,) = plots.figure(1, width=7.0)
    plots.curves(a1, fit, "update", "test_err_pct", "method", "update (hints: stage 1 included)", "test error (%)",
                 "FitNets: thin student vs teacher", hue_order=["teacher", "scratch", "kd", "hints"])
    a1.set_ylim(bottom=0)
    plots.caption(fig, plots.BAND_LABEL + "; hints' curve starts after its stage-1 updates")

    fig2, axes = plots.figure(2)
    for ax, net in zip(axes, ("wider", "deeper")):
        g = ev[ev["net"] == net]
        plots.curves(ax, g, "update", "test_err_pct", "method", "update", "test error (%)",
                     f"Net2Net: {net} net", hue_order=["net2net", "random"])
        teacher_err = 100 * (1 - t.loc[t["net"] == "teacher", "test_acc"].mean())
        ax.axhline(teacher_err, color="0.4", ls="--", lw=1, label="teacher (final, mean)")
        ax.legend(fontsize=8)
        ax.set_ylim(0, 4 * teacher_err if np.isfinite(teacher_err) and teacher_err > 0 else None)
    plots.caption(fig2, plots.BAND_LABEL + "; update 0 is the grown net's start (the teacher's function); "
                  "the random-init nets start near chance, above the plotted range")

    fig3, (c1,) = plots.figure(1, width=6.5)
    plots.points(c1, t[t["net"].isin(["teacher", "student"])], "method", "test_err_pp", "", "final test error (%)",
                 "Final test error", order=["teacher", "scratch", "kd", "hints"])
    plots.caption(fig3, plots.POINTS_LABEL)
    return {"fitnets_curves": fig, "net2net_curves": fig2, "final_error": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
