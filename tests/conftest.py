"""Shared fixtures: tiny trials that train in well under a second."""

from __future__ import annotations

import warnings

import pytest

from oplab.config import DataConfig, InitConfig, ModelConfig, NormConfig, OptimConfig, Trial

warnings.filterwarnings("ignore", category=DeprecationWarning)


def tiny_trial(**changes) -> Trial:
    base = Trial(
        data=DataConfig("mnist5k", n_train=120, n_test=60),
        model=ModelConfig("mlp", depth=2, width=16),
        init=InitConfig("glorot"),
        norm=NormConfig("none"),
        optim=OptimConfig("sgd", lr=0.05, momentum=0.9),
        epochs=2,
        batch_size=20,
    )
    from oplab.config import override

    return override(base, changes) if changes else base


@pytest.fixture
def trial() -> Trial:
    return tiny_trial()


def pytest_configure(config):
    # pytest-xdist registers it too; without the plugin a mark of it must not warn
    config.addinivalue_line("markers", "xdist_group(name): run these tests on one pytest-xdist worker")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """`make test` runs on pytest-xdist workers with --dist loadgroup: each test goes to the next free
    worker, except an xdist group's tests, which go together. The tests that use a module-scoped
    fixture of their own module (e.g. a results folder trained once) form a group, so that one worker
    builds it once instead of each worker building it for the tests it happens to get."""
    for item in items:
        info = getattr(item, "_fixtureinfo", None)
        module = item.nodeid.split("::", 1)[0]
        for name in sorted(info.names_closure if info is not None else ()):
            defs = info.name2fixturedefs.get(name) or ()
            if defs and defs[-1].scope == "module" and defs[-1].baseid == module:
                item.add_marker(pytest.mark.xdist_group(f"{module}::{name}"))


def kill_mid_run(cmd: list[str], out, env: dict, cwd, timeout: float) -> None:
    """Start `cmd` (a run writing into `out`), SIGKILL its process group once 3 tiny-study records are
    stored (or after `timeout` seconds), and wait for it: a run killed half-way."""
    import os
    import signal
    import subprocess
    import time

    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    deadline = time.time() + timeout
    while len(list((out / "tiny" / "trials").glob("*.json"))) < 3 and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
