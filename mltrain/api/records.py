"""The records the Python API returns: the stores' frozen records (a run with its last metrics and tags,
a model version, an endpoint with its live state, a built environment), each with ``to_dict()`` and read
access by key (``rec["field"]``); a list of them is a :class:`Records` with ``to_pandas()`` (when pandas
is installed)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mltrain.workspace.environments import EnvironmentRecord
from mltrain.workspace.models import ModelVersion as ModelRecord
from mltrain.workspace.records import Record, record
from mltrain.workspace.runs import RunInfo

if TYPE_CHECKING:
    from mltrain.workspace import Workspace as Store

__all__ = ["EndpointRecord", "EnvironmentRecord", "MetricPoint", "ModelRecord", "Record", "Records", "RunRecord"]

T = TypeVar("T", bound=Record)


class Records(list, Generic[T]):  # type: ignore[type-arg]
    """A list of records; ``to_pandas()`` gives a DataFrame with a column per field."""

    def to_dicts(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self]

    def to_pandas(self) -> Any:
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("to_pandas() needs pandas: pip install pandas (or use to_dicts())") from exc
        return pd.DataFrame(self.to_dicts())


def records(items: Iterable[T]) -> Records[T]:
    return Records(items)


@record
class RunRecord(RunInfo):
    """A run as recorded (:class:`mltrain.workspace.runs.RunInfo`: ids, status, times, what ran where)
    with its last ``metrics`` and ``tags``."""

    metrics: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.created_at


def run_record(store: Store, run: RunInfo) -> RunRecord:
    """The run with its last metrics and tags."""
    return RunRecord.pick(run, metrics=store.metrics.summary(run.id), tags=store.runs.tags(run.id))


@record
class MetricPoint(Record):
    """One logged value of a metric: its step (None when logged without one), value and time."""

    step: int | None
    value: Any
    ts: float


@record
class EndpointRecord(Record):
    """An endpoint (a served model): its live state, URIs and the keys made when it was deployed (keys
    are stored hashed: shown only then)."""

    name: str
    state: str
    model: str
    target: str
    uri: str | None = None
    scoring_uri: str | None = None
    swagger_uri: str | None = None
    auth: bool = True
    reason: str | None = None
    keys: dict[str, str] = field(default_factory=dict)
    cpu: float | None = None
    memory_gb: float | None = None
