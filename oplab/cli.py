"""The flags shared by run_all.py and every study's __main__.

Bad input is one line on stderr naming the valid choices, exit status 2, and
nothing written: flags are matched exactly (no abbreviations), and every arm and
every folder a run would write is checked before any training. Ctrl-C stops the run;
every finished trial is already on disk, and rerunning the same command continues
where it stopped. A trial that raises is stored as an error, listed in its study's
errors.md, and makes the command exit 1 after the reports are written; so does a
stored record that a --report-only run cannot read (it is named, never silently
dropped). One run at a time holds a results folder (a file lock); another waits for it.

The default folder at the quick budget, results/, holds the committed report (each
study's default seeds, with --replicate). A run there that would not reproduce it
(other --seeds, or no --replicate) writes to a folder of its own instead,
results/runs/<seeds-...|no-replication>/, seeded with (hard links to) the records
already stored in results/, and says so in one line; `--results results` writes
into results/ anyway.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import shutil
import sys
import warnings
from pathlib import Path
from types import ModuleType

from filelock import FileLock, Timeout

from oplab import pipeline, records, runner
from oplab import plan as planning
from oplab.train import Runtime

DEVICES = ("auto", "cpu", "cuda")
MAX_SEEDS = 1000  # seeds a command may ask for (each is a full set of trials)
MAX_SEED = 2**31 - 1
LOCK_NAME = records.LOCK_NAME
COMMITTED = Path("results")  # the default folder at the quick budget: the committed report
RUNS = "runs"  # results/runs/<name>/: runs at the default folder that would not reproduce the committed report
MAX_LISTED = 10  # damaged record files a line names before "and N more"


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)  # --seed is not --seeds

    def error(self, message: str):  # one line, not argparse's usage block
        if message.startswith("unrecognized arguments:"):
            flags = [o for a in self._actions for o in a.option_strings if o.startswith("--")]
            unknown = [t.split("=", 1)[0] for t in message.split(":", 1)[1].split() if t.startswith("--")]
            hints = {u: " or ".join(m) for u in unknown for m in [_closest(u, flags)] if m}
            if len(hints) == 1 and len(unknown) == 1:
                message += f" (did you mean {next(iter(hints.values()))}?)"
            elif hints:
                message += f" (did you mean {'; '.join(f'{m} for {u}' for u, m in hints.items())}?)"
        raise UsageError(message)


def _closest(flag: str, flags: list[str]) -> list[str]:
    """The valid flags a mistyped one most likely meant: those it begins (or that begin it), else the
    nearest by spelling."""
    prefix = [f for f in flags if f.startswith(flag) or flag.startswith(f)]
    return sorted(prefix, key=lambda f: (abs(len(f) - len(flag)), f))[:3] or difflib.get_close_matches(flag, flags, 1,
                                                                                                       0.75)


def parse_seeds(text: str) -> list[int] | int:
    """'5' -> 5 seeds (0..4); '10,11,12' -> those seeds; '10-14' -> 10..14."""
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        elif "-" in text.strip("-"):
            lo, hi = (int(x) for x in text.split("-"))
            if hi < lo:
                raise UsageError(f"argument --seeds: {text!r} is a reversed range; write it low to high: {hi}-{lo}")
            seeds = list(range(lo, hi + 1))
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
    p.add_argument("--budget", default="quick", choices=planning.BUDGETS,
                   help="smoke: seconds, for tests; quick (default): embedded data on a laptop CPU, the whole "
                        "suite in about 10 min on 2 cores; long: the claims that need scale in their papers' "
                        "regime (results/long/, tens of CPU-minutes; studies without one reuse quick); full: "
                        "the papers' scale, for a GPU or a cluster")
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
        names = list(dict.fromkeys(n.strip() for n in args.only.split(",") if n.strip()))  # each once
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
    args.notes = []  # printed once the input is known to be good
    cores = runner.default_jobs()
    if args.jobs > cores and args.executor == "local" and not (args.report_only or args.list or args.estimate):
        args.notes.append(f"note: --jobs {args.jobs} is more than the {cores} cores here; running {cores} workers "
                          "(more would only share the cores and run slower)")
        args.jobs = cores
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
    if args.estimate and args.report_only:
        raise UsageError("argument --estimate: not with --report-only, which trains nothing")
    if args.results is not None and not args.results.strip():
        raise UsageError("argument --results: empty; give a folder (default: results/ for the quick budget)")
    args.committed_report = args.results is None and args.budget == "quick"  # the report results/ holds
    args.results = args.results or (str(COMMITTED) if args.budget == "quick" else f"results/{args.budget}")
    args.seeded_from = None  # the committed folder a run of its own starts from (see _own_folder)
    if not args.list:
        _check_folder(Path(args.results))
    return selected, seeds, device


def _check_folder(results: Path) -> None:
    """A results folder that can be created (or is a folder) and written, and holds no other budget's
    report: UsageError if not."""
    parent = next((q for q in [results, *results.parents] if q.exists()), Path("."))
    if not parent.is_dir():
        raise UsageError(f"argument --results: {parent} is a file; give a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"argument --results: {parent} is not writable")


def _check_budget(results: Path, budget: str) -> None:
    other = _budgets_in(results) - {budget}
    if other:
        raise UsageError(f"argument --results: {results} holds the {', '.join(sorted(other))} report; write the "
                         f"{budget} budget to another folder (default: results/{budget})")


def _check_writable(results: Path, selected: list[ModuleType], report_only: bool) -> None:
    """Every folder the run would write into that exists already is a writable folder (checked before
    any training: a trained trial that cannot be stored is lost)."""
    folders = [results]
    for s in selected:
        folders.append(results / s.NAME)
        if not report_only:
            folders += [results / s.NAME / "trials", results / s.NAME / "weights"]
    for d in folders:
        if d.exists() and not d.is_dir():
            raise UsageError(f"argument --results: {d} is a file, where the run writes a folder")
        if d.exists() and not os.access(d, os.W_OK | os.X_OK):
            what = "records" if d.name in ("trials", "weights") else "reports"
            raise UsageError(f"argument --results: {d} is not writable, and the run writes its {what} there; "
                             "make it writable (chmod u+w) or give another --results")


def _has_records(results: Path, selected: list[ModuleType]) -> bool:
    return any(next((results / s.NAME / "trials").glob("*.json"), None) is not None for s in selected)


def seeds_slug(seeds: list[int]) -> str:
    """A folder-name form of a seed list: 10-14 for a run of consecutive seeds, 1_5_9 for a few others,
    first-last-Nseeds-<digest> for many."""
    if len(seeds) > 1 and seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    if len(seeds) <= 6:
        return "_".join(map(str, seeds))
    digest = hashlib.sha256(",".join(map(str, seeds)).encode()).hexdigest()[:6]
    return f"{seeds[0]}-{seeds[-1]}-{len(seeds)}seeds-{digest}"


def _own_folder(args, plans: list) -> Path | None:
    """results/runs/<name>/ for a run at the default folder that would not reproduce the committed
    report there (each study's default seeds, with --replicate); None for a run that would, or that
    names its --results."""
    if not args.committed_report:
        return None
    other_seeds = any(p.seeds != planning.default_seeds(p.study, args.budget) for p in plans)
    if not other_seeds and args.replicate:
        return None
    parts = ([f"seeds-{seeds_slug(plans[0].seeds)}"] if other_seeds else []) + ([] if args.replicate
                                                                               else ["no-replication"])
    return COMMITTED / RUNS / "-".join(parts)


def _seed_from(committed: Path, results: Path, selected: list[ModuleType]) -> int:
    """Hard-link (else copy) the records and teacher weights stored in the committed folder into a run's
    own folder, where it has none of that name: a trial's key names its config and seed, so they are the
    same trials. Returns how many files were added."""
    n = 0
    for s in selected:
        for sub, pattern in (("trials", "*.json"), ("weights", "*.pt")):
            files = sorted((committed / s.NAME / sub).glob(pattern))
            if not files:
                continue
            dest = results / s.NAME / sub
            dest.mkdir(parents=True, exist_ok=True)
            for f in files:
                target = dest / f.name
                if target.exists():
                    continue
                try:
                    os.link(f, target)
                except OSError:
                    try:
                        shutil.copyfile(f, target)
                    except OSError:
                        continue
                n += 1
    return n


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
    prog = prog or (Path(sys.argv[0]).name if len(all_studies) > 1 else f"python -m studies.{all_studies[0].NAME}")
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warnings(prog, warnings.showwarning)
        return _main(all_studies, argv, prog)


def _one_line_warnings(prog: str, show):
    """oplab's own warnings (an invalid record, a teacher's missing weights, a dead worker) as one line
    each on stderr, not Python's file:line and source; others as usual."""
    here = str(Path(__file__).resolve().parent) + os.sep

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning) and str(Path(filename).resolve()).startswith(here):
            print(f"{prog}: warning: {message}", file=file or sys.stderr)
        else:
            show(message, category, filename, lineno, file, line)

    return showwarning


def _main(all_studies: list[ModuleType], argv: list[str] | None, prog: str) -> int:
    studies = {s.NAME: s for s in all_studies}
    parser = build_parser(prog, list(studies))
    try:
        args = parser.parse_args(argv)
        selected, args.seeds_arg, device = _resolve(args, studies)
        if args.list:
            try:
                for s in selected:
                    print(f"{s.NAME:22s} {s.CLAIM}")
            except BrokenPipeError:  # e.g. piped into `head`
                sys.stderr.close()
            return 0
        same = [s for s in selected if not planning.has_budget(s, args.budget)]
        if same:  # long = quick for a study whose claim does not need scale: its quick report stands
            print(f"{parser.prog}: {', '.join(s.NAME for s in same)}: {args.budget} = quick (no {args.budget} "
                  f"setup: the claim does not need scale); the quick report is in {COMMITTED}/", file=sys.stderr)
            selected = [s for s in selected if s not in same]
            if not selected:
                return 0
        for s in selected:
            try:
                planning.check_arms(s, args.budget)
            except ValueError as err:
                raise UsageError(f"bad arm: {err}") from None
        plans = []
        for s in selected:
            seeds = _seed_list(args.seeds_arg) or planning.default_seeds(s, args.budget)
            try:
                plans.append(planning.plan(s, args.budget, seeds, replicate=args.replicate))
            except ValueError as err:
                raise UsageError(f"argument --seeds: {err}") from None
        if args.estimate:
            return _estimate(plans, args)
        own = _own_folder(args, plans)
        if own is not None:  # the committed report stays as it is; this run gets a folder of its own
            args.seeded_from, args.results = COMMITTED, str(own)
            _check_folder(own)
        results = Path(args.results)
        _check_budget(results, args.budget)
        _check_writable(results, selected, args.report_only)
        if args.report_only and not _has_records(args.seeded_from or results, selected):
            raise UsageError(f"no stored records under {args.seeded_from or results} for "
                             f"{', '.join(s.NAME for s in selected)}; run without --report-only first")
        if not args.report_only and args.executor != "dask":  # Dask workers check their own data
            from oplab import data

            # every arm's data: the verdict trials are only known after tuning, and come from these arms
            names = {a.trial.data.name for p in plans for a in planning.arms_of(p.study, args.budget).values()}
            for name in sorted(names):
                try:
                    data.check_available(name, args.data_dir, args.download)
                except data.DataMissingError as err:
                    raise UsageError(str(err)) from None
    except UsageError as err:
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 2

    for note in args.notes:
        print(f"{parser.prog}: {note}", file=sys.stderr)
    if args.seeded_from is not None:
        why = " and ".join(([f"seeds {args.seeds}"] if any(
            p.seeds != planning.default_seeds(p.study, args.budget) for p in plans) else [])
            + ([] if args.replicate else ["no --replicate"]))
        print(f"{parser.prog}: note: with {why} this run is not the committed report in {COMMITTED}/, so it writes "
              f"to {results}/ (starting from the records stored in {COMMITTED}/); `--results {COMMITTED}` would "
              "rewrite the committed pages", file=sys.stderr)
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
        if args.seeded_from is not None:
            _seed_from(args.seeded_from, results, [p.study for p in plans])
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
    cpu = estimate.CpuTime()
    for p in plans:
        cpu = cpu + estimate.cpu_time(p.study, args.budget, args.results, p.seeds, args.replicate)
    jobs = max(1, min(args.jobs, os.cpu_count() or 1))
    print(f"{'CPU':22s} {cpu.text()}"
          + (f"; about {cpu.seconds / 60 / jobs:,.1f} min with --jobs {jobs}" if cpu.measured or cpu.scaled else ""))
    print(f"({args.budget} budget{', with replication' if args.replicate else ''}; {estimate.ASSUMPTIONS}; CPU time "
          f"from the records stored under {args.results})")
    return 0


def _main_locked(args, parser, plans: list, results: Path, runtime: Runtime) -> int:
    """The run itself (oplab.pipeline), with its lines: a study's word as its page is written, then the
    trained / reused / failed counts; exit status 1 when a trial raised or a record was unreadable."""
    def said(name: str, v: dict, page: Path) -> None:
        rep = v["replication"]
        print(f"{name:22s} {v['word']}" + (f"; halves agree {rep['agree']}/{rep['of']}" if rep else "")
              + f"  ->  {page}")

    try:
        out = pipeline.run([p.study for p in plans], args.budget, results, seeds=_seed_list(args.seeds_arg),
                           replicate=args.replicate, runtime=runtime, jobs=args.jobs, executor=args.executor,
                           scheduler=args.scheduler, report_only=args.report_only,
                           recompute_stale=args.recompute_stale, progress=not args.no_progress, on_study=said)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished trials are kept in {results}/<study>/trials; "
              "rerun the same command to continue", file=sys.stderr)
        return 130
    except (runner.SchedulerError, pipeline.NothingStored) as err:
        hint = "; run without --report-only first" if isinstance(err, pipeline.NothingStored) else ""
        print(f"{parser.prog}: error: {err}{hint}", file=sys.stderr)
        return 2
    if out.index is None:  # a report-only run that found only unreadable records
        return _say_unreadable(parser.prog, out.unreadable, results)
    n_failed = sum(out.errors.values())
    print(f"{out.trained + out.reused} trials: {out.trained} trained in this run, {out.reused} reused from the "
          f"store, {n_failed} failed with an error; report: {out.index}  ({out.seconds:.0f} s)")
    code = _say_unreadable(parser.prog, out.unreadable, results) if out.unreadable else 0
    if out.errors:
        where = ", ".join(f"{results / name / 'errors.md'}" for name in out.errors)
        print(f"{parser.prog}: {n_failed} trials failed with an error: see {where}; "
              "the next run tries them again", file=sys.stderr)
        return 1
    return code


def _seed_list(seeds_arg) -> list[int] | None:
    """--seeds as a list of verdict seeds (N: 0..N-1), or None for each study's own."""
    if isinstance(seeds_arg, int):
        return list(range(seeds_arg)) if seeds_arg else None
    return seeds_arg or None


def _say_unreadable(prog: str, unreadable: dict[str, list[str]], results: Path) -> int:
    """One line a study naming the record files a --report-only run could not read; exit status 1."""
    for study, files in sorted(unreadable.items()):
        files = sorted(set(files))
        shown = ", ".join(files[:MAX_LISTED]) + (f" and {len(files) - MAX_LISTED} more" if len(files) > MAX_LISTED
                                                 else "")
        print(f"{prog}: {len(files)} records unreadable in {results / study / 'trials'}: {shown}; rerun without "
              "--report-only to retrain them", file=sys.stderr)
    return 1
