"""Every study's figures, drawn from the committed quick records (results/<study>/trials, read only), have
no layout problem (plots.layout_problems: overlapping drawn text, text over another panel, a legend over
text or data). A figure that comes back broken names its study, figure and problem."""

import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from oplab import plots
from studies import all_studies
from tests import recorded_figures

RESULTS = Path(__file__).resolve().parent.parent / "results"


def test_every_figure_of_the_committed_records_is_clean():
    studies = [s for s in all_studies() if (RESULTS / s.NAME / "trials").is_dir()]
    if not studies:
        pytest.skip(f"no committed records under {RESULTS}")
    problems, drawn = [], 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for study in studies:
            for name, fig in recorded_figures.figures(study, RESULTS).items():
                drawn += 1
                problems += [f"{study.NAME}/{name}.png: {p}" for p in plots.layout_problems(fig)]
                plt.close(fig)
    assert drawn >= len(studies)  # every study drew its figures (else the test checks nothing)
    assert not problems, "layout problems:\n" + "\n".join(problems)
