"""The import structure of oplab: every module imports on its own, module-level imports
between oplab modules form no cycle, and nothing in oplab imports `studies`."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import oplab

OPLAB_DIR = Path(oplab.__file__).resolve().parent
REPO = OPLAB_DIR.parent
MODULES = ["oplab"] + sorted(m.name for m in pkgutil.walk_packages(oplab.__path__, "oplab."))


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)


# --- every module on its own, in a fresh interpreter


def test_the_module_list_is_complete():
    assert {"oplab.data", "oplab.dataset", "oplab.models", "oplab.tasks", "oplab.train"} <= set(MODULES)
    assert set(MODULES) == set(_module_files())


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_on_its_own(module):
    proc = _run(f"import {module}")
    assert proc.returncode == 0, f"`import {module}` failed in a fresh interpreter:\n{proc.stderr}"


@pytest.mark.parametrize("module", ["oplab.dataset", "oplab.data", "oplab.models", "oplab.registry"])
def test_any_import_registers_every_dataset(module):
    code = (f"import {module}\nfrom oplab.dataset import DATASETS\n"
            "names = {'mnist5k', 'mnist1d', 'mnist', 'temporal_order', 'adding', 'single_unit_target'}\n"
            "missing = names - set(DATASETS)\nassert not missing, missing\n")
    proc = _run(code)
    assert proc.returncode == 0, f"after `import {module}` not every dataset is registered:\n{proc.stderr}"


# --- the static graph of module-level imports


def _module_files() -> dict[str, Path]:
    """Module name -> file for every oplab/*.py (the package itself is `oplab`)."""
    return {("oplab" if p.stem == "__init__" else f"oplab.{p.stem}"): p for p in sorted(OPLAB_DIR.glob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(tree: ast.AST, module_level: bool) -> list[ast.Import | ast.ImportFrom]:
    """Import statements; module_level: those run when the module is imported (not inside a
    function or lambda, nor under `if TYPE_CHECKING:`; class bodies do run)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
            return
        if module_level and isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        if module_level and isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def imported_modules(source: str, name: str, local: set[str], module_level: bool = True) -> set[str]:
    """The local modules (names in `local`) that module `name` imports. `from pkg import x` counts
    as an import of pkg.x when that is a local module, else of pkg. Imports of the package
    `oplab` itself (its __init__) are left out."""
    package = name if name == "oplab" else name.rpartition(".")[0]
    out: set[str] = set()

    def add(target: str) -> None:  # target and its parent packages, as far as they are local
        parts = target.split(".")
        for i in range(1, len(parts) + 1):
            prefix = ".".join(parts[:i])
            if prefix in local and prefix != "oplab":
                out.add(prefix)

    for node in _import_nodes(ast.parse(source), module_level):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
            continue
        if node.level:  # relative: from . import x, from .x import y
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            full = ".".join(base + ([node.module] if node.module else []))
        else:
            full = node.module or ""
        add(full)
        for alias in node.names:
            if f"{full}.{alias.name}" in local:
                add(f"{full}.{alias.name}")
    return out


def import_graph(module_level: bool = True) -> dict[str, set[str]]:
    files = _module_files()
    local = set(files)
    return {name: imported_modules(path.read_text(), name, local, module_level) - {name}
            for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as [a, b, ..., a], or None when it has none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_find_cycle_on_hand_made_graphs():
    cyclic = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(cyclic) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"y"}, "y": {"z"}, "z": {"y"}}) == ["y", "z", "y"]
    assert find_cycle({"a": {"a"}}) == ["a", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set(), "d": {"a", "c"}}) is None
    assert find_cycle({}) is None


def test_imported_modules_on_hand_made_source():
    local = {"oplab", "oplab.a", "oplab.b", "oplab.c", "oplab.d", "oplab.e", "oplab.f", "oplab.g"}
    source = """
import os
import oplab
import oplab.a
from oplab import b, not_a_module
from oplab.c import thing
from . import d
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from oplab import g
class K:
    from oplab import e
def f():
    from oplab import f
"""
    assert imported_modules(source, "oplab.x", local) == {"oplab.a", "oplab.b", "oplab.c", "oplab.d", "oplab.e"}
    everything = imported_modules(source, "oplab.x", local, module_level=False)
    assert everything == {"oplab.a", "oplab.b", "oplab.c", "oplab.d", "oplab.e", "oplab.f", "oplab.g"}


def test_the_import_graph_reads_the_real_modules():
    graph = import_graph()
    assert {"oplab.data", "oplab.tasks"} <= graph["oplab"]
    assert "oplab.dataset" in graph["oplab.data"] and "oplab.dataset" in graph["oplab.tasks"]
    assert "oplab.models" in graph["oplab.tasks"]
    assert "oplab.models" in graph["oplab.train"] and "oplab.registry" in graph["oplab.models"]


def test_no_import_cycle_among_oplab_modules():
    cycle = find_cycle(import_graph())
    if cycle:
        print("import cycle:", " -> ".join(cycle))
    assert cycle is None, f"import cycle among oplab modules: {' -> '.join(cycle)}"


def test_layering_of_datasets_and_models():
    """data and tasks register into oplab.dataset without importing each other; models
    imports neither; dataset is a leaf (only oplab.registry, maybe oplab.config)."""
    graph = import_graph(module_level=False)  # function-level imports count here too
    assert "oplab.tasks" not in graph["oplab.data"] and "oplab.data" not in graph["oplab.tasks"]
    assert not {"oplab.tasks", "oplab.data"} & graph["oplab.models"]
    assert graph["oplab.dataset"] <= {"oplab.registry", "oplab.config"}


# --- oplab never imports the studies


def _imports_studies(source: str) -> list[str]:
    tree = ast.parse(source)
    names = []
    for node in _import_nodes(tree, module_level=False):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif node.level == 0 and node.module:
            names.append(node.module)
    for node in ast.walk(tree):  # importlib.import_module("studies...") / __import__("studies...")
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names.append(node.args[0].value)
    return [n for n in names if n == "studies" or n.startswith("studies.")]


def test_imports_studies_finds_them():
    source = "def f():\n    from studies import wn_vs_bn\nimport importlib\nimportlib.import_module('studies.x')\n"
    assert _imports_studies(source) == ["studies", "studies.x"]
    assert _imports_studies("import studiesque\nfrom oplab import studies_helper\n") == []


def test_oplab_does_not_import_studies():
    bad = {name: found for name, path in _module_files().items() if (found := _imports_studies(path.read_text()))}
    assert not bad, f"oplab modules import studies: {bad}"
