"""local_minima_spread: mnist5k's `side` option (oplab.data.downsample) against an independent
computation; the blocks' standard deviations and slopes against a direct computation; the verdict on
raw planted losses (a constant spread never reads "reproduced"; a failed trial counts its block at
the threshold); and the t interval's false-positive rate over blocks, by simulation, when the spread
does not change with width."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from oplab import kit, stats
from oplab.data import downsample
from studies import local_minima_spread as study

WIDTHS = study.SETUP["quick"]["widths"]


def test_downsample_averages_the_adaptive_pooling_bins():
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    got = downsample(x, 10).numpy()
    a = x.numpy()
    want = np.empty((3, 1, 10, 10))
    for i in range(10):
        r0, r1 = math.floor(i * 28 / 10), math.ceil((i + 1) * 28 / 10)
        for j in range(10):
            c0, c1 = math.floor(j * 28 / 10), math.ceil((j + 1) * 28 / 10)
            want[:, :, i, j] = a[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(downsample(x, 14).numpy(), a.reshape(3, 1, 14, 2, 14, 2).mean(axis=(3, 5)), atol=1e-6)
    assert downsample(x, 0) is x
    with pytest.raises(ValueError, match="side"):
        downsample(x, 29)


def _frame(losses: np.ndarray, status: np.ndarray | None = None) -> pd.DataFrame:
    """A per-trial frame from losses[seed, width] (the same values for the test and training loss)."""
    rows = []
    for s in range(losses.shape[0]):
        for j, w in enumerate(WIDTHS):
            rows.append({"arm": f"width={w}", "seed": s, "width": w, "lr": 0.2,
                         "status": "ok" if status is None else status[s, j],
                         "test_loss": losses[s, j], "train_loss_full": losses[s, j]})
    return pd.DataFrame(rows)


def _ctx(n):
    return kit.Context("quick", tuple(range(n)), "verdict", study.SETUP["quick"])


def test_block_sds_and_slopes_match_a_direct_computation():
    rng = np.random.default_rng(1)
    x = 0.3 + rng.normal(0, 0.05, (8, len(WIDTHS)))
    b = study.block_slopes(_frame(x), 4).set_index("seed")
    assert list(b.index) == [0, 4] and list(b["seeds"]) == [4, 4]
    for first in (0, 4):
        sd = x[first:first + 4].std(axis=0, ddof=1)
        np.testing.assert_allclose([b.loc[first, f"sd_test@{w}"] for w in WIDTHS], sd, rtol=1e-10)
        np.testing.assert_allclose(b.loc[first, "k_test"], np.polyfit(np.log(WIDTHS), np.log(sd), 1)[0], rtol=1e-9)
    assert study.block_of(103, 4) == 100 and study.block_of(7, 4) == 4


def _parts(x, status=None):
    t = study.measure(_frame(x, status), {}, _ctx(x.shape[0]))
    return {p.part[:3]: p for p in study.verdict(t, _ctx(x.shape[0]))}


def test_a_falling_spread_is_reproduced_and_a_rising_one_is_not():
    """(A constant spread: its rate of false "reproduced" is the simulation test's below.)"""
    rng = np.random.default_rng(2)
    w = np.asarray(WIDTHS, dtype=float)
    falling = 0.3 + 0.2 * (w / 4) ** -1.0 * rng.normal(size=(40, len(w)))
    assert {p.word for p in _parts(falling).values()} == {"reproduced"}
    rising = 0.3 + 0.01 * (w / 4) ** 1.0 * rng.normal(size=(40, len(w)))
    assert {p.word for p in _parts(rising).values()} == {"not reproduced"}


def test_a_block_with_a_failed_trial_counts_at_the_threshold():
    rng = np.random.default_rng(3)
    w = np.asarray(WIDTHS, dtype=float)
    x = 0.3 + 0.2 * (w / 4) ** -1.0 * rng.normal(size=(24, len(w)))
    status = np.full(x.shape, "ok", dtype=object)
    status[5, 2], x[5, 2] = "diverged", np.nan
    p = _parts(x, status)["(a)"]
    assert p.n == 6 and p.details["per_seed"][4] == 0.0 and p.details["failed"] == 1
    assert all(v < 0 for s, v in p.details["per_seed"].items() if s != 4)


@pytest.mark.parametrize("shape", ["normal", "two minima"])
def test_the_block_interval_keeps_its_level_when_the_spread_is_constant(shape):
    """With a spread that does not change with width, the upper 97.5% bound of the mean block slope lies
    below 0 (a false "reproduced") in about 2.5% of runs: checked with 5 blocks of 4 seeds (one half at
    quick) over 400 simulated studies, for normal losses and for a good and a bad minimum (the bad one
    reached by a quarter of the seeds at every width); 0.06 allows for the simulation's own error. The
    rejected design, a deviation from the other seeds' mean per seed, gave 0.25 on the two minima."""
    rng = np.random.default_rng(4 if shape == "normal" else 5)
    n, reps, false = 20, 400, 0
    for _ in range(reps):
        if shape == "normal":
            x = 0.3 + 0.05 * rng.normal(size=(n, len(WIDTHS)))
        else:
            x = 0.3 + 0.5 * (rng.random((n, len(WIDTHS))) < 0.25) + 0.02 * rng.normal(size=(n, len(WIDTHS)))
        k = study.block_slopes(_frame(x), 4)["k_test"].to_numpy()
        k = k[np.isfinite(k)]
        _, (lo, hi) = stats.t_interval(k)
        false += hi < 0
    assert false / reps <= 0.06, false / reps
