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


def drawn_texts(fig) -> list:
    """The Text artists a draw of `fig` actually renders, in drawing order: visible, non-empty, at a finite
    position, with a drawn parent (a tick label only when its tick lies inside the view limits; nothing of
    an invisible legend or an axis turned off). Tick labels that matplotlib keeps but does not draw (ticks
    beyond the view, the unused ones of its pool) are left out, as are texts inside a hidden artist."""
    from matplotlib.text import Text

    drawn: dict[int, Text] = {}
    draw = Text.draw

    def spy(self, renderer):  # Text.draw returns early for what it does not render; record what passes
        if self.get_visible() and str(self.get_text()).strip():
            x, y = self.get_transform().transform(self.get_unitless_position())
            if np.isfinite(x) and np.isfinite(y):
                drawn.setdefault(id(self), self)
        return draw(self, renderer)

    Text.draw = spy  # only for this one draw; Annotation.draw calls Text.draw, so it is seen too
    try:
        fig.canvas.draw()
    finally:
        Text.draw = draw
    return list(drawn.values())


def layout_problems(fig, min_share: float = 0.15, legend_share: float = 0.02) -> list[str]:
    """What a reader would trip over in a drawn figure: two pieces of drawn text that overlap (tick labels,
    axis labels, titles, legend entries, captions; by more than `min_share` of the smaller one's area),
    and a legend that covers more than `legend_share` of an axes' drawn points (inside its view). Only what
    the figure renders counts (drawn_texts): tick labels outside the view limits are never drawn. Empty when
    clean."""
    texts = []
    shown = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    for t in shown:
        try:
            box = t.get_window_extent(renderer)
        except (RuntimeError, ValueError):
            continue
        if box.width > 0 and box.height > 0:
            texts.append((str(t.get_text()).strip(), box))
    problems = []
    for i, (ta, a) in enumerate(texts):
        for tb, b in texts[i + 1:]:
            w = min(a.x1, b.x1) - max(a.x0, b.x0)
            h = min(a.y1, b.y1) - max(a.y0, b.y0)
            if w > 0 and h > 0 and w * h > min_share * min(a.width * a.height, b.width * b.height):
                problems.append(f"text {ta[:30]!r} overlaps {tb[:30]!r}")
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None or not legend.get_visible() or not ax.get_visible():
            continue
        box = legend.get_window_extent(renderer)
        pts = [line.get_transform().transform(line.get_xydata()) for line in ax.get_lines()
               if line.get_visible() and len(line.get_xydata())]
        pts += [c.get_offset_transform().transform(c.get_offsets()) for c in ax.collections
                if c.get_visible() and len(c.get_offsets())]
        pts = [p for p in pts if p.ndim == 2 and p.shape[1] == 2]
        if not pts:
            continue
        xy = np.concatenate(pts)
        view = ax.bbox  # points drawn outside the axes' view are clipped: not data a legend can hide
        xy = xy[np.all(np.isfinite(xy), axis=1) & (xy[:, 0] >= view.x0) & (xy[:, 0] <= view.x1)
                & (xy[:, 1] >= view.y0) & (xy[:, 1] <= view.y1)]
        inside = (xy[:, 0] >= box.x0) & (xy[:, 0] <= box.x1) & (xy[:, 1] >= box.y0) & (xy[:, 1] <= box.y1)
        if len(xy) and inside.mean() > legend_share:
            problems.append(f"legend of {ax.get_title()[:40]!r} covers {inside.mean():.0%} of its points")
    return sorted(set(problems))
