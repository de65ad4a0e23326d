"""gradient_noise's verdict on synthetic records with known answers."""

import numpy as np
import pandas as pd
import pytest

from oplab import kit
from studies import gradient_noise as study
from tests.synthetic import words

PARTS = ["(a1) late, B = 8: noise dominates (SNR < 1)", "(a2) late, B = 128: signal dominates (SNR > 1)",
         "(a3) SNR at B = 8 falls, updates 50 to 150", "(b) examples to the target loss, GD / SGD"]
# per part, the planted per-seed value on the claimed side, the other side and the threshold (SNRs and ratios
# on the log scale: the parts use t on the logs)
YES = {"snr_small_late": 0.05, "snr_large_late": 5.0, "snr_small_change": 0.5}
NO = {"snr_small_late": 3.0, "snr_large_late": 0.3, "snr_small_change": 2.0}


def planted(effect: str):
    """yes: small-B SNR well below 1 late, large-B SNR well above, falling from early to late, GD needs 10x
    the examples; no: each on the other side, GD needs a fifth of SGD's examples; unclear: each at its
    threshold (1) with seeds alternating a factor 4 either side."""
    def values(f, seed, rng):
        gd = f["method"] == "GD"
        if effect == "unclear":
            vals = {k: 4.0 ** ((-1) ** seed) for k in YES}
            examples = 10_000.0 * 4.0 ** ((-1) ** seed) if gd else 10_000.0
        else:
            vals = {k: v * np.exp(rng.normal(0, 0.05)) for k, v in (YES if effect == "yes" else NO).items()}
            examples = (100_000.0 if effect == "yes" else 2_000.0) * (1 + rng.normal(0, 0.05)) if gd else 10_000.0
        nan = float("nan")
        return {**{k: v if gd else nan for k, v in vals.items()}, "examples_to_target": examples}

    return values


def test_a_failed_gd_trial_never_counts_for_the_snr_parts():
    """A GD trial that diverged (its SNRs NaN) puts its seed at the threshold: with most seeds failed, no
    SNR part is reproduced."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["method"] == "GD" and seed < 5:
            v = {**{k: float("nan") for k in YES}, "examples_to_target": v["examples_to_target"],
                 "status": "diverged"}
        return v

    got = words(study, values, seeds=range(8))
    for part in PARTS[:3]:
        assert got[part] != "reproduced", part


def _monitor(steps, signal, std8, std128):
    return pd.DataFrame({"arm": "GD lr=1", "seed": 0, "step": steps, "noise_population": 1000.0,
                         "noise_signal": signal, "snr@8": signal / std8**2, "snr@128": signal / std128**2})


def test_measure_reads_the_snr_at_the_stated_sizes_and_states():
    """measure() takes SNR_8 and SNR_128 at the late state and SNR_8 at the early one from the monitor
    curve, and their late / early ratio."""
    s = study.SETUP["quick"]
    steps = np.array([0, 50, 100, 150])
    signal = np.array([0.03, 0.8, 1.0, 1.2])
    mon = _monitor(steps, signal, std8=np.array([1.0, 2.0, 3.0, 4.0]), std128=np.array([0.2, 0.4, 0.6, 0.5]))
    ev = pd.DataFrame({"arm": "GD lr=1", "seed": 0, "step": [0, 4, 8], "train_loss_running": [np.nan, 2.0, 0.9],
                       "method": "GD"})
    df = pd.DataFrame([{"arm": "GD lr=1", "seed": 0, "status": "ok", "method": "GD", "lr": 1.0}])
    t = study.measure(df, {"eval": ev, "monitor": mon}, kit.Context("quick", (0,), setup=s))
    row = t.iloc[0]
    assert row["snr_small_late"] == pytest.approx(1.2 / 16)
    assert row["snr_large_late"] == pytest.approx(1.2 / 0.25)
    assert row["snr_small_early"] == pytest.approx(0.8 / 4)
    assert row["snr_small_change"] == pytest.approx((1.2 / 16) / (0.8 / 4))
    assert row["examples_to_target"] == 8 * 1000


@pytest.mark.parametrize("part,key", [(0, "snr_small_late"), (1, "snr_large_late"), (2, "snr_small_change")])
def test_each_snr_part_moves_alone(part, key):
    """Each SNR part reads its own value: flip one to the other side and only that part's word changes."""
    def values(f, seed, rng):
        v = planted("yes")(f, seed, rng)
        if f["method"] == "GD":
            v[key] = NO[key] * np.exp(rng.normal(0, 0.05))
        return v

    got = words(study, values, seeds=range(8))
    for i, p in enumerate(PARTS):
        assert got[p] == ("not reproduced" if i == part else "reproduced"), p
