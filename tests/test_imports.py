"""The import structure of oplab: every module imports on its own, module-level imports
between oplab modules form no cycle, and nothing in oplab imports `studies`."""

from __future__ import annotations

import ast
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import oplab
from oplab import imports
from oplab.imports import _import_nodes, find_cycle, import_graph, imported_modules, module_files

OPLAB_DIR = Path(oplab.__file__).resolve().parent
REPO = OPLAB_DIR.parent
MODULES = ["oplab"] + sorted(m.name for m in pkgutil.walk_packages(oplab.__path__, "oplab."))


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


# --- every module on its own, in a fresh interpreter

# One parent interpreter imports the slow third-party libraries once (torch and numpy, which
# `import oplab` loads before any module of it anyway, pandas and scipy), checks that none of oplab,
# studies or matplotlib came with them, then forks a child for each module named on its command line
# (as many at once as there are cores). A child holds no oplab module: it imports its one module as a
# fresh interpreter would, with its stderr in a file of its own, and leaves with os._exit (1 after a
# traceback). The parent prints {"checked": [...], "failed": {module: stderr}} as JSON.
FORK_EACH = r"""
import importlib, json, os, sys, tempfile, traceback
import numpy, pandas, scipy, torch
early = sorted(m for m in sys.modules if m.partition(".")[0] in ("oplab", "studies", "matplotlib"))
if early:
    sys.exit(f"the parent already holds {early}: its children would not import them fresh")
todo, running, checked, failed = list(sys.argv[1:]), {}, [], {}
errs = tempfile.mkdtemp(prefix="oplab-imports-")
while todo or running:
    while todo and len(running) < (os.cpu_count() or 1):
        module = todo.pop(0)
        err = os.path.join(errs, module)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 2)
            sys.stderr = os.fdopen(2, "w")
            try:
                importlib.import_module(module)
                status = 0
            except BaseException:
                traceback.print_exc()
                status = 1
            sys.stderr.flush()
            os._exit(status)
        running[pid] = module
    pid, wait_status = os.wait()
    module = running.pop(pid)
    checked.append(module)
    code = os.waitstatus_to_exitcode(wait_status)
    with open(os.path.join(errs, module)) as f:
        text = f.read()
    if code != 0:
        failed[module] = text + f" (exit status {code})"
    os.remove(os.path.join(errs, module))
os.rmdir(errs)
print(json.dumps({"checked": sorted(checked), "failed": failed}))
"""


def test_the_module_list_is_complete():
    assert {"oplab.data", "oplab.dataset", "oplab.models", "oplab.tasks", "oplab.train"} <= set(MODULES)
    assert set(MODULES) == set(module_files())


def test_every_module_imports_on_its_own():
    """Each module in a child process that holds no oplab module: forked from one parent that has
    imported torch, numpy, pandas and scipy once (FORK_EACH), as many at once as there are cores."""
    proc = _run(FORK_EACH, *MODULES)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["checked"] == sorted(MODULES)
    failed = out["failed"]
    assert not failed, "failed in a fresh child: " + "; ".join(f"`import {m}`: {e[-300:]}" for m, e in failed.items())


def test_a_module_that_fails_to_import_is_reported(tmp_path):
    """The forked children catch what a fresh interpreter would: an error at import, a module that
    leans on a submodule that only another child imported (oplab.plots), a module that exits the process."""
    (tmp_path / "fine.py").write_text("import torch\nx = torch.zeros(2).sum()\n")
    (tmp_path / "broken.py").write_text("import numpy\nraise RuntimeError('broken at import')\n")
    (tmp_path / "leans.py").write_text("import oplab.config\nconfig = oplab.config\nplots = oplab.plots\n")
    (tmp_path / "quits.py").write_text("import os\nos._exit(3)\n")
    first = f"import sys; sys.path.insert(0, {str(tmp_path)!r})\n"
    proc = _run(first + FORK_EACH, "oplab.plots", "fine", "broken", "leans", "quits", "oplab")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["checked"] == ["broken", "fine", "leans", "oplab", "oplab.plots", "quits"]
    failed = out["failed"]
    assert set(failed) == {"broken", "leans", "quits"}, failed
    assert "RuntimeError: broken at import" in failed["broken"] and "(exit status 1)" in failed["broken"]
    assert "has no attribute 'plots'" in failed["leans"]
    assert failed["quits"].endswith("(exit status 3)")


@pytest.mark.parametrize("module", ["oplab.dataset", "oplab.data", "oplab.models", "oplab.registry"])
def test_any_import_registers_every_dataset(module):
    code = (f"import {module}\nfrom oplab.dataset import DATASETS\n"
            "names = {'mnist5k', 'mnist1d', 'mnist', 'temporal_order', 'adding', 'single_unit_target'}\n"
            "missing = names - set(DATASETS)\nassert not missing, missing\n")
    proc = _run(code)
    assert proc.returncode == 0, f"after `import {module}` not every dataset is registered:\n{proc.stderr}"


# --- the static graph of module-level imports


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


@pytest.mark.parametrize("module_level", [True, False], ids=["module-level", "function-level too"])
def test_no_import_cycle_among_oplab_modules(module_level):
    cycle = find_cycle(import_graph(module_level))
    assert cycle is None, f"import cycle among oplab modules: {' -> '.join(cycle)}"


def test_no_lower_layer_imports_a_higher_one():
    """The layering the README states (oplab.imports.LAYERS): foundations, components, the trial,
    planning and execution, judging and reporting, the run; every module is in one layer."""
    assert imports.layer_violations() == []
    listed = [m for names in imports.LAYERS.values() for m in names]
    assert len(listed) == len(set(listed)), "a module is in two layers"


def test_layer_violations_are_found(monkeypatch):
    monkeypatch.setitem(imports.LAYERS, "foundations", tuple(n for n in imports.LAYERS["foundations"]
                                                             if n != "config"))
    monkeypatch.setitem(imports.LAYERS, "the run", (*imports.LAYERS["the run"], "config"))
    found = imports.layer_violations()
    assert any("imports oplab.config" in p for p in found), found


def test_execution_loads_neither_pandas_nor_the_verdict_code():
    proc = _run("import sys, oplab.runner, oplab.pools, oplab.job\n"
                "bad = [m for m in ('pandas', 'oplab.kit', 'oplab.report', 'oplab.stats') if m in sys.modules]\n"
                "assert not bad, bad")
    assert proc.returncode == 0, proc.stderr


def test_the_trial_code_is_the_training_entry_points_imports():
    trial = imports.trial_modules()
    assert {"oplab.train", "oplab.datatask", "oplab.streamtask", "oplab.models", "oplab.optim",
            "oplab.data", "oplab.init", "oplab.seeds"} <= trial
    assert not {"oplab.runner", "oplab.pools", "oplab.pipeline", "oplab.cli", "oplab.report", "oplab.kit",
                "oplab.stats", "oplab.plan", "oplab.estimate"} & trial


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
    bad = {name: found for name, path in module_files().items() if (found := _imports_studies(path.read_text()))}
    assert not bad, f"oplab modules import studies: {bad}"
