"""What a study costs at a budget before it runs: trials, updates and floating-point operations,
and a GPU time estimated from them (`run_all.py --budget full --estimate`).

The FLOPs of one update are counted, not guessed: each arm's model is built on PyTorch's `meta`
device (no memory, no arithmetic) and one forward and backward pass on a batch of the real shape
runs under torch.utils.flop_counter.FlopCounterMode, which counts every matmul and convolution
(elementwise work, a few percent, is not counted). Evaluations count as forward passes
(a third of an update's FLOPs an example) over the test split at each evaluation and over the
training split at the end; a stage before the loop (greedy pre-training, FitNets' hints) counts
as that many more updates. Monitors are not counted.

A GPU time needs two numbers no count gives; they are assumptions, stated here and in the output:
GPU_FLOPS, the sustained rate of a data-centre GPU on these models (an A100/H100 runs fp32 models
through TF32 tensor cores at 150-500 TFLOP/s peak; small convnets and MLPs sustain a small
fraction of it), and UPDATE_OVERHEAD_S, the launch and Python time of one update, which is
what bounds small models. The estimate is the sum over trials of updates x (FLOPs / GPU_FLOPS +
UPDATE_OVERHEAD_S), for one GPU, trials one after another.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from oplab import data as datalib
from oplab import models, streamtask, tasks
from oplab import plan as planning
from oplab.config import DataConfig, Trial
from oplab.datatask import build_model
from oplab.growth import batch_plan
from oplab.store import Store

GPU_FLOPS = 30e12  # sustained FLOP/s assumed on one data-centre GPU (see the module docstring)
UPDATE_OVERHEAD_S = 1e-3  # launch and Python time per update assumed on that GPU
# the standard datasets' shapes and split sizes (not loaded for an estimate: they may not be here)
KNOWN = {"cifar10": ((3, 32, 32), 10, 50_000, 10_000), "mnist": ((1, 28, 28), 10, 60_000, 10_000),
         "fashion_mnist": ((1, 28, 28), 10, 60_000, 10_000)}


@dataclass
class Cost:
    trials: int = 0
    updates: int = 0
    flops: float = 0.0

    @property
    def gpu_hours(self) -> float:
        return (self.flops / GPU_FLOPS + self.updates * UPDATE_OVERHEAD_S) / 3600

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.trials + other.trials, self.updates + other.updates, self.flops + other.flops)


def _count(model: torch.nn.Module, run) -> int:
    with FlopCounterMode(display=False) as counter:
        run(model).backward()
    return counter.get_total_flops()


def _build(trial: Trial, shape: tuple, out_dim: int) -> tuple[torch.nn.Module, torch.device]:
    """The trial's model (oplab.datatask.build_model) on the meta device, or on the CPU for a model whose
    construction reads a value (a tiny one, e.g. the single recurrent unit)."""
    try:
        with torch.device("meta"):
            return build_model(trial, shape, out_dim, "meta"), torch.device("meta")
    except (RuntimeError, NotImplementedError):
        return build_model(trial, shape, out_dim, "cpu"), torch.device("cpu")


def _shape(trial: Trial) -> tuple[tuple, int, int, int]:
    """(input shape, output size, train size, test size) of a trial's dataset, before slicing; a
    generated dataset is built at two examples a split when its builder takes the sizes."""
    key = repr(trial.data)
    if key not in _SHAPES:
        _SHAPES[key] = _data_shape(trial)
    return _SHAPES[key]


_SHAPES: dict[str, tuple] = {}  # data config repr -> shape (loading a dataset is the slow part)
_COSTS: dict[str, Cost] = {}  # trial config repr -> its cost
_UPDATES: dict[str, int] = {}  # (model, normalizer, batch, data shape) -> FLOPs of one update


def _data_shape(trial: Trial) -> tuple[tuple, int, int, int]:
    if trial.data.name in KNOWN:
        return KNOWN[trial.data.name]
    import inspect

    params = inspect.signature(datalib.DATASETS[trial.data.name]).parameters
    opts = trial.data.opts
    if "n_train" in params and "n_test" in params:
        small = DataConfig(trial.data.name, options={**opts, "n_train": 2, "n_test": 2})
        d = datalib.load(small)
        sizes = [opts.get(k, params[k].default) for k in ("n_train", "n_test")]
        return d.input_shape, d.out_dim, sizes[0], sizes[1]
    d = datalib.load(trial.data)
    return d.input_shape, d.out_dim, len(d.x_train), len(d.x_test)


def _update_flops(trial: Trial, shape: tuple, out_dim: int) -> int:
    """FLOPs of one update (forward and backward of a batch), counted on the meta device; the model
    depends on the trial's model and normalizer only, so the count is cached by those, the batch size
    and the data's shape (a study's arms differ mostly in rates and seeds)."""
    key = repr((trial.model, trial.norm, trial.batch_size, shape, out_dim))
    if key in _UPDATES:
        return _UPDATES[key]
    model, device = _build(trial, shape, out_dim)

    def count(shape: tuple) -> int:
        x = torch.zeros(trial.batch_size, *shape, device=device)
        if out_dim > 1:
            y = torch.zeros(trial.batch_size, dtype=torch.long, device=device)
            return _count(model, lambda m: F.cross_entropy(m(x), y))
        return _count(model, lambda m: m(x).float().square().mean())

    if len(shape) == 2 and any(isinstance(m, torch.nn.RNNBase) for m in model.modules()) and shape[0] > 16:
        # a recurrent model's FLOPs are linear in the sequence length: count two short ones and extend
        # (exact, and a 200-step sequence would cost thousands of counted ops)
        a, b = count((8, shape[1])), count((16, shape[1]))
        update = a + (b - a) * (shape[0] - 8) // 8
    else:
        update = count(shape)
    _UPDATES[key] = update
    return update


def trial_cost(trial: Trial) -> Cost:
    """The cost of one trial (and not of its teacher): updates, and FLOPs counted on the meta device."""
    if streamtask.handles(trial):
        loop, task_opts = streamtask.split_options(trial)
        task = tasks.STREAMS.build(trial.data.name, **task_opts)
        batch = task.batch(np.full(trial.batch_size, int(loop["target"])), np.random.default_rng(0))
        tokens = batch.tokens
        vocab = len(task.vocab)
        with torch.device("meta"):
            model = models.build(trial.model, (vocab,), vocab)
        x = tokens[:, :-1].to("meta")
        update = _count(model, lambda m: m(x).float().sum())
        n_test = trial.data.n_test or streamtask.DEFAULT_N_TEST
        evals = trial.steps // (trial.eval_every or max(1, trial.steps // 10)) + 1
        forward = update / 3 / trial.batch_size
        return Cost(1, trial.steps, trial.steps * update + evals * n_test * forward * (1 + batch.answer_len))
    shape, out_dim, n_full, n_test_full = _shape(trial)
    n = trial.data.n_train or n_full
    n_test = trial.data.n_test or n_test_full
    update = _update_flops(trial, shape, out_dim)
    sizes = batch_plan(trial, n)
    steps = len(sizes) if sizes else (trial.steps or trial.epochs * (n // trial.batch_size))
    flops = update * (sum(sizes) / trial.batch_size if sizes else steps)
    pre = 0
    opts = trial.init.opts
    if "epochs" in opts:  # greedy layer-wise pre-training: epochs of updates a hidden layer
        pre = opts["epochs"] * trial.model.depth * (n // opts.get("batch_size", trial.batch_size))
    pre += trial.distill.hint_steps
    forward = update / 3 / trial.batch_size
    evals = steps // (trial.eval_every or max(1, n // trial.batch_size)) + 1
    flops += pre * update + evals * n_test * forward + n * forward
    if trial.teacher is not None and trial.distill.name != "none":  # the teacher's forward pass an update
        teacher = trial_cost(trial.teacher)
        flops += steps * teacher.flops / max(1, teacher.updates) / 3
    return Cost(1, steps + pre, flops)


def _cached(trial: Trial) -> Cost:
    key = repr(trial)
    if key not in _COSTS:
        _COSTS[key] = trial_cost(trial)
    return _COSTS[key]


def record_cost(trial: Trial) -> dict[str, float]:
    """A trial's cost as the report's frame carries it: its updates (pre-training and hint stages
    included) and FLOPs, and apart from them its teacher's own training, counted from its config
    (cached by the config's repr; the seed does not change a cost)."""
    c = _cached(trial)
    out = {"updates": float(c.updates), "flops": float(c.flops)}
    if trial.teacher is not None:
        tc = _cached(trial.teacher)
        out.update({"teacher_updates": float(tc.updates), "teacher_flops": float(tc.flops)})
    return out


def _specs(study: ModuleType, budget: str, seeds: list[int] | None, replicate: bool) -> dict:
    """key -> spec of every trial a run would train: tuning trials, verdict (and replication) trials of
    one level per tuned group (the chosen one is not known before tuning; any one costs alike), and
    each teacher once per seed."""
    p = planning.plan(study, budget, seeds if seeds is not None else planning.default_seeds(study, budget), replicate)
    if p.tune is not None:  # the chosen levels are not known before tuning; any one level costs alike
        first = planning.first_levels(planning.arms_of(study, budget), p.tune)
        p.trials = (planning.expand(study, budget, p.seeds, "verdict", first)
                    + planning.expand(study, budget, p.replication, "replication", first))
    specs = {}
    for sp in p.tuning + p.trials:
        specs.setdefault(sp.key, sp)
        t = planning.teacher_spec(sp)
        if t is not None:
            specs.setdefault(t.key, t)
    return specs


def study_cost(study: ModuleType, budget: str, seeds: list[int] | None = None, replicate: bool = True) -> Cost:
    """The cost of a study's whole run at a budget: tuning trials, then verdict (and replication)
    trials of one chosen level per tuned group, and each teacher once per seed."""
    specs, cache = _specs(study, budget, seeds, replicate), {}
    total = Cost()
    for sp in specs.values():
        k = repr(sp.trial)
        if k not in cache:
            cache[k] = trial_cost(sp.trial)
        total = total + cache[k]
    return total


@dataclass
class CpuTime:
    """A run's CPU time on the machine whose records are stored: trials already stored count their
    measured wall time, the others their updates times the study's measured time per update."""

    seconds: float = 0.0
    measured: int = 0  # trials whose own record gives the time
    scaled: int = 0  # trials timed from the study's stored records' time per update
    unknown: int = 0  # trials of a study with no stored record to time them by
    cpus: tuple = ()

    def __add__(self, other: CpuTime) -> CpuTime:
        return CpuTime(self.seconds + other.seconds, self.measured + other.measured, self.scaled + other.scaled,
                       self.unknown + other.unknown, tuple(sorted(set(self.cpus) | set(other.cpus))))

    def text(self) -> str:
        if not (self.measured or self.scaled):
            return "CPU time unknown (no stored records of this study to time it by)"
        where = f" ({', '.join(self.cpus)})" if self.cpus else ""
        extra = f", {self.unknown} trials not timed" if self.unknown else ""
        return (f"about {self.seconds / 60:,.1f} CPU-minutes one trial after another{where}: {self.measured} trials "
                f"measured, {self.scaled} scaled from the stored records' time per update{extra}")


def cpu_time(study: ModuleType, budget: str, results_dir, seeds: list[int] | None = None,
             replicate: bool = True) -> CpuTime:
    """The CPU time of a study's run from the records stored under `results_dir` (the quick budget's
    are committed): a stored trial's own wall time; another trial's updates (pre-training and hint
    stages included) times the median time per update of the study's stored records."""
    import statistics
    from pathlib import Path

    store = Store(Path(results_dir), study.NAME)
    folder = store.path("x").parent
    per_update, cpus = [], set()
    stored = {f.stem: store.load(f.stem) for f in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
    for rec in stored.values():  # each record read once: here, and looked up by key below
        if rec is None or rec.status == "error":
            continue
        ups = sum(float(rec.final.get(k) or 0) for k in ("steps", "pretrain_updates")) or 0.0
        if ups > 0 and rec.timings.get("wall_s"):
            per_update.append(rec.timings["wall_s"] / ups)
            cpus.add(str(rec.provenance.get("cpu", "")) or "unknown CPU")
    rate = statistics.median(per_update) if per_update else None
    out = CpuTime(cpus=tuple(sorted(cpus)))
    for key, sp in _specs(study, budget, seeds, replicate).items():
        rec = stored.get(key)
        if rec is not None and rec.status != "error" and rec.timings.get("wall_s") is not None:
            out.seconds += float(rec.timings["wall_s"])
            out.measured += 1
        elif rate is not None:
            out.seconds += rate * _cached(sp.trial).updates
            out.scaled += 1
        else:
            out.unknown += 1
    return out


def describe(cost: Cost) -> str:
    return (f"{cost.trials} trials, {cost.updates:,} updates, {cost.flops / 1e15:,.3g} PFLOP; about "
            f"{cost.gpu_hours:.2g} GPU-hours")


ASSUMPTIONS = (f"GPU time assumes {GPU_FLOPS / 1e12:.0f} TFLOP/s sustained and {1000 * UPDATE_OVERHEAD_S:.0f} ms "
               "of launch overhead an update on one data-centre GPU, trials one after another (oplab.estimate)")
