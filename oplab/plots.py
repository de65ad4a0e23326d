"""Figure helpers shared by studies: seaborn on the Agg backend, labelled axes,
seed spread shown as bands (curves) or points (final metrics)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd

from oplab import stats

matplotlib.use("Agg")  # before pyplot is imported, on a figure's first use (as seaborn is, below)

BAND = ("pi", 100)  # band = min..max over seeds
BAND_LABEL = "line: mean over seeds; band: min-max over seeds"


def theme():
    """seaborn, imported and its theme set on first use (seaborn and the scipy it imports take about a
    second to import: a cached rerun that draws nothing never pays for it). The report calls it
    before a study draws its figures."""
    import seaborn

    if not getattr(theme, "done", False):
        seaborn.set_theme(style="whitegrid", context="notebook")
        theme.done = True
    return seaborn


def figure(ncols: int = 1, width: float = 5.5, height: float = 4.0):
    import matplotlib.pyplot as plt

    theme()
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def curves(ax, df: pd.DataFrame, x: str, y: str, hue: str, xlabel: str, ylabel: str,
           title: str = "", logy: bool = False, hue_order=None) -> None:
    """Mean curve per `hue` with a min-max band over seeds."""
    theme().lineplot(data=df, x=x, y=y, hue=hue, hue_order=hue_order, errorbar=BAND, ax=ax)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if ax.get_legend() is not None:
        ax.legend(title=None, fontsize="small")


POINTS_LABEL = "grey: one trial; red: mean with Student-t 95% CI"


def t_errorbar(values) -> tuple[float, float]:
    """Student-t 95% interval of the mean, for seaborn's `errorbar`."""
    _, ci = stats.t_interval(np.asarray(values, dtype=float))
    return ci


def points(ax, df: pd.DataFrame, x: str, y: str, xlabel: str, ylabel: str, title: str = "",
           order=None) -> None:
    """One point per trial, and the mean with a Student-t 95% CI (jitter seeded, so the same
    records give the same picture)."""
    state = np.random.get_state()
    np.random.seed(0)  # seaborn's strip jitter draws from numpy's global generator
    try:
        theme().stripplot(data=df, x=x, y=y, order=order, ax=ax, alpha=0.6, jitter=0.15, color="0.4")
    finally:
        np.random.set_state(state)
    theme().pointplot(data=df, x=x, y=y, order=order, ax=ax, errorbar=t_errorbar, linestyle="none",
                  color="C3", markers="D", capsize=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)


def caption(fig, text: str) -> None:
    fig.text(0.5, -0.02, text, ha="center", va="top", fontsize="small", color="0.3", wrap=True)
