"""FitNets hints and Net2Net: teaching a deep thin net from a shallow wide one, and growing a
trained net into a bigger one (Romero et al. 2015; Chen, Goodfellow & Shlens 2016).

Regime. FitNets' claim is about a deep thin student that is hard to train from the labels alone
(FitNet 4 has 19 layers). At `quick` and `long`, scaled down to a laptop CPU: mnist5k (4,000 train /
1,000 test digits), ReLU MLPs with He init, RMSProp (the paper's optimizer) at batch 128, 6 epochs a
trial at quick and 30 at long (Budgets). Teacher: 3 hidden layers of 100 units (~100K parameters;
version 2: 200 units, ~239K), so it has a middle layer to give the hint. Student: 16 hidden layers
of 12 units (~12K, 8x fewer; the paper's ratio is 12x). The student was chosen in version 2 (15
epochs, the 3x200 teacher) on tuning seed 1000 only (one teacher, lr 1e-3 unless said), among
students that train badly alone: a 6x20 He-init ReLU student (version 1) trains about as well from
the labels as with hints, so it cannot show the claim; 12x16 ReLU reached 15.2 % test error from
scratch, 16x12 ReLU 36.4 % (18.8 % at lr 2e-3, 25.6 % at 4e-3) against the teacher's 5.2 %; 8x20
sigmoid (Glorot init) stayed near 70-83 % and 10x16 ReLU or tanh with the authors' init scale (std
0.0029, see the departures) stayed at chance (90 %) for every method. We keep 16x12 ReLU, the
deepest student that still trains at all at this budget. "Hard to train alone" is itself a part,
(0): the scratch student against a one-hidden-layer net of (nearly) equal parameters (1x15, ~11.9K),
trained from the labels as well.

Arms (factors `net`, `method`):
- teacher: trained once per seed; every student and grown net of that seed loads its stored
  weights (the runner trains it first and never again; each record names its teacher's key);
- teacher, trained on: the teacher's trial given the grown nets' extra updates too; the learning
  rate is constant and the seed the same, so its first updates are the teacher's;
- student, scratch / shallow, scratch: the student, and the equal-parameter shallow net, on the
  labels alone;
- student, kd: knowledge distillation, CE(y, P_S) + lambda CE(P_T^3, P_S^3), no tau^2 factor,
  lambda from 4 to 1 linearly over the updates (the paper's loss and schedule);
- student, hints: FitNets. Stage 1: the student up to its middle block (block 8 of 16, 0-based)
  regresses the teacher's middle block (block 1 of 3: a real middle, not its top layer) through a
  linear regressor followed by the hint layer's ReLU, loss 1/2 ||hint - r(guided)||^2; stage 2:
  the whole student with kd as above. The two stages together take as many updates as the other
  students (a third of them in stage 1);
- wider, net2net / random: the teacher with every hidden layer 1.5x as wide (150 units), grown by
  Net2WiderNet (new units copy random existing ones, outgoing weights divided by the copy count;
  symmetry broken as in the Keras example: N(0, (0.05 x std of the new units' outgoing
  weights)^2) added to the new units' outgoing weights), vs the same net from He init;
- deeper, net2net / random: the teacher with one more hidden layer, inserted last and
  identity-initialized by Net2DeeperNet, vs the same net from He init.
Net2Net's cost, as Chen et al. compare it: a grown net trains 2 epochs (62 updates) at quick and 5
(155) at long after its teacher's 186 (930), and is charged the sum, 248 (1,085), the teacher's
updates counted; the random-init net and the teacher trained on each get that sum. A student starts
from the same random init as the scratch student of its seed (the teacher's weights draw nothing
from the trial's seed).

Fair learning rates. RMSProp's lr is chosen per (net, method) on tuning seeds 1000-1001 by the
final full-split training loss (never test data nor verdict seeds), from three levels a grid: by
default the students and the shallow net from {1e-3, 2e-3, 4e-3} (the exploration above put the
scratch student's best test error inside it) and the grown and random-init nets from {2.5e-4, 5e-4,
1e-3} (version 1's grid {5e-4, 2e-3} chose its low edge for all four). Where a budget's first run
chose a grid's edge on the tuning seeds, its grid moved a step that way, and again while the new
edge was chosen (SETUP lists each budget's grids; the tuning table shows them), so that every chosen level has a
worse one on each side: a grown net starts at its teacher's near-zero training loss, which any
larger step disturbs, so its optimum is low; the random-init nets' training losses end near 0 at
several levels, so their choice is nearly immaterial. The teacher's rate (1e-3) was set by a short
exploration on tuning seed 1000; it is not tuned because every student's config names its teacher's
config, and the teacher trained on keeps it (it continues the same run). The page flags a level
chosen at a grid edge.

Verdict (test error in percentage points of the test digits, paired by seed, Student t; a
diverged trial counts as 90 %, chance):
(0) the scratch student's minus the equal-parameter shallow net's test error > 0 (the thin deep
    student is hard to train from the labels: the regime the claim needs);
(1) scratch's minus hints' test error > 0 (hints help the thin student);
(2) scratch's minus kd's test error > 0 (distillation helps);
(3) kd's minus hints' test error > -0.5 pp (hints at least as good as kd; margin 0.5 pp, 5 of
    the 1,000 test digits);
(4a)/(5a) wider/deeper net vs random init: updates (the grown net's counted from the teacher's
    first) to reach the best test accuracy the random-init net reaches in its updates,
    random's minus net2net's > 0;
(4b)/(5b) wider/deeper net vs the teacher trained on: updates to reach the best test accuracy
    the teacher trained on reaches in its updates, the teacher's minus net2net's > 0.
A mark is a baseline's best, and no part holds by construction: the random net starts near chance
and the grown net at its teacher's accuracy, already charged the teacher's updates; where that
accuracy is at the random net's best (the Net2Net table counts these seeds: in version 2 the random
net's best was close to what the teacher reaches, because mnist5k saturates within the teacher's
budget) the grown net scores the teacher's updates, and wins only if the random net needs more. The
teacher trained on is at the grown net's starting accuracy at the teacher's last update as well (its
best is at least that; where they are equal the part counts against Net2Net). A grown net that never
reaches a mark counts as its budget plus one evaluation interval (31 updates).
Function preservation holds by construction (a unit test checks it to 1e-5); the measured error
of the transforms on a training batch is shown in the Net2Net table, not judged.

Departures from the authors' code (adri-romsor/FitNets): it initializes weights U(-0.005, 0.005)
and decays the KD weight per epoch from 4 (held five epochs) to 0 (their MNIST config,
TeacherDecayOverEpoch); we use He init (with a std-matched N(0, 0.0029^2) init every method of the
exploration above sat at chance within the budget) and the paper's linear 4 -> 1 over the
updates. The paper's nets are maxout convnets on 60,000 digits; ours are ReLU MLPs. The Net2Net
transforms follow the Keras example's noise rule (above), not a rule from the paper.

Budgets (compute: the summed trial time with replication, estimated from version 2's records, which
were timed on an idle machine, and for the new widths from CPU time measured beside the old teacher).
- quick (version 3, about 97 s; version 2 took 401 s): 6 epochs (186 updates), grown nets 2 more
  (62), the teacher 3x100 (wider 3x150, deeper 4x100), two tuning seeds. Version 2's time went to the
  Net2Net arms (3x300 and 4x200 nets with their grids: 190 s), the teacher and the teacher trained
  on (97 s) and the students (114 s). Little was waste: evaluation is about 5 % of a trial, the
  student grid's optimum sat inside it (2e-3 for every method), and the teacher trained on, which
  repeats the teacher's updates, now skips the tuning seeds (TUNE grids_only: it has one level). So
  the cuts are of scale: half the teacher's width, which shrinks every Net2Net arm, and under half
  the epochs. Tuning seeds are kept at two: a first cut to one seed (at 7 epochs) chose kd's rate
  from a training loss that was flat across the grid's top (1.039 at 4e-3, 1.026 at 8e-3), a choice
  one seed cannot make; an epoch less pays for the second seed. The grids moved where the tuning
  seeds chose an edge (SETUP). The student stays 16x12, and "hard to train alone" is still
  measured, as part (0).
- long (about 9.4 CPU-minutes): the same nets for 30 epochs (930 updates), grown nets 5 more (155),
  two tuning seeds, and 7 verdict + 7 replication seeds (the thin student's test error has a standard
  deviation of 6-10 pp over seeds at quick; more seeds narrow the FitNets parts' intervals). Romero et al.
  train to convergence; here the thin student gets four times the quick's epochs to learn from the
  labels alone, which it still does badly: on tuning seed 1000 (lr 2e-3) the 16x12 student ended at
  19.0 % test error from scratch, 17.0 % with kd and 18.3 % with hints, against 7.2 % for the
  equal-parameter shallow net and 6.4 % for the teacher. Deeper students did no better with a
  teacher (20x12: 16.6 / 18.3 / 27.8 %; 24x10: 21.0 / 42.5 / 43.6 %, scratch / kd / hints), so long
  keeps the quick's student.

Full budget: CIFAR-10 (Table 5's regime; 50,000 training images, 20 epochs at batch 128, grown
nets 10 more) with convnets: a ~7M-parameter teacher (6 conv blocks of 160-640 channels) and an
11-layer thin student (10 conv blocks of 8-128 channels, ~0.3M, like FitNet 1); the shallow
control is a 2-block convnet of about the student's parameters. The student's block 5 is guided by
the teacher's block 4, not its middle block 3: block 3's maps (16x16) are larger than block 5's
(8x8), which a convolutional regressor without padding cannot grow, so the hint comes from the
first block at the guided block's size; the wider net is the teacher at 1.5x the channels, the
deeper one has a seventh block before the last pool.

Full budget: about 7.7 GPU-hours on one data-centre GPU (126 trials, 1,025,700 updates, 800 PFLOP
counted from the arms' models; `python -m studies.fitnets --budget full --replicate --estimate`
shows the count and its assumptions).
"""

from __future__ import annotations

import dataclasses
import sys
from functools import cache

import numpy as np
import pandas as pd

from oplab import cli, kit, models, plots
from oplab.config import DataConfig, DistillConfig, InitConfig, ModelConfig, OptimConfig, Trial

NAME = "fitnets"
TITLE = "FitNets hints and Net2Net"
CLAIM = ("A deep thin student that is hard to train from the labels alone learns better from a shallow wide "
         "teacher: knowledge distillation helps, hints from the teacher's middle layer (FitNets) help at least as "
         "much; a net grown from a trained teacher by function-preserving transforms (Net2Net) reaches a given "
         "accuracy in fewer updates, its teacher's counted, than the same net from random init and than the teacher "
         "trained on.")
SOURCE = ("Romero, Ballas, Kahou, Chassang, Gatta & Bengio 2015, FitNets: Hints for Thin Deep Nets, ICLR, "
          "Table 4; Chen, Goodfellow & Shlens 2016, Net2Net: Accelerating Learning via Knowledge Transfer, ICLR")
VERSION = 3  # 3: quick cut (3x100 teacher, 6 epochs); the long budget
SEEDS = {"smoke": 2, "quick": 5, "long": 7, "full": 5}  # long: 7 + 7 replication seeds (Budgets)
TUNE = kit.Tune("lr", within=("net", "method"), score="train_loss_full",
                seeds={"smoke": 1, "quick": 2, "long": 2, "full": 1}, grids_only=True)

STUDENT_LRS = [1e-3, 2e-3, 4e-3]  # RMSProp learning rates of the students and the shallow net
GROWN_LRS = [2.5e-4, 5e-4, 1e-3]  # ... of the grown and random-init nets
DEFAULT_GRIDS = {**{f"student {m}": STUDENT_LRS for m in ("scratch", "kd", "hints")}, "shallow scratch": STUDENT_LRS,
                 **{f"{n} {m}": GROWN_LRS for n in ("wider", "deeper") for m in ("net2net", "random")}}
TEACHER_LR = 1e-3
MARGIN_PP = 0.5  # non-inferiority margin of hints vs kd, percentage points of test error
CHANCE_PP = 90.0  # a diverged trial's test error
NOISE = 0.05  # Net2WiderNet's symmetry-breaking noise, x the std of the new units' outgoing weights
ON = "trained on"  # the method of the teacher trained on for the grown nets' updates
ORDER = ["teacher", ON, "scratch", "kd", "hints", "net2net", "random"]
NETS = ["teacher", "student", "shallow", "wider", "deeper"]
INPUT = {"mnist5k": (1, 28, 28), "cifar10": (3, 32, 32)}
# Romero et al.'s test error (%): Table 4 (MNIST) at smoke and quick; Table 5 (CIFAR-10, 100 - accuracy;
# teacher and FitNet 1, the 11-layer student) at full
PAPER_PCT = {"Table 4, MNIST": {"teacher": 0.55, "scratch": 1.9, "kd": 0.65, "hints": 0.51},
             "Table 5, CIFAR-10": {"teacher": 9.82, "hints": 10.99}}


def _mlp(depth, width):
    return ModelConfig("mlp", depth, width, "relu")


def _conv(depth, width, pools=None):
    return ModelConfig("convnet", depth, width, "relu", {"pools": pools} if pools is not None else {})


@cache
def _n_params(model: ModelConfig, data: str) -> int:
    return models.n_params(models.build(model, INPUT[data], 10))


def _shallow(student: ModelConfig, data: str, depth: int) -> ModelConfig:
    """A net of `depth` hidden blocks whose parameter count is nearest the student's."""
    target = _n_params(student, data)
    lo, hi = 1, 1024
    while lo < hi:  # smallest width with at least the student's parameters
        mid = (lo + hi) // 2
        if _n_params(dataclasses.replace(student, depth=depth, width=mid), data) >= target:
            hi = mid
        else:
            lo = mid + 1
    near = [w for w in (lo - 1, lo) if w >= 1]
    best = min(near, key=lambda w: abs(_n_params(dataclasses.replace(student, depth=depth, width=w), data) - target))
    return dataclasses.replace(student, depth=depth, width=best)


def _setup(data, epochs, n_train, teacher, student, widen, batch=128, guided=-1, hint=-1, more_epochs=5,
           shallow_depth=1, grids=None):
    """`teacher`, `student`: ModelConfigs; `widen`: the wider net's width factor (every layer);
    `more_epochs`: the grown nets' training after the teacher's; `grids`: "net method" -> its RMSProp lr grid,
    where it is not the default (STUDENT_LRS for the students and the shallow net, GROWN_LRS for the others)."""
    per_epoch = n_train // batch
    steps = epochs * per_epoch
    return dict(data=data, steps=steps, more_steps=more_epochs * per_epoch, eval_every=per_epoch, batch=batch,
                teacher=teacher, student=student, shallow=_shallow(student, data.name, shallow_depth), widen=widen,
                hint_steps=steps // 3, guided_block=guided, hint_block=hint,
                grids={k: list(v) for k, v in {**DEFAULT_GRIDS, **(grids or {})}.items()})


SETUP = {"smoke": _setup(DataConfig("mnist5k", n_train=256, n_test=200), 2, 256, _mlp(3, 32), _mlp(6, 8), 2,
                         batch=64, more_epochs=1),
         # quick (version 3): half the teacher's width and under half the epochs of version 2 (15 epochs, a 3x200
         # teacher, grown nets 5 epochs more), to fit the quick suite's 10 minutes; see Budgets
         # (grids moved where this setting's first runs chose an edge on the tuning seeds: the wider random net the
         # default grid's high edge, both grown nets its low edge, kd its high edge twice)
         "quick": _setup(DataConfig("mnist5k"), 6, 4000, _mlp(3, 100), _mlp(16, 12), 1.5, more_epochs=2,
                         grids={"student kd": (4e-3, 8e-3, 1.6e-2), "wider random": (5e-4, 1e-3, 2e-3),
                                **{f"{n} net2net": (1.25e-4, 2.5e-4, 5e-4) for n in ("wider", "deeper")}}),
         # long: the same nets trained 30 epochs (grown nets 5 more): the thin student given time to train alone
         # (the grown nets' grid one step lower: version 2's 15 epochs chose the default grid's low edge for them;
         # then, where the first long run chose an edge on the tuning seeds, one step toward it)
         "long": _setup(DataConfig("mnist5k"), 30, 4000, _mlp(3, 100), _mlp(16, 12), 1.5,
                        grids={"student scratch": (2e-3, 4e-3, 8e-3), "student kd": (2e-3, 4e-3, 8e-3),
                               "wider random": (5e-4, 1e-3, 2e-3), "deeper random": (1.25e-4, 2.5e-4, 5e-4),
                               **{f"{n} net2net": (1.25e-4, 2.5e-4, 5e-4) for n in ("wider", "deeper")}}),
         # CIFAR-10 (Table 5's regime): a ~7M-parameter teacher (6 conv blocks, 160-640 channels) and an
         # 11-layer thin student (10 conv blocks, 8-128 channels, ~0.3M, like FitNet 1); the student's block 5
         # (8x8 maps) is guided by the teacher's block 4 (8x8), so the regressor is a 1x1 convolution
         "full": _setup(DataConfig("cifar10", n_train=50000), 20, 50000, _conv(6, 160), _conv(10, 8), 1.5,
                        guided=5, hint=4, more_epochs=10, shallow_depth=2)}

PAPER = """
| MNIST test error | params | Romero et al. 2015, Table 4 |
|---|---|---|
| teacher (maxout convnet) | ~361K | 0.55 % |
| student, standard backprop | ~30K | 1.9 % |
| student, knowledge distillation | ~30K | 0.65 % |
| student, FitNets (hints, then KD) | ~30K | 0.51 % |

The paper's nets are maxout convnets trained on 60,000 digits; ours are ReLU MLPs trained on 4,000
digits for 186 updates at quick and 930 at long: compare orderings, not error levels. Table 5 (CIFAR-10, the `full`
budget's regime): teacher (~9M) 90.18 % accuracy; FitNet 1 (11 layers, ~250K) 89.01 %, FitNet 2
(11, ~862K) 91.06 %, FitNet 3 (13, ~1.6M) 91.10 %, FitNet 4 (19, ~2.5M) 91.61 %. Net2Net (Chen et al. 2016)
reports its speed-ups as curves only (ImageNet Inception nets): the grown net starts at the teacher's
accuracy and reaches a given accuracy sooner than a random-init net of the same size, and ends above
the teacher trained on.
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
        return teacher if method == "teacher" else dataclasses.replace(teacher, steps=s["steps"] + s["more_steps"])
    optim = OptimConfig("rmsprop", lr=lr)
    if net == "shallow":
        return Trial(model=s["shallow"], optim=optim, steps=s["steps"], **base)
    if net == "student":
        steps, distill = s["steps"], DistillConfig({"scratch": "none", "kd": "kd"}.get(method, "none"))
        if method == "hints":
            steps = s["steps"] - s["hint_steps"]
            distill = DistillConfig("hints", hint_steps=s["hint_steps"], guided_block=s["guided_block"],
                                    hint_block=s["hint_block"])
        return Trial(model=s["student"], optim=optim, steps=steps, distill=distill,
                     teacher=teacher if method != "scratch" else None, **base)
    model, ops = _grown(s, net)
    if method == "random":  # compute-matched: the teacher's updates plus the grown net's
        return Trial(model=model, optim=optim, steps=s["steps"] + s["more_steps"], **base)
    init = InitConfig("net2net", {"ops": ops, "noise": NOISE if net == "wider" else 0.0})
    return Trial(model=model, optim=optim, steps=s["more_steps"], teacher=teacher, **{**base, "init": init})


def arms(budget: str) -> dict[str, kit.Arm]:
    s = SETUP[budget]
    out = {"teacher": kit.Arm(_trial(s, "teacher", "teacher", TEACHER_LR),
                              {"net": "teacher", "method": "teacher", "lr": TEACHER_LR}),
           "teacher trained on": kit.Arm(_trial(s, "teacher", ON, TEACHER_LR),
                                         {"net": "teacher", "method": ON, "lr": TEACHER_LR})}
    conds = [(*group.split(), lrs) for group, lrs in s["grids"].items()]
    for net, method, lrs in conds:
        for lr in lrs:
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
    """Per trial: test error in points, parameters, updates counted (stage 1 included; a grown net's
    teacher's updates included), the hint and guided blocks, and for the Net2Net comparisons the
    updates to reach (a) the best test accuracy of the random-init net of the same net and seed,
    (b) the best test accuracy of the teacher trained on (same seed), on the counted-update axis."""
    s = ctx.setup
    t = df.copy()
    t["test_err_pp"] = 100 * t["test_err"]
    t["params"] = _extra(t, "n_params")
    t["teacher_key"] = _extra(t, "teacher", "key", default=None)
    t["guided_block"] = _extra(t, "hints", "guided_block")
    t["hint_block"] = _extra(t, "hints", "hint_block")
    pre = t["pretrain_updates"]
    t["stage1_updates"] = pre.fillna(0)
    # a grown net's curve starts after its teacher's updates, which count in its cost (Chen et al.)
    t["offset"] = t["stage1_updates"] + np.where(t["method"] == "net2net", s["steps"], 0)
    t["total_updates"] = t["offset"] + t["steps"]
    t["preservation_error"] = _extra(t, "init", "preservation_error")
    t["preservation_error_no_noise"] = _extra(t, "init", "preservation_error_no_noise")
    teach = t[(t["net"] == "teacher") & (t["method"] == "teacher")].set_index("seed")
    t["teacher_acc"] = t["seed"].map(teach["test_acc"]) if "test_acc" in teach else np.nan
    ev = curves.get("eval")
    never = s["steps"] + s["more_steps"] + s["eval_every"]

    def curve(row):
        if ev is None or row["status"] != "ok":
            return pd.DataFrame()
        c = ev[(ev["arm"] == row["arm"]) & (ev["seed"] == row["seed"])]
        return c.assign(update=c["step"] + row["offset"])

    cs = {i: curve(row) for i, row in t.iterrows()}
    best = {i: float(c["test_acc"].max()) if len(c) else np.nan for i, c in cs.items()}

    def mark(where):  # the best accuracy of the baseline trial matching `where`, per seed
        rows = t[np.logical_and.reduce([t[k] == v for k, v in where.items()])]
        return {sd: best[i] for i, sd in zip(rows.index, rows["seed"])}

    on = mark({"net": "teacher", "method": ON})
    rand = {net: mark({"net": net, "method": "random"}) for net in ("wider", "deeper")}
    to_rand, to_on, start_acc, at_rand, at_on = [], [], [], [], []
    for i, row in t.iterrows():
        c = cs[i]
        start_acc.append(float(c["test_acc"].iloc[0]) if len(c) else np.nan)
        m_r = rand.get(row["net"], {}).get(row["seed"], np.nan)
        m_o = on.get(row["seed"], np.nan)
        grown = row["net"] in ("wider", "deeper")
        ok_r, ok_o = grown and np.isfinite(m_r), (row["method"] in ("net2net", ON)) and np.isfinite(m_o)
        to_rand.append(_first_reach(c, m_r, never) if ok_r else np.nan)
        to_on.append(_first_reach(c, m_o, never) if ok_o else np.nan)
        at_rand.append(bool(len(c)) and ok_r and start_acc[-1] >= m_r - 1e-12)
        at_on.append(bool(len(c)) and ok_o and row["method"] == "net2net" and start_acc[-1] >= m_o - 1e-12)
    t["updates_to_random_best"] = to_rand
    t["updates_to_trained_on_best"] = to_on
    t["test_acc_at_start"] = start_acc
    t["starts_at_random_best"] = at_rand
    t["starts_at_trained_on_best"] = at_on
    t["random_best_acc"] = [rand.get(n, {}).get(sd, np.nan) for n, sd in zip(t["net"], t["seed"])]
    t["trained_on_best_acc"] = t["seed"].map(on)
    return t


def verdict(t, ctx):
    err = dict(unit="pp", worst=CHANCE_PP, fmt=".2f", note="A diverged trial counts as 90 % test error (chance).")
    st = kit.select(t, {"net": "student"})
    scratch, kd, hints = ({"method": m} for m in ("scratch", "kd", "hints"))
    parts = [kit.difference(t, "test_err_pp", {"net": "student", "method": "scratch"},
                            {"net": "shallow", "method": "scratch"}, part="(0) thin student hard to train alone",
                            above=0.0, **err,
                            claim="from the labels alone: the deep thin student's minus an equal-parameter "
                                  "one-hidden-layer net's test error > 0"),
             kit.difference(st, "test_err_pp", scratch, hints, part="(1) hints vs scratch", above=0.0, **err,
                            claim="student: scratch's minus hints' test error > 0"),
             kit.difference(st, "test_err_pp", scratch, kd, part="(2) kd vs scratch", above=0.0, **err,
                            claim="student: scratch's minus kd's test error > 0"),
             kit.difference(st, "test_err_pp", kd, hints, part="(3) hints vs kd", above=-MARGIN_PP, **err,
                            claim=f"student: kd's minus hints' test error > -{MARGIN_PP:g} pp")]
    s = ctx.setup
    never = s["steps"] + s["more_steps"] + s["eval_every"]
    cost = (f"Updates counted: the grown net's {s['more_steps']} after its teacher's {s['steps']}; the baseline's "
            f"{s['steps'] + s['more_steps']}. A trial that never reaches the mark (or diverged) counts as {never} "
            "updates (the budget plus one evaluation interval).")
    upd = dict(above=0.0, unit="updates", worst=float(never), fmt=".0f", note=cost)
    for k, net in (("4", "wider"), ("5", "deeper")):
        grown = {"net": net, "method": "net2net"}
        parts.append(kit.difference(
            t, "updates_to_random_best", {"net": net, "method": "random"}, grown,
            part=f"({k}a) Net2Net {net} vs random init", **upd,
            claim=f"{net} net: updates to reach the best test accuracy the random-init net reaches, random's minus "
                  "net2net's (teacher's updates counted) > 0"))
        parts.append(kit.difference(
            t, "updates_to_trained_on_best", {"net": "teacher", "method": ON}, grown,
            part=f"({k}b) Net2Net {net} vs teacher trained on", **upd,
            claim=f"{net} net: updates to reach the best test accuracy the teacher trained on reaches, the "
                  "teacher's minus net2net's (teacher's updates counted) > 0"))
    return parts


def tables(t, curves, ctx):
    order = {"method": ORDER, "net": NETS}
    fit = t[t["net"].isin(["teacher", "student", "shallow"]) & (t["method"] != ON)]
    extra = {"params": "params", "RMSProp lr (chosen)": "lr", "total updates": "total_updates",
             "final train loss (full split)": "train_loss_full", "guided block": "guided_block",
             "hint block": "hint_block"}
    err = kit.summary(fit, "test_err_pp", ["net", "method"], name="test error %", fmt=".2f", order=order,
                      extra=extra)
    table = "Table 5, CIFAR-10" if ctx.budget == "full" else "Table 4, MNIST"
    paper = err["method"].astype(str).map(PAPER_PCT[table])
    err[f"paper ({table}) %"] = paper.where(err["net"].astype(str) != "shallow")
    grow = t[t["net"].isin(["wider", "deeper"]) | (t["method"] == ON)]
    n2n = kit.summary(grow, "test_err_pp", ["net", "method"], name="final test error %", fmt=".2f", order=order,
                      extra={"params": "params", "RMSProp lr (chosen)": "lr", "updates trained": "steps",
                             "updates counted": "total_updates", "test accuracy at start": "test_acc_at_start",
                             "random-init net's best accuracy": "random_best_acc",
                             "updates to it": "updates_to_random_best",
                             "teacher trained on's best accuracy": "trained_on_best_acc",
                             "updates to it ": "updates_to_trained_on_best"})
    starts = grow[grow["method"] == "net2net"].groupby("net")[["starts_at_random_best",
                                                               "starts_at_trained_on_best"]].sum()
    starts = starts.rename(columns={"starts_at_random_best": "seeds starting at the random net's best",
                                    "starts_at_trained_on_best": "seeds starting at the teacher trained on's best"})
    pres = grow[grow["method"] == "net2net"].groupby("net")[["preservation_error", "preservation_error_no_noise"]]
    pres = pres.max().join(starts).reset_index().rename(columns={
        "preservation_error": "max |f_grown - f_teacher| as trained (with noise for wider)",
        "preservation_error_no_noise": "max |f_grown - f_teacher|, noise off"})
    learners = t[t["teacher_key"].notna()].assign(digest=_extra(t, "teacher", "weights_sha256", default=None))
    users = learners.groupby("seed").agg(teacher_key=("teacher_key", "first"), teachers=("teacher_key", "nunique"),
                                         trials_using_it=("teacher_key", "size"), digests=("digest", "nunique"),
                                         digest=("digest", "first"))
    teach = t[(t["net"] == "teacher") & (t["method"] == "teacher")]
    teach = teach.assign(own=_extra(teach, "weights_sha256", default=None)).set_index("seed")
    users["teacher trial's key"] = teach["key"].reindex(users.index)
    # every learner of a seed loaded the very weights its seed's teacher record says it stored
    same_key = (users["teacher_key"] == users["teacher trial's key"]) & (users["teachers"] == 1)
    same_weights = (users["digests"] == 1) & (users["digest"] == teach["own"].reindex(users.index))
    users["same teacher and weights"] = same_key & same_weights
    users = users.drop(columns=["digests", "digest"])
    return {"FitNets: test error per arm (each at its chosen lr), beside the paper; shallow: the equal-parameter "
            "one-hidden-layer control of part (0)": err,
            "Net2Net: grown nets vs random-init nets and the teacher trained on (updates counted with the teacher's)":
                n2n,
            "Net2Net: measured function-preservation error on a training batch (eval mode), and seeds whose grown "
            "net starts at a mark": pres,
            "teacher reuse: one stored teacher per seed, loaded by every trial that learns from it":
                users.drop(columns=["teacher_key"]).reset_index(),
            "learning-rate grid (tuning seeds)": kit.tuning_table(ctx, order=order)}


def figures(t, curves, ctx):
    ev = curves["eval"].merge(t[["arm", "seed", "offset"]], on=["arm", "seed"], how="left")
    ev = ev.assign(update=ev["step"] + ev["offset"].fillna(0), test_err_pct=100 * (1 - ev["test_acc"]))
    ev["who"] = np.where(ev["net"] == "shallow", "shallow (equal params)", ev["method"])
    fit = ev[ev["net"].isin(["teacher", "student", "shallow"]) & (ev["method"] != ON) & (ev["step"] > 0)]
    fig, (a1,) = plots.figure(1, width=7.0)
    plots.curves(a1, fit, "update", "test_err_pct", "who", "update (hints: stage 1 included)", "test error (%)",
                 "FitNets: thin student vs teacher",
                 hue_order=["teacher", "scratch", "kd", "hints", "shallow (equal params)"])
    a1.set_ylim(bottom=0)
    plots.caption(fig, plots.BAND_LABEL + "; hints' curve starts after its stage-1 updates")

    fig2, axes = plots.figure(2)
    on = t[t["method"] == ON]
    for ax, net in zip(axes, ("wider", "deeper")):
        g = ev[(ev["net"] == net) | (ev["method"] == ON)]
        plots.curves(ax, g, "update", "test_err_pct", "method", "updates counted (the grown net's teacher's included)",
                     "test error (%)", f"Net2Net: {net} net", hue_order=["net2net", "random", ON])
        ref = 100 * (1 - on["test_acc"].mean()) if len(on) else np.nan
        ax.set_ylim(0, 4 * ref if np.isfinite(ref) and ref > 0 else None)
    plots.caption(fig2, plots.BAND_LABEL + "; the grown net's curve starts at its teacher's last update, at the "
                  "teacher's function; the random-init nets start near chance, above the plotted range")

    fig3, (c1,) = plots.figure(1, width=6.5)
    pts = t[t["net"].isin(["teacher", "student", "shallow"]) & (t["method"] != ON)]
    # two lines for the long name, so that the tick labels keep apart
    pts = pts.assign(who=np.where(pts["net"] == "shallow", "shallow\n(equal params)", pts["method"]))
    plots.points(c1, pts, "who", "test_err_pp", "", "final test error (%)", "Final test error",
                 order=["teacher", "scratch", "kd", "hints", "shallow\n(equal params)"])
    plots.caption(fig3, plots.POINTS_LABEL)
    return {"fitnets_curves": fig, "net2net_curves": fig2, "final_error": fig3}


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
