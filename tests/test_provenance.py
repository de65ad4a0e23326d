"""The record format: the "error" status and its fields, loading of unreadable paths, and the
provenance a record carries (CPU model, package versions, a git commit asked once per process)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from oplab import records
from oplab.records import Record


def _record(**changes) -> Record:
    return Record(**{"config": {}, "seed": 0, "status": "ok", "curves": {}, "final": {}, "timings": {},
                     "provenance": {}, "key": "k", **changes})


def test_an_error_record_round_trips(tmp_path):
    err = {"type": "RuntimeError", "message": "lsuv: layer 1 ...", "traceback": "Traceback (most recent call last):"}
    rec = _record(status="error", error=err)
    records.save(rec, tmp_path / "r.json")
    back = records.load(tmp_path / "r.json", "k")
    assert back == rec and back.error == err and "error" in records.STATUSES


def test_an_error_record_needs_its_error(tmp_path):
    path = tmp_path / "r.json"
    d = json.loads(_record().to_json())
    path.write_text(json.dumps({**d, "status": "error"}))
    with pytest.warns(UserWarning, match="needs its error"):
        assert records.load(path) is None


def test_records_without_the_error_field_still_load(tmp_path):
    d = json.loads(_record().to_json())
    del d["error"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(d))
    rec = records.load(path, "k")
    assert rec is not None and rec.error is None and rec.status == "ok"


def test_a_directory_at_the_path_is_an_invalid_record(tmp_path):
    (tmp_path / "r.json").mkdir()
    with pytest.warns(UserWarning, match="invalid record"):
        assert records.load(tmp_path / "r.json") is None


def test_an_unreadable_file_is_an_invalid_record(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    records.save(_record(), path)

    def unreadable(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", unreadable)
    with pytest.warns(UserWarning, match="Permission denied"):
        assert records.load(path) is None


def test_provenance_names_the_cpu_and_the_packages():
    p = records.provenance("cpu", 1)
    assert isinstance(p["cpu"], str) and p["cpu"]
    assert p["device"] == "cpu" and p["torch_threads"] == 1
    for name in ("torch", "numpy", "scipy", "pandas", "mnist1d", "mlxtend", "torchvision"):
        assert p[name], name
    assert p["git_dirty"] in (True, False, None)
    json.dumps(p)  # JSON as it is


def test_cpu_model_reads_cpuinfo_else_platform(monkeypatch):
    records.cpu_model.cache_clear()
    real_open = open

    def no_cpuinfo(path, *args, **kwargs):
        if path == "/proc/cpuinfo":
            raise FileNotFoundError(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", no_cpuinfo)
    monkeypatch.setattr(records.platform, "processor", lambda: "arm")
    try:
        assert records.cpu_model() == "arm"
    finally:
        records.cpu_model.cache_clear()


def test_git_commit_is_asked_once_per_process(monkeypatch):
    calls = []
    real = subprocess.run

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    records.git_commit.cache_clear()
    monkeypatch.setattr(records.subprocess, "run", counting)
    first = records.git_commit()
    for _ in range(3):
        assert records.git_commit() == first
    assert len(calls) == 1
