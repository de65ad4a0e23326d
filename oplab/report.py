"""The report: per-study tables, figures and verdicts, and results/README.md.

Everything here is built from stored records only: a dataframe of final
metrics (one row a trial), long dataframes of curves, and the study's own
`verdict`, `figures` and `tables` functions applied to them. Nothing here
trains, and nothing depends on the clock, so rebuilding from the same records
gives the same files.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd

from oplab import forest, imports, kit, plots, schema, staleness, stats
from oplab.records import Record, atomic_write


def frame(specs: list, recs: dict[str, Record], cost_of=None) -> pd.DataFrame:
    """One row per (arm, seed, block): the arm's factors as plain columns, then final metrics,
    status and timings. The record's documented `extra` (e.g. the initializer's report) rides along.
    With `cost_of` (trial -> {updates, flops, ...}, oplab.estimate.record_cost: counted from the
    trial's config, pre-training and hint stages included, a teacher's own training apart) each row
    carries its cost, which verdict parts compare."""
    rows = []
    for s in specs:
        rec = recs.get(s.key)
        if rec is None:
            continue
        row: dict[str, Any] = {"arm": s.arm, "seed": s.seed, "block": s.block, "budget": s.budget, "key": s.key}
        row.update(dict(s.factors))
        row.update({"status": rec.status, "diverged_step": rec.diverged_step})
        row.update(dict.fromkeys(schema.FINAL, float("nan")))  # every declared metric is a column (NaN: unmeasured)
        row.update(rec.final)
        row.update(rec.timings)
        if cost_of is not None:  # as cost_updates, cost_flops, cost_teacher_updates, ... (kit.COST_COLUMNS)
            row.update({f"cost_{k}": v for k, v in cost_of(s.trial).items()})
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


def _block(df: pd.DataFrame, cv: dict[str, pd.DataFrame], blocks: str | tuple[str, ...]):
    blocks = (blocks,) if isinstance(blocks, str) else blocks
    if df.empty:
        return df, {}
    return (df[df["block"].isin(blocks)].reset_index(drop=True),
            {k: v[v["block"].isin(blocks)] for k, v in cv.items()})


def _half(v: stats.Verdict | None) -> dict | None:
    if v is None:
        return None
    return {"word": v.word, "shown": v.shown, "effect": v.effect, "ci": list(v.ci), "n": v.n}


def headline(pooled: list, halves: dict[str, list]) -> list[dict]:
    """The headline parts (judged on the pooled seeds) as dicts, each with its halves' words and
    effects, the plug-in chance that the halves agree, and its reason (halves included)."""
    by_half = {name: {v.part: v for v in parts} for name, parts in halves.items()}
    out = []
    for v in pooled:
        d = v.to_dict()
        hs = {name: _half(parts.get(v.part)) for name, parts in by_half.items()}
        d["halves"] = hs
        if len(hs) == 2 and all(hs.values()):
            a, b = (h["n"] for h in hs.values())
            d["expected_agreement"] = stats.expected_agreement(d, a, b)
            words = {h["word"] for h in hs.values()}
            d["halves_agree"] = len(words) == 1
            d["halves_opposite"] = words == {"reproduced", "not reproduced"}
        d["reason"] = stats.reason(d, hs if len(hs) == 2 else None)
        out.append(d)
    return out


def tuning_bracket(tuning: pd.DataFrame, tune) -> list[dict]:
    """Per tuned group: the chosen level and whether the grid brackets it (a level on each side)."""
    if tune is None or tuning is None or tuning.empty or "chosen" not in tuning:
        return []
    rows = []
    for key, g in tuning.groupby(list(tune.within), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        levels = sorted(g[tune.factor].unique())
        chosen = g.loc[g["chosen"], tune.factor]
        if chosen.empty:
            continue
        c = chosen.iloc[0]
        where = ("a single level" if len(levels) == 1 else "inside the grid" if levels[0] < c < levels[-1]
                 else "at the low edge" if c == levels[0] else "at the high edge")
        rows.append({"group": dict(zip(tune.within, key)), "chosen": c, "levels": levels, "where": where})
    return rows


def write_study(study: ModuleType, plan, recs: dict[str, Record], results_dir: Path,
                env: dict | None = None, cost_of=None, unreadable: list[str] | None = None) -> dict:
    """Write results/<study>/{table*.csv, table.md, *.png, verdict.json, README.md, section.md}
    from the plan's stored records; return the verdict dict. The headline word of each part is
    judged on the verdict and replication seeds pooled (fixed before any data); each block's own
    word is shown beside it. With `env` (oplab.staleness' current environment) the page says how
    many records come from another environment or code; with `cost_of` (oplab.estimate.record_cost)
    each trial's cost enters the frame, so parts can say when arms differ in compute. With
    `unreadable` (the files of damaged records of this study) the page says so and gives no word:
    a verdict is never given on partial data."""
    out = Path(results_dir) / study.NAME
    specs = plan.tuning + plan.trials
    used = {s.key: recs[s.key] for s in specs if s.key in recs}
    stale = staleness.stale_line(used.values(), env) if env is not None else ""
    unreadable = sorted(unreadable or [])
    inputs = inputs_digest(study, plan, specs, recs, stale + "".join(f"|unreadable:{f}" for f in unreadable))
    kept = _unchanged(out, inputs)
    if kept is not None:  # the same records, code and seeds as the page on disk: it stands as written
        return kept
    df_all = frame(specs, recs, cost_of)
    cv_all = curves(specs, recs)
    tuning, _ = _block(df_all, {}, "tuning")
    if plan.tune is not None and len(tuning):
        tuning = kit.mark_chosen(tuning, plan.tune)
    setup = getattr(study, "SETUP", {}).get(plan.budget, {})

    def context(block: str, seeds: list[int]) -> kit.Context:
        return kit.Context(plan.budget, tuple(seeds), block, setup, tuning if plan.tune else None, plan.tune)

    blocks = ("verdict", "replication") if plan.replication else ("verdict",)
    seeds_all = list(plan.seeds) + list(plan.replication)
    df, cv = _block(df_all, cv_all, blocks)
    ctx = context("pooled" if plan.replication else "verdict", seeds_all)
    n_err = int((df["status"] == "error").sum()) if len(df) else 0
    unjudged = ""
    try:
        t, pooled = _judge(study, df, cv, ctx)
        halves: dict[str, list] = {}
        if plan.replication:
            for block, seeds in (("verdict", plan.seeds), ("replication", plan.replication)):
                bdf, bcv = _block(df_all, cv_all, block)
                halves[block] = _judge(study, bdf, bcv, context(block, seeds))[1] if len(bdf) else []
        parts = headline(pooled, halves)
        tables = study.tables(t, cv, ctx)
        plots.theme()  # the figures' style, whether or not the study draws through oplab.plots
        figures = study.figures(t, cv, ctx)
    except (KeyError, ValueError, TypeError, IndexError) as err:
        if not n_err:  # a study whose finished trials cannot be judged: a bug to see, not to hide
            raise
        # too many trials failed with an error for the study's measures to be computed: the page says so
        unjudged = (f"no part could be judged: {n_err} of {len(df)} trials failed with an error (errors.md), and the "
                    f"study's measures need their values ({type(err).__name__}: {str(err)[:120]})")
        parts, halves, tables, figures = [], {}, {}, {}
    replication = _replication(parts, halves, plan.seeds, plan.replication) if plan.replication and parts else None

    files: dict[str, bytes] = {}
    table_md = []
    for i, (name, tab) in enumerate(tables.items()):
        stem = "table" if i == 0 else f"table_{slug(name)}"
        files[f"{stem}.csv"] = tab.to_csv(index=False).encode()
        table_md.append((name, markdown_table(tab)))
    files["table.md"] = ("\n\n".join(f"### {n}\n\n{t}" for n, t in table_md) + "\n").encode()
    import matplotlib.pyplot as plt  # loaded already by the figures' theme; a current page (above) never needs it

    other = paired_verdict(results_dir, plan.budget, study.NAME)  # the other budget's report of this study, if any
    figures = {"forest": page_forest({"study": study.NAME, "budget": plan.budget, "parts": parts}, other), **figures}
    fig_files = []  # layout (overlapping text, a legend over the data) is checked by tests/test_figures_layout.py
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
        "pooled_seeds": seeds_all,
        "word": (f"incomplete ({len(unreadable)} records unreadable)" if unreadable
                 else f"inconclusive ({n_err} trials failed with an error)" if unjudged else stats.overall(parts)),
        "unjudged": unjudged,
        "unreadable": unreadable,
        "parts": parts,
        "replication": replication,
        "tuning": tuning_bracket(tuning, plan.tune),
        "protocol": protocol(plan),
        "n_trials": len(used),
        "n_missing": len({s.key for s in specs} - set(recs)),
        "n_diverged": sum(r.status == "diverged" for r in unique),
        "n_errors": sum(r.status == "error" for r in unique),
        "stale": stale,
        "compute_s": round(sum(r.timings.get("wall_s", 0.0) for r in unique), 1),
        "figures": fig_files,
        "long_setup": "long" in getattr(study, "SETUP", {}),  # else its long budget is its quick one ("= quick")
        "forest_other": parts_key(other),  # the other budget's parts its forest shows (write_index redraws on change)
        "version": study.VERSION,
        "records_from": dates[0] if dates else "",
        "records_to": dates[-1] if dates else "",
        "provenance": _provenance_summary(unique),
        "inputs": inputs,
    }
    files["verdict.json"] = (json.dumps(verdict, indent=1, default=_json_default) + "\n").encode()
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
    remove_unwritten(out, set(files))
    return verdict


PAGE_FILES = ("table*.csv", "*.png")  # what a page writes beside its records; anything else there is left alone


def remove_unwritten(out: Path, written: set[str]) -> list[str]:
    """Remove the tables and figures of an earlier page that this page no longer writes (a renamed
    table, a dropped figure), so a study's folder holds only what its page links."""
    gone = []
    for pattern in PAGE_FILES:
        for f in out.glob(pattern):
            if f.is_file() and f.name not in written:
                f.unlink()
                gone.append(f.name)
    return sorted(gone)


def _json_default(x):
    if hasattr(x, "item"):  # numpy scalars
        return x.item()
    return float(x)




@functools.cache
def _report_code() -> list[Path]:
    """The files of the code that turns records into a page (oplab.report and all it imports, found from
    the import graph): a change to any of it rebuilds every page."""
    graph = imports.import_graph(module_level=False)
    files = imports.module_files()
    return [files[m] for m in sorted(imports.closure(graph, ["oplab.report"]))]


REPORT_PACKAGES = ("matplotlib", "pandas", "numpy", "scipy", "seaborn")


def inputs_digest(study: ModuleType, plan, specs: list, recs: dict[str, Record], stale: str) -> str:
    """A digest of everything a study's page is computed from: its seed blocks, each used record
    (key, block, status and a digest of its whole content, oplab.records.digest: a retrained record,
    or one edited in place, differs), the keys of the missing (or unreadable) ones, the stale line,
    the study's source, the report code and the versions of the packages that draw and compute it."""
    from oplab.records import digest, package_version

    sources = [Path(study.__file__).read_bytes(), *(path.read_bytes() for path in _report_code())]
    parts = {
        "budget": plan.budget, "seeds": list(plan.seeds), "replication": list(plan.replication),
        "tuning_seeds": list(plan.tuning_seeds),
        "records": [(sp.key, sp.block, recs[sp.key].status, digest(recs[sp.key])) for sp in specs if sp.key in recs],
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
    """How the seeds were used and what each word means, in one paragraph (written into the report)."""
    parts = []
    if plan.tune is not None:
        t = plan.tune
        parts.append(f"Tuning: `{t.factor}` chosen per ({', '.join(t.within)}) as the grid level with the lowest "
                     f"mean `{t.score}` (a training metric; a failed trial counts as +inf) on tuning seeds "
                     f"{_seed_text(plan.tuning_seeds)}, which decide no verdict; only the chosen arms are trained "
                     "on the verdict seeds.")
    if plan.replication:
        parts.append(f"Headline: each part is judged once, on verdict seeds {_seed_text(plan.seeds)} and "
                     f"replication seeds {_seed_text(plan.replication)} pooled (both blocks fixed before any data, "
                     f"{len(plan.seeds) + len(plan.replication)} seeds); each block's own word is shown beside it "
                     "and does not enter the headline.")
    else:
        parts.append(f"Headline: each part is judged on seeds {_seed_text(plan.seeds)} (no replication block in "
                     "this run: `--replicate` adds it and pools both).")
    parts.append(f"Intervals are 95%: Student t for means of per-seed values and paired differences, t on logs "
                 f"for ratios and positive skewed quantities, Clopper-Pearson for rates, Newcombe's paired interval "
                 f"for paired rates, always one value per seed; a part needs at least {stats.MIN_SEEDS} seeds for a "
                 "decisive word. A superiority or non-inferiority part is reproduced when the interval lies wholly "
                 "beyond its threshold; an equivalence part when it lies wholly inside its band (two one-sided tests "
                 "at 2.5% each); each is not reproduced when the interval lies wholly on the other side (outside the "
                 "band). Each part's chance of a false \"reproduced\" is at most 2.5%, one look, no part extended. "
                 "A failed trial counts at the threshold or beyond it on the not-reproduced side. The study reads "
                 "\"reproduced\" only if every part does, which keeps its false-positive rate at a single part's "
                 "without a multiple-comparison correction.")
    return " ".join(parts)


def _replication(parts: list[dict], halves: dict[str, list], seeds: list[int], rep_seeds: list[int]) -> dict:
    """The two halves side by side: per part, each block's word, whether they agree, whether they
    give opposite decisive words, and the plug-in chance of agreement given the pooled estimate."""
    rep = {v.part: v for v in halves.get("replication", [])}
    rows, agree, opposite, expected = [], 0, 0, 0.0
    for d in parts:
        h = d.get("halves", {})
        vh, rh = h.get("verdict"), h.get("replication")
        r = rep.get(d["part"])
        same = bool(vh and rh and vh["word"] == rh["word"])
        agree += same
        opposite += bool(d.get("halves_opposite"))
        expected += d.get("expected_agreement") or 0.0
        rows.append({"part": d["part"], "word": vh["word"] if vh else "missing",
                     "replication_word": r.shown if r else "missing",
                     "effect": r.effect if r else float("nan"), "ci": list(r.ci) if r else [float("nan")] * 2,
                     "n": r.n if r else 0, "agree": same, "expected_agreement": d.get("expected_agreement")})
    return {"seeds": list(rep_seeds), "verdict_seeds": list(seeds),
            "word": stats.overall(halves.get("replication", [])),
            "verdict_word": stats.overall(halves.get("verdict", [])), "parts": rows, "agree": agree, "of": len(parts),
            "opposite": opposite, "expected_agree": round(expected, 2)}


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
    if not r:
        return "not run"
    text = f"{r['agree']}/{r['of']} parts agree"
    if r.get("opposite"):
        text += f", **{r['opposite']} opposite**"
    return text


KIND_SHORT = {"superiority": "superiority", "non-inferiority": "non-inferiority", "equivalence": "equivalence"}


def _kind(p: dict) -> str:
    test = p.get("test") or {}
    k = KIND_SHORT.get(test.get("kind", ""), "—")
    return k + (", log scale" if test.get("scale") == "log" else "")


def _half_text(h: dict | None) -> str:
    if not h:
        return "—"
    return f"{h['shown']}: {h['effect']:.3g} {stats.interval_text(tuple(h['ci']))} (n={h['n']})"


def _tuning_text(v: dict) -> str:
    rows = v.get("tuning") or []
    rows = [r for r in rows if r["where"] != "a single level"]  # a level fixed by the study: nothing tuned
    edge = [r for r in rows if r["where"] != "inside the grid"]
    if not rows:
        return ""
    if not edge:
        return f"Tuning: the chosen level lies inside its grid in all {len(rows)} tuned groups (optimum bracketed)."
    items = "; ".join(f"{', '.join(f'{k}={x}' for k, x in r['group'].items())}: {r['chosen']:g} {r['where']} of "
                      f"{', '.join(f'{lv:g}' for lv in r['levels'])}" if isinstance(r["chosen"], float | int)
                      else f"{r['group']}: {r['chosen']} {r['where']}" for r in edge)
    return (f"Tuning: the optimum is not bracketed in {len(edge)} of {len(rows)} tuned groups ({items}); a better "
            "level may lie beyond the grid.")


def study_section(study: ModuleType, v: dict, table_md: list[tuple[str, str]], level: int = 2,
                  prefix: str = "") -> str:
    h = "#" * level
    rep = v.get("replication")
    pooled = v.get("pooled_seeds", v["seeds"])
    lines = [f"{h} {v['title']} (`{v['study']}`)", "",
             f"**Claim.** {v['claim']}", "", f"**Source.** {v['source']}", "",
             f"**Verdict: {v['word']}** — budget `{v['budget']}`, headline on seeds {_seed_text(pooled)}"
             + (" (verdict and replication blocks pooled)" if rep else "")
             + f", {v['n_trials']} trials ({v['n_diverged']} diverged"
             + (f", **{v['n_errors']} failed with an error: [errors.md]({prefix}errors.md)**"
                if v.get("n_errors") else "")
             + f"), {v['compute_s']:.0f} s of compute. "
             + (f"**Halves: {_replicated(v)}** (verdict seeds {_seed_text(rep['verdict_seeds'])}: "
                f"{rep['verdict_word']}; replication seeds {_seed_text(rep['seeds'])}: {rep['word']}; about "
                f"{rep['expected_agree']:.1f} of {rep['of']} expected to agree given the pooled estimates)."
                if rep else "**Replication: not run** (run with `--replicate`)."), ""]
    if v["n_missing"]:
        lines += [f"*{v['n_missing']} trials are missing from the store: rerun to complete.*", ""]
    if v.get("unjudged"):
        lines += [f"**Inconclusive: {v['unjudged']}.** The next run retries the trials that failed.", ""]
    if v.get("unreadable"):
        lines += [f"**Incomplete: {len(v['unreadable'])} records unreadable** ({', '.join(v['unreadable'])}): no "
                  "word is given on partial data (the part words below are withheld); rerun without `--report-only` "
                  "to retrain them.", ""]
    if v.get("stale"):
        lines += [f"*{v['stale']}: `--recompute-stale` trains them again here.*", ""]
    if "forest.png" in v["figures"]:
        lines += [f"![every part of this study: its interval against its threshold]({prefix}forest.png)", "",
                  "*Each part's pooled 95% interval (thick) and each block's (thin), as distance from its threshold "
                  "in half-widths of the pooled interval: right of the line is the claimed side. Where the study's "
                  "report at the other budget (quick or long) exists, its intervals are drawn on the same lines, "
                  "each budget with its own marker.*", ""]
    lines += ["| part | test | tested claim | headline effect [95% CI] | headline | verdict seeds "
              "| replication seeds |",
              "|---|---|---|---|---|---|---|"]
    for p in v["parts"]:
        hs = p.get("halves") or {}
        lines.append(f"| {cell(p['part'])} | {_kind(p)} | {cell(p['claim'])} | {cell(_ci(p))} (n={p['n']}, "
                     f"{p['method']}) | **{'withheld' if v.get('unreadable') else p['shown']}** | "
                     f"{cell(_half_text(hs.get('verdict')))} | "
                     f"{cell(_half_text(hs.get('replication')))} |")
    lines.append("")
    for p in v["parts"]:
        why = f" **Why {p['word']}:** {p['reason']}." if p.get("reason") else ""
        lines.append(f"- *{p['part']}*: {p['evidence']}{why} Rule: {p['rule']}.")
    tuning = _tuning_text(v)
    lines += ["", f"**Protocol.** {v['protocol']}" + (f" {tuning}" if tuning else ""), ""]
    setup = (study.__doc__ or "").strip()
    if setup:
        lines += [f"{h}# Setup", "", setup, ""]
    for fig in v["figures"]:
        if fig != "forest.png":
            lines += [f"![{fig}]({prefix}{fig})", ""]
    for name, t in table_md:
        lines += [f"{h}# {name}", "", t, ""]
    paper = getattr(study, "PAPER", "").strip()
    if paper:
        lines += [f"{h}# The paper's numbers beside ours", "", paper, ""]
    return "\n".join(lines)


NOTES = ("the optimization chapter of Goodfellow, Bengio & Courville, *Deep Learning* (2016, ch. 8: \"the notes\") "
         "and the papers it cites")


def tally(verdicts: list[dict]) -> dict:
    """Counts of study words and part words at the headline, and how the halves agree."""
    study_words = {"reproduced": 0, "mixed": 0, "not reproduced": 0, "inconclusive": 0, "incomplete": 0}
    for v in verdicts:
        w = v["word"].split(" (")[0]
        study_words[w if w in study_words else "mixed"] += 1
    parts = [p for v in verdicts for p in v["parts"]]
    part_words = {w: sum(p["word"] == w for p in parts) for w in stats.WORDS}
    reps = [v["replication"] for v in verdicts if v.get("replication")]
    return {"studies": len(verdicts), "study_words": study_words, "parts": len(parts), "part_words": part_words,
            "halves_agree": sum(r["agree"] for r in reps), "halves_of": sum(r["of"] for r in reps),
            "opposite": sum(r.get("opposite", 0) for r in reps),
            "expected_agree": round(sum(r.get("expected_agree", 0.0) for r in reps), 1)}


def _tally_text(t: dict) -> str:
    sw = ", ".join(f"{n} {w}" for w, n in t["study_words"].items() if n)
    pw = ", ".join(f"{n} {w}" for w, n in t["part_words"].items())
    halves = (f" Each block of seeds alone gives the same word on {t['halves_agree']} of {t['halves_of']} parts "
              f"(about {t['expected_agree']:.1f} expected from the pooled estimates' power; "
              f"{t['opposite']} with opposite decisive words).") if t["halves_of"] else ""
    return f"**{t['studies']} studies: {sw}. {t['parts']} parts: {pw}.**{halves}"


def _forest_index(results_dir: Path, verdicts: list[dict], key: str) -> str:
    """results/forest.png, every part of every study; redrawn only when the parts' numbers change."""
    path = results_dir / "forest.png"
    mark = results_dir / ".forest_inputs"
    try:
        if path.is_file() and mark.read_text() == key:
            return path.name
    except OSError:
        pass
    import matplotlib.pyplot as plt

    fig = forest.draw(forest.rows(verdicts), "Every part of every study: its pooled 95% interval against its "
                                             "threshold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    atomic_write(path, buf.getvalue())
    atomic_write(mark, key.encode())
    return path.name


def write_index(results_dir: Path, budget_note: str = "", refresh_pair: bool = True) -> Path:
    """results/README.md, a page read in a minute: what the suite reproduces, the tally, one picture
    of every part, the scorecard (a line a study, linking its page), the protocol once;
    results/manifest.json: provenance of each study's records. A quick report and its long report
    (results/ and results/long/) are shown side by side: each scorecard has a column with the other
    budget's word, the forest plots draw both budgets, and (with `refresh_pair`) the other budget's
    index and page forests are rebuilt too, so neither shows the other out of date."""
    results_dir = Path(results_dir)
    verdicts, unreadable = read_verdicts(results_dir)
    pair = other_budget(results_dir, verdicts)
    if pair is not None:
        refresh_page_forests(results_dir, verdicts, pair[2])
    budgets = sorted({v["budget"] for v in verdicts})
    lines = ["# oplab results", "",
             f"oplab reproduces the claims of {NOTES} on training deep networks, with verdicts computed from stored "
             f"trial records (budget: {', '.join(budgets) or '—'}). Each study's page has its setup, tables, "
             "figures and the paper's numbers beside ours.", ""]
    if budget_note:
        lines += [budget_note, ""]
    if pair is not None:
        lines += [pair_note(results_dir, verdicts, pair), ""]
    if verdicts:
        lines += [_tally_text(tally(verdicts)), ""]
        drawn = verdicts + (list(pair[2].values()) if pair is not None else [])  # both budgets in one picture
        key = hashlib.sha256(json.dumps([(v["study"], v["budget"], [(p["part"], p["word"], p["effect"], p["ci"],
                                                                     p.get("halves")) for p in v["parts"]])
                                         for v in drawn], sort_keys=True, default=str).encode()).hexdigest()[:16]
        lines += [f"![every part of every study]({_forest_index(results_dir, drawn, key)})", "",
                  "*Every part, one line: its pooled 95% interval (thick) and each block's alone (thin), as distance "
                  "from its threshold (an equivalence part: from its band's nearer edge) in half-widths of the pooled "
                  "interval. Right of the line is the claimed side: a bar wholly right of it is reproduced, wholly "
                  "left is not reproduced." + (f" Each part's {pair[0]}-budget report is drawn on its line too, each "
                                               "budget with its own marker (legend), where it exists."
                                               if pair is not None else "") + "*", ""]
    extra = f" at {pair[0]} |" if pair is not None else ""
    lines += ["## Scorecard", "",
              "| study | claim | headline verdict |" + extra + " parts (reproduced / not / inconclusive) | halves "
              "agree | seeds (pooled) | compute |",
              "|---|---|---|" + ("---|" if pair is not None else "") + "---|---|---|---|"]
    for v in verdicts:
        words = [p["word"] for p in v["parts"]]
        counts = " / ".join(str(words.count(w)) for w in stats.WORDS)
        beside = f" {budget_word(v, pair, results_dir)} |" if pair is not None else ""
        lines.append(f"| [{v['study']}]({v['study']}/README.md) | {cell(v['title'])} | **{v['word']}** |{beside} "
                     f"{counts} | {_replicated(v)} | {len(v.get('pooled_seeds', v['seeds']))} | "
                     f"{v.get('compute_s', 0):.0f} s |")
    for name, err in unreadable:
        lines.append(f"| {name} | — | **unreadable verdict.json ({cell(err)}): rebuild with --report-only** "
                     "| — | — | — | —" + (" | —" if pair is not None else "") + " |")
    lines.append("")
    if verdicts:
        proto = verdicts[0]["protocol"]
        proto = proto[proto.find("Intervals are"):] if "Intervals are" in proto else proto
        lines += ["## Protocol", "",
                  "Each study tunes its settings (learning rates, per group of arms) on tuning seeds 1000, 1001, ... "
                  "that decide no verdict, then trains the chosen arms on its verdict seeds (0..n-1) and, with "
                  "`--replicate`, on its replication seeds (each verdict seed + 100). Each part's headline word is "
                  "judged once on both blocks pooled, fixed before any data; each block's own word is shown beside it "
                  "and does not enter the headline. " + proto, "",
                  "Each study's page gives its seeds, tuning grid and choices. Rebuild every page from the stored "
                  "records without training: `python run_all.py --report-only --replicate`.", ""]
        lines += ["## Study pages", ""]
        lines += [f"- [{v['title']}]({v['study']}/README.md) (`{v['study']}`): {v['word']}" for v in verdicts]
        lines.append("")
    path = results_dir / "README.md"
    atomic_write(path, "\n".join(lines).encode())
    _update_project_readme(results_dir, verdicts, unreadable, pair)
    manifest = {v["study"]: {k: v.get(k) for k in ("budget", "seeds", "version", "n_trials", "n_diverged",
                                                     "compute_s", "records_from", "records_to", "provenance")}
                for v in verdicts}
    atomic_write(results_dir / "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode())
    if refresh_pair and pair is not None and pair[2]:  # the other budget's index shows this one's words
        write_index(pair[1], refresh_pair=False)
    return path


START, END = "<!-- scorecard:start -->", "<!-- scorecard:end -->"


def _update_project_readme(results_dir: Path, verdicts: list[dict], unreadable: list = (), pair=None) -> None:
    """Refresh the scorecard between the markers of the README.md beside results/, if it has them."""
    readme = results_dir.resolve().parent / "README.md"
    if not readme.exists():
        return
    text = readme.read_text()
    if START not in text or END not in text:
        return
    rel = results_dir.name
    extra = f" at {pair[0]} |" if pair is not None else ""
    rows = ["| study | claim | headline verdict (parts) |" + extra + " halves | seeds (pooled) | budget |",
            "|---|---|---|" + ("---|" if pair is not None else "") + "---|---|---|"]
    for v in verdicts:
        parts = cell("; ".join(f"{p['part']}: {p.get('shown', p['word'])}" for p in v["parts"]))
        link = f"[{v['study']}]({rel}/{v['study']}/README.md)"
        beside = f" {budget_word(v, pair, readme.parent)} |" if pair is not None else ""
        rows.append(f"| {link} | {cell(v['claim'])} | **{v['word']}** ({parts}) |{beside} {_replicated(v)} | "
                    f"{len(v.get('pooled_seeds', v['seeds']))} | {v['budget']} |")
    for name, err in unreadable:
        rows.append(f"| {name} | — | **unreadable verdict.json ({cell(err)})** | — | — | —"
                    + (" | —" if pair is not None else "") + " |")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    atomic_write(readme, (head + START + "\n" + "\n".join(rows) + "\n" + END + tail).encode())


# --- the quick and the long budget side by side -----------------------------------------------------------

PAIRED = {"quick": "long", "long": "quick"}  # a budget -> the budget its report is shown beside
VERDICT_FIELDS = {"study", "claim", "word", "seeds", "budget", "parts"}


def read_verdicts(results_dir: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    """The study verdicts of a results folder (its <study>/verdict.json, sorted by study) and, apart, the
    unreadable ones as (study, reason)."""
    verdicts, unreadable = [], []
    for f in sorted(Path(results_dir).glob("*/verdict.json")):
        try:
            v = json.loads(f.read_text())
            if not isinstance(v, dict) or not VERDICT_FIELDS <= set(v):
                raise ValueError("fields are missing")
            verdicts.append(v)
        except (OSError, ValueError) as err:
            unreadable.append((f.parent.name, f"{type(err).__name__}: {err}"))
    return verdicts, unreadable


def paired_folder(results_dir: Path, budget: str) -> Path | None:
    """Where the other budget's report lies beside a report at `budget`: a quick report's long report in
    <folder>/long (the command line's default folders: results/ and results/long/), a long report's quick
    report in the folder above it when it is named long (so a long report elsewhere, --results DIR, is
    never paired with an unrelated folder's); None for the other budgets."""
    results_dir = Path(results_dir)
    if budget == "quick":
        return results_dir / "long"
    if budget == "long" and results_dir.resolve().name == "long":
        return results_dir.parent
    return None


def paired_verdict(results_dir: Path, budget: str, study: str) -> dict | None:
    """The other budget's verdict of one study (paired_folder), if its report exists and is readable."""
    folder = paired_folder(results_dir, budget)
    if folder is None:
        return None
    try:
        v = json.loads((folder / study / "verdict.json").read_text())
    except (OSError, ValueError):
        return None
    ok = isinstance(v, dict) and VERDICT_FIELDS <= set(v) and v["budget"] == PAIRED[budget]
    return v if ok else None


def other_budget(results_dir: Path, verdicts: list[dict]) -> tuple[str, Path, dict[str, dict]] | None:
    """For a folder holding one quick or one long report: the other budget's name, its folder and its
    verdicts by study (empty where none is there yet); None for other budgets or a mixed folder."""
    budgets = {v["budget"] for v in verdicts}
    if len(budgets) != 1 or next(iter(budgets)) not in PAIRED:
        return None
    (budget,) = budgets
    other, folder = PAIRED[budget], paired_folder(results_dir, budget)
    if folder is None:
        return None
    found = {v["study"]: v for v in read_verdicts(folder)[0] if v["budget"] == other} if folder.is_dir() else {}
    return other, folder, found


def budget_word(v: dict, pair: tuple[str, Path, dict[str, dict]], base: Path) -> str:
    """The scorecard cell beside study v's word: its word at the other budget, linked to that page (a path
    from `base`, the folder of the page the cell is in); "= quick" for a study that declares no long setup
    (no "long" in its SETUP: its long budget is its quick one); "not run" where that report does not exist."""
    other, folder, found = pair
    o = found.get(v["study"])
    if other == "long" and not v.get("long_setup", False):
        return "= quick"
    if o is None:
        return "not run"
    link = os.path.relpath(folder / v["study"] / "README.md", base).replace(os.sep, "/")
    return f"[{cell(o['word'])}]({link})"


def pair_note(results_dir: Path, verdicts: list[dict], pair: tuple[str, Path, dict[str, dict]]) -> str:
    """One line under an index's title: where the other budget's report is, and how many studies it has."""
    other, folder, found = pair
    link = os.path.relpath(folder / "README.md", results_dir).replace(os.sep, "/")
    if not found:
        return (f"The {other} budget's report ({link}) has not been built yet: the scorecard's \"at {other}\" column "
                "says so for every study.")
    here = {v["study"] for v in verdicts}
    n = len(here & set(found))
    return (f"Beside each study's word, its word at the {other} budget, linked to that page ({n} of "
            f"{len(verdicts)} studies have a {other} report; index: [{link}]({link})); the forest plot draws both "
            "budgets, so an effect's move with scale shows on its line.")


def parts_key(v: dict | None) -> str:
    """A digest of a verdict's parts as a forest plot draws them ('' for none)."""
    if not v:
        return ""
    drawn = [(p["part"], p["word"], p["effect"], p["ci"], p.get("halves"), p.get("test")) for p in v["parts"]]
    return hashlib.sha256(json.dumps([v.get("budget"), drawn], sort_keys=True, default=str).encode()).hexdigest()[:16]


def page_forest(v: dict, other: dict | None):
    """A study page's forest plot: its own parts and, where the study's report at the other budget exists,
    that budget's on the same lines."""
    drawn = [v] + ([other] if other else [])
    return forest.draw(forest.rows(drawn), f"{v['study']}: every part at a glance", label_study=False)


def refresh_page_forests(results_dir: Path, verdicts: list[dict], others: dict[str, dict]) -> list[str]:
    """Redraw the forest.png of each study page whose other-budget parts changed since it was drawn (its
    verdict's "forest_other"), and record the new ones in its verdict.json; the page's records, tables
    and other figures are untouched. Returns the studies redrawn."""
    import matplotlib.pyplot as plt

    redrawn = []
    for v in verdicts:
        other = others.get(v["study"])
        want = parts_key(other)
        if v.get("forest_other", "") == want or "forest.png" not in v.get("figures", []):
            continue
        out = Path(results_dir) / v["study"]
        fig = page_forest(v, other)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
        plt.close(fig)
        atomic_write(out / "forest.png", buf.getvalue())
        v["forest_other"] = want
        atomic_write(out / "verdict.json", (json.dumps(v, indent=1, default=_json_default) + "\n").encode())
        redrawn.append(v["study"])
    return redrawn
