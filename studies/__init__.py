"""Studies: one claim (or one tight family of claims) a module.

A study module declares NAME, TITLE, CLAIM, SOURCE, PAPER (the paper's
numbers, as markdown), VERSION, SEEDS (verdict seeds per budget), SETUP (its
settings per budget, handed back as ctx.setup), arms(budget) -> {name:
kit.Arm(trial, factors)}, optionally TUNE (a kit.Tune) and measure(df, curves,
ctx) -> the per-trial table, then verdict(t, ctx) -> [Verdict], tables(t,
curves, ctx) -> {name: DataFrame} and figures(t, curves, ctx) -> {name:
Figure}; it ends with
`if __name__ == "__main__": sys.exit(cli.main([sys.modules[__name__]]))`.
See oplab.kit and README.md ("Adding a study").
Every module in this package that defines NAME is registered by all_studies().
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from oplab.registry import Registry

STUDIES = Registry("study")
_REQUIRED = ("NAME", "TITLE", "CLAIM", "SOURCE", "VERSION", "SEEDS", "SETUP", "arms", "verdict", "tables",
             "figures")


def _discover() -> None:
    if STUDIES.names():
        return
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if not hasattr(mod, "NAME"):
            continue
        missing = [a for a in _REQUIRED if not hasattr(mod, a)]
        if missing:
            raise TypeError(f"study module {mod.__name__} lacks {', '.join(missing)}")
        STUDIES.register(mod.NAME)(mod)


def all_studies() -> list[ModuleType]:
    """Every study module, sorted by name (imported on first call, so that
    `python -m studies.NAME` does not import its own module twice)."""
    _discover()
    return [STUDIES[n] for n in STUDIES.names()]


def get(name: str) -> ModuleType:
    _discover()
    return STUDIES[name]
