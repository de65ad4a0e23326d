"""The report: per-study tables, figures and verdicts, and results/README.md.

Everything here is built from stored records only: a dataframe of final
metrics (one row a trial), long dataframes of curves, and the study's own
`verdict`, `figures` and `tables` functions applied to them. Nothing here
trains, and nothing depends on the clock, so rebuilding from the same records
gives the same files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from oplab import stats  # noqa: E402
from oplab.records import Record  # noqa: E402


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        elif not isinstance(v, list):
            out[f"{prefix}{k}"] = v
    return out


def frame(specs: list, recs: dict[str, Record]) -> pd.DataFrame:
    """One row per (arm, seed): final metrics, status, timings, flattened config."""
    rows = []
    for s in specs:
        rec = recs.get(s.key)
        if rec is None:
            continue
        row: dict[str, Any] = {"arm": s.arm, "seed": s.seed, "budget": s.budget, "key": s.key,
                               "status": rec.status, "diverged_step": rec.diverged_step}
        row.update(rec.final)
        row.update(rec.timings)
        row.update(_flat(rec.config, "cfg."))
        row["extra"] = rec.extra
        rows.append(row)
    return pd.DataFrame(rows)


def curves(specs: list, recs: dict[str, Record]) -> dict[str, pd.DataFrame]:
    """Long dataframes of each curve table ("eval", "log", "monitor"), with arm and seed."""
    parts: dict[str, list[pd.DataFrame]] = {}
    for s in specs:
        rec = recs.get(s.key)
        if rec is None:
            continue
        for name, cols in rec.curves.items():
            n = len(cols.get("step", []))
            cols = {k: v for k, v in cols.items() if len(v) == n}
            d = pd.DataFrame(cols)
            d.insert(0, "seed", s.seed)
            d.insert(0, "arm", s.arm)
            parts.setdefault(name, []).append(d)
    return {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}


def slug(text: str) -> str:
    """A file-name-safe form of a table's title."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "table"


def _fmt(x: Any) -> str:
    if isinstance(x, float):
        return f"{x:.4g}"
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


def write_study(study: ModuleType, specs: list, recs: dict[str, Record], results_dir: Path,
                budget: str, seeds: list[int]) -> dict:
    """Write results/<study>/{table.csv, table.md, *.png, verdict.json, README.md}; return the verdict dict."""
    out = Path(results_dir) / study.NAME
    out.mkdir(parents=True, exist_ok=True)
    df = frame(specs, recs)
    cv = curves(specs, recs)
    verdicts = study.verdict(df, cv)
    tables = study.tables(df, cv)
    figures = study.figures(df, cv)

    table_md = []
    for i, (name, t) in enumerate(tables.items()):
        stem = "table" if i == 0 else f"table_{slug(name)}"
        t.to_csv(out / f"{stem}.csv", index=False)
        table_md.append((name, markdown_table(t)))
    (out / "table.md").write_text("\n\n".join(f"### {n}\n\n{t}" for n, t in table_md) + "\n")

    fig_files = []
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        fig_files.append(f"{name}.png")

    recs_used = [recs[s.key] for s in specs if s.key in recs]
    unique = {r.key: r for r in recs_used}.values()
    dates = sorted(r.provenance.get("date", "") for r in unique)
    verdict = {
        "study": study.NAME,
        "title": study.TITLE,
        "claim": study.CLAIM,
        "source": study.SOURCE,
        "budget": budget,
        "seeds": list(seeds),
        "word": stats.overall(verdicts),
        "parts": [v.to_dict() for v in verdicts],
        "n_trials": len(unique),
        "n_missing": len({s.key for s in specs} - set(recs)),
        "n_diverged": sum(r.status == "diverged" for r in unique),
        "compute_s": round(sum(r.timings.get("wall_s", 0.0) for r in unique), 1),
        "figures": fig_files,
        "version": study.VERSION,
        "records_from": dates[0] if dates else "",
        "records_to": dates[-1] if dates else "",
        "provenance": _provenance_summary(unique),
    }
    (out / "verdict.json").write_text(json.dumps(verdict, indent=1, default=float) + "\n")
    (out / "README.md").write_text(study_section(study, verdict, table_md, level=1))
    # the same section one heading level down, with paths from results/, for results/README.md
    (out / "section.md").write_text(study_section(study, verdict, table_md, level=2, prefix=f"{study.NAME}/"))
    return verdict


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
    return f"{p['effect']:.3g} [{p['ci'][0]:.3g}, {p['ci'][1]:.3g}] {p['unit']}"


def study_section(study: ModuleType, v: dict, table_md: list[tuple[str, str]], level: int = 2,
                  prefix: str = "") -> str:
    h = "#" * level
    lines = [f"{h} {v['title']} (`{v['study']}`)", "",
             f"**Claim.** {v['claim']}", "", f"**Source.** {v['source']}", "",
             f"**Verdict: {v['word']}** — budget `{v['budget']}`, seeds {v['seeds']}, "
             f"{v['n_trials']} trials ({v['n_diverged']} diverged), {v['compute_s']:.0f} s of compute.", ""]
    if v["n_missing"]:
        lines += [f"*{v['n_missing']} trials are missing from the store: rerun to complete.*", ""]
    lines += ["| part | tested claim | effect [95% CI] | rule | verdict |", "|---|---|---|---|---|"]
    for p in v["parts"]:
        lines.append(f"| {cell(p['part'])} | {cell(p['claim'])} | {cell(_ci(p))} (n={p['n']}) | {cell(p['rule'])} | "
                     f"**{p['word']}** |")
    lines.append("")
    for p in v["parts"]:
        lines.append(f"- *{p['part']}*: {p['evidence']}")
    lines.append("")
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
    """results/README.md: the scorecard of every study with a verdict on disk, then links;
    results/manifest.json: provenance of each study's records."""
    results_dir = Path(results_dir)
    verdicts = []
    for f in sorted(results_dir.glob("*/verdict.json")):
        try:
            verdicts.append(json.loads(f.read_text()))
        except json.JSONDecodeError:
            continue
    lines = ["# oplab results", "",
             "Each verdict below is computed from the stored trial records in `<study>/trials/`; "
             "rebuild this page without training by `python run_all.py --report-only`. "
             "Effects are means over seeds with percentile-bootstrap 95% confidence intervals.", ""]
    if budget_note:
        lines += [budget_note, ""]
    lines += ["## Scorecard", "",
              "| study | claim | source | verdict | effect [95% CI] | seeds | budget | compute |",
              "|---|---|---|---|---|---|---|---|"]
    for v in verdicts:
        first = v["parts"][0] if v["parts"] else None
        eff = cell(f"{first['part']}: {_ci(first)}") if first else "—"
        m = re.match(r"(.*?arXiv [\d.]+)", v["source"])  # "Authors year, Title, arXiv id"
        src = m.group(1) if m else v["source"][:80]
        lines.append(f"| [{v['study']}]({v['study']}/README.md) | {cell(v['claim'])} | {cell(src)} | **{v['word']}** | "
                     f"{eff} | {len(v['seeds'])} | {v['budget']} | {v['compute_s']:.0f} s |")
    lines.append("")
    for v in verdicts:
        section = results_dir / v["study"] / "section.md"
        if section.exists():
            lines += [section.read_text(), ""]
    path = results_dir / "README.md"
    results_dir.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    _update_project_readme(results_dir, verdicts)
    manifest = {v["study"]: {k: v[k] for k in ("budget", "seeds", "version", "n_trials", "n_diverged",
                                                 "compute_s", "records_from", "records_to", "provenance")}
                for v in verdicts}
    (results_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return path


START, END = "<!-- scorecard:start -->", "<!-- scorecard:end -->"


def _update_project_readme(results_dir: Path, verdicts: list[dict]) -> None:
    """Refresh the scorecard between the markers of the README.md beside results/, if it has them."""
    readme = results_dir.resolve().parent / "README.md"
    if not readme.exists():
        return
    text = readme.read_text()
    if START not in text or END not in text:
        return
    rel = results_dir.name
    rows = ["| study | claim | verdict | seeds | budget |", "|---|---|---|---|---|"]
    for v in verdicts:
        parts = cell("; ".join(f"{p['part']}: {p['word']}" for p in v["parts"]))
        link = f"[{v['study']}]({rel}/{v['study']}/README.md)"
        rows.append(f"| {link} | {cell(v['claim'])} | **{v['word']}** ({parts}) | {len(v['seeds'])} | {v['budget']} |")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + START + "\n" + "\n".join(rows) + "\n" + END + tail)
