"""second_order_batch's verdict on synthetic records with known answers, and its measure on planted
monitor curves (the step's error falling like the gradient's must not read reproduced)."""

import numpy as np
import pandas as pd
import pytest

from oplab import kit
from oplab.secondorder import DAMPINGS, grad_key, step_key
from studies import second_order_batch as study
from tests.synthetic import words

PARTS = ["(a1) step's / gradient's relative error > 1 at each B", "(a2) step's error falls with B more slowly",
         "(b) HF starts to beat SGD above SGD's best batch"]
YES = {"ratio_min": 3.0, "slope_gap": 0.3, "cross_gap": 2.0}
NO = {"ratio_min": 0.3, "slope_gap": -0.3, "cross_gap": -2.0}
RACE = study.SETUP["long"]["race"]  # the race tests: four batch sizes


def planted(effect: str):
    """yes: the step's error 3x the gradient's at every B and falling 0.3 slower in log-log, HF's crossing batch
    4x SGD's best; no: a third of it, falling 0.3 faster, the crossing a quarter of SGD's best; unclear: each at
    its threshold (ratio 1, gaps 0) with seeds alternating either side. (b)'s value sits on each seed's HF trial
    at the largest batch, as the measure puts it."""
    def values(f, seed, rng):
        seed_row = f["method"] == "HF" and f["batch_size"] == max(study.SETUP["quick"]["race"]["sizes"])
        if effect == "unclear":
            v = {"ratio_min": 3.0 ** ((-1) ** seed), "slope_gap": 0.3 * (-1) ** seed, "cross_gap": 2.0 * (-1) ** seed}
        else:
            base = YES if effect == "yes" else NO
            v = {"ratio_min": base["ratio_min"] * np.exp(rng.normal(0, 0.05)),
                 "slope_gap": base["slope_gap"] + rng.normal(0, 0.02),
                 "cross_gap": base["cross_gap"] + rng.normal(0, 0.3)}
        gd = f["method"] == "GD"
        return {"ratio_min": v["ratio_min"] if gd else np.nan, "slope_gap": v["slope_gap"] if gd else np.nan,
                "cross_gap": v["cross_gap"] if seed_row else np.nan}

    return values


def _monitor(step_err, grad_err, sizes=(8, 32, 128), states=(0, 100, 200), seed=0):
    """A monitor curve whose errors at B are grad_err(B) and step_err(B) at every state and damping."""
    rows = []
    for s in states:
        row = {"arm": "GD", "seed": seed, "step": s}
        for b in sizes:
            row[grad_key(b)] = grad_err(b)
            for c in DAMPINGS:
                row[step_key(b, c)] = step_err(b)
        rows.append(row)
    return pd.DataFrame(rows)


def _measure(mon, seeds=(0,)):
    s = study.SETUP["quick"]
    df = pd.DataFrame([{"arm": "GD", "seed": sd, "status": "ok", "method": "GD", "batch_size": s["n"], "lr": s["lr"]}
                       for sd in seeds])
    return study.measure(df, {"monitor": mon}, kit.Context("quick", tuple(seeds), setup=s))


def test_measure_reads_ratio_and_slopes_from_the_curves():
    """Errors planted as power laws: the ratio's minimum over B and the slopes come out as planted."""
    row = _measure(_monitor(step_err=lambda b: 5.0 * b**-0.2, grad_err=lambda b: 4.0 * b**-0.5)).iloc[0]
    assert row["slope_step"] == pytest.approx(-0.2)
    assert row["slope_grad"] == pytest.approx(-0.5)
    assert row["slope_gap"] == pytest.approx(0.3)
    assert row["ratio_min"] == pytest.approx(5.0 / 4.0 * 8**0.3)  # smallest at the smallest B


def test_a_step_whose_error_falls_like_the_gradients_is_not_reproduced():
    """Measured from planted curves: the step's error a fixed multiple (1 or less) of the gradient's at every
    B, falling at the same rate, gives neither part as reproduced, over seeds with noise."""
    rng = np.random.default_rng(0)
    mons = []
    for seed in range(8):
        k, e = np.exp(rng.normal(0, 0.1)), rng.normal(0, 0.02)
        mons.append(_monitor(step_err=lambda b, k=k, e=e: k * 3.0 * b ** (-0.5 + e),
                             grad_err=lambda b: 3.0 * b**-0.5, seed=seed))
    t = _measure(pd.concat(mons, ignore_index=True), seeds=range(8))
    ctx = kit.Context("quick", tuple(range(8)), setup=study.SETUP["quick"])
    got = {p.part: p.shown for p in study.verdict(t, ctx)}
    assert all(w != "reproduced" for w in got.values()), got


def test_the_init_state_is_not_judged():
    """A state at update 0 with a huge ratio does not move (a1): only the states after it count."""
    base = _monitor(step_err=lambda b: 0.5 * b**-0.5, grad_err=lambda b: b**-0.5)
    init = base["step"] == 0
    for b in (8, 32, 128):
        for c in DAMPINGS:
            base.loc[init, step_key(b, c)] = 100.0
    row = _measure(base).iloc[0]
    assert row["ratio_min"] == pytest.approx(0.5)
    assert row["ratio_init_min"] > 10


def test_a_diverged_trial_never_counts_for_the_claim():
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if seed < 5:
            v = {"ratio_min": float("nan"), "slope_gap": float("nan"), "cross_gap": float("nan"), "status": "diverged"}
        return v

    got = words(study, values, seeds=range(8))
    assert all(w != "reproduced" for w in got.values()), got


# --- part (b): the race, measured from planted loss curves


def _race_records(examples: dict[tuple[str, int], float | None], seeds=(0,), status="ok"):
    """Per seed, one trial per (method, B) whose running training loss is 2.3 until `examples[(method, B)]`
    examples, then 0.1 (None: it never falls); evaluations every window, as the arms make them."""
    rows, evals = [], []
    steps_total = RACE["examples"]
    for sd in seeds:
        for (m, b), hit in examples.items():
            arm = f"{m} B={b}"
            rows.append({"arm": arm, "seed": sd, "status": status, "method": m, "batch_size": b, "lr": 1.0})
            for step in range(0, steps_total // b + 1, RACE["window"] // b):
                ex = step * b
                loss = 0.1 if hit is not None and ex >= hit else 2.3
                evals.append({"arm": arm, "seed": sd, "method": m, "batch_size": b, "step": step,
                              "train_loss_running": loss if step else None})
    return pd.DataFrame(rows), {"eval": pd.DataFrame(evals)}


def _race(examples, seeds=(0,)):
    df, curves = _race_records(examples, seeds)
    ctx = kit.Context("long", tuple(seeds), setup=study.SETUP["long"])
    return study._measure_race(df.copy(), curves, ctx), ctx


def _plan(sgd, hf):
    sizes = RACE["sizes"]
    assert len(sgd) == len(hf) == len(sizes)
    return {**{("SGD", b): v for b, v in zip(sizes, sgd)}, **{("HF", b): v for b, v in zip(sizes, hf)}}


def test_race_measure_reads_best_batches_and_the_crossing():
    """SGD best at the smallest batch; HF behind it there and ahead from the second batch on: the crossing is
    the second batch, the gap log2(second / smallest); a trial that never reaches counts as the budget plus a
    window."""
    w, sizes = RACE["window"], RACE["sizes"]
    t, _ = _race(_plan(sgd=[2 * w, 4 * w, 8 * w, 8 * w], hf=[4 * w, 2 * w, 3 * w, 3 * w]))
    row = t[(t["method"] == "HF") & (t["batch_size"] == sizes[-1])].iloc[0]
    assert row["best_SGD"] == sizes[0] and row["best_HF"] == sizes[1] and row["cross"] == sizes[1]
    assert row["cross_gap"] == pytest.approx(np.log2(sizes[1] / sizes[0]))
    assert t["cross_gap"].notna().sum() == 1  # one value a seed, on its HF trial at the largest batch
    t, _ = _race(_plan(sgd=[2 * w, None, None, None], hf=[4 * w, None, 3 * w, 3 * w]))
    never = t[(t["method"] == "SGD") & (t["batch_size"] == sizes[1])].iloc[0]
    assert not never["reached"] and never["examples_to_target"] == RACE["examples"] + w
    # HF ahead at the two largest (SGD never there) but both miss the second: the crossing is the third
    assert t["cross"].dropna().iloc[0] == sizes[2]


def test_hf_that_never_beats_sgd_at_the_largest_batch_gives_no_value():
    """HF level with SGD everywhere (the same curves), or ahead only at small batches: no crossing, a NaN that
    the part counts at its threshold, never on the passing side."""
    w = RACE["window"]
    for sgd, hf in (([2 * w, 3 * w, 4 * w, 5 * w], [2 * w, 3 * w, 4 * w, 5 * w]),
                    ([4 * w, 3 * w, 2 * w, 2 * w], [2 * w, 2 * w, 3 * w, 3 * w])):
        t, ctx = _race(_plan(sgd, hf), seeds=range(6))
        assert t["cross_gap"].isna().all()
        part = study.verdict(t.assign(ratio_min=np.nan, slope_gap=np.nan), ctx)[2]
        assert part.word != "reproduced" and part.details["failed"] == 6


def test_race_with_hf_ahead_only_at_large_batches_reads_reproduced_and_the_mirror_not():
    """Planted curves, 6 seeds: HF ahead from the second batch on while SGD is best at the smallest gives (b)
    reproduced; HF ahead at every batch while SGD is best at the largest gives not reproduced."""
    w = RACE["window"]
    t, ctx = _race(_plan(sgd=[2 * w, 4 * w, 8 * w, 8 * w], hf=[4 * w, 2 * w, 3 * w, 3 * w]), seeds=range(6))
    assert study.verdict(t, ctx)[2].word == "reproduced"
    t, ctx = _race(_plan(sgd=[8 * w, 6 * w, 4 * w, 3 * w], hf=[2 * w, 2 * w, 2 * w, 2 * w]), seeds=range(6))
    assert study.verdict(t, ctx)[2].word == "not reproduced"


def test_first_below_interpolates_within_the_window_of_the_crossing():
    curve = pd.DataFrame({"examples": [256, 512, 768], "train_loss_running": [2.2, 2.0, 1.6]})
    assert study.first_below(curve, 1.9) == pytest.approx(512 + 256 * 0.25)
    assert study.first_below(curve, 2.5) == 256  # already below at the first window
    assert np.isnan(study.first_below(curve, 1.0))
