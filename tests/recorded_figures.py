"""A study's figures drawn from the records stored under a results folder, as its page draws them
(the verdict and replication blocks pooled, the tuning trials for the chosen arms): for checks of
the figures themselves. Reads records only; writes nothing."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

from oplab import kit, plots, report
from oplab import plan as planning
from oplab.store import Store


def figures(study: ModuleType, results_dir: Path, budget: str = "quick") -> dict:
    """name -> matplotlib Figure of the study's figures (its forest plot left out), from the stored
    records of its default seeds with replication; {} when none are stored."""
    plan = planning.plan(study, budget, planning.default_seeds(study, budget), replicate=True)
    store = Store(results_dir, study.NAME)
    recs = {sp.key: rec for sp in plan.tuning if (rec := store.load(sp.key)) is not None}
    planning.finish_plan(plan, recs)
    recs.update({sp.key: rec for sp in plan.trials if (rec := store.load(sp.key)) is not None})
    if not any(sp.key in recs for sp in plan.trials):
        return {}
    specs = plan.tuning + plan.trials
    df_all, cv_all = report.frame(specs, recs), report.curves(specs, recs)
    tuning = df_all[df_all["block"] == "tuning"].reset_index(drop=True)
    if plan.tune is not None and len(tuning):
        tuning = kit.mark_chosen(tuning, plan.tune)
    df, cv = report._block(df_all, cv_all, ("verdict", "replication"))
    ctx = kit.Context(budget, tuple(plan.seeds + plan.replication), "pooled",
                      getattr(study, "SETUP", {}).get(budget, {}), tuning if plan.tune else None, plan.tune)
    t, _ = report._judge(study, df, cv, ctx)
    plots.theme()
    return study.figures(t, cv, ctx)
