"""Every third-party package that oplab/ and studies/ import (at module level or inside a
function) is declared in pyproject.toml: a dependency that only arrives through another package
(as scipy once did, through mlxtend) breaks when that package drops it."""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
OWN = {"oplab", "studies", "run_all", "tests"}


def imported_top_levels(folder: Path) -> dict[str, str]:
    """Top-level module name -> the first file that imports it, for every import in the folder."""
    found: dict[str, str] = {}
    for f in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for n in names:
                found.setdefault(n.split(".")[0], str(f.relative_to(REPO)))
    return found


def declared() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].strip().lower().replace("_", "-") for r in reqs}


def test_every_third_party_import_is_declared():
    dist_of = md.packages_distributions()
    deps = declared()
    missing = []
    for folder in ("oplab", "studies"):
        for module, where in imported_top_levels(REPO / folder).items():
            if module in OWN or module in sys.stdlib_module_names or module == "__future__":
                continue
            dists = {d.lower().replace("_", "-") for d in dist_of.get(module, [module])}
            if not dists & deps:
                missing.append(f"{module} (from {where}; distribution {', '.join(sorted(dists))})")
    assert not missing, "imported but not declared in pyproject.toml: " + "; ".join(missing)


def test_the_check_would_see_an_undeclared_import(tmp_path):
    (tmp_path / "m.py").write_text("import numpy\nfrom scipy import stats\n\ndef f():\n    import yaml\n")
    assert set(imported_top_levels_in(tmp_path)) == {"numpy", "scipy", "yaml"}


def imported_top_levels_in(folder: Path) -> dict[str, str]:
    global REPO
    saved, REPO = REPO, folder
    try:
        return imported_top_levels(folder)
    finally:
        REPO = saved
