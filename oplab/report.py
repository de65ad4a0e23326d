"""The report: per-study tables, figures and verdicts, and results/README.md.

Everything here is built from stored records only: a dataframe of final
metrics (one row a trial), long dataframes of curves, and the study's own
`verdict`, `figures` and `tables` functions applied to them. Nothing here
trains, and nothing depends on the clock, so rebuilding from the same records
gives the same files.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from oplab import kit, plots, staleness, stats
from oplab.records import Record, atomic_write


def frame(specs: list, recs: dict[str, Record]) -> pd.DataFrame:
    """One row per (arm, seed, block): the arm's factors as plain columns, then final metrics,
    status and timings. The record's documented `extra` (e.g. the initializer's report) rides along."""
    rows = []
    for s in specs:
        rec = recs.get(s.key)
        if rec is None:
            continue
        row: dict[str, Any] = {"arm": s.arm, "seed": s.seed, "block": s.block, "budget": s.budget, "key": s.key}
        row.update(dict(s.factors))
        row.update({"status": rec.status, "diverged_step": rec.diverged_step})
        row.update(rec.final)
        row.update(rec.timings)
        row["extra"] = rec.extra
        rows.append(row)
    return pd.DataFrame(rows)


def curves(specs: list, recs: dict[str, Record]) -> dict[str, pd.DataFrame]:
    """Long dataframes of each curve table ("eval", "log", "monitor"), with arm, seed, block
    and the arm's factors."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for s in specs:
        rec = recs.get(s.key)
        if rec is None:
            continue
        for name, cols in rec.curves.items():
            n = len(cols.get("step", []))
            d = pd.DataFrame({k: v for k, v in cols.items() if len(v) == n})
            lead = {"arm": s.arm, "seed": s.seed, "block": s.block, **dict(s.factors)}
            for i, (k, v) in enumerate(lead.items()):
                d.insert(i, k, v)
            parts.setdefault(name, []).append(d)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}


def slug(text: str) -> str:
    """A file-name-safe form of a table's title."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "table"


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}" if x == x else "—"
    return cell(str(x))


def cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cell(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def _judge(study: ModuleType, df: pd.DataFrame, cv: dict, ctx: kit.Context):
    """The study's per-trial table (its `measure`, if any) and its verdict parts for one block."""
    t = study.measure(df, cv, ctx) if hasattr(study, "measure") else df
    return t, study.verdict(t, ctx)


def _block(df: pd.DataFrame, cv: dict[str, pd.DataFrame], block: str):
    if df.empty:
        return df, {}
    return df[df["block"] == block].reset_index(drop=True), {k: v[v["block"] == block] for k, v in cv.items()}


def write_study(study: ModuleType, plan, recs: dict[str, Record], results_dir: Path,
                env: dict | None = None) -> dict:
    """Write results/<study>/{table*.csv, table.md, *.png, verdict.json, README.md, section.md}
    from the plan's stored records; return the verdict dict. With `env` (oplab.staleness'
    current environment) the page says how many records come from another environment or code."""
    out = Path(results_dir) / study.NAME
    specs = plan.tuning + plan.trials
    used = {s.key: recs[s.key] for s in specs if s.key in recs}
    stale = staleness.stale_line(used.values(), env) if env is not None else ""
    inputs = inputs_digest(study, plan, specs, recs, stale)
    kept = _unchanged(out, inputs)
    if kept is not None:  # the same records, code and seeds as the page on disk: it stands as written
        return kept
    df_all = frame(specs, recs)
    cv_all = curves(specs, recs)
    tuning, _ = _block(df_all, {}, "tuning")
    if plan.tune is not None and len(tuning):
        tuning = kit.mark_chosen(tuning, plan.tune)
    setup = getattr(study, "SETUP", {}).get(plan.budget, {})

    def context(block: str, seeds: list[int]) -> kit.Context:
        return kit.Context(plan.budget, tuple(seeds), block, setup, tuning if plan.tune else None, plan.tune)

    ctx = context("verdict", plan.seeds)
    df, cv = _block(df_all, cv_all, "verdict")
    t, verdicts = _judge(study, df, cv, ctx)
    tables = study.tables(t, cv, ctx)
    plots.theme()  # the figures' style, whether or not the study draws through oplab.plots
    figures = study.figures(t, cv, ctx)
    replication = None
    if plan.replication:
        rdf, rcv = _block(df_all, cv_all, "replication")
        if len(rdf):
            _, rep = _judge(study, rdf, rcv, context("replication", plan.replication))
            replication = _replication(verdicts, rep, plan.replication)

    files: dict[str, bytes] = {}
    table_md = []
    for i, (name, tab) in enumerate(tables.items()):
        stem = "table" if i == 0 else f"table_{slug(name)}"
        files[f"{stem}.csv"] = tab.to_csv(index=False).encode()
        table_md.append((name, markdown_table(tab)))
    files["table.md"] = ("\n\n".join(f"### {n}\n\n{t}" for n, t in table_md) + "\n").encode()
    import matplotlib.pyplot as plt  # loaded already by the figures' theme; a current page (above) never needs it

    fig_files = []
    for name, fig in figures.items():
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        files[f"{name}.png"] = buf.getvalue()
        fig_files.append(f"{name}.png")

    unique = used.values()
    dates = sorted(r.provenance.get("date", "") for r in unique)
    verdict = {
        "study": study.NAME,
        "title": study.TITLE,
        "claim": study.CLAIM,
        "source": study.SOURCE,
        "budget": plan.budget,
        "seeds": list(plan.seeds),
        "word": stats.overall(verdicts),
        "parts": [v.to_dict() for v in verdicts],
        "replication": replication,
        "protocol": protocol(plan),
        "n_trials": len(used),
        "n_missing": len({s.key for s in specs} - set(recs)),
        "n_diverged": sum(r.status == "diverged" for r in unique),
        "n_errors": sum(r.status == "error" for r in unique),
        "stale": stale,
        "compute_s": round(sum(r.timings.get("wall_s", 0.0) for r in unique), 1),
        "figures": fig_files,
        "version": study.VERSION,
        "records_from": dates[0] if dates else "",
        "records_to": dates[-1] if dates else "",
        "provenance": _provenance_summary(unique),
        "inputs": inputs,
    }
    files["verdict.json"] = (json.dumps(verdict, indent=1, default=float) + "\n").encode()
    files["README.md"] = study_section(study, verdict, table_md, level=1).encode()
    # the same section one heading level down, with paths from results/, for results/README.md
    files["section.md"] = study_section(study, verdict, table_md, level=2, prefix=f"{study.NAME}/").encode()
    errors = [(s, recs[s.key]) for s in specs if s.key in recs and recs[s.key].status == "error"]
    if errors:
        files["errors.md"] = errors_page(study, errors).encode()
    for name, data in files.items():
        atomic_write(out / name, data)
    if not errors:
        (out / "errors.md").unlink(missing_ok=True)
    return verdict


# the code that turns records into a page: a change to any of it rebuilds every page
REPORT_CODE = ("report.py", "kit.py", "stats.py", "plots.py", "staleness.py")
REPORT_PACKAGES = ("matplotlib", "pandas", "numpy", "scipy", "seaborn")


def inputs_digest(study: ModuleType, plan, specs: list, recs: dict[str, Record], stale: str) -> str:
    """A digest of everything a study's page is computed from: its seed blocks, each used record
    (key, status, training date and wall time: a retrained record differs in the last two), the
    stale line, the study's source, the report code and the versions of the packages that draw
    and compute it."""
    from oplab.records import package_version

    here = Path(__file__).parent
    sources = [Path(study.__file__).read_bytes(), *((here / name).read_bytes() for name in REPORT_CODE)]
    parts = {
        "budget": plan.budget, "seeds": list(plan.seeds), "replication": list(plan.replication),
        "tuning_seeds": list(plan.tuning_seeds),
        "records": [(sp.key, sp.block, recs[sp.key].status, recs[sp.key].provenance.get("date", ""),
                     recs[sp.key].timings.get("wall_s")) for sp in specs if sp.key in recs],
        "missing": sorted({sp.key for sp in specs} - set(recs)),
        "stale": stale,
        "code": [hashlib.sha256(b).hexdigest() for b in sources],
        "packages": [package_version(name) for name in REPORT_PACKAGES],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _unchanged(out: Path, inputs: str) -> dict | None:
    """The stored verdict of a page built from these very inputs, with every file it wrote; else None."""
    try:
        verdict = json.loads((out / "verdict.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(verdict, dict) or verdict.get("inputs") != inputs:
        return None
    files = ["README.md", "section.md", "table.md", *verdict.get("figures", [])]
    if verdict.get("n_errors"):
        files.append("errors.md")
    return verdict if all((out / f).is_file() for f in files) else None


def errors_page(study: ModuleType, errors: list) -> str:
    """errors.md: every trial of the study that raised, with its exception and traceback."""
    seen, lines = set(), [f"# Trials that failed with an error: {study.NAME}", "",
                          "These trials raised an exception (a bug or a bad setting, not a divergence). The verdict "
                          "counts each as a failed trial by its part's rule; the next run trains them again.", ""]
    for spec, rec in errors:
        if spec.key in seen:
            continue
        seen.add(spec.key)
        e = rec.error or {}
        lines += [f"## {spec.arm}, seed {spec.seed} ({spec.block}; record `{spec.key}`)", "",
                  f"**{e.get('type', 'Error')}**: {e.get('message', '')}", ""]
        if e.get("traceback"):
            lines += ["```", e["traceback"].rstrip(), "```", ""]
    return "\n".join(lines)


def _seed_text(seeds: list[int]) -> str:
    if seeds and seeds == list(range(seeds[0], seeds[0] + len(seeds))) and len(seeds) > 2:
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))


def protocol(plan) -> str:
    """How the seeds were used, in one paragraph (written into the report)."""
    parts = []
    if plan.tune is not None:
        t = plan.tune
        parts.append(f"Tuning: `{t.factor}` chosen per ({', '.join(t.within)}) as the grid level with the lowest "
                     f"mean `{t.score}` (a training metric; a failed trial counts as +inf) on tuning seeds "
                     f"{_seed_text(plan.tuning_seeds)}, which decide no verdict; only the chosen arms are trained "
                     "on the verdict seeds.")
    parts.append(f"Verdict seeds: {_seed_text(plan.seeds)}.")
    if plan.replication:
        parts.append(f"Replication: the same verdict on seeds {_seed_text(plan.replication)} (verdict seeds + "
                     f"{kit.REPLICATION_OFFSET}).")
    parts.append(f"Intervals are 95%: Student t for means of per-seed values and paired differences, t on log "
                 f"ratios for ratios, Clopper-Pearson for rates, Newcombe's paired interval for paired rates; a "
                 f"part needs at least {stats.MIN_SEEDS} seeds for a decisive word. The study reads \"reproduced\" "
                 "only if every part does, which keeps its false-positive rate at a single part's (2.5%, one-sided) "
                 "without a multiple-comparison correction.")
    return " ".join(parts)


def _replication(main: list, rep: list, seeds: list[int]) -> dict:
    by_part = {v.part: v for v in rep}
    rows, agree = [], 0
    for v in main:
        r = by_part.get(v.part)
        same = r is not None and r.word == v.word
        agree += same
        rows.append({"part": v.part, "word": v.word, "replication_word": r.shown if r else "missing",
                     "effect": r.effect if r else float("nan"), "ci": list(r.ci) if r else [float("nan")] * 2,
                     "n": r.n if r else 0, "agree": bool(same)})
    return {"seeds": list(seeds), "word": stats.overall(rep), "parts": rows, "agree": agree, "of": len(main)}


def _provenance_summary(recs) -> dict:
    keys = ("oplab", "python", "torch", "numpy", "device", "git_commit", "torch_threads")
    summary: dict[str, list] = {}
    for r in recs:
        for k in keys:
            v = str(r.provenance.get(k, ""))
            if v not in summary.setdefault(k, []):
                summary[k].append(v)
    return summary


def _ci(p: dict) -> str:
    return f"{p['effect']:.3g} {stats.interval_text(tuple(p['ci']))} {p['unit']}"


def _replicated(v: dict) -> str:
    r = v.get("replication")
    return f"{r['agree']}/{r['of']} parts agree" if r else "not run"


def study_section(study: ModuleType, v: dict, table_md: list[tuple[str, str]], level: int = 2,
                  prefix: str = "") -> str:
    h = "#" * level
    rep = v.get("replication")
    lines = [f"{h} {v['title']} (`{v['study']}`)", "",
             f"**Claim.** {v['claim']}", "", f"**Source.** {v['source']}", "",
             f"**Verdict: {v['word']}** — budget `{v['budget']}`, seeds {_seed_text(v['seeds'])}, "
             f"{v['n_trials']} trials ({v['n_diverged']} diverged"
             + (f", **{v['n_errors']} failed with an error: [errors.md]({prefix}errors.md)**"
                if v.get("n_errors") else "")
             + f"), {v['compute_s']:.0f} s of compute. "
             f"**Replicated: {_replicated(v)}**" + (f" (seeds {_seed_text(rep['seeds'])}: {rep['word']})." if rep
                                                     else " (run with `--replicate`)."), ""]
    if v["n_missing"]:
        lines += [f"*{v['n_missing']} trials are missing from the store: rerun to complete.*", ""]
    if v.get("stale"):
        lines += [f"*{v['stale']}: `--recompute-stale` trains them again here.*", ""]
    reps = {r["part"]: r for r in rep["parts"]} if rep else {}
    lines += ["| part | tested claim | effect [95% CI] | rule | verdict | replication |", "|---|---|---|---|---|---|"]
    for p in v["parts"]:
        r = reps.get(p["part"])
        rtext = (f"{r['replication_word']}: {r['effect']:.3g} {stats.interval_text(tuple(r['ci']))} (n={r['n']})"
                 if r else "—")
        lines.append(f"| {cell(p['part'])} | {cell(p['claim'])} | {cell(_ci(p))} (n={p['n']}, {p['method']}) | "
                     f"{cell(p['rule'])} | **{p['shown']}** | {cell(rtext)} |")
    lines.append("")
    for p in v["parts"]:
        lines.append(f"- *{p['part']}*: {p['evidence']}")
    lines += ["", f"**Protocol.** {v['protocol']}", ""]
    setup = (study.__doc__ or "").strip()
    if setup:
        lines += [f"{h}# Setup", "", setup, ""]
    for fig in v["figures"]:
        lines += [f"![{fig}]({prefix}{fig})", ""]
    for name, t in table_md:
        lines += [f"{h}# {name}", "", t, ""]
    paper = getattr(study, "PAPER", "").strip()
    if paper:
        lines += [f"{h}# The paper's numbers beside ours", "", paper, ""]
    return "\n".join(lines)


def write_index(results_dir: Path, budget_note: str = "") -> Path:
    """results/README.md: the scorecard of every study with a verdict on disk, then its
    section; results/manifest.json: provenance of each study's records."""
    results_dir = Path(results_dir)
    verdicts, unreadable = [], []
    for f in sorted(results_dir.glob("*/verdict.json")):
        try:
            v = json.loads(f.read_text())
            if not isinstance(v, dict) or not {"study", "claim", "word", "seeds", "budget", "parts"} <= set(v):
                raise ValueError("fields are missing")
            verdicts.append(v)
        except (OSError, ValueError) as err:
            unreadable.append((f.parent.name, f"{type(err).__name__}: {err}"))
    lines = ["# oplab results", "",
             "Each verdict below is computed from the stored trial records in `<study>/trials/`; "
             "rebuild this page without training by `python run_all.py --report-only` (add `--replicate` to "
             "include the replication block). Effects are means over seeds with 95% intervals whose coverage "
             "holds at small n (Student t, t on log ratios, Clopper-Pearson, Newcombe); a part needs at least "
             f"{stats.MIN_SEEDS} seeds for a decisive word. \"Replicated\" counts the parts whose word is the "
             "same on a second, disjoint block of seeds.", ""]
    if budget_note:
        lines += [budget_note, ""]
    lines += ["## Scorecard", "",
              "| study | claim | source | verdict | replicated | seeds | budget | compute |",
              "|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        m = re.match(r"(.*?arXiv [\d.]+)", v["source"])  # "Authors year, Title, arXiv id"
        src = m.group(1) if m else v["source"][:80]
        lines.append(f"| [{v['study']}]({v['study']}/README.md) | {cell(v['claim'])} | {cell(src)} | **{v['word']}** | "
                     f"{_replicated(v)} | {len(v['seeds'])} | {v['budget']} | {v.get('compute_s', 0):.0f} s |")
    for name, err in unreadable:
        lines.append(f"| {name} | — | — | **unreadable verdict.json ({cell(err)}): rebuild with --report-only** "
                     "| — | — | — | — |")
    lines.append("")
    for v in verdicts:
        section = results_dir / v["study"] / "section.md"
        if section.exists():
            lines += [section.read_text(), ""]
    path = results_dir / "README.md"
    atomic_write(path, "\n".join(lines).encode())
    _update_project_readme(results_dir, verdicts, unreadable)
    manifest = {v["study"]: {k: v.get(k) for k in ("budget", "seeds", "version", "n_trials", "n_diverged",
                                                     "compute_s", "records_from", "records_to", "provenance")}
                for v in verdicts}
    atomic_write(results_dir / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    return path


START, END = "<!-- scorecard:start -->", "<!-- scorecard:end -->"


def _update_project_readme(results_dir: Path, verdicts: list[dict], unreadable: list = ()) -> None:
    """Refresh the scorecard between the markers of the README.md beside results/, if it has them."""
    readme = results_dir.resolve().parent / "README.md"
    if not readme.exists():
        return
    text = readme.read_text()
    if START not in text or END not in text:
        return
    rel = results_dir.name
    rows = ["| study | claim | verdict (parts) | replicated | seeds | budget |", "|---|---|---|---|---|---|"]
    for v in verdicts:
        parts = cell("; ".join(f"{p['part']}: {p.get('shown', p['word'])}" for p in v["parts"]))
        link = f"[{v['study']}]({rel}/{v['study']}/README.md)"
        rows.append(f"| {link} | {cell(v['claim'])} | **{v['word']}** ({parts}) | {_replicated(v)} | "
                    f"{len(v['seeds'])} | {v['budget']} |")
    for name, err in unreadable:
        rows.append(f"| {name} | — | **unreadable verdict.json ({cell(err)})** | — | — | — |")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write(readme, (head + START + "\n" + "\n".join(rows) + "\n" + END + tail).encode())
