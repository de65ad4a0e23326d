"""kit.Tune(grids_only=True): a group with a single level of the tuned factor has nothing to choose,
so it skips the tuning seeds and still runs on the verdict and replication seeds; the default
(False) runs every arm on the tuning seeds, as before."""

import dataclasses
import types

from oplab import kit
from oplab import plan as planning
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial
from oplab.records import Record


def study(grids_only: bool) -> types.ModuleType:
    m = types.ModuleType("gridstudy")
    m.NAME, m.VERSION, m.SEEDS = "gridstudy", 1, {"smoke": 2, "quick": 5, "full": 5}
    m.TUNE = kit.Tune("lr", within=("net",), grids_only=grids_only)
    base = Trial(data=DataConfig("mnist5k", n_train=100, n_test=50), model=ModelConfig("mlp", 1, 8), steps=2,
                 batch_size=10)

    def arms(budget):
        out = {f"a lr={lr:g}": kit.Arm(dataclasses.replace(base, optim=OptimConfig("sgd", lr=lr)),
                                       {"net": "a", "lr": lr}) for lr in (0.01, 0.1)}  # a grid: tuned
        out["b"] = kit.Arm(dataclasses.replace(base, optim=OptimConfig("sgd", lr=0.05)), {"net": "b", "lr": 0.05})
        return out

    m.arms = arms
    return m


def records(p, losses: dict) -> dict:
    """Tuning records of plan p's specs: (net, lr) -> train_loss_full; specs not in `losses` are left out."""
    out = {}
    for sp in p.tuning:
        f = dict(sp.factors)
        if (f["net"], f["lr"]) in losses:
            out[sp.key] = Record(config={}, seed=sp.seed, status="ok", curves={},
                                 final={"train_loss_full": losses[(f["net"], f["lr"])]}, timings={}, provenance={})
    return out


def test_single_level_groups_skip_the_tuning_seeds_but_not_the_verdict_seeds():
    s = study(True)
    p = planning.plan(s, "smoke", [0, 1], replicate=True)
    assert {sp.arm for sp in p.tuning} == {"a lr=0.01", "a lr=0.1"}  # b has nothing to choose
    assert {sp.seed for sp in p.tuning} == set(kit.Tune("lr", ("net",)).seed_list("smoke"))
    planning.finish_plan(p, records(p, {("a", 0.01): 0.5, ("a", 0.1): 0.2}))
    assert sorted({sp.arm for sp in p.trials}) == ["a lr=0.1", "b"]  # the chosen level, and b as it is
    assert sorted({sp.seed for sp in p.trials}) == [0, 1, 100, 101]


def test_by_default_every_arm_runs_on_the_tuning_seeds():
    p = planning.plan(study(False), "smoke", [0, 1], replicate=True)
    assert {sp.arm for sp in p.tuning} == {"a lr=0.01", "a lr=0.1", "b"}
    losses = {("a", 0.01): 0.5, ("a", 0.1): 0.2, ("b", 0.05): 0.9}
    planning.finish_plan(p, records(p, losses))
    assert sorted({sp.arm for sp in p.trials}) == ["a lr=0.1", "b"]
    # a single-level group missing from the tuning frame is not trained without grids_only (today's rule)
    p2 = planning.plan(study(False), "smoke", [0, 1])
    planning.finish_plan(p2, records(p2, {k: v for k, v in losses.items() if k[0] == "a"}))
    assert {sp.arm for sp in p2.trials} == {"a lr=0.1"}
