"""One picture of every part: a forest plot on a scale where "reproduced" is always on one side of
one line.

Each part's effect and 95% interval are placed by their distance from the part's threshold (for an
equivalence part, from the nearer edge of its band), claimed side positive, in units of the pooled
interval's half-width (on the log scale for log-scale parts). The pooled interval then runs from
`center - 1` to `center + 1`, so a part is reproduced exactly when its bar lies right of 0, and
not reproduced when it lies wholly left of 0 (for equivalence: outside the band). Each block's
own interval (verdict seeds, replication seeds) is drawn beside it in the same units, so a wider
block interval shows as a longer bar. Values beyond +-LIMIT are drawn at the limit with an arrow.
Reads verdict dicts only (report layer)."""

from __future__ import annotations

import numpy as np

from oplab import plots, stats

WORD_COLORS = plots.WORD_COLORS  # the words' colours, the same in every figure
LIMIT = 8.0  # half-widths shown either side of the line


def _signed(test: dict, x: float) -> float:
    """Distance of x from the threshold (the band's nearer edge), the reproduced side positive."""
    side = test.get("side")
    if side == "above":
        return float(x - stats.analysis(test, test["above"]))
    if side == "below":
        return float(stats.analysis(test, test["below"]) - x)
    lo, hi = (float(v) for v in stats.analysis(test, test["within"]))
    return float(min(x - lo, hi - x))


def normalized(part: dict, interval: dict | None = None) -> tuple[float, float, float] | None:
    """(center, low, high) of `interval` (default: the part's own) in half-widths of the part's
    pooled interval, the reproduced side positive; None without a finite interval."""
    test = part.get("test") or {}
    if not test:
        return None
    lo, hi = stats.analysis(test, part["ci"])
    w = (hi - lo) / 2
    src = interval or part
    e, (a, b) = stats.analysis(test, src["effect"]), stats.analysis(test, src["ci"])
    if not all(np.isfinite(v) for v in (w, e, a, b)) or w <= 0:
        return None
    if test.get("side") == "within":  # inside the band is positive; the bar's ends from the effect's distance
        c = _signed(test, float(e)) / w
        half = (b - a) / 2 / w
        return c, c - half, c + half
    ends = sorted([_signed(test, float(a)) / w, _signed(test, float(b)) / w])
    return _signed(test, float(e)) / w, ends[0], ends[1]


def rows(verdicts: list[dict]) -> list[dict]:
    """One row a part: its label, word and normalized intervals (pooled and each block)."""
    out = []
    for v in verdicts:
        for p in v.get("parts", []):
            pooled = normalized(p)
            halves = {k: normalized(p, h) for k, h in (p.get("halves") or {}).items() if h}
            out.append({"study": v.get("study", ""), "part": p["part"], "word": p["word"], "pooled": pooled,
                        "halves": halves, "budget": v.get("budget", "")})
    return out


BUDGET_ORDER = ("smoke", "quick", "long", "full")
BUDGET_MARKERS = {"smoke": "v", "quick": "o", "long": "s", "full": "D"}


def _budget_rank(budget: str) -> int:
    return BUDGET_ORDER.index(budget) if budget in BUDGET_ORDER else len(BUDGET_ORDER)


def draw(data: list[dict], title: str, label_study: bool = True):
    """The forest plot of `rows(...)`: a figure, one line a part, top to bottom. Rows of the same part at
    several budgets (rows(...) of a quick and a long report) share its line, each budget offset on it
    (the smaller budget above) with its own marker, so a reader sees how the effect moves with scale."""
    import matplotlib.pyplot as plt

    plots.theme()
    keys: dict[tuple, dict[str, dict]] = {}  # (study, part) -> budget -> row, in order of first appearance
    for r in data:
        keys.setdefault((r["study"], r["part"]), {})[r.get("budget", "")] = r
    budgets = sorted({r.get("budget", "") for r in data}, key=_budget_rank)
    several = len(budgets) > 1
    n = max(1, len(keys))
    fig, ax = plt.subplots(figsize=(9.0, 1.5 + (0.5 if several else 0.32) * n))
    ys = np.arange(n)[::-1]
    step = 0.4 / (len(budgets) - 1) if several else 0.0  # offsets of the budgets on a part's line
    for y, by_budget in zip(ys, keys.values()):
        for b, budget in enumerate(budgets):
            r = by_budget.get(budget)
            if r is None:
                continue
            yb = y + (0.2 - b * step if several else 0.0)
            color = WORD_COLORS.get(r["word"], "0.5")
            if r["pooled"] is None:
                ax.text(0, yb, "no interval" + (f" ({budget})" if several else ""), ha="center", va="center",
                        fontsize="x-small", color="0.4")
                continue
            c, lo, hi = (float(np.clip(v, -LIMIT, LIMIT)) for v in r["pooled"])
            ax.plot([lo, hi], [yb, yb], color=color, lw=2.5, solid_capstyle="butt")
            ax.plot([c], [yb], BUDGET_MARKERS.get(budget, "o") if several else "o", color=color,
                    ms=6 if several else 5, mec="k" if several else color, mew=0.6 if several else 1.0)
            for name, h in sorted(r["halves"].items()):
                if h is None:
                    continue
                hc, hlo, hhi = (float(np.clip(v, -LIMIT, LIMIT)) for v in h)
                dy = (-1 if name == "verdict" else 1) * (0.09 if several else 0.22)
                ax.plot([hlo, hhi], [yb + dy, yb + dy], color=color, lw=0.9, alpha=0.7)
                ax.plot([hc], [yb + dy], "|", color=color, ms=4 if several else 5, alpha=0.9)
            for end in (r["pooled"][1], r["pooled"][2]):
                if abs(end) > LIMIT:
                    ax.annotate("", xy=(np.sign(end) * (LIMIT + 0.4), yb), xytext=(np.sign(end) * LIMIT, yb),
                                arrowprops={"arrowstyle": "->", "color": color, "lw": 1})
    ax.axvline(0, color="0.2", lw=1)
    labels = [f"{study}: {part}" if label_study else part for study, part in keys]
    ax.set_yticks(ys)
    ax.set_yticklabels([lab if len(lab) <= 60 else lab[:57] + "..." for lab in labels], fontsize="x-small")
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_xlim(-LIMIT - 0.6, LIMIT + 0.6)
    ax.set_xlabel("distance from the part's threshold (equivalence: from the band's nearer edge), in half-widths "
                  "of its pooled 95% interval; right of 0 = the claimed side", fontsize="small")
    ax.set_title(title, fontsize="medium")
    handles = [plt.Line2D([], [], color=c, lw=2.5, label=w) for w, c in WORD_COLORS.items()]
    if several:
        handles += [plt.Line2D([], [], color="0.4", lw=2.5, marker=BUDGET_MARKERS.get(b, "o"), mec="k", mew=0.6,
                               label=f"{b} budget" + (" (upper)" if i == 0 else " (lower)" if i == len(budgets) - 1
                                                      else ""))
                    for i, b in enumerate(budgets)]
    handles.append(plt.Line2D([], [], color="0.4", lw=0.9, label="each block alone (thin: verdict below, "
                                                                   "replication above)"))
    ax.legend(handles=handles, fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig
