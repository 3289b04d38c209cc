"""The stores' records (mltrain/workspace/records.py): typed, frozen, dataclass-compatible, and
defined without compiling code (every run defines them at start-up)."""

from __future__ import annotations

import builtins
import copy
import dataclasses
import json
import pickle
from typing import Any

import pytest

from mltrain.api.records import RunRecord
from mltrain.workspace.models import ModelVersion
from mltrain.workspace.records import Record, record
from mltrain.workspace.runs import StatusChange


def test_defining_a_record_compiles_no_code(monkeypatch: pytest.MonkeyPatch):
    """A record class gets no generated methods (a frozen dataclass execs its __init__, __setattr__,
    __delattr__: about 1 ms a class, paid by every run for every record of the stores)."""

    def no_exec(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a record definition compiled code")

    monkeypatch.setattr(builtins, "exec", no_exec)

    @record
    class Point(Record):
        """A point."""

        x: int
        y: int = 0
        tags: dict[str, str] = dataclasses.field(default_factory=dict)

    monkeypatch.undo()
    assert Point(1) == Point(x=1, y=0, tags={}) and Point(1, 2).y == 2


def test_a_record_is_built_and_compared_as_a_dataclass():
    a = StatusChange("Queued", 1.0)
    assert a == StatusChange(status="Queued", ts=1.0) == StatusChange("Queued", ts=1.0, detail=None)
    assert repr(a) == "StatusChange(status='Queued', ts=1.0, detail=None)"
    assert (a.status, a.ts, a.detail) == ("Queued", 1.0, None)
    with pytest.raises(TypeError, match="'ts'"):
        StatusChange("Queued")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'colour'"):
        StatusChange("Queued", 1.0, colour="red")  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="'status'"):
        StatusChange("Queued", 1.0, status="Running")  # type: ignore[misc]
    with pytest.raises(TypeError, match="positional"):
        StatusChange("Queued", 1.0, None, 4)  # type: ignore[call-arg]
    match a:
        case StatusChange(status, ts):
            assert (status, ts) == ("Queued", 1.0)


def test_a_record_cannot_be_changed():
    a = StatusChange("Queued", 1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.status = "Running"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del a.status  # type: ignore[misc]
    with pytest.raises(TypeError, match="cannot be changed"):
        a["status"] = "Running"  # type: ignore[index]
    with pytest.raises(TypeError, match="cannot be changed"):
        a.update(status="Running")
    assert a.status == a["status"] == "Queued"


def test_mutable_defaults_are_fresh_and_inherited_fields_come_first():
    m1 = ModelVersion(name="m", version=1, path="p", sha256="s", format="joblib")
    m2 = ModelVersion(name="m", version=2, path="p", sha256="s", format="joblib")
    assert m1.tags == {} and m1.tags is not m2.tags and m1.files == [] and m1.files is not m2.files
    run = RunRecord(id="r", experiment_id=1, experiment="e", status="Queued", created_at=1.0, tags={"a": "b"})
    assert list(run)[:2] == ["id", "experiment_id"] and list(run)[-2:] == ["metrics", "tags"]
    assert run.metrics == {} and run.tags == {"a": "b"} and run.duration_s is None


def test_the_dataclass_functions_pickle_and_json_work_on_records():
    a = StatusChange("Queued", 1.0, "queued by test")
    assert [f.name for f in dataclasses.fields(a)] == ["status", "ts", "detail"]
    assert dataclasses.is_dataclass(a)
    assert dataclasses.asdict(a) == a.to_dict() == {"status": "Queued", "ts": 1.0, "detail": "queued by test"}
    assert dataclasses.replace(a, ts=2.0) == StatusChange("Queued", 2.0, "queued by test")
    assert pickle.loads(pickle.dumps(a)) == a and copy.deepcopy(a) == a and copy.copy(a) is a
    assert json.loads(json.dumps(a)) == {"status": "Queued", "ts": 1.0, "detail": "queued by test"}
    assert hash(a) == hash(StatusChange("Queued", 1.0, "queued by test"))
