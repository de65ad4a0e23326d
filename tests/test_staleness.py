"""Staleness: a record's provenance against the current environment, on hand-made provenance dicts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from oplab import records, staleness

ENV = {"oplab": "0.1.0", "python": "3.11.7", "torch": "2.14.1", "numpy": "2.4.6", "torchvision": "0.29.1",
       "scipy": "1.17.1", "pandas": "3.1.1", "mnist1d": "0.0.2.post1", "mlxtend": "0.25.0", "cpu": "AMD EPYC 9454",
       "device": "cpu", "torch_threads": 1, "platform": "Linux-6.1-x86_64-with-glibc2.36", "git_commit": "ba506a7",
       "git_dirty": False}


def prov(**changes) -> dict:
    return {**ENV, "date": "2026-01-01T00:00:00+00:00", **changes}


@pytest.fixture(autouse=True)
def no_git(monkeypatch):
    """Commits compare through a stand-in for git: "c0de000" changed the code, others did not."""
    monkeypatch.setattr(staleness, "code_changed", lambda old, new: "c0de000" in (old, new))


def test_the_same_environment_has_no_differences():
    assert staleness.differences(prov(), ENV) == {}
    assert not staleness.is_stale(prov(), ENV)


def test_noise_does_not_count():
    p = prov(date="2027-05-05T10:00:00+00:00", platform="Linux-6.18-x86_64", python="3.12.1", pandas="3.2.0",
             oplab="0.2.0", git_dirty=True)
    assert staleness.differences(p, ENV) == {}


@pytest.mark.parametrize("field, old", [("torch", "2.14.0"), ("numpy", "2.3.0"), ("scipy", "1.16.0"),
                                        ("mnist1d", "0.0.1"), ("mlxtend", "0.24.0"), ("torchvision", "0.29.0"),
                                        ("cpu", "Intel(R) Xeon(R) Gold 6230"), ("device", "NVIDIA H100 80GB HBM3"),
                                        ("torch_threads", 4)])
def test_each_number_changing_field_counts(field, old):
    diffs = staleness.differences(prov(**{field: old}), ENV)
    assert diffs == {field: (old, ENV[field])}
    assert staleness.is_stale(prov(**{field: old}), ENV)


def test_a_local_build_tag_counts():
    assert staleness.differences(prov(torch="2.14.1+cpu"), {**ENV, "torch": "2.14.1+cu130"}) == {
        "torch": ("2.14.1+cpu", "2.14.1+cu130")}


def test_fields_a_record_lacks_or_does_not_know_are_not_differences():
    old_record = {k: v for k, v in prov().items() if k not in ("cpu", "scipy", "mnist1d", "mlxtend", "torchvision")}
    assert staleness.differences(old_record, ENV) == {}
    assert staleness.differences(prov(git_commit="unknown", cpu="unknown", scipy=None), ENV) == {}


def test_code_counts_apart_and_only_when_the_trial_code_changed():
    assert staleness.differences(prov(git_commit="1234567"), ENV) == {}  # a commit that changed no trial code
    diffs = staleness.differences(prov(git_commit="c0de000"), ENV)
    assert diffs == {"code": ("c0de000", "ba506a7")}
    assert not staleness.is_stale(prov(git_commit="c0de000"), ENV)  # the environment is the same
    assert staleness.is_stale(prov(git_commit="c0de000"), ENV, code=True)
    assert staleness.differences(prov(git_commit="c0de000"), ENV, code=False) == {}


def test_summarize_counts_records_and_what_differs():
    recs = [prov()] * 3 + [prov(torch="2.14.0")] * 2 + [prov(torch="2.14.0", cpu="Intel Xeon")] + [
        prov(git_commit="c0de000")]
    n, counts = staleness.summarize(recs, ENV)
    assert n == 3
    assert counts == Counter({"torch 2.14.0 -> 2.14.1": 3, "cpu Intel Xeon -> AMD EPYC 9454": 1})
    n_code, code_counts = staleness.summarize(recs, ENV, code=True)
    assert n_code == 4 and code_counts["code c0de000 -> ba506a7"] == 1


def test_summarize_takes_records():
    rec = records.Record(config={}, seed=0, status="ok", curves={}, final={}, timings={},
                         provenance=prov(numpy="2.3.0"))
    assert staleness.summarize([rec], ENV) == (1, Counter({"numpy 2.3.0 -> 2.4.6": 1}))


def test_stale_line():
    assert staleness.stale_line([prov()] * 4, ENV) == ""
    recs = [prov()] * 98 + [prov(torch="2.14.0")] * 12 + [prov(git_commit="c0de000")] * 3
    assert staleness.stale_line(recs[:110], ENV) == (
        "12 of 110 records come from another environment (torch 2.14.0 -> 2.14.1: 12)")
    assert staleness.stale_line(recs, ENV) == (
        "12 of 113 records come from another environment (torch 2.14.0 -> 2.14.1: 12); "
        "3 of 113 records come from other code (code c0de000 -> ba506a7: 3)")
    mixed = [prov(torch="2.14.0")] * 2 + [prov(torch="2.14.0", device="NVIDIA H100")]
    assert staleness.stale_line(mixed, ENV) == (
        "3 of 3 records come from another environment (torch 2.14.0 -> 2.14.1: 3, device NVIDIA H100 -> cpu: 1)")


def test_current_environment_matches_provenance():
    env = staleness.current_environment("cpu", threads=2)
    p = records.provenance("cpu", 2)
    assert "date" not in env and env["torch_threads"] == 2
    assert {k: v for k, v in p.items() if k != "date"} == env
    assert staleness.differences(p, env) == {}
    assert "torch_threads" not in staleness.current_environment(threads=None)


def test_code_changed_asks_git(monkeypatch):
    monkeypatch.undo()  # the real code_changed
    head = records.git_commit()
    if head == "unknown":
        pytest.skip("not a git checkout")
    assert not staleness.code_changed(head, head)
    assert staleness.code_changed("0000000", head)  # a commit this checkout lacks: cannot vouch for it


def _git(root, *args) -> str:
    import subprocess

    out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True,
                         env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                              "GIT_COMMITTER_EMAIL": "t@t", "PATH": __import__("os").environ["PATH"]})
    return out.stdout.strip()


def test_editing_execution_code_keeps_records_current_and_editing_trial_code_does_not(monkeypatch, tmp_path):
    """The trial code is found from the training entry point's imports (oplab.imports), not listed: in a
    checkout of this tree, a commit that edits the Dask/local pools (execution only) or the report leaves
    the records' code current; one that edits the training loop or a model marks it changed."""
    import shutil

    monkeypatch.undo()  # the real code_changed
    if shutil.which("git") is None:
        pytest.skip("no git")
    src = Path(staleness.__file__).resolve().parent
    shutil.copytree(src, tmp_path / "oplab", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "studies").mkdir()
    (tmp_path / "studies" / "x.py").write_text("NAME = 'x'\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "base")
    commits = [_git(tmp_path, "rev-parse", "HEAD")]
    for name in ("pools.py", "report.py", "pipeline.py", "train.py", "models.py", "../studies/x.py"):
        with open(tmp_path / "oplab" / name, "a") as f:
            f.write("\n# an edit\n")
        _git(tmp_path, "commit", "-qam", f"edit {name}")
        commits.append(_git(tmp_path, "rev-parse", "HEAD"))
    changed = [staleness.code_changed(a, b, root=tmp_path) for a, b in zip(commits, commits[1:])]
    assert changed == [False, False, False, True, True, True]
