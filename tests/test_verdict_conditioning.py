"""conditioning's verdict on synthetic records with known answers."""

import pytest

from studies import conditioning as study
from tests.synthetic import words

PARTS = ["(a) gradient norm grows", "(b) test error falls", "(c) g^T H g / g^T g rises",
         "(d) 1/2 form beats the notes' form at eps = lr = 0.1"]
YES = {"gn_slope": 0.1, "err_slope": -1.0, "curv_slope": 0.2, "relerr_gap_lr": 0.2}
NO = {"gn_slope": -0.1, "err_slope": 1.0, "curv_slope": -0.2, "relerr_gap_lr": -0.2}
UNCLEAR = {"gn_slope": 0.0, "err_slope": 0.0, "curv_slope": 0.0, "relerr_gap_lr": 0.0}
SPREAD = {"gn_slope": 0.3, "err_slope": 3.0, "curv_slope": 0.5, "relerr_gap_lr": 0.5}


def planted(effect: str):
    base = {"yes": YES, "no": NO, "unclear": UNCLEAR}[effect]

    def values(f, seed, rng):
        if effect == "unclear":
            return {k: v + SPREAD[k] * (-1) ** seed for k, v in base.items()}
        return {k: v + rng.normal(0, abs(v) * 0.01) for k, v in base.items()}

    return values


def test_a_diverged_trial_counts_against_the_claim():
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if seed < 4:
            v.update(status="diverged")
        return v

    got = words(study, values, seeds=range(6))
    # the worst value seen in each part stands in: still on the claimed side here, so the words hold,
    # but no seed is dropped
    assert set(got) == set(PARTS)


def test_slopes_are_fitted_over_the_window():
    """measure() fits the gradient-norm and error slopes on synthetic curves with known trends."""
    import numpy as np
    import pandas as pd

    from oplab import kit

    s = study.SETUP["quick"]
    steps = np.arange(10, s["steps"] + 1, 10)
    log = pd.DataFrame({"arm": "SGD", "seed": 0, "step": steps, "grad_norm": np.exp(0.002 * steps)})
    ev_steps = np.arange(0, s["steps"] + 1, 50)
    ev = pd.DataFrame({"arm": "SGD", "seed": 0, "step": ev_steps, "test_acc": 0.5 + 0.0001 * ev_steps})
    df = pd.DataFrame([{"arm": "SGD", "seed": 0, "status": "ok", "method": "SGD"}])
    t = study.measure(df, {"log": log, "eval": ev}, kit.Context("quick", (0,), setup=s))
    assert t["gn_slope"].iloc[0] == pytest.approx(0.2)
    assert t["err_slope"].iloc[0] == pytest.approx(-1.0)


def _monitor(steps, gtg, gthg):
    import pandas as pd

    return pd.DataFrame({"arm": "SGD", "seed": 0, "step": steps, "taylor_gTg": gtg, "taylor_gTHg": gthg})


@pytest.mark.parametrize("rate", [0.003, -0.002])
def test_curvature_slope_is_the_log_ratio_trend_over_the_window(rate):
    """curv_slope is the OLS slope of log(g^T H g / g^T g) per 100 updates over the monitored states
    from the window's start: a ratio growing (or shrinking) like exp(rate * step) gives 100 * rate,
    whatever g^T g does, and the states before the window do not count."""
    import numpy as np
    import pandas as pd

    from oplab import kit

    s = study.SETUP["quick"]
    steps = np.arange(0, s["steps"] + 1, s["monitor_every"])
    gtg = 0.1 * np.exp(0.004 * steps)
    ratio = np.exp(rate * steps)
    ratio[steps < s["window"]] = 50.0  # an init transient the window leaves out
    log = pd.DataFrame({"arm": "SGD", "seed": 0, "step": steps, "grad_norm": 1.0})
    ev = pd.DataFrame({"arm": "SGD", "seed": 0, "step": steps, "test_acc": 0.5})
    df = pd.DataFrame([{"arm": "SGD", "seed": 0, "status": "ok", "method": "SGD"}])
    t = study.measure(df, {"log": log, "eval": ev, "monitor": _monitor(steps, gtg, gtg * ratio)},
                      kit.Context("quick", (0,), setup=s))
    assert t["curv_slope"].iloc[0] == pytest.approx(100 * rate)


def test_curvature_slope_skips_states_without_a_log_and_fails_with_fewer_than_two():
    import numpy as np

    s = study.SETUP["quick"]
    steps = np.arange(0, s["steps"] + 1, s["monitor_every"])
    gtg = np.ones(len(steps))
    curv = study.curvature_long({"monitor": _monitor(steps, gtg, np.where(steps == 300, -1.0, np.exp(steps / 100)))})
    assert curv["ratio"].isna().sum() == 1
    import pandas as pd

    from oplab import kit

    df = pd.DataFrame([{"arm": "SGD", "seed": 0, "status": "ok", "method": "SGD"}])
    ctx = kit.Context("quick", (0,), setup=s)
    ev = pd.DataFrame({"arm": "SGD", "seed": 0, "step": steps, "test_acc": 0.5})
    log = pd.DataFrame({"arm": "SGD", "seed": 0, "step": steps, "grad_norm": 1.0})
    t = study.measure(df, {"log": log, "eval": ev, "monitor": _monitor(steps, gtg, np.exp(steps / 100))}, ctx)
    assert t["curv_slope"].iloc[0] == pytest.approx(1.0)
    lone = np.where(steps == s["steps"], 2.0, -1.0)  # one state with a log: no slope, a failed trial
    t = study.measure(df, {"log": log, "eval": ev, "monitor": _monitor(steps, gtg, lone)}, ctx)
    assert np.isnan(t["curv_slope"].iloc[0])


def test_trend_table_has_one_row_a_quantity_and_plain_cells():
    """The trend table is long (a row per slope): every cell a number or a string, never a pandas
    Series printed into Markdown."""
    import numpy as np
    import pandas as pd

    from tests.synthetic import context, table

    t = table(study, planted("yes"), seeds=range(6))
    got = study.tables(t, {"log": pd.DataFrame(), "eval": pd.DataFrame()}, context(study, range(6)))
    trend = got["trends over the window (per seed, then mean)"]
    assert len(trend) == 3 and trend.columns.is_unique
    assert all(isinstance(v, (str, int, float, np.integer, np.floating)) for v in trend.to_numpy().ravel())
    assert "Name:" not in trend.to_markdown()
