"""Speed, as ratios measured in one run (`make bench`); never asserted in tests.

- oplab's update vs a plain PyTorch update on the same model, data and batches: the cost per
  update of the loop's bookkeeping (gradient norm, clipping check, scheduler, records), with a
  trial's fixed costs (data, model build, the evaluations at start and end) excluded by
  differencing two trial lengths, and reported apart;
- each normalizer's cost per update relative to the plain update;
- training throughput of the MLP as a fraction of this machine's measured matmul FLOP/s;
- `--jobs 2` vs `--jobs 1` on a sample of the quick suite's trials;
- a cached rerun of the whole quick suite (every trial stored, every page unchanged).
Read the summary printed at the end, not absolute times: the machine may be shared. The
figures in BENCHMARKS.md come from this file.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from oplab import data, init, models, norms, runner
from oplab import plan as planning
from oplab.config import DataConfig, InitConfig, ModelConfig, OptimConfig, Trial, override
from oplab.train import Runtime, train

ROOT = Path(__file__).resolve().parents[2]
SHORT, LONG = 40, 240  # two trial lengths (updates); their difference isolates the per-update cost
ROUNDS = 5
TRIAL = Trial(data=DataConfig("mnist5k", n_train=4000, n_test=200), model=ModelConfig("mlp", 3, 256),
              init=InitConfig("he"), optim=OptimConfig("sgd", lr=0.05, momentum=0.9), steps=SHORT,
              batch_size=128, eval_every=10**6)
SUMMARY: dict[str, str] = {}
PER_STEP: dict[str, float] = {}


def plain_loop(trial: Trial) -> None:
    """The same model, data, init and batches as oplab's trial, in the shortest PyTorch loop."""
    torch.manual_seed(0)
    d = data.load(trial.data)
    model = models.build(trial.model, d.input_shape, d.out_dim)
    norms.apply(model, trial.norm)
    init.apply(model, trial.init, d.x_train[: trial.batch_size])
    opt = torch.optim.SGD(model.parameters(), lr=trial.optim.lr, momentum=trial.optim.momentum)
    it = data.batches(len(d.x_train), trial.batch_size, torch.Generator().manual_seed(0))
    for _ in range(trial.steps):
        idx = next(it)
        opt.zero_grad()
        F.cross_entropy(model(d.x_train[idx]), d.y_train[idx]).backward()
        opt.step()


def oplab_loop(trial: Trial) -> None:
    train(trial, 0)


def per_update(fns: dict, trial: Trial) -> dict[str, tuple[float, float]]:
    """name -> (seconds per update, fixed seconds per trial) for each loop in `fns`: medians over
    ROUNDS of a SHORT and a LONG trial, the loops interleaved within each round so that all see the
    same machine load."""
    times = {name: ([], []) for name in fns}
    for fn in fns.values():
        fn(override(trial, {"steps": SHORT}))  # warm-up: data cache, allocator
    for _ in range(ROUNDS):
        for name, fn in fns.items():
            for steps, out in zip((SHORT, LONG), times[name]):
                t0 = time.perf_counter()
                fn(override(trial, {"steps": steps}))
                out.append(time.perf_counter() - t0)
    result = {}
    for name, (short, long) in times.items():
        step = (statistics.median(long) - statistics.median(short)) / (LONG - SHORT)
        result[name] = (step, statistics.median(short) - SHORT * step)
    return result


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)
    if SUMMARY:
        print("\n\nbenchmark summary (1 torch thread):")
        for k, v in SUMMARY.items():
            print(f"  {k}: {v}")


def test_update_oplab_vs_plain_pytorch(benchmark):
    """oplab's update / a plain PyTorch update (goal <= 1.05x), fixed costs apart."""
    out = benchmark.pedantic(per_update, args=({"plain": plain_loop, "oplab": oplab_loop}, TRIAL),
                             rounds=1, iterations=1)
    (plain, plain_fixed), (ours, ours_fixed) = out["plain"], out["oplab"]
    PER_STEP["oplab_none"] = ours
    ratio = ours / plain
    benchmark.extra_info.update(plain_ms=1000 * plain, oplab_ms=1000 * ours, ratio=ratio,
                                plain_fixed_s=plain_fixed, oplab_fixed_s=ours_fixed)
    SUMMARY["update, oplab / plain PyTorch (MLP 3x256, batch 128)"] = (
        f"{ratio:.3f}x ({1000 * ours:.2f} vs {1000 * plain:.2f} ms per update)")
    SUMMARY["fixed cost per trial (data, build, init, evaluations)"] = (
        f"oplab {ours_fixed:.2f} s, plain loop {plain_fixed:.2f} s")


@pytest.mark.parametrize("norm", ["batch", "weight", "weight_meanbn"])
def test_normalizer_cost_per_update(benchmark, norm):
    """An update with the normalizer / one without (oplab's loop for both, interleaved)."""
    normed = lambda t: oplab_loop(override(t, {"norm.name": norm}))  # noqa: E731
    out = benchmark.pedantic(per_update, args=({"none": oplab_loop, norm: normed}, TRIAL), rounds=1, iterations=1)
    step, base = out[norm][0], out["none"][0]
    benchmark.extra_info.update(ms=1000 * step, ratio_to_no_norm=step / base)
    SUMMARY[f"update with {norm} / without a normalizer"] = f"{step / base:.2f}x ({1000 * step:.2f} ms)"


def matmul_flops(n: int = 1024, repeats: int = 20) -> float:
    """This machine's float32 matmul rate on one thread, FLOP/s (median over repeats)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times)


def update_flops(trial: Trial) -> int:
    """FLOPs of one training update of the trial's model (forward and backward), counted by torch."""
    d = data.load(trial.data)
    model = models.build(trial.model, d.input_shape, d.out_dim)
    x, y = d.x_train[: trial.batch_size], d.y_train[: trial.batch_size]
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("batch", [128, 512])
def test_mlp_throughput_vs_matmul(benchmark, batch):
    """Training FLOP/s of the MLP in oplab's loop as a fraction of the matmul rate (goal >= 50%)."""
    trial = override(TRIAL, {"batch_size": batch})
    peak = matmul_flops()
    flops = update_flops(trial)
    step, _ = benchmark.pedantic(per_update, args=({"oplab": oplab_loop}, trial), rounds=1, iterations=1)["oplab"]
    frac = flops / step / peak
    benchmark.extra_info.update(update_gflop=flops / 1e9, matmul_gflops=peak / 1e9, fraction=frac)
    SUMMARY[f"MLP training throughput / matmul rate, batch {batch}"] = (
        f"{100 * frac:.0f}% ({flops / step / 1e9:.1f} of {peak / 1e9:.1f} GFLOP/s)")


SAMPLE = ("lsuv_vs_bn", "greedy_pretraining", "init_symmetry_scale", "init_depth", "init_biases",
          "batchnorm_sigmoid", "momentum_plateau", "polyak_averaging", "gradient_noise")


def quick_sample() -> list:
    """A fixed sample of the quick suite's trials: every arm of nine studies at seed 0 (many trials of
    a few seconds, as most of the suite is)."""
    from studies import STUDIES, all_studies

    all_studies()
    return [sp for name in SAMPLE for sp in planning.expand(STUDIES[name], "quick", [0])]


def test_jobs_2_vs_1_on_quick_trials(benchmark):
    """Wall time of the same quick trials with one worker / with two (goal >= 1.7x on 2 cores)."""
    specs = quick_sample()

    def wall(jobs: int) -> tuple[float, float]:
        """(wall seconds, summed trial seconds) of the sample with `jobs` workers."""
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            recs = runner.run(specs, Path(tmp), Runtime(), jobs=jobs, progress=False)
            return time.perf_counter() - t0, sum(r.timings["wall_s"] for r in recs.values())

    (one, one_trials), (two, two_trials) = benchmark.pedantic(lambda: (wall(1), wall(2)), rounds=1, iterations=1)
    benchmark.extra_info.update(trials=len(specs), jobs1_s=one, jobs2_s=two, speedup=one / two)
    SUMMARY[f"--jobs 2 vs --jobs 1 ({len(specs)} quick trials)"] = f"{one / two:.2f}x ({one:.0f} s vs {two:.0f} s)"
    # why not 2x: how busy the two workers were, and how much slower a trial runs beside another
    SUMMARY["  with 2 jobs: workers busy / trial slowdown beside another trial"] = (
        f"{two_trials / (2 * two):.0%} / {two_trials / one_trials:.2f}x")


def test_cached_rerun_of_the_quick_suite(benchmark):
    """`run_all.py --replicate` with every trial stored and every page current (goal <= 5 s)."""
    results = ROOT / "results"
    if not (results / "README.md").is_file():
        pytest.skip("no committed results/ to rerun")
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "results"
        shutil.copytree(results, copy, ignore=shutil.ignore_patterns("weights"))
        cmd = [sys.executable, "run_all.py", "--replicate", "--no-progress", "--results", str(copy)]
        subprocess.run(cmd, cwd=ROOT, capture_output=True, check=False)  # brings any out-of-date page up to date

        def rerun() -> None:
            subprocess.run(cmd, cwd=ROOT, capture_output=True, check=True)

        benchmark.pedantic(rerun, rounds=3, iterations=1)
    seconds = benchmark.stats["median"]
    SUMMARY["cached rerun of the whole quick suite"] = f"{seconds:.1f} s (median of 3)"
