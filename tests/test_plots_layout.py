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
