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
    # constrained layout: each panel's labels, tick labels and outside legend get room, never the next panel's
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False, layout="constrained")
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


WORD_COLORS = {"reproduced": "#1b7837", "not reproduced": "#b2182b", "inconclusive": "#878787"}


def _get(part, name: str):
    return part[name] if isinstance(part, dict) else getattr(part, name)


def judged(ax, part, x=None, span=None, label: str | None = None, threshold_label: str | None = None,
           fmt: str = ".3g", seeds: bool = False, threshold: bool = True, local: bool = False) -> None:
    """A verdict part on the axes of its own quantity: its threshold (a dashed line; an equivalence band
    shaded) and its pooled effect with the 95% interval, coloured by its word: a point with error bars
    at `x`, or a line across the x-range `span` with the interval shaded (a mean over that window).
    `part` is a stats.Verdict or its dict; the legend entries say what each mark is (`label`: what the
    effect is, before its numbers and word). With `seeds`, the part's per-seed values (its details'
    "per_seed") are drawn as grey points beside the interval; with `threshold=False` the threshold is left to
    another part's marks (parts that share it); with `local`, it is drawn only around `x` (parts with
    different thresholds side by side)."""
    test = _get(part, "test") or {}
    effect, (lo, hi), word = float(_get(part, "effect")), (float(c) for c in _get(part, "ci")), _get(part, "word")
    name, unit = _get(part, "part"), _get(part, "unit")
    color = WORD_COLORS.get(word, "0.3")
    near = (x - 0.45, x + 0.45) if local and x is not None else None
    tag = name[:name.index(")") + 1] if name.startswith("(") and ")" in name else name  # "(5a)" of "(5a) ..."
    if not threshold:
        pass
    elif test.get("within") is not None:
        a, b = test["within"]
        band = threshold_label or f"band {a:.3g} to {b:.3g} {unit}" + (f", {label or tag}" if near else "")
        if near:
            ax.fill_between(near, [a, a], [b, b], color="0.88", zorder=0, label=band)
        else:
            ax.axhspan(a, b, color="0.88", zorder=0, label=band)
    else:
        value = test.get("above") if test.get("side") == "above" else test.get("below")
        if value is not None:
            line = threshold_label or f"threshold {value:.3g} {unit}" + (f", {label or tag}" if near else "")
            if near:
                ax.hlines(value, *near, color="0.2", ls="--", lw=1, label=line)
            else:
                ax.axhline(value, color="0.2", ls="--", lw=1, label=line)
    text = f"{label or name}: {effect:{fmt}} [{lo:{fmt}}, {hi:{fmt}}] {unit}, {word}"
    if span is not None:
        ax.plot(list(span), [effect, effect], color=color, lw=2.5, label=text)
        ax.fill_between(list(span), [lo, lo], [hi, hi], color=color, alpha=0.2, lw=0)
    else:
        ax.errorbar([x], [effect], yerr=[[effect - lo], [hi - effect]], fmt="D", color=color, capsize=4,
                    ms=6, label=text)
    per_seed = list(((_get(part, "details") or {}).get("per_seed") or {}).values()) if seeds else []
    if per_seed:
        where = x if span is None else (span[0] + span[1]) / 2
        offsets = np.random.default_rng(0).uniform(-0.12, 0.12, len(per_seed))  # seeded jitter: the same picture
        seen = any(line.get_label() == "one seed" for line in ax.get_lines())  # one legend entry an axes
        ax.plot(where + 0.3 + offsets, per_seed, "o", color="0.4", alpha=0.6, ms=4,
                label=None if seen else "one seed")


def parts(ax, judged_parts: list, names: list[str], ylabel: str, title: str, logy: bool = False,
          fmt: str = ".3g", legend: str = "right") -> None:
    """Several parts that share a unit side by side on one axes (judged(), one x a part, named by a short
    one-line tick label in `names` that also names it in the legend, each with its seeds): a threshold
    they share drawn once across the axes, else each part's around its own x; the legend to the right of
    the axes, or (`legend="below"`, for a narrow panel beside others) below its tick labels (then the axes
    has no x label)."""
    shared = all(_get(p, "test") == _get(judged_parts[0], "test") for p in judged_parts)
    for i, (part, name) in enumerate(zip(judged_parts, names)):
        judged(ax, part, x=i, label=name, seeds=True, threshold=i == 0 or not shared, local=not shared, fmt=fmt)
    if logy:
        from matplotlib.ticker import FormatStrFormatter

        ax.set_yscale("log")
        for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):  # 0.5, not 5 x 10^-1
            axis(FormatStrFormatter("%g"))
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.5, len(names) - 0.2)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend == "below":
        ax.legend(fontsize="x-small", loc="upper center", bbox_to_anchor=(0.5, -0.12), frameon=False)
    else:
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)


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
    axis labels, titles, legend entries, captions; by more than `min_share` of the smaller one's area), text
    drawn over another panel's plotting area (by more than `min_share` of the text), a legend drawn over text
    not its own, and a legend that covers more than `legend_share` of an axes' drawn points (inside its view). Only what
    the figure renders counts (drawn_texts): tick labels outside the view limits are never drawn. Empty when
    clean."""
    from matplotlib.text import Text

    texts = []
    shown = drawn_texts(fig)
    renderer = fig.canvas.get_renderer()
    for t in shown:
        try:
            box = t.get_window_extent(renderer)
        except (RuntimeError, ValueError):
            continue
        if box.width > 0 and box.height > 0:
            texts.append((str(t.get_text()).strip(), box, id(t)))

    def overlap(a, b) -> bool:
        w = min(a.x1, b.x1) - max(a.x0, b.x0)
        h = min(a.y1, b.y1) - max(a.y0, b.y0)
        return w > 0 and h > 0 and w * h > min_share * min(a.width * a.height, b.width * b.height)

    problems = []
    for i, (ta, a, _) in enumerate(texts):
        for tb, b, _ in texts[i + 1:]:
            if overlap(a, b):
                problems.append(f"text {ta[:30]!r} overlaps {tb[:30]!r}")
    # text drawn over another panel's plotting area (a y label or tick labels running into the panel beside)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
    for t in shown:
        box = next((b for _, b, key in texts if key == id(t)), None)
        if box is None:
            continue
        for ax in panels:
            if t.axes is ax:  # its own panel's text (a title, an annotation, a legend entry)
                continue
            area = ax.patch.get_window_extent(renderer)
            w = min(box.x1, area.x1) - max(box.x0, area.x0)
            h = min(box.y1, area.y1) - max(box.y0, area.y0)
            if w > 1 and h > 1 and w * h > min_share * box.width * box.height:
                problems.append(f"text {str(t.get_text()).strip()[:30]!r} lies over the panel {ax.get_title()[:40]!r}")
    # a legend's box drawn over text that is not its own (a tick label, an axis label, another panel's title)
    legends = [lg for lg in [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_visible())]
               if lg is not None and lg.get_visible()]
    for lg in legends:
        own = {id(t) for t in lg.findobj(lambda a: isinstance(a, Text))}
        box = lg.get_window_extent(renderer)
        for tt, b, key in texts:
            if key not in own and overlap(box, b):
                problems.append(f"legend of {_owner(lg)!r} covers text {tt[:30]!r}")
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


def _owner(legend) -> str:
    """The title of the axes a legend belongs to (a figure legend: the figure's suptitle or 'figure')."""
    parent = legend.axes if legend.axes is not None else None
    if parent is not None:
        return parent.get_title()[:40]
    sup = getattr(legend.figure, "_suptitle", None)
    return sup.get_text()[:40] if sup is not None else "figure"
