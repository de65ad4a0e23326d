"""oplab's own import graph, read from the source (ast): which oplab modules each module imports, at
module level or anywhere (inside functions too). Two things are computed from it rather than
listed by hand:

- the trial code (`trial_modules`): every module the training entry point (oplab.train, and the
  package's own registrations in oplab/__init__) can import; a change to one of these can move a
  trial's numbers, a change elsewhere cannot. oplab.staleness compares commits on these files.
- the layering (LAYERS, `layer_violations`): no module imports one of a higher layer.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

OPLAB_DIR = Path(__file__).resolve().parent
TRIAL_ENTRY = ("oplab", "oplab.train")

# lower layers never import higher ones (function-level imports included); see the README's architecture
LAYERS: dict[str, tuple[str, ...]] = {
    "foundations": ("registry", "config", "seeds", "schema", "records", "imports"),
    "components": ("dataset", "data", "tasks", "models", "norms", "init", "optim", "monitors", "layerstats",
                   "dynamics", "probes", "net2net", "pretrain", "distill", "curriculum", "growth", "averaging",
                   "secondorder", "hessianfree", "init_rnn", "critical", "recurrent", "labels", "saddles"),
    "trial": ("datatask", "streamtask", "train"),
    "planning and execution": ("plan", "store", "job", "pools", "runner"),
    "judging and reporting": ("stats", "kit", "estimate", "staleness", "plots", "forest", "report", "compare"),
    "the run": ("pipeline", "cli"),
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def module_files() -> dict[str, Path]:
    """Module name -> file for every oplab/*.py (the package itself is `oplab`)."""
    return {("oplab" if p.stem == "__init__" else f"oplab.{p.stem}"): p for p in sorted(OPLAB_DIR.glob("*.py"))}


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
    files = module_files()
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


def closure(graph: dict[str, set[str]], start) -> set[str]:
    """Every module reachable from `start` (included)."""
    seen, todo = set(), list(start)
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo += sorted(graph.get(m, ()))
    return seen


@functools.cache
def trial_modules() -> frozenset[str]:
    """The modules whose change can move a trial's numbers: everything the training entry point and the
    package's registrations import, at module level or inside functions."""
    return frozenset(closure(import_graph(module_level=False), TRIAL_ENTRY))


def trial_code_paths() -> tuple[str, ...]:
    """trial_modules as git pathspecs relative to the repository, with studies/ (arms and configs)."""
    return (*(f"oplab/{'__init__' if m == 'oplab' else m.split('.', 1)[1]}.py" for m in sorted(trial_modules())),
            "studies")


def layer_of(module: str) -> int | None:
    short = module.split(".", 1)[1] if "." in module else module
    for i, names in enumerate(LAYERS.values()):
        if short in names:
            return i
    return None


def layer_violations() -> list[str]:
    """Imports from a lower layer to a higher one (function-level imports count), and modules in no layer."""
    graph = import_graph(module_level=False)
    out = [f"{m} is in no layer of oplab.imports.LAYERS" for m in graph if m != "oplab" and layer_of(m) is None]
    for m, deps in graph.items():
        if m == "oplab" or layer_of(m) is None:
            continue
        out += [f"{m} (layer {layer_of(m)}) imports {d} (layer {layer_of(d)})" for d in sorted(deps)
                if layer_of(d) is not None and layer_of(d) > layer_of(m)]
    return out
