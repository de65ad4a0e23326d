"""fitnets' Net2Net marks, on hand-made curves: the grown net's updates count from its teacher's,
a mark is the baseline's best accuracy, and a grown net that never reaches it counts as never."""

import numpy as np
import pandas as pd

from oplab import kit, schema
from studies import fitnets as study

S = study.SETUP["quick"]
T, N, E = S["steps"], S["more_steps"], S["eval_every"]
NEVER = T + N + E


def frame(rows: list[dict]) -> pd.DataFrame:
    """The rows as report.frame gives them: every declared final metric a column (NaN where unmeasured)."""
    return pd.DataFrame([{**dict.fromkeys(schema.FINAL, float("nan")), **r} for r in rows])


def _rows(seed, curves):
    """One seed's trials (net, method, steps) and their eval curves {arm: [(step, test_acc), ...]}."""
    arms = {"teacher": ("teacher", "teacher", T), "on": ("teacher", study.ON, T + N),
            "wr": ("wider", "random", T + N), "wn": ("wider", "net2net", N),
            "dr": ("deeper", "random", T + N), "dn": ("deeper", "net2net", N)}
    rows, evs = [], []
    for arm, (net, method, steps) in arms.items():
        c = curves[arm]
        rows.append({"arm": arm, "seed": seed, "net": net, "method": method, "status": "ok", "steps": steps,
                     "test_acc": c[-1][1], "test_err": 1 - c[-1][1], "test_loss": 0.1, "key": f"{arm}{seed}",
                     "extra": {}})
        evs += [{"arm": arm, "seed": seed, "step": s, "test_acc": a} for s, a in c]
    return rows, evs


def _curve(start, accs):
    return [(start + i * E, a) for i, a in enumerate(accs)]


def test_marks_count_the_teachers_updates_and_never():
    c = {"teacher": _curve(0, [0.1, 0.90, 0.95]),
         "on": _curve(0, [0.1, 0.90, 0.95, 0.96, 0.955]),  # best 0.96 at update 3E
         "wr": _curve(0, [0.1, 0.93, 0.97, 0.965]),  # best 0.97 at 2E
         "wn": _curve(0, [0.95, 0.96, 0.98]),  # reaches 0.96 at T + E, 0.97 at T + 2E
         "dr": _curve(0, [0.1, 0.99]),  # best 0.99, never reached by the grown deeper net
         "dn": _curve(0, [0.95, 0.95])}
    rows, evs = _rows(0, c)
    ctx = kit.Context("quick", (0,), "verdict", S)
    t = study.measure(frame(rows), {"eval": pd.DataFrame(evs)}, ctx).set_index("arm")
    assert t.loc["wn", "total_updates"] == T + N and t.loc["wr", "total_updates"] == T + N
    assert t.loc["wr", "updates_to_random_best"] == 2 * E
    assert t.loc["wn", "updates_to_random_best"] == T + 2 * E
    assert t.loc["wn", "updates_to_trained_on_best"] == T + E
    assert t.loc["on", "updates_to_trained_on_best"] == 3 * E
    assert t.loc["dn", "updates_to_random_best"] == NEVER
    assert t.loc["dn", "updates_to_trained_on_best"] == NEVER
    assert not t.loc["wn", "starts_at_random_best"] and not t.loc["wn", "starts_at_trained_on_best"]
    assert np.isnan(t.loc["teacher", "updates_to_random_best"]) and np.isnan(t.loc["wr", "updates_to_trained_on_best"])


def test_a_grown_net_that_only_keeps_its_teachers_accuracy_fails_its_parts():
    """The grown nets stay at the teacher's accuracy, which every baseline passes: every Net2Net part
    reads not reproduced, computed from the curves (not planted update counts)."""
    rows, evs = [], []
    rng = np.random.default_rng(0)
    for seed in range(6):
        base = 0.94 + 0.005 * rng.random()
        c = {"teacher": _curve(0, [0.1, base]), "on": _curve(0, [0.1, base, base + 0.01]),
             "wr": _curve(0, [0.1, base + 0.01]), "wn": _curve(0, [base] * 6),
             "dr": _curve(0, [0.1, 0.5, base + 0.012]), "dn": _curve(0, [base] * 6)}
        r, e = _rows(seed, c)
        rows += r
        evs += e
    ctx = kit.Context("quick", tuple(range(6)), "verdict", S)
    t = study.measure(frame(rows), {"eval": pd.DataFrame(evs)}, ctx)
    parts = {p.part: p.word for p in study.verdict(t, ctx) if "Net2Net" in p.part}
    assert len(parts) == 4 and set(parts.values()) == {"not reproduced"}, parts
