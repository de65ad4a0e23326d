"""Curriculum learning for an LSTM that learns to add (Zaremba & Sutskever 2014, "Learning to Execute").

Task (oplab.tasks `addition`): character-level sequence to sequence; the LSTM reads "a+b=" and
emits the sum's digits and an end symbol. Difficulty = operand digits d, both operands uniform in
[1, 10^d] (the authors' random(10^length)). One difficulty is drawn per example and both of its
operands take it. The released code (data.lua `get_operand`) calls the strategy's hardness() once per
operand, so in mix and in combined's mixed fifth the two operands of an example draw their lengths
independently (baseline and naive, and the validation and test sets, whose hardness is fixed, give
both operands the same length either way); a secondary summary of the paper says "same length". We
keep one difficulty per example, so that an example has one difficulty, the exposure table below is
well defined and mix's examples at the target are whole examples at the target; the difference
touches only mix's and combined's mixed draws and is not measured here. Training examples are
generated per update from the trial's seed; the test set (at the target difficulty) and the
validation sets come from their own seeded streams in hash buckets that training never draws from
(oplab.tasks; the one-digit table, all of difficulty 1, is training only). The test set is the same
for every trial of a target, so arms are compared on the same examples, paired by seed.

Strategies (oplab.curriculum; factor `strategy`), at equal updates and equal model size:
baseline (every example at the target), naive (the current level, which starts at 1), mix (uniform
in 1..target for every example) and combined (naive, but each example with probability 1/5 drawn as
in mix). The level rises by one, up to the target, when the authors' rule fires at a check (every
`check_every` updates), exactly as main.lua lines 285-287 at commit 04a1659:
`(state_val.acc > params.target_accuracy) or (#train_accs >= 5 and train_accs[#train_accs - 4] >
state_train.acc)`, i.e. when (a) the per-character validation accuracy at the current level is above
0.95, or (b) the training accuracy is below its value five checks earlier. Our reading of (b), from
main.lua: `state_train.acc` is the per-character accuracy (teacher forcing, output characters only)
of the training batches since the previous check, each scored before its update (MaskedLoss counts,
accumulated by fp() and zeroed by show_predictions -> reset_state after every check; oplab.streamtask
records it as the check curve's `train_acc`); `train_accs` gets one entry per check, appended after
the decision, so with at least five entries `train_accs[#train_accs - 4]` (Lua indexes from 1) is the
value five checks before the current one; when the rule fires the history is emptied and the current
check's value becomes its first entry, so (b) can fire again five checks later at the earliest, and
then compares with the training accuracy measured just before the level rose, at the easier level: in
effect the level keeps rising every five checks until the training accuracy at a new level overtakes
the one at the level before (the exposure table counts the rises by each rule). Two points the code
leaves open, and our choice: the first interval is 10 updates there (checks at step % 100 == 10) and
`check_every` here; and the history is cleared also when the rule fires at the target (the rate's
decay, full budget only), which we follow. As in the authors' code the level moves under the rule in
every arm; it drives the draws of naive and combined only. Each arm's exposure (mean training
difficulty and share of training examples at the target, from the levels recorded every 10 updates
and the strategy's draw probabilities, oplab.curriculum.exposure) and how often each rule advanced
the level are in a table. With rule (a) alone (VERSION 2) no curriculum arm reached level 3 at
target 3 within the quick budget (that version's records), so their 3-digit accuracy measured
mostly how little they had trained there.

Regime. The paper trains a 2-layer LSTM of 400 units on 9-digit addition with SGD (lr 0.5, batch
100) for days of GPU time. Every budget but full uses 1 LSTM layer of 64 units (64-d embedding,
weights U(-0.08, 0.08) as the authors'), batch 50, Adam lr 0.01 per update (constant), gradient
norm rescaled to 5. These were set by a short exploration on tuning seeds 1000-1004 (not stored;
never the verdict seeds): two-digit addition was well under way within 800 updates and largely
learned by 1,000, three-digit addition was under way but far from learned (whole answers almost
never right); the authors' plain SGD at lr 0.5 learned far slower at this size (on our
per-character mean loss, i.e. about 1/k of the authors' step: see Loss scale), and Adam at 0.003
and 0.03 trained no faster than at 0.01. No setting is tuned per arm: one learning rate for every
strategy, as in the authors' code. Test accuracy is evaluated every `eval_every` updates (greedy
decoding included; the verdict reads only the last).

Budgets (compute: the summed trial time with replication, estimated from version 3's records,
which were timed on an idle machine; `--estimate` prints it from stored records).
- quick (version 4, about 106 s; version 3 took 434 s): target 2 only, 400 updates, the rule
  checked every 25 updates, test accuracy every 200; 40 trials. Version 3 ran targets 2 and 3 for
  800 updates with a check every 50; three-digit addition had barely started there (whole answers
  right 0.1-1 % for every strategy), so quick keeps the learnable target and halves the run. A
  check every 25 keeps version 3's 16 checks a run (rule (b) needs five, so the level can rise at
  most every 125 updates): on tuning seeds 1000-1001 at 400 updates, with a check every 50 the
  curricula reached level 2 at updates 200-400 (combined at 250 and 400) and trained below the
  target for most of the run; with a check every 25, at 175-275. Quick measures the start of
  learning: which strategy learns two-digit addition faster within 400 updates.
- long (about 10.5 CPU-minutes): target 3, 2,200 updates, the check every 50, test accuracy every
  440; 40 trials. Long enough for the curricula to reach the target and then train there for most
  of the run: on tuning seed 1000 (2,400 updates) naive and combined reached level 3 by updates 450
  and 600, and three-digit per-character accuracy went from 33-41 % at update 400 to 40-69 % at
  2,400 (whole answers 0.2-6 %): the target is being learned, not mastered. At target 4 (2,000
  updates, seed 1000) every strategy stayed near 50 % per character and 0-0.6 % whole answers; a
  128-unit LSTM (1.9x the CPU time an update) at 1,200 updates ended near the 64-unit one at 2,400
  (baseline 59.9 against 59.0 % per character, combined 65.9 against 57.0; one seed), so long keeps
  the quick's model. Not the paper's end state (9 digits, 99 %): long measures which strategy
  learns three-digit addition faster once the curricula can reach it.

Loss scale. The authors' MaskedLoss sums the negative log-likelihood of the scored characters over
the 50-character window and divides by the batch; oplab.streamtask takes the mean over the batch's
scored characters. The authors' loss is therefore k times ours, k = 50 x the share of a stream's
characters that are scored (oplab.tasks AdditionTask.scored_share, exact for our format: k is
about 17-19 from 1 to 9 digits), and so is its gradient. Quick and long (Adam): Adam's step does not depend
on the loss's scale (up to its epsilon), so the scale changes only what the clip at norm 5 cuts; the
clipping table gives, from the logged gradient norms, the share of updates clipped at 5 (ours) and
the share that the authors' scale would clip (norm above 5/k). Full (the authors' plain SGD): we
scale the rate and the clip, not the loss: lr 0.5 k and clip threshold 5/k at the target
difficulty, which gives exactly the authors' update, 0.5 x (their gradient rescaled to norm 5), in
expectation over the number of scored characters (at the curriculum's lower levels k is larger by
up to about a tenth, and the update with it).

Metrics, at the target difficulty on its 500-example test set: per-character accuracy with teacher
forcing (the authors' metric, over the answer's characters and the end symbol) and whole-answer
accuracy with greedy decoding (every character right, end symbol included), both in percent.

Verdict (each per seed the mean over the budget's target difficulties, one at quick and long, then
Student t over seeds, paired by seed; a diverged trial counts as 0 % accuracy), for both metrics:
(1) combined's minus baseline's accuracy > 0;
(2) combined's minus mix's accuracy > 0;
(3) combined's minus naive's accuracy > 0.
The claim says combined trains *better* than each of the others, so every part is a superiority
test (earlier versions tested (2) and (3) as non-inferiority within 2 pp, which the claim's
words do not say). Whether naive falls below baseline (the paper
says it can) is reported in a table with its interval, as found, not as a part.

Full budget: the paper's setting: 2 layers of 400 units, 400-d embedding, target difficulties 6
and 9, plain SGD at the authors' lr 0.5 and gradient norm 5 on their loss scale (above) at batch
100, the advance check every 100 updates, and the authors' decay (lr x 0.8 when the rule fires at the
target; the authors also stop once the rate is below 1e-3, we train the fixed budget); 200,000
updates, 1,000 test examples.
The authors' code reads one continuous stream of examples with truncated backpropagation over 50
characters; here each example is its own sequence (reset state, full backpropagation).

Full budget: about 10 GPU-hours on one data-centre GPU (80 trials, 16,000,000 updates, 640 PFLOP
counted from the arms' models; `python -m studies.curriculum_rnn --budget full --replicate
--estimate` shows the count and its assumptions).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from oplab import cli, curriculum, kit, plots, stats, tasks
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial

NAME = "curriculum_rnn"
TITLE = "Curriculum learning for an LSTM that adds"
CLAIM = ("A stochastic curriculum of training examples, generally ordered from easy to hard but with some "
         "mixing (combined), trains an LSTM to add numbers better than training on the target difficulty alone "
         "(baseline), than mixing alone (mix) and than an easy-to-hard curriculum without mixing (naive).")
SOURCE = ("Zaremba & Sutskever 2014, Learning to Execute, arXiv 1410.4615, sec. 4 and the addition figure; "
          "the authors' code (github.com/wojciechz/learning_to_execute, 2014)")
VERSION = 4  # 4: quick cut to one target and 400 updates; the long budget (3: the authors' second rule)
SEEDS = {"smoke": 2, "quick": 5, "long": 5, "full": 5}

ORDER = ["baseline", "naive", "mix", "combined"]
CURRICULUM_ARMS = ["naive", "combined"]
METRICS = {"char_pct": "per-character accuracy (teacher forcing)", "seq_pct": "whole-answer accuracy (greedy)"}


def _setup(targets, steps, width, depth, batch, optim, n_test, n_val, check_every, eval_every, lr_decay=1.0):
    return dict(targets=targets, steps=steps, model=ModelConfig("char_lstm", depth, width), batch=batch, optim=optim,
                n_test=n_test, n_val=n_val, check_every=check_every, eval_every=eval_every, lr_decay=lr_decay)


CLIP = 5.0  # the authors' max_grad_norm: the gradient is rescaled to this norm


def _adam(lr):
    return OptimConfig("adam", lr=lr, clip="norm", clip_threshold=CLIP)


WINDOW = 50  # the authors' unrolled window: characters a row of the batch that one update's loss sums over
TASK = tasks.STREAMS.build("addition")


def loss_scale(target: int) -> float:
    """k: the authors' loss (summed over the window's scored characters, divided by the batch) over
    ours (the mean over scored characters), at the target difficulty."""
    return WINDOW * TASK.scored_share(target)


def _authors_sgd(lr=0.5, clip=CLIP):
    """The authors' plain SGD on their loss scale, per target: rate x k and clip / k on our mean loss."""
    return lambda target: OptimConfig("sgd", lr=lr * loss_scale(target), clip="norm",
                                      clip_threshold=clip / loss_scale(target))


SETUP = {
    "smoke": _setup((2,), 30, 16, 1, 20, _adam(0.01), 50, 50, 10, 10),
    # quick (version 4): one target, half the updates (version 3: targets 2 and 3, 800 updates); see Budgets
    "quick": _setup((2,), 400, 64, 1, 50, _adam(0.01), 500, 200, 25, 200),
    # long: the quick's model and rule at target 3, long enough that the curricula reach the target and then
    # train there for most of the run; see Budgets
    "long": _setup((3,), 2200, 64, 1, 50, _adam(0.01), 500, 200, 50, 440),
    "full": _setup((6, 9), 200_000, 400, 2, 100, _authors_sgd(), 1000, 500, 100, 2000, lr_decay=0.8),
}

PAPER = """
| statement (Zaremba & Sutskever 2014) | paper |
|---|---|
| 9-digit addition, 2-layer LSTM of 400 units, combined | 99 % accuracy (abstract; the code's metric: per character) |
| combined vs the other strategies (program evaluation) | "outperforms all other strategies in every configuration" |
| combined vs the other strategies (memorization) | not always the best |
| naive vs baseline | naive "sometimes gives even worse performance than baseline" |
| conventional (naive) curriculum learning | "proved ineffective" (abstract) |
| per-strategy accuracy on addition | in a figure only |

Our quick budget trains a 64-unit LSTM for 400 updates on 2-digit addition, the long one for 2,200
on 3-digit addition: compare which strategy learns faster there, not accuracy levels with the
paper's 9-digit end state.
"""


def arms(budget: str) -> dict[str, kit.Arm]:
    """One arm per (strategy, target difficulty)."""
    s = SETUP[budget]
    out = {}
    for target in s["targets"]:
        for strategy in ORDER:
            data = DataConfig("addition", n_test=s["n_test"],
                              options={"target": target, "curriculum": strategy, "check_every": s["check_every"],
                                       "n_val": s["n_val"], "lr_decay": s["lr_decay"]})
            opt = s["optim"](target) if callable(s["optim"]) else s["optim"]
            trial = Trial(data=data, model=s["model"], optim=opt, steps=s["steps"], batch_size=s["batch"],
                          eval_every=s["eval_every"], log_every=10)
            out[f"{strategy} target={target}"] = kit.Arm(trial, {"strategy": strategy, "target": target})
    return out


EXPOSURE = ("mean_difficulty", "share_at_target", "logged_difficulty", "advances_val", "advances_stall",
            "clipped_here", "clipped_authors")


def measure(df, curves, ctx):
    """Per trial: both accuracies in percent, whether (and when) the level reached the target, its
    exposure (from the logged levels), how often each rule advanced the level, and clipping."""
    t = df.copy()
    for col, src in (("char_pct", "char_acc"), ("seq_pct", "seq_acc")):
        t[col] = 100 * pd.to_numeric(t[src], errors="coerce")
    step = pd.to_numeric(t["target_step"], errors="coerce")
    t["target_step"] = step
    t["reached_target"] = step.notna().astype(float)
    per = {}
    log, check = curves.get("log"), curves.get("check")
    for (arm, seed), g in (log.groupby(["arm", "seed"]) if log is not None else []):
        strategy, target = g["strategy"].iloc[0], int(g["target"].iloc[0])
        row = curriculum.exposure(strategy, target, g["level"])  # each logged level: the 10 updates up to it
        k = loss_scale(target)
        row.update(logged_difficulty=g["mean_difficulty"].mean(), clipped_here=(g["grad_norm"] > CLIP).mean(),
                   clipped_authors=(g["grad_norm"] > CLIP / k).mean())
        per[(arm, seed)] = row
    for (arm, seed), g in (check.groupby(["arm", "seed"]) if check is not None else []):
        adv = g["advanced"].astype(bool)
        val = g["val_acc"] > curriculum.THRESHOLD
        per.setdefault((arm, seed), {}).update(advances_val=float((adv & val).sum()),
                                               advances_stall=float((adv & ~val).sum()))
    for col in EXPOSURE:
        t[col] = [per.get((a, s), {}).get(col, np.nan) for a, s in zip(t["arm"], t["seed"])]
    return t


def verdict(t, ctx):
    targets = ", ".join(str(x) for x in ctx.setup["targets"])
    acc = dict(unit="pp", worst=0.0, fmt=".1f",
               note=f"Per seed the mean over target difficulties {targets}; a diverged trial counts as 0 % accuracy.")
    comb = {"strategy": "combined"}
    parts = []
    for n, other in enumerate(("baseline", "mix", "naive"), start=1):  # "better": superiority over each
        for letter, (metric, what) in zip("ab", METRICS.items()):
            parts.append(kit.difference(t, metric, comb, {"strategy": other}, above=0.0,
                                        part=f"({n}{letter}) combined vs {other}, {metric.split('_')[0]}",
                                        claim=f"combined's minus {other}'s {what} at the target > 0", **acc))
    return parts


def _paired(t, metric, a, b):
    """Per target: mean over seeds of a's minus b's value (a diverged trial at 0 %), Student t."""
    rows = []
    for target, g in t.groupby("target", sort=True):
        v = g[metric].where((g["status"] == "ok") & np.isfinite(g[metric].astype(float)), 0.0)
        pa = g.assign(_v=v)[g["strategy"] == a].set_index("seed")["_v"]
        pb = g.assign(_v=v)[g["strategy"] == b].set_index("seed")["_v"]
        d = (pa - pb).dropna()
        m, ci = stats.t_interval(d.to_numpy())
        rows.append({"target": target, "metric": METRICS[metric], f"{a} minus {b} (pp)": m,
                     "95% CI (t)": stats.interval_text(ci, "+.1f"), "seeds": len(d),
                     "found": ("below" if ci[1] < 0 else "above" if ci[0] > 0 else "not told apart")
                     if np.all(np.isfinite(ci)) else "too few seeds"})
    return rows


def tables(t, curves, ctx):
    order = {"strategy": ORDER}
    final = []
    for metric, what in METRICS.items():
        s = kit.summary(t, metric, ["target", "strategy"], name=f"{what}, %", fmt=".1f", order=order,
                        extra={"reached target level (fraction)": "reached_target",
                               "update the level reached the target (mean)": "target_step",
                               "ms / update": "time_per_step_ms"} if metric == "char_pct" else None)
        final.append(s)
    naive = pd.DataFrame([r for m in METRICS for r in _paired(t, m, "naive", "baseline")])
    return {"final per-character accuracy (teacher forcing) at the target, per target difficulty": final[0],
            "final whole-answer accuracy (greedy decoding) at the target, per target difficulty": final[1],
            "exposure: what each arm trained on (mean over seeds)": _exposure(t),
            "finding, not a verdict part: naive minus baseline": naive,
            "the paper's statements beside ours": _beside(t, ctx),
            "gradient clipping at our loss scale and at the authors' (mean over seeds)": _clipping(t)}


def _exposure(t):
    """Per (target, strategy), means over seeds: the training difficulty implied by the logged levels,
    the share of training examples at the target, and the level's moves by each rule."""
    cols = {"mean training difficulty (digits)": "mean_difficulty",
            "share of examples at the target": "share_at_target",
            "mean difficulty of the logged batches": "logged_difficulty",
            "reached target level (fraction)": "reached_target",
            "level rises by rule (a), validation > 0.95": "advances_val",
            "level rises by rule (b), training accuracy stalled": "advances_stall"}
    g = t.groupby(["target", "strategy"])
    out = pd.DataFrame({label: g[col].mean() for label, col in cols.items() if col in t}).reset_index()
    out.insert(2, "seeds", g["seed"].nunique().to_numpy())
    return kit.ordered(out, ["target", "strategy"], {"strategy": ORDER})


def _clipping(t):
    rows = []
    for (target, strategy), g in t.groupby(["target", "strategy"]):
        rows.append({"target": target, "strategy": strategy, "k (authors' loss / ours)": loss_scale(int(target)),
                     "updates clipped here (norm > 5)": g["clipped_here"].mean(),
                     "would be clipped at the authors' scale (norm > 5 / k)": g["clipped_authors"].mean()})
    return kit.ordered(pd.DataFrame(rows), ["target", "strategy"], {"strategy": ORDER})


def _beside(t, ctx):
    rows = []
    ok = t.assign(**{m: t[m].where(t["status"] == "ok", 0.0) for m in METRICS})
    means = ok.groupby(["target", "strategy"])[list(METRICS)].mean()
    best = [f"{METRICS[m].split(' (')[0]}, {tg} digits: {means.loc[tg][m].idxmax()}"
            for m in METRICS for tg in sorted(t["target"].unique())]
    rows.append({"statement": "combined is the best strategy", "paper": "in every configuration (program evaluation)",
                 "ours (highest mean accuracy)": "; ".join(best)})
    found = [f"{r['metric'].split(' (')[0]}, {r['target']} digits: {r['naive minus baseline (pp)']:+.1f} pp "
             f"{r['95% CI (t)']}" for m in METRICS for r in _paired(t, m, "naive", "baseline")]
    rows.append({"statement": "naive can be worse than baseline", "paper": "sometimes",
                 "ours (highest mean accuracy)": "naive minus baseline: " + "; ".join(found)})
    top = max(ctx.setup["targets"])
    comb = means.loc[top].loc["combined"] if top in means.index.get_level_values(0) else None
    ours = ("—" if comb is None else f"{top} digits: per-character {comb['char_pct']:.1f} %, "
            f"whole-answer {comb['seq_pct']:.1f} %")
    rows.append({"statement": "combined's accuracy on the hardest addition", "paper": "99 % on 9 digits",
                 "ours (highest mean accuracy)": ours})
    return pd.DataFrame(rows)


def figures(t, curves, ctx):
    targets = sorted(ctx.setup["targets"])
    ev = curves["eval"]
    ev = ev.assign(char_pct=100 * ev["test_char_acc"], seq_pct=100 * ev["test_seq_acc"])
    out = {}
    judged = verdict(t, ctx)
    for metric, what in METRICS.items():
        fig, axes = plots.figure(len(targets) + 1, width=5.0)
        for ax, target in zip(axes, targets):
            plots.curves(ax, ev[ev["target"] == target], "step", metric, "strategy", "update",
                         f"{what.split(' (')[0]} (%)", f"{target}-digit addition", hue_order=ORDER)
            ax.set_ylim(bottom=0)  # each target its own range: a hard target's few points stay visible
            if ax is not axes[0]:
                ax.get_legend().remove()  # the first panel's legend names the same arms
        short = metric.split("_")[0]
        mine = [p for p in judged if p.part.endswith(f", {short}")]
        plots.parts(axes[-1], mine, [p.part.split(" vs ")[1].split(",")[0] for p in mine],
                    "combined's minus the other arm's (pp)", f"The parts ({short}): combined vs each", fmt=".1f")
        plots.caption(fig, plots.BAND_LABEL + f"; {what} on the test set at the target difficulty "
                      f"({ctx.setup['n_test']} examples). Right: the parts, per seed the mean over targets of "
                      "combined's minus the other arm's final accuracy; above the dashed line (0) is the claimed side")
        out[f"{short}_accuracy_curves"] = fig

    log = curves["log"]
    log = log[log["strategy"].isin(CURRICULUM_ARMS)]
    fig, axes = plots.figure(len(targets), width=5.0)
    for ax, target in zip(axes, targets):
        plots.curves(ax, log[log["target"] == target], "step", "level", "strategy", "update",
                     "current difficulty (operand digits)", f"Curriculum level, target {target} digits",
                     hue_order=CURRICULUM_ARMS)
        ax.set_ylim(0.8, target + 0.2)
        ax.set_yticks(range(1, target + 1))
    plots.caption(fig, plots.BAND_LABEL + f"; checked every {ctx.setup['check_every']} updates, the level rises "
                  "when validation per-character accuracy at it is above 0.95 or training accuracy is below its value "
                  "five checks earlier; combined draws 1/5 of its examples uniformly from 1..target")
    out["curriculum_level"] = fig

    fig, axes = plots.figure(2 * len(targets), width=4.2)
    for i, (metric, what) in enumerate(METRICS.items()):
        for j, target in enumerate(targets):
            short = what.split(" (")[0]
            plots.points(axes[i * len(targets) + j], t[t["target"] == target], "strategy", metric, "",
                         f"final {short} (%)", f"{target} digits: {short.split(' ')[0]}", order=ORDER)
    plots.caption(fig, plots.POINTS_LABEL + "; at the target difficulty, after the last update; per-character: "
                  "teacher forcing; whole-answer: greedy decoding")
    out["final_accuracy"] = fig
    return out


if __name__ == "__main__":
    sys.exit(cli.main([sys.modules[__name__]]))
