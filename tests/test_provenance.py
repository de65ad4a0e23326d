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
    for error in (None, {}, {"type": "ValueError", "message": 3, "traceback": ""}):
        path.write_text(json.dumps({**d, "status": "error", "error": error}))
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

    monkeypatch.setattr(Path, "read_bytes", unreadable)
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


def _valid(tmp_path) -> Path:
    path = tmp_path / "r.json"
    records.save(_record(final={"test_err": 0.25, "steps": 12, "target_step": None},
                         curves={"eval": {"step": [1, 2], "test_loss": [0.5, 0.4]}}, timings={"wall_s": 1.0}), path)
    return path


def _why(path) -> list[str]:
    found = []
    assert records.load(path, "k", on_invalid=lambda p, reason: found.append(reason)) is None
    return found


@pytest.mark.parametrize("change,reason", [
    ({"seed": "0"}, "field 'seed' is a string, expected an integer"),
    ({"seed": True}, "field 'seed' is a boolean, expected an integer"),
    ({"status": 1}, "field 'status' is an integer, expected a string"),
    ({"final": []}, "field 'final' is a list, expected an object"),
    ({"final": {"test_err": "0.25"}}, "final 'test_err' not a number"),
    ({"timings": {"wall_s": None}}, "timings 'wall_s' not a number"),
    ({"curves": {"eval": [1, 2]}}, "curve table 'eval' is not columns of lists"),
    ({"curves": {"eval": {"step": 3}}}, "curve table 'eval' is not columns of lists"),
    ({"diverged_step": 1.5}, "field 'diverged_step' is a number, expected an integer or null"),
    ({"key": None}, "field 'key' is null, expected a string"),
    ({"final": {"test_err": float("nan")}}, "status 'ok' with non-finite final test_err=nan"),
    ({"final": {"test_loss": float("-inf"), "test_err": float("inf")}},
     "status 'ok' with non-finite final test_err=inf, test_loss=-inf"),
])
def test_a_field_of_the_wrong_type_or_a_nan_final_is_invalid(change, reason, tmp_path):
    path = _valid(tmp_path)
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
    assert _why(path) == [reason]


def test_a_key_given_twice_a_json_that_is_not_an_object_and_a_deep_nest_are_invalid(tmp_path):
    path = _valid(tmp_path)
    text = path.read_text()
    path.write_text('{"seed": 0, ' + text.lstrip()[1:])  # the same value twice is still damage
    assert _why(path) == ["key 'seed' given twice"]
    for text, reason in (("[1, 2]", "it holds a list, not a record"), ("null", "it holds null, not a record"),
                         ("[" * 100000 + "]" * 100000, "")):
        path.write_text(text)
        assert len(_why(path)) == 1 and reason in _why(path)[0]


def test_an_invalid_record_is_one_warning_of_its_own_category(tmp_path):
    path = _valid(tmp_path)
    path.write_text(path.read_text()[:40])
    with pytest.warns(records.InvalidRecordWarning, match=r"ignoring invalid record .*r\.json \(.*\); its trial is "
                                                          "trained again") as caught:
        assert records.load(path) is None
    assert len(caught) == 1 and issubclass(records.InvalidRecordWarning, UserWarning)
    assert "recomputed" not in str(caught[0].message)


def test_a_valid_record_loads_with_none_finals_and_its_digest_is_its_files(tmp_path):
    import hashlib

    path = _valid(tmp_path)
    rec = records.load(path, "k")
    assert rec.final["target_step"] is None and rec.final["test_err"] == 0.25
    assert records.digest(rec) == hashlib.sha256(path.read_bytes()).hexdigest()
