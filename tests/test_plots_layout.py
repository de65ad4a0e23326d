"""plots.layout_problems finds what a reader trips over: overlapping text and a legend over the data;
a clean figure has none."""

import numpy as np

from oplab import plots


def test_a_clean_figure_has_no_problems():
    fig, (ax,) = plots.figure(1)
    x = np.linspace(0, 1, 50)
    ax.plot(x, x, label="rising")
    ax.plot(x, 1 - x, label="falling")
    ax.set_xlabel("update")
    ax.set_ylabel("loss (nats)")
    ax.set_title("Clean")
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5))
    assert plots.layout_problems(fig) == []


def test_overlapping_labels_are_found():
    fig, (a, b) = plots.figure(2, width=2.0)
    for ax in (a, b):
        ax.plot([0, 1], [0, 1])
        ax.set_ylabel("a long label that runs into the next panel's tick labels and title " * 2)
        ax.set_title("a very long title that runs across the neighbouring panel's title " * 2)
    assert any("overlaps" in p for p in plots.layout_problems(fig))


def test_a_legend_over_the_data_is_found():
    fig, (ax,) = plots.figure(1)
    x = np.linspace(0, 1, 400)
    for k in range(4):
        ax.plot(x, np.full_like(x, 0.9 + 0.02 * k), label=f"series {k}")
    ax.legend(loc="upper right")
    assert any("legend" in p for p in plots.layout_problems(fig))


def test_tick_labels_outside_the_view_are_not_counted():
    """matplotlib keeps tick labels beyond the view limits (and unused ones of its tick pool) without
    drawing them; they overlap the drawn ones on paper only, so a figure whose drawn text is clean has
    no problems."""
    fig, (a, b) = plots.figure(2)
    a.plot(np.arange(1000), np.linspace(-5, 5, 1000))
    a.set_xlim(0, 999)  # the locator's ticks at -200 and 1200 lie outside the view
    b.semilogy(np.arange(10), np.logspace(-3, 1, 10))
    b.set_ylim(1e-3, 10)
    for ax in (a, b):
        ax.set_xlabel("update")
        ax.set_ylabel("value")
    assert plots.layout_problems(fig) == []
    locs = a.xaxis.get_majorticklocs()
    ticks = a.xaxis.get_major_ticks(len(locs))
    off = [t.label1 for t, loc in zip(ticks, locs) if not 0 <= loc <= 999]
    on = [t.label1 for t, loc in zip(ticks, locs) if 0 <= loc <= 999]
    assert off and on  # matplotlib laid out ticks beyond the view (else the test tests nothing)
    drawn = {id(t) for t in plots.drawn_texts(fig)}
    assert all(id(t) in drawn for t in on) and not any(id(t) in drawn for t in off)
    assert id(a.xaxis.label) in drawn


def test_text_of_a_hidden_legend_or_axes_is_not_counted():
    fig, (ax,) = plots.figure(1)
    ax.plot([0, 1], [0, 1], label="a label")
    leg = ax.legend(loc="center")
    ax.text(0.5, 0.5, "a label", transform=ax.transAxes, ha="center")  # where the legend's entry would be
    leg.set_visible(False)
    assert plots.layout_problems(fig) == []
    leg.set_visible(True)
    assert any("overlaps" in p for p in plots.layout_problems(fig))


def test_a_label_drawn_over_the_next_panel_is_found():
    fig, (a, b) = plots.figure(2)
    fig.set_layout_engine("none")  # plots.figure's constrained layout would make room for the label
    for ax in (a, b):
        ax.plot([0, 1], [0, 1])
    b.set_ylabel("a label", labelpad=150)  # pushed left, into the first panel
    assert any("lies over the panel" in p for p in plots.layout_problems(fig))
    b.set_ylabel("a label", labelpad=4)
    assert plots.layout_problems(fig) == []


def test_a_legend_over_tick_labels_is_found():
    fig, (ax,) = plots.figure(1)
    ax.plot([0, 1], [0, 1], label="a series with a long name")
    ax.set_yticks([0, 0.5, 1])
    ax.legend(loc="center right", bbox_to_anchor=(0.1, 0.5))  # over the y tick labels
    assert any("covers text" in p for p in plots.layout_problems(fig))
