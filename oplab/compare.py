"""Compare two result folders part by part: `oplab compare A B` (also `run_all.py compare A B` and
`python -m oplab.compare A B`).

A and B are folders written by oplab (another seed block, another machine, another budget): each
holds `<study>/verdict.json`. For every study in either, every part's headline word and effect with
its interval are printed side by side as a Markdown table a user can paste, the parts whose word
differs flagged; parts or studies found in one folder only are listed as such. Reads verdict files
only (no records, no training). Exit status 0 after a comparison, whatever it finds; 2 for bad
input (a folder that is missing or holds no verdicts), with one line that says what to do.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from oplab import stats


class CompareError(Exception):
    """Bad input: printed as one line, exit status 2."""


def load(folder: Path) -> dict[str, dict]:
    """study -> its verdict.json, for a results folder; CompareError when there is none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CompareError(f"{folder} is not a folder; give two results folders (e.g. results "
                           "results/runs/seeds-10-14)")
    out = {}
    for f in sorted(folder.glob("*/verdict.json")):
        try:
            v = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(v, dict) and "parts" in v and "study" in v:
            out[v["study"]] = v
    if not out:
        raise CompareError(f"{folder} holds no study verdicts (<study>/verdict.json); run the studies into it first, "
                           "or rebuild its pages with --report-only")
    return out


def _cell(p: dict | None) -> tuple[str, str]:
    if p is None:
        return "—", "—"
    return p["word"], f"{p['effect']:.3g} {stats.interval_text(tuple(p['ci']))} (n={p.get('n', 0)})"


def rows(a: dict[str, dict], b: dict[str, dict]) -> list[dict]:
    """One row a (study, part) found in either folder."""
    out = []
    for study in sorted(set(a) | set(b)):
        pa = {p["part"]: p for p in a.get(study, {}).get("parts", [])}
        pb = {p["part"]: p for p in b.get(study, {}).get("parts", [])}
        names = list(pa) + [n for n in pb if n not in pa]
        for name in names:
            x, y = pa.get(name), pb.get(name)
            out.append({"study": study, "part": name, "a": x, "b": y,
                        "differs": x is None or y is None or x["word"] != y["word"]})
    return out


def table(a_name: str, b_name: str, a: dict[str, dict], b: dict[str, dict]) -> str:
    """The Markdown comparison: a header line, the counts, then one row a part."""
    rs = rows(a, b)
    both = [r for r in rs if r["a"] is not None and r["b"] is not None]
    differ = [r for r in both if r["differs"]]
    opposite = [r for r in both if {r["a"]["word"], r["b"]["word"]} == {"reproduced", "not reproduced"}]
    lines = [f"Comparing A = `{a_name}` with B = `{b_name}`: {len(both)} parts in both, {len(differ)} with a "
             f"different word ({len(opposite)} opposite decisive words); {len(rs) - len(both)} parts in one folder "
             "only.", "",
             "| study | part | A word | A effect [95% CI] | B word | B effect [95% CI] | differs |",
             "|---|---|---|---|---|---|---|"]
    for r in rs:
        aw, ae = _cell(r["a"])
        bw, be = _cell(r["b"])
        flag = "**yes**" if r["differs"] else ""
        if r["a"] is None or r["b"] is None:
            flag = "only in " + ("B" if r["a"] is None else "A")
        lines.append(f"| {r['study']} | {r['part']} | {aw} | {ae} | {bw} | {be} | {flag} |")
    budgets = {name: sorted({v.get("budget", "?") for v in d.values()}) for name, d in (("A", a), ("B", b))}
    lines += ["", f"Budgets: A {', '.join(budgets['A'])}; B {', '.join(budgets['B'])}. Seeds differ by study: see each "
              "folder's pages."]
    return "\n".join(lines)


def main(argv: list[str] | None = None, prog: str = "oplab compare") -> int:
    parser = argparse.ArgumentParser(prog=prog, allow_abbrev=False,
                                     description="Compare two oplab result folders part by part (words and effects "
                                                 "side by side, differing words flagged) as a Markdown table.")
    parser.add_argument("a", metavar="A", help="a results folder, e.g. results")
    parser.add_argument("b", metavar="B", help="another, e.g. results/runs/seeds-10-14 or results/long")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage line
        return 2 if exc.code else 0
    try:
        a, b = load(Path(args.a)), load(Path(args.b))
    except CompareError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    print(table(args.a, args.b, a, b))
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m oplab.compare"))
