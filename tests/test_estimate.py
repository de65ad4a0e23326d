"""oplab.estimate: FLOPs counted on the meta device against hand counts, updates per trial, and
every study's docstring stating its full budget's estimated GPU time."""

import re

import pytest
import torch
import torch.nn.functional as F

from oplab import estimate, models
from oplab import plan as planning
from oplab.config import DataConfig, ModelConfig, OptimConfig, Trial
from oplab.store import Store
from studies import all_studies


def test_update_flops_of_an_mlp_match_a_hand_count():
    b = 32
    with torch.device("meta"):
        model = models.build(ModelConfig("mlp", 1, 64), (784,), 10)
        x, y = torch.zeros(b, 784), torch.zeros(b, dtype=torch.long)
    counted = estimate._count(model, lambda m: F.cross_entropy(m(x), y))
    forward = 2 * b * (784 * 64 + 64 * 10)
    # backward: weight gradients of both layers, the input gradient of the second only (the data needs none)
    backward = 2 * b * 784 * 64 + 2 * (2 * b * 64 * 10)
    assert counted == forward + backward


def test_trial_cost_counts_updates_evaluations_and_batch_growth():
    t = Trial(data=DataConfig("mnist5k", n_train=1000, n_test=200), model=ModelConfig("mlp", 1, 64),
              optim=OptimConfig("sgd", lr=0.1), epochs=3, batch_size=50)
    c = estimate.trial_cost(t)
    assert c.trials == 1 and c.updates == 3 * 20
    with torch.device("meta"):
        model = models.build(t.model, (1, 28, 28), 10)
        x, y = torch.zeros(50, 1, 28, 28), torch.zeros(50, dtype=torch.long)
    update = estimate._count(model, lambda m: F.cross_entropy(m(x), y))
    forward = update / 3 / 50
    assert c.flops == pytest.approx(60 * update + 4 * 200 * forward + 1000 * forward)
    grown = estimate.trial_cost(Trial(**{**t.__dict__, "batch_growth": 5.0, "batch_every": 1 / 3}))
    assert grown.updates < c.updates and grown.flops == pytest.approx(c.flops, rel=0.1)


GPU_LINE = re.compile(r"[Ff]ull budget: about ([0-9.]+) GPU-hours")


@pytest.mark.parametrize("study", all_studies(), ids=lambda s: s.NAME)
def test_the_docstring_states_the_full_budgets_estimated_gpu_time(study):
    """The stated time is the estimator's (python run_all.py --budget full --replicate --estimate),
    to within a factor of 1.5, so that it cannot drift from the study's arms unnoticed."""
    m = GPU_LINE.search(study.__doc__ or "")
    assert m, f"{study.NAME}'s docstring lacks 'Full budget: about N GPU-hours'"
    hours = estimate.study_cost(study, "full").gpu_hours
    assert hours / 1.5 <= float(m.group(1)) <= hours * 1.5, (study.NAME, hours)


def test_a_recurrent_models_count_extended_from_short_sequences_is_the_full_count(monkeypatch):
    """trial_cost counts an RNN at 8 and 16 steps and extends linearly: exact, since every step
    costs the same; checked against a direct count at the full length."""
    t = Trial(data=DataConfig("adding", options={"length": 40, "n_train": 64, "n_test": 16}),
              model=ModelConfig("rnn", 1, 16, "tanh", options={"cell": "lstm", "init": "torch"}),
              optim=OptimConfig("sgd", lr=0.1), steps=10, batch_size=8, eval_every=10)
    extended = estimate.trial_cost(t)
    model, device = estimate._build(t, (40, 2), 1)
    x = torch.zeros(8, 40, 2, device=device)
    direct = estimate._count(model, lambda m: m(x).float().square().mean())
    forward = direct / 3 / 8
    assert extended.flops == pytest.approx(10 * direct + 2 * 16 * forward + 64 * forward)


def test_cpu_time_uses_stored_records_and_scales_the_rest(tmp_path):
    """A stored trial counts its measured wall time; a missing one its updates times the study's
    median time per update; with nothing stored the time is unknown."""
    from dataclasses import replace

    from oplab.records import Record
    from tests import tinystudy

    assert estimate.cpu_time(tinystudy, "smoke", tmp_path, seeds=[0, 1], replicate=False).unknown == 4
    specs = planning.plan(tinystudy, "smoke", [0, 1]).trials
    store = Store(tmp_path, tinystudy.NAME)
    stored = specs[:2]
    for i, sp in enumerate(stored):  # 2.0 s and 4.0 s for 20 updates: 0.1 and 0.2 s an update
        rec = Record(config={}, seed=sp.seed, status="ok", diverged_step=None, curves={},
                     final={"steps": 20}, timings={"wall_s": 2.0 * (i + 1)}, provenance={"cpu": "test CPU"},
                     key=sp.key, study=sp.study, budget=sp.budget, version=sp.version)
        store.save(replace(rec))
    got = estimate.cpu_time(tinystudy, "smoke", tmp_path, seeds=[0, 1], replicate=False)
    rate = 0.15  # the median of 0.1 and 0.2
    rest = sum(estimate.trial_cost(sp.trial).updates for sp in specs[2:])
    assert (got.measured, got.scaled, got.unknown) == (2, 2, 0)
    assert got.seconds == pytest.approx(6.0 + rate * rest)
    assert "test CPU" in got.text() and "2 trials measured" in got.text()
