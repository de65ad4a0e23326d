"""The flags shared by run_all.py and every study's __main__.

Bad input is one line on stderr naming the valid choices, exit status 2, and
nothing written; every arm is checked before any training. Ctrl-C stops the run;
every finished trial is already on disk, and rerunning the same command continues
where it stopped. A trial that raises is stored as an error, listed in its study's
errors.md, and makes the command exit 1 after the reports are written. One run at a
time holds a results folder (a file lock); another waits for it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

from filelock import FileLock, Timeout

from oplab import records, report, runner
from oplab.train import Runtime

DEVICES = ("auto", "cpu", "cuda")
MAX_SEEDS = 1000  # seeds a command may ask for (each is a full set of trials)
MAX_SEED = 2**31 - 1
LOCK_NAME = ".oplab.lock"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        raise UsageError(message)


def parse_seeds(text: str) -> list[int] | int:
    """'5' -> 5 seeds (0..4); '10,11,12' -> those seeds; '10-14' -> 10..14."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        elif "-" in text.strip("-"):
            lo, hi = text.split("-")
            seeds = list(range(int(lo), int(hi) + 1))
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            if n > MAX_SEEDS:
                raise UsageError(f"argument --seeds: {n} seeds is too many; at most {MAX_SEEDS}")
            return n
    except ValueError:
        raise UsageError(f"argument --seeds: {text!r} is not a count (e.g. 5), a list (e.g. 10,11,12) "
                         "or a range (e.g. 10-14)") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise UsageError(f"argument --seeds: {text!r} must name distinct non-negative seeds")
    if len(seeds) > MAX_SEEDS or max(seeds) > MAX_SEED:
        raise UsageError(f"argument --seeds: {text!r} asks for too much: at most {MAX_SEEDS} seeds, each at most "
                         f"{MAX_SEED}")
    return seeds


def build_parser(prog: str, study_names: list[str]) -> argparse.ArgumentParser:
    p = _Parser(prog=prog, description="Run oplab studies: train their trials (skipping stored ones), "
                "then write tables, figures, verdicts and the results/README.md scorecard.")
    p.add_argument("--budget", default="quick", choices=runner.BUDGETS,
                   help="smoke: seconds, for tests; quick (default): embedded data on a laptop CPU; "
                        "full: the papers' scale, for a GPU or a cluster")
    p.add_argument("--only", default=None, metavar="NAMES",
                   help=f"comma-separated studies to run (default: all): {', '.join(study_names)}")
    p.add_argument("--seeds", default=None, type=str, metavar="N|LIST",
                   help="seeds per arm: a count N (seeds 0..N-1), a list 10,11,12, or a range 10-14 "
                        "(default: each study's own count for the budget)")
    p.add_argument("--jobs", default=runner.default_jobs(), type=int, metavar="N",
                   help="local worker processes, one torch thread each (default: cores = %(default)s)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="auto: cuda if available, else cpu")
    p.add_argument("--results", default=None, metavar="DIR",
                   help="where records and reports go (default: results/ for the quick budget, results/<budget>/ "
                        "for the others; a folder holds one budget's report)")
    p.add_argument("--deterministic", action="store_true",
                   help="on CUDA, deterministic algorithms only (torch.use_deterministic_algorithms), so that a "
                        "trial's numbers depend only on its config and seed there too; slower (often 10-30%%), and a "
                        "model with an op that has no deterministic CUDA kernel fails with an error record")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="where standard datasets live (default: ~/.cache/oplab)")
    p.add_argument("--download", action="store_true", help="download missing standard datasets")
    p.add_argument("--replicate", action="store_true",
                   help="also run every verdict on a second, disjoint block of seeds (each verdict seed + "
                        "100) and report, part by part, whether the words agree")
    p.add_argument("--recompute-stale", action="store_true",
                   help="train again the stored trials whose records come from another environment (package "
                        "versions, CPU model, device) or other trial code than this checkout's")
    p.add_argument("--report-only", action="store_true",
                   help="rebuild tables, figures and verdicts from stored records; train nothing")
    p.add_argument("--executor", default="local", choices=runner.EXECUTORS,
                   help="local processes, or a Dask cluster (needs oplab[cluster])")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="Dask scheduler address, e.g. tcp://HOST:8786 (with --executor dask)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list", action="store_true", help="list the studies and their claims, then exit")
    p.add_argument("--estimate", action="store_true",
                   help="print what the run would cost (trials, updates, FLOPs counted per model, an estimated "
                        "GPU time), then exit without training")
    return p


def _resolve(args, studies: dict[str, ModuleType]) -> tuple[list[ModuleType], list[int] | int, str]:
    if args.only is not None:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        bad = [n for n in names if n not in studies]
        if bad or not names:
            raise UsageError(f"argument --only: unknown study {', '.join(map(repr, bad)) or '(none)'}; "
                             f"valid: {', '.join(studies)}")
        selected = [studies[n] for n in names]
    else:
        selected = list(studies.values())
    seeds = parse_seeds(args.seeds) if args.seeds is not None else 0
    if args.jobs < 1:
        raise UsageError(f"argument --jobs: must be >= 1, got {args.jobs}")
    device = args.device
    if args.executor == "dask":  # the workers resolve the device (and find their data) themselves
        try:
            import dask.distributed  # noqa: F401
        except ImportError:
            raise UsageError("argument --executor: dask needs dask.distributed; pip install 'oplab[cluster]'") from None
        if args.scheduler and not args.list:
            try:
                runner.check_scheduler(args.scheduler)
            except runner.SchedulerError as err:
                raise UsageError(f"argument --scheduler: {err}") from None
    elif device == "auto" or device == "cuda":
        import torch

        if device == "cuda" and not torch.cuda.is_available():
            raise UsageError("argument --device: cuda is not available here; valid: auto, cpu")
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.scheduler and args.executor != "dask":
        raise UsageError("argument --scheduler: only with --executor dask")
    if args.recompute_stale and args.report_only:
        raise UsageError("argument --recompute-stale: not with --report-only, which trains nothing")
    args.committed_report = args.results is None and args.budget == "quick"  # the report results/ holds
    args.results = args.results or ("results" if args.budget == "quick" else f"results/{args.budget}")
    results = Path(args.results)
    if results.exists() and not results.is_dir():
        raise UsageError(f"argument --results: {results} is a file; give a folder")
    parent = next((q for q in [results, *results.parents] if q.exists()), Path("."))
    if not os.access(parent, os.W_OK):
        raise UsageError(f"argument --results: {parent} is not writable")
    if not args.list:
        other = _budgets_in(results) - {args.budget}
        if other:
            raise UsageError(f"argument --results: {results} holds the {', '.join(sorted(other))} report; write the "
                             f"{args.budget} budget to another folder (default: results/{args.budget})")
    return selected, seeds, device


def _budgets_in(results: Path) -> set[str]:
    """The budgets of the study reports already in a results folder."""
    found = set()
    for f in results.glob("*/verdict.json") if results.is_dir() else []:
        try:
            found.add(json.loads(f.read_text())["budget"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return found


def main(all_studies: list[ModuleType], argv: list[str] | None = None, prog: str | None = None) -> int:
    studies = {s.NAME: s for s in all_studies}
    prog = prog or (Path(sys.argv[0]).name if len(all_studies) > 1 else f"python -m studies.{all_studies[0].NAME}")
    parser = build_parser(prog, list(studies))
    try:
        args = parser.parse_args(argv)
        selected, seeds_arg, device = _resolve(args, studies)
        if args.list:
            try:
                for s in selected:
                    print(f"{s.NAME:22s} {s.CLAIM}")
            except BrokenPipeError:  # e.g. piped into `head`
                sys.stderr.close()
            return 0
        for s in selected:
            try:
                runner.check_arms(s, args.budget)
            except ValueError as err:
                raise UsageError(f"bad arm: {err}") from None
        plans = []
        for s in selected:
            seeds = (list(range(seeds_arg)) if isinstance(seeds_arg, int) and seeds_arg
                     else seeds_arg or runner.default_seeds(s, args.budget))
            try:
                plans.append(runner.plan(s, args.budget, seeds, replicate=args.replicate))
            except ValueError as err:
                raise UsageError(f"argument --seeds: {err}") from None
        if args.estimate:
            return _estimate(plans, args)
        if not args.report_only and args.executor != "dask":  # Dask workers check their own data
            from oplab import data

            # every arm's data: the verdict trials are only known after tuning, and come from these arms
            names = {a.trial.data.name for p in plans for a in runner.arms_of(p.study, args.budget).values()}
            for name in sorted(names):
                try:
                    data.check_available(name, args.data_dir, args.download)
                except data.DataMissingError as err:
                    raise UsageError(str(err)) from None
    except UsageError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2

    results = Path(args.results)
    if args.deterministic:  # cuBLAS reads this when it starts; worker processes inherit it
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    runtime = Runtime(device=device, data_dir=args.data_dir, download=args.download,
                      deterministic=args.deterministic)
    results.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(results / LOCK_NAME))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"{parser.prog}: another run is using {results} (lock {results / LOCK_NAME}); waiting for it to "
              "finish (Ctrl-C to stop)", file=sys.stderr)
        try:
            lock.acquire()
        except KeyboardInterrupt:
            return 130
    try:
        return _main_locked(args, parser, plans, results, runtime)
    finally:
        lock.release()


def _estimate(plans: list, args) -> int:
    from oplab import estimate

    total = estimate.Cost()
    for p in plans:
        cost = estimate.study_cost(p.study, args.budget, p.seeds, args.replicate)
        total = total + cost
        print(f"{p.study.NAME:22s} {estimate.describe(cost)}")
    if len(plans) > 1:
        print(f"{'total':22s} {estimate.describe(total)}")
    print(f"({args.budget} budget{', with replication' if args.replicate else ''}; {estimate.ASSUMPTIONS})")
    return 0


def _main_locked(args, parser, plans: list, results: Path, runtime: Runtime) -> int:
    from oplab import staleness

    t0 = time.perf_counter()
    records.remove_partial_writes(results)  # a run killed mid-write leaves temp files; none is a record
    # the environment stored records are compared with (with Dask: this machine's, not the workers')
    env = staleness.current_environment(runtime.device if runtime.device != "auto" else "cpu",
                                        runner.THREADS_PER_TRIAL)
    args.stale = (lambda rec: staleness.is_stale(rec.provenance, env, code=True)) if args.recompute_stale else None
    names = ", ".join(p.study.NAME for p in plans)
    try:
        recs = _run(args, [sp for p in plans for sp in p.tuning], results, runtime, f"{args.budget} tuning: {names}")
        for p in plans:
            runner.finish_plan(p, report.frame(p.tuning, recs))
        if args.report_only and any(p.tune and not p.trials for p in plans):
            missing = ", ".join(p.study.NAME for p in plans if p.tune and not p.trials)
            print(f"{parser.prog}: error: no stored tuning records for {missing} under {results}; run without "
                  "--report-only first", file=sys.stderr)
            return 2
        recs.update(_run(args, [sp for p in plans for sp in p.trials], results, runtime,
                         f"{args.budget}: {names}"))
        if args.report_only and not recs:
            print(f"{parser.prog}: error: no stored records under {results} for this budget and these "
                  "seeds; run without --report-only first", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are kept in {results}/<study>/trials; "
              "rerun the same command to continue", file=sys.stderr)
        return 130
    except runner.SchedulerError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # seaborn/matplotlib chatter about layouts
        for p in plans:
            if not any(sp.key in recs for sp in p.trials):
                continue
            v = report.write_study(p.study, p, recs, results, env)
            rep = v["replication"]
            print(f"{p.study.NAME:22s} {v['word']}" + (f"; replicated {rep['agree']}/{rep['of']}" if rep else "")
                  + f"  ->  {results / p.study.NAME / 'README.md'}")
        index = report.write_index(results)
    print(f"report: {index}  ({time.perf_counter() - t0:.0f} s)")
    _note_rewritten_report(args, plans)
    errors = {p.study.NAME: {sp.key for sp in p.tuning + p.trials if sp.key in recs and recs[sp.key].status == "error"}
              for p in plans}
    failed = {name: len(keys) for name, keys in errors.items() if keys}
    if failed:
        where = ", ".join(f"{results / name / 'errors.md'}" for name in failed)
        print(f"{parser.prog}: {sum(failed.values())} trials failed with an error: see {where}; "
              "the next run tries them again", file=sys.stderr)
        return 1
    return 0


def _note_rewritten_report(args, plans: list) -> None:
    """results/ holds the report built with each study's default seeds and --replicate; a run there
    with other seeds, or without --replicate, rewrites those pages: say so, and how to restore them."""
    if not getattr(args, "committed_report", False):
        return
    other = [p.study.NAME for p in plans
             if p.seeds != runner.default_seeds(p.study, args.budget) or not args.replicate]
    if other:
        seeds = f"seeds {args.seeds}" if args.seeds is not None else "the default seeds"
        print(f"note: {args.results}/ now reports {', '.join(other)} at {seeds}"
              f"{'' if args.replicate else ' without replication'}, not the committed report; "
              f"`python run_all.py --only {','.join(other)} --replicate` rebuilds that from the stored records "
              "(give other seeds their own --results DIR)", file=sys.stderr)


def _run(args, specs: list, results: Path, runtime: Runtime, desc: str) -> dict:
    """Train the specs not yet stored (or, with --report-only, only load the stored ones)."""
    if not specs:
        return {}
    if args.report_only:
        recs = {}
        for sp in specs:
            rec = runner.Store(results, sp.study).load(sp.key)
            if rec is not None:
                recs[sp.key] = rec
        return recs
    return runner.run(specs, results, runtime, jobs=args.jobs, executor=args.executor, scheduler=args.scheduler,
                      progress=not args.no_progress, desc=desc, recompute=args.stale)
